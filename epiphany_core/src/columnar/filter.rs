//! Filtering decoded rows with the pruning predicates before they become Postgres rows.
//!
//! Where a predicate's comparison here is exactly Postgres's (integers, dates, times,
//! timestamps, scaled numerics, byte strings under byte-ordered collations), rows that
//! fail it are dropped on Arrow arrays, before the costly conversion to datums. Floats are
//! left alone (NaN ordering differs). Postgres still evaluates every qual on the rows
//! kept, so this only saves work.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};

use crate::columnar::prune::{Op, Predicate, Scalar};
use crate::columnar::types::{date_from_arrow, ColumnType};
use crate::error::{Error, Result};

/// The row's value as an integer in Postgres's units, for the integer-like types.
fn int_at(array: &ArrayRef, ty: ColumnType, i: usize) -> Option<i64> {
    Some(match ty {
        ColumnType::Bool => array.as_boolean().value(i) as i64,
        ColumnType::Int16 => array.as_primitive::<Int16Type>().value(i) as i64,
        ColumnType::Int32 => array.as_primitive::<Int32Type>().value(i) as i64,
        ColumnType::Int64
        | ColumnType::Numeric { .. }
        | ColumnType::Timestamp
        | ColumnType::TimestampTz => array.as_primitive::<Int64Type>().value(i),
        ColumnType::Date => date_from_arrow(array.as_primitive::<Date32Type>().value(i)) as i64,
        ColumnType::Time => array.as_primitive::<Time64MicrosecondType>().value(i),
        _ => return None,
    })
}

fn bytes_at(array: &ArrayRef, ty: ColumnType, i: usize) -> Option<&[u8]> {
    Some(match ty {
        ColumnType::Text => array.as_string::<i32>().value(i).as_bytes(),
        ColumnType::Bytes => array.as_binary::<i32>().value(i),
        ColumnType::Uuid => array.as_fixed_size_binary().value(i),
        _ => return None,
    })
}

fn exact(ty: ColumnType) -> bool {
    !matches!(
        ty,
        ColumnType::Float32 | ColumnType::Float64 | ColumnType::Opaque
    )
}

fn compare(
    array: &ArrayRef,
    ty: ColumnType,
    i: usize,
    value: &Scalar,
) -> Option<std::cmp::Ordering> {
    match value {
        Scalar::Int(v) => int_at(array, ty, i).map(|x| x.cmp(v)),
        Scalar::Bytes(v) => bytes_at(array, ty, i).map(|x| x.cmp(v.as_slice())),
        Scalar::Float(_) => None,
    }
}

/// Whether row `i` may satisfy `pred` (false only when it certainly does not).
fn may_pass(array: &ArrayRef, ty: ColumnType, i: usize, pred: &Predicate) -> bool {
    use std::cmp::Ordering::*;
    let null = array.is_null(i);
    match pred {
        Predicate::IsNull { .. } => null,
        Predicate::IsNotNull { .. } => !null,
        _ if null => false,
        Predicate::Compare { op, value, .. } => match compare(array, ty, i, value) {
            None => true,
            Some(o) => match op {
                Op::Eq => o == Equal,
                Op::Lt => o == Less,
                Op::Le => o != Greater,
                Op::Gt => o == Greater,
                Op::Ge => o != Less,
            },
        },
        Predicate::In { values, .. } => {
            let mut unknown = false;
            for v in values {
                match compare(array, ty, i, v) {
                    Some(std::cmp::Ordering::Equal) => return true,
                    Some(_) => {}
                    None => unknown = true,
                }
            }
            unknown
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
    let usable: Vec<&(usize, &Predicate)> = preds
        .iter()
        .filter(|(c, p)| {
            types.get(*c).is_some_and(|&t| {
                exact(t) || matches!(p, Predicate::IsNull { .. } | Predicate::IsNotNull { .. })
            })
        })
        .collect();
    if usable.is_empty() {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let mask: BooleanArray = (0..rows)
        .map(|i| {
            Some(
                usable
                    .iter()
                    .all(|(c, p)| may_pass(batch.column(*c), types[*c], i, p)),
            )
        })
        .collect();
    if mask.true_count() == rows {
        return Ok(batch.clone());
    }
    arrow_select::filter::filter_record_batch(batch, &mask)
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
        (b.take_batch(), types)
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
