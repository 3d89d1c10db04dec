//! `EpiphanyDB Columnar Scan`: a custom scan over columnar tables that reads only the
//! columns a query references and skips parts and granules whose min/max statistics
//! rule out its quals (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`, `IS [NOT] NULL` on
//! plain columns against constants). Quals it can evaluate exactly on column batches
//! (`quals::vector_qual`, under AND/OR/NOT) are evaluated there; Postgres evaluates the
//! others on the rows that pass. `EXPLAIN` shows the columns read and, with ANALYZE,
//! the parts and granules scanned and skipped. `epiphany.enable_columnar_scan = off`
//! leaves the access method's plain scans.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::ffi::CStr;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

mod exec;
pub(crate) mod hash_keys;
mod join_costs;
pub(crate) mod quals;
pub(crate) mod top_n;

use exec::*;
pub(crate) use exec::{
    batch_columns, keep_coded, new_state, next_aggregated, next_batch, next_count,
};

pub static ENABLE: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static ENABLE_VECTOR_FILTER: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static FETCH_COST: GucSetting<f64> = GucSetting::<f64>::new(3.0);

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

/// Whether `plan` is a columnar scan.
///
/// # Safety
/// `plan` is a valid plan node.
pub(crate) unsafe fn is_columnar_scan(plan: *mut pg_sys::Plan) -> bool {
    // SAFETY: per the contract; a CustomScan's methods are static tables.
    unsafe {
        (*plan).type_ == pg_sys::NodeTag::T_CustomScan
            && std::ptr::eq(
                (*(plan as *mut pg_sys::CustomScan)).methods,
                &SCAN_METHODS.0,
            )
    }
}

pub fn init() {
    top_n::init();
    GucRegistry::define_bool_guc(
        c"epiphany.enable_hash_key_filter",
        c"Lets a columnar scan under a hash join drop the rows whose keys no inner row matches, before the join probes them.",
        c"The filter holds the hash values of the join's inner rows; it is used for inner, semi and right joins on integer and date keys whose hash table fits in one batch.",
        &hash_keys::ENABLE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"epiphany.enable_columnar_scan",
        c"Plans scans of epiphany_columnar tables with the columnar custom scan (column projection, part and granule pruning).",
        c"Off leaves the access method's sequential, index and bitmap scans.",
        &ENABLE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"epiphany.enable_vector_filter",
        c"Evaluates the quals of columnar scans that it can on column batches (Arrow arrays) instead of row by row.",
        c"Comparisons, <>, IN, IS [NOT] NULL and LIKE 'prefix%' of columns with constants, under AND, OR and NOT; other quals are left to PostgreSQL. EXPLAIN shows them as Vectorized Filter.",
        &ENABLE_VECTOR_FILTER,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"epiphany.columnar_fetch_cost",
        c"How many times a heap fetch's cost one row fetched by TID from a columnar table costs, per column read.",
        c"Index, index-only and bitmap scans of epiphany_columnar tables decode a page of every column they read for each row they fetch; the planner's estimate of those paths is scaled by this times the columns read, so it prefers hash joins and scans where fetching by TID crawls, and still an index for a selective lookup. 0 leaves Postgres's estimates.",
        &FETCH_COST,
        0.0,
        1000.0,
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
    join_costs::install();
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
        reprice_fetches(rel);
        // `enable_seqscan = off` disables our scan as it does Postgres's (see `cost`).
        // Before PostgreSQL 18 a disabled path only carries `disable_cost`, and two
        // disabled paths within 1% of each other tie in add_path: the plain sequential
        // scans go, so ours is the scan left when no index serves.
        #[cfg(not(feature = "pg18"))]
        if !pg_sys::enable_seqscan {
            drop_seq_scans(&mut (*rel).pathlist);
            drop_seq_scans(&mut (*rel).partial_pathlist);
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

/// What fetching a row by TID costs, as a multiple of Postgres's heap estimate, per column
/// read once the decoded pages are in the backend's fetch cache: measured on TPC-H SF1
/// `lineitem`, 12,000 rows fetched by 3,000 index probes, 1 to 4 columns cost 1.0–1.8
/// times heap's (against 4–17 times from a cold cache, what `epiphany.columnar_fetch_cost`
/// prices).
const WARM_FETCH_PER_COLUMN: f64 = 0.25;

/// Index, index-only and bitmap paths of a columnar relation at what fetching by TID
/// costs here, re-added so that add_path judges them at that price. Where the columns
/// read of the whole table, decoded, fit half the fetch cache
/// (`epiphany.columnar_fetch_cache`), each page is decoded once and then shared — a
/// small table probed again and again, as a correlated subquery's inner side is — and a
/// fetch costs about a heap fetch (`WARM_FETCH_PER_COLUMN`); otherwise most fetches
/// decode a page of every column read (`epiphany.columnar_fetch_cost` per column read,
/// times Postgres's heap estimate).
///
/// # Safety
/// Planner structures of the relation, in set_rel_pathlist_hook.
unsafe fn reprice_fetches(rel: *mut pg_sys::RelOptInfo) {
    let per_column = FETCH_COST.get();
    if per_column <= 0.0 {
        return;
    }
    // SAFETY: per the contract; add_path keeps or frees each path (never an IndexPath,
    // which bitmap paths may share).
    unsafe {
        let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos((*(*rel).reltarget).exprs as _, (*rel).relid, &mut attrs);
        for rinfo in PgList::<pg_sys::RestrictInfo>::from_pg((*rel).baserestrictinfo).iter_ptr() {
            pg_sys::pull_varattnos((*rinfo).clause as _, (*rel).relid, &mut attrs);
        }
        let columns = f64::from(pg_sys::bms_num_members(attrs).max(1));
        // Decoded: the planner's width of what is read, and Arrow's offsets and validity.
        let decoded = (*rel).tuples * (f64::from((*(*rel).reltarget).width) + 8.0 * columns);
        let cache = f64::from(crate::convert::windows::FETCH_CACHE_KB.get().max(0)) * 1024.0;
        let factor = if decoded <= cache / 2.0 {
            (1.0 + WARM_FETCH_PER_COLUMN * columns).min(per_column * columns)
        } else {
            per_column * columns
        };
        let fetches = |p: *mut pg_sys::Path| {
            matches!(
                (*p).pathtype,
                pg_sys::NodeTag::T_IndexScan
                    | pg_sys::NodeTag::T_IndexOnlyScan
                    | pg_sys::NodeTag::T_BitmapHeapScan
            )
        };
        let reprice = |p: *mut pg_sys::Path| {
            let run = (*p).total_cost - (*p).startup_cost;
            (*p).total_cost = (*p).startup_cost + run * factor;
        };
        let paths: Vec<*mut pg_sys::Path> = PgList::from_pg((*rel).pathlist).iter_ptr().collect();
        if paths.iter().any(|&p| fetches(p)) {
            (*rel).pathlist = std::ptr::null_mut();
            for p in paths {
                if fetches(p) {
                    reprice(p);
                }
                pg_sys::add_path(rel, p);
            }
        }
        let partial: Vec<*mut pg_sys::Path> = PgList::from_pg((*rel).partial_pathlist)
            .iter_ptr()
            .collect();
        if partial.iter().any(|&p| fetches(p)) {
            (*rel).partial_pathlist = std::ptr::null_mut();
            for p in partial {
                if fetches(p) {
                    reprice(p);
                }
                pg_sys::add_partial_path(rel, p);
            }
        }
    }
}

/// `list` without its plain sequential scans.
///
/// # Safety
/// A path list of a relation being planned.
#[cfg(not(feature = "pg18"))]
unsafe fn drop_seq_scans(list: &mut *mut pg_sys::List) {
    // SAFETY: per the contract; the dropped paths are left to the planner's context.
    unsafe {
        let mut kept = std::ptr::null_mut();
        for p in PgList::<pg_sys::Path>::from_pg(*list).iter_ptr() {
            if (*p).pathtype != pg_sys::NodeTag::T_SeqScan {
                kept = pg_sys::lappend(kept, p.cast());
            }
        }
        *list = kept;
    }
}

/// `get_parallel_divisor`: the share of rows each participant handles, the leader
/// helping less as workers are added.
fn parallel_divisor(workers: i32) -> f64 {
    let mut divisor = f64::from(workers);
    epiphany_core::pg::assert_main_thread();
    // SAFETY: reading a GUC variable on the main thread (asserted).
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
        // It reads the whole table as a sequential scan does: `enable_seqscan = off`
        // disables it too.
        if !pg_sys::enable_seqscan {
            #[cfg(feature = "pg18")]
            {
                (*path).disabled_nodes = 1;
            }
            #[cfg(not(feature = "pg18"))]
            {
                (*path).startup_cost += pg_sys::disable_cost;
                (*path).total_cost += pg_sys::disable_cost;
            }
        }
    }
}

/// The plan of a columnar scan: the quals the scan evaluates itself on Arrow arrays
/// (`quals::vector_qual`) go to `custom_exprs` (EXPLAIN: "Vectorized Filter"), the
/// others stay in the plan's qual for Postgres to evaluate (EXPLAIN: "Filter").
#[pg_guard]
unsafe extern "C-unwind" fn plan_path(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    best_path: *mut pg_sys::CustomPath,
    tlist: *mut pg_sys::List,
    clauses: *mut pg_sys::List,
    _custom_plans: *mut pg_sys::List,
) -> *mut pg_sys::Plan {
    // SAFETY: planner structures; the plan node is palloc'd in the planner's context.
    // The planner holds a lock on the relation, so NoLock opens it.
    unsafe {
        let scan =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomScan>()) as *mut pg_sys::CustomScan;
        (*scan).scan.plan.type_ = pg_sys::NodeTag::T_CustomScan;
        (*scan).scan.plan.targetlist = tlist;
        let quals = pg_sys::extract_actual_clauses(clauses, false);
        if ENABLE_VECTOR_FILTER.get() && !quals.is_null() {
            let rte = *(*root).simple_rte_array.add((*rel).relid as usize);
            let raw = pg_sys::table_open((*rte).relid, pg_sys::NoLock as _);
            let r = epiphany_core::pg::buffer::Rel::new(raw);
            let info = crate::convert::table::TableInfo::load(r);
            let (mut rest, mut vectorized) = (std::ptr::null_mut(), std::ptr::null_mut());
            for q in PgList::<pg_sys::Node>::from_pg(quals).iter_ptr() {
                let ours = info
                    .as_ref()
                    .is_ok_and(|info| quals::vector_qual(q, (*rel).relid, info).is_some());
                if ours {
                    vectorized = pg_sys::lappend(vectorized, q.cast());
                } else {
                    rest = pg_sys::lappend(rest, q.cast());
                }
            }
            pg_sys::table_close(raw, pg_sys::NoLock as _);
            (*scan).scan.plan.qual = rest;
            (*scan).custom_exprs = vectorized;
        } else {
            (*scan).scan.plan.qual = quals;
        }
        (*scan).scan.scanrelid = (*rel).relid;
        (*scan).flags = (*best_path).flags;
        (*scan).methods = &SCAN_METHODS.0;
        scan as *mut pg_sys::Plan
    }
}
