//! Constants of another type, or finer than the column, as pruning bounds in a column's
//! own units.
//!
//! A qual `column op constant` prunes by comparing the constant with a part's or a
//! granule's min/max, which are in the column's units. When the constant converts
//! exactly (an `int4` against an `int8` column), it serves as it is. When it falls
//! between two values the column can hold — a timestamp between two midnights against a
//! date column, `2.5` against `numeric(10,0)` — the comparison is rewritten to an equal
//! one on the value below: `x < 2.5` and `x <= 2.5` mean `x <= 2`, `x > 2.5` and
//! `x >= 2.5` mean `x > 2`, and `x = 2.5` holds for no value (no bound: the qual is left
//! to Postgres). Infinities compare as the column's own infinities.

use crate::columnar::prune::Op;

/// Microseconds per day.
pub const USECS_PER_DAY: i64 = 86_400_000_000;
/// The first microsecond past PostgreSQL's timestamp range (294277-01-01 00:00:00).
pub const END_OF_TIMESTAMPS: i64 = 9_223_371_331_200_000_000;

/// The operator with its sides swapped (`c < x` is `x > c`).
pub fn flip(op: Op) -> Op {
    match op {
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        Op::Eq => Op::Eq,
    }
}

/// `x op c` for a constant strictly between `floor` and `floor + 1`, as a comparison
/// with `floor`; `None` for equality, which no value satisfies.
pub fn between(op: Op, floor: i64) -> Option<(Op, i64)> {
    match op {
        Op::Lt | Op::Le => Some((Op::Le, floor)),
        Op::Gt | Op::Ge => Some((Op::Gt, floor)),
        Op::Eq => None,
    }
}

/// A timestamp (microseconds) as a bound for a date column (days).
pub fn date_bound(timestamp: i64, op: Op) -> Option<(Op, i64)> {
    // Infinite timestamps equal the infinite dates (PostgreSQL compares them so), not
    // the last finite day.
    if timestamp == i64::MAX {
        return Some((op, i64::from(i32::MAX)));
    }
    if timestamp == i64::MIN {
        return Some((op, i64::from(i32::MIN)));
    }
    let (day, rest) = (
        timestamp.div_euclid(USECS_PER_DAY),
        timestamp.rem_euclid(USECS_PER_DAY),
    );
    if rest == 0 {
        Some((op, day))
    } else {
        between(op, day)
    }
}

/// A date (days) as a bound for a timestamp column (microseconds); `None` for a date
/// past the last timestamp (later than every finite one: no bound).
pub fn timestamp_bound(date: i32) -> Option<i64> {
    match date {
        // Infinite dates compare as the infinite timestamps.
        i32::MAX => Some(i64::MAX),
        i32::MIN => Some(i64::MIN),
        d => i64::from(d)
            .checked_mul(USECS_PER_DAY)
            .filter(|&ts| ts < END_OF_TIMESTAMPS),
    }
}

/// A finite numeric constant (`mantissa` · 10^-`dscale`) as a bound for a numeric column
/// of `scale` stored as scaled integers.
pub fn numeric_bound(mantissa: i128, dscale: u16, scale: u16, op: Op) -> Option<(Op, i64)> {
    let (floor, exact) = crate::columnar::numeric::rescale(mantissa, dscale, scale);
    let floor = i64::try_from(floor)
        .ok()
        .filter(|&f| f != crate::columnar::numeric::NAN)?;
    if exact {
        Some((op, floor))
    } else {
        between(op, floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn holds(op: Op, a: i128, b: i128) -> bool {
        match op {
            Op::Eq => a == b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }

    const OPS: [Op; 5] = [Op::Eq, Op::Lt, Op::Le, Op::Gt, Op::Ge];

    proptest! {
        /// For every date near a timestamp, `date op timestamp` (compared as PostgreSQL
        /// does, the date at midnight) agrees with the rewritten bound.
        #[test]
        fn timestamp_bounds_on_dates_agree_with_the_comparison(
            ts in -1_000_000_000_000_000i64..1_000_000_000_000_000,
        ) {
            let day = ts.div_euclid(USECS_PER_DAY);
            for op in OPS {
                let bound = date_bound(ts, op);
                for d in day - 2..=day + 2 {
                    let truth = holds(op, i128::from(d) * i128::from(USECS_PER_DAY), i128::from(ts));
                    match bound {
                        Some((bop, b)) => prop_assert_eq!(holds(bop, d.into(), b.into()), truth),
                        // No bound only where no date can hold.
                        None => prop_assert!(!truth),
                    }
                }
            }
        }

        /// The same for numeric constants against a column of `scale`.
        #[test]
        fn numeric_bounds_agree_with_the_comparison(
            mantissa in -10_000_000i128..10_000_000,
            dscale in 0u16..6,
            scale in 0u16..6,
        ) {
            for op in OPS {
                let bound = numeric_bound(mantissa, dscale, scale, op);
                // Column values v (scaled by 10^scale) near the constant; compare both
                // at the larger scale.
                let s = dscale.max(scale);
                let c = mantissa * 10i128.pow(u32::from(s - dscale));
                let centre = mantissa * 10i128.pow(u32::from(scale)) / 10i128.pow(u32::from(dscale));
                for v in centre - 3..=centre + 3 {
                    let truth = holds(op, v * 10i128.pow(u32::from(s - scale)), c);
                    match bound {
                        Some((bop, b)) => prop_assert_eq!(holds(bop, v, b.into()), truth),
                        None => prop_assert!(!truth),
                    }
                }
            }
        }
    }

    #[test]
    fn infinities_and_the_end_of_time() {
        assert_eq!(
            date_bound(i64::MAX, Op::Le),
            Some((Op::Le, i64::from(i32::MAX)))
        );
        assert_eq!(
            date_bound(i64::MIN, Op::Ge),
            Some((Op::Ge, i64::from(i32::MIN)))
        );
        assert_eq!(timestamp_bound(i32::MAX), Some(i64::MAX));
        assert_eq!(timestamp_bound(i32::MIN), Some(i64::MIN));
        assert_eq!(timestamp_bound(1), Some(USECS_PER_DAY));
        // 294277-01-01 and later are past the last timestamp.
        assert_eq!(
            timestamp_bound((END_OF_TIMESTAMPS / USECS_PER_DAY) as i32),
            None
        );
        assert_eq!(flip(Op::Lt), Op::Gt);
        assert_eq!(flip(Op::Eq), Op::Eq);
    }
}
