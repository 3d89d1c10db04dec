//! Partial states in the bytes Postgres's own serialization functions write, so that
//! the stock Finalize Aggregate deserializes and combines them: `int8_avg_serialize`
//! (the state of `sum(int8)`, `avg(int8)`) and `numeric_avg_serialize` (`sum`/`avg` of
//! `numeric`). Both embed a number as `numericvar_serialize` writes it (32-bit header
//! fields, 16-bit digits) in every major we support (15–18); earlier majors wrote
//! `numeric_send`'s image instead, and the tests on PostgreSQL 15 and 18 hold us to it.

use arrow_buffer::i256;

/// A number as Postgres's `NumericVar`: base-10000 digits, most significant first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumericVar {
    pub weight: i32,
    pub negative: bool,
    pub dscale: u16,
    pub digits: Vec<i16>,
}

const NUMERIC_POS: i32 = 0x0000;
const NUMERIC_NEG: i32 = 0x4000;

impl NumericVar {
    /// `mantissa / 10^dscale`, leading and trailing zero digits stripped (zero has none).
    pub fn new(mantissa: i256, dscale: u16) -> NumericVar {
        let negative = mantissa < i256::ZERO;
        let pad = (4 - dscale % 4) % 4;
        let ten = i256::from_i128(10);
        let mut abs = if negative {
            mantissa.wrapping_neg()
        } else {
            mantissa
        };
        abs = abs.wrapping_mul(ten.wrapping_pow(u32::from(pad)));
        let fraction_groups = i32::from((dscale + pad) / 4);
        let base = i256::from_i128(10_000);
        let mut digits = Vec::new();
        while abs > i256::ZERO {
            digits.push(abs.wrapping_rem(base).as_i128() as i16);
            abs = abs.wrapping_div(base);
        }
        digits.reverse();
        let weight = digits.len() as i32 - 1 - fraction_groups;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return NumericVar {
                weight: 0,
                negative: false,
                dscale,
                digits,
            };
        }
        NumericVar {
            weight,
            negative,
            dscale,
            digits,
        }
    }

    /// `numericvar_serialize`: ndigits, weight, sign, dscale, then the digits.
    fn write(&self, out: &mut Vec<u8>) {
        let sign = if self.negative {
            NUMERIC_NEG
        } else {
            NUMERIC_POS
        };
        let header = [
            self.digits.len() as i32,
            self.weight,
            sign,
            i32::from(self.dscale),
        ];
        for h in header {
            out.extend_from_slice(&h.to_be_bytes());
        }
        for d in &self.digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
    }
}

/// `int8_avg_serialize`: the count, then the sum.
pub fn poly_state(n: i64, sum: i128) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&n.to_be_bytes());
    NumericVar::new(i256::from_i128(sum), 0).write(&mut out);
    out
}

/// `numeric_avg_serialize`: count, sum, the largest scale and how many had it, the
/// NaN, +Infinity and -Infinity counts (no infinities: columns with a precision and
/// exact arithmetic on them never hold one).
pub fn numeric_state(n: i64, nan: i64, sum: i256, scale: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&n.to_be_bytes());
    NumericVar::new(sum, scale).write(&mut out);
    let (max_scale, max_scale_count) = if n > 0 { (i32::from(scale), n) } else { (0, 0) };
    out.extend_from_slice(&max_scale.to_be_bytes());
    out.extend_from_slice(&max_scale_count.to_be_bytes());
    for count in [nan, 0, 0] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(m: i128, s: u16) -> NumericVar {
        NumericVar::new(i256::from_i128(m), s)
    }

    #[test]
    fn numeric_vars_are_postgres_digits() {
        // 123.45: digits 0123 . 4500 → [123, 4500], weight 0.
        assert_eq!(
            var(12345, 2),
            NumericVar {
                weight: 0,
                negative: false,
                dscale: 2,
                digits: vec![123, 4500]
            }
        );
        // 100000000 = 1 0000 0000: trailing zero digits stripped, weight stays 2.
        assert_eq!(
            var(100_000_000, 0),
            NumericVar {
                weight: 2,
                negative: false,
                dscale: 0,
                digits: vec![1]
            }
        );
        // -0.0005
        assert_eq!(
            var(-5, 4),
            NumericVar {
                weight: -1,
                negative: true,
                dscale: 4,
                digits: vec![5]
            }
        );
        // 0.00001 (dscale 5): 0.0000 1000 → [1000] at weight -2.
        assert_eq!(
            var(1, 5),
            NumericVar {
                weight: -2,
                negative: false,
                dscale: 5,
                digits: vec![1000]
            }
        );
        assert_eq!(
            var(0, 2),
            NumericVar {
                weight: 0,
                negative: false,
                dscale: 2,
                digits: vec![]
            }
        );
    }

    #[test]
    fn states_are_laid_out_as_postgres_serializes_them() {
        let p = poly_state(3, 7);
        assert_eq!(&p[..8], &3i64.to_be_bytes());
        // ndigits 1, weight 0, sign +, dscale 0, the digit 7.
        let header: Vec<u8> = [1i32, 0, 0, 0]
            .iter()
            .flat_map(|h| h.to_be_bytes())
            .collect();
        assert_eq!(&p[8..24], &header[..]);
        assert_eq!(&p[24..], &7i16.to_be_bytes());
        // 2.50: digits [2, 5000]; then maxScale, maxScaleCount and the three counts.
        let n = numeric_state(2, 1, i256::from_i128(250), 2);
        assert_eq!(n.len(), 8 + 16 + 2 * 2 + 4 + 8 + 24);
        assert_eq!(&n[n.len() - 24..n.len() - 16], &1i64.to_be_bytes());
    }
}
