//! Repairing a stored HNSW graph after VACUUM deleted nodes: links to a deleted node are
//! replaced by the best of that node's own neighbours (the selection heuristic, with a
//! search of the graph when too few of those are live), and live nodes no search can
//! reach any more are linked back into the bottom layer. Works on any [`GraphStore`],
//! so the index's pages and the tests' memory share it.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::vector::hnsw::{
    link_stored, search, search_layer, select_neighbors, GraphStore, NodeId, Scored,
};

/// Deleted nodes and their neighbour lists per level (the routes around them).
pub type Deleted = FxHashMap<NodeId, Vec<Vec<NodeId>>>;

/// One repair of a graph: the nodes VACUUM deleted, and the graph's `m` (lists hold `2m`
/// on the bottom level, `m` above) and `ef_construction`.
pub struct Repair<'a> {
    pub deleted: &'a Deleted,
    pub m: usize,
    pub ef: usize,
}

impl Repair<'_> {
    fn room(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    /// A new neighbour list for `node` (of `vector`) on `level`, whose list `list` links to
    /// deleted nodes: its live members and the live members of its deleted ones' lists,
    /// chosen by the selection heuristic. After heavy deletes two hops may not find enough
    /// live nodes: the graph is then searched for the node's vector on this level, as an
    /// insert would (deleted nodes still route).
    pub fn relink(
        &self,
        graph: &mut impl GraphStore,
        node: NodeId,
        vector: &[f32],
        list: &[NodeId],
        level: usize,
    ) -> Vec<NodeId> {
        let (deleted, room, ef) = (self.deleted, self.room(level), self.ef);
        let metric = graph.metric();
        let mut seen = FxHashSet::default();
        let mut candidates = Vec::new();
        for &id in list {
            let via: &[NodeId] = match deleted.get(&id) {
                Some(lists) => lists.get(level).map_or(&[], |l| l.as_slice()),
                None => std::slice::from_ref(&id),
            };
            for &c in via {
                if c != node && !deleted.contains_key(&c) && seen.insert(c) {
                    graph.load(c);
                    candidates.push(Scored {
                        distance: metric.distance(graph.vector(c), vector),
                        node: c,
                    });
                }
            }
        }
        if candidates.len() < room {
            if let Some((entry, top)) = graph.entry() {
                let mut nearest = vec![Scored {
                    distance: graph.distance_to(entry, vector),
                    node: entry,
                }];
                for l in (level + 1..=top).rev() {
                    nearest = search_layer(graph, vector, &nearest, 1, l);
                }
                for s in search_layer(graph, vector, &nearest, ef.max(room), level) {
                    if s.node != node && !deleted.contains_key(&s.node) && seen.insert(s.node) {
                        graph.load(s.node);
                        candidates.push(s);
                    }
                }
            }
        }
        candidates.sort();
        let g = &*graph;
        select_neighbors(&candidates, room, |a, b| {
            metric.distance(g.vector(a), g.vector(b))
        })
        .iter()
        .map(|s| s.node)
        .collect()
    }

    /// Links every node of `live` that no search can reach any more (its links in all came
    /// from deleted nodes) back into the bottom layer: a walk from the entry point finds
    /// them, and each is linked from its `m` nearest live nodes, the nearest one taking it
    /// in any case. Returns how many were linked back.
    pub fn reconnect(&self, graph: &mut impl GraphStore, live: &[NodeId]) -> usize {
        let (deleted, m, room, ef) = (self.deleted, self.m, self.room(0), self.ef);
        let Some((entry, _)) = graph.entry() else {
            return 0;
        };
        let mut reached: FxHashSet<NodeId> = FxHashSet::default();
        let mut todo = vec![entry];
        let mut list = Vec::new();
        reached.insert(entry);
        while let Some(n) = todo.pop() {
            graph.neighbors(n, 0, &mut list);
            for &x in &list {
                if reached.insert(x) {
                    todo.push(x);
                }
            }
        }
        let metric = graph.metric();
        let mut linked = 0;
        for &y in live.iter().filter(|y| !reached.contains(y)) {
            graph.load(y);
            let v = graph.vector(y).to_vec();
            let found: Vec<Scored> = search(graph, &v, ef, ef)
                .into_iter()
                .filter(|s| s.node != y && !deleted.contains_key(&s.node))
                .collect();
            for s in &found {
                graph.load(s.node);
            }
            let g = &*graph;
            let chosen =
                select_neighbors(&found, m, |a, b| metric.distance(g.vector(a), g.vector(b)));
            for (i, s) in chosen.iter().enumerate() {
                link_stored(graph, s.node, y, s.distance, 0, room, i == 0);
            }
            linked += 1;
        }
        linked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::hnsw::testing::MemoryGraph;

    #[test]
    fn links_to_a_deleted_node_go_through_its_neighbours() {
        // Delete 3: node 2's list [1, 3] becomes [1, 4] (3's live neighbour).
        let mut g = MemoryGraph::line(8);
        let mut deleted = Deleted::default();
        deleted.insert(3, vec![g.lists[3].clone()]);
        let v = g.vectors[2].clone();
        let list = g.lists[2].clone();
        let repair = Repair {
            deleted: &deleted,
            m: 1,
            ef: 8,
        };
        let new = repair.relink(&mut g, 2, &v, &list, 0);
        let mut sorted = new.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 4]);
    }

    #[test]
    fn unreachable_live_nodes_are_linked_back() {
        // 0-1-2-3-4-5: delete 3 and cut the links to it; 4 and 5 are unreachable.
        let mut g = MemoryGraph::line(6);
        let mut deleted = Deleted::default();
        deleted.insert(3, vec![g.lists[3].clone()]);
        g.lists[2].retain(|&x| x != 3);
        g.lists[4].retain(|&x| x != 3);
        g.lists[3].clear();
        let live = [0, 1, 2, 4, 5];
        let repair = Repair {
            deleted: &deleted,
            m: 2,
            ef: 8,
        };
        assert_eq!(repair.reconnect(&mut g, &live), 2);
        // Both are reachable from the entry again.
        let mut reached = [false; 6];
        let mut todo = vec![0u64];
        reached[0] = true;
        while let Some(n) = todo.pop() {
            for &x in &g.lists[n as usize] {
                if !reached[x as usize] {
                    reached[x as usize] = true;
                    todo.push(x);
                }
            }
        }
        assert!(reached[4] && reached[5], "{:?}", g.lists);
    }
}
