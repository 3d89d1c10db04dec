//! The `epiphany_hnsw` index access method: its routine, the SQL that declares it and its
//! operator classes, and the callbacks small enough to live here (the rest are in
//! `build`, `insert`, `scan` and `vacuum`; the page format is `pages`).

pub(crate) mod build;
mod cache;
mod insert;
pub(crate) mod pages;
mod scan;
#[cfg(any(test, feature = "pg_test"))]
mod tests;
mod vacuum;

use epiphany_core::vector::hnsw_node::RowId;
use pgrx::itemptr::item_pointer_get_both;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgBox;

use crate::datum::elements;
use crate::options;

extension_sql!(
    r#"
CREATE FUNCTION hnsw_handler(internal) RETURNS index_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'hnsw_handler';
COMMENT ON FUNCTION hnsw_handler(internal) IS 'Index access method handler of epiphany_hnsw';
CREATE ACCESS METHOD epiphany_hnsw TYPE INDEX HANDLER hnsw_handler;
COMMENT ON ACCESS METHOD epiphany_hnsw IS
    'HNSW graph index for nearest-neighbour search on vector columns (ORDER BY <->, <#>, <=>)';

CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE vector USING epiphany_hnsw AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_l2_squared_distance(vector, vector);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING epiphany_hnsw AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING epiphany_hnsw AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(vector, vector);
"#,
    name = "hnsw_access_method",
    requires = ["vector_type"],
);

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_hnsw_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn hnsw_handler(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // Postgres copies the routine into the relcache and pfrees this one: it must be a
    // palloc'd node.
    let mut r = unsafe {
        // SAFETY: a zeroed IndexAmRoutine node in the current memory context.
        PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine)
    };
    r.amstrategies = 0;
    r.amsupport = 1;
    r.amoptsprocnum = 0;
    r.amcanorder = false;
    r.amcanorderbyop = true;
    r.amcanbackward = false;
    r.amcanunique = false;
    r.amcanmulticol = false;
    r.amoptionalkey = true;
    r.amsearcharray = false;
    r.amsearchnulls = false;
    r.amstorage = false;
    r.amclusterable = false;
    r.ampredlocks = false;
    r.amcanparallel = false;
    r.amcaninclude = false;
    r.amusemaintenanceworkmem = false;
    r.amparallelvacuumoptions = pg_sys::VACUUM_OPTION_NO_PARALLEL as u8;
    r.amkeytype = pg_sys::InvalidOid;
    r.ambuild = Some(build::build);
    r.ambuildempty = Some(build::build_empty);
    r.aminsert = Some(aminsert);
    r.ambulkdelete = Some(vacuum::bulk_delete);
    r.amvacuumcleanup = Some(vacuum::vacuum_cleanup);
    r.amcostestimate = Some(cost_estimate);
    r.amoptions = Some(options::hnsw_options);
    r.ambuildphasename = Some(build_phase_name);
    r.amvalidate = Some(validate);
    r.ambeginscan = Some(scan::begin_scan);
    r.amrescan = Some(scan::rescan);
    r.amgettuple = Some(scan::get_tuple);
    r.amendscan = Some(scan::end_scan);
    pg_sys::Datum::from(r.into_pg())
}

#[pg_guard]
#[allow(clippy::too_many_arguments)] // Postgres's signature
unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    // SAFETY: Postgres passes one column's value and the new row's TID; NULLs are not
    // indexed.
    unsafe {
        if *isnull {
            return false;
        }
        let (block, item) = item_pointer_get_both(*heap_tid);
        insert::insert(index, elements(*values), RowId { block, item });
    }
    false
}

#[pg_guard]
unsafe extern "C-unwind" fn build_phase_name(phase: i64) -> *mut std::ffi::c_char {
    match phase {
        build::PHASE_LOAD => c"loading tuples".as_ptr() as *mut _,
        build::PHASE_GRAPH => c"building graph".as_ptr() as *mut _,
        build::PHASE_WRITE => c"writing graph pages".as_ptr() as *mut _,
        _ => std::ptr::null_mut(),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn validate(_opclass: pg_sys::Oid) -> bool {
    true
}

/// A search reads about `ef_search` × (2m) nodes, whatever the table's size; a scan
/// without ORDER BY cannot use the index at all.
#[pg_guard]
#[allow(clippy::too_many_arguments)] // Postgres's signature
unsafe extern "C-unwind" fn cost_estimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: the planner passes a path of one of our indexes and out-parameters.
    unsafe {
        if (*path).indexorderbys.is_null() {
            *startup = f64::INFINITY;
            *total = f64::INFINITY;
            *selectivity = 0.0;
            *correlation = 0.0;
            *pages = 0.0;
            return;
        }
        // The planner holds a lock on the index already.
        let index = pg_sys::index_open((*(*path).indexinfo).indexoid, pg_sys::NoLock as i32);
        let (m, _) = options::hnsw_params(index);
        pg_sys::index_close(index, pg_sys::NoLock as i32);
        let tuples = (*(*path).indexinfo).tuples.max(1.0);
        let visited = (options::HNSW_EF_SEARCH.get() as f64 * 2.0 * m as f64).min(tuples);
        let mut costs = pg_sys::GenericCosts {
            numIndexTuples: visited,
            ..Default::default()
        };
        pg_sys::genericcostestimate(root, path, loop_count, &mut costs);
        // The whole search happens before the first row comes out.
        *startup = costs.indexTotalCost;
        *total = costs.indexTotalCost;
        *selectivity = costs.indexSelectivity;
        *correlation = costs.indexCorrelation;
        *pages = costs.numIndexPages;
    }
}
