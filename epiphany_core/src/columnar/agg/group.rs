//! GROUP BY keys: each row's key columns as one byte string, hashed into dense group
//! numbers. Keys are compared byte for byte, so the planner only groups by types whose
//! equality is byte equality (integers, dates, timestamps, numerics of one scale, text
//! under deterministic collations, `char(n)` of a fixed length, bool, uuid).

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use rustc_hash::FxHashMap;

use crate::columnar::part::plain_array;
use crate::columnar::types::{date_from_arrow, ColumnType, Value};
use crate::error::{Error, Result};

/// Dictionary-coded keys are grouped through a table of their code combinations while
/// it stays this small (and no larger than the batch).
const MAX_CODE_COMBINATIONS: usize = 1 << 16;

/// The groups met so far and their keys.
#[derive(Debug, Default)]
pub struct Groups {
    /// Key columns: the table column and its type.
    columns: Vec<(usize, ColumnType)>,
    map: FxHashMap<Box<[u8]>, u32>,
    keys: Vec<Box<[u8]>>,
    /// Packed keys (see [`Groups::assign`]) of the layout `packed_layout`.
    packed: FxHashMap<u128, u32>,
    packed_layout: Vec<u8>,
    /// Every key column has a fixed width and all fit 128 bits: the packed key is the
    /// key, and the groups' keys are kept packed (`fixed_keys`), never as bytes.
    fixed: bool,
    fixed_keys: Vec<u128>,
    /// Reused: one row's byte key.
    flat: Vec<u8>,
}

/// One key column of a batch, its type resolved once.
enum KeyColumn<'a> {
    Fixed {
        array: &'a ArrayRef,
        ty: ColumnType,
        width: usize,
        nulls: Option<NullBuffer>,
    },
    Var {
        offsets: &'a [i32],
        values: &'a [u8],
        nulls: Option<NullBuffer>,
    },
}

impl<'a> KeyColumn<'a> {
    fn new(array: &'a ArrayRef, ty: ColumnType) -> KeyColumn<'a> {
        let nulls = array.logical_nulls();
        match width(ty) {
            Some(width) => KeyColumn::Fixed {
                array,
                ty,
                width,
                nulls,
            },
            None => {
                let (offsets, values) = match array.data_type() {
                    DataType::Utf8 => {
                        let a = array.as_string::<i32>();
                        (a.value_offsets(), a.value_data())
                    }
                    _ => {
                        let a = array.as_binary::<i32>();
                        (a.value_offsets(), a.value_data())
                    }
                };
                KeyColumn::Var {
                    offsets,
                    values,
                    nulls,
                }
            }
        }
    }

    fn is_null(&self, r: usize) -> bool {
        let nulls = match self {
            KeyColumn::Fixed { nulls, .. } | KeyColumn::Var { nulls, .. } => nulls,
        };
        nulls.as_ref().is_some_and(|n| n.is_null(r))
    }

    fn bytes(&self, r: usize) -> &[u8] {
        match self {
            KeyColumn::Var {
                offsets, values, ..
            } => &values[offsets[r] as usize..offsets[r + 1] as usize],
            KeyColumn::Fixed { .. } => &[],
        }
    }

    /// Bits of this column's packed key in this batch (a NULL flag, then the value),
    /// or `None` when its values do not fit 64 bits.
    fn packed_bits(&self) -> Option<u8> {
        match self {
            KeyColumn::Fixed { width, .. } if *width <= 15 => Some(1 + 8 * *width as u8),
            KeyColumn::Fixed { .. } => None,
            KeyColumn::Var { offsets, .. } => {
                let longest = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
                (longest <= 14).then(|| 1 + 4 + 8 * longest as u8)
            }
        }
    }

    /// Shifts every row's packed key left by `bits` and adds this column's part: a NULL
    /// flag (1 when not NULL) under the value.
    fn pack_into(&self, keys: &mut [u128], bits: u8) {
        let nulls = match self {
            KeyColumn::Fixed { nulls, .. } | KeyColumn::Var { nulls, .. } => nulls.as_ref(),
        };
        let mut add = |r: usize, part: u128| {
            let key = &mut keys[r];
            *key = (*key << bits) | (part << 1) | 1;
        };
        match self {
            KeyColumn::Var {
                offsets, values, ..
            } => {
                for r in 0..offsets.len() - 1 {
                    let (a, b) = (offsets[r] as usize, offsets[r + 1] as usize);
                    let len = b - a;
                    // Sixteen bytes at once where the buffer has them, masked to the value.
                    let word = match values.get(a..a + 16) {
                        Some(w) => {
                            u128::from_le_bytes(w.try_into().expect("16 bytes"))
                                & ((1u128 << (8 * len)) - 1)
                        }
                        None => {
                            let mut w = [0u8; 16];
                            w[..len].copy_from_slice(&values[a..b]);
                            u128::from_le_bytes(w)
                        }
                    };
                    add(r, (word << 4) | len as u128);
                }
            }
            KeyColumn::Fixed {
                array, ty, width, ..
            } => match ty {
                ColumnType::Int64
                | ColumnType::Numeric { .. }
                | ColumnType::Timestamp
                | ColumnType::TimestampTz => {
                    for (r, &v) in array
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .enumerate()
                    {
                        add(r, u128::from(v as u64));
                    }
                }
                ColumnType::Int32 => {
                    for (r, &v) in array
                        .as_primitive::<Int32Type>()
                        .values()
                        .iter()
                        .enumerate()
                    {
                        add(r, u128::from(v as u32));
                    }
                }
                ColumnType::Date => {
                    for (r, &v) in array
                        .as_primitive::<Date32Type>()
                        .values()
                        .iter()
                        .enumerate()
                    {
                        add(r, u128::from(v as u32));
                    }
                }
                _ => {
                    for r in 0..array.len() {
                        let mut word = [0u8; 16];
                        fixed_bytes(array, *ty, r, &mut word[..*width]);
                        add(r, u128::from_le_bytes(word));
                    }
                }
            },
        }
        // NULLs: the whole part is 0.
        if let Some(n) = nulls.filter(|n| n.null_count() > 0) {
            let low = (1u128 << bits) - 1;
            for (r, key) in keys.iter_mut().enumerate() {
                if n.is_null(r) {
                    *key &= !low;
                }
            }
        }
    }

    /// Row `r`'s byte key: a NULL flag, then the value (strings with their length).
    fn write(&self, r: usize, out: &mut Vec<u8>) {
        if self.is_null(r) {
            out.push(0);
            return;
        }
        out.push(1);
        match self {
            KeyColumn::Fixed {
                array, ty, width, ..
            } => {
                let at = out.len();
                out.resize(at + width, 0);
                fixed_bytes(array, *ty, r, &mut out[at..]);
            }
            KeyColumn::Var { .. } => {
                let v = self.bytes(r);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }
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
        let bits: Option<Vec<u8>> = columns
            .iter()
            .map(|&(_, ty)| width(ty).filter(|&w| w <= 15).map(|w| 1 + 8 * w as u8))
            .collect();
        let fixed = bits
            .as_ref()
            .is_some_and(|b| b.iter().map(|&b| u32::from(b)).sum::<u32>() <= 128);
        Groups {
            columns,
            fixed,
            packed_layout: if fixed {
                bits.unwrap_or_default()
            } else {
                Vec::new()
            },
            ..Groups::default()
        }
    }

    /// The key columns' table columns.
    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().map(|&(c, _)| c)
    }

    pub fn len(&self) -> usize {
        if self.fixed {
            self.fixed_keys.len()
        } else {
            self.keys.len()
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.keys.clear();
        self.packed.clear();
        self.fixed_keys.clear();
    }

    /// The group of every row of `batch`, new groups numbered as they appear.
    ///
    /// Keys that fit 64 bits in this batch (fixed-width values of up to 8 bytes, strings
    /// of up to 7) are packed into one integer per row and looked up in a map of packed
    /// keys first; only a row whose packed key is new builds its byte key.
    ///
    /// Key columns that arrive dictionary-coded (text a part stores so) are grouped by
    /// their codes: each distinct combination of codes in the batch is looked up once.
    pub fn assign(
        &mut self,
        batch: &RecordBatch,
        at: &impl Fn(usize) -> Option<usize>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let mut arrays = Vec::with_capacity(self.columns.len());
        for &(c, _) in &self.columns {
            let k = at(c).ok_or_else(|| {
                Error::Internal(format!("a GROUP BY key reads column {c}, not decoded"))
            })?;
            arrays.push(batch.column(k).clone());
        }
        if self.assign_coded(&arrays, out)? {
            return Ok(());
        }
        let plain = arrays
            .into_iter()
            .map(plain_array)
            .collect::<Result<Vec<_>>>()?;
        self.assign_plain(&plain, batch.num_rows(), out)
    }

    /// [`Groups::assign`] for key columns that are all dictionary arrays with few enough
    /// combinations of codes; `false`, with nothing done, for others.
    fn assign_coded(&mut self, arrays: &[ArrayRef], out: &mut Vec<u32>) -> Result<bool> {
        let mut coded = Vec::with_capacity(arrays.len());
        let mut combinations = 1usize;
        for a in arrays {
            let Some(d) = a.as_dictionary_opt::<Int32Type>() else {
                return Ok(false);
            };
            // One more code per column for NULL.
            combinations = combinations.saturating_mul(d.values().len() + 1);
            coded.push(d);
        }
        let rows = arrays.first().map_or(0, |a| a.len());
        if combinations > MAX_CODE_COMBINATIONS || combinations > rows.max(64) {
            return Ok(false);
        }
        // Each row's combination, column by column.
        let mut codes = vec![0u32; rows];
        for d in &coded {
            let width = d.values().len() as u32 + 1;
            let null = width - 1;
            let keys = d.keys();
            for (code, &k) in codes.iter_mut().zip(keys.values().iter()) {
                // A NULL's key is anything: wrapping, and replaced below.
                *code = code.wrapping_mul(width).wrapping_add(k as u32);
            }
            if let Some(n) = keys.logical_nulls().filter(|n| n.null_count() > 0) {
                for r in (0..rows).filter(|&r| n.is_null(r)) {
                    codes[r] = codes[r]
                        .wrapping_sub(keys.values()[r] as u32)
                        .wrapping_add(null);
                }
            }
        }
        // The combinations met, in order, and one row of each.
        let mut first = vec![u32::MAX; combinations];
        let mut rows_of: Vec<u32> = Vec::new();
        for (r, &c) in codes.iter().enumerate() {
            let slot = first
                .get_mut(c as usize)
                .ok_or_else(|| Error::Corrupted("a dictionary key beyond its dictionary".into()))?;
            if *slot == u32::MAX {
                *slot = rows_of.len() as u32;
                rows_of.push(r as u32);
            }
        }
        // Their groups, found by the plain path over their values.
        let picks = arrow_array::UInt32Array::from(rows_of);
        let mut values = Vec::with_capacity(coded.len());
        for a in arrays {
            let taken = arrow_select::take::take(a.as_ref(), &picks, None)
                .map_err(|e| Error::Internal(format!("taking key values: {e}")))?;
            values.push(plain_array(taken)?);
        }
        let mut groups = Vec::new();
        self.assign_plain(&values, picks.len(), &mut groups)?;
        out.clear();
        out.extend(codes.iter().map(|&c| groups[first[c as usize] as usize]));
        Ok(true)
    }

    /// [`Groups::assign`] over plain key arrays of `rows` rows.
    fn assign_plain(&mut self, arrays: &[ArrayRef], rows: usize, out: &mut Vec<u32>) -> Result<()> {
        let cols: Vec<KeyColumn<'_>> = arrays
            .iter()
            .zip(&self.columns)
            .map(|(a, &(_, ty))| KeyColumn::new(a, ty))
            .collect();
        out.clear();
        out.reserve(rows);
        let layout: Option<Vec<u8>> = cols.iter().map(KeyColumn::packed_bits).collect();
        let packs = layout
            .as_ref()
            .is_some_and(|l| l.iter().map(|&b| u32::from(b)).sum::<u32>() <= 128);
        if packs {
            let layout = layout.expect("checked");
            if self.packed_layout != layout {
                debug_assert!(!self.fixed, "a fixed layout never changes");
                self.packed.clear();
                self.packed_layout = layout;
            }
            // Column by column into one packed key per row, then one lookup per row.
            let mut keys = vec![0u128; rows];
            for (c, &bits) in cols.iter().zip(&self.packed_layout) {
                c.pack_into(&mut keys, bits);
            }
            for (r, &key) in keys.iter().enumerate() {
                let g = match self.packed.get(&key) {
                    Some(&g) => g,
                    None => {
                        let g = if self.fixed {
                            let g = u32::try_from(self.fixed_keys.len())
                                .map_err(|_| Error::Limit("more than 4 billion groups".into()))?;
                            self.fixed_keys.push(key);
                            g
                        } else {
                            self.group_of_row(&cols, r)?
                        };
                        self.packed.insert(key, g);
                        g
                    }
                };
                out.push(g);
            }
        } else {
            for r in 0..rows {
                let g = self.group_of_row(&cols, r)?;
                out.push(g);
            }
        }
        Ok(())
    }

    /// The group of row `r` by its byte key (a new group if it is new).
    fn group_of_row(&mut self, cols: &[KeyColumn<'_>], r: usize) -> Result<u32> {
        self.flat.clear();
        for c in cols {
            c.write(r, &mut self.flat);
        }
        if let Some(&g) = self.map.get(&self.flat[..]) {
            return Ok(g);
        }
        let g = u32::try_from(self.keys.len())
            .map_err(|_| Error::Limit("more than 4 billion groups".into()))?;
        let key: Box<[u8]> = self.flat.as_slice().into();
        self.map.insert(key.clone(), g);
        self.keys.push(key);
        Ok(g)
    }

    /// The key of group `g`, in Postgres's units.
    pub fn key(&self, g: usize) -> Result<Vec<Value<'_>>> {
        if self.fixed {
            // Unpacked from the last column's bits up.
            let mut key = self.fixed_keys[g];
            let mut out = vec![Value::Null; self.columns.len()];
            for (i, (&(_, ty), &bits)) in self
                .columns
                .iter()
                .zip(&self.packed_layout)
                .enumerate()
                .rev()
            {
                let part = key & ((1u128 << bits) - 1);
                key = key.checked_shr(u32::from(bits)).unwrap_or(0);
                if part & 1 == 1 {
                    let w = width(ty).expect("fixed width");
                    out[i] = fixed_value(ty, &(part >> 1).to_le_bytes()[..w])?;
                }
            }
            return Ok(out);
        }
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
                Some(w) => (w, fixed_value(ty, bytes.get(..w).ok_or_else(corrupt)?)?),
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

/// A fixed-width key value from its little-endian bytes, in Postgres's units.
fn fixed_value(ty: ColumnType, b: &[u8]) -> Result<Value<'static>> {
    let mut word = [0u8; 8];
    word[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    let i = i64::from_le_bytes(word);
    Ok(match ty {
        ColumnType::Bool => Value::Bool(b[0] != 0),
        ColumnType::Int16 => Value::Int16(i as i16),
        ColumnType::Int32 => Value::Int32(i as i32),
        ColumnType::Date => Value::Date(date_from_arrow(i as i32)),
        ColumnType::Time => Value::Time(i),
        ColumnType::Timestamp | ColumnType::TimestampTz => Value::Timestamp(i),
        ColumnType::Float32 => Value::Float32(f32::from_bits(i as u32)),
        ColumnType::Float64 => Value::Float64(f64::from_bits(i as u64)),
        ColumnType::Uuid => Value::Uuid(
            b.try_into()
                .map_err(|_| Error::Internal("a group key does not decode".into()))?,
        ),
        _ => Value::Int64(i),
    })
}
