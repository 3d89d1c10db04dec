//! Between Postgres's values and the engine's: datums to and from the core's values,
//! the columnar tuple slot, and what the access method knows of a relation's columns.

pub(crate) mod datum;
pub(crate) mod slot;
pub(crate) mod table;
pub(crate) mod windows;
