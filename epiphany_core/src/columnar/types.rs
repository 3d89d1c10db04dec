//! Column types with a native columnar encoding, and how Postgres values map onto them.
//!
//! Dates are stored with the Unix epoch, as Arrow's Date32 defines it, so an exported part
//! reads correctly in other tools; they cross the boundary in Postgres's units (days since
//! 2000-01-01) and are shifted here. Timestamps stay plain 64-bit integers in Postgres's
//! units: Postgres's range reaches within 30 years of the largest 64-bit microsecond
//! count, so the shift to the Unix epoch would overflow for the last years of it. Every
//! other Postgres type is stored as `Opaque` bytes (its binary image), so any type works,
//! unpruned.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Days from 1970-01-01 to 2000-01-01.
pub const PG_EPOCH_DAYS: i32 = 10_957;

/// A Postgres date (days since 2000-01-01) as Arrow stores it (days since 1970-01-01).
/// `±infinity` (the extreme integers) stay as they are: no finite date shifts onto them.
pub fn date_to_arrow(pg_days: i32) -> i32 {
    if pg_days == i32::MAX || pg_days == i32::MIN {
        pg_days
    } else {
        // Postgres's dates end at 5874897 AD, far inside i32 after the shift.
        pg_days.wrapping_add(PG_EPOCH_DAYS)
    }
}

/// The inverse of [`date_to_arrow`]. Only damaged part bytes (checksums catch them
/// first) hold days that would overflow: they wrap, as any damaged value is garbage, and
/// never panic.
pub fn date_from_arrow(days: i32) -> i32 {
    if days == i32::MAX || days == i32::MIN {
        days
    } else {
        days.wrapping_sub(PG_EPOCH_DAYS)
    }
}

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
    /// `timestamp`: microseconds since 2000-01-01, stored as Int64.
    Timestamp,
    /// `timestamptz`: microseconds since 2000-01-01 UTC, stored as Int64.
    TimestampTz,
    /// `text`, `varchar`, `char`, `json` in a UTF-8 database.
    Text,
    /// `bytea`, and text in databases whose encoding is not UTF-8.
    Bytes,
    Uuid,
    /// `numeric(p, s)` with `p <= 18`: the value times `10^scale` as Int64 (see
    /// `columnar::numeric`).
    Numeric {
        scale: u16,
    },
    /// Any other type, as the bytes of its binary image; never pruned.
    Opaque,
}

impl ColumnType {
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int16 => DataType::Int16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 | ColumnType::Numeric { .. } => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp | ColumnType::TimestampTz => DataType::Int64,
            ColumnType::Text => DataType::Utf8,
            ColumnType::Bytes | ColumnType::Opaque => DataType::Binary,
            ColumnType::Uuid => DataType::FixedSizeBinary(16),
        }
    }

    /// Whether min/max of this column order values the way Postgres does.
    pub fn prunable(self) -> bool {
        !matches!(self, ColumnType::Opaque)
    }

    /// Whether values are stored as integers that order as Postgres orders them
    /// (integers, dates, times, timestamps), never NaN nor truncated in statistics.
    pub fn integer_ordered(self) -> bool {
        matches!(
            self,
            ColumnType::Int16
                | ColumnType::Int32
                | ColumnType::Int64
                | ColumnType::Date
                | ColumnType::Time
                | ColumnType::Timestamp
                | ColumnType::TimestampTz
        )
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

/// The Arrow schema of `table`'s columns as `arrays` hold them. A text column's values
/// are UTF-8 in nearly every case, but Postgres stores what a C function or a SQL_ASCII
/// client hands it byte for byte, and so must we: a batch with such text holds that
/// column as bytes (`Binary`), and so does the part written from it. Everything that
/// reads a text column takes either.
pub fn schema_of(table: &TableSchema, arrays: &[arrow_array::ArrayRef]) -> SchemaRef {
    let fields: Vec<Field> = table
        .columns
        .iter()
        .zip(arrays)
        .map(|(c, a)| Field::new(&c.name, a.data_type().clone(), true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Whether a text column's array holds bytes that are not all UTF-8.
pub fn text_is_bytes(array: &dyn arrow_array::Array) -> bool {
    *array.data_type() == DataType::Binary
}

/// `batches` with their text columns of one type: where one batch holds a column as bytes
/// (see [`schema_of`]), the others' UTF-8 arrays become bytes too, so they concatenate.
pub fn unify_text_columns(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    if batches.iter().all(|b| b.schema() == first.schema()) {
        return batches.to_vec();
    }
    let binary: Vec<bool> = (0..first.num_columns())
        .map(|c| batches.iter().any(|b| text_is_bytes(b.column(c).as_ref())))
        .collect();
    batches
        .iter()
        .map(|b| {
            let columns: Vec<arrow_array::ArrayRef> = b
                .columns()
                .iter()
                .zip(&binary)
                .map(|(a, &bin)| match a.as_string_opt::<i32>() {
                    Some(s) if bin => Arc::new(arrow_array::BinaryArray::new(
                        s.offsets().clone(),
                        s.values().clone(),
                        arrow_array::Array::nulls(s).cloned(),
                    )) as arrow_array::ArrayRef,
                    _ => a.clone(),
                })
                .collect();
            let fields: Vec<Field> = b
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, a)| f.as_ref().clone().with_data_type(a.data_type().clone()))
                .collect();
            RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                columns,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
            )
            .expect("same lengths, matching types")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_finite_values_and_keep_infinities() {
        // Postgres's date range is 4714-11-24 BC .. 5874897-12-31 AD: no finite date may
        // land on a sentinel after the shift.
        for d in [0, 1, -1, -2_451_545, 2_145_031_949] {
            assert_eq!(date_from_arrow(date_to_arrow(d)), d);
            assert!(date_to_arrow(d) != i32::MAX && date_to_arrow(d) != i32::MIN);
        }
        assert_eq!(date_to_arrow(0), 10_957);
        for inf in [i32::MAX, i32::MIN] {
            assert_eq!(date_from_arrow(date_to_arrow(inf)), inf);
        }
    }
}
