//! Product quantization and the IVF-PQ search built on it.
//!
//! A vector of `dims` is cut into `m` sub-vectors, each replaced by the nearest of
//! `2^bits` codewords of its subspace (one byte when `bits <= 8`): a 768-dimension
//! vector (3 KB) becomes 96 bytes at `m = 96`. A query's distance to a code is a sum of
//! `m` table lookups (asymmetric distance computation). IVF first sends each vector to
//! the nearest of `lists` coarse centroids and quantizes its residual; a search probes
//! the nearest lists, ranks their codes, and reranks the best with exact distances.

use crate::error::{Error, Result};
use crate::vector::distance::{dot, l2_squared};
use crate::vector::hnsw::Metric;
use crate::vector::kmeans;

#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    pub dims: usize,
    pub m: usize,
    pub bits: u32,
    /// `m × 2^bits × (dims / m)` values: codeword `c` of subspace `s` at
    /// `(s × 2^bits + c) × dsub`.
    pub codebooks: Vec<f32>,
}

impl ProductQuantizer {
    fn dsub(&self) -> usize {
        self.dims / self.m
    }

    fn codewords(&self) -> usize {
        1 << self.bits
    }

    /// `m` when the user leaves it to us: a divisor of `dims` near four dimensions per
    /// sub-quantizer, but at least `min(dims, 16)` sub-quantizers. Low-dimensional
    /// vectors get one per dimension (scalar quantization): a shared 256-word codebook
    /// over 3 dimensions ranked near neighbours so coarsely that recall collapsed, while
    /// the code stays a few bytes either way.
    pub fn auto_m(dims: usize) -> usize {
        let least = dims.min(16);
        (least..=dims)
            .filter(|m| dims.is_multiple_of(*m))
            .min_by_key(|m| (dims / m).abs_diff(4) * 1000 + m)
            .unwrap_or(dims.max(1))
    }

    /// Checks the shape: `m` divides `dims`, `bits` in 1..=8.
    pub fn check_shape(dims: usize, m: usize, bits: u32) -> Result<()> {
        if m == 0 || !dims.is_multiple_of(m) {
            return Err(Error::InvalidParameter {
                name: "pq_m".into(),
                detail: format!("{m} must divide the {dims} dimensions"),
            });
        }
        if !(1..=8).contains(&bits) {
            return Err(Error::InvalidParameter {
                name: "pq_bits".into(),
                detail: format!("{bits} is outside 1..8"),
            });
        }
        Ok(())
    }

    /// Trains the codebooks on `sample` (flat, `n × dims`).
    pub fn train(sample: &[f32], dims: usize, m: usize, bits: u32, seed: u64) -> Result<Self> {
        Self::check_shape(dims, m, bits)?;
        let n = sample.len() / dims;
        let dsub = dims / m;
        let k = 1usize << bits;
        let mut codebooks = Vec::with_capacity(m * k * dsub);
        let mut sub = Vec::with_capacity(n * dsub);
        for s in 0..m {
            sub.clear();
            for p in sample.chunks_exact(dims) {
                sub.extend_from_slice(&p[s * dsub..(s + 1) * dsub]);
            }
            codebooks.extend(kmeans::train(
                &sub,
                dsub,
                k,
                20,
                seed.wrapping_add(s as u64),
            )?);
        }
        Ok(ProductQuantizer {
            dims,
            m,
            bits,
            codebooks,
        })
    }

    fn codebook(&self, s: usize) -> &[f32] {
        let size = self.codewords() * self.dsub();
        &self.codebooks[s * size..(s + 1) * size]
    }

    /// One byte per subspace: the nearest codeword.
    pub fn encode(&self, v: &[f32]) -> Vec<u8> {
        let dsub = self.dsub();
        (0..self.m)
            .map(|s| kmeans::nearest(self.codebook(s), dsub, &v[s * dsub..(s + 1) * dsub]).0 as u8)
            .collect()
    }

    pub fn decode(&self, codes: &[u8]) -> Vec<f32> {
        let dsub = self.dsub();
        codes
            .iter()
            .enumerate()
            .flat_map(|(s, &c)| {
                self.codebook(s)[c as usize * dsub..(c as usize + 1) * dsub]
                    .iter()
                    .copied()
            })
            .collect()
    }

    /// Per subspace and codeword, its contribution to the distance from `query`: squared
    /// L2, or the negative inner product.
    pub fn table(&self, query: &[f32], metric: Metric) -> Vec<f32> {
        let dsub = self.dsub();
        let mut t = Vec::with_capacity(self.m * self.codewords());
        for s in 0..self.m {
            let q = &query[s * dsub..(s + 1) * dsub];
            for c in self.codebook(s).chunks_exact(dsub) {
                t.push(match metric {
                    Metric::L2 => l2_squared(q, c),
                    Metric::InnerProduct | Metric::Cosine => -dot(q, c),
                });
            }
        }
        t
    }

    /// The distance a code stands for, from a [`table`](Self::table).
    pub fn distance(&self, table: &[f32], codes: &[u8]) -> f32 {
        let k = self.codewords();
        codes
            .iter()
            .enumerate()
            .map(|(s, &c)| table[s * k + c as usize])
            .sum()
    }
}

/// An IVF-PQ index in memory: what a build computes before it writes pages, and what the
/// tests measure recall on.
pub struct IvfPq {
    pub dims: usize,
    pub metric: Metric,
    /// `lists × dims`.
    pub centroids: Vec<f32>,
    pub pq: ProductQuantizer,
    /// Per list: (row id, codes of the residual).
    pub lists: Vec<Vec<(u64, Vec<u8>)>>,
}

/// Vectors with a component beyond this are left out of training: squared distances
/// between such vectors overflow `f32` and would make centroids and codewords infinite
/// (they are still indexed, and rank last).
const TRAINABLE_MAGNITUDE: f32 = 1e15;

/// Whether a (prepared) vector may train centroids and codebooks: finite (a zero vector
/// under cosine prepares to NaNs) and not so large that distances overflow.
pub fn trainable(v: &[f32]) -> bool {
    v.iter().all(|x| x.abs() <= TRAINABLE_MAGNITUDE)
}

impl IvfPq {
    /// Trains centroids and codebooks on `sample`, leaving out the vectors that are not
    /// [`trainable`] (with none left, the model is [`IvfPq::untrained`]). Cosine works on
    /// normalized vectors (the caller normalizes both what it adds and what it searches
    /// for).
    pub fn train(
        sample: &[f32],
        dims: usize,
        lists: usize,
        m: usize,
        bits: u32,
        metric: Metric,
        seed: u64,
    ) -> Result<Self> {
        ProductQuantizer::check_shape(dims, m, bits)?;
        let kept: Vec<f32>;
        let sample = if sample.chunks_exact(dims).all(trainable) {
            sample
        } else {
            kept = sample
                .chunks_exact(dims)
                .filter(|v| trainable(v))
                .flatten()
                .copied()
                .collect();
            &kept
        };
        if sample.is_empty() {
            return Ok(Self::untrained(dims, m, bits, metric));
        }
        let lists = lists.min(sample.len() / dims);
        let centroids = kmeans::train(sample, dims, lists, 20, seed)?;
        let mut residuals = Vec::with_capacity(sample.len());
        for p in sample.chunks_exact(dims) {
            let (c, _) = kmeans::nearest(&centroids, dims, p);
            residuals.extend(p.iter().zip(&centroids[c * dims..]).map(|(x, y)| x - y));
        }
        let pq = ProductQuantizer::train(&residuals, dims, m, bits, seed ^ 0x51)?;
        Ok(IvfPq {
            dims,
            metric,
            lists: vec![Vec::new(); lists],
            centroids,
            pq,
        })
    }

    /// A model without training: one zero centroid and zero codebooks (every row goes to
    /// list 0 and ranks only by its exact distance) until a REINDEX trains one.
    pub fn untrained(dims: usize, m: usize, bits: u32, metric: Metric) -> IvfPq {
        IvfPq {
            dims,
            metric,
            centroids: vec![0.0; dims],
            pq: ProductQuantizer {
                dims,
                m,
                bits,
                codebooks: vec![0.0; dims * (1 << bits)],
            },
            lists: vec![Vec::new()],
        }
    }

    /// The list `v` belongs to and the codes of its residual.
    pub fn assign(&self, v: &[f32]) -> (usize, Vec<u8>) {
        let (c, _) = kmeans::nearest(&self.centroids, self.dims, v);
        let centre = &self.centroids[c * self.dims..(c + 1) * self.dims];
        let residual: Vec<f32> = v.iter().zip(centre).map(|(x, y)| x - y).collect();
        (c, self.pq.encode(&residual))
    }

    pub fn add(&mut self, id: u64, v: &[f32]) {
        let (list, codes) = self.assign(v);
        self.lists[list].push((id, codes));
    }

    /// The `probes` lists nearest to `query` (by the index's metric: for inner product the
    /// centroids with the largest product hold the best candidates, not the nearest).
    pub fn probe_order(&self, query: &[f32], probes: usize) -> Vec<usize> {
        let mut order: Vec<(f32, usize)> = self
            .centroids
            .chunks_exact(self.dims)
            .enumerate()
            .map(|(i, c)| match self.metric {
                Metric::InnerProduct => (-dot(c, query), i),
                Metric::L2 | Metric::Cosine => (l2_squared(c, query), i),
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        order.into_iter().take(probes).map(|(_, i)| i).collect()
    }

    /// What scoring the codes of `list` against `query` needs: the table of the
    /// residual and the centroid's term (the estimate is `base + pq.distance(table, code)`).
    pub fn list_table(&self, query: &[f32], list: usize) -> (Vec<f32>, f32) {
        let centre = &self.centroids[list * self.dims..(list + 1) * self.dims];
        match self.metric {
            Metric::L2 => {
                let residual: Vec<f32> = query.iter().zip(centre).map(|(q, c)| q - c).collect();
                (self.pq.table(&residual, Metric::L2), 0.0)
            }
            // <q, c + r> = <q, c> + <q, r>
            Metric::InnerProduct | Metric::Cosine => (
                self.pq.table(query, Metric::InnerProduct),
                -dot(query, centre),
            ),
        }
    }

    /// Estimated distance from `query` to every entry of `list`, by its code: the
    /// residual table plus the centroid's term.
    pub fn scan_list(&self, query: &[f32], list: usize, out: &mut Vec<(f32, u64)>) {
        let (table, base) = self.list_table(query, list);
        for (id, codes) in &self.lists[list] {
            out.push((base + self.pq.distance(&table, codes), *id));
        }
    }

    /// The `k` nearest ids: codes of `probes` lists ranked, the best `rerank` of them
    /// measured exactly with `exact` (the distance to a row's vector), nearest first.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        probes: usize,
        rerank: usize,
        mut exact: impl FnMut(u64) -> f32,
    ) -> Vec<(f32, u64)> {
        let mut candidates = Vec::new();
        for list in self.probe_order(query, probes) {
            self.scan_list(query, list, &mut candidates);
        }
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        candidates.truncate(rerank.max(k));
        let mut found: Vec<(f32, u64)> =
            candidates.iter().map(|&(_, id)| (exact(id), id)).collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        found.truncate(k);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::kmeans::tests::blobs;
    use std::collections::HashSet;

    #[test]
    fn codes_approximate_and_tables_match_decoding() {
        let data = blobs(2000, 16, 20, 5);
        let pq = ProductQuantizer::train(&data, 16, 4, 8, 9).unwrap();
        let mut err = 0.0;
        for p in data.chunks_exact(16).take(200) {
            let codes = pq.encode(p);
            assert_eq!(codes.len(), 4);
            let back = pq.decode(&codes);
            err += f64::from(l2_squared(p, &back));
            // ADC is exactly the distance to the decoded vector.
            let q: Vec<f32> = p.iter().map(|x| x * 0.5 + 1.0).collect();
            let table = pq.table(&q, Metric::L2);
            let via_table = pq.distance(&table, &codes);
            assert!((via_table - l2_squared(&q, &back)).abs() < 1e-2 * via_table.max(1.0));
            let table = pq.table(&q, Metric::InnerProduct);
            assert!(
                (pq.distance(&table, &codes) + dot(&q, &back)).abs() < 1e-2 * via_table.max(1.0)
            );
        }
        // Versus the spread of the data (centres in ±10): codes keep vectors close.
        assert!(err / 200.0 < 4.0, "mean squared error {}", err / 200.0);
        assert_eq!(pq, ProductQuantizer::train(&data, 16, 4, 8, 9).unwrap());
    }

    #[test]
    fn automatic_sub_quantizers() {
        assert_eq!(ProductQuantizer::auto_m(3), 3);
        assert_eq!(ProductQuantizer::auto_m(16), 16);
        assert_eq!(ProductQuantizer::auto_m(17), 17);
        assert_eq!(ProductQuantizer::auto_m(50), 25);
        assert_eq!(ProductQuantizer::auto_m(100), 25);
        assert_eq!(ProductQuantizer::auto_m(128), 32);
        assert_eq!(ProductQuantizer::auto_m(1536), 384);
        for dims in 1..300 {
            let m = ProductQuantizer::auto_m(dims);
            assert!(ProductQuantizer::check_shape(dims, m, 8).is_ok(), "{dims}");
        }
    }

    /// Uniform random 3-dimensional rows (as pgvector's own recall tests use): the
    /// nearest rows are near ties that a coarse code cannot rank.
    #[test]
    fn low_dimensional_rows_keep_their_recall_for_every_metric() {
        use crate::vector::kmeans::Rng;
        let (dims, n) = (3, 20_000);
        let mut rng = Rng::new(7);
        let data: Vec<f32> = (0..n * dims).map(|_| rng.next_f64() as f32).collect();
        let point = |id: u64| &data[id as usize * dims..(id as usize + 1) * dims];
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let prepared: Vec<f32> = data
                .chunks_exact(dims)
                .flat_map(|p| metric.prepare(p).into_owned())
                .collect();
            let m = ProductQuantizer::auto_m(dims);
            let mut index =
                IvfPq::train(&prepared, dims, 100, m, 8, metric.code_metric(), 3).unwrap();
            for (i, p) in prepared.chunks_exact(dims).enumerate() {
                index.add(i as u64, p);
            }
            let mut hits = 0;
            for _ in 0..50 {
                let q: Vec<f32> = (0..dims).map(|_| rng.next_f64() as f32).collect();
                let mut all: Vec<(f32, u64)> = (0..n as u64)
                    .map(|i| (metric.distance(point(i), &q), i))
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let want: HashSet<u64> = all.iter().take(20).map(|x| x.1).collect();
                let found = index.search(&metric.prepare(&q), 20, 10, 100, |id| {
                    metric.distance(point(id), &q)
                });
                hits += found.iter().filter(|x| want.contains(&x.1)).count();
            }
            let recall = hits as f64 / (20 * 50) as f64;
            assert!(recall >= 0.95, "{metric:?}: recall@20 {recall}");
        }
    }

    #[test]
    fn zero_and_huge_vectors_never_poison_training() {
        let dims = 4;
        let mut data = blobs(500, dims, 5, 3);
        let cosine = Metric::Cosine;
        data.extend(cosine.prepare(&[0.0; 4]).iter());
        data.extend([1e20, -1e20, 3e19, 1.0]);
        let mut index = IvfPq::train(&data, dims, 8, 2, 8, cosine.code_metric(), 1).unwrap();
        assert!(index
            .centroids
            .iter()
            .chain(&index.pq.codebooks)
            .all(|x| x.is_finite()));
        // Untrainable rows are still indexed (they rank last by their exact distance).
        index.add(0, &cosine.prepare(&[0.0; 4]));
        index.add(1, &[1e20, -1e20, 3e19, 1.0]);
        assert_eq!(index.lists.iter().map(Vec::len).sum::<usize>(), 2);
        let none = IvfPq::train(&[f32::NAN; 8], dims, 8, 2, 8, Metric::L2, 1).unwrap();
        assert_eq!(none.centroids, vec![0.0; dims]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(ProductQuantizer::check_shape(10, 3, 8).is_err());
        assert!(ProductQuantizer::check_shape(12, 3, 9).is_err());
        assert!(ProductQuantizer::check_shape(12, 0, 8).is_err());
        assert!(ProductQuantizer::check_shape(12, 3, 8).is_ok());
    }

    fn recall(metric: Metric) -> f64 {
        let dims = 32;
        let mut data = blobs(4100, dims, 40, 11);
        if metric == Metric::Cosine {
            for p in data.chunks_exact_mut(dims) {
                let n = crate::vector::l2_normalize(p);
                p.copy_from_slice(&n);
            }
        }
        let queries = data.split_off(4000 * dims);
        let mut index = IvfPq::train(&data, dims, 32, 8, 8, metric, 3).unwrap();
        for (i, p) in data.chunks_exact(dims).enumerate() {
            index.add(i as u64, p);
        }
        let point = |id: u64| &data[id as usize * dims..(id as usize + 1) * dims];
        let mut hits = 0;
        for q in queries.chunks_exact(dims) {
            let mut all: Vec<(f32, u64)> = (0..4000u64)
                .map(|i| (metric.distance(point(i), q), i))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            let want: HashSet<u64> = all.iter().take(10).map(|x| x.1).collect();
            let found = index.search(q, 10, 8, 100, |id| metric.distance(point(id), q));
            hits += found.iter().filter(|x| want.contains(&x.1)).count();
        }
        hits as f64 / (10 * 100) as f64
    }

    #[test]
    fn recall_at_10_with_rerank_is_high() {
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let r = recall(metric);
            assert!(r >= 0.95, "{metric:?}: recall@10 {r}");
        }
    }
}
