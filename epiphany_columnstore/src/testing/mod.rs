//! The `#[pg_test]`s of the access method, and the SQL helpers they share.

pub(crate) mod access_method;
pub(crate) mod differential;
pub(crate) mod generated;
pub(crate) mod hash_keys;
pub(crate) mod reads;
pub(crate) mod sql;
pub(crate) mod top_n;
pub(crate) mod vector_agg;
