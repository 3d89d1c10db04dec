//! The table AM's own scans: sequential (also parallel: participants claim granules from
//! a shared word, `epiphany_core::columnar::part_scan::claim`) and ANALYZE's block
//! sampling.
//!
//! A scan sees the parts whose catalog rows its snapshot sees; every participant of a
//! parallel scan reads the same list with the same (restored) snapshot.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use epiphany_core::columnar::agg::Aggregator;
use epiphany_core::columnar::join_filter::JoinFilter;
use epiphany_core::columnar::part_scan::top_n::{self, TopN, TopNSpec};
use epiphany_core::columnar::part_scan::{claim, PartCursor, PartScan};
use epiphany_core::columnar::prune::Predicate;
use epiphany_core::columnar::scan_plan::ScanCounters;
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::owned::ContextOwned;
use epiphany_core::pg::OrReportIn;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::convert::table::TableInfo;
use crate::storage::catalog::{self, PartRow};
use crate::storage::part_access::{DatumBatch, OpenPart, RowContext};
use epiphany_core::pg::page_store::RelationPageStore;

/// Rows decoded per batch.
const BATCH_ROWS: usize = 8192;

/// Granules a parallel scan's participant claims at a time: one (8,192 rows by
/// default) keeps two or three processes finishing together; a claim costs one
/// compare-and-swap.
const GRANULES_PER_CLAIM: usize = 1;

#[repr(C)]
pub struct ScanDesc {
    base: pg_sys::TableScanDescData,
    state: ContextOwned<ScanState>,
}

/// What the participants of a parallel scan share, in dynamic shared memory: the next
/// granule to claim (`claim`'s word) or, counting rows, the next part, and the granules
/// all of them scanned and skipped (so the leader's EXPLAIN shows the whole scan, not its
/// own share).
#[repr(C)]
#[derive(Default)]
pub struct SharedProgress {
    next_granule: AtomicU64,
    next_part: AtomicU64,
    granules_scanned: AtomicU64,
    granules_skipped: AtomicU64,
}

impl SharedProgress {
    /// Back to the start (a rescan).
    pub fn reset(&self) {
        self.next_granule.store(0, Ordering::Relaxed);
        self.next_part.store(0, Ordering::Relaxed);
        self.granules_scanned.store(0, Ordering::Relaxed);
        self.granules_skipped.store(0, Ordering::Relaxed);
    }

    /// Granules scanned and skipped by all participants so far.
    pub fn granules(&self) -> (u64, u64) {
        (
            self.granules_scanned.load(Ordering::Relaxed),
            self.granules_skipped.load(Ordering::Relaxed),
        )
    }
}

/// A Top-N scan's state: what it returned, the position of the ordered column in a
/// batch, the granules in reading order (once every part is open), how many were read.
struct TopNScan {
    top: TopN,
    key: usize,
    order: Option<TopNOrder>,
    next: usize,
    read: u64,
}

/// Every part a Top-N scan opened, and their granules in reading order as (part,
/// granule of those the part's cursor has left, rank).
struct TopNOrder {
    parts: Vec<(Rc<OpenPart>, PartCursor)>,
    granules: Vec<(usize, usize, i128)>,
}

impl TopNScan {
    fn restart(&mut self) {
        self.top.reset();
        self.next = 0;
        self.read = 0;
    }
}

/// A part a parallel scan's participant opened to claim granules of: its cursor over the
/// granules pruning left (`None`: none), and the pruning counters, added to the scan's
/// only by the participant that owns the part.
struct Opened {
    index: usize,
    part: Option<(Rc<OpenPart>, PartCursor)>,
    counters: ScanCounters,
}

/// A parallel scan's shared state, in dynamic shared memory.
#[repr(C)]
pub struct ParallelScan {
    base: pg_sys::ParallelTableScanDescData,
    progress: SharedProgress,
}

pub struct ScanState {
    pub info: TableInfo,
    pub parts: Vec<PartRow>,
    /// Columns read, pruning by the custom scan's quals, counters (`epiphany_core`).
    scan: PartScan,
    next_part: usize,
    current: Option<(Rc<OpenPart>, PartCursor)>,
    /// A parallel scan: the part this participant opened last to claim granules of.
    opened: Option<Opened>,
    /// A Top-N scan reads granules in the order of its statistics and stops early.
    top_n: Option<TopNScan>,
    batch: Option<(DatumBatch, usize)>,
    /// Per-row memory: by-reference datums of the row in the slot.
    pub(super) row_context: RowContext,
    /// ANALYZE: rows of the current sample block, as (part index, first pos, end pos).
    pub(super) sample: Option<super::sample::SampleState>,
    /// Bitmap heap scans fetch by TID.
    pub bitmap: Option<crate::am::bitmap::BitmapState>,
    /// TABLESAMPLE without its own block order: the next block; and the current one.
    pub(super) sample_cursor: u32,
    pub(super) sample_block_no: u32,
    /// Whether the first slot's descriptor was compared with the relation's.
    slot_checked: bool,
}

impl ScanState {
    /// # Safety
    /// `rel` open; `snapshot` valid for the call.
    pub unsafe fn new(rel: Rel<'_>, snapshot: pg_sys::Snapshot) -> Result<ScanState, Error> {
        // SAFETY: per the contract.
        let info = TableInfo::load(rel)?;
        // ANALYZE scans without a snapshot, and index builds with SnapshotAny (heap then
        // judges each tuple itself): both see the parts committed now (see
        // `catalog::visible`). They hold locks that keep writers out, so every
        // participant sees the same parts.
        let storage = crate::storage::meta::storage_id(rel)?;
        let parts = unsafe { catalog::visible_for_read(rel, storage, snapshot) }?;
        let row_context = RowContext::new(c"epiphany_columnar row");
        let read = (0..info.columns.len()).collect();
        let scan = PartScan::new(&info.schema, read, Vec::new(), true);
        Ok(ScanState {
            info,
            parts,
            scan,
            next_part: 0,
            current: None,
            opened: None,
            top_n: None,
            batch: None,
            row_context,
            sample: None,
            bitmap: None,
            sample_cursor: 0,
            sample_block_no: 0,
            slot_checked: false,
        })
    }

    /// The rows dropped by the pruning predicates since the last call: they failed a
    /// qual Postgres would have counted as filtered.
    pub fn take_filtered(&mut self) -> u64 {
        self.scan.take_filtered()
    }

    pub fn total_rows(&self) -> u64 {
        self.parts.iter().map(|p| p.row_count).sum()
    }

    /// What the scan read and skipped.
    pub fn counters(&mut self) -> &mut ScanCounters {
        &mut self.scan.counters
    }

    /// Reads only the table columns `read` (in ascending order) and skips the parts
    /// and granules that `preds` rule out; with a vectorized qual, returns only the rows
    /// it holds for (the first `row_preds` of `preds` still drop rows too).
    pub fn project_and_prune(
        &mut self,
        read: Vec<usize>,
        preds: Vec<Predicate>,
        qual: Option<(epiphany_core::columnar::qual::Qual, usize)>,
    ) -> Result<(), Error> {
        self.scan = PartScan::new(&self.info.schema, read, preds, true);
        if let Some((qual, row_preds)) = qual {
            self.scan.set_qual(qual, row_preds);
        }
        self.parts = self.scan.prune_parts(std::mem::take(&mut self.parts))?;
        Ok(())
    }

    /// Reads granules in the order `spec` sorts their rows and stops once none left can
    /// hold one of the first `spec.rows` rows (see `top_n`). Every row returned must
    /// reach the Sort above: the plan has no qual of Postgres's.
    pub fn set_top_n(&mut self, spec: TopNSpec) -> Result<(), Error> {
        let key = self
            .scan
            .read()
            .iter()
            .position(|&c| c == spec.column)
            .ok_or_else(|| Error::Internal("Top-N by a column the scan does not read".into()))?;
        self.scan.with_granule_stats();
        self.top_n = Some(TopNScan {
            top: TopN::new(spec),
            key,
            order: None,
            next: 0,
            read: 0,
        });
        Ok(())
    }

    /// A Top-N scan's spec and granules read of those it could have read.
    pub fn top_n(&self) -> Option<(TopNSpec, u64, u64)> {
        self.top_n.as_ref().map(|t| {
            let total = t.order.as_ref().map_or(0, |o| o.granules.len()) as u64;
            (t.top.spec(), t.read, total)
        })
    }

    /// Rows must also pass `filter`, a hash join's keys (see `custom_scan::hash_keys`).
    pub fn set_join_filter(&mut self, filter: Option<JoinFilter>) {
        self.scan.set_join_filter(filter);
    }

    /// The hash key filter's rows tested and kept, and whether it still tests.
    pub fn join_filter_tested(&self) -> Option<(u64, u64, bool)> {
        self.scan.join_filter().map(|f| {
            let (tested, kept) = f.tested();
            (tested, kept, f.active())
        })
    }

    /// Rows are returned without TIDs (the custom scan of a query that does not read
    /// `ctid`): the row-number column is then not read at all.
    pub fn without_tids(&mut self) {
        self.scan.without_row_numbers();
    }

    /// The next row into `slot`; false at the end. `shared` is the progress of a parallel
    /// scan (every participant claims whole parts from it).
    ///
    /// # Safety
    /// `rel` open; `slot` a slot of it.
    pub unsafe fn next_row(
        &mut self,
        rel: Rel<'_>,
        slot: *mut pg_sys::TupleTableSlot,
        shared: Option<&SharedProgress>,
    ) -> Result<bool, Error> {
        if !self.slot_checked {
            self.slot_checked = true;
            // A table rewrite of ALTER COLUMN … TYPE reads the old rows into slots of the
            // old descriptor while the relation already has the new one: parts hold the
            // old columns, so they are decoded as the slot's.
            // SAFETY: per the contract.
            unsafe {
                let desc = (*slot).tts_tupleDescriptor;
                if !crate::convert::table::same_column_types(desc, (*rel.raw()).rd_att) {
                    self.info = TableInfo::load_with(rel, desc)?;
                    self.scan.set_schema(&self.info.schema);
                }
            }
        }
        // SAFETY: per the contract.
        unsafe { self.next(rel, slot, shared) }
    }

    /// Back to the first part (rescan).
    pub fn restart(&mut self) {
        self.next_part = 0;
        self.current = None;
        self.opened = None;
        self.batch = None;
        if let Some(t) = &mut self.top_n {
            t.restart();
        }
    }

    /// The next row into `slot`; false at the end.
    ///
    /// # Safety
    /// `rel` open; `slot` a slot of it; `shared` the progress of a parallel scan.
    unsafe fn next(
        &mut self,
        rel: Rel<'_>,
        slot: *mut pg_sys::TupleTableSlot,
        shared: Option<&SharedProgress>,
    ) -> Result<bool, Error> {
        loop {
            if let Some((batch, r)) = &mut self.batch {
                if *r < batch.rows {
                    // SAFETY: per the contract.
                    unsafe { batch.store(slot, self.scan.read(), *r, rel.oid()) }?;
                    *r += 1;
                    return Ok(true);
                }
                self.batch = None;
            }
            if let Some((part, cursor)) = &mut self.current {
                let store = RelationPageStore::new(rel);
                // Rows that certainly fail a pruning predicate are dropped before they
                // are converted (Postgres still checks every qual).
                match self.scan.next_batch(&store, part, cursor)? {
                    Some(batch) => {
                        if let Some(t) = &mut self.top_n {
                            t.top.returned(batch.column(t.key))?;
                        }
                        // SAFETY: the previous batch's datums are no longer in any slot
                        // (the slot is cleared before every row stored).
                        let decoded = unsafe {
                            self.row_context.reset();
                            let old = pg_sys::MemoryContextSwitchTo(self.row_context.get());
                            let d = DatumBatch::decode(
                                &self.info.columns,
                                self.scan.read(),
                                &batch,
                                part.row.first_row,
                            );
                            pg_sys::MemoryContextSwitchTo(old);
                            d
                        };
                        self.batch = Some((decoded, 0));
                        continue;
                    }
                    None => self.current = None,
                }
            }
            if !self.open_next(rel, shared)? {
                return Ok(false);
            }
        }
    }

    /// Opens the next part, or in a parallel scan claims the next granules; false when
    /// none is left.
    fn open_next(&mut self, rel: Rel<'_>, shared: Option<&SharedProgress>) -> Result<bool, Error> {
        if let Some(shared) = shared {
            return self.claim_granules(rel, shared);
        }
        if self.top_n.is_some() {
            return self.next_top_n(rel);
        }
        let Some(row) = self.claim(None) else {
            return Ok(false);
        };
        let store = RelationPageStore::new(rel);
        self.current = self
            .scan
            .open(&store, row, BATCH_ROWS)?
            .map(|(part, cursor)| (Rc::new(part), cursor));
        Ok(true)
    }

    /// A Top-N scan's next granule into `current`: every part opened at the first call,
    /// their granules put in order; false once the rest cannot hold a first row.
    fn next_top_n(&mut self, rel: Rel<'_>) -> Result<bool, Error> {
        let store = RelationPageStore::new(rel);
        let Some(t) = &mut self.top_n else {
            return Ok(false);
        };
        if t.order.is_none() {
            let mut parts = Vec::new();
            let mut granules = Vec::new();
            let mut ranks = Vec::new();
            for row in &self.parts {
                let Some((part, cursor)) = self.scan.open(&store, row.clone(), BATCH_ROWS)? else {
                    continue;
                };
                for (k, (rows, stats)) in cursor
                    .column_stats(t.top.spec().column)
                    .into_iter()
                    .enumerate()
                {
                    granules.push((parts.len(), k));
                    ranks.push(t.top.granule_rank(stats, rows));
                }
                parts.push((Rc::new(part), cursor));
            }
            // Granules count as skipped until read.
            let counters = &mut self.scan.counters;
            counters.granules_scanned -= ranks.len() as u64;
            counters.granules_skipped += ranks.len() as u64;
            let order = top_n::reading_order(&ranks);
            t.order = Some(TopNOrder {
                granules: order
                    .into_iter()
                    .map(|i| (granules[i].0, granules[i].1, ranks[i]))
                    .collect(),
                parts,
            });
        }
        let order = t.order.as_ref().expect("ordered above");
        let Some(&(p, k, rank)) = order.granules.get(t.next) else {
            return Ok(false);
        };
        if t.top.done_before(rank) {
            return Ok(false);
        }
        t.next += 1;
        t.read += 1;
        self.scan.counters.granules_scanned += 1;
        self.scan.counters.granules_skipped -= 1;
        let (part, cursor) = &order.parts[p];
        self.current = Some((Rc::clone(part), cursor.claimed(k..k + 1)));
        Ok(true)
    }

    /// Claims the next granules of a parallel scan into `current`, opening their part
    /// if this participant has not yet; false when every granule is claimed.
    fn claim_granules(&mut self, rel: Rel<'_>, shared: &SharedProgress) -> Result<bool, Error> {
        let store = RelationPageStore::new(rel);
        let before = self.scan.counters;
        // The pruning counters of the part opened last, until `owns` takes them.
        let last = Cell::new(self.opened.as_ref().map(|o| (o.index, o.counters)));
        let owned = Cell::new(ScanCounters::default());
        let (scan, parts, opened) = (&mut self.scan, &self.parts, &mut self.opened);
        let claimed = claim::claim(
            &shared.next_granule,
            parts.len(),
            GRANULES_PER_CLAIM,
            |p| {
                if opened.as_ref().map(|o| o.index) != Some(p) {
                    let start = scan.counters;
                    let part = scan.open(&store, parts[p].clone(), BATCH_ROWS)?;
                    let counters = scan.counters - start;
                    scan.counters = start;
                    last.set(Some((p, counters)));
                    *opened = Some(Opened {
                        index: p,
                        part: part.map(|(part, cursor)| (Rc::new(part), cursor)),
                        counters,
                    });
                }
                Ok(opened
                    .as_ref()
                    .and_then(|o| o.part.as_ref())
                    .map_or(0, |(_, cursor)| cursor.granules_left()))
            },
            |p| {
                if let Some((q, c)) = last.get() {
                    if q == p {
                        owned.set(owned.get() + c);
                    }
                }
            },
        )?;
        self.scan.counters = self.scan.counters + owned.get();
        self.share_counters(before, Some(shared));
        let Some(claimed) = claimed else {
            return Ok(false);
        };
        let (part, cursor) = self
            .opened
            .as_ref()
            .filter(|o| o.index == claimed.part)
            .and_then(|o| o.part.as_ref())
            .ok_or_else(|| Error::Internal("granules claimed of a part not open".into()))?;
        self.current = Some((Rc::clone(part), cursor.claimed(claimed.granules)));
        Ok(true)
    }

    /// The next part to read: this scan's next, or the next no participant has claimed
    /// (counting rows, a parallel scan's participants claim whole parts).
    fn claim(&mut self, shared: Option<&SharedProgress>) -> Option<PartRow> {
        let index = match shared {
            None => {
                let i = self.next_part;
                self.next_part += 1;
                i
            }
            Some(shared) => shared.next_part.fetch_add(1, Ordering::Relaxed) as usize,
        };
        self.parts.get(index).cloned()
    }

    /// Adds what this participant scanned and skipped since `before` to `shared`.
    fn share_counters(&self, before: ScanCounters, shared: Option<&SharedProgress>) {
        if let Some(shared) = shared {
            let c = self.scan.counters;
            shared.granules_scanned.fetch_add(
                c.granules_scanned - before.granules_scanned,
                Ordering::Relaxed,
            );
            shared.granules_skipped.fetch_add(
                c.granules_skipped - before.granules_skipped,
                Ordering::Relaxed,
            );
        }
    }

    /// For `count(*)`: the rows of the next claimed part that pass the vectorized qual
    /// and how many of them metadata answered (`PartScan::count`); `None` at the end.
    pub fn next_count(
        &mut self,
        rel: Rel<'_>,
        shared: Option<&SharedProgress>,
    ) -> Result<Option<(u64, u64)>, Error> {
        let Some(row) = self.claim(shared) else {
            return Ok(None);
        };
        let before = self.scan.counters;
        let store = RelationPageStore::new(rel);
        let counted = self.scan.count(&store, row)?;
        self.share_counters(before, shared);
        Ok(Some(counted))
    }

    /// For a Vector Agg whose aggregator [`Aggregator::answers_from_stats`]: folds the
    /// rows of the next claimed part that pass the vectorized qual into `agg`, granules
    /// whose statistics prove every row passes from those alone (`PartScan::aggregate`);
    /// the rows folded in and how many came from metadata; `None` at the end.
    pub fn next_aggregated(
        &mut self,
        rel: Rel<'_>,
        shared: Option<&SharedProgress>,
        agg: &mut Aggregator,
    ) -> Result<Option<(u64, u64)>, Error> {
        let Some(row) = self.claim(shared) else {
            return Ok(None);
        };
        let before = self.scan.counters;
        let store = RelationPageStore::new(rel);
        let folded = self.scan.aggregate(&store, row, agg)?;
        self.share_counters(before, shared);
        Ok(Some(folded))
    }

    /// The next batch of rows that pass the scan's vectorized qual, as Arrow arrays of
    /// the columns [`ScanState::read`] names; `None` at the end.
    pub fn next_batch(
        &mut self,
        rel: Rel<'_>,
        shared: Option<&SharedProgress>,
    ) -> Result<Option<RecordBatch>, Error> {
        loop {
            if let Some((part, cursor)) = &mut self.current {
                let store = RelationPageStore::new(rel);
                match self.scan.next_batch(&store, part, cursor)? {
                    Some(batch) => {
                        if let Some(t) = &mut self.top_n {
                            t.top.returned(batch.column(t.key))?;
                        }
                        return Ok(Some(batch));
                    }
                    None => self.current = None,
                }
            }
            if !self.open_next(rel, shared)? {
                return Ok(None);
            }
        }
    }

    /// The table columns a batch holds, in order.
    pub fn read(&self) -> &[usize] {
        self.scan.read()
    }

    /// Batches may hold `columns` dictionary-coded (`PartScan::keep_coded`).
    pub fn keep_coded(&mut self, columns: impl IntoIterator<Item = usize>) {
        self.scan.keep_coded(columns);
    }
}

/// # Safety
/// Called by Postgres as `scan_begin`.
#[pg_guard]
pub unsafe extern "C-unwind" fn scan_begin(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
    key: *mut pg_sys::ScanKeyData,
    pscan: pg_sys::ParallelTableScanDesc,
    flags: u32,
) -> pg_sys::TableScanDesc {
    // SAFETY: Postgres passes an open relation and a valid snapshot; the descriptor is
    // palloc'd in the current context and freed by scan_end.
    unsafe {
        if !pg_sys::IsInParallelMode() {
            crate::writes::flush_relid((*rel).rd_id, true);
        } else if crate::writes::has_pending((*rel).rd_id) {
            Error::Internal(
                "rows buffered by this transaction cannot be read in parallel mode".into(),
            )
            .report();
        }
        let desc = pg_sys::palloc0(std::mem::size_of::<ScanDesc>()) as *mut ScanDesc;
        (*desc).base.rs_rd = rel;
        (*desc).base.rs_snapshot = snapshot;
        (*desc).base.rs_nkeys = nkeys;
        (*desc).base.rs_key = key;
        (*desc).base.rs_flags = flags;
        (*desc).base.rs_parallel = pscan;
        let state = ScanState::new(Rel::new(rel), snapshot).or_report_in(Rel::new(rel));
        // Owned by the descriptor's memory context: an ERROR mid-scan frees it too.
        (*desc).state = ContextOwned::new(state);
        desc as pg_sys::TableScanDesc
    }
}

/// # Safety
/// `scan` must come from [`scan_begin`].
pub unsafe fn state<'a>(scan: pg_sys::TableScanDesc) -> &'a mut ScanState {
    // SAFETY: per the contract.
    unsafe {
        (*(scan as *mut ScanDesc))
            .state
            .get()
            .expect("a columnar scan used after its end")
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_end(scan: pg_sys::TableScanDesc) {
    // SAFETY: a descriptor from scan_begin, ended once.
    unsafe {
        let desc = scan as *mut ScanDesc;
        (*desc).state.drop_now();
        if (*desc).base.rs_flags & pg_sys::ScanOptions::SO_TEMP_SNAPSHOT != 0 {
            pg_sys::UnregisterSnapshot((*desc).base.rs_snapshot);
        }
        pg_sys::pfree(desc as _);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_rescan(
    scan: pg_sys::TableScanDesc,
    _key: *mut pg_sys::ScanKeyData,
    _set_params: bool,
    _allow_strat: bool,
    _allow_sync: bool,
    _allow_pagemode: bool,
) {
    // SAFETY: a descriptor from scan_begin.
    unsafe {
        let state = state(scan);
        state.restart();
        state.bitmap = None;
        state.sample = None;
        state.sample_cursor = 0;
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_getnextslot(
    scan: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    if direction == pg_sys::ScanDirection::BackwardScanDirection {
        Error::NotSupported("backward scans of epiphany_columnar tables (use a SCROLL cursor over a materialized result)".into())
            .report();
    }
    // SAFETY: a descriptor from scan_begin and a slot of its relation.
    unsafe {
        let rel = Rel::new((*scan).rs_rd);
        let parallel = (*scan).rs_parallel as *mut ParallelScan;
        let shared = if parallel.is_null() {
            None
        } else {
            Some(&(*parallel).progress)
        };
        let found = state(scan).next_row(rel, slot, shared).or_report_in(rel);
        if !found {
            pg_sys::ExecClearTuple(slot);
        }
        found
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn parallelscan_estimate(_rel: pg_sys::Relation) -> pg_sys::Size {
    std::mem::size_of::<ParallelScan>()
}

#[pg_guard]
pub unsafe extern "C-unwind" fn parallelscan_initialize(
    rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) -> pg_sys::Size {
    // SAFETY: Postgres hands us shared memory of the estimated size.
    unsafe {
        let shared = pscan as *mut ParallelScan;
        // PostgreSQL 18 names the relation by its storage, earlier versions by oid.
        #[cfg(feature = "pg18")]
        {
            (*shared).base.phs_locator = (*rel).rd_locator;
        }
        #[cfg(not(feature = "pg18"))]
        {
            (*shared).base.phs_relid = (*rel).rd_id;
        }
        (*shared).base.phs_syncscan = false;
        std::ptr::write(&mut (*shared).progress, SharedProgress::default());
    }
    std::mem::size_of::<ParallelScan>()
}

#[pg_guard]
pub unsafe extern "C-unwind" fn parallelscan_reinitialize(
    _rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) {
    // SAFETY: initialized by parallelscan_initialize.
    unsafe { (*(pscan as *mut ParallelScan)).progress.reset() };
}
