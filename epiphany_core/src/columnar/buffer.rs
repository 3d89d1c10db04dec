//! Rows on their way into a part.
//!
//! Appending a row is on the path of every row a load inserts, in the backend, while
//! encoding parts runs on helper threads. So a row is kept as Postgres hands it over: one
//! 64-bit word per column — the datum of a by-value type, or where the bytes of any other
//! value start in an arena — and the work of making Arrow columns out of it (decoding
//! numerics, shifting dates, checking UTF-8) is done when a batch is converted, which for
//! a large load happens on the thread that encodes it.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, FixedSizeBinaryArray, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

use crate::columnar::numeric;
use crate::columnar::types::{date_to_arrow, ColumnType, TableSchema, Value};
use crate::error::{Error, Result};

/// How a column's values are held in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// The value is the word: Postgres's by-value datum.
    Word,
    /// The value is bytes in the arena (the word is their offset).
    Bytes,
}

fn cell_of(ty: ColumnType) -> Cell {
    match ty {
        ColumnType::Bool
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::Float32
        | ColumnType::Float64
        | ColumnType::Date
        | ColumnType::Time
        | ColumnType::Timestamp
        | ColumnType::TimestampTz => Cell::Word,
        ColumnType::Text
        | ColumnType::Bytes
        | ColumnType::Opaque
        | ColumnType::Uuid
        | ColumnType::Numeric { .. } => Cell::Bytes,
    }
}

/// Rows of one table being appended. Values go in column by column with
/// [`push_word`](RowBuffer::push_word), [`push_bytes`](RowBuffer::push_bytes) and
/// [`push_null`](RowBuffer::push_null), in Postgres's representation:
/// - bool, int2/4/8, float4/8, date, time, timestamp(tz): the datum's word;
/// - text, bytea, any `Opaque` type: the bytes;
/// - numeric with a scale: the numeric's varlena payload (decoded on conversion);
/// - uuid: its 16 bytes.
///
/// [`end_row`](RowBuffer::end_row) checks that the row matched the columns; a row that
/// did not leaves no trace.
pub struct RowBuffer {
    schema: TableSchema,
    cells: Vec<Cell>,
    rows: RawRows,
    /// Cells of the row being appended, and whether one did not fit its column.
    cell: usize,
    mismatch: bool,
    /// Where the row being appended started in the arena.
    row_arena: usize,
}

/// Buffered rows, sealed: cheap to share between threads, converted into an Arrow batch
/// by [`RawRows::to_batch`].
#[derive(Debug, Default)]
pub struct RawRows {
    width: usize,
    rows: usize,
    /// `rows × width` words, row by row.
    words: Vec<u64>,
    /// One bit per cell, set for NULL; empty until the first NULL.
    nulls: Vec<u64>,
    /// Each by-reference value as a little-endian `u32` length and its bytes.
    arena: Vec<u8>,
}

impl RowBuffer {
    pub fn new(schema: TableSchema) -> Self {
        let cells: Vec<Cell> = schema.columns.iter().map(|c| cell_of(c.ty)).collect();
        let width = cells.len();
        RowBuffer {
            schema,
            cells,
            rows: RawRows {
                width,
                ..RawRows::default()
            },
            cell: 0,
            mismatch: false,
            row_arena: 0,
        }
    }

    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    pub fn rows(&self) -> usize {
        self.rows.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows.rows == 0
    }

    /// Memory held by the buffered rows.
    pub fn memory_bytes(&self) -> usize {
        self.rows.memory_bytes()
    }

    fn expect(&mut self, cell: Cell) {
        if self.cells.get(self.cell) != Some(&cell) {
            self.mismatch = true;
        }
        self.cell += 1;
    }

    /// The next column's value is `word`.
    #[inline]
    pub fn push_word(&mut self, word: u64) {
        self.expect(Cell::Word);
        self.rows.words.push(word);
    }

    /// The next column's value is `bytes`.
    #[inline]
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.expect(Cell::Bytes);
        let Ok(len) = u32::try_from(bytes.len()) else {
            self.mismatch = true;
            self.rows.words.push(0);
            return;
        };
        let at = self.rows.arena.len();
        self.rows.words.push(at as u64);
        self.rows.arena.extend_from_slice(&len.to_le_bytes());
        self.rows.arena.extend_from_slice(bytes);
    }

    /// The next column's value is NULL.
    pub fn push_null(&mut self) {
        self.cell += 1;
        let at = self.rows.words.len();
        self.rows.words.push(0);
        if self.rows.nulls.len() <= at / 64 {
            self.rows.nulls.resize(at / 64 + 1, 0);
        }
        self.rows.nulls[at / 64] |= 1 << (at % 64);
    }

    /// Completes the row being appended; an error (and no row) if its values did not
    /// match the columns.
    pub fn end_row(&mut self) -> Result<()> {
        if self.mismatch || self.cell != self.cells.len() {
            let got = self.cell;
            self.abandon_row();
            return Err(Error::InvalidParameter {
                name: "row".into(),
                detail: format!(
                    "{got} values do not match the {} columns {:?}",
                    self.cells.len(),
                    self.schema.names()
                ),
            });
        }
        self.cell = 0;
        self.rows.rows += 1;
        self.row_arena = self.rows.arena.len();
        Ok(())
    }

    /// Drops whatever the row being appended left behind.
    fn abandon_row(&mut self) {
        let start = self.rows.rows * self.rows.width;
        self.rows.words.truncate(start);
        self.rows.arena.truncate(self.row_arena);
        // Later rows reuse these cells: their NULL bits must be clear.
        let first = start / 64;
        if let Some(word) = self.rows.nulls.get_mut(first) {
            *word &= (1u64 << (start % 64)) - 1;
        }
        self.rows.nulls.truncate(first + 1);
        self.cell = 0;
        self.mismatch = false;
    }

    /// Appends one row of [`Value`]s (one per column, in order).
    pub fn push_row(&mut self, values: &[Value<'_>]) -> Result<()> {
        if values.len() != self.cells.len() {
            return Err(Error::InvalidParameter {
                name: "row".into(),
                detail: format!("{} values for {} columns", values.len(), self.cells.len()),
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
        for (i, v) in values.iter().enumerate() {
            match *v {
                Value::Null => self.push_null(),
                Value::Bool(x) => self.push_word(x as u64),
                Value::Int16(x) => self.push_word(x as i64 as u64),
                Value::Int32(x) | Value::Date(x) => self.push_word(x as i64 as u64),
                Value::Int64(x) => match self.schema.columns[i].ty {
                    ColumnType::Numeric { scale } => {
                        self.push_bytes(&numeric::from_scaled(x, scale))
                    }
                    _ => self.push_word(x as u64),
                },
                Value::Time(x) | Value::Timestamp(x) => self.push_word(x as u64),
                Value::Float32(x) => self.push_word(u64::from(x.to_bits())),
                Value::Float64(x) => self.push_word(x.to_bits()),
                Value::Text(s) => self.push_bytes(s.as_bytes()),
                Value::Bytes(b) => self.push_bytes(b),
                Value::Uuid(u) => self.push_bytes(&u),
            }
        }
        self.end_row()
    }

    /// Takes the buffered rows out, leaving the buffer empty; it goes on in `spare` (rows
    /// taken earlier, whose memory is reused) if there is one.
    pub fn take_rows(&mut self, spare: Option<RawRows>) -> RawRows {
        self.abandon_row();
        self.row_arena = 0;
        let mut next = spare.unwrap_or_default();
        next.clear();
        next.width = self.rows.width;
        std::mem::replace(&mut self.rows, next)
    }

    /// Takes the buffered rows out as one Arrow batch, leaving the buffer empty.
    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        let rows = self.take_rows(None);
        rows.to_batch(&self.schema)
    }
}

impl RawRows {
    /// Empties the rows, keeping their memory for new ones: a load then does not fault
    /// in fresh pages for every batch.
    pub fn clear(&mut self) {
        self.rows = 0;
        self.words.clear();
        self.nulls.clear();
        self.arena.clear();
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Memory held, used or not.
    pub fn capacity(&self) -> usize {
        (self.words.capacity() + self.nulls.capacity()) * 8 + self.arena.capacity()
    }

    pub fn memory_bytes(&self) -> usize {
        (self.words.len() + self.nulls.len()) * 8 + self.arena.len()
    }

    fn word(&self, row: usize, col: usize) -> u64 {
        self.words[row * self.width + col]
    }

    fn is_null(&self, row: usize, col: usize) -> bool {
        let at = row * self.width + col;
        self.nulls
            .get(at / 64)
            .is_some_and(|w| w & (1 << (at % 64)) != 0)
    }

    fn bytes(&self, row: usize, col: usize) -> &[u8] {
        let at = self.word(row, col) as usize;
        let len = u32::from_le_bytes(self.arena[at..at + 4].try_into().expect("4 bytes"));
        &self.arena[at + 4..at + 4 + len as usize]
    }

    /// The column's NULLs, if it has any.
    fn nulls_of(&self, col: usize) -> Option<NullBuffer> {
        if self.nulls.is_empty() {
            return None;
        }
        let valid = BooleanBuffer::collect_bool(self.rows, |r| !self.is_null(r, col));
        Some(NullBuffer::new(valid)).filter(|n| n.null_count() > 0)
    }

    fn words_as<T: arrow_buffer::ArrowNativeType>(
        &self,
        col: usize,
        f: impl Fn(u64) -> T,
    ) -> ScalarBuffer<T> {
        (0..self.rows).map(|r| f(self.word(r, col))).collect()
    }

    /// Byte values of a column as Arrow offsets and data (NULLs empty).
    fn byte_column(&self, col: usize) -> Result<(OffsetBuffer<i32>, Buffer)> {
        let mut offsets = Vec::with_capacity(self.rows + 1);
        let mut data = Vec::new();
        offsets.push(0i32);
        for r in 0..self.rows {
            if !self.is_null(r, col) {
                data.extend_from_slice(self.bytes(r, col));
            }
            offsets.push(
                i32::try_from(data.len()).map_err(|_| Error::InvalidParameter {
                    name: "row".into(),
                    detail: "more than 2 GB of values in one column of a buffered batch".into(),
                })?,
            );
        }
        Ok((
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(data),
        ))
    }

    /// The rows as an Arrow batch of `schema` (the schema they were buffered with).
    pub fn to_batch(&self, schema: &TableSchema) -> Result<RecordBatch> {
        let arrow_err =
            |e: arrow_schema::ArrowError| Error::Internal(format!("buffered rows: {e}"));
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.width);
        for (c, def) in schema.columns.iter().enumerate() {
            let nulls = self.nulls_of(c);
            let array: ArrayRef = match def.ty {
                ColumnType::Bool => Arc::new(BooleanArray::new(
                    BooleanBuffer::collect_bool(self.rows, |r| self.word(r, c) != 0),
                    nulls,
                )),
                ColumnType::Int16 => {
                    Arc::new(Int16Array::new(self.words_as(c, |w| w as i16), nulls))
                }
                ColumnType::Int32 => {
                    Arc::new(Int32Array::new(self.words_as(c, |w| w as i32), nulls))
                }
                ColumnType::Int64 | ColumnType::Timestamp | ColumnType::TimestampTz => {
                    Arc::new(Int64Array::new(self.words_as(c, |w| w as i64), nulls))
                }
                ColumnType::Float32 => Arc::new(Float32Array::new(
                    self.words_as(c, |w| f32::from_bits(w as u32)),
                    nulls,
                )),
                ColumnType::Float64 => {
                    Arc::new(Float64Array::new(self.words_as(c, f64::from_bits), nulls))
                }
                ColumnType::Date => Arc::new(Date32Array::new(
                    self.words_as(c, |w| date_to_arrow(w as i32)),
                    nulls,
                )),
                ColumnType::Time => Arc::new(Time64MicrosecondArray::new(
                    self.words_as(c, |w| w as i64),
                    nulls,
                )),
                ColumnType::Numeric { scale } => {
                    let values = (0..self.rows)
                        .map(|r| {
                            if self.is_null(r, c) {
                                Ok(0)
                            } else {
                                numeric::to_scaled(self.bytes(r, c), scale)
                            }
                        })
                        .collect::<Result<Vec<i64>>>()?;
                    Arc::new(Int64Array::new(ScalarBuffer::from(values), nulls))
                }
                ColumnType::Text => {
                    let (offsets, data) = self.byte_column(c)?;
                    // Text that is not UTF-8 is kept byte for byte (see `schema_of`).
                    match StringArray::try_new(offsets.clone(), data.clone(), nulls.clone()) {
                        Ok(strings) => Arc::new(strings),
                        Err(_) => {
                            Arc::new(BinaryArray::try_new(offsets, data, nulls).map_err(arrow_err)?)
                        }
                    }
                }
                ColumnType::Bytes | ColumnType::Opaque => {
                    let (offsets, data) = self.byte_column(c)?;
                    Arc::new(BinaryArray::try_new(offsets, data, nulls).map_err(arrow_err)?)
                }
                ColumnType::Uuid => {
                    let mut data = Vec::with_capacity(self.rows * 16);
                    for r in 0..self.rows {
                        if self.is_null(r, c) {
                            data.extend_from_slice(&[0; 16]);
                        } else {
                            let uuid = self.bytes(r, c);
                            if uuid.len() != 16 {
                                return Err(Error::InvalidParameter {
                                    name: def.name.clone(),
                                    detail: format!("a uuid of {} bytes", uuid.len()),
                                });
                            }
                            data.extend_from_slice(uuid);
                        }
                    }
                    Arc::new(
                        FixedSizeBinaryArray::try_new(16, Buffer::from_vec(data), nulls)
                            .map_err(arrow_err)?,
                    )
                }
            };
            arrays.push(array);
        }
        RecordBatch::try_new(crate::columnar::types::schema_of(schema, &arrays), arrays)
            .map_err(arrow_err)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::part::value_at;

    fn schema() -> TableSchema {
        TableSchema::new([
            ("b", ColumnType::Bool),
            ("i2", ColumnType::Int16),
            ("i4", ColumnType::Int32),
            ("i8", ColumnType::Int64),
            ("f4", ColumnType::Float32),
            ("f8", ColumnType::Float64),
            ("d", ColumnType::Date),
            ("t", ColumnType::Time),
            ("ts", ColumnType::Timestamp),
            ("tz", ColumnType::TimestampTz),
            ("s", ColumnType::Text),
            ("by", ColumnType::Bytes),
            ("u", ColumnType::Uuid),
            ("n", ColumnType::Numeric { scale: 2 }),
            ("o", ColumnType::Opaque),
        ])
    }

    fn row(i: i64, text: &str) -> Vec<Value<'_>> {
        vec![
            Value::Bool(i % 2 == 0),
            Value::Int16(-(i as i16)),
            Value::Int32(i as i32 * 1000),
            Value::Int64(i << 40),
            Value::Float32(i as f32 / 4.0),
            Value::Float64(-(i as f64) / 8.0),
            Value::Date(i as i32 - 10),
            Value::Time(i * 1_000_000),
            Value::Timestamp(-i * 7),
            Value::Timestamp(i * 7),
            Value::Text(text),
            Value::Bytes(text.as_bytes()),
            Value::Uuid([i as u8; 16]),
            Value::Int64(i * 125 - 300),
            Value::Bytes(&[1, 2, 3]),
        ]
    }

    #[test]
    fn every_type_comes_back_as_it_went_in_with_nulls_anywhere() {
        let schema = schema();
        let mut buffer = RowBuffer::new(schema.clone());
        let texts: Vec<String> = (0..200).map(|i| format!("välue {i}")).collect();
        let mut expected = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let mut values = row(i as i64, text);
            // NULLs on a diagonal, so every column has some and most rows have one.
            let n = values.len();
            if let Some(v) = values.get_mut(i % (n + 3)) {
                *v = Value::Null;
            }
            buffer.push_row(&values).unwrap();
            expected.push(values);
        }
        assert_eq!(buffer.rows(), 200);
        let batch = buffer.take_batch().unwrap();
        assert!(buffer.is_empty());
        for (r, values) in expected.iter().enumerate() {
            for (c, v) in values.iter().enumerate() {
                let got = value_at(batch.column(c), schema.columns[c].ty, r);
                match (v, &got) {
                    (Value::Float32(a), Value::Float32(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                    _ => assert_eq!(&got, v, "row {r} column {c}"),
                }
            }
        }
    }

    #[test]
    fn a_row_that_does_not_match_leaves_no_trace() {
        let schema = TableSchema::new([("a", ColumnType::Int64), ("s", ColumnType::Text)]);
        let mut buffer = RowBuffer::new(schema.clone());
        buffer.push_word(1);
        buffer.push_bytes(b"one");
        buffer.end_row().unwrap();
        // Wrong kind, a NULL on the way.
        buffer.push_null();
        buffer.push_word(5);
        assert!(buffer.end_row().is_err());
        // Too few values.
        buffer.push_word(7);
        assert!(buffer.end_row().is_err());
        // Too many.
        buffer.push_word(8);
        buffer.push_bytes(b"x");
        buffer.push_word(9);
        assert!(buffer.end_row().is_err());
        buffer.push_word(2);
        buffer.push_bytes(b"two");
        buffer.end_row().unwrap();
        let batch = buffer.take_batch().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).null_count(), 0);
        assert_eq!(
            value_at(batch.column(1), ColumnType::Text, 1),
            Value::Text("two")
        );
    }

    #[test]
    fn bad_values_are_errors_at_conversion_not_panics() {
        let schema = TableSchema::new([("s", ColumnType::Text)]);
        let mut buffer = RowBuffer::new(schema.clone());
        buffer.push_bytes(&[0xff, 0xfe]);
        buffer.end_row().unwrap();
        buffer.push_bytes(b"fine");
        buffer.end_row().unwrap();
        // Text that is not UTF-8 is kept, byte for byte: the column becomes bytes.
        let batch = buffer.take_batch().unwrap();
        assert_eq!(
            value_at(batch.column(0), ColumnType::Text, 0),
            Value::Bytes(&[0xff, 0xfe])
        );
        assert_eq!(
            value_at(batch.column(0), ColumnType::Text, 1),
            Value::Bytes(b"fine")
        );

        let schema = TableSchema::new([("n", ColumnType::Numeric { scale: 0 })]);
        let mut buffer = RowBuffer::new(schema.clone());
        buffer.push_bytes(&[1]);
        buffer.end_row().unwrap();
        assert!(buffer.take_batch().is_err(), "a truncated numeric");

        let schema = TableSchema::new([("u", ColumnType::Uuid)]);
        let mut buffer = RowBuffer::new(schema.clone());
        buffer.push_bytes(&[1; 15]);
        buffer.end_row().unwrap();
        assert!(buffer.take_batch().is_err(), "a 15-byte uuid");
    }
}
