//! The `epiphany_ivfpq` index access method: k-means lists of product-quantized residuals,
//! candidates reranked with exact distances. Its routine and SQL are here; the rest is in
//! `build`, `insert`, `scan`, `vacuum` and `pages`.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

mod build;
mod insert;
mod pages;
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
CREATE FUNCTION ivfpq_handler(internal) RETURNS index_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'ivfpq_handler';
COMMENT ON FUNCTION ivfpq_handler(internal) IS 'Index access method handler of epiphany_ivfpq';
CREATE ACCESS METHOD epiphany_ivfpq TYPE INDEX HANDLER ivfpq_handler;
COMMENT ON ACCESS METHOD epiphany_ivfpq IS
    'IVF-PQ index: k-means lists of product-quantized vectors, reranked with exact distances (ORDER BY <->, <#>, <=>)';

CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE vector USING epiphany_ivfpq AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_l2_squared_distance(vector, vector);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING epiphany_ivfpq AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING epiphany_ivfpq AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(vector, vector);
"#,
    name = "ivfpq_access_method",
    requires = ["vector_type"],
);

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_ivfpq_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn ivfpq_handler(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    index_am::routine(index_am::Callbacks {
        build: Some(build::build),
        build_empty: Some(build::build_empty),
        insert: Some(aminsert),
        bulk_delete: Some(vacuum::bulk_delete),
        vacuum_cleanup: Some(vacuum::vacuum_cleanup),
        cost_estimate: Some(cost_estimate),
        options: Some(options::ivf_options),
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
        build::PHASE_SAMPLE => c"sampling rows".as_ptr() as *mut _,
        build::PHASE_TRAIN => c"training centroids and codebooks".as_ptr() as *mut _,
        build::PHASE_ASSIGN => c"assigning rows to lists".as_ptr() as *mut _,
        _ => std::ptr::null_mut(),
    }
}

/// A scan reads `probes / lists` of the index and reranks `ivf_rerank` rows; a scan
/// without ORDER BY cannot use the index.
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
        // Reranking reads table rows.
        let rerank = options::IVF_RERANK.get() as f64 * pg_sys::random_page_cost * 0.1;
        index_am::order_by_cost(
            root,
            path,
            loop_count,
            (startup, total, selectivity, correlation, pages),
            |index, tuples| {
                let (lists, _, _) = options::ivf_params(index);
                tuples * options::IVF_PROBES.get() as f64 / lists.max(1) as f64
            },
            rerank,
        )
    }
}
