//! Column types with a native columnar encoding, and how Postgres values map onto them.
//!
//! Dates and timestamps are stored with the Unix epoch, as Arrow and Parquet define them,
//! so an exported part reads correctly in other tools; values cross the boundary in
//! Postgres's own units (epoch 2000-01-01) and are shifted here. Every other Postgres
//! type is stored as `Opaque` bytes (its binary image), so any type works, unpruned.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// Days from 1970-01-01 to 2000-01-01.
pub const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `date`: days.
    Date,
    /// `time`: microseconds since midnight.
    Time,
    /// `timestamp`: microseconds.
    Timestamp,
    /// `timestamptz`: microseconds, UTC.
    TimestampTz,
    /// `text`, `varchar`, `char`, `json` in a UTF-8 database.
    Text,
    /// `bytea`, and text in databases whose encoding is not UTF-8.
    Bytes,
    Uuid,
    /// Any other type, as the bytes of its binary image; never pruned.
    Opaque,
}

impl ColumnType {
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int16 => DataType::Int16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ColumnType::Text => DataType::Utf8,
            ColumnType::Bytes | ColumnType::Opaque => DataType::Binary,
            ColumnType::Uuid => DataType::FixedSizeBinary(16),
        }
    }

    /// Whether min/max of this column order values the way Postgres does.
    pub fn prunable(self) -> bool {
        !matches!(self, ColumnType::Opaque)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
}

/// The columns of a table, in attribute order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub columns: Vec<ColumnDef>,
}

impl TableSchema {
    pub fn new(columns: impl IntoIterator<Item = (impl Into<String>, ColumnType)>) -> Self {
        TableSchema {
            columns: columns
                .into_iter()
                .map(|(name, ty)| ColumnDef {
                    name: name.into(),
                    ty,
                })
                .collect(),
        }
    }

    pub fn arrow_schema(&self) -> Arc<Schema> {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow_type(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// One value on its way in or out, in Postgres's units.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    /// Days since 2000-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 2000-01-01 (for both timestamp types).
    Timestamp(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
    Uuid([u8; 16]),
}
