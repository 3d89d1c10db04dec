//! The columnar MergeTree table format: options, parts, granules, pruning.
//!
//! Pure Rust; `epiphany_columnstore` is the table access method glue around it.

pub mod options;

pub use options::{Compression, TableOptions};
