//! epiphany_vectorstore: the vector type and the HNSW and IVF-PQ index access methods.
//!
//! The `vector` type (pgvector's SQL surface), the `epiphany_hnsw` index access method
//! and its settings. Algorithms and formats live in `epiphany_core::vector`.

mod datum;
mod functions;
mod hnsw;
mod index_am;
mod ivfpq;
mod options;
#[cfg(any(test, feature = "pg_test"))]
mod test_support;

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    options::init();
}

/// Version of the loaded `epiphany_vectorstore` library.
#[pg_extern(stable, parallel_safe)]
fn vectorstore_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

extension_sql!(
    r#"
COMMENT ON FUNCTION epiphany.vectorstore_version() IS
    'Version of the loaded epiphany_vectorstore library (compare with pg_extension.extversion)';
"#,
    name = "vectorstore_comments",
    requires = [vectorstore_version],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn installs_as_a_component_of_the_suite() {
        epiphany_core::pg::testing::assert_installed_as_component(
            "epiphany_vectorstore",
            env!("CARGO_PKG_VERSION"),
        );
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
