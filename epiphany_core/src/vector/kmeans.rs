//! k-means (Lloyd's iterations from a k-means++ start), seeded so training is
//! deterministic: the coarse centroids of IVF lists and the codebooks of product
//! quantization both come from here.

use crate::error::{Error, Result};
use crate::vector::distance::l2_squared;

/// A small, fast, seedable generator (splitmix64); not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
}

/// The index of the centroid nearest to `v`, and its squared distance.
pub fn nearest(centroids: &[f32], dims: usize, v: &[f32]) -> (usize, f32) {
    centroids
        .chunks_exact(dims)
        .enumerate()
        .map(|(i, c)| (i, l2_squared(c, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f32::INFINITY))
}

/// `k` centroids (flat, `k × dims`) of the points in `data` (flat, `n × dims`).
/// With fewer distinct points than `k`, some centroids repeat.
pub fn train(
    data: &[f32],
    dims: usize,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Result<Vec<f32>> {
    if dims == 0 || !data.len().is_multiple_of(dims) {
        return Err(Error::Internal(format!(
            "k-means over {} values of {dims} dimensions",
            data.len()
        )));
    }
    let n = data.len() / dims;
    if n == 0 || k == 0 {
        return Err(Error::Data(
            "k-means needs at least one point and one cluster".into(),
        ));
    }
    let point = |i: usize| &data[i * dims..(i + 1) * dims];
    let mut rng = Rng::new(seed);

    // k-means++: each next centre drawn with probability proportional to its squared
    // distance from the nearest centre so far.
    let mut centroids = Vec::with_capacity(k * dims);
    centroids.extend_from_slice(point(rng.below(n)));
    let mut best: Vec<f32> = (0..n)
        .map(|i| l2_squared(point(i), &centroids[..dims]))
        .collect();
    while centroids.len() < k * dims {
        let total: f64 = best.iter().map(|&d| f64::from(d)).sum();
        let next = if total <= 0.0 {
            rng.below(n)
        } else {
            let mut target = rng.next_f64() * total;
            let mut chosen = n - 1;
            for (i, &d) in best.iter().enumerate() {
                target -= f64::from(d);
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        let start = centroids.len();
        centroids.extend_from_slice(point(next));
        for (i, b) in best.iter_mut().enumerate() {
            *b = b.min(l2_squared(point(i), &centroids[start..start + dims]));
        }
    }

    let mut assignment = vec![usize::MAX; n];
    for _ in 0..iterations {
        let mut changed = 0;
        for (i, a) in assignment.iter_mut().enumerate() {
            let (c, _) = nearest(&centroids, dims, point(i));
            if *a != c {
                *a = c;
                changed += 1;
            }
        }
        let mut sums = vec![0f64; k * dims];
        let mut counts = vec![0usize; k];
        for (i, &a) in assignment.iter().enumerate() {
            counts[a] += 1;
            for (s, &x) in sums[a * dims..(a + 1) * dims].iter_mut().zip(point(i)) {
                *s += f64::from(x);
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                // An empty cluster restarts at the point farthest from its centre.
                let far = (0..n)
                    .max_by(|&x, &y| {
                        let dx = l2_squared(point(x), &centroids[assignment[x] * dims..][..dims]);
                        let dy = l2_squared(point(y), &centroids[assignment[y] * dims..][..dims]);
                        dx.total_cmp(&dy)
                    })
                    .unwrap_or(0);
                centroids[c * dims..(c + 1) * dims].copy_from_slice(point(far));
                continue;
            }
            for (dst, s) in centroids[c * dims..(c + 1) * dims]
                .iter_mut()
                .zip(&sums[c * dims..(c + 1) * dims])
            {
                *dst = (s / counts[c] as f64) as f32;
            }
        }
        if changed == 0 {
            break;
        }
    }
    Ok(centroids)
}

/// Mean squared distance of the points to their nearest centroid.
pub fn inertia(data: &[f32], dims: usize, centroids: &[f32]) -> f64 {
    let n = data.len() / dims;
    data.chunks_exact(dims)
        .map(|p| f64::from(nearest(centroids, dims, p).1))
        .sum::<f64>()
        / n.max(1) as f64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn blobs(n: usize, dims: usize, clusters: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let centres: Vec<f32> = (0..clusters * dims)
            .map(|_| (rng.next_f64() * 20.0 - 10.0) as f32)
            .collect();
        let mut out = Vec::with_capacity(n * dims);
        for i in 0..n {
            let c = i % clusters;
            for d in 0..dims {
                out.push(centres[c * dims + d] + (rng.next_f64() * 2.0 - 1.0) as f32);
            }
        }
        out
    }

    #[test]
    fn finds_well_separated_clusters_deterministically() {
        let data = blobs(2000, 8, 10, 1);
        let a = train(&data, 8, 10, 25, 42).unwrap();
        let b = train(&data, 8, 10, 25, 42).unwrap();
        assert_eq!(a, b);
        // Points are within ±1 of their centre in each of 8 dimensions: mean squared
        // distance about 8/3 when every cluster is found.
        let i = inertia(&data, 8, &a);
        assert!(i < 4.0, "inertia {i}");
        let one = train(&data, 8, 1, 25, 42).unwrap();
        assert!(inertia(&data, 8, &one) > 10.0 * i);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(train(&[], 2, 3, 5, 0).is_err());
        assert!(train(&[1.0, 2.0, 3.0], 2, 1, 5, 0).is_err());
        // Fewer points than clusters: still k centroids, every point matched exactly.
        let c = train(&[1.0, 1.0, 2.0, 2.0], 2, 4, 5, 0).unwrap();
        assert_eq!(c.len(), 8);
        assert_eq!(inertia(&[1.0, 1.0, 2.0, 2.0], 2, &c), 0.0);
    }
}
