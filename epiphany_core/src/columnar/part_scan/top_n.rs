//! Top-N: a scan under `ORDER BY col LIMIT n` that reads granules in the order their
//! statistics promise and stops once no granule left can hold a row among the first `n`.
//!
//! Every row and granule is given a *rank* in the query's order (lower comes first;
//! NULLs first or last as asked). A granule's rank is the lowest its rows can have: its
//! minimum (ascending) or maximum (descending) from statistics, or NULL's rank if it
//! holds NULLs that sort first. Granules are read lowest rank first; the scan remembers
//! the `n` lowest row ranks returned so far, and stops before a granule whose rank is
//! above all of them: that granule, and every one after it, can only hold rows that
//! sort after `n` rows already returned. The Sort above still orders what was returned
//! and cuts it to `n`, so stopping is the only thing this decides, and it only needs the
//! statistics to be bounds. Every row the scan returns must reach that Sort: the plan
//! uses this only when the scan's quals are all its own.
//!
//! Works on any column whose statistics and values compare as integers in Postgres's
//! order (integers, dates, times, timestamps), whatever the table's sort key; on the
//! sort key the ranks of successive granules barely overlap, and it reads about
//! `n / granule_rows + 1` granules.

use std::collections::BinaryHeap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};

use crate::columnar::prune::{ColumnStats, Scalar};
use crate::columnar::types::{date_from_arrow, ColumnType};
use crate::error::{Error, Result};

/// What the query orders by and how many rows it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopNSpec {
    /// Table column.
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
    /// LIMIT plus OFFSET.
    pub rows: usize,
    /// Whether rows that tie with the last row kept still matter: more sort keys follow
    /// (they may order a tied row first) or `WITH TIES` returns them all. If not, a
    /// granule that can at best tie is not read either.
    pub ties: bool,
}

impl TopNSpec {
    /// Whether a column of type `ty` can be ordered here.
    pub fn supports(ty: ColumnType) -> bool {
        ty.integer_ordered()
    }
}

/// A Top-N scan's memory of the rows it returned.
#[derive(Debug)]
pub struct TopN {
    spec: TopNSpec,
    /// The lowest ranks returned so far, at most `spec.rows` (a max-heap: its top is the
    /// rank a granule must not exceed).
    kept: BinaryHeap<i128>,
}

impl TopN {
    pub fn new(spec: TopNSpec) -> TopN {
        TopN {
            spec,
            kept: BinaryHeap::with_capacity(spec.rows.min(1 << 16) + 1),
        }
    }

    pub fn spec(&self) -> TopNSpec {
        self.spec
    }

    /// Back to no rows returned (a rescan).
    pub fn reset(&mut self) {
        self.kept.clear();
    }

    fn null_rank(&self) -> i128 {
        if self.spec.nulls_first {
            i128::MIN
        } else {
            i128::MAX
        }
    }

    fn value_rank(&self, v: i64) -> i128 {
        if self.spec.descending {
            -i128::from(v)
        } else {
            i128::from(v)
        }
    }

    /// The lowest rank a row of a granule with statistics `stats` (of the ordered
    /// column) can have, among `rows` rows.
    pub fn granule_rank(&self, stats: Option<&ColumnStats>, rows: u64) -> i128 {
        let Some(s) = stats else {
            return i128::MIN;
        };
        let nulls = s.nulls;
        let all_null = nulls == Some(rows);
        let may_hold_nulls = nulls != Some(0);
        if all_null {
            return self.null_rank();
        }
        if self.spec.nulls_first && may_hold_nulls {
            return self.null_rank();
        }
        // NULLs sorting last never lower a granule's rank: its bound does.
        let bound = if self.spec.descending { &s.max } else { &s.min };
        match bound {
            Some(Scalar::Int(v)) => self.value_rank(*v),
            // Unknown or not comparable here: it may hold anything.
            _ => i128::MIN,
        }
    }

    /// Whether a granule of rank `rank` (and so every one after it) can be left unread.
    pub fn done_before(&self, rank: i128) -> bool {
        if self.spec.rows == 0 {
            return true;
        }
        let full = self.kept.len() >= self.spec.rows;
        full && self
            .kept
            .peek()
            .is_some_and(|&w| rank > w || (rank == w && !self.spec.ties))
    }

    /// Remembers the ranks of rows returned: `array` holds their values of the ordered
    /// column (of type `ty`).
    pub fn returned(&mut self, array: &ArrayRef) -> Result<()> {
        let n = self.spec.rows;
        if n == 0 {
            return Ok(());
        }
        let push = |rank: i128, kept: &mut BinaryHeap<i128>| {
            if kept.len() < n {
                kept.push(rank);
            } else if kept.peek().is_some_and(|&w| rank < w) {
                kept.pop();
                kept.push(rank);
            }
        };
        let null = self.null_rank();
        let desc = self.spec.descending;
        let rank = |v: i64| if desc { -i128::from(v) } else { i128::from(v) };
        let mut each = |values: &mut dyn Iterator<Item = Option<i64>>| {
            for v in values {
                push(v.map_or(null, rank), &mut self.kept);
            }
        };
        match array.data_type() {
            DataType::Int16 => each(
                &mut array
                    .as_primitive::<Int16Type>()
                    .iter()
                    .map(|v| v.map(i64::from)),
            ),
            DataType::Int32 => each(
                &mut array
                    .as_primitive::<Int32Type>()
                    .iter()
                    .map(|v| v.map(i64::from)),
            ),
            DataType::Int64 => each(&mut array.as_primitive::<Int64Type>().iter()),
            DataType::Date32 => each(
                &mut array
                    .as_primitive::<Date32Type>()
                    .iter()
                    .map(|v| v.map(|d| i64::from(date_from_arrow(d)))),
            ),
            DataType::Time64(TimeUnit::Microsecond) => {
                each(&mut array.as_primitive::<Time64MicrosecondType>().iter())
            }
            other => {
                return Err(Error::Internal(format!(
                    "Top-N over a column of Arrow type {other}"
                )))
            }
        }
        Ok(())
    }

    /// Rows remembered (at most LIMIT + OFFSET).
    pub fn kept(&self) -> usize {
        self.kept.len()
    }
}

/// The order to read granules in: `ranks[i]` is granule `i`'s rank; ties keep their
/// order (a table's parts in order, granules in order).
pub fn reading_order(ranks: &[i128]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ranks.len()).collect();
    order.sort_by_key(|&i| ranks[i]);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn stats(values: &[Option<i64>]) -> ColumnStats {
        let non_null: Vec<i64> = values.iter().flatten().copied().collect();
        ColumnStats {
            min: non_null.iter().min().map(|&v| Scalar::Int(v)),
            max: non_null.iter().max().map(|&v| Scalar::Int(v)),
            nulls: Some((values.len() - non_null.len()) as u64),
        }
    }

    /// Sorts like Postgres: by value in the direction asked, NULLs first or last.
    fn reference_order(rows: &mut [Option<i64>], spec: TopNSpec) {
        rows.sort_by(|a, b| {
            use std::cmp::Ordering::*;
            match (a, b) {
                (None, None) => Equal,
                (None, _) => {
                    if spec.nulls_first {
                        Less
                    } else {
                        Greater
                    }
                }
                (_, None) => {
                    if spec.nulls_first {
                        Greater
                    } else {
                        Less
                    }
                }
                (Some(x), Some(y)) => {
                    if spec.descending {
                        y.cmp(x)
                    } else {
                        x.cmp(y)
                    }
                }
            }
        });
    }

    proptest! {
        /// Reading granules in rank order and stopping where `done_before` says, then
        /// sorting what was read, gives the same first `n` rows as sorting everything.
        #[test]
        fn stopping_early_keeps_the_first_rows(
            granules in proptest::collection::vec(
                proptest::collection::vec(proptest::option::weighted(0.9, -50i64..50), 1..20),
                0..12,
            ),
            rows in 0usize..40,
            descending: bool,
            nulls_first: bool,
            ties: bool,
        ) {
            let spec = TopNSpec { column: 0, descending, nulls_first, rows, ties };
            let mut top = TopN::new(spec);
            let ranks: Vec<i128> = granules
                .iter()
                .map(|g| top.granule_rank(Some(&stats(g)), g.len() as u64))
                .collect();
            // Rows carry their position as a second sort key (a tie-breaker) when ties
            // matter.
            let mut read = Vec::new();
            let mut granules_read = 0;
            for i in reading_order(&ranks) {
                if top.done_before(ranks[i]) {
                    break;
                }
                granules_read += 1;
                let array: ArrayRef = Arc::new(Int64Array::from(granules[i].clone()));
                top.returned(&array).unwrap();
                read.extend(granules[i].iter().enumerate().map(|(r, v)| (*v, (i, r))));
            }
            let mut all: Vec<(Option<i64>, (usize, usize))> = granules
                .iter()
                .enumerate()
                .flat_map(|(i, g)| g.iter().enumerate().map(move |(r, v)| (*v, (i, r))))
                .collect();
            let sort = |rows: &mut Vec<(Option<i64>, (usize, usize))>| {
                let mut keys: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
                reference_order(&mut keys, spec);
                // Stable: within equal keys, by the tie-breaker.
                rows.sort_by_key(|r| r.1);
                rows.sort_by(|a, b| {
                    let ka = keys.iter().position(|k| *k == a.0).unwrap();
                    let kb = keys.iter().position(|k| *k == b.0).unwrap();
                    ka.cmp(&kb)
                });
            };
            sort(&mut all);
            sort(&mut read);
            all.truncate(rows);
            read.truncate(rows);
            if ties {
                prop_assert_eq!(read, all);
            } else {
                let keys = |r: &[(Option<i64>, (usize, usize))]| r.iter().map(|x| x.0).collect::<Vec<_>>();
                prop_assert_eq!(keys(&read), keys(&all));
            }
            prop_assert!(granules_read <= granules.len());
        }
    }

    #[test]
    fn on_sorted_granules_it_reads_only_what_the_limit_needs() {
        // 10 granules of 100 ascending values each: LIMIT 150 needs the first two.
        let granules: Vec<Vec<Option<i64>>> = (0..10)
            .map(|g| (0..100).map(|r| Some(g * 100 + r)).collect())
            .collect();
        let spec = TopNSpec {
            column: 0,
            descending: false,
            nulls_first: false,
            rows: 150,
            ties: true,
        };
        let mut top = TopN::new(spec);
        let ranks: Vec<i128> = granules
            .iter()
            .map(|g| top.granule_rank(Some(&stats(g)), 100))
            .collect();
        let mut read = 0;
        for i in reading_order(&ranks) {
            if top.done_before(ranks[i]) {
                break;
            }
            read += 1;
            top.returned(&(Arc::new(Int64Array::from(granules[i].clone())) as ArrayRef))
                .unwrap();
        }
        assert_eq!(read, 2);
        // Descending: the last two.
        let mut top = TopN::new(TopNSpec {
            descending: true,
            ..spec
        });
        let ranks: Vec<i128> = granules
            .iter()
            .map(|g| top.granule_rank(Some(&stats(g)), 100))
            .collect();
        let order = reading_order(&ranks);
        assert_eq!(&order[..2], &[9, 8]);
        for &i in &order[..2] {
            top.returned(&(Arc::new(Int64Array::from(granules[i].clone())) as ArrayRef))
                .unwrap();
        }
        assert!(top.done_before(ranks[order[2]]));
    }

    #[test]
    fn a_granule_without_statistics_is_read_first() {
        let top = TopN::new(TopNSpec {
            column: 0,
            descending: false,
            nulls_first: false,
            rows: 1,
            ties: false,
        });
        assert_eq!(top.granule_rank(None, 10), i128::MIN);
        let unknown = ColumnStats {
            min: None,
            max: None,
            nulls: None,
        };
        assert_eq!(top.granule_rank(Some(&unknown), 10), i128::MIN);
    }
}
