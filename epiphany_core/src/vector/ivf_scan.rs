//! An IVF-PQ index scan's loop: which lists to read and when, which candidates to measure
//! and when a row can be returned in exact order. Reading a list and measuring a
//! candidate are the caller's ([`Lists`]): the index's pages and table rows in the glue,
//! memory in the tests.
//!
//! The scan reads the `probes` lists nearest to the query, measures the `rerank` best
//! candidates by code, then more as long as an unmeasured one could still beat the next
//! row to return ([`RerankQueue`]); asked for more rows than its lists hold, it goes on
//! with the next lists, up to `max_probes`. Rows without a finite distance (a zero vector
//! under cosine, overflowing components) come after every other row.

use std::collections::VecDeque;

use super::hnsw::{NodeId, Scored};
use super::rerank::{RerankQueue, STEP};

/// What the loop needs from the index.
pub trait Lists {
    /// Adds every entry of list `list` to `queue` (by its code's distance estimate).
    fn read_list(&mut self, list: usize, queue: &mut RerankQueue);
    /// The candidates of `batch` that still exist, each with its estimate and exact
    /// distance (a row the scan cannot see is left out).
    fn measure(&mut self, batch: &[Scored]) -> Vec<(f32, Scored)>;
}

/// The scan's settings (`epiphany.ivf_probes`, `ivf_rerank`, `ivf_max_probes`; 0: all).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub probes: usize,
    pub rerank: usize,
    pub max_probes: usize,
}

/// One scan's progress over the lists in probe order.
#[derive(Default)]
pub struct IvfScan {
    order: Vec<usize>,
    probed: usize,
    queue: RerankQueue,
    /// Whether the first batch (`rerank` candidates) was measured.
    measuring: bool,
    last: Vec<NodeId>,
}

impl IvfScan {
    /// A scan over lists in `order` (nearest to the query first).
    pub fn new(order: Vec<usize>) -> IvfScan {
        IvfScan {
            order,
            ..Default::default()
        }
    }

    /// Puts the next rows in exact order into `rows` (one, or at the end the rows without
    /// a finite distance); false when there are none left.
    pub fn next_rows(
        &mut self,
        settings: Settings,
        lists: &mut impl Lists,
        rows: &mut VecDeque<NodeId>,
    ) -> bool {
        let probes = settings.probes.max(1);
        let rerank = settings.rerank.max(1);
        let first = probes.min(self.order.len());
        // Lists this scan may read in all: the first round's, or more up to the bound.
        let limit = match settings.max_probes {
            0 => self.order.len(),
            n => n.min(self.order.len()),
        }
        .max(first);
        loop {
            if let Some(row) = self.queue.pop_ready() {
                rows.push_back(row.node);
                return true;
            }
            // The first batch is `rerank` candidates, from more lists if the first ones
            // hold fewer; later lists are read only when every candidate was returned.
            let wanted = if self.measuring { 1 } else { rerank };
            if self.queue.candidates() < wanted && self.probed < limit {
                let end = if self.probed == 0 {
                    first
                } else {
                    (self.probed + probes).min(limit)
                };
                for i in self.probed..end {
                    lists.read_list(self.order[i], &mut self.queue);
                }
                self.probed = end;
                continue;
            }
            if self.queue.candidates() == 0 {
                if self.last.is_empty() {
                    return false;
                }
                rows.extend(self.last.drain(..));
                return true;
            }
            let batch = self.queue.take(if self.measuring { STEP } else { rerank });
            self.measuring = true;
            for (estimate, exact) in lists.measure(&batch) {
                if exact.distance.is_finite() {
                    self.queue.measured(estimate, exact);
                } else {
                    self.last.push(exact.node);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::hnsw::Metric;
    use crate::vector::kmeans::tests::blobs;
    use crate::vector::pq::IvfPq;

    struct Memory<'a> {
        model: &'a IvfPq,
        data: &'a [f32],
        query: Vec<f32>,
        /// Rows the "snapshot" cannot see.
        invisible: u64,
        lists_read: usize,
    }

    impl Lists for Memory<'_> {
        fn read_list(&mut self, list: usize, queue: &mut RerankQueue) {
            self.lists_read += 1;
            let mut out = Vec::new();
            self.model.scan_list(&self.query, list, &mut out);
            for (distance, id) in out {
                queue.push_candidate(Scored { distance, node: id });
            }
        }

        fn measure(&mut self, batch: &[Scored]) -> Vec<(f32, Scored)> {
            let dims = self.model.dims;
            batch
                .iter()
                .filter(|c| c.node % self.invisible != 0)
                .map(|c| {
                    let v = &self.data[c.node as usize * dims..][..dims];
                    let exact = Metric::L2.distance(v, &self.query);
                    (
                        c.distance,
                        Scored {
                            distance: exact,
                            node: c.node,
                        },
                    )
                })
                .collect()
        }
    }

    #[test]
    fn rows_come_in_exact_order_and_every_list_is_read_when_asked_for_all() {
        let dims = 8;
        let data = blobs(3000, dims, 12, 3);
        let mut model = IvfPq::train(&data, dims, 16, 4, 8, Metric::L2, 7).unwrap();
        for (id, v) in data.chunks_exact(dims).enumerate() {
            model.add(id as u64, v);
        }
        let query: Vec<f32> = data[..dims].iter().map(|x| x + 0.25).collect();
        let mut lists = Memory {
            model: &model,
            data: &data,
            query: query.clone(),
            invisible: 7,
            lists_read: 0,
        };
        let order = model.probe_order(&query, 16);
        let mut scan = IvfScan::new(order);
        let settings = Settings {
            probes: 2,
            rerank: 20,
            max_probes: 0,
        };
        let mut rows = VecDeque::new();
        while scan.next_rows(settings, &mut lists, &mut rows) {}
        // Asked for all, the scan reads every list and returns every visible row once.
        assert_eq!(lists.lists_read, 16);
        let mut ids: Vec<u64> = rows.iter().copied().collect();
        ids.sort_unstable();
        let visible: Vec<u64> = (0..3000u64).filter(|id| id % 7 != 0).collect();
        assert_eq!(ids, visible);
        // The first rows are the nearest ones: exact order among what was read, and the
        // probes' lists hold nearly all of the true nearest.
        let d = |id: u64| Metric::L2.distance(&data[id as usize * dims..][..dims], &query);
        let first: Vec<f32> = rows.iter().take(10).map(|&r| d(r)).collect();
        assert!(first.windows(2).all(|w| w[0] <= w[1]), "{first:?}");
        let mut truth = visible;
        truth.sort_by(|&a, &b| d(a).total_cmp(&d(b)));
        let found = rows
            .iter()
            .take(10)
            .filter(|r| truth[..10].contains(r))
            .count();
        assert!(found >= 8, "recall@10 {found}/10");
    }

    #[test]
    fn max_probes_bounds_the_lists_read() {
        let dims = 4;
        let data = blobs(500, dims, 5, 1);
        let mut model = IvfPq::train(&data, dims, 8, 2, 8, Metric::L2, 3).unwrap();
        for (id, v) in data.chunks_exact(dims).enumerate() {
            model.add(id as u64, v);
        }
        let query = data[..dims].to_vec();
        let mut lists = Memory {
            model: &model,
            data: &data,
            query: query.clone(),
            invisible: u64::MAX,
            lists_read: 0,
        };
        let mut scan = IvfScan::new(model.probe_order(&query, 8));
        let settings = Settings {
            probes: 1,
            rerank: 5,
            max_probes: 3,
        };
        let mut rows = VecDeque::new();
        while scan.next_rows(settings, &mut lists, &mut rows) {}
        assert_eq!(lists.lists_read, 3);
        assert!(rows.len() < 500);
    }
}
