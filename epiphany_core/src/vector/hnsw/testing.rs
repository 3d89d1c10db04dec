//! A one-level graph in memory for tests of code over [`GraphStore`], whose lists a
//! "concurrent writer" can change once between a read and a write.

use super::*;

pub struct MemoryGraph {
    pub lists: Vec<Vec<NodeId>>,
    pub vectors: Vec<Vec<f32>>,
    pub entry: NodeId,
    /// Set on the node's list before the next write checks it.
    pub race: Option<(NodeId, Vec<NodeId>)>,
    pub writes: usize,
}

impl MemoryGraph {
    /// Nodes 0..n on a line (node i at x = i), each linked to its two neighbours.
    pub fn line(n: usize) -> MemoryGraph {
        MemoryGraph {
            lists: (0..n)
                .map(|i| {
                    [i.checked_sub(1), (i + 1 < n).then_some(i + 1)]
                        .into_iter()
                        .flatten()
                        .map(|j| j as NodeId)
                        .collect()
                })
                .collect(),
            vectors: (0..n).map(|i| vec![i as f32]).collect(),
            entry: 0,
            race: None,
            writes: 0,
        }
    }
}

impl GraphView for MemoryGraph {
    fn entry(&mut self) -> Option<(NodeId, usize)> {
        Some((self.entry, 0))
    }
    fn neighbors(&mut self, node: NodeId, _level: usize, out: &mut Vec<NodeId>) {
        out.clear();
        out.extend(&self.lists[node as usize]);
    }
    fn distance_to(&mut self, node: NodeId, query: &[f32]) -> f32 {
        Metric::L2.distance(&self.vectors[node as usize], query)
    }
}

impl GraphStore for MemoryGraph {
    fn metric(&self) -> Metric {
        Metric::L2
    }
    fn load(&mut self, _node: NodeId) {}
    fn vector(&self, node: NodeId) -> &[f32] {
        &self.vectors[node as usize]
    }
    fn replace_neighbors(
        &mut self,
        node: NodeId,
        _level: usize,
        expected: &[NodeId],
        new: &[NodeId],
    ) -> bool {
        if let Some((n, list)) = self.race.take() {
            self.lists[n as usize] = list;
        }
        if self.lists[node as usize] != expected {
            return false;
        }
        self.lists[node as usize] = new.to_vec();
        self.writes += 1;
        true
    }
}
