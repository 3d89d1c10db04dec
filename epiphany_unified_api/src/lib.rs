//! epiphany_unified_api: one SQL surface over the suite.
//!
//! Requires every other extension, so `CREATE EXTENSION epiphany_unified_api CASCADE`
//! installs the whole suite. It holds the functions that look across components; today
//! `epiphany.version()` and `epiphany.status()` (see [`status`]).

use pgrx::prelude::*;

mod status;

::pgrx::pg_module_magic!(name, version);

/// The suite's version, e.g. `0.1.0`.
#[pg_extern(stable, parallel_safe)]
fn version() -> &'static str {
    epiphany_core::SUITE_VERSION
}

extension_sql!(
    r#"
COMMENT ON FUNCTION epiphany.version() IS 'Version of the EpiphanyDB suite (of the loaded libraries)';
"#,
    name = "unified_api_comments",
    requires = [version],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_is_the_suite_version() {
        epiphany_core::pg::testing::assert_installed_as_component(
            "epiphany_unified_api",
            epiphany_core::SUITE_VERSION,
        );
    }

    #[pg_test]
    fn cascade_installed_every_component() {
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM epiphany.status() s JOIN pg_extension e ON e.extname = s.component",
        );
        assert_eq!(
            n,
            Ok(Some(epiphany_core::component::COMPONENTS.len() as i64))
        );
    }

    #[pg_test]
    fn status_reports_the_launcher_that_is_not_preloaded_here() {
        // This test cluster preloads nothing, so columnstore must say how to fix that.
        let (running, state) = Spi::get_two::<i32, String>(
            "SELECT workers_running, state FROM epiphany.status() WHERE component = 'epiphany_columnstore'",
        )
        .unwrap();
        assert_eq!(running, Some(0));
        assert!(state.unwrap().contains("shared_preload_libraries"));
        let ok = Spi::get_one::<String>(
            "SELECT state FROM epiphany.status() WHERE component = 'epiphany_vectorstore'",
        );
        assert_eq!(ok, Ok(Some("ok".to_string())));
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
