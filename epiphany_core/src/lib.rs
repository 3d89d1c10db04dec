//! EpiphanyDB engine code shared by every extension of the suite.
//!
//! Everything here is pure Rust and tested with plain `cargo test -p epiphany_core`;
//! the `pg` feature adds the small pieces of glue that need a running Postgres (pgrx).
//! Extension crates stay thin: they translate between Postgres and this crate, and turn
//! an [`Error`] into one `ereport` at the boundary.
//!
//! No `unsafe` outside `pg`: the engine is safe Rust, and the lints say so (`unsafe_code`
//! is denied here, and forbidden — no `allow` can lift it — in every module but `pg`).

#![deny(unsafe_code)]

// pgrx turns a Rust panic into a Postgres ERROR by unwinding to the callback boundary;
// with panic = "abort" any panic would take the whole server down instead.
#[cfg(panic = "abort")]
compile_error!("EpiphanyDB must be built with panic = \"unwind\" (a panic becomes an ERROR)");

pub mod columnar;
pub mod component;
pub mod error;
pub mod preload;
pub mod storage;
pub mod vector;

#[cfg(feature = "pg")]
pub mod pg;

pub use error::{Error, SqlState};

/// Version of the whole suite; every extension of one build carries the same one.
pub const SUITE_VERSION: &str = env!("CARGO_PKG_VERSION");
