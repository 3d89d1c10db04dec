//! The columnar scan at run time: its executor state over the access method's scan
//! (`am::scan`), parallel coordination in dynamic shared memory, and what `EXPLAIN`
//! shows.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::owned::ContextOwned;
use epiphany_core::pg::OrReportIn;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::hash_keys::{HashKeySource, Status};
use super::quals::{predicates, vector_qual};
use super::EXEC_METHODS;
use crate::am::scan::{ScanState, SharedProgress};
use epiphany_core::columnar::qual::Qual;
use pgrx::PgList;

#[repr(C)]
struct ColumnarScan {
    css: pg_sys::CustomScanState,
    state: ContextOwned<ScanState>,
    /// The shared progress of a parallel scan (in dynamic shared memory), or null.
    shared: *const SharedProgress,
    /// Column numbers read (0-based) and the pruning predicates, known at begin.
    read: ContextOwned<Vec<usize>>,
    preds: usize,
    /// The hash join above whose keys the scan filters by, or why it does not.
    hash_keys: ContextOwned<Result<HashKeySource, &'static str>>,
}

/// `ps` as a columnar scan's state, if it is one.
///
/// # Safety
/// `ps` is null or an initialized plan state.
pub(super) unsafe fn columnar_scan_state(
    ps: *mut pg_sys::PlanState,
) -> Option<*mut pg_sys::CustomScanState> {
    // SAFETY: per the contract; a custom scan state's methods are static tables.
    unsafe {
        (!ps.is_null()
            && (*ps).type_ == pg_sys::NodeTag::T_CustomScanState
            && std::ptr::eq(
                (*(ps as *mut pg_sys::CustomScanState)).methods,
                &EXEC_METHODS.0,
            ))
        .then_some(ps as *mut pg_sys::CustomScanState)
    }
}

/// Links columnar scan `node` to the hash join above it (see `hash_keys`), in the
/// query's memory.
///
/// # Safety
/// `node` is an initialized columnar scan state; main thread.
pub(super) unsafe fn set_hash_keys(
    node: *mut pg_sys::CustomScanState,
    source: Result<HashKeySource, &'static str>,
) {
    // SAFETY: per the contract; the query's memory outlives the node's use of it.
    unsafe {
        let me = node as *mut ColumnarScan;
        let old = pg_sys::MemoryContextSwitchTo((*(*node).ss.ps.state).es_query_cxt);
        (*me).hash_keys = ContextOwned::new(source);
        pg_sys::MemoryContextSwitchTo(old);
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn create_state(
    _cscan: *mut pg_sys::CustomScan,
) -> *mut pg_sys::Node {
    // SAFETY: our node type begins with its CustomScanState.
    unsafe { new_state::<ColumnarScan>(&EXEC_METHODS.0) }
}

/// A zeroed custom scan state node of type `T` (which begins with its
/// `CustomScanState`) with `methods`, its tuples in virtual slots.
///
/// # Safety
/// `T` is `#[repr(C)]` with a `CustomScanState` first, and valid when zeroed.
pub(crate) unsafe fn new_state<T>(
    methods: &'static pg_sys::CustomExecMethods,
) -> *mut pg_sys::Node {
    // SAFETY: per the contract; palloc0 in the executor's context.
    unsafe {
        let node = pg_sys::palloc0(std::mem::size_of::<T>()) as *mut pg_sys::CustomScanState;
        (*node).ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*node).methods = methods;
        // PostgreSQL 15 always gives custom scans a virtual slot.
        #[cfg(not(feature = "pg15"))]
        {
            (*node).slotOps = &raw const pg_sys::TTSOpsVirtual;
        }
        node as *mut pg_sys::Node
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn begin(
    node: *mut pg_sys::CustomScanState,
    estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: the executor opened the scan relation (scanrelid > 0) and owns `estate`.
    unsafe {
        let me = node as *mut ColumnarScan;
        let rel = Rel::new((*node).ss.ss_currentRelation);
        let plan = (*node).ss.ps.plan;
        let scanrelid = (*(plan as *mut pg_sys::Scan)).scanrelid;
        let info = crate::convert::table::TableInfo::load(rel).or_report_in(rel);
        let natts = info.columns.len();
        let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos((*plan).targetlist as _, scanrelid, &mut attrs);
        pg_sys::pull_varattnos((*plan).qual as _, scanrelid, &mut attrs);
        let vectorized = (*(plan as *mut pg_sys::CustomScan)).custom_exprs;
        pg_sys::pull_varattnos(vectorized as _, scanrelid, &mut attrs);
        let offset = pg_sys::FirstLowInvalidHeapAttributeNumber;
        let read: Vec<usize> = if pg_sys::bms_is_member(-offset, attrs) {
            (0..natts).collect()
        } else {
            (0..natts)
                .filter(|&c| pg_sys::bms_is_member(c as i32 + 1 - offset, attrs))
                .collect()
        };
        // Pruning predicates of every qual; those of the quals Postgres evaluates first:
        // they also drop rows early.
        let mut preds = predicates((*plan).qual, scanrelid, &info);
        let row_preds = preds.len();
        preds.extend(predicates(vectorized, scanrelid, &info));
        (*me).preds = preds.len();
        let qual = if vectorized.is_null() {
            None
        } else {
            let parts: Option<Vec<Qual>> = PgList::<pg_sys::Node>::from_pg(vectorized)
                .iter_ptr()
                .map(|q| vector_qual(q, scanrelid, &info))
                .collect();
            let Some(parts) = parts else {
                epiphany_core::Error::Internal(
                    "a vectorized qual of the plan cannot be evaluated (the table changed?)".into(),
                )
                .report()
            };
            Some(Qual::And(parts))
        };
        // Owned by the node's memory context: an ERROR mid-scan frees them too.
        (*me).read = ContextOwned::new(read.clone());
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
            return;
        }
        if !pg_sys::IsInParallelMode() {
            crate::writes::flush_relid(rel.oid(), true);
        }
        let mut state = ScanState::new(rel, (*estate).es_snapshot).or_report_in(rel);
        state
            .project_and_prune(read, preds, qual.map(|q| (q, row_preds)))
            .or_report_in(rel);
        let private = (*(plan as *mut pg_sys::CustomScan)).custom_private;
        if let Some(spec) = super::top_n::spec_of(private) {
            state.set_top_n(spec).or_report_in(rel);
        }
        let ctid = pg_sys::SelfItemPointerAttributeNumber - offset;
        if !pg_sys::bms_is_member(ctid, attrs) && (*estate).es_rowmarks.is_null() {
            state.without_tids();
        }
        (*me).state = ContextOwned::new(state);
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn exec(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: ExecScan drives our access callback, then evaluates quals and projection.
    unsafe { pg_sys::ExecScan(&mut (*node).ss, Some(next), Some(recheck)) }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn next(
    ss: *mut pg_sys::ScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: `ss` is the ScanState of our node (the first member of ColumnarScan).
    unsafe {
        let me = ss as *mut ColumnarScan;
        let slot = (*ss).ss_ScanTupleSlot;
        let rel = Rel::new((*ss).ss_currentRelation);
        let shared = (*me).shared.as_ref();
        let state = (*me)
            .state
            .get()
            .expect("a columnar scan read after its end");
        if let Some(Ok(source)) = (*me).hash_keys.get() {
            if let Some(filter) = source.poll() {
                state.set_join_filter(Some(filter));
            }
        }
        if !state.next_row(rel, slot, shared).or_report_in(rel) {
            pg_sys::ExecClearTuple(slot);
        }
        // Rows our predicates dropped count as EXPLAIN ANALYZE's "Rows Removed by Filter",
        // as they would had Postgres evaluated the qual on them (InstrCountFiltered1).
        let instrument = (*ss).ps.instrument;
        if !instrument.is_null() {
            (*instrument).nfiltered1 += state.take_filtered() as f64;
        }
        slot
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn recheck(
    _ss: *mut pg_sys::ScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    true
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn end(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node; boxes made in begin are dropped once.
    unsafe {
        let me = node as *mut ColumnarScan;
        (*me).state.drop_now();
        (*me).read.drop_now();
        (*me).hash_keys.drop_now();
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node.
    unsafe {
        restart(node as *mut ColumnarScan);
    }
}

/// Back to the start: the rows, and the hash join's table (it may be built anew).
///
/// # Safety
/// Our node.
unsafe fn restart(me: *mut ColumnarScan) {
    // SAFETY: per the contract.
    unsafe {
        if let Some(state) = (*me).state.get() {
            state.restart();
            state.set_join_filter(None);
        }
        if let Some(Ok(source)) = (*me).hash_keys.get() {
            source.restart();
        }
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn estimate_dsm(
    _node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
) -> pg_sys::Size {
    std::mem::size_of::<SharedProgress>()
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn initialize_dsm(
    node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut std::ffi::c_void,
) {
    // SAFETY: `coordinate` is our estimated share of dynamic shared memory.
    unsafe {
        let shared = coordinate as *mut SharedProgress;
        std::ptr::write(shared, SharedProgress::default());
        (*(node as *mut ColumnarScan)).shared = shared;
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn reinitialize_dsm(
    node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut std::ffi::c_void,
) {
    // SAFETY: initialized by initialize_dsm; a rescan starts over.
    unsafe {
        (*(coordinate as *const SharedProgress)).reset();
        restart(node as *mut ColumnarScan);
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn initialize_worker(
    node: *mut pg_sys::CustomScanState,
    _toc: *mut pg_sys::shm_toc,
    coordinate: *mut std::ffi::c_void,
) {
    // SAFETY: the leader initialized this shared state.
    unsafe { (*(node as *mut ColumnarScan)).shared = coordinate as *const SharedProgress };
}

/// The end of a parallel scan, before its shared memory goes away: the leader takes the
/// granule counts of all participants for EXPLAIN.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn shutdown(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node; `shared` (when set) is still mapped: Gather detaches after its
    // children shut down.
    unsafe {
        let me = node as *mut ColumnarScan;
        if pg_sys::ParallelWorkerNumber >= 0 || (*me).shared.is_null() {
            return;
        }
        let Some(state) = (*me).state.get() else {
            return;
        };
        let (scanned, skipped) = (*(*me).shared).granules();
        let counters = state.counters();
        counters.granules_scanned = scanned;
        counters.granules_skipped = skipped;
        (*me).shared = std::ptr::null();
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn explain(
    node: *mut pg_sys::CustomScanState,
    ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: our node, begun (also for EXPLAIN without ANALYZE).
    unsafe {
        let me = node as *mut ColumnarScan;
        let rel = Rel::new((*node).ss.ss_currentRelation);
        let natts = (*(*rel.raw()).rd_att).natts;
        let read = (*me).read.get().map_or(0, |r| r.len());
        let text = format!("{read} of {natts}");
        let text = std::ffi::CString::new(text).unwrap();
        pg_sys::ExplainPropertyText(c"Columns Read".as_ptr(), text.as_ptr(), es);
        let vectorized = (*((*node).ss.ps.plan as *mut pg_sys::CustomScan)).custom_exprs;
        if !vectorized.is_null() {
            // As EXPLAIN shows a Filter (explain.c, show_qual).
            let context =
                pg_sys::set_deparse_context_plan((*es).deparse_cxt, (*node).ss.ps.plan, ancestors);
            let useprefix = pg_sys::list_length((*es).rtable) > 1 || (*es).verbose;
            let text = pg_sys::deparse_expression(
                pg_sys::make_ands_explicit(vectorized) as *mut pg_sys::Node,
                context,
                useprefix,
                false,
            );
            pg_sys::ExplainPropertyText(c"Vectorized Filter".as_ptr(), text, es);
        }
        explain_hash_keys(me, rel, es);
        let filtered = !vectorized.is_null() || matches!((*me).hash_keys.get(), Some(Ok(_)));
        if filtered {
            // Postgres counts the rows a filter removed only for a plan with a qual of its
            // own; these were removed by ours (explain.c, show_instrumentation_count).
            let instrument = (*node).ss.ps.instrument;
            if (*(*node).ss.ps.plan).qual.is_null() && (*es).analyze && !instrument.is_null() {
                let removed = (*instrument).nfiltered1;
                let loops = (*instrument).nloops;
                if removed > 0.0 || (*es).format != pg_sys::ExplainFormat::EXPLAIN_FORMAT_TEXT {
                    let per_loop = if loops > 0.0 { removed / loops } else { 0.0 };
                    pg_sys::ExplainPropertyFloat(
                        c"Rows Removed by Filter".as_ptr(),
                        std::ptr::null(),
                        per_loop,
                        0,
                        es,
                    );
                }
            }
        }
        // The reason the aggregate above was not vectorized (see `vector_agg::plan`).
        let private = (*((*node).ss.ps.plan as *mut pg_sys::CustomScan)).custom_private;
        for n in PgList::<pg_sys::Node>::from_pg(private).iter_ptr() {
            if (*es).verbose && (*n).type_ == pg_sys::NodeTag::T_String {
                let why = n as *mut pg_sys::String;
                let text = std::ffi::CStr::from_ptr((*why).sval).to_string_lossy();
                let text = std::ffi::CString::new(format!("not used: {text}")).unwrap();
                pg_sys::ExplainPropertyText(c"Vector Agg".as_ptr(), text.as_ptr(), es);
            }
        }
        if let Some(spec) = super::top_n::spec_of(private) {
            // As the Sort shows its key: the column's name, the direction, the rows.
            let name = column_name(rel, spec.column);
            let order = match (spec.descending, spec.nulls_first) {
                (false, false) => "",
                (false, true) => " NULLS FIRST",
                (true, true) => " DESC",
                (true, false) => " DESC NULLS LAST",
            };
            let text = format!("{name}{order}, {} rows", spec.rows);
            let text = std::ffi::CString::new(text).unwrap();
            pg_sys::ExplainPropertyText(c"Top-N".as_ptr(), text.as_ptr(), es);
            if let Some((_, read, total)) = (*me)
                .state
                .get()
                .filter(|_| (*es).analyze)
                .and_then(|s| s.top_n())
            {
                let text = std::ffi::CString::new(format!("{read} of {total}")).unwrap();
                pg_sys::ExplainPropertyText(c"Top-N Granules Read".as_ptr(), text.as_ptr(), es);
            }
        }
        pg_sys::ExplainPropertyInteger(
            c"Pruning Quals".as_ptr(),
            std::ptr::null(),
            (*me).preds as i64,
            es,
        );
        if let Some(state) = (*me).state.get().filter(|_| (*es).analyze) {
            let c = *state.counters();
            for (label, value) in [
                (c"Parts Scanned", c.parts_scanned),
                (c"Parts Skipped", c.parts_skipped),
                (c"Granules Scanned", c.granules_scanned),
                (c"Granules Skipped", c.granules_skipped),
            ] {
                pg_sys::ExplainPropertyInteger(label.as_ptr(), std::ptr::null(), value as i64, es);
            }
        }
    }
}

/// `Hash Key Filter`: the key columns tested against the hash join above, and with
/// ANALYZE what the filter did (the leader's share of a parallel scan); VERBOSE also
/// says why a scan under a hash join does not filter.
///
/// # Safety
/// Our node, begun; `rel` its relation.
unsafe fn explain_hash_keys(me: *mut ColumnarScan, rel: Rel<'_>, es: *mut pg_sys::ExplainState) {
    // SAFETY: per the contract.
    unsafe {
        let text = match (*me).hash_keys.get() {
            None => return,
            Some(Err(why)) if (*es).verbose => format!("not used: {why}"),
            Some(Err(_)) => return,
            Some(Ok(source)) => {
                let names: Vec<String> = source
                    .columns()
                    .into_iter()
                    .map(|c| column_name(rel, c))
                    .collect();
                let mut text = names.join(", ");
                if (*es).analyze {
                    let tested = (*me).state.get().and_then(|s| s.join_filter_tested());
                    match (source.status(), tested) {
                        (Status::Built(rows), Some((tested, kept, active))) => {
                            text += &format!(
                                " (from {rows} inner rows; {kept} of {tested} rows kept{})",
                                if active {
                                    ""
                                } else {
                                    ", then off: it kept too many"
                                }
                            )
                        }
                        (Status::Unusable(why), _) => text += &format!(" (not used: {why})"),
                        _ => text += " (not built)",
                    }
                }
                text
            }
        };
        let text = std::ffi::CString::new(text).unwrap();
        pg_sys::ExplainPropertyText(c"Hash Key Filter".as_ptr(), text.as_ptr(), es);
    }
}

/// The name of column `c` (0-based) of `rel`.
///
/// # Safety
/// `rel` open; main thread.
unsafe fn column_name(rel: Rel<'_>, c: usize) -> String {
    // SAFETY: per the contract.
    let attr = unsafe { pg_sys::get_attname(rel.oid(), c as i16 + 1, true) };
    if attr.is_null() {
        format!("column {}", c + 1)
    } else {
        // SAFETY: a palloc'd C string.
        unsafe { std::ffi::CStr::from_ptr(attr) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Runs `read` on a begun columnar scan's state as the scan's own work for EXPLAIN
/// ANALYZE: timed, its rows (`rows` of the result) counted as returned, the rows its
/// quals dropped as removed by the filter.
///
/// # Safety
/// `node` is the state of a begun columnar scan (see [`super::is_columnar_scan`]).
unsafe fn as_scan_work<T>(
    node: *mut pg_sys::CustomScanState,
    read: impl FnOnce(
        &mut ScanState,
        Rel<'_>,
        Option<&SharedProgress>,
    ) -> Result<T, epiphany_core::Error>,
    rows: impl FnOnce(&T) -> u64,
) -> T {
    // SAFETY: per the contract.
    unsafe {
        let me = node as *mut ColumnarScan;
        let rel = Rel::new((*node).ss.ss_currentRelation);
        let shared = (*me).shared.as_ref();
        let state = (*me)
            .state
            .get()
            .expect("a columnar scan read after its end");
        let instrument = (*node).ss.ps.instrument;
        if !instrument.is_null() {
            pg_sys::InstrStartNode(instrument);
        }
        let out = read(state, rel, shared).or_report_in(rel);
        if !instrument.is_null() {
            (*instrument).nfiltered1 += state.take_filtered() as f64;
            pg_sys::InstrStopNode(instrument, rows(&out) as f64);
        }
        out
    }
}

/// For the Vector Agg above a columnar scan: the scan's next batch of rows that pass its
/// vectorized quals (the scan's plan has no others); `None` at the end.
///
/// # Safety
/// As [`as_scan_work`].
pub(crate) unsafe fn next_batch(
    node: *mut pg_sys::CustomScanState,
) -> Option<arrow_array::RecordBatch> {
    // SAFETY: per the contract.
    unsafe {
        as_scan_work(
            node,
            |s, rel, shared| s.next_batch(rel, shared),
            |b| b.as_ref().map_or(0, |b| b.num_rows() as u64),
        )
    }
}

/// For a Vector Agg of `count(*)` alone: the rows of the scan's next part that pass its
/// quals, and how many of those metadata answered; `None` at the end.
///
/// # Safety
/// As [`as_scan_work`].
pub(crate) unsafe fn next_count(node: *mut pg_sys::CustomScanState) -> Option<(u64, u64)> {
    // SAFETY: per the contract.
    unsafe {
        as_scan_work(
            node,
            |s, rel, shared| s.next_count(rel, shared),
            |c| c.map_or(0, |c| c.0),
        )
    }
}

/// For a Vector Agg whose aggregates granule statistics answer: folds the scan's next
/// part into `agg`, from metadata where the statistics prove every row passes; the rows
/// folded in and how many came from metadata, `None` at the end.
///
/// # Safety
/// As [`as_scan_work`].
pub(crate) unsafe fn next_aggregated(
    node: *mut pg_sys::CustomScanState,
    agg: &mut epiphany_core::columnar::agg::Aggregator,
) -> Option<(u64, u64)> {
    // SAFETY: per the contract.
    unsafe {
        as_scan_work(
            node,
            |s, rel, shared| s.next_aggregated(rel, shared, agg),
            |c| c.map_or(0, |c| c.0),
        )
    }
}

/// The table columns (0-based, ascending) the batches of [`next_batch`] hold.
///
/// # Safety
/// As [`next_batch`].
pub(crate) unsafe fn batch_columns(node: *mut pg_sys::CustomScanState) -> Vec<usize> {
    // SAFETY: per the contract.
    unsafe {
        let me = node as *mut ColumnarScan;
        (*me)
            .state
            .get()
            .map_or_else(Vec::new, |s| s.read().to_vec())
    }
}

/// Lets the batches of [`next_batch`] hold `columns` as dictionary arrays where parts
/// store them so (for an aggregator that groups by codes).
///
/// # Safety
/// As [`next_batch`].
pub(crate) unsafe fn keep_coded(
    node: *mut pg_sys::CustomScanState,
    columns: impl IntoIterator<Item = usize>,
) {
    // SAFETY: per the contract.
    unsafe {
        let me = node as *mut ColumnarScan;
        if let Some(s) = (*me).state.get() {
            s.keep_coded(columns);
        }
    }
}
