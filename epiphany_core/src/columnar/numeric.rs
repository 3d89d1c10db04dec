//! `numeric(p, s)` with `p <= 18` as a scaled 64-bit integer (`12.34` in `numeric(15,2)`
//! is 1234): a native, prunable, fast column instead of the opaque binary image.
//!
//! The bytes are Postgres's varlena payload of a numeric (after the length word): the
//! short or long header, then base-10000 digits. `NaN` is stored as `i64::MAX`, which
//! sorts above every number as `NaN` does in Postgres; the infinities cannot occur in a
//! column with a precision.

use crate::error::{Error, Result};

/// Largest precision stored natively: every value then fits in an i64 with room for
/// the NaN sentinel.
pub const MAX_PRECISION: u16 = 18;
/// The stored value of `NaN`.
pub const NAN: i64 = i64::MAX;

const SIGN_MASK: u16 = 0xC000;
const POS: u16 = 0x0000;
const NEG: u16 = 0x4000;
const SHORT: u16 = 0x8000;
const SPECIAL: u16 = 0xC000;
const NAN_HEADER: u16 = 0xC000;
const SHORT_SIGN_MASK: u16 = 0x2000;
const SHORT_DSCALE_MASK: u16 = 0x1F80;
const SHORT_DSCALE_SHIFT: u16 = 7;
const SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
const SHORT_WEIGHT_MASK: u16 = 0x003F;
const DSCALE_MASK: u16 = 0x3FFF;
const NBASE: i128 = 10_000;

/// A decoded numeric: `mantissa / 10^dscale`, or NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Number { mantissa: i128, dscale: u16 },
    NaN,
    Infinity { negative: bool },
}

fn corrupt(what: &str) -> Error {
    Error::Corrupted(format!("numeric value: {what}"))
}

/// Reads a numeric payload.
pub fn decode(payload: &[u8]) -> Result<Decoded> {
    if payload.len() < 2 {
        return Err(corrupt("too short"));
    }
    let header = u16::from_ne_bytes([payload[0], payload[1]]);
    let (negative, weight, dscale, digits) = match header & SIGN_MASK {
        SPECIAL => {
            return Ok(match header {
                NAN_HEADER => Decoded::NaN,
                0xD000 => Decoded::Infinity { negative: false },
                0xF000 => Decoded::Infinity { negative: true },
                _ => return Err(corrupt("unknown special value")),
            })
        }
        SHORT => {
            let negative = header & SHORT_SIGN_MASK != 0;
            let dscale = (header & SHORT_DSCALE_MASK) >> SHORT_DSCALE_SHIFT;
            let magnitude = (header & SHORT_WEIGHT_MASK) as i32;
            let weight = if header & SHORT_WEIGHT_SIGN_MASK != 0 {
                magnitude | !(SHORT_WEIGHT_MASK as i32)
            } else {
                magnitude
            };
            (negative, weight, dscale, &payload[2..])
        }
        sign @ (POS | NEG) => {
            if payload.len() < 4 {
                return Err(corrupt("long header too short"));
            }
            let weight = i16::from_ne_bytes([payload[2], payload[3]]) as i32;
            (sign == NEG, weight, header & DSCALE_MASK, &payload[4..])
        }
        _ => unreachable!("two bits"),
    };
    if digits.len() % 2 != 0 {
        return Err(corrupt("odd digit bytes"));
    }
    // value = sum(d_i * NBASE^(weight - i)); scaled by 10^dscale it is an integer.
    let mut mantissa: i128 = 0;
    for (i, d) in digits.chunks_exact(2).enumerate() {
        let d = i16::from_ne_bytes([d[0], d[1]]) as i128;
        if !(0..NBASE).contains(&d) {
            return Err(corrupt("digit out of range"));
        }
        let exp10 = 4 * (weight - i as i32) + dscale as i32;
        let term = if exp10 >= 0 {
            10i128
                .checked_pow(exp10 as u32)
                .and_then(|p| d.checked_mul(p))
                .ok_or_else(|| corrupt("too large"))?
        } else {
            let div = 10i128.checked_pow((-exp10) as u32).unwrap_or(i128::MAX);
            if d % div != 0 {
                return Err(corrupt("digits beyond the display scale"));
            }
            d / div
        };
        mantissa = mantissa
            .checked_add(term)
            .ok_or_else(|| corrupt("too large"))?;
    }
    Ok(Decoded::Number {
        mantissa: if negative { -mantissa } else { mantissa },
        dscale,
    })
}

/// A numeric payload of a column with `scale` as its stored integer.
pub fn to_scaled(payload: &[u8], scale: u16) -> Result<i64> {
    match decode(payload)? {
        Decoded::NaN => Ok(NAN),
        Decoded::Infinity { .. } => Err(corrupt("infinity in a column with a precision")),
        Decoded::Number { mantissa, dscale } => {
            let (value, exact) = rescale(mantissa, dscale, scale);
            if !exact {
                return Err(corrupt("more fractional digits than the column's scale"));
            }
            i64::try_from(value)
                .ok()
                .filter(|&v| v != NAN && v != i64::MIN)
                .ok_or_else(|| corrupt("too large for its precision"))
        }
    }
}

/// `mantissa / 10^dscale` as a multiple of `10^-scale`: the floor, and whether it is exact.
pub fn rescale(mantissa: i128, dscale: u16, scale: u16) -> (i128, bool) {
    if scale >= dscale {
        let factor = 10i128.saturating_pow(u32::from(scale - dscale));
        (mantissa.saturating_mul(factor), true)
    } else {
        let div = 10i128.saturating_pow(u32::from(dscale - scale));
        (mantissa.div_euclid(div), mantissa.rem_euclid(div) == 0)
    }
}

/// A numeric payload built on the stack (at most a 4-byte header and 6 digits of a
/// 64-bit integer scaled by up to 3 more decimals): scans make one per value.
#[derive(Clone, Copy)]
pub struct Payload {
    bytes: [u8; 24],
    len: usize,
}

impl Payload {
    fn push(&mut self, b: [u8; 2]) {
        self.bytes[self.len..self.len + 2].copy_from_slice(&b);
        self.len += 2;
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::ops::Deref::deref(self).fmt(f)
    }
}

/// The payload Postgres would make for the stored integer `value` of a column with
/// `scale` (short header when it fits, as Postgres writes it; trailing and leading zero
/// digits stripped; display scale = `scale`).
pub fn from_scaled(value: i64, scale: u16) -> Payload {
    let mut out = Payload {
        bytes: [0; 24],
        len: 0,
    };
    if value == NAN {
        out.push(NAN_HEADER.to_ne_bytes());
        return out;
    }
    let negative = value < 0;
    // Align the decimal point to a digit boundary: pad to a multiple of 4 fractional digits.
    let pad = (4 - scale % 4) % 4;
    let mut abs = u128::from(value.unsigned_abs()) * 10u128.pow(u32::from(pad));
    let frac_groups = i32::from((scale + pad) / 4);
    // Base-10000 digits, least significant first (u64 arithmetic when it fits).
    let mut groups = [0i16; 8];
    let mut n = 0;
    if let Ok(mut small) = u64::try_from(abs) {
        while small > 0 {
            groups[n] = (small % NBASE as u64) as i16;
            small /= NBASE as u64;
            n += 1;
        }
    } else {
        while abs > 0 {
            groups[n] = (abs % NBASE as u128) as i16;
            abs /= NBASE as u128;
            n += 1;
        }
    }
    // groups[0] is the least significant; its weight is -frac_groups.
    let mut low = 0;
    while low < n && groups[low] == 0 {
        low += 1;
    }
    let digits = &groups[low..n];
    let weight = if digits.is_empty() {
        0
    } else {
        n as i32 - 1 - frac_groups
    };
    let negative = negative && !digits.is_empty();
    let short_ok =
        scale <= (SHORT_DSCALE_MASK >> SHORT_DSCALE_SHIFT) && (-64..=63).contains(&weight);
    if short_ok {
        let mut header = SHORT | (scale << SHORT_DSCALE_SHIFT);
        if negative {
            header |= SHORT_SIGN_MASK;
        }
        if weight < 0 {
            header |= SHORT_WEIGHT_SIGN_MASK;
        }
        header |= (weight as u16) & SHORT_WEIGHT_MASK;
        out.push(header.to_ne_bytes());
    } else {
        let header = (if negative { NEG } else { POS }) | (scale & DSCALE_MASK);
        out.push(header.to_ne_bytes());
        out.push((weight as i16).to_ne_bytes());
    }
    for d in digits.iter().rev() {
        out.push(d.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn show(v: i64, scale: u16) -> String {
        if v == NAN {
            return "NaN".into();
        }
        let s = (v as i128).abs().to_string();
        let s = format!("{:0>width$}", s, width = scale as usize + 1);
        let (int, frac) = s.split_at(s.len() - scale as usize);
        let sign = if v < 0 { "-" } else { "" };
        if scale == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }

    #[test]
    fn known_encodings_match_postgres() {
        // 12.34 as numeric(15,2): short header, dscale 2, weight 0, digits 12, 3400.
        let p = from_scaled(1234, 2);
        assert_eq!(
            p.to_vec(),
            [0x8000u16 | (2 << 7), 12, 3400]
                .iter()
                .flat_map(|x| x.to_ne_bytes())
                .collect::<Vec<u8>>()
        );
        assert_eq!(to_scaled(&p, 2).unwrap(), 1234);
        // Zero: no digits.
        assert_eq!(
            from_scaled(0, 2).to_vec(),
            (0x8000u16 | (2 << 7)).to_ne_bytes().to_vec()
        );
        assert_eq!(to_scaled(&from_scaled(NAN, 3), 3).unwrap(), NAN);
        assert!(
            to_scaled(&from_scaled(125, 3), 2).is_err(),
            "0.125 has three decimals"
        );
        assert_eq!(rescale(125, 3, 2), (12, false));
        assert_eq!(rescale(-125, 3, 2), (-13, false));
        assert_eq!(rescale(5, 0, 2), (500, true));
    }

    proptest! {
        #[test]
        fn any_value_round_trips(v in -999_999_999_999_999_999i64..=999_999_999_999_999_999i64, scale in 0u16..=18) {
            let p = from_scaled(v, scale);
            prop_assert_eq!(to_scaled(&p, scale).unwrap(), v, "{}", show(v, scale));
            match decode(&p).unwrap() {
                Decoded::Number { mantissa, dscale } => {
                    prop_assert_eq!(mantissa, v as i128);
                    prop_assert_eq!(dscale, scale);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode(&bytes);
            let _ = to_scaled(&bytes, 4);
        }
    }
}
