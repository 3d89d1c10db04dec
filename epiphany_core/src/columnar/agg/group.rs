//! GROUP BY keys: each row's key columns as one byte string, hashed into dense group
//! numbers. Keys are compared byte for byte, so the planner only groups by types whose
//! equality is byte equality (integers, dates, timestamps, numerics of one scale, text
//! under deterministic collations, `char(n)` of a fixed length, bool, uuid).

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use rustc_hash::FxHashMap;

use crate::columnar::types::{date_from_arrow, ColumnType, Value};
use crate::error::{Error, Result};

/// The groups met so far and their keys.
#[derive(Debug, Default)]
pub struct Groups {
    /// Key columns: the table column and its type.
    columns: Vec<(usize, ColumnType)>,
    map: FxHashMap<Box<[u8]>, u32>,
    keys: Vec<Box<[u8]>>,
    /// Reused per batch: the rows' keys, end to end, and where each ends.
    flat: Vec<u8>,
    ends: Vec<usize>,
}

fn width(ty: ColumnType) -> Option<usize> {
    Some(match ty {
        ColumnType::Bool => 1,
        ColumnType::Int16 => 2,
        ColumnType::Int32 | ColumnType::Date | ColumnType::Float32 => 4,
        ColumnType::Int64
        | ColumnType::Numeric { .. }
        | ColumnType::Time
        | ColumnType::Timestamp
        | ColumnType::TimestampTz
        | ColumnType::Float64 => 8,
        ColumnType::Uuid => 16,
        ColumnType::Text | ColumnType::Bytes | ColumnType::Opaque => return None,
    })
}

/// The bytes of a variable-length column's value at `row`.
fn var_bytes(array: &ArrayRef, row: usize) -> &[u8] {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).as_bytes(),
        _ => array.as_binary::<i32>().value(row),
    }
}

/// The fixed-width little-endian bytes of the value at `row`.
fn fixed_bytes(array: &ArrayRef, ty: ColumnType, row: usize, out: &mut [u8]) {
    match ty {
        ColumnType::Bool => out[0] = u8::from(array.as_boolean().value(row)),
        ColumnType::Int16 => {
            out.copy_from_slice(&array.as_primitive::<Int16Type>().value(row).to_le_bytes())
        }
        ColumnType::Int32 => {
            out.copy_from_slice(&array.as_primitive::<Int32Type>().value(row).to_le_bytes())
        }
        ColumnType::Date => {
            out.copy_from_slice(&array.as_primitive::<Date32Type>().value(row).to_le_bytes())
        }
        ColumnType::Time => out.copy_from_slice(
            &array
                .as_primitive::<Time64MicrosecondType>()
                .value(row)
                .to_le_bytes(),
        ),
        ColumnType::Float32 => out.copy_from_slice(
            &array
                .as_primitive::<arrow_array::types::Float32Type>()
                .value(row)
                .to_le_bytes(),
        ),
        ColumnType::Float64 => out.copy_from_slice(
            &array
                .as_primitive::<arrow_array::types::Float64Type>()
                .value(row)
                .to_le_bytes(),
        ),
        ColumnType::Uuid => out.copy_from_slice(array.as_fixed_size_binary().value(row)),
        _ => out.copy_from_slice(&array.as_primitive::<Int64Type>().value(row).to_le_bytes()),
    }
}

impl Groups {
    pub fn new(columns: Vec<(usize, ColumnType)>) -> Groups {
        Groups {
            columns,
            ..Groups::default()
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.keys.clear();
    }

    /// The group of every row of `batch`, new groups numbered as they appear.
    pub fn assign(
        &mut self,
        batch: &RecordBatch,
        at: &impl Fn(usize) -> Option<usize>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let arrays: Vec<(&ArrayRef, ColumnType)> = self
            .columns
            .iter()
            .map(|&(c, ty)| {
                at(c).map(|k| (batch.column(k), ty)).ok_or_else(|| {
                    Error::Internal(format!("a GROUP BY key reads column {c}, not decoded"))
                })
            })
            .collect::<Result<_>>()?;
        // Each row's key length, then the keys written column by column.
        self.ends.clear();
        self.ends.resize(rows, 0);
        for (array, ty) in &arrays {
            let nulls = array.logical_nulls();
            for (r, end) in self.ends.iter_mut().enumerate() {
                *end += 1;
                if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
                    continue;
                }
                *end += match width(*ty) {
                    Some(w) => w,
                    None => 4 + var_bytes(array, r).len(),
                };
            }
        }
        let mut total = 0;
        for end in &mut self.ends {
            total += *end;
            *end = total;
        }
        self.flat.clear();
        self.flat.resize(total, 0);
        let mut cursor: Vec<usize> = std::iter::once(0)
            .chain(self.ends[..rows.saturating_sub(1)].iter().copied())
            .collect();
        for (array, ty) in &arrays {
            let nulls = array.logical_nulls();
            for (r, pos) in cursor.iter_mut().enumerate() {
                if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
                    self.flat[*pos] = 0;
                    *pos += 1;
                    continue;
                }
                self.flat[*pos] = 1;
                *pos += 1;
                match width(*ty) {
                    Some(w) => {
                        fixed_bytes(array, *ty, r, &mut self.flat[*pos..*pos + w]);
                        *pos += w;
                    }
                    None => {
                        let b = var_bytes(array, r);
                        self.flat[*pos..*pos + 4].copy_from_slice(&(b.len() as u32).to_le_bytes());
                        self.flat[*pos + 4..*pos + 4 + b.len()].copy_from_slice(b);
                        *pos += 4 + b.len();
                    }
                }
            }
        }
        out.clear();
        out.reserve(rows);
        let mut start = 0;
        for &end in &self.ends {
            let key = &self.flat[start..end];
            start = end;
            let g = match self.map.get(key) {
                Some(&g) => g,
                None => {
                    let g = u32::try_from(self.keys.len())
                        .map_err(|_| Error::Limit("more than 4 billion groups".into()))?;
                    self.map.insert(key.into(), g);
                    self.keys.push(key.into());
                    g
                }
            };
            out.push(g);
        }
        Ok(())
    }

    /// The key of group `g`, in Postgres's units.
    pub fn key(&self, g: usize) -> Result<Vec<Value<'_>>> {
        let mut bytes: &[u8] = &self.keys[g];
        let corrupt = || Error::Internal("a group key does not decode".into());
        let mut out = Vec::with_capacity(self.columns.len());
        for &(_, ty) in &self.columns {
            let (&tag, rest) = bytes.split_first().ok_or_else(corrupt)?;
            bytes = rest;
            if tag == 0 {
                out.push(Value::Null);
                continue;
            }
            let (n, value) = match width(ty) {
                Some(w) => {
                    let b = bytes.get(..w).ok_or_else(corrupt)?;
                    let mut word = [0u8; 8];
                    word[..w.min(8)].copy_from_slice(&b[..w.min(8)]);
                    let i = i64::from_le_bytes(word);
                    let v = match ty {
                        ColumnType::Bool => Value::Bool(b[0] != 0),
                        ColumnType::Int16 => Value::Int16(i as i16),
                        ColumnType::Int32 => Value::Int32(i as i32),
                        ColumnType::Date => Value::Date(date_from_arrow(i as i32)),
                        ColumnType::Time => Value::Time(i),
                        ColumnType::Timestamp | ColumnType::TimestampTz => Value::Timestamp(i),
                        ColumnType::Float32 => Value::Float32(f32::from_bits(i as u32)),
                        ColumnType::Float64 => Value::Float64(f64::from_bits(i as u64)),
                        ColumnType::Uuid => Value::Uuid(b.try_into().map_err(|_| corrupt())?),
                        _ => Value::Int64(i),
                    };
                    (w, v)
                }
                None => {
                    let len = u32::from_le_bytes(
                        bytes
                            .get(..4)
                            .ok_or_else(corrupt)?
                            .try_into()
                            .map_err(|_| corrupt())?,
                    ) as usize;
                    let b = bytes.get(4..4 + len).ok_or_else(corrupt)?;
                    let v = match (ty, std::str::from_utf8(b)) {
                        (ColumnType::Text, Ok(s)) => Value::Text(s),
                        _ => Value::Bytes(b),
                    };
                    (4 + len, v)
                }
            };
            bytes = &bytes[n..];
            out.push(value);
        }
        Ok(out)
    }
}
