//! HNSW (Malkov & Yashunin): a layered proximity graph searched greedily from the top.
//!
//! The search runs over any [`GraphView`] — the in-memory [`Graph`] an index build fills,
//! or (in the glue) the graph as stored in index pages — so there is one search to test.
//! Node ids are `u64`s chosen by the graph (dense numbers in memory, packed page
//! addresses on disk); levels come from a seeded generator, so a build is deterministic.

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rustc_hash::FxHashSet;

use crate::error::{Error, Result};
use crate::vector::distance;

/// How distances are measured; each orders like its SQL operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance (orders like `<->`).
    L2,
    /// Negative inner product (`<#>`).
    InnerProduct,
    /// Cosine distance (`<=>`).
    Cosine,
}

impl Metric {
    /// The distance; NaN (only a prepared zero vector under cosine makes one) counts as
    /// infinitely far, so such vectors come last, never first.
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        let d = match self {
            Metric::L2 => distance::l2_squared(a, b),
            Metric::InnerProduct => -distance::dot(a, b),
            Metric::Cosine => distance::cosine(a, b) as f32,
        };
        if d.is_nan() {
            f32::INFINITY
        } else {
            d
        }
    }

    /// The form an index stores and searches with: under cosine the vector scaled to norm
    /// 1, so one inner product per comparison replaces three (a zero vector, which has no
    /// direction, becomes NaNs: infinitely far from everything). Compare prepared vectors
    /// with [`index_metric`](Self::index_metric).
    pub fn prepare(self, v: &[f32]) -> Cow<'_, [f32]> {
        match self {
            Metric::Cosine => {
                let norm = distance::dot(v, v).sqrt();
                if norm > 0.0 && norm.is_finite() {
                    Cow::Owned(v.iter().map(|x| x / norm).collect())
                } else {
                    Cow::Owned(vec![f32::NAN; v.len()])
                }
            }
            Metric::L2 | Metric::InnerProduct => Cow::Borrowed(v),
        }
    }

    /// The metric IVF-PQ codes estimate for prepared vectors. Cosine indexes store unit
    /// vectors, which L2 orders as cosine does — and an L2 estimate from a code errs by
    /// about the quantization error times the distance to the query, so it ranks the
    /// nearest rows well, where an inner-product estimate errs by the whole quantization
    /// error: on low-dimensional data that lost nearly every true neighbour.
    pub fn code_metric(self) -> Metric {
        match self {
            Metric::Cosine => Metric::L2,
            m => m,
        }
    }

    /// The metric that orders prepared vectors like this one orders raw ones.
    pub fn index_metric(self) -> Metric {
        match self {
            Metric::Cosine => Metric::InnerProduct,
            m => m,
        }
    }
}

/// Build parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Neighbours per node above layer 0 (twice as many on layer 0).
    pub m: usize,
    /// Candidates kept while linking a new node.
    pub ef_construction: usize,
    pub metric: Metric,
    pub seed: u64,
    /// Highest level a node may get (an index caps it so every node fits a page).
    pub max_level: usize,
}

impl Params {
    pub fn new(m: usize, ef_construction: usize, metric: Metric) -> Result<Self> {
        if !(2..=100).contains(&m) {
            return Err(Error::InvalidParameter {
                name: "m".into(),
                detail: format!("{m} is outside 2..100"),
            });
        }
        if !(4..=1000).contains(&ef_construction) || ef_construction < m {
            return Err(Error::InvalidParameter {
                name: "ef_construction".into(),
                detail: format!("{ef_construction} must be in 4..1000 and at least m ({m})"),
            });
        }
        Ok(Params {
            m,
            ef_construction,
            metric,
            seed: 0x5eed,
            max_level: 16,
        })
    }

    /// Most neighbours a node keeps on `level`.
    pub fn max_neighbors(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.m
        } else {
            self.m
        }
    }
}

/// A node's id: the graph's own numbering.
pub type NodeId = u64;

/// What a search needs from a graph. Methods take `&mut self` so a graph kept in pages
/// can cache what it has read.
pub trait GraphView {
    /// The top node and its level, or `None` while the graph is empty.
    fn entry(&mut self) -> Option<(NodeId, usize)>;
    /// Replaces `out` with the neighbours of `node` on `level`.
    fn neighbors(&mut self, node: NodeId, level: usize, out: &mut Vec<NodeId>);
    /// The distance from `node` to `query`.
    fn distance_to(&mut self, node: NodeId, query: &[f32]) -> f32;
}

/// A node and its distance, ordered by distance (then id, for determinism).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub distance: f32,
    pub node: NodeId,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `ef` nodes nearest to `query` on `level` reachable greedily from `entries`,
/// nearest first.
pub fn search_layer(
    graph: &mut impl GraphView,
    query: &[f32],
    entries: &[Scored],
    ef: usize,
    level: usize,
) -> Vec<Scored> {
    let mut visited: FxHashSet<NodeId> =
        FxHashSet::with_capacity_and_hasher(16 * ef.min(4096), Default::default());
    visited.extend(entries.iter().map(|e| e.node));
    let mut neighbors = Vec::new();
    let mut candidates: BinaryHeap<Reverse<Scored>> =
        entries.iter().copied().map(Reverse).collect();
    let mut best: BinaryHeap<Scored> = entries.iter().copied().collect();
    while best.len() > ef {
        best.pop();
    }
    while let Some(Reverse(c)) = candidates.pop() {
        let worst = best.peek().map_or(f32::INFINITY, |w| w.distance);
        if c.distance > worst && best.len() >= ef {
            break;
        }
        graph.neighbors(c.node, level, &mut neighbors);
        for &n in &neighbors {
            if !visited.insert(n) {
                continue;
            }
            let d = graph.distance_to(n, query);
            let worst = best.peek().map_or(f32::INFINITY, |w| w.distance);
            if best.len() < ef || d < worst {
                let s = Scored {
                    distance: d,
                    node: n,
                };
                candidates.push(Reverse(s));
                best.push(s);
                if best.len() > ef {
                    best.pop();
                }
            }
        }
    }
    let mut out = best.into_vec();
    out.sort();
    out
}

/// The `k` nearest nodes to `query` found with `ef` candidates, nearest first.
pub fn search(graph: &mut impl GraphView, query: &[f32], k: usize, ef: usize) -> Vec<Scored> {
    let Some((entry, top)) = graph.entry() else {
        return Vec::new();
    };
    let mut nearest = vec![Scored {
        distance: graph.distance_to(entry, query),
        node: entry,
    }];
    for level in (1..=top).rev() {
        nearest = search_layer(graph, query, &nearest, 1, level);
    }
    let mut found = search_layer(graph, query, &nearest, ef.max(k), 0);
    found.truncate(k);
    found
}

/// The heuristic of the paper (algorithm 4): from `candidates` (nearest first, distances
/// to the base), a candidate is kept only if it is not nearer to a neighbour kept so far
/// than to the base, so links spread in all directions; free places are then filled with
/// the nearest of the rest. `between` measures two candidates.
pub fn select_neighbors(
    candidates: &[Scored],
    max: usize,
    mut between: impl FnMut(NodeId, NodeId) -> f32,
) -> Vec<Scored> {
    let mut kept: Vec<Scored> = Vec::with_capacity(max);
    let mut pruned = Vec::new();
    for &c in candidates {
        if kept.len() >= max {
            break;
        }
        if kept.iter().all(|k| between(k.node, c.node) >= c.distance) {
            kept.push(c);
        } else {
            pruned.push(c);
        }
    }
    for c in pruned {
        if kept.len() >= max {
            break;
        }
        kept.push(c);
    }
    kept
}

/// Linking `new` (at `distance` from the list's owner) into the neighbour list `current`
/// of at most `max`: the new list, or `None` when it stays as it is. A list with room
/// takes `new`; a full one keeps the best spread of its members and `new` (the
/// selection heuristic, [`select_neighbors`]), and with `force` `new` takes the farthest
/// kept member's place when the heuristic would drop it. `to_owner` measures a member
/// from the owner, `between` two members. The one link-and-shrink of every graph: the
/// in-memory builds' and the stored index's (inserts and VACUUM).
pub fn link_into(
    current: &[NodeId],
    new: NodeId,
    distance: f32,
    max: usize,
    force: bool,
    mut to_owner: impl FnMut(NodeId) -> f32,
    between: impl FnMut(NodeId, NodeId) -> f32,
) -> Option<Vec<NodeId>> {
    if current.contains(&new) {
        return None;
    }
    if current.len() < max {
        return Some(current.iter().copied().chain([new]).collect());
    }
    let mut scored: Vec<Scored> = current
        .iter()
        .map(|&n| Scored {
            distance: to_owner(n),
            node: n,
        })
        .chain([Scored {
            distance,
            node: new,
        }])
        .collect();
    scored.sort();
    let mut chosen: Vec<NodeId> = select_neighbors(&scored, max, between)
        .iter()
        .map(|s| s.node)
        .collect();
    if !chosen.contains(&new) {
        if !force {
            return None;
        }
        chosen.pop();
        chosen.push(new);
    }
    Some(chosen)
}

/// A graph whose lists can be changed by others between a read and a write (an index's
/// pages, shared by backends): lists are computed from what was read and written only
/// if they are still what was read.
pub trait GraphStore: GraphView {
    fn metric(&self) -> Metric;
    /// Makes `node`'s vector available to [`vector`](Self::vector).
    fn load(&mut self, node: NodeId);
    /// The vector of a node [`load`](Self::load)ed before.
    fn vector(&self, node: NodeId) -> &[f32];
    /// Replaces `node`'s list on `level` by `new` if it still is `expected`; false (and
    /// nothing written) when it changed meanwhile.
    fn replace_neighbors(
        &mut self,
        node: NodeId,
        level: usize,
        expected: &[NodeId],
        new: &[NodeId],
    ) -> bool;
}

/// Links `new` (at `distance`) into `node`'s list on `level` of at most `max` in a
/// [`GraphStore`] (see [`link_into`]); a list changed by someone else meanwhile is read
/// and computed again, a few times at most.
pub fn link_stored(
    graph: &mut impl GraphStore,
    node: NodeId,
    new: NodeId,
    distance: f32,
    level: usize,
    max: usize,
    force: bool,
) {
    let metric = graph.metric();
    let mut current = Vec::new();
    for _attempt in 0..5 {
        graph.neighbors(node, level, &mut current);
        if current.contains(&new) {
            return;
        }
        if current.len() >= max {
            graph.load(node);
            for &n in &current {
                graph.load(n);
            }
        }
        let g = &*graph;
        let Some(wanted) = link_into(
            &current,
            new,
            distance,
            max,
            force,
            |n| metric.distance(g.vector(n), g.vector(node)),
            |a, b| metric.distance(g.vector(a), g.vector(b)),
        ) else {
            return;
        };
        if graph.replace_neighbors(node, level, &current, &wanted) {
            return;
        }
    }
}

mod graph;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use graph::Graph;
