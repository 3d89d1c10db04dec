//! Vectorized aggregation: `count`, `sum`, `avg`, `min`, `max` over a scan's Arrow
//! batches, grouped by key columns, into the partial states Postgres's own Finalize
//! Aggregate combines (the `EpiphanyDB Vector Agg` node hands them on).
//!
//! An [`Aggregator`] is made from the plan's key columns and aggregates, fed batches with
//! [`Aggregator::push`], and read out group by group: the key in Postgres's units, and
//! per aggregate a [`Partial`] holding exactly what Postgres's transition function
//! would have accumulated over the same rows.

#![forbid(unsafe_code)]

pub mod expr;
mod group;
pub mod serial;
mod state;
#[cfg(test)]
mod tests;

use arrow_array::RecordBatch;
use arrow_buffer::i256;

pub use expr::{Evaluated, Expr, Kind, Op, Vals};
use group::Groups;
use state::State;

use crate::columnar::prune::{GranuleStats, Scalar};
use crate::columnar::types::{ColumnType, Value};
use crate::error::{Error, Result};

/// The aggregates computed here, named by the Postgres transition they replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    /// `count(*)`.
    CountStar,
    /// `count(x)`: the non-NULL values.
    Count,
    /// `sum(int2)`, `sum(int4)`: an int8.
    SumInt,
    /// `avg(int2)`, `avg(int4)`: `{count, sum}`.
    AvgInt,
    /// `sum(int8)`, `avg(int8)`: count and 128-bit sum.
    SumInt8,
    /// `sum(numeric)`, `avg(numeric)`: count, sum, NaNs.
    SumNumeric,
    Min,
    Max,
}

/// One aggregate: its function and (except `count(*)`) its argument.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    pub func: AggFn,
    pub arg: Option<Expr>,
}

/// One group's state of one aggregate, as Postgres's partial aggregate emits it.
#[derive(Debug, Clone, PartialEq)]
pub enum Partial {
    /// An int8 state (`count`, `sum(int4)`); NULL before the first value.
    Int8(Option<i64>),
    /// `int4_avg_accum`'s `{count, sum}`.
    IntAvg { count: i64, sum: i64 },
    /// `int8_avg_accum`'s state (NULL when `n` is 0).
    Poly { n: i64, sum: i128 },
    /// `numeric_avg_accum`'s state: `n` numbers summing to `sum / 10^scale`, and `nan`
    /// NaNs (NULL when both counts are 0).
    Numeric {
        n: i64,
        nan: i64,
        sum: i256,
        scale: u16,
    },
    /// A min/max: the value in `kind`'s units (a numeric's mantissa), NULL for none.
    Scalar { value: Option<i128>, kind: Kind },
}

/// The aggregation of one node: groups and their states.
#[derive(Debug)]
pub struct Aggregator {
    /// `None`: no GROUP BY, one group that exists even without rows.
    groups: Option<Groups>,
    /// The distinct aggregates: `sum(x)` and `avg(x)` of a numeric, say, share one
    /// state, as they have the same transition.
    specs: Vec<AggSpec>,
    states: Vec<State>,
    /// The state of each aggregate asked for.
    slot: Vec<usize>,
    /// The distinct arguments, smaller ones first (an argument inside another is
    /// evaluated first, and once), and the argument of each state.
    args: Vec<Expr>,
    arg_of: Vec<Option<usize>>,
    /// Reused per batch.
    group_of: Vec<u32>,
}

impl Aggregator {
    /// `keys`: the GROUP BY columns (table column, type); `specs`: the aggregates.
    pub fn new(keys: Vec<(usize, ColumnType)>, asked: Vec<AggSpec>) -> Result<Aggregator> {
        let mut specs: Vec<AggSpec> = Vec::new();
        let mut slot = Vec::with_capacity(asked.len());
        for spec in asked {
            // The same transition over the same argument (`AggFn` names transitions:
            // `sum` and `avg` of a numeric are one): one state.
            match specs.iter().position(|s| *s == spec) {
                Some(i) => slot.push(i),
                None => {
                    slot.push(specs.len());
                    specs.push(spec);
                }
            }
        }
        let mut args: Vec<Expr> = Vec::new();
        for spec in &specs {
            if let Some(arg) = &spec.arg {
                if !args.contains(arg) {
                    args.push(arg.clone());
                }
            }
        }
        args.sort_by_key(Expr::size);
        let arg_of = specs
            .iter()
            .map(|s| {
                s.arg
                    .as_ref()
                    .and_then(|a| args.iter().position(|x| x == a))
            })
            .collect();
        let mut states = Vec::with_capacity(specs.len());
        for spec in &specs {
            // count(x) reads only x's NULLs: any column type.
            let kind = match (&spec.func, &spec.arg) {
                (AggFn::Count, Some(Expr::Column { .. })) => None,
                (_, arg) => arg.as_ref().map(Expr::kind).transpose()?,
            };
            if spec.arg.is_none() != (spec.func == AggFn::CountStar) {
                return Err(Error::Internal(format!(
                    "{:?} with the wrong arguments",
                    spec.func
                )));
            }
            states.push(State::new(spec.func, kind));
        }
        let mut a = Aggregator {
            groups: (!keys.is_empty()).then(|| Groups::new(keys)),
            specs,
            states,
            slot,
            args,
            arg_of,
            group_of: Vec::new(),
        };
        a.reset();
        Ok(a)
    }

    /// Every table column the keys and arguments read.
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for spec in &self.specs {
            if let Some(arg) = &spec.arg {
                arg.columns(&mut out);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The table columns of the GROUP BY keys.
    pub fn key_columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups.iter().flat_map(Groups::columns)
    }

    /// Back to no rows (a rescan).
    pub fn reset(&mut self) {
        if let Some(g) = &mut self.groups {
            g.clear();
        }
        for s in &mut self.states {
            s.clear();
            if self.groups.is_none() {
                s.grow(1);
            }
        }
    }

    /// Folds in the rows of `batch`; `at` gives a table column's position in it.
    pub fn push(
        &mut self,
        batch: &RecordBatch,
        at: &impl Fn(usize) -> Option<usize>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let groups = match &mut self.groups {
            None => None,
            Some(g) => {
                g.assign(batch, at, &mut self.group_of)?;
                let n = g.len();
                for s in &mut self.states {
                    s.grow(n);
                }
                Some(&self.group_of[..])
            }
        };
        // Each distinct argument once (those only counted are not evaluated).
        let needed: Vec<bool> = (0..self.args.len())
            .map(|i| {
                self.specs
                    .iter()
                    .zip(&self.arg_of)
                    .any(|(s, a)| *a == Some(i) && !counts_column(s))
            })
            .collect();
        let mut exprs: Vec<&Expr> = Vec::with_capacity(self.args.len());
        let mut vals: Vec<expr::Evaluated<'_>> = Vec::with_capacity(self.args.len());
        let mut index = vec![usize::MAX; self.args.len()];
        for (i, arg) in self.args.iter().enumerate() {
            if !needed[i] {
                continue;
            }
            let memo = expr::Memo {
                exprs: &exprs,
                vals: &vals,
            };
            let v = arg.eval_memo(batch, at, &memo)?;
            index[i] = vals.len();
            exprs.push(arg);
            vals.push(v);
        }
        for ((spec, state), arg) in self.specs.iter().zip(&mut self.states).zip(&self.arg_of) {
            match &spec.arg {
                None => state.count_rows(groups, batch.num_rows()),
                Some(Expr::Column { column, .. }) if spec.func == AggFn::Count => {
                    let k = at(*column).ok_or_else(|| {
                        Error::Internal(format!("count reads column {column}, not decoded"))
                    })?;
                    state.count_valid(
                        groups,
                        batch.column(k).logical_nulls().as_ref(),
                        batch.num_rows(),
                    );
                }
                Some(_) => {
                    let i = arg.map(|i| index[i]).filter(|&i| i != usize::MAX);
                    let v = i.and_then(|i| vals.get(i)).ok_or_else(|| {
                        Error::Internal("an aggregate argument not evaluated".into())
                    })?;
                    state.update(groups, v)?;
                }
            }
        }
        Ok(())
    }

    /// Whether every aggregate is `count(*)` without GROUP BY: row counts are all it needs
    /// ([`Aggregator::add_rows`]).
    pub fn counts_rows_only(&self) -> bool {
        self.groups.is_none() && self.specs.iter().all(|s| s.func == AggFn::CountStar)
    }

    /// `rows` more rows, for an aggregator that [`Aggregator::counts_rows_only`].
    pub fn add_rows(&mut self, rows: u64) {
        debug_assert!(self.counts_rows_only());
        for s in &mut self.states {
            s.count_rows(None, rows as usize);
        }
    }

    /// Whether a granule's statistics alone can fold it in ([`Aggregator::add_stats`]):
    /// no GROUP BY, and every aggregate `count(*)`, `count(col)`, or `min`/`max` of an
    /// integer, date or timestamp column — whose statistics are exact (null counts always
    /// are; the minimum and maximum of these types are the values themselves, never
    /// truncated or rounded, and have no NaN).
    pub fn answers_from_stats(&self) -> bool {
        self.groups.is_none()
            && self.specs.iter().all(|s| match (&s.func, &s.arg) {
                (AggFn::CountStar, None) => true,
                (AggFn::Count, Some(Expr::Column { .. })) => true,
                (AggFn::Min | AggFn::Max, Some(Expr::Column { ty, .. })) => exact_extremes(*ty),
                _ => false,
            })
    }

    /// Folds in, from its statistics alone, a granule every row of which the scan
    /// returns, for an aggregator that [`Aggregator::answers_from_stats`]; `false`, with
    /// nothing folded, when a statistic it needs is unknown (the granule must be read).
    pub fn add_stats(&mut self, stats: &GranuleStats) -> bool {
        // Check first: a granule is folded in whole or not at all.
        let mut updates = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            let update = match (&spec.func, &spec.arg) {
                (AggFn::CountStar, None) => StatUpdate::Count(stats.rows),
                (func, Some(Expr::Column { column, .. })) => {
                    let Some(c) = stats.columns.get(*column) else {
                        return false;
                    };
                    let Some(valid) = c.nulls.and_then(|n| stats.rows.checked_sub(n)) else {
                        return false;
                    };
                    match func {
                        AggFn::Count => StatUpdate::Count(valid),
                        AggFn::Min | AggFn::Max if valid == 0 => StatUpdate::Nothing,
                        AggFn::Min | AggFn::Max => {
                            let bound = if *func == AggFn::Min { &c.min } else { &c.max };
                            match bound {
                                Some(Scalar::Int(v)) => StatUpdate::Extreme(i128::from(*v)),
                                _ => return false,
                            }
                        }
                        _ => return false,
                    }
                }
                _ => return false,
            };
            updates.push(update);
        }
        for (state, update) in self.states.iter_mut().zip(updates) {
            match update {
                StatUpdate::Count(n) => state.count_rows(None, n as usize),
                StatUpdate::Extreme(v) => state.offer_extreme(v),
                StatUpdate::Nothing => {}
            }
        }
        true
    }

    /// The number of groups (1 without GROUP BY, even over no rows).
    pub fn len(&self) -> usize {
        self.groups.as_ref().map_or(1, Groups::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Group `g`'s key values, in the order of the keys.
    pub fn key(&self, g: usize) -> Result<Vec<Value<'_>>> {
        self.groups.as_ref().map_or(Ok(Vec::new()), |k| k.key(g))
    }

    /// Group `g`'s state of aggregate `a` (in the order asked for).
    pub fn partial(&self, g: usize, a: usize) -> Partial {
        self.states[self.slot[a]].partial(g)
    }
}

/// What a granule's statistics add to one state.
enum StatUpdate {
    Count(u64),
    Extreme(i128),
    Nothing,
}

/// Whether granule statistics of a column of type `ty` hold its exact minimum and
/// maximum, in the units its `min`/`max` state keeps.
fn exact_extremes(ty: ColumnType) -> bool {
    // No min/max state keeps a time.
    ty.integer_ordered() && ty != ColumnType::Time
}

/// Whether the aggregate reads only its column's NULLs (`count(x)`).
fn counts_column(s: &AggSpec) -> bool {
    s.func == AggFn::Count && matches!(s.arg, Some(Expr::Column { .. }))
}

/// `mantissa / 10^scale` in decimal, as Postgres's `numeric_in` reads it.
pub fn decimal_string(mantissa: i256, scale: u16) -> String {
    let digits = mantissa.to_string();
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", digits.as_str()),
    };
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}
