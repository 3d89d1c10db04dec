//! HNSW (Malkov & Yashunin): a layered proximity graph searched greedily from the top.
//!
//! The search runs over any [`GraphView`] — the in-memory [`Graph`] an index build fills,
//! or (in the glue) the graph as stored in index pages — so there is one search to test.
//! Node ids are `u64`s chosen by the graph (dense numbers in memory, packed page
//! addresses on disk); levels come from a seeded generator, so a build is deterministic.

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;

use rustc_hash::FxHashSet;

use crate::error::{Error, Result};
use crate::vector::distance;
use crate::vector::kmeans::Rng;

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

/// A graph in memory, as an index build makes it.
pub struct Graph {
    params: Params,
    dims: usize,
    vectors: Vec<f32>,
    /// Per node, its neighbours on each of its levels (0 first).
    links: Vec<Vec<Vec<u32>>>,
    entry: Option<(u32, usize)>,
    rng: Rng,
}

impl GraphView for Graph {
    fn entry(&mut self) -> Option<(NodeId, usize)> {
        self.entry.map(|(n, l)| (NodeId::from(n), l))
    }

    fn neighbors(&mut self, node: NodeId, level: usize, out: &mut Vec<NodeId>) {
        out.clear();
        if let Some(list) = self.links[node as usize].get(level) {
            out.extend(list.iter().map(|&n| NodeId::from(n)));
        }
    }

    fn distance_to(&mut self, node: NodeId, query: &[f32]) -> f32 {
        self.params.metric.distance(self.vector(node as u32), query)
    }
}

impl Graph {
    pub fn new(params: Params, dims: usize) -> Self {
        Graph {
            params,
            dims,
            vectors: Vec::new(),
            links: Vec::new(),
            entry: None,
            rng: Rng::new(params.seed),
        }
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    pub fn vector(&self, node: u32) -> &[f32] {
        let i = node as usize * self.dims;
        &self.vectors[i..i + self.dims]
    }

    /// The level of node `node`'s top layer.
    pub fn level(&self, node: u32) -> usize {
        self.links[node as usize].len() - 1
    }

    /// Bytes the graph holds (vectors and links), to keep a build within its memory.
    pub fn memory_bytes(&self) -> usize {
        self.vectors.len() * 4
            + self
                .links
                .iter()
                .map(|l| l.iter().map(|n| n.capacity() * 4 + 24).sum::<usize>() + 24)
                .sum::<usize>()
    }

    fn random_level(&mut self) -> usize {
        let ml = 1.0 / (self.params.m as f64).ln();
        // 1 - u is in (0, 1]: its logarithm is finite.
        ((-(1.0 - self.rng.next_f64()).ln() * ml) as usize).min(self.params.max_level)
    }

    /// Adds `v` as the next node (its id is the number of nodes before it).
    pub fn insert(&mut self, v: &[f32]) -> Result<u32> {
        if v.len() != self.dims {
            return Err(Error::Data(format!(
                "expected {} dimensions, not {}",
                self.dims,
                v.len()
            )));
        }
        let id = u32::try_from(self.links.len())
            .map_err(|_| Error::Limit("more than 2^32 vectors in one graph".into()))?;
        let level = self.random_level();
        self.vectors.extend_from_slice(v);
        self.links.push(vec![Vec::new(); level + 1]);
        let Some((entry, top)) = self.entry else {
            self.entry = Some((id, level));
            return Ok(id);
        };
        let mut nearest = vec![Scored {
            distance: self.distance_to(entry.into(), v),
            node: entry.into(),
        }];
        for l in (level + 1..=top).rev() {
            nearest = search_layer(self, v, &nearest, 1, l);
        }
        for l in (0..=level.min(top)).rev() {
            let found = search_layer(self, v, &nearest, self.params.ef_construction, l);
            let chosen = self.select(&found, self.params.m);
            self.links[id as usize][l] = chosen.iter().map(|s| s.node as u32).collect();
            for s in &chosen {
                self.link(s.node as u32, id, s.distance, l);
            }
            nearest = found;
        }
        if level > top {
            self.entry = Some((id, level));
        }
        Ok(id)
    }

    fn select(&self, candidates: &[Scored], max: usize) -> Vec<Scored> {
        select_neighbors(candidates, max, |a, b| {
            self.params
                .metric
                .distance(self.vector(a as u32), self.vector(b as u32))
        })
    }

    /// Adds `new` to the neighbours of `node` on `level`, pruning them if too many.
    fn link(&mut self, node: u32, new: u32, distance: f32, level: usize) {
        let max = self.params.max_neighbors(level);
        let metric = self.params.metric;
        let current: Vec<NodeId> = self.links[node as usize][level]
            .iter()
            .map(|&n| n.into())
            .collect();
        let base = self.vector(node);
        let list = link_into(
            &current,
            new.into(),
            distance,
            max,
            false,
            |n| metric.distance(self.vector(n as u32), base),
            |a, b| metric.distance(self.vector(a as u32), self.vector(b as u32)),
        );
        if let Some(list) = list {
            self.links[node as usize][level] = list.iter().map(|&n| n as u32).collect();
        }
    }
}

/// A graph built by several threads at once (the build of an index): every vector is
/// known up front, each node's lists sit behind their own lock, and only one node lock is
/// held at a time, so threads cannot deadlock. Levels still come from the seeded
/// generator; which neighbours a node ends up with depends on the threads' timing.
struct Shared<'a> {
    params: Params,
    dims: usize,
    vectors: &'a [f32],
    levels: Vec<usize>,
    links: Vec<Mutex<Vec<Vec<u32>>>>,
    entry: Mutex<(u32, usize)>,
}

/// A thread's view of the shared graph for searches.
struct SharedView<'s, 'a>(&'s Shared<'a>);

impl Shared<'_> {
    fn vector(&self, node: u32) -> &[f32] {
        let i = node as usize * self.dims;
        &self.vectors[i..i + self.dims]
    }

    fn lock(&self, node: u32) -> std::sync::MutexGuard<'_, Vec<Vec<u32>>> {
        // A poisoned lock means another builder panicked; the build is abandoned anyway.
        self.links[node as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn select(&self, candidates: &[Scored], max: usize) -> Vec<Scored> {
        select_neighbors(candidates, max, |a, b| {
            self.params
                .metric
                .distance(self.vector(a as u32), self.vector(b as u32))
        })
    }

    fn insert(&self, id: u32) {
        let v = self.vector(id);
        let level = self.levels[id as usize];
        // Nodes higher than the current top hold the entry lock while they link, so two
        // of them do not both become the entry point.
        let mut top_guard = None;
        let (entry, top) = {
            let guard = self.entry.lock().unwrap_or_else(|e| e.into_inner());
            let current = *guard;
            if level > current.1 {
                top_guard = Some(guard);
            }
            current
        };
        let mut view = SharedView(self);
        let mut nearest = vec![Scored {
            distance: self.params.metric.distance(self.vector(entry), v),
            node: entry.into(),
        }];
        for l in (level + 1..=top).rev() {
            nearest = search_layer(&mut view, v, &nearest, 1, l);
        }
        let mut chosen_per_level = Vec::with_capacity(level.min(top) + 1);
        for l in (0..=level.min(top)).rev() {
            let found = search_layer(&mut view, v, &nearest, self.params.ef_construction, l);
            let chosen = self.select(&found, self.params.m);
            self.lock(id)[l] = chosen.iter().map(|s| s.node as u32).collect();
            chosen_per_level.push((l, chosen));
            nearest = found;
        }
        for (l, chosen) in chosen_per_level {
            for s in chosen {
                self.link(s.node as u32, id, s.distance, l);
            }
        }
        if let Some(mut guard) = top_guard {
            *guard = (id, level);
        }
    }

    fn link(&self, node: u32, new: u32, distance: f32, level: usize) {
        let max = self.params.max_neighbors(level);
        let metric = self.params.metric;
        let mut lists = self.lock(node);
        let list = &mut lists[level];
        let current: Vec<NodeId> = list.iter().map(|&n| n.into()).collect();
        let base = self.vector(node);
        if let Some(new_list) = link_into(
            &current,
            new.into(),
            distance,
            max,
            false,
            |n| metric.distance(self.vector(n as u32), base),
            |a, b| metric.distance(self.vector(a as u32), self.vector(b as u32)),
        ) {
            *list = new_list.iter().map(|&n| n as u32).collect();
        }
    }
}

impl GraphView for SharedView<'_, '_> {
    fn entry(&mut self) -> Option<(NodeId, usize)> {
        let (n, l) = *self.0.entry.lock().unwrap_or_else(|e| e.into_inner());
        Some((n.into(), l))
    }

    fn neighbors(&mut self, node: NodeId, level: usize, out: &mut Vec<NodeId>) {
        out.clear();
        if let Some(list) = self.0.lock(node as u32).get(level) {
            out.extend(list.iter().map(|&n| NodeId::from(n)));
        }
    }

    fn distance_to(&mut self, node: NodeId, query: &[f32]) -> f32 {
        self.0
            .params
            .metric
            .distance(self.0.vector(node as u32), query)
    }
}

impl Graph {
    /// Builds the graph of `vectors` (`dims` each, node ids in order) with `threads`
    /// threads, the caller's among them: between its batches the caller's thread runs
    /// `tick(nodes done)` (progress, interrupt checks); if `tick` panics the other threads
    /// stop at their next node.
    pub fn build_parallel(
        params: Params,
        dims: usize,
        vectors: Vec<f32>,
        threads: usize,
        mut tick: impl FnMut(usize),
    ) -> Result<Graph> {
        if dims == 0 || !vectors.len().is_multiple_of(dims) {
            return Err(Error::Internal(format!(
                "{} values are not vectors of {dims} dimensions",
                vectors.len()
            )));
        }
        let n = vectors.len() / dims;
        if u32::try_from(n).is_err() {
            return Err(Error::Limit("more than 2^32 vectors in one graph".into()));
        }
        let mut graph = Graph::new(params, dims);
        if n == 0 {
            return Ok(graph);
        }
        let levels: Vec<usize> = (0..n).map(|_| graph.random_level()).collect();
        let shared = Shared {
            params,
            dims,
            vectors: &vectors,
            links: levels
                .iter()
                .map(|&l| Mutex::new(vec![Vec::new(); l + 1]))
                .collect(),
            entry: Mutex::new((0, levels[0])),
            levels,
        };
        const BATCH: usize = 64;
        let next = AtomicUsize::new(1);
        let stop = AtomicBool::new(false);
        /// Tells the helpers to stop when the caller's thread leaves, even by a panic.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, AtomicOrdering::Relaxed);
            }
        }
        // One batch; false once there is nothing left or the build was stopped.
        let work = |stop: &AtomicBool| {
            if stop.load(AtomicOrdering::Relaxed) {
                return false;
            }
            let first = next.fetch_add(BATCH, AtomicOrdering::Relaxed);
            if first >= n {
                return false;
            }
            for id in first..(first + BATCH).min(n) {
                shared.insert(id as u32);
            }
            true
        };
        std::thread::scope(|scope| {
            for _ in 1..threads.max(1) {
                scope.spawn(|| while work(&stop) {});
            }
            let _stop = StopOnDrop(&stop);
            while work(&stop) {
                tick(next.load(AtomicOrdering::Relaxed).min(n));
            }
        });
        let (entry, top) = *shared.entry.lock().unwrap_or_else(|e| e.into_inner());
        graph.links = shared
            .links
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        graph.vectors = vectors;
        graph.entry = Some((entry, top));
        Ok(graph)
    }
}

/// A one-level graph in memory for tests of code over [`GraphStore`], whose lists a
/// "concurrent writer" can change once between a read and a write.
#[cfg(test)]
pub(crate) mod testing {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clustered points: `clusters` centres, points spread around them.
    fn data(n: usize, dims: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| {
                (0..dims)
                    .map(|_| (rng.next_f64() * 20.0 - 10.0) as f32)
                    .collect()
            })
            .collect();
        (0..n)
            .map(|i| {
                let c = &centres[i % clusters];
                c.iter()
                    .map(|&x| x + (rng.next_f64() * 2.0 - 1.0) as f32)
                    .collect()
            })
            .collect()
    }

    fn exact(points: &[Vec<f32>], q: &[f32], k: usize, metric: Metric) -> Vec<NodeId> {
        let mut all: Vec<Scored> = points
            .iter()
            .enumerate()
            .map(|(i, p)| Scored {
                distance: metric.distance(p, q),
                node: i as NodeId,
            })
            .collect();
        all.sort();
        all.truncate(k);
        all.iter().map(|s| s.node).collect()
    }

    fn recall(metric: Metric) -> f64 {
        // Queries are held-out points of the same distribution.
        let mut points = data(3100, 24, 30, 7);
        let queries = points.split_off(3000);
        let mut g = Graph::new(Params::new(12, 64, metric).unwrap(), 24);
        for p in &points {
            g.insert(p).unwrap();
        }
        let mut hits = 0;
        for q in &queries {
            let want: FxHashSet<NodeId> = exact(&points, q, 10, metric).into_iter().collect();
            hits += search(&mut g, q, 10, 40)
                .iter()
                .filter(|s| want.contains(&s.node))
                .count();
        }
        hits as f64 / (10 * queries.len()) as f64
    }

    #[test]
    fn recall_at_10_is_high_for_every_metric() {
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let r = recall(metric);
            assert!(r >= 0.95, "{metric:?}: recall@10 {r}");
        }
    }

    #[test]
    fn builds_are_deterministic_and_links_bounded() {
        let points = data(500, 8, 5, 3);
        let build = || {
            let mut g = Graph::new(Params::new(8, 32, Metric::L2).unwrap(), 8);
            for p in &points {
                g.insert(p).unwrap();
            }
            g
        };
        let (mut a, b) = (build(), build());
        assert_eq!(a.links, b.links);
        assert_eq!(a.entry, b.entry);
        let mut n = Vec::new();
        for node in 0..a.len() as u32 {
            for level in 0..=a.level(node) {
                a.neighbors(node.into(), level, &mut n);
                assert!(n.len() <= a.params.max_neighbors(level));
                assert!(!n.contains(&node.into()));
            }
        }
        assert!(a.memory_bytes() > 500 * 8 * 4);
    }

    #[test]
    fn small_and_degenerate_graphs() {
        let mut g = Graph::new(Params::new(4, 8, Metric::L2).unwrap(), 2);
        assert!(search(&mut g, &[0.0, 0.0], 3, 10).is_empty());
        g.insert(&[1.0, 1.0]).unwrap();
        let found = search(&mut g, &[0.0, 0.0], 3, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].distance, 2.0);
        // Many equal vectors still make a searchable graph. (A point added after them
        // may lose every link into it when the lists fill with ties: an index stores
        // equal vectors as one node with many rows, as pgvector does.)
        for _ in 0..50 {
            g.insert(&[1.0, 1.0]).unwrap();
        }
        let found = search(&mut g, &[1.0, 1.0], 5, 10);
        assert_eq!(found.len(), 5);
        assert!(found.iter().all(|s| s.distance == 0.0));
        assert!(g.insert(&[1.0]).is_err());
    }

    #[test]
    fn zero_vectors_come_last_under_cosine() {
        let mut g = Graph::new(Params::new(4, 8, Metric::Cosine).unwrap(), 2);
        g.insert(&[0.0, 0.0]).unwrap();
        g.insert(&[1.0, 0.0]).unwrap();
        g.insert(&[0.0, 1.0]).unwrap();
        let found = search(&mut g, &[1.0, 0.1], 3, 10);
        assert_eq!(found.last().unwrap().node, 0);
    }

    #[test]
    fn parallel_builds_reach_the_same_recall() {
        let mut points = data(3100, 24, 30, 7);
        let queries = points.split_off(3000);
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        let params = Params::new(12, 64, Metric::L2).unwrap();
        let mut ticks = 0;
        let mut g = Graph::build_parallel(params, 24, flat, 3, |_| ticks += 1).unwrap();
        assert_eq!(g.len(), 3000);
        assert!(ticks > 0);
        let mut hits = 0;
        for q in &queries {
            let want: FxHashSet<NodeId> = exact(&points, q, 10, Metric::L2).into_iter().collect();
            hits += search(&mut g, q, 10, 40)
                .iter()
                .filter(|s| want.contains(&s.node))
                .count();
        }
        let recall = hits as f64 / (10 * queries.len()) as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
        let mut n = Vec::new();
        for node in 0..g.len() as u32 {
            for level in 0..=g.level(node) {
                g.neighbors(node.into(), level, &mut n);
                assert!(n.len() <= params.max_neighbors(level));
            }
        }
        // A panicking tick stops the build instead of hanging it.
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        let r = std::panic::catch_unwind(|| {
            Graph::build_parallel(params, 24, flat, 2, |_| panic!("cancelled"))
        });
        assert!(r.is_err());
        assert!(Graph::build_parallel(params, 24, vec![1.0; 25], 2, |_| {}).is_err());
        assert!(Graph::build_parallel(params, 24, Vec::new(), 2, |_| {})
            .unwrap()
            .is_empty());
    }

    #[test]
    fn prepared_cosine_orders_like_cosine() {
        let points = data(200, 6, 4, 9);
        let q = &points[0];
        let pq = Metric::Cosine.prepare(q);
        let mut raw: Vec<(f32, usize)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (Metric::Cosine.distance(p, q), i))
            .collect();
        let mut prepared: Vec<(f32, usize)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    Metric::InnerProduct.distance(&Metric::Cosine.prepare(p), &pq),
                    i,
                )
            })
            .collect();
        raw.sort_by(|a, b| a.0.total_cmp(&b.0));
        prepared.sort_by(|a, b| a.0.total_cmp(&b.0));
        let first = |v: &[(f32, usize)]| v.iter().take(20).map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(first(&raw), first(&prepared));
        let zero = Metric::Cosine.prepare(&[0.0; 6]);
        assert_eq!(Metric::InnerProduct.distance(&zero, &pq), f32::INFINITY);
        assert!(matches!(Metric::L2.prepare(q), Cow::Borrowed(_)));
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Params::new(1, 64, Metric::L2).is_err());
        assert!(Params::new(101, 200, Metric::L2).is_err());
        assert!(Params::new(16, 8, Metric::L2).is_err());
        assert!(Params::new(16, 2000, Metric::L2).is_err());
    }

    /// Nodes on a line: node i at x = i.
    fn on_a_line(a: NodeId, b: NodeId) -> f32 {
        (a as f32 - b as f32).abs()
    }

    #[test]
    fn linking_into_a_list_adds_keeps_or_forces() {
        let owner = 0;
        let link = |current: &[NodeId], new: NodeId, max: usize, force: bool| {
            link_into(
                current,
                new,
                on_a_line(owner, new),
                max,
                force,
                |n| on_a_line(owner, n),
                on_a_line,
            )
        };
        // Room: appended. Already there: unchanged.
        assert_eq!(link(&[1, 2], 3, 3, false), Some(vec![1, 2, 3]));
        assert_eq!(link(&[1, 2], 2, 3, false), None);
        // Full: a nearer node is kept, the list stays within max.
        let l = link(&[2, 3, 4], 1, 3, false).unwrap();
        assert!(l.contains(&1) && l.len() == 3, "{l:?}");
        // Full, and the farthest candidate: dropped, unless forced in.
        assert_eq!(link(&[1, 2, 3], 9, 3, false), None);
        let l = link(&[1, 2, 3], 9, 3, true).unwrap();
        assert!(l.contains(&9) && l.len() == 3, "{l:?}");
    }

    #[test]
    fn a_list_changed_meanwhile_is_computed_again() {
        let mut g = testing::MemoryGraph {
            lists: vec![vec![1], vec![], vec![], vec![]],
            vectors: (0..4).map(|i| vec![i as f32]).collect(),
            entry: 0,
            // Between the read and the write, someone links 2 into node 0's list.
            race: Some((0, vec![1, 2])),
            writes: 0,
        };
        link_stored(&mut g, 0, 3, 9.0, 0, 4, false);
        assert_eq!(g.lists[0], [1, 2, 3]);
        assert_eq!(g.writes, 1);
        // Already linked: nothing written.
        link_stored(&mut g, 0, 3, 9.0, 0, 4, false);
        assert_eq!(g.writes, 1);
    }
}
