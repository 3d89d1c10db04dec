//! The `epiphany_hnsw` index access method: its routine, the SQL that declares it and its
//! operator classes, and the callbacks small enough to live here (the rest are in
//! `build`, `insert`, `scan` and `vacuum`; the page format is `pages`).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

pub(crate) mod build;
mod cache;
mod insert;
pub(crate) mod pages;
mod scan;
#[cfg(any(test, feature = "pg_test"))]
mod tests;
mod vacuum;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::index_am;
use crate::options;
use epiphany_core::pg::buffer::Rel;

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
    index_am::routine(index_am::Callbacks {
        build: Some(build::build),
        build_empty: Some(build::build_empty),
        insert: Some(aminsert),
        bulk_delete: Some(vacuum::bulk_delete),
        vacuum_cleanup: Some(vacuum::vacuum_cleanup),
        cost_estimate: Some(cost_estimate),
        options: Some(options::hnsw_options),
        phase_name: Some(build_phase_name),
        begin_scan: Some(scan::begin_scan),
        rescan: Some(scan::rescan),
        get_tuple: Some(scan::get_tuple),
        end_scan: Some(scan::end_scan),
    })
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
    // SAFETY: Postgres passes one column's value and the new row's TID.
    unsafe {
        if let Some((vector, row)) = index_am::inserted_row(values, isnull, heap_tid) {
            insert::insert(Rel::new(index), vector, row);
        }
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
        index_am::order_by_cost(
            root,
            path,
            loop_count,
            (startup, total, selectivity, correlation, pages),
            |index, _| {
                let (m, _) = options::hnsw_params(index);
                options::HNSW_EF_SEARCH.get() as f64 * 2.0 * m as f64
            },
            0.0,
        )
    }
}
