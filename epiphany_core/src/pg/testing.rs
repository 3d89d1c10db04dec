//! Checks shared by the `#[pg_test]`s of the extension crates (feature `pg`).
//!
//! Each crate proves it installed as a component of the suite should; the expectations
//! come from the component table, so they cannot drift from what `epiphany.status()` uses.

use pgrx::spi::Spi;

use crate::component::component;

/// Panics unless extension `name` is installed in schema `epiphany` and the SQL function
/// that reports its library version answers `library_version`.
pub fn assert_installed_as_component(name: &str, library_version: &str) {
    let component = component(name).expect("a component of the suite");
    let schema = Spi::get_one_with_args::<String>(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = $1",
        &[name.into()],
    );
    assert_eq!(schema, Ok(Some("epiphany".to_string())), "schema of {name}");
    let function = component
        .version_function
        .expect("a component with a library");
    // The name comes from the component table, never from the user.
    let reported = Spi::get_one::<String>(&format!("SELECT epiphany.{function}()"));
    assert_eq!(
        reported,
        Ok(Some(library_version.to_string())),
        "epiphany.{function}()"
    );
    let comment = Spi::get_one::<String>(&format!(
        "SELECT obj_description('epiphany.{function}()'::regprocedure, 'pg_proc')"
    ));
    assert!(
        matches!(comment, Ok(Some(ref c)) if !c.is_empty()),
        "epiphany.{function}() has no comment"
    );
}
