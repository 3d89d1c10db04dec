//! Index scans: `ORDER BY v <-> $1` answered from the graph, nearest first.
//!
//! The first round searches with `epiphany.hnsw_ef_search` candidates. A scan asked for
//! more rows than that (a WHERE clause filtered them out) searches again with twice the
//! candidates and returns the nodes it has not returned yet, until the graph is exhausted
//! or `epiphany.hnsw_max_scan_tuples` nodes were returned. Later rounds can return a row
//! nearer than one already returned: like every approximate index, the order is
//! best-effort.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::collections::{BinaryHeap, VecDeque};

use epiphany_core::vector::hnsw::{search, NodeId, Scored};
use epiphany_core::vector::hnsw_node::RowId;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use rustc_hash::FxHashSet;

use super::pages::{self, PageGraph};
use crate::index_am;
use crate::options::{HNSW_EF_SEARCH, HNSW_MAX_SCAN_TUPLES};
use epiphany_core::pg::buffer::Rel;

enum Query {
    /// Not started (a rescan resets here).
    Pending,
    /// Searching near this vector.
    Near(Vec<f32>),
    /// A NULL query: every row, in index order.
    All,
}

struct ScanState {
    query: Query,
    /// Over the scan's index, open until the scan ends (its state goes with the scan).
    graph: PageGraph<'static>,
    rows: VecDeque<RowId>,
    returned: FxHashSet<NodeId>,
    ef: usize,
    done: bool,
}

/// `ambeginscan`.
#[pg_guard]
pub unsafe extern "C-unwind" fn begin_scan(
    index: pg_sys::Relation,
    nkeys: i32,
    norderbys: i32,
) -> pg_sys::IndexScanDesc {
    // SAFETY: Postgres passes an index that stays open until the scan ends; the state
    // lives in the scan's memory context and is dropped with it.
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        let rel = Rel::new(index);
        let state = ScanState {
            query: Query::Pending,
            graph: PageGraph::new(rel, pages::read_meta(rel), false).with_cache(),
            rows: VecDeque::new(),
            returned: FxHashSet::default(),
            ef: 0,
            done: false,
        };
        (*scan).opaque =
            PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state) as *mut _;
        scan
    }
}

/// `amrescan`.
#[pg_guard]
pub unsafe extern "C-unwind" fn rescan(
    scan: pg_sys::IndexScanDesc,
    _keys: pg_sys::ScanKey,
    _nkeys: i32,
    orderbys: pg_sys::ScanKey,
    norderbys: i32,
) {
    // SAFETY: the scan begin_scan made; orderbys has norderbys keys.
    unsafe {
        index_am::keep_order_by(scan, orderbys, norderbys);
        let state = &mut *((*scan).opaque as *mut ScanState);
        let rel = state.graph.rel();
        let meta = pages::read_meta(rel);
        if meta.build_id != state.graph.meta.build_id || meta.shape != state.graph.meta.shape {
            state.graph = PageGraph::new(rel, meta, false).with_cache();
        }
        state.graph.meta = meta;
        state.query = Query::Pending;
        state.rows.clear();
        state.returned.clear();
        state.ef = 0;
        state.done = false;
    }
}

/// `amendscan`: the state goes with the scan's memory context.
#[pg_guard]
pub unsafe extern "C-unwind" fn end_scan(_scan: pg_sys::IndexScanDesc) {}

/// `amgettuple`.
#[pg_guard]
pub unsafe extern "C-unwind" fn get_tuple(
    scan: pg_sys::IndexScanDesc,
    _direction: pg_sys::ScanDirection::Type,
) -> bool {
    // SAFETY: the scan begin_scan made, with its order-by keys set by rescan.
    unsafe {
        let state = &mut *((*scan).opaque as *mut ScanState);
        if matches!(state.query, Query::Pending) {
            let dims = state.graph.meta.shape.dims;
            state.query = match index_am::query_vector(scan, "epiphany_hnsw", dims) {
                None => Query::All,
                Some(q) => Query::Near(state.graph.meta.metric.prepare(&q).into_owned()),
            };
        }
        loop {
            if let Some(row) = state.rows.pop_front() {
                index_am::return_row(scan, row);
                return true;
            }
            if state.done {
                return false;
            }
            state.next_round();
        }
    }
}

impl ScanState {
    /// Fills `rows` with the next round's rows, or marks the scan done.
    fn next_round(&mut self) {
        match &self.query {
            Query::Pending => unreachable!("the query is set before the first round"),
            Query::All => {
                self.all_rows();
                self.done = true;
            }
            Query::Near(q) => {
                let max = HNSW_MAX_SCAN_TUPLES.get().max(1) as usize;
                self.ef = if self.ef == 0 {
                    HNSW_EF_SEARCH.get().max(1) as usize
                } else {
                    self.ef * 2
                };
                let found = search(&mut self.graph, q, self.ef, self.ef);
                let exhausted = found.len() < self.ef;
                if exhausted || self.ef >= max {
                    // Every node reachable from the entry point was found, or the next
                    // round would pass the bound.
                    self.done = true;
                }
                for s in found {
                    if self.returned.len() >= max {
                        self.done = true;
                        break;
                    }
                    if self.returned.insert(s.node) {
                        self.graph.with_node(s.node, |n| self.rows.extend(n.rows()));
                    }
                }
                if exhausted && self.returned.len() < max {
                    // Nodes no search reaches (a part of the graph only linked one way)
                    // still hold rows the query may need: the rest, nearest first.
                    let q = q.clone();
                    self.remaining_rows(&q, max);
                }
            }
        }
    }

    /// The rows of nodes not returned yet, nearest first, up to `max` nodes in all (the
    /// walk keeps only that many candidates, so its memory is bounded by the GUC).
    fn remaining_rows(&mut self, q: &[f32], max: usize) {
        let shape = self.graph.meta.shape;
        let metric = self.graph.metric;
        let room = max.saturating_sub(self.returned.len());
        if room == 0 {
            return;
        }
        let mut nearest: BinaryHeap<Scored> = BinaryHeap::with_capacity(room.min(1 << 16) + 1);
        let returned = &self.returned;
        pages::for_each_node(self.graph.rel(), shape, |addr, n| {
            if !n.deleted() && !returned.contains(&addr.pack()) {
                nearest.push(Scored {
                    distance: pages::distance_in_place(metric, n.vector_bytes(), q),
                    node: addr.pack(),
                });
                if nearest.len() > room {
                    nearest.pop();
                }
            }
        });
        for s in nearest.into_sorted_vec() {
            self.graph.with_node(s.node, |n| self.rows.extend(n.rows()));
        }
    }

    /// Every row of every node.
    fn all_rows(&mut self) {
        let rows = &mut self.rows;
        pages::for_each_node(self.graph.rel(), self.graph.meta.shape, |_, n| {
            rows.extend(n.rows())
        });
    }
}
