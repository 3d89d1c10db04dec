//! VACUUM: dead rows leave their nodes; a node without rows is marked deleted, and every
//! link to a deleted node is replaced by the best of that node's own neighbours (the
//! selection heuristic, with a search of the graph when too few of those are live), so
//! the graph stays connected and recall holds (`epiphany_core::vector::hnsw_repair`). A
//! deleted node stays on its page (a scan may be standing on it); its space is reclaimed
//! by REINDEX.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::OrReport;
use epiphany_core::vector::hnsw::NodeId;
use epiphany_core::vector::hnsw_node::{Meta, Node, NodeAddr, Shape};
use epiphany_core::vector::hnsw_repair::{Deleted, Repair};
use pgrx::itemptr::item_pointer_set_all;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::index_am::{vacuum_stats, Vacuumed};
use rustc_hash::FxHashMap;

use super::build::write_meta;
use super::insert;
use super::pages::{self, item_count, item_range, node_at, PageGraph};
use epiphany_core::pg::buffer::{Buffer, Image, Lock, Rel, WalRecord};

/// Overwrites nodes of an exclusively locked page in one WAL record; releases the page.
fn rewrite_nodes<'a>(rel: Rel<'a>, buffer: Buffer<'a>, nodes: &[(NodeAddr, Node)], shape: Shape) {
    if nodes.is_empty() {
        return;
    }
    let mut record = WalRecord::start(rel);
    let n = record.add(buffer, Image::Delta);
    let page = record.page(n);
    for (addr, node) in nodes {
        let bytes = node.encode(shape).or_report();
        let range = item_range(page, addr.item).expect("the node was just read");
        assert_eq!(range.len(), bytes.len(), "an HNSW node keeps its size");
        page[range].copy_from_slice(&bytes);
    }
    record.finish();
}

/// `ambulkdelete`.
#[pg_guard]
pub unsafe extern "C-unwind" fn bulk_delete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: Postgres passes the VACUUM's info and a callback that says which TIDs died.
    unsafe {
        let stats = vacuum_stats(stats);
        let vacuum = Vacuumed::new(info);
        let index = vacuum.rel;
        let meta = pages::read_meta(index);
        let shape = meta.shape;
        if shape.dims == 0 {
            return stats;
        }
        let is_dead = callback.expect("VACUUM passes a callback");
        // Deleted nodes and their neighbour lists, to route around them.
        let mut deleted: FxHashMap<NodeId, Vec<Vec<NodeId>>> = FxHashMap::default();
        let mut top_live: Option<(NodeAddr, usize)> = None;
        let mut live = Vec::new();
        let mut kept = 0.0;
        for block in 1..index.nblocks() {
            pages::delay_point();
            let buffer = vacuum.read(block, Lock::Exclusive);
            let page = buffer.page();
            let mut changed = Vec::new();
            for item in 1..=item_count(page) {
                if item_range(page, item).is_none() {
                    continue;
                }
                let addr = NodeAddr { block, item };
                let view = node_at(page, addr, shape);
                let mut node = view.to_node().or_report();
                if !node.deleted {
                    let before = node.rows.len();
                    node.rows.retain(|r| {
                        let mut tid = pg_sys::ItemPointerData::default();
                        item_pointer_set_all(&mut tid, r.block, r.item);
                        // VACUUM's callback, guarded like any call into Postgres.
                        #[allow(ffi_unwind_calls)]
                        let dead = pg_sys::ffi::pg_guard_ffi_boundary(|| {
                            is_dead(&mut tid, callback_state)
                        });
                        !dead
                    });
                    (*stats).tuples_removed += (before - node.rows.len()) as f64;
                    kept += node.rows.len() as f64;
                    if node.rows.is_empty() {
                        node.deleted = true;
                    }
                    if node.rows.len() != before {
                        changed.push((addr, node.clone()));
                    }
                }
                if node.deleted {
                    deleted.insert(
                        addr.pack(),
                        node.neighbors
                            .iter()
                            .map(|l| l.iter().map(|a| a.pack()).collect())
                            .collect(),
                    );
                } else {
                    live.push(addr.pack());
                    if top_live.is_none_or(|(_, l)| node.level > l) {
                        top_live = Some((addr, node.level));
                    }
                }
            }
            rewrite_nodes(index, buffer, &changed, shape);
        }
        (*stats).num_index_tuples = kept;
        if !deleted.is_empty() {
            repair(vacuum, meta, &deleted);
            if meta
                .entry
                .is_some_and(|(a, _)| deleted.contains_key(&a.pack()))
            {
                let mut now = pages::read_meta(index);
                if now.entry == meta.entry {
                    now.entry = top_live;
                    write_meta(index, &now);
                }
            }
            reconnect(index, pages::read_meta(index), &live, &deleted);
        }
        stats
    }
}

/// Replaces links to deleted nodes, page by page: lists are computed under a share lock
/// and written under an exclusive one if nobody changed them meanwhile (a list changed by
/// a concurrent insert is repaired by the next VACUUM).
fn repair(vacuum: Vacuumed<'_>, meta: Meta, deleted: &Deleted) {
    let shape = meta.shape;
    {
        let index = vacuum.rel;
        let mut graph = PageGraph::new(index, meta, true);
        let repair = Repair {
            deleted,
            m: shape.m,
            ef: meta.ef_construction,
        };
        for block in 1..index.nblocks() {
            pages::delay_point();
            let buffer = vacuum.read(block, Lock::Share);
            let page = buffer.page();
            let mut broken = Vec::new();
            for item in 1..=item_count(page) {
                if item_range(page, item).is_none() {
                    continue;
                }
                let addr = NodeAddr { block, item };
                let node = node_at(page, addr, shape).to_node().or_report();
                let links_deleted = node
                    .neighbors
                    .iter()
                    .flatten()
                    .any(|a| deleted.contains_key(&a.pack()));
                if !node.deleted && links_deleted {
                    broken.push((addr, node));
                }
            }
            drop(buffer);
            if broken.is_empty() {
                continue;
            }
            let mut fixed = Vec::with_capacity(broken.len());
            for (addr, node) in &broken {
                let mut n = node.clone();
                for (level, list) in node.neighbors.iter().enumerate() {
                    if list.iter().any(|a| deleted.contains_key(&a.pack())) {
                        let ids: Vec<NodeId> = list.iter().map(|a| a.pack()).collect();
                        n.neighbors[level] = repair
                            .relink(&mut graph, addr.pack(), &node.vector, &ids, level)
                            .into_iter()
                            .map(NodeAddr::unpack)
                            .collect();
                    }
                }
                fixed.push((*addr, n));
            }
            let buffer = vacuum.read(block, Lock::Exclusive);
            let page = buffer.page();
            let (olds, still): (Vec<&Node>, Vec<(NodeAddr, Node)>) = broken
                .iter()
                .zip(fixed)
                .filter(|((addr, old), _)| {
                    node_at(page, *addr, shape).to_node().or_report() == *old
                })
                .map(|((_, old), new)| (old, new))
                .unzip();
            rewrite_nodes(index, buffer, &still, shape);
            // New neighbours link back, as they would to a newly inserted node: a node
            // whose links in came from deleted nodes gets new ones.
            for (old, (addr, new)) in olds.iter().zip(&still) {
                graph.remember(addr.pack(), &new.vector);
                for (level, list) in new.neighbors.iter().enumerate() {
                    for n in list.iter().filter(|n| !old.neighbors[level].contains(n)) {
                        graph.load(n.pack());
                        let d = graph.metric.distance(graph.cached(n.pack()), &new.vector);
                        insert::link(&mut graph, n.pack(), addr.pack(), d, level, false);
                    }
                }
            }
        }
    }
}

/// Links every live node that no search can reach any more back into the bottom layer
/// (`epiphany_core::vector::hnsw_repair::reconnect`).
fn reconnect(index: Rel<'_>, meta: Meta, live: &[NodeId], deleted: &Deleted) {
    let mut graph = PageGraph::new(index, meta, true);
    let m = meta.shape.m;
    let repair = Repair {
        deleted,
        m,
        ef: meta.ef_construction,
    };
    repair.reconnect(&mut graph, live);
}

/// `amvacuumcleanup`.
#[pg_guard]
pub unsafe extern "C-unwind" fn vacuum_cleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: Postgres passes the VACUUM's info and the bulk-delete result, if any.
    unsafe {
        let vacuum = Vacuumed::new(info);
        if vacuum.analyze_only {
            return stats;
        }
        let index = vacuum.rel;
        let stats = if stats.is_null() {
            // No bulk delete ran: count the rows for the statistics.
            let s = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>())
                as *mut pg_sys::IndexBulkDeleteResult;
            let shape = pages::read_meta(index).shape;
            let mut rows = 0.0;
            if shape.dims != 0 {
                for block in 1..index.nblocks() {
                    let buffer = vacuum.read(block, Lock::Share);
                    let page = buffer.page();
                    for item in 1..=item_count(page) {
                        if item_range(page, item).is_some() {
                            rows += node_at(page, NodeAddr { block, item }, shape)
                                .rows()
                                .count() as f64;
                        }
                    }
                }
            }
            (*s).num_index_tuples = rows;
            s
        } else {
            stats
        };
        (*stats).num_pages = index.nblocks();
        (*stats).estimated_count = false;
        stats
    }
}
