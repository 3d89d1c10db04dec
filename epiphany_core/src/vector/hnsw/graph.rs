//! The graph in memory that an index build makes: inserts one at a time
//! ([`Graph::insert`]) or by several threads at once ([`Graph::build_parallel`]), each
//! linking through the one link-and-shrink of the parent module.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::vector::kmeans::Rng;

use super::*;

/// A graph in memory, as an index build makes it.
pub struct Graph {
    pub(super) params: Params,
    pub(super) dims: usize,
    pub(super) vectors: Vec<f32>,
    /// Per node, its neighbours on each of its levels (0 first).
    pub(super) links: Vec<Vec<Vec<u32>>>,
    pub(super) entry: Option<(u32, usize)>,
    pub(super) rng: Rng,
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
