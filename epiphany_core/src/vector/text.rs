//! pgvector's text format, `[1,2.5,-3e-07]`, so literals and dumps move over unchanged.
//!
//! Elements print as Postgres prints `real` (shortest digits that read back to the same
//! value, exponent form below 1e-4 and from 1e6 on), which is what pgvector prints too.

use std::fmt::Write;

use crate::error::{Error, Result};
use crate::vector::{check_dims, check_finite};

fn malformed(input: &str, detail: &str) -> Error {
    Error::InvalidText {
        ty: "vector",
        input: input.into(),
        detail: detail.into(),
    }
}

/// A vector literal: `[`, elements separated by commas, `]`, with whitespace allowed
/// around every element and the brackets.
pub fn parse(input: &str) -> Result<Vec<f32>> {
    let s = input.trim_matches(is_space);
    let Some(body) = s.strip_prefix('[') else {
        return Err(malformed(input, "Vector contents must start with \"[\"."));
    };
    let Some(body) = body.strip_suffix(']') else {
        return Err(malformed(
            input,
            "Unexpected end of input, or junk after \"]\".",
        ));
    };
    if body.trim_matches(is_space).is_empty() {
        return Err(Error::Data("vector must have at least 1 dimension".into()));
    }
    let mut values = Vec::new();
    for token in body.split(',') {
        let token = token.trim_matches(is_space);
        if token.is_empty() {
            return Err(malformed(input, "Empty element."));
        }
        let value: f32 = token
            .parse()
            .map_err(|_| malformed(input, &format!("\"{token}\" is not a number.")))?;
        if value.is_infinite() && !spells_infinity(token) {
            return Err(Error::OutOfRange(format!(
                "\"{token}\" is out of range for type vector"
            )));
        }
        check_finite(value)?;
        values.push(value);
        check_dims(values.len())?;
    }
    Ok(values)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn spells_infinity(token: &str) -> bool {
    let t = token.trim_start_matches(['+', '-']).to_ascii_lowercase();
    t == "inf" || t == "infinity"
}

/// The literal of `values`, as pgvector writes it.
pub fn format(values: &[f32]) -> String {
    let mut out = String::with_capacity(values.len() * 8 + 2);
    out.push('[');
    for (i, &v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_real(&mut out, v);
    }
    out.push(']');
    out
}

/// `v` as Postgres's `float4out` prints it (shortest round-trip digits).
pub fn push_real(out: &mut String, v: f32) {
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // `{:e}` gives the shortest digits that read back to `v`: "d.ddde-x".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if !(-4..6).contains(&exp) {
        let _ = write!(
            out,
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
        return;
    }
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = digits.chars().filter(|c| *c != '.').collect();
    if negative {
        out.push('-');
    }
    // The decimal point goes after digit `exp + 1` (0 < digits), padding with zeros.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        for _ in 0..point as usize - digits.len() {
            out.push('0');
        }
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn real(v: f32) -> String {
        let mut s = String::new();
        push_real(&mut s, v);
        s
    }

    #[test]
    fn reals_print_like_postgres() {
        // Outputs of `SELECT x::real` on PostgreSQL 18.
        for (v, text) in [
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (100000.0, "100000"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (3.4028235e38, "3.4028235e+38"),
            (123.456, "123.456"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1e-45, "1e-45"),
        ] {
            assert_eq!(real(v), text, "{v}");
        }
    }

    #[test]
    fn literals_parse_with_pgvectors_leniency() {
        assert_eq!(parse("[1,2,3]").unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(
            parse("  [ 1 , -2.5e1,\t3 ] \n").unwrap(),
            vec![1.0, -25.0, 3.0]
        );
        assert_eq!(parse("[1e-50]").unwrap(), vec![0.0]);
        assert_eq!(format(&parse("[1.5,-0.25]").unwrap()), "[1.5,-0.25]");
    }

    #[test]
    fn bad_literals_are_errors_with_the_right_code() {
        for bad in [
            "", "1,2", "[1,2", "[1,,2]", "[1,2]x", "[a]", "[1 2]", "[,]", "(1,2)",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.sqlstate().0, "22P02", "{bad}: {e}");
        }
        assert_eq!(parse("[]").unwrap_err().sqlstate().0, "22000");
        assert_eq!(parse("[ ]").unwrap_err().sqlstate().0, "22000");
        for bad in ["[NaN]", "[1,nan]", "[inf]", "[-Infinity]"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.sqlstate().0, "22000", "{bad}: {e}");
        }
        assert_eq!(parse("[1e39]").unwrap_err().sqlstate().0, "22003");
        let big = format!("[{}]", vec!["1"; 16_001].join(","));
        assert_eq!(parse(&big).unwrap_err().sqlstate().0, "54000");
        let max = format!("[{}]", vec!["1"; 16_000].join(","));
        assert_eq!(parse(&max).unwrap().len(), 16_000);
    }

    proptest! {
        #[test]
        fn every_finite_vector_round_trips_through_text(
            v in prop::collection::vec(
                any::<f32>().prop_filter("finite", |x| x.is_finite()), 1..50)
        ) {
            let back = parse(&format(&v)).unwrap();
            prop_assert_eq!(
                back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }

        #[test]
        fn any_text_parses_or_errors_without_panicking(s in ".{0,40}") {
            let _ = parse(&s);
        }
    }
}
