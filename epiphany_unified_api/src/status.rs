//! `epiphany.status()`: one row per installed component of the suite.
//!
//! What a component is and what it needs lives in `epiphany_core::component`; this module
//! only asks the server what is true now (installed version, library version, preload
//! list, running workers) and lets the core judge it.

use epiphany_core::component::{Observed, COMPONENTS};
use epiphany_core::preload;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;

/// component, version, library_version, preloaded, workers_expected, workers_running, state
type StatusRow = (
    String,
    String,
    Option<String>,
    Option<bool>,
    i32,
    i32,
    String,
);

/// One row per installed EpiphanyDB component, in dependency order.
// pgrx reads the column names from the signature, so the tuple cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(stable)]
fn status() -> TableIterator<
    'static,
    (
        name!(component, String),
        name!(version, String),
        name!(library_version, Option<String>),
        name!(preloaded, Option<bool>),
        name!(workers_expected, i32),
        name!(workers_running, i32),
        name!(state, String),
    ),
> {
    let rows = collect().unwrap_or_else(|e| {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("epiphany.status(): {e}")
        );
    });
    TableIterator::new(rows)
}

fn collect() -> SpiResult<Vec<StatusRow>> {
    let preload_list =
        Spi::get_one::<String>("SELECT current_setting('shared_preload_libraries')")?
            .unwrap_or_default();
    let in_recovery = Spi::get_one::<bool>("SELECT pg_is_in_recovery()")?.unwrap_or(false);
    let mut rows = Vec::new();
    for component in COMPONENTS {
        let installed = Spi::get_one_with_args::<String>(
            "SELECT extversion::text FROM pg_extension WHERE extname = $1",
            &[component.name.into()],
        )?;
        let Some(installed_version) = installed else {
            continue;
        };
        let library_version = match component.version_function {
            // The name comes from our own constant table, never from the user.
            Some(f) => Spi::get_one::<String>(&format!("SELECT epiphany.{f}()"))?,
            None => None,
        };
        let workers: Vec<String> = component
            .background_workers
            .iter()
            .map(|w| w.to_string())
            .collect();
        let running = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = ANY($1)",
            &[workers.into()],
        )?
        .unwrap_or(0);
        let preloaded = component
            .library
            .map(|lib| preload::is_listed(&preload_list, lib));
        let observed = Observed {
            installed_version: installed_version.clone(),
            preloaded: preloaded.unwrap_or(false),
            workers_running: running as usize,
            in_recovery,
        };
        // A SQL-only component is served by the suite's libraries as a whole.
        let expected_version = library_version
            .as_deref()
            .unwrap_or(epiphany_core::SUITE_VERSION);
        let state = component.health(&observed, expected_version).to_string();
        rows.push((
            component.name.to_string(),
            installed_version,
            library_version,
            preloaded,
            component.background_workers.len() as i32,
            running as i32,
            state,
        ));
    }
    Ok(rows)
}

extension_sql!(
    r#"
COMMENT ON FUNCTION epiphany.status() IS
    'One row per installed EpiphanyDB component: SQL and library versions, preload, background workers and what to fix';
"#,
    name = "status_comments",
    requires = [status],
);
