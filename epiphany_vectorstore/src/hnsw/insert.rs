//! Adding one row to a built index: search the stored graph for the new vector's
//! neighbours, write its node, then link it into its neighbours' lists.
//!
//! A row whose vector equals a node's joins that node (up to `MAX_ROWS`). The node is
//! written with its own links complete before anyone links to it, so a crash between the
//! steps leaves an unreachable node of an uncommitted row, never a broken graph.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::{Buffer, Image, Lock, Rel, WalRecord};
use epiphany_core::pg::page;
use epiphany_core::pg::OrReport;
use epiphany_core::vector::hnsw::{
    link_stored, search_layer, select_neighbors, GraphStore, GraphView, Metric, NodeId, Scored,
};
use epiphany_core::vector::hnsw_node::{Meta, Node, NodeAddr, RowId, Shape, MAX_ROWS};
use epiphany_core::Error;
use pgrx::pg_sys;

use super::pages::{self, item_range, put_meta, PageGraph, META_BLOCK, PAGE_CAPACITY, PAGE_HEADER};

/// The highest level nodes of `shape` may have, or an error naming the dimension limit.
pub fn max_level(shape: Shape) -> usize {
    shape.max_level(PAGE_CAPACITY).unwrap_or_else(|| {
        let most = (1..shape.dims)
            .rev()
            .find(|&d| Shape { dims: d, m: shape.m }.max_level(PAGE_CAPACITY).is_some())
            .unwrap_or(0);
        Error::Limit(format!(
            "vectors of {} dimensions do not fit an epiphany_hnsw index with m = {} (at most {most})",
            shape.dims, shape.m
        ))
        .report()
    })
}

/// A level for a new node: geometric with ratio 1/m, capped.
fn random_level(m: usize, cap: usize) -> usize {
    // SAFETY: the global PRNG is per backend and used on the main thread only.
    let u = unsafe { pg_sys::pg_prng_double(&raw mut pg_sys::pg_global_prng_state) };
    ((-(1.0 - u).ln() / (m as f64).ln()) as usize).min(cap)
}

/// Inserts `vector` for table row `row` into an index locked for insertion.
pub fn insert(index: Rel<'_>, vector: &[f32], row: RowId) {
    let meta = pages::read_meta(index);
    if meta.shape.dims != 0 && meta.shape.dims != vector.len() {
        Error::Data(format!(
            "expected {} dimensions, not {}",
            meta.shape.dims,
            vector.len()
        ))
        .report();
    }
    let shape = Shape {
        dims: vector.len(),
        m: meta.shape.m,
    };
    let vector = &*meta.metric.prepare(vector);
    let cap = max_level(shape);
    let level = random_level(shape.m, cap);
    let mut graph = PageGraph::new(index, Meta { shape, ..meta }, true);
    let mut links: Vec<Vec<Scored>> = vec![Vec::new(); level + 1];
    if let Some((entry, top)) = graph.entry() {
        let mut nearest = vec![Scored {
            distance: graph.distance_to(entry, vector),
            node: entry,
        }];
        for l in (level + 1..=top).rev() {
            nearest = search_layer(&mut graph, vector, &nearest, 1, l);
        }
        for l in (0..=level.min(top)).rev() {
            let found = search_layer(&mut graph, vector, &nearest, meta.ef_construction, l);
            if l == 0 {
                for s in found.iter().take_while(|s| s.distance <= 0.0) {
                    if graph.cached(s.node) == vector && join(index, shape, s.node, row) {
                        return;
                    }
                }
            }
            let metric = graph.metric;
            let chosen = select_neighbors(&found, shape.m, |a, b| {
                metric.distance(graph.cached(a), graph.cached(b))
            });
            links[l] = chosen;
            nearest = found;
        }
    }
    let node = Node {
        level,
        deleted: false,
        rows: vec![row],
        vector: vector.to_vec(),
        neighbors: links
            .iter()
            .map(|l| l.iter().map(|s| NodeAddr::unpack(s.node)).collect())
            .collect(),
    };
    let id = place(index, &node, shape, cap);
    graph.remember(id, vector);
    for (l, chosen) in links.iter().enumerate() {
        for s in chosen {
            link(&mut graph, s.node, id, s.distance, l, false);
        }
    }
}

/// Adds `row` to the existing node `id` if it is live, has room and the same vector.
fn join(rel: Rel<'_>, shape: Shape, id: NodeId, row: RowId) -> bool {
    let addr = NodeAddr::unpack(id);
    let buffer = Buffer::read(rel, addr.block, Lock::Exclusive);
    let mut node = pages::node_at(buffer.page(), addr, shape)
        .to_node()
        .or_report();
    let joined = !node.deleted && node.rows.len() < MAX_ROWS;
    if joined {
        node.rows.push(row);
        rewrite(rel, buffer, addr, &node, shape);
    }
    joined
}

/// Replaces the node at `addr` on the exclusively locked `buffer`, WAL-logged, and
/// releases the buffer.
pub fn rewrite<'a>(rel: Rel<'a>, buffer: Buffer<'a>, addr: NodeAddr, node: &Node, shape: Shape) {
    let bytes = node.encode(shape).or_report();
    let mut record = WalRecord::start(rel);
    let n = record.add(buffer, Image::Delta);
    let page = record.page(n);
    // The new bytes have the old item's size (fixed per level).
    let range = item_range(page, addr.item)
        .filter(|r| r.len() == bytes.len())
        .unwrap_or_else(|| {
            Error::Corrupted(format!(
                "epiphany_hnsw: node ({},{}) changed size",
                addr.block, addr.item
            ))
            .report()
        });
    page[range].copy_from_slice(&bytes);
    record.finish();
}

/// Writes a new node on the insert page (or a new page) and makes it the entry point if
/// it is the highest; returns its id.
fn place(rel: Rel<'_>, node: &Node, shape: Shape, cap: usize) -> NodeId {
    let bytes = node.encode(shape).or_report();
    // The metapage lock is taken first and held while the node page is chosen, so
    // inserts do not race for the same free space.
    let meta_buffer = Buffer::read(rel, META_BLOCK, Lock::Exclusive);
    let mut meta = Meta::decode(&meta_buffer.page()[PAGE_HEADER..]).or_report();
    let mut record = WalRecord::start(rel);
    let mut node_page = None;
    if meta.insert_block != META_BLOCK {
        let buffer = Buffer::read(rel, meta.insert_block, Lock::Exclusive);
        if page::free_space(buffer.page()) >= bytes.len().next_multiple_of(8) {
            node_page = Some(record.add(buffer, Image::Delta));
        }
    }
    let node_page = match node_page {
        Some(n) => n,
        None => {
            let n = pages::new_page(&mut record, rel, pg_sys::ForkNumber::MAIN_FORKNUM, 0);
            meta.insert_block = record.block(n);
            n
        }
    };
    let Some(item) = page::add_item(record.page(node_page), &bytes) else {
        Error::Internal("epiphany_hnsw: a node did not fit its page".into()).report()
    };
    let addr = NodeAddr {
        block: record.block(node_page),
        item,
    };
    if meta.shape.dims == 0 {
        meta.shape = shape;
        meta.max_level = cap;
    }
    if meta.entry.is_none_or(|(_, top)| node.level > top) {
        meta.entry = Some((addr, node.level));
    }
    let m = record.add(meta_buffer, Image::Delta);
    put_meta(record.page(m), &meta);
    record.finish();
    addr.pack()
}

/// Adds `new` to `node`'s neighbours on `level` (`epiphany_core`'s one link-and-shrink,
/// [`link_stored`]): a full list keeps the best spread of its members and `new`, or with
/// `force` gives `new` the place of its farthest member when the heuristic would not
/// keep it. The list is computed without locks and written only if nobody changed it
/// meanwhile (else computed again).
pub fn link(
    graph: &mut PageGraph,
    node: NodeId,
    new: NodeId,
    distance: f32,
    level: usize,
    force: bool,
) {
    let m = graph.meta.shape.m;
    let room = if level == 0 { 2 * m } else { m };
    link_stored(graph, node, new, distance, level, room, force);
}

impl GraphStore for PageGraph<'_> {
    fn metric(&self) -> Metric {
        self.metric
    }

    fn load(&mut self, node: NodeId) {
        PageGraph::load(self, node)
    }

    fn vector(&self, node: NodeId) -> &[f32] {
        self.cached(node)
    }

    fn replace_neighbors(
        &mut self,
        node: NodeId,
        level: usize,
        expected: &[NodeId],
        new: &[NodeId],
    ) -> bool {
        let shape = self.meta.shape;
        let addr = NodeAddr::unpack(node);
        // One node page locked exclusively, nothing else held.
        let rel = self.rel();
        let buffer = Buffer::read(rel, addr.block, Lock::Exclusive);
        let mut n = pages::node_at(buffer.page(), addr, shape)
            .to_node()
            .or_report();
        let unchanged = n.neighbors[level]
            .iter()
            .map(|a| a.pack())
            .eq(expected.iter().copied());
        if unchanged {
            n.neighbors[level] = new.iter().map(|&id| NodeAddr::unpack(id)).collect();
            rewrite(rel, buffer, addr, &n, shape);
        }
        unchanged
    }
}
