//! SQL functions over columnar tables (introspection and verification).

pub(crate) mod introspect;
