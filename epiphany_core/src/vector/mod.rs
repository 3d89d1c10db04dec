//! Vectors of `f32`: the `vector` type's rules and arithmetic, distance kernels, and
//! (in later modules) the index algorithms. Pure Rust; `epiphany_vectorstore` is the glue.

#![forbid(unsafe_code)]

pub mod distance;
pub mod hnsw;
pub mod hnsw_node;
pub mod hnsw_repair;
pub mod ivf_page;
pub mod ivf_scan;
pub mod kmeans;
pub mod pq;
pub mod rerank;
pub mod text;

use std::cmp::Ordering;

use crate::error::{Error, Result};

/// Most dimensions a vector may have (pgvector's limit, so its data fits).
pub const MAX_DIM: usize = 16_000;

/// `n` dimensions are allowed in a vector.
pub fn check_dims(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::Data("vector must have at least 1 dimension".into()));
    }
    if n > MAX_DIM {
        return Err(Error::Limit(format!(
            "vector cannot have more than {MAX_DIM} dimensions"
        )));
    }
    Ok(())
}

/// NaN and infinities are not vector elements.
pub fn check_finite(x: f32) -> Result<()> {
    if x.is_nan() {
        return Err(Error::Data("NaN not allowed in vector".into()));
    }
    if x.is_infinite() {
        return Err(Error::Data("infinite value not allowed in vector".into()));
    }
    Ok(())
}

/// Checks every element and the dimension count.
pub fn check(values: &[f32]) -> Result<()> {
    check_dims(values.len())?;
    values.iter().try_for_each(|&x| check_finite(x))
}

/// Two vectors of one operation must have the same dimensions.
pub fn same_dims(a: &[f32], b: &[f32]) -> Result<()> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(Error::Data(format!(
            "different vector dimensions {} and {}",
            a.len(),
            b.len()
        )))
    }
}

/// A column's declared dimensions (the typmod) must match the value's.
pub fn check_typmod(values: &[f32], typmod: i32) -> Result<()> {
    if typmod >= 0 && values.len() != typmod as usize {
        return Err(Error::Data(format!(
            "expected {typmod} dimensions, not {}",
            values.len()
        )));
    }
    Ok(())
}

/// Element-wise `f`, for `+`, `-` and `*`; an overflow to infinity is an error.
pub fn elementwise(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Result<Vec<f32>> {
    same_dims(a, b)?;
    let out: Vec<f32> = a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    if out.iter().any(|x| x.is_infinite()) {
        return Err(Error::OutOfRange("value out of range: overflow".into()));
    }
    if out.iter().any(|x| x.is_nan()) {
        return Err(Error::OutOfRange("value out of range: NaN".into()));
    }
    Ok(out)
}

/// `a` followed by `b` (operator `||`); past [`MAX_DIM`] dimensions it is an error.
pub fn concat(a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    check_dims(a.len() + b.len())?;
    Ok([a, b].concat())
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f64 {
    a.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// `a` scaled to norm 1; the zero vector stays zero (as in pgvector).
pub fn l2_normalize(a: &[f32]) -> Vec<f32> {
    let n = norm(a);
    if n == 0.0 {
        return a.to_vec();
    }
    a.iter().map(|&x| (f64::from(x) / n) as f32).collect()
}

/// Btree order: element by element, then the shorter vector first.
pub fn compare(a: &[f32], b: &[f32]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.partial_cmp(y) {
            Some(Ordering::Equal) | None => continue,
            Some(o) => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// pgvector's binary format (`COPY … BINARY`, `send`/`recv`): dimensions as a big-endian
/// `i16`, an unused `i16`, then the elements as big-endian `f32`.
pub fn to_binary(a: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * a.len());
    out.extend_from_slice(&(a.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for x in a {
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

pub fn from_binary(bytes: &[u8]) -> Result<Vec<f32>> {
    let bad = |detail: &str| Error::Data(format!("invalid binary vector: {detail}"));
    if bytes.len() < 4 {
        return Err(bad("shorter than its header"));
    }
    let dims = i16::from_be_bytes([bytes[0], bytes[1]]);
    if dims < 0 {
        return Err(bad("negative dimensions"));
    }
    check_dims(dims as usize)?;
    if i16::from_be_bytes([bytes[2], bytes[3]]) != 0 {
        return Err(bad("the unused field must be 0"));
    }
    let body = &bytes[4..];
    if body.len() != 4 * dims as usize {
        return Err(bad(&format!(
            "{} bytes of elements for {dims} dimensions",
            body.len()
        )));
    }
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    check(&values)?;
    Ok(values)
}

/// Running sums for `avg(vector)` and `sum(vector)`, in `f64` so long sums stay exact
/// enough; `None` until the first vector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accumulator {
    pub count: u64,
    pub sums: Vec<f64>,
}

impl Accumulator {
    pub fn add(&mut self, v: &[f32]) -> Result<()> {
        if self.count == 0 {
            self.sums = vec![0.0; v.len()];
        } else if self.sums.len() != v.len() {
            return Err(Error::Data(format!(
                "different vector dimensions {} and {}",
                self.sums.len(),
                v.len()
            )));
        }
        for (s, &x) in self.sums.iter_mut().zip(v) {
            *s += f64::from(x);
        }
        self.count += 1;
        Ok(())
    }

    /// Both halves of a parallel aggregate, combined.
    pub fn merge(&mut self, other: &Accumulator) -> Result<()> {
        if other.count == 0 {
            return Ok(());
        }
        if self.count == 0 {
            *self = other.clone();
            return Ok(());
        }
        if self.sums.len() != other.sums.len() {
            return Err(Error::Data(format!(
                "different vector dimensions {} and {}",
                self.sums.len(),
                other.sums.len()
            )));
        }
        for (s, o) in self.sums.iter_mut().zip(&other.sums) {
            *s += o;
        }
        self.count += other.count;
        Ok(())
    }

    fn finish(&self, divisor: f64) -> Result<Option<Vec<f32>>> {
        if self.count == 0 {
            return Ok(None);
        }
        let out: Vec<f32> = self.sums.iter().map(|s| (s / divisor) as f32).collect();
        if out.iter().any(|x| !x.is_finite()) {
            return Err(Error::OutOfRange("value out of range: overflow".into()));
        }
        Ok(Some(out))
    }

    pub fn sum(&self) -> Result<Option<Vec<f32>>> {
        self.finish(1.0)
    }

    pub fn avg(&self) -> Result<Option<Vec<f32>>> {
        self.finish(self.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limits_and_checks() {
        assert!(check(&[1.0, 2.0]).is_ok());
        assert_eq!(check(&[]).unwrap_err().sqlstate().0, "22000");
        assert_eq!(check(&[f32::NAN]).unwrap_err().sqlstate().0, "22000");
        assert_eq!(
            check(&vec![0.0; MAX_DIM + 1]).unwrap_err().sqlstate().0,
            "54000"
        );
        assert!(check_typmod(&[1.0, 2.0], 2).is_ok());
        assert!(check_typmod(&[1.0, 2.0], -1).is_ok());
        assert!(check_typmod(&[1.0, 2.0], 3).is_err());
        assert!(same_dims(&[1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn concatenation_keeps_order_and_the_dimension_limit() {
        assert_eq!(concat(&[1.0, 2.0], &[3.0]).unwrap(), vec![1.0, 2.0, 3.0]);
        let half = vec![1.0; MAX_DIM / 2];
        assert_eq!(concat(&half, &half).unwrap().len(), MAX_DIM);
        assert_eq!(
            concat(&half, &[1.0; MAX_DIM / 2 + 1])
                .unwrap_err()
                .sqlstate()
                .0,
            "54000"
        );
    }

    #[test]
    fn arithmetic_and_overflow() {
        assert_eq!(
            elementwise(&[1.0, 2.0], &[3.0, 4.0], |x, y| x + y).unwrap(),
            vec![4.0, 6.0]
        );
        let e = elementwise(&[f32::MAX], &[f32::MAX], |x, y| x + y).unwrap_err();
        assert_eq!(e.sqlstate().0, "22003");
        assert!(elementwise(&[1.0], &[1.0, 2.0], |x, y| x * y).is_err());
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        assert_eq!(l2_normalize(&[3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(l2_normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn ordering_is_elementwise_then_by_length() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 3.0]), Ordering::Less);
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0]), Ordering::Equal);
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0, 0.0]), Ordering::Less);
        assert_eq!(compare(&[2.0], &[1.0, 5.0]), Ordering::Greater);
    }

    #[test]
    fn aggregates_sum_average_and_merge() {
        let mut a = Accumulator::default();
        assert_eq!(a.avg().unwrap(), None);
        a.add(&[1.0, 2.0]).unwrap();
        a.add(&[3.0, 4.0]).unwrap();
        let mut b = Accumulator::default();
        b.add(&[5.0, 6.0]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.sum().unwrap(), Some(vec![9.0, 12.0]));
        assert_eq!(a.avg().unwrap(), Some(vec![3.0, 4.0]));
        assert!(a.add(&[1.0]).is_err());
    }

    #[test]
    fn bad_binary_input_is_an_error() {
        assert!(from_binary(&[]).is_err());
        assert!(from_binary(&[0, 2, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(from_binary(&[0, 0, 0, 0]).is_err());
        assert!(from_binary(&[0xff, 0xff, 0, 0]).is_err());
        assert!(from_binary(&[0, 1, 0, 1, 0x3f, 0x80, 0, 0]).is_err());
        let nan = to_binary(&[f32::NAN]);
        assert!(from_binary(&nan).is_err());
    }

    proptest! {
        #[test]
        fn binary_round_trips(v in prop::collection::vec(-1e30f32..1e30, 1..100)) {
            prop_assert_eq!(from_binary(&to_binary(&v)).unwrap(), v);
        }

        #[test]
        fn any_bytes_decode_without_panicking(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = from_binary(&b);
        }
    }
}
