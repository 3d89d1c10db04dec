//! Distance kernels: squared L2, inner product, cosine.
//!
//! Each kernel is written once, in a shape the compiler vectorizes (eight independent
//! lanes), and compiled for AVX2+FMA and AVX-512 besides the baseline; the best version
//! the CPU has is picked at run time. [`scalar`] holds the baseline versions, which the
//! tests hold the dispatched ones to.

use multiversion::multiversion;

const LANES: usize = 8;

/// The shared body: `f` combines one pair of elements into a lane.
#[inline(always)]
fn fold(a: &[f32], b: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let chunks = n / LANES;
    for c in 0..chunks {
        let x = &a[c * LANES..(c + 1) * LANES];
        let y = &b[c * LANES..(c + 1) * LANES];
        for l in 0..LANES {
            acc[l] = f(acc[l], x[l], y[l]);
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * LANES..n {
        tail = f(tail, a[i], b[i]);
    }
    // Pairwise, so every version adds in the same order.
    let s4 = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (s4[0] + s4[2]) + (s4[1] + s4[3]) + tail
}

#[inline(always)]
fn l2_body(acc: f32, x: f32, y: f32) -> f32 {
    let d = x - y;
    d.mul_add(d, acc)
}

#[inline(always)]
fn dot_body(acc: f32, x: f32, y: f32) -> f32 {
    x.mul_add(y, acc)
}

/// Squared Euclidean distance.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    fold(a, b, l2_body)
}

/// Inner product.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    fold(a, b, dot_body)
}

/// Inner product of `a` with itself and with `b`, and of `b` with itself, in one pass.
#[multiversion(targets("x86_64+avx512f+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub fn dot3(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    (
        fold(a, b, dot_body),
        fold(a, a, dot_body),
        fold(b, b, dot_body),
    )
}

/// Euclidean distance.
pub fn l2(a: &[f32], b: &[f32]) -> f64 {
    f64::from(l2_squared(a, b)).sqrt()
}

/// Cosine distance, `1 - cos(a, b)`, in [0, 2]; NaN when either vector is zero
/// (pgvector's behaviour: such rows sort last and never match).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (ab, aa, bb) = dot3(a, b);
    let similarity = f64::from(ab) / (f64::from(aa) * f64::from(bb)).sqrt();
    if similarity.is_nan() {
        return f64::NAN;
    }
    1.0 - similarity.clamp(-1.0, 1.0)
}

/// The baseline (no SIMD extension) versions.
pub mod scalar {
    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        super::fold(a, b, super::l2_body)
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::fold(a, b, super::dot_body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_l2(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum()
    }

    fn exact_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        (f64::from(got) - want).abs() <= 1e-4 * scale.max(1.0)
    }

    #[test]
    fn known_values() {
        assert_eq!(l2(&[1.0, 2.0, 3.0], &[4.0, 6.0, 3.0]), 5.0);
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]) - 1.0 < 1e-12);
        assert!(cosine(&[1.0, 1.0], &[2.0, 2.0]).abs() < 1e-7);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0).abs() < 1e-12);
        assert!(cosine(&[0.0, 0.0], &[1.0, 1.0]).is_nan());
    }

    proptest! {
        #[test]
        fn dispatched_kernels_agree_with_the_scalar_ones_and_with_f64(
            pairs in prop::collection::vec((-100.0f32..100.0, -100.0f32..100.0), 0..300)
        ) {
            let a: Vec<f32> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<f32> = pairs.iter().map(|p| p.1).collect();
            let scale = exact_dot(&a, &a) + exact_dot(&b, &b);
            prop_assert!(close(l2_squared(&a, &b), exact_l2(&a, &b), scale));
            prop_assert!(close(scalar::l2_squared(&a, &b), exact_l2(&a, &b), scale));
            prop_assert!(close(dot(&a, &b), exact_dot(&a, &b), scale));
            prop_assert!(close(scalar::dot(&a, &b), exact_dot(&a, &b), scale));
            let (ab, aa, bb) = dot3(&a, &b);
            prop_assert!(close(ab, exact_dot(&a, &b), scale));
            prop_assert!(close(aa, exact_dot(&a, &a), scale));
            prop_assert!(close(bb, exact_dot(&b, &b), scale));
            let c = cosine(&a, &b);
            prop_assert!(c.is_nan() || (0.0..=2.0).contains(&c));
        }
    }
}
