//! Transition states, one vector per aggregate indexed by group, and the kernels that
//! fold a batch's evaluated argument into them.
//!
//! The states hold what Postgres's own transition functions would (`int4_sum`,
//! `int4_avg_accum`, `int8_avg_accum`, `numeric_avg_accum`, `int8inc`, min/max), so
//! that a partial state handed to Postgres's combine and final functions gives Postgres's
//! answer. Numeric sums add 128-bit mantissas and spill into 256 bits on overflow.

use arrow_buffer::{i256, NullBuffer};

use super::expr::{Evaluated, Kind, Vals, NAN128};
use super::{AggFn, Partial};
use crate::columnar::numeric;
use crate::error::{Error, Result};

#[derive(Debug)]
pub enum State {
    Count(Vec<i64>),
    /// `sum(int2/int4)`: an int8, NULL until a value arrives.
    SumInt {
        sum: Vec<i64>,
        seen: Vec<bool>,
    },
    /// `avg(int2/int4)`: Postgres's `{count, sum}` int8 array.
    AvgInt {
        count: Vec<i64>,
        sum: Vec<i64>,
    },
    /// `sum/avg(int8)`: count and a 128-bit sum.
    Poly {
        n: Vec<i64>,
        sum: Vec<i128>,
    },
    /// `sum/avg(numeric)`: count, NaNs, and the mantissa sum at `scale` (`sum + spill`).
    Numeric {
        n: Vec<i64>,
        nan: Vec<i64>,
        sum: Vec<i128>,
        spill: Vec<i256>,
        scale: u16,
    },
    /// `min`/`max` of integer-like values (a numeric's NaN sorts highest, as in Postgres).
    Extreme {
        max: bool,
        best: Vec<Option<i128>>,
        kind: Kind,
    },
}

const BIGINT: &str = "bigint out of range";

impl State {
    pub fn new(func: AggFn, kind: Option<Kind>) -> State {
        match func {
            AggFn::CountStar | AggFn::Count => State::Count(Vec::new()),
            AggFn::SumInt => State::SumInt {
                sum: Vec::new(),
                seen: Vec::new(),
            },
            AggFn::AvgInt => State::AvgInt {
                count: Vec::new(),
                sum: Vec::new(),
            },
            AggFn::SumInt8 => State::Poly {
                n: Vec::new(),
                sum: Vec::new(),
            },
            AggFn::SumNumeric => State::Numeric {
                n: Vec::new(),
                nan: Vec::new(),
                sum: Vec::new(),
                spill: Vec::new(),
                scale: kind.map_or(0, Kind::scale),
            },
            AggFn::Min | AggFn::Max => State::Extreme {
                max: func == AggFn::Max,
                best: Vec::new(),
                kind: kind.unwrap_or(Kind::Int64),
            },
        }
    }

    /// Room for `groups` groups.
    pub fn grow(&mut self, groups: usize) {
        match self {
            State::Count(c) => c.resize(groups, 0),
            State::SumInt { sum, seen } => {
                sum.resize(groups, 0);
                seen.resize(groups, false);
            }
            State::AvgInt { count, sum } => {
                count.resize(groups, 0);
                sum.resize(groups, 0);
            }
            State::Poly { n, sum } => {
                n.resize(groups, 0);
                sum.resize(groups, 0);
            }
            State::Numeric {
                n, nan, sum, spill, ..
            } => {
                n.resize(groups, 0);
                nan.resize(groups, 0);
                sum.resize(groups, 0);
                spill.resize(groups, i256::ZERO);
            }
            State::Extreme { best, .. } => best.resize(groups, None),
        }
    }

    pub fn clear(&mut self) {
        self.grow(0);
    }

    /// `count(*)`: every row counts.
    pub fn count_rows(&mut self, groups: Option<&[u32]>, rows: usize) {
        let State::Count(c) = self else { return };
        match groups {
            None => c[0] += rows as i64,
            Some(g) => g.iter().for_each(|&g| c[g as usize] += 1),
        }
    }

    /// A `min`/`max` without GROUP BY offered `v` (a granule's exact extreme).
    pub fn offer_extreme(&mut self, v: i128) {
        let State::Extreme { max, best, .. } = self else {
            return;
        };
        let b = &mut best[0];
        *b = Some(match *b {
            None => v,
            Some(old) if *max => old.max(v),
            Some(old) => old.min(v),
        });
    }

    /// `count(x)` of a column: the rows `nulls` says are not NULL.
    pub fn count_valid(
        &mut self,
        groups: Option<&[u32]>,
        nulls: Option<&arrow_buffer::NullBuffer>,
        rows: usize,
    ) {
        let State::Count(c) = self else { return };
        match (groups, nulls) {
            (None, None) => c[0] += rows as i64,
            (None, Some(n)) => c[0] += (rows - n.null_count()) as i64,
            (Some(g), None) => g.iter().for_each(|&g| c[g as usize] += 1),
            (Some(g), Some(n)) => {
                for (r, &g) in g.iter().enumerate() {
                    if n.is_valid(r) {
                        c[g as usize] += 1;
                    }
                }
            }
        }
    }

    /// Folds one batch's argument values in; `groups` gives each row's group (`None`:
    /// all in group 0).
    pub fn update(&mut self, groups: Option<&[u32]>, arg: &Evaluated<'_>) -> Result<()> {
        let rows = match &arg.vals {
            Vals::I64(v) => v.len(),
            Vals::I128(v) => v.len(),
            Vals::I256(v) => v.len(),
        };
        let nulls = arg.nulls.as_ref();
        let numeric_kind = matches!(arg.kind, Kind::Numeric { .. });
        let mut overflow = false;
        let wide = || Error::Internal("an integer aggregate of wide values".into());
        match self {
            State::Count(c) => each(groups, nulls, rows, |g, _| c[g] += 1),
            State::SumInt { sum, seen } => {
                let Vals::I64(v) = &arg.vals else {
                    return Err(wide());
                };
                each(groups, nulls, rows, |g, r| {
                    let (s, o) = sum[g].overflowing_add(v[r]);
                    sum[g] = s;
                    overflow |= o;
                    seen[g] = true;
                });
            }
            State::AvgInt { count, sum } => {
                let Vals::I64(v) = &arg.vals else {
                    return Err(wide());
                };
                each(groups, nulls, rows, |g, r| {
                    count[g] += 1;
                    let (s, o) = sum[g].overflowing_add(v[r]);
                    sum[g] = s;
                    overflow |= o;
                });
            }
            State::Poly { n, sum } => {
                let Vals::I64(v) = &arg.vals else {
                    return Err(wide());
                };
                each(groups, nulls, rows, |g, r| {
                    n[g] += 1;
                    sum[g] += i128::from(v[r]);
                });
            }
            State::Numeric {
                n,
                nan,
                sum,
                spill,
                scale,
            } => {
                if arg.kind.scale() != *scale {
                    return Err(Error::Internal("a numeric sum of another scale".into()));
                }
                // NULL-free 64-bit values: summed per group in 64 bits over the batch
                // (no NaN, no overflow, or the row-at-a-time loop below), then added.
                if let (Vals::I64(v), None) = (&arg.vals, nulls.filter(|n| n.null_count() > 0)) {
                    if let Some(local) = sum64(groups, v, n.len()) {
                        for (g, (part, rows)) in local.into_iter().enumerate() {
                            if rows == 0 {
                                continue;
                            }
                            n[g] += rows;
                            add_spilling(&mut sum[g], &mut spill[g], part);
                        }
                        return Ok(());
                    }
                }
                let mut add = |g: usize, x: i128| {
                    n[g] += 1;
                    add_spilling(&mut sum[g], &mut spill[g], x);
                };
                match &arg.vals {
                    Vals::I64(v) => each(groups, nulls, rows, |g, r| {
                        let x = v[r];
                        if x == numeric::NAN {
                            nan[g] += 1;
                        } else {
                            add(g, i128::from(x));
                        }
                    }),
                    Vals::I128(v) => each(groups, nulls, rows, |g, r| {
                        let x = v[r];
                        if x == NAN128 {
                            nan[g] += 1;
                        } else {
                            add(g, x);
                        }
                    }),
                    Vals::I256(v) => each(groups, nulls, rows, |g, r| {
                        let x = v[r];
                        if x == i256::MAX {
                            nan[g] += 1;
                        } else {
                            n[g] += 1;
                            let (s, o) = spill[g].overflowing_add(x);
                            spill[g] = s;
                            overflow |= o;
                        }
                    }),
                }
                if overflow {
                    return Err(Error::Internal("a numeric sum exceeded 256 bits".into()));
                }
            }
            State::Extreme { max, best, .. } => {
                let max = *max;
                let mut fold = |g: usize, x: i128| {
                    let b = &mut best[g];
                    let better = match *b {
                        None => true,
                        Some(cur) => (max && x > cur) || (!max && x < cur),
                    };
                    if better {
                        *b = Some(x);
                    }
                };
                match &arg.vals {
                    Vals::I64(v) => each(groups, nulls, rows, |g, r| {
                        let x = v[r];
                        fold(
                            g,
                            if numeric_kind && x == numeric::NAN {
                                NAN128
                            } else {
                                i128::from(x)
                            },
                        );
                    }),
                    Vals::I128(v) => each(groups, nulls, rows, |g, r| fold(g, v[r])),
                    Vals::I256(_) => {
                        return Err(Error::Internal(
                            "min/max of a wide numeric expression".into(),
                        ))
                    }
                }
            }
        }
        if overflow {
            return Err(Error::OutOfRange(BIGINT.into()));
        }
        Ok(())
    }

    /// Group `g`'s state as Postgres's partial aggregate would hand it on.
    pub fn partial(&self, g: usize) -> Partial {
        match self {
            State::Count(c) => Partial::Int8(Some(c[g])),
            State::SumInt { sum, seen } => Partial::Int8(seen[g].then_some(sum[g])),
            State::AvgInt { count, sum } => Partial::IntAvg {
                count: count[g],
                sum: sum[g],
            },
            State::Poly { n, sum } => Partial::Poly {
                n: n[g],
                sum: sum[g],
            },
            State::Numeric {
                n,
                nan,
                sum,
                spill,
                scale,
            } => Partial::Numeric {
                n: n[g],
                nan: nan[g],
                sum: spill[g].wrapping_add(i256::from_i128(sum[g])),
                scale: *scale,
            },
            State::Extreme { best, kind, .. } => Partial::Scalar {
                value: best[g],
                kind: *kind,
            },
        }
    }
}

/// `sum += x`, moving `sum` into `spill` first when the 128-bit add would overflow.
#[inline(always)]
fn add_spilling(sum: &mut i128, spill: &mut i256, x: i128) {
    match sum.checked_add(x) {
        Some(s) => *sum = s,
        None => {
            *spill = spill.wrapping_add(i256::from_i128(*sum));
            *sum = x;
        }
    }
}

/// Per group, the sum and number of `v`'s values (row `r` in group `groups[r]`, all
/// in group 0 without groups), when none is a numeric NaN and no group's 64-bit sum
/// overflows; `None` otherwise, or when there are more groups than rows (a per-batch
/// vector per group would cost more than it saves).
fn sum64(groups: Option<&[u32]>, v: &[i64], len: usize) -> Option<Vec<(i128, i64)>> {
    match groups {
        None => {
            // 128-bit adds cannot overflow over a batch; one NaN test for all.
            let (mut s, mut nan) = (0i128, false);
            for &x in v {
                nan |= x == numeric::NAN;
                s += i128::from(x);
            }
            (!nan).then(|| vec![(s, v.len() as i64)])
        }
        Some(groups) if len <= v.len().max(64) => {
            let mut sums = vec![0i64; len];
            let mut rows = vec![0i64; len];
            let (mut bad, mut nan) = (false, false);
            for (&g, &x) in groups.iter().zip(v) {
                let g = g as usize;
                let (s, o) = sums[g].overflowing_add(x);
                sums[g] = s;
                rows[g] += 1;
                bad |= o;
                nan |= x == numeric::NAN;
            }
            (!bad && !nan).then(|| sums.into_iter().map(i128::from).zip(rows).collect())
        }
        Some(_) => None,
    }
}

/// Calls `f(group, row)` for every row that is not NULL, with the loop chosen once per
/// batch (no groups, no NULLs: the plain loops).
#[inline(always)]
fn each(
    groups: Option<&[u32]>,
    nulls: Option<&NullBuffer>,
    rows: usize,
    mut f: impl FnMut(usize, usize),
) {
    match (groups, nulls.filter(|n| n.null_count() > 0)) {
        (None, None) => (0..rows).for_each(|r| f(0, r)),
        (Some(g), None) => g.iter().enumerate().for_each(|(r, &g)| f(g as usize, r)),
        (None, Some(n)) => n.valid_indices().for_each(|r| f(0, r)),
        (Some(g), Some(n)) => n.valid_indices().for_each(|r| f(g[r] as usize, r)),
    }
}
