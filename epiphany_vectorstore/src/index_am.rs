//! What the two vector index access methods share: the routine's flags, the insert and
//! cost callbacks' common parts, the order-by key of a scan, and VACUUM's reads.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::{Buffer, Lock, Rel};
use epiphany_core::vector::hnsw_node::RowId;
use epiphany_core::Error;
use pgrx::itemptr::item_pointer_get_both;
use pgrx::pg_sys;
use pgrx::PgBox;

use crate::datum::elements;

/// The callbacks that differ between the access methods.
pub struct Callbacks {
    pub build: pg_sys::ambuild_function,
    pub build_empty: pg_sys::ambuildempty_function,
    pub insert: pg_sys::aminsert_function,
    pub bulk_delete: pg_sys::ambulkdelete_function,
    pub vacuum_cleanup: pg_sys::amvacuumcleanup_function,
    pub cost_estimate: pg_sys::amcostestimate_function,
    pub options: pg_sys::amoptions_function,
    pub phase_name: pg_sys::ambuildphasename_function,
    pub begin_scan: pg_sys::ambeginscan_function,
    pub rescan: pg_sys::amrescan_function,
    pub get_tuple: pg_sys::amgettuple_function,
    pub end_scan: pg_sys::amendscan_function,
}

/// The handler's result: an ordering-only, single-column index with `callbacks`.
/// Postgres copies the routine into the relcache and pfrees this one: it must be a
/// palloc'd node.
pub fn routine(callbacks: Callbacks) -> pg_sys::Datum {
    let mut r = unsafe {
        // SAFETY: a zeroed IndexAmRoutine node in the current memory context.
        PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine)
    };
    r.amstrategies = 0;
    r.amsupport = 1;
    r.amcanorderbyop = true;
    r.amoptionalkey = true;
    r.amparallelvacuumoptions = pg_sys::VACUUM_OPTION_NO_PARALLEL as u8;
    r.amkeytype = pg_sys::InvalidOid;
    r.ambuild = callbacks.build;
    r.ambuildempty = callbacks.build_empty;
    r.aminsert = callbacks.insert;
    r.ambulkdelete = callbacks.bulk_delete;
    r.amvacuumcleanup = callbacks.vacuum_cleanup;
    r.amcostestimate = callbacks.cost_estimate;
    r.amoptions = callbacks.options;
    r.ambuildphasename = callbacks.phase_name;
    r.amvalidate = Some(validate);
    r.ambeginscan = callbacks.begin_scan;
    r.amrescan = callbacks.rescan;
    r.amgettuple = callbacks.get_tuple;
    r.amendscan = callbacks.end_scan;
    pg_sys::Datum::from(r.into_pg())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn validate(_opclass: pg_sys::Oid) -> bool {
    true
}

/// `aminsert`'s common part: the row's vector and TID, or `None` for a NULL (not indexed).
///
/// # Safety
/// `values`, `isnull` and `heap_tid` are what Postgres passes to `aminsert`.
pub unsafe fn inserted_row<'a>(
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
) -> Option<(&'a [f32], RowId)> {
    // SAFETY: per the contract; one column.
    unsafe {
        if *isnull {
            return None;
        }
        let (block, item) = item_pointer_get_both(*heap_tid);
        Some((elements(*values), RowId { block, item }))
    }
}

/// `amcostestimate` for an index that serves only `ORDER BY` a distance: without one the
/// index cannot be used (infinite cost); with one, `visited(index, tuples)` index tuples
/// are read before the first row comes out, plus `extra` cost.
///
/// # Safety
/// The planner's arguments to `amcostestimate`.
#[allow(clippy::too_many_arguments)] // Postgres's signature, plus the two estimates
pub unsafe fn order_by_cost(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    out: (
        *mut pg_sys::Cost,
        *mut pg_sys::Cost,
        *mut pg_sys::Selectivity,
        *mut f64,
        *mut f64,
    ),
    visited: impl FnOnce(Rel<'_>, f64) -> f64,
    extra: f64,
) {
    let (startup, total, selectivity, correlation, pages) = out;
    // SAFETY: per the contract; the planner holds a lock on the index already.
    unsafe {
        if (*path).indexorderbys.is_null() {
            // PostgreSQL 18 compares disabled nodes before costs: a seq scan disabled by
            // `enable_seqscan = off` counts one, so this path must count more to lose.
            #[cfg(feature = "pg18")]
            {
                (*path).path.disabled_nodes = 2;
            }
            *startup = f64::INFINITY;
            *total = f64::INFINITY;
            *selectivity = 0.0;
            *correlation = 0.0;
            *pages = 0.0;
            return;
        }
        let tuples = (*(*path).indexinfo).tuples.max(1.0);
        let index = pg_sys::index_open((*(*path).indexinfo).indexoid, pg_sys::NoLock as i32);
        let n = visited(Rel::new(index), tuples).clamp(1.0, tuples);
        pg_sys::index_close(index, pg_sys::NoLock as i32);
        let mut costs = pg_sys::GenericCosts {
            numIndexTuples: n,
            ..Default::default()
        };
        pg_sys::genericcostestimate(root, path, loop_count, &mut costs);
        *startup = costs.indexTotalCost + extra;
        *total = costs.indexTotalCost + extra;
        *selectivity = costs.indexSelectivity;
        *correlation = costs.indexCorrelation;
        *pages = costs.numIndexPages;
    }
}

/// `amrescan`'s common part: keeps the new order-by keys.
///
/// # Safety
/// `scan` is an index scan with room for `norderbys` keys.
pub unsafe fn keep_order_by(
    scan: pg_sys::IndexScanDesc,
    orderbys: pg_sys::ScanKey,
    norderbys: i32,
) {
    // SAFETY: per the contract.
    unsafe {
        if !orderbys.is_null() && norderbys > 0 {
            std::ptr::copy(orderbys, (*scan).orderByData, norderbys as usize);
        }
    }
}

/// The scan's query vector (`None` for a NULL query), checked against `dims` (0: any).
///
/// # Safety
/// `scan` is an index scan of `am` whose order-by keys rescan set.
pub unsafe fn query_vector(scan: pg_sys::IndexScanDesc, am: &str, dims: usize) -> Option<Vec<f32>> {
    // SAFETY: per the contract.
    unsafe {
        if (*scan).numberOfOrderBys < 1 {
            // The planner picks such a scan only when everything else is disabled
            // (enable_seqscan = off); it could not return the rows whose vector is NULL,
            // which the index does not hold.
            Error::NotSupported(format!(
                "{am} index scans without ORDER BY a distance operator (the index does not hold rows whose vector is NULL)"
            ))
            .report();
        }
        let key = &*(*scan).orderByData;
        if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
            return None;
        }
        let q = elements(key.sk_argument);
        if dims != 0 && q.len() != dims {
            Error::Data(format!(
                "the query vector has {} dimensions, the index {dims}",
                q.len()
            ))
            .report();
        }
        Some(q.to_vec())
    }
}

/// Sets the TID an index scan returns (exact: no recheck, no reordering).
///
/// # Safety
/// `scan` is an index scan.
pub unsafe fn return_row(scan: pg_sys::IndexScanDesc, row: RowId) {
    // SAFETY: per the contract.
    unsafe {
        pgrx::itemptr::item_pointer_set_all(&mut (*scan).xs_heaptid, row.block, row.item);
        (*scan).xs_recheck = false;
        (*scan).xs_recheckorderby = false;
    }
}

/// An index being vacuumed: its pages are read through VACUUM's buffer strategy.
#[derive(Clone, Copy)]
pub struct Vacuumed<'a> {
    pub rel: Rel<'a>,
    strategy: pg_sys::BufferAccessStrategy,
    pub analyze_only: bool,
}

impl<'a> Vacuumed<'a> {
    /// # Safety
    /// `info` is the VACUUM's info for an open index that stays open, with its strategy,
    /// for `'a`.
    pub unsafe fn new(info: *mut pg_sys::IndexVacuumInfo) -> Vacuumed<'a> {
        // SAFETY: per the contract.
        unsafe {
            Vacuumed {
                rel: Rel::new((*info).index),
                strategy: (*info).strategy,
                analyze_only: (*info).analyze_only,
            }
        }
    }

    /// Block `block`, locked.
    pub fn read(self, block: u32, lock: Lock) -> Buffer<'a> {
        // SAFETY: the strategy is VACUUM's, live for 'a (constructor contract).
        unsafe { Buffer::read_with(self.rel, block, self.strategy, lock) }
    }
}

/// The bulk-delete result VACUUM passed, or a new one.
///
/// # Safety
/// In a VACUUM callback.
pub unsafe fn vacuum_stats(
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    if stats.is_null() {
        // SAFETY: per the contract: palloc in VACUUM's memory context.
        unsafe {
            pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>())
                as *mut pg_sys::IndexBulkDeleteResult
        }
    } else {
        stats
    }
}
