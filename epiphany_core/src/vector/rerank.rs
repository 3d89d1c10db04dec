//! Returning IVF-PQ candidates in exact order while measuring as few as it takes.
//!
//! Candidates come ranked by an estimate (their compressed code); measuring one exactly
//! means reading its table row. A fixed rerank depth is either wasted (precise codes) or
//! too shallow (coarse codes, where the true neighbours sit deep in the estimated order:
//! recall stops rising however many lists are probed). [`RerankQueue`] instead learns
//! how far the estimates err from the candidates it has measured and returns a measured
//! row only once no unmeasured candidate could plausibly be nearer: its estimate minus
//! the error margin must not be below the row's exact distance. The margin is [`MARGIN`]
//! times the root mean square of estimate − exact, not mean + kσ: the candidates measured
//! are the best-estimated ones, so their errors lean negative, and a centred spread of
//! them would understate how far a candidate's estimate can overshoot. The depth then
//! follows the code's precision and how many rows the query takes (a LIMIT stops the
//! pulling).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::hnsw::Scored;

/// Candidates measured after the first batch, per step.
pub const STEP: usize = 16;

/// The margin in root mean square errors. On GloVe 50d with coarse codes (pq_m = 5, 10
/// dimensions a sub-quantizer; probes 32 of 100 lists) 1 reaches recall@10 0.988, 2 0.997
/// (the probes' ceiling) at 40% of 1's speed, 3 the same recall at 18%; with the default
/// codes (pq_m = 25) every choice reaches the ceiling (`scripts/bench vector`).
pub const MARGIN: f64 = 2.0;

#[derive(Default)]
pub struct RerankQueue {
    /// Unmeasured, by estimate (nearest on top).
    candidates: BinaryHeap<Reverse<Scored>>,
    /// Measured and not returned yet, by exact distance.
    measured: BinaryHeap<Reverse<Scored>>,
    /// Measured errors (estimate − exact) and the sum of their squares.
    errors: usize,
    squares: f64,
}

impl RerankQueue {
    pub fn clear(&mut self) {
        *self = RerankQueue::default();
    }

    pub fn push_candidate(&mut self, estimate: Scored) {
        self.candidates.push(Reverse(estimate));
    }

    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty() && self.measured.is_empty()
    }

    /// The `n` best-estimated candidates, taken out to be measured.
    pub fn take(&mut self, n: usize) -> Vec<Scored> {
        let mut batch = Vec::with_capacity(n.min(self.candidates.len()));
        while batch.len() < n {
            let Some(Reverse(c)) = self.candidates.pop() else {
                break;
            };
            batch.push(c);
        }
        batch
    }

    /// The exact distance of a taken candidate whose estimate was `estimate`, in the
    /// same units (rows the snapshot does not see are just not reported).
    pub fn measured(&mut self, estimate: f32, exact: Scored) {
        if estimate.is_finite() && exact.distance.is_finite() {
            let err = f64::from(estimate) - f64::from(exact.distance);
            self.errors += 1;
            self.squares += err * err;
        }
        self.measured.push(Reverse(exact));
    }

    /// How far below its estimate an unmeasured candidate's exact distance may plausibly
    /// lie; 0 before anything was measured (nothing to learn from: estimates are taken as
    /// exact).
    pub fn margin(&self) -> f64 {
        match self.errors {
            0 => 0.0,
            n => MARGIN * (self.squares / n as f64).sqrt(),
        }
    }

    /// The nearest measured row if no unmeasured candidate could be nearer; `None` when
    /// more must be measured first (or nothing is left).
    pub fn pop_ready(&mut self) -> Option<Scored> {
        let Reverse(best) = *self.measured.peek()?;
        if let Some(Reverse(next)) = self.candidates.peek() {
            if f64::from(next.distance) - self.margin() < f64::from(best.distance) {
                return None;
            }
        }
        self.measured.pop();
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(distance: f32, node: u64) -> Scored {
        Scored { distance, node }
    }

    /// Exact distances are node ids; estimates add noise of `noise` amplitude.
    fn queue(n: u64, noise: impl Fn(u64) -> f32) -> (RerankQueue, Vec<(u64, f32)>) {
        let mut q = RerankQueue::default();
        let mut estimates = Vec::new();
        for id in 0..n {
            let e = id as f32 + noise(id);
            estimates.push((id, e));
            q.push_candidate(s(e, id));
        }
        (q, estimates)
    }

    /// Pulls `k` rows the way a scan does: a first batch, then steps.
    fn pull(q: &mut RerankQueue, first: usize, k: usize, est: &[(u64, f32)]) -> (Vec<u64>, usize) {
        let mut out = Vec::new();
        let mut measured = 0;
        let mut batch = first;
        while out.len() < k {
            if let Some(r) = q.pop_ready() {
                out.push(r.node);
                continue;
            }
            let taken = q.take(batch);
            if taken.is_empty() {
                break;
            }
            batch = STEP;
            for c in taken {
                measured += 1;
                q.measured(est[c.node as usize].1, s(c.node as f32, c.node));
            }
        }
        (out, measured)
    }

    #[test]
    fn exact_estimates_measure_only_the_first_batch() {
        let (mut q, est) = queue(1000, |_| 0.0);
        let (rows, measured) = pull(&mut q, 20, 10, &est);
        assert_eq!(rows, (0..10).collect::<Vec<_>>());
        assert_eq!(measured, 20);
    }

    #[test]
    fn noisy_estimates_go_deeper_and_still_return_exact_order() {
        // Deterministic noise of ±40: the true nearest rows are scattered over the first
        // ~90 estimates, beyond a first batch of 20; the margin (about 2 × 23) keeps
        // measuring until none of them can be missed.
        let noise = |id: u64| ((id.wrapping_mul(2654435761) % 81) as f32) - 40.0;
        let (mut q, est) = queue(1000, noise);
        let (rows, measured) = pull(&mut q, 20, 10, &est);
        assert_eq!(rows, (0..10).collect::<Vec<_>>());
        assert!(measured > 20, "measured {measured}");
        assert!(measured < 1000, "measured everything");
    }

    #[test]
    fn rows_come_in_exact_order_until_the_candidates_run_out() {
        let noise = |id: u64| ((id * 7919) % 11) as f32 - 5.0;
        let (mut q, est) = queue(200, noise);
        let (rows, _) = pull(&mut q, 5, 1000, &est);
        assert_eq!(rows, (0..200).collect::<Vec<_>>());
        assert!(q.is_empty());
    }

    #[test]
    fn infinite_distances_teach_nothing() {
        let mut q = RerankQueue::default();
        q.push_candidate(s(1.0, 1));
        q.measured(f32::INFINITY, s(0.5, 7));
        q.measured(2.0, s(f32::INFINITY, 8));
        assert_eq!(q.margin(), 0.0);
        // The measured row at 0.5 is nearer than the candidate's estimate of 1.0.
        assert_eq!(q.pop_ready().map(|r| r.node), Some(7));
        assert_eq!(q.pop_ready(), None);
    }
}
