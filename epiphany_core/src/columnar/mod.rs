//! The columnar MergeTree table format: options, parts, granules, pruning.
//!
//! Pure Rust; `epiphany_columnstore` is the table access method glue around it. Rows
//! gather in a [`RowBuffer`], are sorted and encoded as a part ([`encode_part`], one
//! Parquet row group per granule), and are read back by granule and column
//! ([`PartReader`]); [`prune`] decides from granule statistics what a scan can skip.

#![forbid(unsafe_code)]

pub mod agg;
pub mod bounds;
pub mod buffer;
pub mod cache;
pub mod fetch;
pub mod filter;
pub mod flush;
pub mod join_filter;
pub mod numeric;
pub mod options;
pub mod page_window;
pub mod part;
pub mod part_scan;
pub mod prune;
pub mod qual;
pub mod rowid;
pub mod sample;
pub mod scan_plan;
pub mod stored;
pub mod types;
pub mod verify;
pub mod write_set;

pub use buffer::{RawRows, RowBuffer};
pub use options::{Compression, TableOptions};
pub use part::{encode_part, value_at, EncodedPart, PartBatches, PartReader};
pub use types::{ColumnDef, ColumnType, TableSchema, Value};
