//! epiphany_columnstore: the columnar MergeTree table access method.
//!
//! The storage itself arrives with the columnar issue; this crate already carries what
//! every later piece hangs on: the library's registration (`_PG_init`), its maintenance
//! launcher (a background worker, see [`launcher`]) and its version function.

use pgrx::prelude::*;

mod launcher;

::pgrx::pg_module_magic!(name, version);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    launcher::register();
}

/// Version of the loaded `epiphany_columnstore` library.
#[pg_extern(stable, parallel_safe)]
fn columnstore_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

extension_sql!(
    r#"
COMMENT ON FUNCTION epiphany.columnstore_version() IS
    'Version of the loaded epiphany_columnstore library (compare with pg_extension.extversion)';
"#,
    name = "columnstore_comments",
    requires = [columnstore_version],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn installs_as_a_component_of_the_suite() {
        epiphany_core::pg::testing::assert_installed_as_component(
            "epiphany_columnstore",
            env!("CARGO_PKG_VERSION"),
        );
    }

    #[pg_test]
    fn the_launcher_runs_when_preloaded() {
        // pg_test::postgresql_conf_options preloads the library, so the postmaster must
        // start exactly one launcher; it may still be forking when the first test runs.
        let mut running = None;
        for _ in 0..200 {
            // Backend status is cached per transaction: drop the cache before each look.
            Spi::run("SELECT pg_stat_clear_snapshot()").unwrap();
            running = Spi::get_one_with_args::<i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = $1",
                &[epiphany_core::component::COLUMNSTORE_LAUNCHER.into()],
            )
            .unwrap();
            if running == Some(1) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(running, Some(1));
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'epiphany_columnstore'"]
    }
}
