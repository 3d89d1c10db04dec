//! Adding one row to a built index: search the stored graph for the new vector's
//! neighbours, write its node, then link it into its neighbours' lists.
//!
//! A row whose vector equals a node's joins that node (up to `MAX_ROWS`). The node is
//! written with its own links complete before anyone links to it, so a crash between the
//! steps leaves an unreachable node of an uncommitted row, never a broken graph.

use epiphany_core::pg::OrReport;
use epiphany_core::vector::hnsw::{search_layer, select_neighbors, GraphView, NodeId, Scored};
use epiphany_core::vector::hnsw_node::{Meta, Node, NodeAddr, RowId, Shape, MAX_ROWS};
use epiphany_core::Error;
use pgrx::pg_sys;

use super::pages::{
    self, item_range, new_page, page_bytes, page_bytes_mut, put_meta, read_buffer, PageGraph,
    META_BLOCK, PAGE_CAPACITY,
};

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

/// Inserts `vector` for table row `row`.
///
/// # Safety
/// `index` is an open epiphany_hnsw index, locked for insertion.
pub unsafe fn insert(index: pg_sys::Relation, vector: &[f32], row: RowId) {
    // SAFETY: per the contract.
    let meta = unsafe { pages::read_meta(index) };
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
    // SAFETY: per the contract.
    let mut graph = unsafe { PageGraph::new(index, Meta { shape, ..meta }, true) };
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
                    // SAFETY: per the contract.
                    if graph.cached(s.node) == vector && unsafe { join(index, shape, s.node, row) }
                    {
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
    // SAFETY: per the contract.
    let id = unsafe { place(index, &node, shape, cap) };
    graph.remember(id, vector);
    for (l, chosen) in links.iter().enumerate() {
        for s in chosen {
            // SAFETY: per the contract.
            unsafe { link(index, &mut graph, s.node, id, s.distance, l, false) };
        }
    }
}

/// Adds `row` to the existing node `id` if it is live, has room and the same vector.
///
/// # Safety
/// `index` is an open epiphany_hnsw index.
unsafe fn join(index: pg_sys::Relation, shape: Shape, id: NodeId, row: RowId) -> bool {
    let addr = NodeAddr::unpack(id);
    // SAFETY: per the contract; the page is exclusively locked while GenericXLog edits it.
    unsafe {
        let buffer = read_buffer(index, addr.block);
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        let mut node = pages::node_at(page_bytes(buffer), addr, shape)
            .to_node()
            .or_report();
        let joined = !node.deleted && node.rows.len() < MAX_ROWS;
        if joined {
            node.rows.push(row);
            rewrite(index, buffer, addr, &node, shape);
        }
        pg_sys::UnlockReleaseBuffer(buffer);
        joined
    }
}

/// Replaces the node at `addr` on the exclusively locked `buffer`, WAL-logged.
///
/// # Safety
/// `buffer` is `addr.block` of `index`, pinned and exclusively locked.
pub unsafe fn rewrite(
    index: pg_sys::Relation,
    buffer: pg_sys::Buffer,
    addr: NodeAddr,
    node: &Node,
    shape: Shape,
) {
    let bytes = node.encode(shape).or_report();
    // SAFETY: per the contract; the new bytes have the old item's size (fixed per level).
    unsafe {
        let state = pg_sys::GenericXLogStart(index);
        let page = page_bytes_mut(pg_sys::GenericXLogRegisterBuffer(state, buffer, 0));
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
        pg_sys::GenericXLogFinish(state);
    }
}

/// Writes a new node on the insert page (or a new page) and makes it the entry point if
/// it is the highest; returns its id.
///
/// # Safety
/// `index` is an open epiphany_hnsw index.
unsafe fn place(index: pg_sys::Relation, node: &Node, shape: Shape, cap: usize) -> NodeId {
    let bytes = node.encode(shape).or_report();
    // SAFETY: per the contract. The metapage lock is taken first and held while the node
    // page is chosen, so inserts do not race for the same free space.
    unsafe {
        let meta_buffer = read_buffer(index, META_BLOCK);
        pg_sys::LockBuffer(meta_buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        let mut meta = Meta::decode(&page_bytes(meta_buffer)[24..]).or_report();
        let state = pg_sys::GenericXLogStart(index);
        let mut buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        let mut page = std::ptr::null_mut();
        if meta.insert_block != META_BLOCK {
            buffer = read_buffer(index, meta.insert_block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            if pg_sys::PageGetFreeSpace(pg_sys::BufferGetPage(buffer))
                >= bytes.len().next_multiple_of(8)
            {
                page = pg_sys::GenericXLogRegisterBuffer(state, buffer, 0);
            } else {
                pg_sys::UnlockReleaseBuffer(buffer);
            }
        }
        if page.is_null() {
            (buffer, page) = new_page(index, pg_sys::ForkNumber::MAIN_FORKNUM, state);
            meta.insert_block = pg_sys::BufferGetBlockNumber(buffer);
        }
        let item = pg_sys::PageAddItemExtended(
            page,
            bytes.as_ptr() as pg_sys::Item,
            bytes.len(),
            pg_sys::InvalidOffsetNumber,
            0,
        );
        if item == pg_sys::InvalidOffsetNumber {
            Error::Internal("epiphany_hnsw: a node did not fit its page".into()).report();
        }
        let addr = NodeAddr {
            block: pg_sys::BufferGetBlockNumber(buffer),
            item,
        };
        if meta.shape.dims == 0 {
            meta.shape = shape;
            meta.max_level = cap;
        }
        if meta.entry.is_none_or(|(_, top)| node.level > top) {
            meta.entry = Some((addr, node.level));
        }
        let meta_page = pg_sys::GenericXLogRegisterBuffer(state, meta_buffer, 0);
        put_meta(meta_page, &meta);
        pg_sys::GenericXLogFinish(state);
        pg_sys::UnlockReleaseBuffer(buffer);
        pg_sys::UnlockReleaseBuffer(meta_buffer);
        addr.pack()
    }
}

/// Adds `new` to `node`'s neighbours on `level`; a full list keeps the best spread of its
/// members and `new` (the selection heuristic), or with `force` gives `new` the place of
/// its farthest member when the heuristic would not keep it. The list is computed without
/// locks and written only if nobody changed it meanwhile (else computed again).
///
/// # Safety
/// `index` is an open epiphany_hnsw index.
pub unsafe fn link(
    index: pg_sys::Relation,
    graph: &mut PageGraph,
    node: NodeId,
    new: NodeId,
    distance: f32,
    level: usize,
    force: bool,
) {
    let shape = graph.meta.shape;
    let metric = graph.metric;
    let room = if level == 0 { 2 * shape.m } else { shape.m };
    for _attempt in 0..5 {
        let mut current = Vec::new();
        graph.with_node(node, |n| n.neighbors(level, &mut current).or_report());
        if current.contains(&new) {
            return;
        }
        let wanted: Vec<NodeId> = if current.len() < room {
            current.iter().copied().chain([new]).collect()
        } else {
            graph.load(node);
            for &n in &current {
                graph.load(n);
            }
            let base = graph.cached(node);
            let mut scored: Vec<Scored> = current
                .iter()
                .map(|&n| Scored {
                    distance: metric.distance(graph.cached(n), base),
                    node: n,
                })
                .chain([Scored {
                    distance,
                    node: new,
                }])
                .collect();
            scored.sort();
            let chosen = select_neighbors(&scored, room, |a, b| {
                metric.distance(graph.cached(a), graph.cached(b))
            });
            let mut chosen: Vec<NodeId> = chosen.iter().map(|s| s.node).collect();
            if !chosen.contains(&new) {
                if !force {
                    return;
                }
                chosen.pop();
                chosen.push(new);
            }
            chosen
        };
        let addr = NodeAddr::unpack(node);
        // SAFETY: per the contract; one node page locked exclusively, nothing else held.
        let done = unsafe {
            let buffer = read_buffer(index, addr.block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            let mut n = pages::node_at(page_bytes(buffer), addr, shape)
                .to_node()
                .or_report();
            let unchanged = n.neighbors[level]
                .iter()
                .map(|a| a.pack())
                .eq(current.iter().copied());
            if unchanged {
                n.neighbors[level] = wanted.iter().map(|&id| NodeAddr::unpack(id)).collect();
                rewrite(index, buffer, addr, &n, shape);
            }
            pg_sys::UnlockReleaseBuffer(buffer);
            unchanged
        };
        if done {
            return;
        }
    }
}
