//! The table access method's callbacks: Postgres calls these and they translate, to the
//! storage (`storage`), the write path (`writes`) and the engine in `epiphany_core`.
//! [`handler`] builds the routine; the others are the callbacks of one kind each.

pub(crate) mod bitmap;
pub(crate) mod fetch;
pub(crate) mod handler;
pub(crate) mod index_build;
pub(crate) mod relation_storage;
pub(crate) mod sample;
pub(crate) mod scan;
pub(crate) mod vacuum;
