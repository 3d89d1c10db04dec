//! Granule pruning: which granules a scan can skip, from their min/max and null counts.
//!
//! A predicate says what a row must satisfy; [`may_match`] answers "could any row of this
//! granule satisfy it?" and must never answer no wrongly — a wrong no is a wrong query
//! result. Bytes compare bytewise: the glue only hands over text predicates whose
//! collation orders that way (equality for any deterministic collation).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Integers, booleans (0/1), dates, times and timestamps, in Postgres's units.
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
}

impl Scalar {
    /// The bound as a value of a column of type `ty`, when it is one.
    pub fn to_value(
        &self,
        ty: crate::columnar::types::ColumnType,
    ) -> Option<crate::columnar::types::Value<'_>> {
        use crate::columnar::types::{ColumnType as T, Value as V};
        Some(match (self, ty) {
            (Scalar::Int(v), T::Bool) => V::Bool(*v != 0),
            (Scalar::Int(v), T::Int16) => V::Int16(i16::try_from(*v).ok()?),
            (Scalar::Int(v), T::Int32) => V::Int32(i32::try_from(*v).ok()?),
            (Scalar::Int(v), T::Int64 | T::Numeric { .. }) => V::Int64(*v),
            (Scalar::Int(v), T::Date) => V::Date(i32::try_from(*v).ok()?),
            (Scalar::Int(v), T::Time) => V::Time(*v),
            (Scalar::Int(v), T::Timestamp | T::TimestampTz) => V::Timestamp(*v),
            (Scalar::Float(v), T::Float32) => V::Float32(*v as f32),
            (Scalar::Float(v), T::Float64) => V::Float64(*v),
            (Scalar::Bytes(b), T::Text) => V::Text(std::str::from_utf8(b).ok()?),
            (Scalar::Bytes(b), T::Bytes) => V::Bytes(b),
            (Scalar::Bytes(b), T::Uuid) => V::Uuid(b.as_slice().try_into().ok()?),
            _ => return None,
        })
    }

    fn compare(&self, other: &Scalar) -> Option<Ordering> {
        match (self, other) {
            (Scalar::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
            (Scalar::Float(a), Scalar::Float(b)) => a.partial_cmp(b),
            (Scalar::Bytes(a), Scalar::Bytes(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    fn is_nan(&self) -> bool {
        matches!(self, Scalar::Float(f) if f.is_nan())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnStats {
    /// Lower bound of the non-null values; `None` when unknown.
    pub min: Option<Scalar>,
    /// Upper bound of the non-null values; `None` when unknown.
    pub max: Option<Scalar>,
    pub nulls: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GranuleStats {
    pub rows: u64,
    /// One entry per table column.
    pub columns: Vec<ColumnStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Compare {
        column: usize,
        op: Op,
        value: Scalar,
    },
    In {
        column: usize,
        values: Vec<Scalar>,
    },
    IsNull {
        column: usize,
    },
    IsNotNull {
        column: usize,
    },
}

impl Predicate {
    /// The table column the predicate is about.
    pub fn column(&self) -> usize {
        match self {
            Predicate::Compare { column, .. }
            | Predicate::In { column, .. }
            | Predicate::IsNull { column }
            | Predicate::IsNotNull { column } => *column,
        }
    }
}

/// Whether some row of `granule` may satisfy every predicate of `preds`.
pub fn may_match_all(granule: &GranuleStats, preds: &[Predicate]) -> bool {
    preds.iter().all(|p| may_match(granule, p))
}

/// Whether some row of `granule` may satisfy `pred`.
pub fn may_match(granule: &GranuleStats, pred: &Predicate) -> bool {
    let column = match pred {
        Predicate::Compare { column, .. }
        | Predicate::In { column, .. }
        | Predicate::IsNull { column }
        | Predicate::IsNotNull { column } => *column,
    };
    let Some(stats) = granule.columns.get(column) else {
        return true;
    };
    let all_null = stats.nulls == Some(granule.rows);
    match pred {
        Predicate::IsNull { .. } => stats.nulls != Some(0),
        Predicate::IsNotNull { .. } => !all_null,
        _ if all_null => false,
        Predicate::Compare { op, value, .. } => compare_may_match(stats, *op, value),
        Predicate::In { values, .. } => values.iter().any(|v| compare_may_match(stats, Op::Eq, v)),
    }
}

fn compare_may_match(stats: &ColumnStats, op: Op, value: &Scalar) -> bool {
    // Postgres orders NaN above every number and equal to itself, and Parquet leaves NaN
    // out of min/max: nothing can be ruled out by NaN, nor by a float maximum.
    if value.is_nan() {
        return true;
    }
    let float = matches!(value, Scalar::Float(_));
    let below_min = |strict: bool| {
        stats
            .min
            .as_ref()
            .and_then(|min| value.compare(min))
            .is_some_and(|o| {
                if strict {
                    o == Ordering::Less
                } else {
                    o != Ordering::Greater
                }
            })
    };
    let above_max = |strict: bool| {
        !float
            && stats
                .max
                .as_ref()
                .and_then(|max| value.compare(max))
                .is_some_and(|o| {
                    if strict {
                        o == Ordering::Greater
                    } else {
                        o != Ordering::Less
                    }
                })
    };
    match op {
        // value < min or value > max: no row equals it.
        Op::Eq => !(below_min(true) || above_max(true)),
        // x < value is impossible when value <= min.
        Op::Lt => !below_min(false),
        Op::Le => !below_min(true),
        // x > value is impossible when value >= max.
        Op::Gt => !above_max(false),
        Op::Ge => !above_max(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granule(min: i64, max: i64, nulls: u64, rows: u64) -> GranuleStats {
        GranuleStats {
            rows,
            columns: vec![ColumnStats {
                min: Some(Scalar::Int(min)),
                max: Some(Scalar::Int(max)),
                nulls: Some(nulls),
            }],
        }
    }

    fn cmp(op: Op, v: i64) -> Predicate {
        Predicate::Compare {
            column: 0,
            op,
            value: Scalar::Int(v),
        }
    }

    #[test]
    fn compares_against_bounds_exactly_at_the_edges() {
        let g = granule(10, 20, 0, 100);
        for (pred, expect) in [
            (cmp(Op::Eq, 9), false),
            (cmp(Op::Eq, 10), true),
            (cmp(Op::Eq, 20), true),
            (cmp(Op::Eq, 21), false),
            (cmp(Op::Lt, 10), false),
            (cmp(Op::Lt, 11), true),
            (cmp(Op::Le, 10), true),
            (cmp(Op::Le, 9), false),
            (cmp(Op::Gt, 20), false),
            (cmp(Op::Gt, 19), true),
            (cmp(Op::Ge, 20), true),
            (cmp(Op::Ge, 21), false),
            (
                Predicate::In {
                    column: 0,
                    values: vec![Scalar::Int(1), Scalar::Int(30)],
                },
                false,
            ),
            (
                Predicate::In {
                    column: 0,
                    values: vec![Scalar::Int(1), Scalar::Int(15)],
                },
                true,
            ),
            (Predicate::IsNull { column: 0 }, false),
            (Predicate::IsNotNull { column: 0 }, true),
        ] {
            assert_eq!(may_match(&g, &pred), expect, "{pred:?}");
        }
    }

    #[test]
    fn nulls_and_unknowns_never_prune_wrongly() {
        let all_null = GranuleStats {
            rows: 5,
            columns: vec![ColumnStats {
                min: None,
                max: None,
                nulls: Some(5),
            }],
        };
        assert!(!may_match(&all_null, &cmp(Op::Eq, 1)));
        assert!(may_match(&all_null, &Predicate::IsNull { column: 0 }));
        assert!(!may_match(&all_null, &Predicate::IsNotNull { column: 0 }));
        let unknown = GranuleStats {
            rows: 5,
            columns: vec![ColumnStats {
                min: None,
                max: None,
                nulls: None,
            }],
        };
        for op in [Op::Eq, Op::Lt, Op::Le, Op::Gt, Op::Ge] {
            assert!(may_match(&unknown, &cmp(op, 0)));
        }
        assert!(may_match(&unknown, &Predicate::IsNull { column: 0 }));
        // A column the stats do not cover, or a value of another kind, proves nothing.
        assert!(may_match(
            &granule(1, 2, 0, 3),
            &Predicate::IsNull { column: 7 }
        ));
        let bytes = Predicate::Compare {
            column: 0,
            op: Op::Eq,
            value: Scalar::Bytes(b"x".to_vec()),
        };
        assert!(may_match(&granule(1, 2, 0, 3), &bytes));
    }

    #[test]
    fn floats_keep_nan_rows_reachable() {
        let g = GranuleStats {
            rows: 3,
            columns: vec![ColumnStats {
                min: Some(Scalar::Float(1.0)),
                max: Some(Scalar::Float(2.0)),
                nulls: Some(0),
            }],
        };
        let f = |op, v: f64| Predicate::Compare {
            column: 0,
            op,
            value: Scalar::Float(v),
        };
        // The granule may hold NaN, which is greater than 5.0 in Postgres.
        assert!(may_match(&g, &f(Op::Gt, 5.0)));
        assert!(may_match(&g, &f(Op::Eq, f64::NAN)));
        // Lower-bound pruning stays valid: NaN is never below anything.
        assert!(!may_match(&g, &f(Op::Lt, 0.5)));
        assert!(!may_match(&g, &f(Op::Eq, 0.5)));
        assert!(may_match(&g, &f(Op::Eq, 1.5)));
    }
}
