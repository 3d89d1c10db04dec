//! The aggregator against a row-at-a-time reference, on generated batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::i256;
use proptest::prelude::*;

use super::*;
use crate::columnar::numeric;
use crate::columnar::types::date_to_arrow;

/// Table columns: 0 g int4, 1 t text, 2 a int4, 3 b int8, 4 n numeric(18,2), 5 d date.
fn batch(rows: &[Row]) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.g).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.t.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.a).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.b).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.n).collect::<Vec<_>>(),
        )),
        Arc::new(Date32Array::from(
            rows.iter()
                .map(|r| r.d.map(date_to_arrow))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_from_iter(["g", "t", "a", "b", "n", "d"].into_iter().zip(cols)).unwrap()
}

#[derive(Debug, Clone)]
struct Row {
    g: Option<i32>,
    t: Option<String>,
    a: Option<i32>,
    b: Option<i64>,
    n: Option<i64>,
    d: Option<i32>,
}

fn row() -> impl Strategy<Value = Row> {
    row_of(-999_999_999_999_999_999i64..=999_999_999_999_999_999)
}

/// Rows whose numerics mostly come from `big`.
fn row_of(big: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.9, 0..4i32),
        proptest::option::weighted(
            0.9,
            prop_oneof![4 => Just("x"), 4 => Just("yy"), 2 => Just(""), 1 => Just("a longer text")],
        ),
        proptest::option::weighted(0.8, any::<i32>()),
        proptest::option::weighted(0.8, any::<i64>()),
        proptest::option::weighted(
            0.8,
            prop_oneof![
                8 => big,
                1 => Just(numeric::NAN),
                1 => -1000i64..1000,
            ],
        ),
        proptest::option::weighted(0.8, -10_000i32..10_000),
    )
        .prop_map(|(g, t, a, b, n, d)| Row {
            g,
            t: t.map(str::to_string),
            a,
            b,
            n,
            d,
        })
}

fn col(column: usize, ty: ColumnType, digits: u8) -> Expr {
    Expr::Column { column, ty, digits }
}

fn num2() -> ColumnType {
    ColumnType::Numeric { scale: 2 }
}

fn specs() -> Vec<AggSpec> {
    let n = || Box::new(col(4, num2(), 18));
    vec![
        AggSpec {
            func: AggFn::CountStar,
            arg: None,
        },
        AggSpec {
            func: AggFn::Count,
            arg: Some(col(2, ColumnType::Int32, 10)),
        },
        AggSpec {
            func: AggFn::SumInt,
            arg: Some(col(2, ColumnType::Int32, 10)),
        },
        AggSpec {
            func: AggFn::AvgInt,
            arg: Some(col(2, ColumnType::Int32, 10)),
        },
        AggSpec {
            func: AggFn::SumInt8,
            arg: Some(col(3, ColumnType::Int64, 19)),
        },
        AggSpec {
            func: AggFn::SumNumeric,
            arg: Some(col(4, num2(), 18)),
        },
        // n * (1 - n) * (1 + n): the shape of TPC-H Q1's charge, far past 128 bits.
        AggSpec {
            func: AggFn::SumNumeric,
            arg: Some(Expr::Arith {
                op: Op::Mul,
                left: Box::new(Expr::Arith {
                    op: Op::Mul,
                    left: n(),
                    right: Box::new(Expr::Arith {
                        op: Op::Sub,
                        left: Box::new(Expr::Numeric {
                            mantissa: 1,
                            scale: 0,
                            nan: false,
                        }),
                        right: n(),
                    }),
                }),
                right: Box::new(Expr::Arith {
                    op: Op::Add,
                    left: Box::new(Expr::Numeric {
                        mantissa: 1,
                        scale: 0,
                        nan: false,
                    }),
                    right: n(),
                }),
            }),
        },
        AggSpec {
            func: AggFn::Min,
            arg: Some(col(4, num2(), 18)),
        },
        AggSpec {
            func: AggFn::Max,
            arg: Some(col(4, num2(), 18)),
        },
        AggSpec {
            func: AggFn::Max,
            arg: Some(col(5, ColumnType::Date, 10)),
        },
        AggSpec {
            func: AggFn::Min,
            arg: Some(Expr::Neg(Box::new(col(3, ColumnType::Int64, 19)))),
        },
        // sum(n) again (`avg(n)` has its transition): the state of aggregate 5, shared.
        AggSpec {
            func: AggFn::SumNumeric,
            arg: Some(col(4, num2(), 18)),
        },
        // n * (1 - n): inside aggregate 6's argument, evaluated once for both.
        AggSpec {
            func: AggFn::SumNumeric,
            arg: Some(Expr::Arith {
                op: Op::Mul,
                left: n(),
                right: Box::new(Expr::Arith {
                    op: Op::Sub,
                    left: Box::new(Expr::Numeric {
                        mantissa: 1,
                        scale: 0,
                        nan: false,
                    }),
                    right: n(),
                }),
            }),
        },
    ]
}

type Key = (Option<i32>, Option<String>);

/// What Postgres's transition functions compute, a row at a time (NaN-free numerics
/// summed in 256 bits). `None` for a row that must raise an error.
fn reference(rows: &[Row]) -> Option<BTreeMap<Key, Vec<Partial>>> {
    let mut out: BTreeMap<Key, Vec<Partial>> = BTreeMap::new();
    let num = |v: i64| {
        if v == numeric::NAN {
            None
        } else {
            Some(i256::from_i128(v.into()))
        }
    };
    for r in rows {
        let s = out.entry((r.g, r.t.clone())).or_insert_with(|| {
            vec![
                Partial::Int8(Some(0)),
                Partial::Int8(Some(0)),
                Partial::Int8(None),
                Partial::IntAvg { count: 0, sum: 0 },
                Partial::Poly { n: 0, sum: 0 },
                Partial::Numeric {
                    n: 0,
                    nan: 0,
                    sum: i256::ZERO,
                    scale: 2,
                },
                Partial::Numeric {
                    n: 0,
                    nan: 0,
                    sum: i256::ZERO,
                    scale: 6,
                },
                Partial::Scalar {
                    value: None,
                    kind: Kind::Numeric { scale: 2 },
                },
                Partial::Scalar {
                    value: None,
                    kind: Kind::Numeric { scale: 2 },
                },
                Partial::Scalar {
                    value: None,
                    kind: Kind::Date,
                },
                Partial::Scalar {
                    value: None,
                    kind: Kind::Int64,
                },
                Partial::Numeric {
                    n: 0,
                    nan: 0,
                    sum: i256::ZERO,
                    scale: 2,
                },
                Partial::Numeric {
                    n: 0,
                    nan: 0,
                    sum: i256::ZERO,
                    scale: 4,
                },
            ]
        });
        if let Partial::Int8(Some(c)) = &mut s[0] {
            *c += 1;
        }
        if let Some(a) = r.a {
            if let Partial::Int8(Some(c)) = &mut s[1] {
                *c += 1;
            }
            s[2] = Partial::Int8(Some(match s[2] {
                Partial::Int8(v) => v.unwrap_or(0).checked_add(a.into())?,
                _ => unreachable!(),
            }));
            if let Partial::IntAvg { count, sum } = &mut s[3] {
                *count += 1;
                *sum = sum.checked_add(a.into())?;
            }
        }
        if let Some(b) = r.b {
            if let Partial::Poly { n, sum } = &mut s[4] {
                *n += 1;
                *sum += i128::from(b);
            }
            // -b overflows for i64::MIN: an error, as in Postgres.
            let neg = i128::from(b.checked_neg()?);
            if let Partial::Scalar { value, .. } = &mut s[10] {
                *value = Some(value.map_or(neg, |v| v.min(neg)));
            }
        }
        if let Some(n) = r.n {
            let hundred = i256::from_i128(100);
            for (i, v) in [
                (5, num(n)),
                (6, num(n).map(|x| x * (hundred - x) * (hundred + x))),
                (11, num(n)),
                (12, num(n).map(|x| x * (hundred - x))),
            ] {
                if let Partial::Numeric { n, nan, sum, .. } = &mut s[i] {
                    match v {
                        Some(v) => {
                            *n += 1;
                            *sum += v;
                        }
                        None => *nan += 1,
                    }
                }
            }
            let x = if n == numeric::NAN {
                expr::NAN128
            } else {
                n.into()
            };
            if let Partial::Scalar { value, .. } = &mut s[7] {
                *value = Some(value.map_or(x, |v| v.min(x)));
            }
            if let Partial::Scalar { value, .. } = &mut s[8] {
                *value = Some(value.map_or(x, |v| v.max(x)));
            }
        }
        if let Some(d) = r.d {
            if let Partial::Scalar { value, .. } = &mut s[9] {
                *value = Some(value.map_or(d.into(), |v| v.max(d.into())));
            }
        }
    }
    Some(out)
}

fn aggregate(batches: &[Vec<Row>]) -> Result<BTreeMap<Key, Vec<Partial>>> {
    let mut agg = Aggregator::new(vec![(0, ColumnType::Int32), (1, ColumnType::Text)], specs())?;
    for b in batches {
        agg.push(&batch(b), &|c| Some(c))?;
    }
    let mut out = BTreeMap::new();
    for g in 0..agg.len() {
        let key = agg.key(g)?;
        let k = (
            match key[0] {
                Value::Int32(v) => Some(v),
                _ => None,
            },
            match key[1] {
                Value::Text(t) => Some(t.to_string()),
                _ => None,
            },
        );
        out.insert(k, (0..agg.slot.len()).map(|a| agg.partial(g, a)).collect());
    }
    Ok(out)
}

proptest! {
    #[test]
    fn aggregates_like_postgres_transitions(batches in proptest::collection::vec(proptest::collection::vec(row(), 0..60), 0..4)) {
        let all: Vec<Row> = batches.iter().flatten().cloned().collect();
        match reference(&all) {
            Some(expected) => prop_assert_eq!(aggregate(&batches).unwrap(), expected),
            None => prop_assert!(matches!(aggregate(&batches), Err(Error::OutOfRange(_)))),
        }
    }
}

proptest! {
    /// Numerics small enough for the 64-bit kernels (`n * (1 - n) * (1 + n)` below
    /// 2^63), but for the batches with a NaN or a value near the bound.
    #[test]
    fn small_numerics_aggregate_like_postgres_transitions(nulls in any::<bool>(), batches in proptest::collection::vec(proptest::collection::vec(row_of(-1_000_000..=1_000_000), 0..60), 0..4)) {
        // Half the cases with NULLs among the numerics, half without.
        let batches: Vec<Vec<Row>> = batches
            .into_iter()
            .map(|b| {
                b.into_iter()
                    .enumerate()
                    .map(|(i, mut r)| {
                        if !nulls {
                            r.n = r.n.or(Some(i as i64 - 30));
                        }
                        r
                    })
                    .collect()
            })
            .collect();
        let all: Vec<Row> = batches.iter().flatten().cloned().collect();
        match reference(&all) {
            Some(expected) => prop_assert_eq!(aggregate(&batches).unwrap(), expected),
            None => prop_assert!(matches!(aggregate(&batches), Err(Error::OutOfRange(_)))),
        }
    }
}

#[test]
fn no_group_by_is_one_group_even_without_rows() {
    let mut agg = Aggregator::new(vec![], specs()).unwrap();
    assert_eq!(agg.len(), 1);
    assert_eq!(agg.partial(0, 0), Partial::Int8(Some(0)));
    assert_eq!(agg.partial(0, 2), Partial::Int8(None));
    agg.push(&batch(&[]), &|c| Some(c)).unwrap();
    assert_eq!(agg.len(), 1);
}

#[test]
fn integer_overflow_is_an_error_naming_the_type() {
    let e = Expr::Arith {
        op: Op::Add,
        left: Box::new(col(2, ColumnType::Int32, 10)),
        right: Box::new(Expr::Int {
            value: 1,
            kind: Kind::Int32,
        }),
    };
    let mut agg = Aggregator::new(
        vec![],
        vec![AggSpec {
            func: AggFn::SumInt,
            arg: Some(e),
        }],
    )
    .unwrap();
    let r = Row {
        g: None,
        t: None,
        a: Some(i32::MAX),
        b: None,
        n: None,
        d: None,
    };
    let err = agg
        .push(&batch(std::slice::from_ref(&r)), &|c| Some(c))
        .unwrap_err();
    assert_eq!(err, Error::OutOfRange("integer out of range".into()));
    // A NULL input does not overflow.
    let null = Row { a: None, ..r };
    agg.push(&batch(&[null]), &|c| Some(c)).unwrap();
}

#[test]
fn decimal_strings_read_as_postgres_numerics() {
    let s = |m: i128, scale| decimal_string(i256::from_i128(m), scale);
    assert_eq!(s(12345, 2), "123.45");
    assert_eq!(s(-5, 3), "-0.005");
    assert_eq!(s(0, 2), "0.00");
    assert_eq!(s(-120, 0), "-120");
}

#[test]
fn bounds_grow_with_the_arithmetic() {
    let p = |d| col(4, num2(), d);
    assert_eq!(p(15).digits(), 15);
    let one_minus = Expr::Arith {
        op: Op::Sub,
        left: Box::new(Expr::Numeric {
            mantissa: 1,
            scale: 0,
            nan: false,
        }),
        right: Box::new(p(15)),
    };
    assert_eq!(one_minus.digits(), 16);
    let prod = Expr::Arith {
        op: Op::Mul,
        left: Box::new(p(15)),
        right: Box::new(one_minus),
    };
    assert_eq!(prod.digits(), 31);
    assert_eq!(prod.kind().unwrap(), Kind::Numeric { scale: 4 });
}

type FixedKey = (Option<i32>, Option<i64>, Option<i32>);

proptest! {
    /// Fixed-width keys (kept packed in 128 bits): int4, int8 and date, with NULLs.
    #[test]
    fn fixed_width_keys_group_like_a_map(batches in proptest::collection::vec(proptest::collection::vec(row(), 0..60), 0..4)) {
        let keys = vec![(0, ColumnType::Int32), (3, ColumnType::Int64), (5, ColumnType::Date)];
        let mut agg = Aggregator::new(keys, vec![AggSpec { func: AggFn::CountStar, arg: None }]).unwrap();
        let mut expected: BTreeMap<FixedKey, i64> = BTreeMap::new();
        for b in &batches {
            agg.push(&batch(b), &|c| Some(c)).unwrap();
            for r in b {
                *expected.entry((r.g, r.b, r.d)).or_default() += 1;
            }
        }
        let mut got = BTreeMap::new();
        for g in 0..agg.len() {
            let k = agg.key(g).unwrap();
            let key = (
                match k[0] { Value::Int32(v) => Some(v), _ => None },
                match k[1] { Value::Int64(v) => Some(v), _ => None },
                match k[2] { Value::Date(v) => Some(v), _ => None },
            );
            let Partial::Int8(Some(n)) = agg.partial(g, 0) else { panic!("count") };
            prop_assert!(got.insert(key, n).is_none(), "a key in two groups");
        }
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    /// Text keys that arrive dictionary-coded group as the same text plain: alone (by
    /// their codes) and beside a plain key (expanded first).
    #[test]
    fn dictionary_coded_keys_group_like_plain_ones(batches in proptest::collection::vec(proptest::collection::vec(row(), 0..60), 0..4)) {
        use arrow_array::{types::Int32Type, DictionaryArray};
        for keys in [vec![(1, ColumnType::Text)], vec![(0, ColumnType::Int32), (1, ColumnType::Text)]] {
            let mut agg = Aggregator::new(keys.clone(), vec![AggSpec { func: AggFn::CountStar, arg: None }]).unwrap();
            let mut expected: BTreeMap<Key, i64> = BTreeMap::new();
            for b in &batches {
                let plain = batch(b);
                let coded: DictionaryArray<Int32Type> = b.iter().map(|r| r.t.as_deref()).collect();
                let mut columns = plain.columns().to_vec();
                columns[1] = Arc::new(coded);
                let with_codes = RecordBatch::try_from_iter(
                    ["g", "t", "a", "b", "n", "d"].into_iter().zip(columns),
                )
                .unwrap();
                agg.push(&with_codes, &|c| Some(c)).unwrap();
                for r in b {
                    let g = if keys.len() == 2 { r.g } else { None };
                    *expected.entry((g, r.t.clone())).or_default() += 1;
                }
            }
            let mut got = BTreeMap::new();
            for g in 0..agg.len() {
                let k = agg.key(g).unwrap();
                let text = |v: &Value<'_>| match v { Value::Text(t) => Some(t.to_string()), _ => None };
                let key = match &k[..] {
                    [t] => (None, text(t)),
                    [Value::Int32(g), t] => (Some(*g), text(t)),
                    [_, t] => (None, text(t)),
                    _ => panic!("keys"),
                };
                let Partial::Int8(Some(n)) = agg.partial(g, 0) else { panic!("count") };
                prop_assert!(got.insert(key, n).is_none(), "a key in two groups");
            }
            prop_assert_eq!(got, expected);
        }
    }
}
