//! `EpiphanyDB Columnar Scan`: a custom scan over columnar tables that reads only the
//! columns a query references and skips parts and granules whose min/max statistics
//! rule out its quals (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`, `IS [NOT] NULL` on
//! plain columns against constants). Every qual is still evaluated on the rows read, so
//! pruning only ever saves work. `EXPLAIN` shows the columns read and, with ANALYZE,
//! the parts and granules scanned and skipped. `epiphany.enable_columnar_scan = off`
//! leaves the access method's plain scans.

use std::ffi::CStr;

use epiphany_core::columnar::prune::{Op, Predicate, Scalar};
use epiphany_core::columnar::{numeric, ColumnType};
use epiphany_core::pg::owned::ContextOwned;
use epiphany_core::pg::OrReportIn;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::am::scan::{ScanState, SharedProgress};

pub static ENABLE: GucSetting<bool> = GucSetting::<bool>::new(true);

const NAME: &CStr = c"EpiphanyDB Columnar Scan";

struct Methods<T>(T);
// SAFETY: the method tables are immutable after initialization and only read by the
// backend's main thread.
unsafe impl<T> Sync for Methods<T> {}

static PATH_METHODS: Methods<pg_sys::CustomPathMethods> = Methods(pg_sys::CustomPathMethods {
    CustomName: NAME.as_ptr(),
    PlanCustomPath: Some(plan_path),
    ReparameterizeCustomPathByChild: None,
});

static SCAN_METHODS: Methods<pg_sys::CustomScanMethods> = Methods(pg_sys::CustomScanMethods {
    CustomName: NAME.as_ptr(),
    CreateCustomScanState: Some(create_state),
});

static EXEC_METHODS: Methods<pg_sys::CustomExecMethods> = Methods(pg_sys::CustomExecMethods {
    CustomName: NAME.as_ptr(),
    BeginCustomScan: Some(begin),
    ExecCustomScan: Some(exec),
    EndCustomScan: Some(end),
    ReScanCustomScan: Some(rescan),
    MarkPosCustomScan: None,
    RestrPosCustomScan: None,
    EstimateDSMCustomScan: Some(estimate_dsm),
    InitializeDSMCustomScan: Some(initialize_dsm),
    ReInitializeDSMCustomScan: Some(reinitialize_dsm),
    InitializeWorkerCustomScan: Some(initialize_worker),
    ShutdownCustomScan: Some(shutdown),
    ExplainCustomScan: Some(explain),
});

static mut PREVIOUS: pg_sys::set_rel_pathlist_hook_type = None;

pub fn init() {
    GucRegistry::define_bool_guc(
        c"epiphany.enable_columnar_scan",
        c"Plans scans of epiphany_columnar tables with the columnar custom scan (column projection, part and granule pruning).",
        c"Off leaves the access method's sequential, index and bitmap scans.",
        &ENABLE,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: _PG_init on the main thread; the previous hook is chained, and the custom
    // scan methods are registered once so plans can be copied and read back.
    unsafe {
        PREVIOUS = pg_sys::set_rel_pathlist_hook;
        pg_sys::set_rel_pathlist_hook = Some(set_rel_pathlist);
        pg_sys::RegisterCustomScanMethods(&SCAN_METHODS.0);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn set_rel_pathlist(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) {
    // SAFETY: the planner's structures, valid during the call.
    unsafe {
        // First, while this frame holds nothing to drop (see `hooks`).
        epiphany_core::pg::hooks::set_rel_pathlist(PREVIOUS, root, rel, rti, rte);
        if !ENABLE.get()
            || (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
            || (*rte).relkind as u8 != pg_sys::RELKIND_RELATION
            || (*rte).inh
            || !(*rte).tablesample.is_null()
            || (*rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
            || !crate::hooks::options::is_columnar_relation((*rte).relid)
        {
            return;
        }
        let path =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>()) as *mut pg_sys::CustomPath;
        (*path).path.type_ = pg_sys::NodeTag::T_CustomPath;
        (*path).path.pathtype = pg_sys::NodeTag::T_CustomScan;
        (*path).path.parent = rel;
        (*path).path.pathtarget = (*rel).reltarget;
        (*path).path.param_info =
            pg_sys::get_baserel_parampathinfo(root, rel, (*rel).lateral_relids);
        (*path).path.parallel_safe = (*rel).consider_parallel;
        (*path).path.rows = (*rel).rows;
        (*path).methods = &PATH_METHODS.0;
        cost(root, rel, &mut (*path).path, 0);

        // A parallel-aware variant: participants claim whole parts from a shared counter.
        if (*rel).consider_parallel && (*path).path.param_info.is_null() {
            let workers = pg_sys::compute_parallel_worker(
                rel,
                f64::from((*rel).pages),
                -1.0,
                pg_sys::max_parallel_workers_per_gather,
            );
            if workers > 0 {
                let partial = pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>())
                    as *mut pg_sys::CustomPath;
                *partial = *path;
                (*partial).path.parallel_aware = true;
                (*partial).path.parallel_safe = true;
                (*partial).path.parallel_workers = workers;
                cost(root, rel, &mut (*partial).path, workers);
                pg_sys::add_partial_path(rel, partial as *mut pg_sys::Path);
            }
        }
        // Last: add_path frees a path it rejects, and the partial path was copied from it.
        pg_sys::add_path(rel, path as *mut pg_sys::Path);
    }
}

/// `get_parallel_divisor`: the share of rows each participant handles, the leader
/// helping less as workers are added.
fn parallel_divisor(workers: i32) -> f64 {
    let mut divisor = f64::from(workers);
    // SAFETY: reading a GUC variable on the main thread.
    if unsafe { pg_sys::parallel_leader_participation } {
        let leader = 1.0 - 0.3 * f64::from(workers);
        if leader > 0.0 {
            divisor += leader;
        }
    }
    divisor
}

/// Like a sequential scan's cost, with the I/O scaled by the share of columns read:
/// reading 3 of 16 columns reads about 3/16 of the pages.
unsafe fn cost(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    path: *mut pg_sys::Path,
    workers: i32,
) {
    // SAFETY: planner structures valid during planning.
    unsafe {
        let natts = ((*rel).max_attr.max(1)) as f64;
        let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos((*(*rel).reltarget).exprs as _, (*rel).relid, &mut attrs);
        for rinfo in PgList::<pg_sys::RestrictInfo>::from_pg((*rel).baserestrictinfo).iter_ptr() {
            pg_sys::pull_varattnos((*rinfo).clause as _, (*rel).relid, &mut attrs);
        }
        let offset = pg_sys::FirstLowInvalidHeapAttributeNumber;
        let whole_row = pg_sys::bms_is_member(-offset, attrs);
        let used = (pg_sys::bms_num_members(attrs) as f64).max(1.0);
        let fraction = if whole_row {
            1.0
        } else {
            (used / natts).min(1.0)
        };
        let mut qual = pg_sys::QualCost::default();
        pg_sys::cost_qual_eval(&mut qual, (*rel).baserestrictinfo, root);
        let pages = f64::from((*rel).pages);
        let tuples = (*rel).tuples;
        let io = pg_sys::seq_page_cost * pages * fraction;
        let mut cpu = (pg_sys::cpu_tuple_cost + qual.per_tuple) * tuples;
        if workers > 0 {
            // As for a parallel sequential scan: CPU is shared, I/O is not.
            let divisor = parallel_divisor(workers);
            cpu /= divisor;
            (*path).rows = (*rel).rows / divisor;
        }
        (*path).startup_cost = qual.startup;
        // A little below the plain scan when everything is read: same work, plus pruning.
        (*path).total_cost = qual.startup + (io + cpu) * 0.95;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn plan_path(
    _root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    best_path: *mut pg_sys::CustomPath,
    tlist: *mut pg_sys::List,
    clauses: *mut pg_sys::List,
    _custom_plans: *mut pg_sys::List,
) -> *mut pg_sys::Plan {
    // SAFETY: planner structures; the plan node is palloc'd in the planner's context.
    unsafe {
        let scan =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomScan>()) as *mut pg_sys::CustomScan;
        (*scan).scan.plan.type_ = pg_sys::NodeTag::T_CustomScan;
        (*scan).scan.plan.targetlist = tlist;
        (*scan).scan.plan.qual = pg_sys::extract_actual_clauses(clauses, false);
        (*scan).scan.scanrelid = (*rel).relid;
        (*scan).flags = (*best_path).flags;
        (*scan).methods = &SCAN_METHODS.0;
        scan as *mut pg_sys::Plan
    }
}

#[repr(C)]
struct ColumnarScan {
    css: pg_sys::CustomScanState,
    state: ContextOwned<ScanState>,
    /// The shared progress of a parallel scan (in dynamic shared memory), or null.
    shared: *const SharedProgress,
    /// Column numbers read (0-based) and the pruning predicates, known at begin.
    read: ContextOwned<Vec<usize>>,
    preds: usize,
}

#[pg_guard]
unsafe extern "C-unwind" fn create_state(_cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::Node {
    // SAFETY: a zeroed node of our type, filled as the executor expects.
    unsafe {
        let node = pg_sys::palloc0(std::mem::size_of::<ColumnarScan>()) as *mut ColumnarScan;
        (*node).css.ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*node).css.methods = &EXEC_METHODS.0;
        // PostgreSQL 15 always gives custom scans a virtual slot.
        #[cfg(not(feature = "pg15"))]
        {
            (*node).css.slotOps = &raw const pg_sys::TTSOpsVirtual;
        }
        node as *mut pg_sys::Node
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin(
    node: *mut pg_sys::CustomScanState,
    estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: the executor opened the scan relation (scanrelid > 0) and owns `estate`.
    unsafe {
        let me = node as *mut ColumnarScan;
        let rel = (*node).ss.ss_currentRelation;
        let plan = (*node).ss.ps.plan;
        let scanrelid = (*(plan as *mut pg_sys::Scan)).scanrelid;
        let info = crate::convert::table::TableInfo::load(rel).or_report_in(rel);
        let natts = info.columns.len();
        let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos((*plan).targetlist as _, scanrelid, &mut attrs);
        pg_sys::pull_varattnos((*plan).qual as _, scanrelid, &mut attrs);
        let offset = pg_sys::FirstLowInvalidHeapAttributeNumber;
        let read: Vec<usize> = if pg_sys::bms_is_member(-offset, attrs) {
            (0..natts).collect()
        } else {
            (0..natts)
                .filter(|&c| pg_sys::bms_is_member(c as i32 + 1 - offset, attrs))
                .collect()
        };
        let preds = predicates((*plan).qual, scanrelid, &info);
        (*me).preds = preds.len();
        // Owned by the node's memory context: an ERROR mid-scan frees them too.
        (*me).read = ContextOwned::new(read.clone());
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
            return;
        }
        if !pg_sys::IsInParallelMode() {
            crate::writes::flush_relid((*rel).rd_id, true);
        }
        let mut state = ScanState::new(rel, (*estate).es_snapshot).or_report_in(rel);
        state.project_and_prune(read, preds).or_report_in(rel);
        let ctid = pg_sys::SelfItemPointerAttributeNumber - offset;
        if !pg_sys::bms_is_member(ctid, attrs) && (*estate).es_rowmarks.is_null() {
            state.without_tids();
        }
        (*me).state = ContextOwned::new(state);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn exec(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: ExecScan drives our access callback, then evaluates quals and projection.
    unsafe { pg_sys::ExecScan(&mut (*node).ss, Some(next), Some(recheck)) }
}

#[pg_guard]
unsafe extern "C-unwind" fn next(ss: *mut pg_sys::ScanState) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: `ss` is the ScanState of our node (the first member of ColumnarScan).
    unsafe {
        let me = ss as *mut ColumnarScan;
        let slot = (*ss).ss_ScanTupleSlot;
        let rel = (*ss).ss_currentRelation;
        let shared = (*me).shared.as_ref();
        let state = (*me)
            .state
            .get()
            .expect("a columnar scan read after its end");
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
unsafe extern "C-unwind" fn recheck(
    _ss: *mut pg_sys::ScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn end(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node; boxes made in begin are dropped once.
    unsafe {
        let me = node as *mut ColumnarScan;
        (*me).state.drop_now();
        (*me).read.drop_now();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node.
    unsafe {
        let me = node as *mut ColumnarScan;
        if let Some(state) = (*me).state.get() {
            state.restart();
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn estimate_dsm(
    _node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
) -> pg_sys::Size {
    std::mem::size_of::<SharedProgress>()
}

#[pg_guard]
unsafe extern "C-unwind" fn initialize_dsm(
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
unsafe extern "C-unwind" fn reinitialize_dsm(
    node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut std::ffi::c_void,
) {
    // SAFETY: initialized by initialize_dsm; a rescan starts over.
    unsafe {
        (*(coordinate as *const SharedProgress)).reset();
        let me = node as *mut ColumnarScan;
        if let Some(state) = (*me).state.get() {
            state.restart();
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn initialize_worker(
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
unsafe extern "C-unwind" fn shutdown(node: *mut pg_sys::CustomScanState) {
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
        let counters = &mut state.counters;
        counters.granules_scanned = scanned;
        counters.granules_skipped = skipped;
        (*me).shared = std::ptr::null();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn explain(
    node: *mut pg_sys::CustomScanState,
    _ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: our node, begun (also for EXPLAIN without ANALYZE).
    unsafe {
        let me = node as *mut ColumnarScan;
        let rel = (*node).ss.ss_currentRelation;
        let natts = (*(*rel).rd_att).natts;
        let read = (*me).read.get().map_or(0, |r| r.len());
        let text = format!("{read} of {natts}");
        let text = std::ffi::CString::new(text).unwrap();
        pg_sys::ExplainPropertyText(c"Columns Read".as_ptr(), text.as_ptr(), es);
        pg_sys::ExplainPropertyInteger(
            c"Pruning Quals".as_ptr(),
            std::ptr::null(),
            (*me).preds as i64,
            es,
        );
        if let Some(state) = (*me).state.get().filter(|_| (*es).analyze) {
            let c = state.counters;
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

/// The quals that statistics can answer, as pruning predicates on column positions.
unsafe fn predicates(
    quals: *mut pg_sys::List,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Vec<Predicate> {
    let mut out = Vec::new();
    // SAFETY: a valid list of expression nodes.
    unsafe {
        for node in PgList::<pg_sys::Node>::from_pg(quals).iter_ptr() {
            if let Some(p) = predicate(node, scanrelid, info) {
                out.push(p);
            }
        }
    }
    out
}

/// The table column (0-based) a node reads, looking through binary-compatible casts.
unsafe fn column_of(node: *mut pg_sys::Node, scanrelid: pg_sys::Index) -> Option<usize> {
    // SAFETY: a valid expression node.
    unsafe {
        let mut node = node;
        while (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
        if (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let var = node as *mut pg_sys::Var;
        if (*var).varno as pg_sys::Index != scanrelid
            || (*var).varattno < 1
            || (*var).varlevelsup != 0
        {
            return None;
        }
        Some((*var).varattno as usize - 1)
    }
}

unsafe fn predicate(
    node: *mut pg_sys::Node,
    scanrelid: pg_sys::Index,
    info: &crate::convert::table::TableInfo,
) -> Option<Predicate> {
    // SAFETY: a valid expression node of a plan's qual list.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_OpExpr => {
                let op = node as *mut pg_sys::OpExpr;
                let args = PgList::<pg_sys::Node>::from_pg((*op).args);
                if args.len() != 2 {
                    return None;
                }
                let (a, b) = (args.get_ptr(0)?, args.get_ptr(1)?);
                let (column, constant, flipped) =
                    match (column_of(a, scanrelid), column_of(b, scanrelid)) {
                        (Some(c), None) => (c, b, false),
                        (None, Some(c)) => (c, a, true),
                        _ => return None,
                    };
                if (*constant).type_ != pg_sys::NodeTag::T_Const {
                    return None;
                }
                let ty = info.columns.get(column)?.ty;
                if !ty.prunable() || !collation_orders_bytes(ty, (*op).inputcollid, false) {
                    return None;
                }
                let mut op_kind = strategy((*op).opno, info.types[column])?;
                if flipped {
                    op_kind = flip(op_kind);
                }
                if op_kind != Op::Eq && !collation_orders_bytes(ty, (*op).inputcollid, true) {
                    return None;
                }
                let (op_kind, value) = scalar(constant as *mut pg_sys::Const, ty, op_kind)?;
                Some(Predicate::Compare {
                    column,
                    op: op_kind,
                    value,
                })
            }
            pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                let saop = node as *mut pg_sys::ScalarArrayOpExpr;
                if !(*saop).useOr {
                    return None;
                }
                let args = PgList::<pg_sys::Node>::from_pg((*saop).args);
                let column = column_of(args.get_ptr(0)?, scanrelid)?;
                let array = args.get_ptr(1)?;
                if (*array).type_ != pg_sys::NodeTag::T_Const
                    || (*(array as *mut pg_sys::Const)).constisnull
                {
                    return None;
                }
                let ty = info.columns.get(column)?.ty;
                if !ty.prunable()
                    || !collation_orders_bytes(ty, (*saop).inputcollid, false)
                    || strategy((*saop).opno, info.types[column])? != Op::Eq
                {
                    return None;
                }
                let arr = pg_sys::pg_detoast_datum(
                    (*(array as *mut pg_sys::Const)).constvalue.cast_mut_ptr(),
                ) as *mut pg_sys::ArrayType;
                let elem = (*arr).elemtype;
                let mut typlen = 0i16;
                let mut byval = false;
                let mut align = 0 as std::ffi::c_char;
                pg_sys::get_typlenbyvalalign(elem, &mut typlen, &mut byval, &mut align);
                let mut values: *mut pg_sys::Datum = std::ptr::null_mut();
                let mut nulls: *mut bool = std::ptr::null_mut();
                let mut n = 0i32;
                pg_sys::deconstruct_array(
                    arr,
                    elem,
                    typlen as i32,
                    byval,
                    align,
                    &mut values,
                    &mut nulls,
                    &mut n,
                );
                let mut scalars = Vec::with_capacity(n as usize);
                for i in 0..n as usize {
                    if *nulls.add(i) {
                        continue; // NULL never equals anything
                    }
                    let mut c = pg_sys::Const {
                        xpr: pg_sys::Expr {
                            type_: pg_sys::NodeTag::T_Const,
                        },
                        consttype: elem,
                        consttypmod: -1,
                        constcollid: pg_sys::InvalidOid,
                        constlen: typlen as i32,
                        constvalue: *values.add(i),
                        constisnull: false,
                        constbyval: byval,
                        location: -1,
                    };
                    match scalar(&mut c, ty, Op::Eq) {
                        Some((Op::Eq, s)) => scalars.push(s),
                        _ => return None,
                    }
                }
                Some(Predicate::In {
                    column,
                    values: scalars,
                })
            }
            pg_sys::NodeTag::T_NullTest => {
                let test = node as *mut pg_sys::NullTest;
                if (*test).argisrow {
                    return None;
                }
                let column = column_of((*test).arg as *mut pg_sys::Node, scanrelid)?;
                Some(if (*test).nulltesttype == pg_sys::NullTestType::IS_NULL {
                    Predicate::IsNull { column }
                } else {
                    Predicate::IsNotNull { column }
                })
            }
            _ => None,
        }
    }
}

/// Whether comparing under collation `collid` agrees with comparing bytes: always for
/// non-text columns; for text, equality needs a deterministic collation and ordering
/// needs "C" / "POSIX".
fn collation_orders_bytes(ty: ColumnType, collid: pg_sys::Oid, ordering: bool) -> bool {
    if ty != ColumnType::Text {
        return true;
    }
    const C_COLLATION: u32 = 950;
    const POSIX_COLLATION: u32 = 951;
    let c = collid.to_u32() == C_COLLATION || collid.to_u32() == POSIX_COLLATION;
    if ordering {
        return c;
    }
    // SAFETY: a catalog lookup of a valid collation.
    c || (collid != pg_sys::InvalidOid && unsafe { pg_sys::get_collation_isdeterministic(collid) })
}

/// The comparison operator `opno` as a btree strategy of the column type's default
/// operator family (which also holds the cross-type operators, e.g. date < timestamp).
fn strategy(opno: pg_sys::Oid, column_type: pg_sys::Oid) -> Option<Op> {
    // SAFETY: catalog lookups on the main thread.
    unsafe {
        let opclass = pg_sys::GetDefaultOpClass(column_type, pg_sys::BTREE_AM_OID);
        if opclass == pg_sys::InvalidOid {
            return None;
        }
        let family = pg_sys::get_opclass_family(opclass);
        match pg_sys::get_op_opfamily_strategy(opno, family) {
            1 => Some(Op::Lt),
            2 => Some(Op::Le),
            3 => Some(Op::Eq),
            4 => Some(Op::Ge),
            5 => Some(Op::Gt),
            _ => None,
        }
    }
}

fn flip(op: Op) -> Op {
    match op {
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        Op::Eq => Op::Eq,
    }
}

const USECS_PER_DAY: i64 = 86_400_000_000;
/// The first microsecond past PostgreSQL's timestamp range (294277-01-01 00:00:00).
const END_OF_TIMESTAMPS: i64 = 9_223_371_331_200_000_000;

/// A constant as a bound in the column's units, with the operator adjusted when the
/// conversion is not exact (a timestamp compared with a date column); `None` when the
/// constant cannot serve.
unsafe fn scalar(c: *mut pg_sys::Const, ty: ColumnType, op: Op) -> Option<(Op, Scalar)> {
    // SAFETY: a valid Const node.
    unsafe {
        if (*c).constisnull {
            return None;
        }
        let word = (*c).constvalue.value();
        let t = (*c).consttype;
        use pg_sys::BuiltinOid as B;
        let builtin = B::from_u32(t.to_u32()).ok();
        let int = |v: i64| Some((op, Scalar::Int(v)));
        match (ty, builtin?) {
            (ColumnType::Bool, B::BOOLOID) => int(i64::from(word != 0)),
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, B::INT2OID) => {
                int(word as i16 as i64)
            }
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, B::INT4OID) => {
                int(word as i32 as i64)
            }
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, B::INT8OID) => {
                int(word as i64)
            }
            (ColumnType::Float32 | ColumnType::Float64, B::FLOAT4OID) => {
                Some((op, Scalar::Float(f64::from(f32::from_bits(word as u32)))))
            }
            (ColumnType::Float32 | ColumnType::Float64, B::FLOAT8OID) => {
                Some((op, Scalar::Float(f64::from_bits(word as u64))))
            }
            (ColumnType::Date, B::DATEOID) => int(word as i32 as i64),
            (ColumnType::Date, B::TIMESTAMPOID) => {
                let ts = word as i64;
                // Infinite timestamps equal the infinite dates (PostgreSQL compares
                // them so), not the last finite day.
                if ts == i64::MAX {
                    return int(i64::from(i32::MAX));
                }
                if ts == i64::MIN {
                    return int(i64::from(i32::MIN));
                }
                let (day, rest) = (ts.div_euclid(USECS_PER_DAY), ts.rem_euclid(USECS_PER_DAY));
                if rest == 0 {
                    return int(day);
                }
                // Between two midnights: `d < ts` and `d <= ts` mean `d <= day`,
                // `d > ts` and `d >= ts` mean `d > day`; no date equals it.
                match op {
                    Op::Lt | Op::Le => Some((Op::Le, Scalar::Int(day))),
                    Op::Gt | Op::Ge => Some((Op::Gt, Scalar::Int(day))),
                    Op::Eq => None,
                }
            }
            (ColumnType::Timestamp, B::TIMESTAMPOID)
            | (ColumnType::TimestampTz, B::TIMESTAMPTZOID) => int(word as i64),
            (ColumnType::Timestamp, B::DATEOID) => {
                let days = word as i32;
                // Infinite dates compare as the infinite timestamps.
                match days {
                    i32::MAX => int(i64::MAX),
                    i32::MIN => int(i64::MIN),
                    // A date past the last timestamp is later than every finite one.
                    d => match i64::from(d).checked_mul(USECS_PER_DAY) {
                        Some(ts) if ts < END_OF_TIMESTAMPS => int(ts),
                        _ => None,
                    },
                }
            }
            (ColumnType::Time, B::TIMEOID) => int(word as i64),
            (ColumnType::Numeric { scale }, B::NUMERICOID) => {
                let v = pg_sys::pg_detoast_datum_packed((*c).constvalue.cast_mut_ptr());
                let payload = std::slice::from_raw_parts(
                    pgrx::varlena::vardata_any(v) as *const u8,
                    pgrx::varlena::varsize_any_exhdr(v),
                );
                let numeric::Decoded::Number { mantissa, dscale } =
                    numeric::decode(payload).ok()?
                else {
                    return None; // NaN and infinities: leave them to Postgres
                };
                let (floor, exact) = numeric::rescale(mantissa, dscale, scale);
                let floor = i64::try_from(floor).ok().filter(|&f| f != numeric::NAN)?;
                if exact {
                    return int(floor);
                }
                // Between two representable values, as for a timestamp against dates.
                match op {
                    Op::Lt | Op::Le => Some((Op::Le, Scalar::Int(floor))),
                    Op::Gt | Op::Ge => Some((Op::Gt, Scalar::Int(floor))),
                    Op::Eq => None,
                }
            }
            (ColumnType::Text, B::TEXTOID | B::VARCHAROID) | (ColumnType::Bytes, B::BYTEAOID) => {
                let v = pg_sys::pg_detoast_datum_packed((*c).constvalue.cast_mut_ptr());
                let bytes = std::slice::from_raw_parts(
                    pgrx::varlena::vardata_any(v) as *const u8,
                    pgrx::varlena::varsize_any_exhdr(v),
                );
                Some((op, Scalar::Bytes(bytes.to_vec())))
            }
            (ColumnType::Uuid, B::UUIDOID) => {
                let bytes = std::slice::from_raw_parts((*c).constvalue.cast_mut_ptr::<u8>(), 16);
                Some((op, Scalar::Bytes(bytes.to_vec())))
            }
            _ => None,
        }
    }
}
