//! Rows on their way into a part: one Arrow builder per column.
//!
//! A transaction's inserted rows accumulate here until they are flushed into a part; the
//! buffer reports its memory so the glue can flush early and keep COPY bounded.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeBinaryBuilder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};

use crate::columnar::types::{date_to_arrow, ColumnType, TableSchema, Value};
use crate::error::{Error, Result};

enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(Int64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            ColumnType::Int16 => ColumnBuilder::Int16(Int16Builder::new()),
            ColumnType::Int32 => ColumnBuilder::Int32(Int32Builder::new()),
            ColumnType::Int64 | ColumnType::Numeric { .. } => {
                ColumnBuilder::Int64(Int64Builder::new())
            }
            ColumnType::Float32 => ColumnBuilder::Float32(Float32Builder::new()),
            ColumnType::Float64 => ColumnBuilder::Float64(Float64Builder::new()),
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::new()),
            ColumnType::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::new()),
            ColumnType::Timestamp | ColumnType::TimestampTz => {
                ColumnBuilder::Timestamp(Int64Builder::new())
            }
            ColumnType::Text => ColumnBuilder::Text(StringBuilder::new()),
            ColumnType::Bytes | ColumnType::Opaque => ColumnBuilder::Bytes(BinaryBuilder::new()),
            ColumnType::Uuid => ColumnBuilder::Uuid(FixedSizeBinaryBuilder::new(16)),
        }
    }

    /// Appends `v`; false when its kind does not fit the column.
    fn push(&mut self, v: &Value<'_>) -> bool {
        use ColumnBuilder as B;
        match (self, v) {
            (B::Bool(b), Value::Null) => b.append_null(),
            (B::Int16(b), Value::Null) => b.append_null(),
            (B::Int32(b), Value::Null) => b.append_null(),
            (B::Int64(b), Value::Null) => b.append_null(),
            (B::Float32(b), Value::Null) => b.append_null(),
            (B::Float64(b), Value::Null) => b.append_null(),
            (B::Date(b), Value::Null) => b.append_null(),
            (B::Time(b), Value::Null) => b.append_null(),
            (B::Timestamp(b), Value::Null) => b.append_null(),
            (B::Text(b), Value::Null) => b.append_null(),
            (B::Bytes(b), Value::Null) => b.append_null(),
            (B::Uuid(b), Value::Null) => b.append_null(),
            (B::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (B::Int16(b), Value::Int16(x)) => b.append_value(*x),
            (B::Int32(b), Value::Int32(x)) => b.append_value(*x),
            (B::Int64(b), Value::Int64(x)) => b.append_value(*x),
            (B::Float32(b), Value::Float32(x)) => b.append_value(*x),
            (B::Float64(b), Value::Float64(x)) => b.append_value(*x),
            (B::Date(b), Value::Date(x)) => b.append_value(date_to_arrow(*x)),
            (B::Time(b), Value::Time(x)) => b.append_value(*x),
            (B::Timestamp(b), Value::Timestamp(x)) => b.append_value(*x),
            (B::Text(b), Value::Text(x)) => b.append_value(x),
            (B::Bytes(b), Value::Bytes(x)) => b.append_value(x),
            (B::Uuid(b), Value::Uuid(x)) => b.append_value(x).expect("16 bytes"),
            _ => return false,
        }
        true
    }

    fn finish(&mut self) -> ArrayRef {
        use ColumnBuilder as B;
        match self {
            B::Bool(b) => Arc::new(b.finish()),
            B::Int16(b) => Arc::new(b.finish()),
            B::Int32(b) => Arc::new(b.finish()),
            B::Int64(b) => Arc::new(b.finish()),
            B::Float32(b) => Arc::new(b.finish()),
            B::Float64(b) => Arc::new(b.finish()),
            B::Date(b) => Arc::new(b.finish()),
            B::Time(b) => Arc::new(b.finish()),
            B::Timestamp(b) => Arc::new(b.finish()),
            B::Text(b) => Arc::new(b.finish()),
            B::Bytes(b) => Arc::new(b.finish()),
            B::Uuid(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of one table, column by column, until they are flushed.
pub struct RowBuffer {
    schema: TableSchema,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    /// Bytes of variable-length values appended, a cheap bound on memory use.
    var_bytes: usize,
}

impl RowBuffer {
    pub fn new(schema: TableSchema) -> Self {
        let builders = schema
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(c.ty))
            .collect();
        RowBuffer {
            schema,
            builders,
            rows: 0,
            var_bytes: 0,
        }
    }

    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Approximate memory held: fixed-width values plus variable-length bytes.
    pub fn memory_bytes(&self) -> usize {
        self.rows * self.schema.columns.len() * 8 + self.var_bytes
    }

    /// Appends one row; `values` has one entry per column, in order.
    pub fn push_row(&mut self, values: &[Value<'_>]) -> Result<()> {
        if values.len() != self.builders.len() {
            return Err(Error::InvalidParameter {
                name: "row".into(),
                detail: format!(
                    "{} values for {} columns",
                    values.len(),
                    self.builders.len()
                ),
            });
        }
        // Check every value before appending any, so a bad row leaves no partial trace.
        for (i, v) in values.iter().enumerate() {
            if !fits(self.schema.columns[i].ty, v) {
                return Err(Error::InvalidParameter {
                    name: self.schema.columns[i].name.clone(),
                    detail: format!(
                        "a {:?} value does not fit a {:?} column",
                        v, self.schema.columns[i].ty
                    ),
                });
            }
        }
        for (builder, v) in self.builders.iter_mut().zip(values) {
            let fitted = builder.push(v);
            debug_assert!(fitted);
            if let Value::Text(s) = v {
                self.var_bytes += s.len();
            } else if let Value::Bytes(b) = v {
                self.var_bytes += b.len();
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Takes the buffered rows out as one batch, leaving the buffer empty.
    pub fn take_batch(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        self.rows = 0;
        self.var_bytes = 0;
        RecordBatch::try_new(self.schema.arrow_schema(), arrays).expect("builders match the schema")
    }
}

fn fits(ty: ColumnType, v: &Value<'_>) -> bool {
    matches!(
        (ty, v),
        (_, Value::Null)
            | (ColumnType::Bool, Value::Bool(_))
            | (ColumnType::Int16, Value::Int16(_))
            | (ColumnType::Int32, Value::Int32(_))
            | (
                ColumnType::Int64 | ColumnType::Numeric { .. },
                Value::Int64(_)
            )
            | (ColumnType::Float32, Value::Float32(_))
            | (ColumnType::Float64, Value::Float64(_))
            | (ColumnType::Date, Value::Date(_))
            | (ColumnType::Time, Value::Time(_))
            | (
                ColumnType::Timestamp | ColumnType::TimestampTz,
                Value::Timestamp(_)
            )
            | (ColumnType::Text, Value::Text(_))
            | (ColumnType::Bytes | ColumnType::Opaque, Value::Bytes(_))
            | (ColumnType::Uuid, Value::Uuid(_))
    )
}
