//! Hash key filters: a hash join's inner keys, as the 32-bit hash values PostgreSQL's
//! hash join computed for them, in a Bloom filter the scan of the join's outer side
//! tests its key columns against — so the rows no inner row can match are dropped in the
//! scan, before their other columns are decoded or turned into tuples (TPC-H Q8 and Q17
//! probe all 6M `lineitem` rows against a few thousand `part` rows).
//!
//! The scan's hash of a row must equal the join's, bit for bit: a row whose hash differs
//! from every inner row's cannot match, and only such rows are dropped (a Bloom filter
//! never says "absent" of a value it holds). So this module computes exactly what
//! PostgreSQL's `hashint2`, `hashint4` and `hashint8` compute (`hash_bytes_uint32`, the
//! Jenkins final mix) and combines several keys as its hash join does (rotate left by
//! one, then XOR). A NULL key never matches under a strict equality, so its row goes too.
//!
//! The filter turns itself off when it keeps nearly every row it tests: then it only
//! costs time.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use arrow_buffer::BooleanBuffer;

use crate::columnar::types::{date_from_arrow, ColumnType};
use crate::error::{Error, Result};

/// PostgreSQL's `hash_bytes_uint32`.
pub fn hash_uint32(k: u32) -> u32 {
    let init = 0x9e37_79b9u32
        .wrapping_add(std::mem::size_of::<u32>() as u32)
        .wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init.wrapping_add(k), init, init);
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// PostgreSQL's `hashint4` (and `hashint2`, which hashes its value as an int4).
pub fn hash_int4(v: i32) -> u32 {
    hash_uint32(v as u32)
}

/// PostgreSQL's `hashint8`: equal to `hashint4` of the same value where it fits, so
/// cross-type joins hash alike.
pub fn hash_int8(v: i64) -> u32 {
    let hi = (v >> 32) as u32;
    let lo = v as u32 ^ if v >= 0 { hi } else { !hi };
    hash_uint32(lo)
}

/// How the join hashes a key column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHash {
    /// `hashint2` / `hashint4` (also `date`'s hash): the value as an int4.
    Int4,
    /// `hashint8`.
    Int8,
}

impl KeyHash {
    /// The hash of a column of type `ty` whose join hashes it with `hashint2` or
    /// `hashint4` (`int8: false`) or `hashint8` (`int8: true`); `None` for a column
    /// stored in a way this module does not hash.
    pub fn for_column(ty: ColumnType, int8: bool) -> Option<KeyHash> {
        match (ty, int8) {
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Date, false) => {
                Some(KeyHash::Int4)
            }
            (ColumnType::Int64, true) => Some(KeyHash::Int8),
            _ => None,
        }
    }
}

/// Rows a filter tests before it judges whether it pays.
const TRIAL_ROWS: u64 = 1 << 16;

/// Above this share of rows kept the filter stops testing.
const USELESS_PASS_RATE: f64 = 0.8;

/// Bits per inner hash value: with two bits set in one 64-bit word each, about 2% of the
/// rows that match nothing still pass.
const BITS_PER_KEY: usize = 16;

/// At most 2^26 bits (8 MiB): beyond, rows pass more often, never wrongly dropped.
const MAX_LOG2_BITS: u32 = 26;

/// A hash join's inner hash values, and the table columns (with their hashes) whose
/// combined hash a row's must be one of.
#[derive(Debug, Clone)]
pub struct JoinFilter {
    keys: Vec<(usize, ColumnType, KeyHash)>,
    words: Vec<u64>,
    /// log2 of the number of words.
    log2_words: u32,
    inner_rows: usize,
    tested: u64,
    passed: u64,
    off: bool,
}

impl JoinFilter {
    /// A filter of `hashes` (the inner rows' hash values) over table columns `keys`,
    /// each with its type and how the join hashes it.
    pub fn new(keys: Vec<(usize, ColumnType, KeyHash)>, hashes: &[u32]) -> JoinFilter {
        let bits = (hashes.len() * BITS_PER_KEY).next_power_of_two().max(64);
        let log2_words = (bits.trailing_zeros() - 6).min(MAX_LOG2_BITS - 6);
        let mut f = JoinFilter {
            keys,
            words: vec![0; 1 << log2_words],
            log2_words,
            inner_rows: hashes.len(),
            tested: 0,
            passed: 0,
            off: false,
        };
        for &h in hashes {
            let (w, bits) = f.slot(h);
            f.words[w] |= bits;
        }
        f
    }

    /// The word of hash `h` and its two bits there.
    #[inline]
    fn slot(&self, h: u32) -> (usize, u64) {
        // The join's hash is already well mixed; a multiply spreads it over 64 bits.
        let x = u64::from(h).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let w = if self.log2_words == 0 {
            0
        } else {
            (x >> (64 - self.log2_words)) as usize
        };
        (w, (1u64 << (x & 63)) | (1u64 << ((x >> 6) & 63)))
    }

    #[inline]
    fn may_hold(&self, h: u32) -> bool {
        let (w, bits) = self.slot(h);
        self.words[w] & bits == bits
    }

    /// The table columns the filter reads.
    pub fn columns(&self) -> Vec<usize> {
        self.keys.iter().map(|k| k.0).collect()
    }

    /// Whether the filter still tests rows (it stops once it proves useless).
    pub fn active(&self) -> bool {
        !self.off
    }

    pub fn inner_rows(&self) -> usize {
        self.inner_rows
    }

    /// Rows tested and rows kept so far.
    pub fn tested(&self) -> (u64, u64) {
        (self.tested, self.passed)
    }

    /// Which of the rows of `arrays` (the key columns' arrays, in the order of
    /// [`JoinFilter::columns`]) may match an inner row.
    pub fn eval(&mut self, arrays: &[&ArrayRef]) -> Result<BooleanBuffer> {
        let rows = arrays.first().map_or(0, |a| a.len());
        let mut hashes = vec![0u32; rows];
        let mut valid: Option<BooleanBuffer> = None;
        for (k, (&(_, ty, hash), array)) in self.keys.iter().zip(arrays).enumerate() {
            if array.len() != rows {
                return Err(Error::Internal(
                    "hash key columns of unequal lengths".into(),
                ));
            }
            let first = k == 0;
            match (ty, hash) {
                (ColumnType::Int16, KeyHash::Int4) => {
                    let v = array.as_primitive::<Int16Type>().values();
                    combine(&mut hashes, first, v, |x| hash_int4(i32::from(x)));
                }
                (ColumnType::Int32, KeyHash::Int4) => {
                    let v = array.as_primitive::<Int32Type>().values();
                    combine(&mut hashes, first, v, hash_int4);
                }
                (ColumnType::Date, KeyHash::Int4) => {
                    let v = array.as_primitive::<Date32Type>().values();
                    combine(&mut hashes, first, v, |x| hash_int4(date_from_arrow(x)));
                }
                (ColumnType::Int64, KeyHash::Int8) => {
                    let v = array.as_primitive::<Int64Type>().values();
                    combine(&mut hashes, first, v, hash_int8);
                }
                _ => {
                    return Err(Error::Internal(format!(
                        "a hash key filter over a {ty:?} column hashed as {hash:?}"
                    )))
                }
            }
            if let Some(n) = array.logical_nulls() {
                valid = Some(match valid {
                    Some(v) => &v & n.inner(),
                    None => n.inner().clone(),
                });
            }
        }
        let mut out = BooleanBuffer::collect_bool(rows, |r| self.may_hold(hashes[r]));
        if let Some(v) = valid {
            out = &out & &v;
        }
        self.tested += rows as u64;
        self.passed += out.count_set_bits() as u64;
        if self.tested >= TRIAL_ROWS && self.passed as f64 > self.tested as f64 * USELESS_PASS_RATE
        {
            self.off = true;
        }
        Ok(out)
    }
}

/// Each row's hash of `values` into `hashes`: as it is for the first key, else combined
/// with the keys' before as PostgreSQL's hash join combines them.
fn combine<T: Copy>(hashes: &mut [u32], first: bool, values: &[T], hash: impl Fn(T) -> u32) {
    if first {
        for (slot, &v) in hashes.iter_mut().zip(values) {
            *slot = hash(v);
        }
    } else {
        for (slot, &v) in hashes.iter_mut().zip(values) {
            *slot = slot.rotate_left(1) ^ hash(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, Int64Array};
    use std::sync::Arc;

    #[test]
    fn hashes_are_postgres_values() {
        // SELECT hashint4(v), hashint8(v) on PostgreSQL (as unsigned).
        assert_eq!(hash_int4(0), (-272_711_505i32) as u32);
        assert_eq!(hash_int4(1), (-1_905_060_026i32) as u32);
        assert_eq!(hash_int4(-5), 1_412_886_042);
        assert_eq!(hash_int8(1), hash_int4(1));
        assert_eq!(hash_int8(-1), 385_747_274);
        assert_eq!(hash_int8(1 << 32), hash_int4(1));
        assert_eq!(hash_int8(i64::MIN), (-96_758_253i32) as u32);
    }

    #[test]
    fn filter_keeps_every_inner_key_and_drops_most_others() {
        let inner: Vec<i64> = (0..1000).map(|i| i * 7919).collect();
        let hashes: Vec<u32> = inner.iter().map(|&v| hash_int8(v)).collect();
        let mut f = JoinFilter::new(vec![(3, ColumnType::Int64, KeyHash::Int8)], &hashes);
        let probe: ArrayRef = Arc::new(Int64Array::from_iter((0..20_000i64).map(|v| {
            if v % 20 == 0 {
                None
            } else {
                Some(v)
            }
        })));
        let kept = f.eval(&[&probe]).unwrap();
        for v in 0..20_000i64 {
            let member = v % 7919 == 0 && v / 7919 < 1000 && v % 20 != 0;
            if member {
                assert!(kept.value(v as usize), "inner key {v} dropped");
            }
            if v % 20 == 0 {
                assert!(!kept.value(v as usize), "a NULL key kept");
            }
        }
        let false_positives = kept.count_set_bits() - 3;
        assert!(
            false_positives < 20_000 / 20,
            "{false_positives} kept of 20000"
        );
        assert!(f.active());
    }

    #[test]
    fn two_keys_combine_as_the_hash_join_does() {
        let (a, b) = (17i32, 40i64);
        let combined = hash_int4(a).rotate_left(1) ^ hash_int8(b);
        let mut f = JoinFilter::new(
            vec![
                (0, ColumnType::Int32, KeyHash::Int4),
                (1, ColumnType::Int64, KeyHash::Int8),
            ],
            &[combined],
        );
        let x: ArrayRef = Arc::new(Int32Array::from(vec![17, 40, 17]));
        let y: ArrayRef = Arc::new(Int64Array::from(vec![40, 17, 41]));
        let kept = f.eval(&[&x, &y]).unwrap();
        assert!(kept.value(0));
        assert!(
            !kept.value(1) || !kept.value(2),
            "both non-matching rows kept"
        );
    }

    #[test]
    fn a_filter_that_keeps_nearly_everything_turns_off() {
        let hashes: Vec<u32> = (0..100_000).map(hash_int4).collect();
        let mut f = JoinFilter::new(vec![(0, ColumnType::Int32, KeyHash::Int4)], &hashes);
        let probe: ArrayRef = Arc::new(Int32Array::from_iter_values(0..(TRIAL_ROWS as i32)));
        assert_eq!(
            f.eval(&[&probe]).unwrap().count_set_bits(),
            TRIAL_ROWS as usize
        );
        assert!(!f.active());
    }
}
