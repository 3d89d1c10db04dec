//! Filtering decoded rows with the pruning predicates before they become Postgres rows.
//!
//! Where a predicate's comparison here is exactly Postgres's (integers, dates, times,
//! timestamps, scaled numerics, byte strings under byte-ordered collations), rows that
//! fail it are dropped on Arrow arrays, before the costly conversion to datums. Floats are
//! left alone (NaN ordering differs). Postgres still evaluates every qual on the rows
//! kept, so this only saves work.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_buffer::BooleanBuffer;

use crate::columnar::prune::{Op, Predicate, Scalar};
use crate::columnar::types::{date_to_arrow, ColumnType};
use crate::error::{Error, Result};

fn exact(ty: ColumnType) -> bool {
    !matches!(
        ty,
        ColumnType::Float32 | ColumnType::Float64 | ColumnType::Opaque
    )
}

/// The constant as a one-value array of the column's Arrow type; `None` when it has no
/// such value (out of range), and then the predicate is not used here.
fn scalar_array(ty: ColumnType, value: &Scalar) -> Option<ArrayRef> {
    use arrow_array::{
        BinaryArray, Date32Array, FixedSizeBinaryArray, Int16Array, Int32Array, Int64Array,
        StringArray, Time64MicrosecondArray,
    };
    Some(match (ty, value) {
        (ColumnType::Bool, Scalar::Int(v)) => Arc::new(BooleanArray::from(vec![*v != 0])),
        (ColumnType::Int16, Scalar::Int(v)) => {
            Arc::new(Int16Array::from(vec![i16::try_from(*v).ok()?]))
        }
        (ColumnType::Int32, Scalar::Int(v)) => {
            Arc::new(Int32Array::from(vec![i32::try_from(*v).ok()?]))
        }
        (
            ColumnType::Int64
            | ColumnType::Numeric { .. }
            | ColumnType::Timestamp
            | ColumnType::TimestampTz,
            Scalar::Int(v),
        ) => Arc::new(Int64Array::from(vec![*v])),
        (ColumnType::Date, Scalar::Int(v)) => Arc::new(Date32Array::from(vec![date_to_arrow(
            i32::try_from(*v).ok()?,
        )])),
        (ColumnType::Time, Scalar::Int(v)) => Arc::new(Time64MicrosecondArray::from(vec![*v])),
        (ColumnType::Text, Scalar::Bytes(b)) => {
            Arc::new(StringArray::from(vec![std::str::from_utf8(b).ok()?]))
        }
        (ColumnType::Bytes, Scalar::Bytes(b)) => Arc::new(BinaryArray::from(vec![b.as_slice()])),
        (ColumnType::Uuid, Scalar::Bytes(b)) => {
            Arc::new(FixedSizeBinaryArray::try_from_iter(std::iter::once(b.as_slice())).ok()?)
        }
        _ => return None,
    })
}

/// Rows that may satisfy `op value` (false for NULLs); `None` when not decidable here.
fn compare_mask(array: &ArrayRef, ty: ColumnType, op: Op, value: &Scalar) -> Option<BooleanBuffer> {
    use arrow_ord::cmp;
    let scalar = arrow_array::Scalar::new(scalar_array(ty, value)?);
    let result = match op {
        Op::Eq => cmp::eq(array, &scalar),
        Op::Lt => cmp::lt(array, &scalar),
        Op::Le => cmp::lt_eq(array, &scalar),
        Op::Gt => cmp::gt(array, &scalar),
        Op::Ge => cmp::gt_eq(array, &scalar),
    }
    .ok()?;
    // NULL compares as unknown: not a match.
    Some(match result.nulls() {
        Some(nulls) => result.values() & nulls.inner(),
        None => result.values().clone(),
    })
}

fn mask(array: &ArrayRef, ty: ColumnType, pred: &Predicate) -> Option<BooleanBuffer> {
    let valid = || match array.logical_nulls() {
        Some(n) => n.inner().clone(),
        None => BooleanBuffer::new_set(array.len()),
    };
    match pred {
        Predicate::IsNull { .. } => Some(!&valid()),
        Predicate::IsNotNull { .. } => Some(valid()),
        _ if !exact(ty) => None,
        Predicate::Compare { op, value, .. } => compare_mask(array, ty, *op, value),
        Predicate::In { values, .. } => {
            let mut any = BooleanBuffer::new_unset(array.len());
            for v in values {
                any = &any | &compare_mask(array, ty, Op::Eq, v)?;
            }
            Some(any)
        }
    }
}

/// Keeps the rows of `batch` that may satisfy every predicate. `preds` pairs a batch
/// column with a predicate on it; `types` gives each batch column's type.
pub fn filter_batch(
    batch: &RecordBatch,
    types: &[ColumnType],
    preds: &[(usize, &Predicate)],
) -> Result<RecordBatch> {
    let mut keep: Option<BooleanBuffer> = None;
    for (c, p) in preds {
        let Some(&ty) = types.get(*c) else { continue };
        if let Some(m) = mask(batch.column(*c), ty, p) {
            keep = Some(match keep {
                None => m,
                Some(k) => &k & &m,
            });
        }
    }
    let Some(keep) = keep else {
        return Ok(batch.clone());
    };
    if keep.count_set_bits() == batch.num_rows() {
        return Ok(batch.clone());
    }
    arrow_select::filter::filter_record_batch(batch, &BooleanArray::new(keep, None))
        .map_err(|e| Error::Internal(format!("filtering a batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::{RowBuffer, TableSchema, Value};

    fn batch() -> (RecordBatch, Vec<ColumnType>) {
        let schema = TableSchema::new([
            ("n", ColumnType::Numeric { scale: 2 }),
            ("d", ColumnType::Date),
            ("s", ColumnType::Text),
            ("f", ColumnType::Float64),
        ]);
        let mut b = RowBuffer::new(schema.clone());
        for i in 0..100i64 {
            let s = format!("k{}", i % 10);
            let row = [
                if i % 7 == 0 {
                    Value::Null
                } else {
                    Value::Int64(i * 25)
                },
                Value::Date(i as i32 - 50),
                Value::Text(&s),
                Value::Float64(f64::NAN),
            ];
            b.push_row(&row).unwrap();
        }
        let types = schema.columns.iter().map(|c| c.ty).collect();
        (b.take_batch().unwrap(), types)
    }

    #[test]
    fn rows_failing_exact_predicates_are_dropped_and_others_kept() {
        let (batch, types) = batch();
        let lt = Predicate::Compare {
            column: 0,
            op: Op::Lt,
            value: Scalar::Int(600),
        }; // n < 6.00
        let out = filter_batch(&batch, &types, &[(0, &lt)]).unwrap();
        // i in 0..24 with i % 7 != 0: 24 - 4 (0, 7, 14, 21) = 20.
        assert_eq!(out.num_rows(), 20);
        let ge = Predicate::Compare {
            column: 1,
            op: Op::Ge,
            value: Scalar::Int(40),
        }; // d >= 40
        let isin = Predicate::In {
            column: 2,
            values: vec![Scalar::Bytes(b"k3".to_vec()), Scalar::Bytes(b"k5".to_vec())],
        };
        let out = filter_batch(&batch, &types, &[(1, &ge), (2, &isin)]).unwrap();
        // i in 90..100 with i % 10 in {3, 5}: 93, 95.
        assert_eq!(out.num_rows(), 2);
        let null = Predicate::IsNull { column: 0 };
        assert_eq!(
            filter_batch(&batch, &types, &[(0, &null)])
                .unwrap()
                .num_rows(),
            15
        );
        // Floats are never filtered here (NaN orders differently in Postgres).
        let f = Predicate::Compare {
            column: 3,
            op: Op::Lt,
            value: Scalar::Float(0.0),
        };
        assert_eq!(
            filter_batch(&batch, &types, &[(3, &f)]).unwrap().num_rows(),
            100
        );
    }
}
