//! Index scans of epiphany_ivfpq: the `epiphany.ivf_probes` lists nearest to the query
//! are read and their entries ranked by PQ code; the best `epiphany.ivf_rerank` are
//! measured exactly (their table rows are read with the scan's snapshot, which also drops
//! rows it cannot see), and more as long as an unmeasured candidate could still beat the
//! next row to return (`RerankQueue`): rows come in exact order. A scan asked for more
//! than its lists hold goes on with the next lists, up to `epiphany.ivf_max_probes`. The
//! loop is `epiphany_core::vector::ivf_scan`; here are the pages and table rows it reads.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::collections::VecDeque;
use std::rc::Rc;

use epiphany_core::pg::OrReport;
use epiphany_core::vector::hnsw::NodeId;
use epiphany_core::vector::hnsw::Scored;
use epiphany_core::vector::hnsw_node::NodeAddr;
use epiphany_core::vector::ivf_page::{decode_entry, IvfMeta};
use epiphany_core::vector::ivf_scan::{IvfScan, Lists, Settings};
use epiphany_core::vector::pq::IvfPq;
use epiphany_core::vector::rerank::RerankQueue;
use epiphany_core::Error;
use pgrx::itemptr::item_pointer_set_all;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use super::build::indexed_column;
use super::pages::{self, entries, next_of, read_head};
use crate::datum::elements;
use crate::index_am;
use crate::options::{IVF_MAX_PROBES, IVF_PROBES, IVF_RERANK};
use epiphany_core::pg::buffer::{Buffer, Lock, Rel};

struct ScanState {
    meta: IvfMeta,
    model: Rc<IvfPq>,
    query: Option<Vec<f32>>,
    /// The lists in probe order, read and measured by `epiphany_core`'s loop.
    search: IvfScan,
    /// Rows in exact order not returned yet.
    rows: VecDeque<NodeId>,
    attnum: i16,
    fetch: *mut pg_sys::IndexFetchTableData,
    slot: *mut pg_sys::TupleTableSlot,
    /// A child of the scan's memory context (deleted with it, before this state is
    /// dropped, so the state must not own it).
    context: pg_sys::MemoryContext,
}

/// The index's lists and the table's rows, for `epiphany_core`'s scan loop.
struct Pages<'s> {
    state: &'s mut ScanState,
    scan: pg_sys::IndexScanDesc,
}

impl Lists for Pages<'_> {
    fn read_list(&mut self, list: usize, queue: &mut RerankQueue) {
        // SAFETY: the scan is the state's, running (get_tuple): its index is open.
        let index = unsafe { Rel::new((*self.scan).indexRelation) };
        self.state.read_list(index, list, queue)
    }

    fn measure(&mut self, batch: &[Scored]) -> Vec<(f32, Scored)> {
        // SAFETY: as above.
        unsafe { self.state.rerank(self.scan, batch) }
    }
}

/// `ambeginscan`.
#[pg_guard]
pub unsafe extern "C-unwind" fn begin_scan(
    index: pg_sys::Relation,
    nkeys: i32,
    norderbys: i32,
) -> pg_sys::IndexScanDesc {
    // SAFETY: Postgres passes an open index; the state lives in the scan's memory context.
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        let rel = Rel::new(index);
        let meta = pages::read_meta(rel);
        let state = ScanState {
            model: pages::model(rel, &meta),
            meta,
            query: None,
            search: IvfScan::default(),
            rows: VecDeque::new(),
            attnum: indexed_column(rel),
            fetch: std::ptr::null_mut(),
            slot: std::ptr::null_mut(),
            context: {
                let owner = PgMemoryContexts::new("epiphany_ivfpq rerank");
                let context = owner.value();
                std::mem::forget(owner);
                context
            },
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
    // SAFETY: the scan begin_scan made.
    unsafe {
        index_am::keep_order_by(scan, orderbys, norderbys);
        let state = &mut *((*scan).opaque as *mut ScanState);
        state.query = None;
        state.search = IvfScan::default();
        state.rows.clear();
    }
}

/// `amendscan`.
#[pg_guard]
pub unsafe extern "C-unwind" fn end_scan(scan: pg_sys::IndexScanDesc) {
    // SAFETY: the scan begin_scan made; the fetch and slot are ours.
    unsafe {
        let state = &mut *((*scan).opaque as *mut ScanState);
        if !state.fetch.is_null() {
            pg_sys::table_index_fetch_end(state.fetch);
            state.fetch = std::ptr::null_mut();
        }
        if !state.slot.is_null() {
            pg_sys::ExecDropSingleTupleTableSlot(state.slot);
            state.slot = std::ptr::null_mut();
        }
    }
}

/// `amgettuple`.
#[pg_guard]
pub unsafe extern "C-unwind" fn get_tuple(
    scan: pg_sys::IndexScanDesc,
    _direction: pg_sys::ScanDirection::Type,
) -> bool {
    // SAFETY: the scan begin_scan made, with its order-by key set by rescan.
    unsafe {
        let state = &mut *((*scan).opaque as *mut ScanState);
        if state.query.is_none() {
            let dims = state.meta.dims;
            let q = match index_am::query_vector(scan, "epiphany_ivfpq", dims) {
                // No direction to search in: every row, in list order.
                None => vec![0.0; dims],
                Some(q) => state.meta.metric.prepare(&q).into_owned(),
            };
            state.search = IvfScan::new(state.model.probe_order(&q, state.meta.lists));
            state.query = Some(q);
        }
        loop {
            if let Some(row) = state.rows.pop_front() {
                index_am::return_row(scan, NodeAddr::unpack(row));
                return true;
            }
            if !state.next_round(scan) {
                return false;
            }
        }
    }
}

impl ScanState {
    /// Puts the next rows in exact order into `rows`; false when there are none left.
    ///
    /// # Safety
    /// `scan` is this state's scan.
    unsafe fn next_round(&mut self, scan: pg_sys::IndexScanDesc) -> bool {
        let settings = Settings {
            probes: IVF_PROBES.get().max(1) as usize,
            rerank: IVF_RERANK.get().max(1) as usize,
            max_probes: IVF_MAX_PROBES.get().max(0) as usize,
        };
        let mut search = std::mem::take(&mut self.search);
        let mut rows = std::mem::take(&mut self.rows);
        let more = search.next_rows(settings, &mut Pages { state: self, scan }, &mut rows);
        self.search = search;
        self.rows = rows;
        more
    }

    /// Adds every entry of `list` of this scan's index to the candidates.
    fn read_list(&self, index: Rel<'_>, list: usize, queue: &mut RerankQueue) {
        let q = self.query.as_ref().expect("set before the first round");
        let (table, base) = self.model.list_table(q, list);
        let size = self.meta.entry_size();
        // Each page is share-locked while read.
        {
            let head = read_head(index, &self.meta, list);
            let mut block = head.first_block;
            let mut pages = 0u32;
            let limit = index.nblocks();
            while block != 0 {
                let buffer = Buffer::read(index, block, Lock::Share);
                let page = buffer.page();
                for (_, bytes) in entries(page) {
                    let (row, code) = decode_entry(bytes, size).or_report();
                    queue.push_candidate(Scored {
                        distance: base + self.model.pq.distance(&table, code),
                        node: row.pack(),
                    });
                }
                block = next_of(page);
                drop(buffer);
                pages += 1;
                if pages > limit || block >= limit {
                    Error::Corrupted(format!("IVF-PQ index: list {list}'s chain is broken"))
                        .report();
                }
            }
        }
    }

    /// Estimated and exact distances of the candidates whose rows the scan's snapshot
    /// sees.
    ///
    /// # Safety
    /// `scan` is this state's scan.
    unsafe fn rerank(
        &mut self,
        scan: pg_sys::IndexScanDesc,
        batch: &[Scored],
    ) -> Vec<(f32, Scored)> {
        let q = self.query.clone().expect("set before the first round");
        let mut out = Vec::with_capacity(batch.len());
        // SAFETY: per the contract; the heap relation and snapshot are the scan's, the
        // fetched values are read while the slot holds the tuple.
        unsafe {
            let heap = (*scan).heapRelation;
            if heap.is_null() {
                // No table to read (a bitmap or check scan): the codes' order.
                return batch.iter().map(|c| (c.distance, *c)).collect();
            }
            if self.fetch.is_null() {
                self.fetch = pg_sys::table_index_fetch_begin(heap);
                self.slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
            }
            let old = pg_sys::MemoryContextSwitchTo(self.context);
            for c in batch {
                let row = NodeAddr::unpack(c.node);
                let mut tid = pg_sys::ItemPointerData::default();
                item_pointer_set_all(&mut tid, row.block, row.item);
                let mut call_again = false;
                let mut all_dead = false;
                let found = pg_sys::table_index_fetch_tuple(
                    self.fetch,
                    &mut tid,
                    (*scan).xs_snapshot,
                    self.slot,
                    &mut call_again,
                    &mut all_dead,
                );
                if !found {
                    continue;
                }
                let mut isnull = false;
                let datum = pg_sys::slot_getattr(self.slot, self.attnum as i32, &mut isnull);
                if isnull {
                    continue;
                }
                let v = elements(datum);
                let distance = if v.len() == q.len() {
                    let p = self.meta.metric.prepare(v);
                    self.model.metric.distance(&p, &q)
                } else {
                    f32::INFINITY
                };
                out.push((
                    c.distance,
                    Scored {
                        distance,
                        node: c.node,
                    },
                ));
            }
            pg_sys::ExecClearTuple(self.slot);
            pg_sys::MemoryContextSwitchTo(old);
            pg_sys::MemoryContextReset(self.context);
        }
        out
    }
}
