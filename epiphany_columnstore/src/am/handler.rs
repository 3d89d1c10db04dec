//! The `epiphany_columnar` table access method: its routine, and the callbacks that are
//! small enough to live next to it (the rest are in `scan`, `fetch`, `writes`,
//! `index_build` and `relation_storage`).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::{OrReport, OrReportIn};
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{fetch, index_build, sample, scan};
use crate::am::relation_storage as rs;

extension_sql!(
    r#"
CREATE SEQUENCE epiphany.columnar_storage_ids;
COMMENT ON SEQUENCE epiphany.columnar_storage_ids IS
    'Ids of epiphany_columnar storages (a new one for every relfilenode that gets rows)';

-- Heap whatever default_table_access_method says (it may name epiphany_columnar).
CREATE TABLE epiphany.columnar_parts (
    storage_id  bigint  NOT NULL,
    part_id     bigint  NOT NULL,
    level       integer NOT NULL,
    first_row   bigint  NOT NULL,
    row_count   bigint  NOT NULL,
    first_block bigint  NOT NULL,
    pages       integer NOT NULL,
    byte_len    bigint  NOT NULL,
    stats       bytea   NOT NULL
) USING heap;
COMMENT ON TABLE epiphany.columnar_parts IS
    'One row per part of every epiphany_columnar table: visible exactly when the part''s rows are (written by the access method; do not modify)';
REVOKE ALL ON epiphany.columnar_parts FROM PUBLIC;
REVOKE ALL ON SEQUENCE epiphany.columnar_storage_ids FROM PUBLIC;

CREATE FUNCTION epiphany.columnar_handler(internal) RETURNS table_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'columnar_handler_wrapper';
COMMENT ON FUNCTION epiphany.columnar_handler(internal) IS
    'Table access method handler of epiphany_columnar';
CREATE ACCESS METHOD epiphany_columnar TYPE TABLE HANDLER epiphany.columnar_handler;
COMMENT ON ACCESS METHOD epiphany_columnar IS
    'Columnar MergeTree storage: sorted, compressed, immutable parts with granule pruning';
"#,
    name = "columnar_access_method",
);

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_finfo_columnar_handler_wrapper() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn columnar_handler_wrapper(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(routine() as *const pg_sys::TableAmRoutine)
}

fn routine() -> &'static pg_sys::TableAmRoutine {
    static ROUTINE: std::sync::OnceLock<pg_sys::TableAmRoutine> = std::sync::OnceLock::new();
    ROUTINE.get_or_init(|| {
        let mut r = pg_sys::TableAmRoutine {
            type_: pg_sys::NodeTag::T_TableAmRoutine,
            ..Default::default()
        };
        r.slot_callbacks = Some(slot_callbacks);
        r.scan_begin = Some(scan::scan_begin);
        r.scan_end = Some(scan::scan_end);
        r.scan_rescan = Some(scan::scan_rescan);
        r.scan_getnextslot = Some(scan::scan_getnextslot);
        r.parallelscan_estimate = Some(scan::parallelscan_estimate);
        r.parallelscan_initialize = Some(scan::parallelscan_initialize);
        r.parallelscan_reinitialize = Some(scan::parallelscan_reinitialize);
        r.index_fetch_begin = Some(fetch::index_fetch_begin);
        r.index_fetch_reset = Some(fetch::index_fetch_reset);
        r.index_fetch_end = Some(fetch::index_fetch_end);
        r.index_fetch_tuple = Some(fetch::index_fetch_tuple);
        r.tuple_fetch_row_version = Some(fetch::tuple_fetch_row_version);
        r.tuple_tid_valid = Some(fetch::tuple_tid_valid);
        r.tuple_get_latest_tid = Some(fetch::tuple_get_latest_tid);
        r.tuple_satisfies_snapshot = Some(fetch::tuple_satisfies_snapshot);
        r.index_delete_tuples = Some(fetch::index_delete_tuples);
        r.tuple_insert = Some(tuple_insert);
        r.tuple_insert_speculative = Some(tuple_insert_speculative);
        r.tuple_complete_speculative = Some(tuple_complete_speculative);
        r.multi_insert = Some(multi_insert);
        r.tuple_delete = Some(tuple_delete);
        r.tuple_update = Some(tuple_update);
        r.tuple_lock = Some(tuple_lock);
        r.finish_bulk_insert = Some(finish_bulk_insert);
        #[cfg(not(feature = "pg15"))]
        {
            r.relation_set_new_filelocator = Some(rs::set_new_storage);
        }
        #[cfg(feature = "pg15")]
        {
            r.relation_set_new_filenode = Some(rs::set_new_storage);
        }
        r.relation_nontransactional_truncate = Some(rs::truncate_now);
        r.relation_copy_data = Some(rs::copy_data);
        r.relation_copy_for_cluster = Some(index_build::copy_for_cluster);
        r.relation_vacuum = Some(relation_vacuum);
        r.scan_analyze_next_block = Some(sample::scan_analyze_next_block);
        r.scan_analyze_next_tuple = Some(sample::scan_analyze_next_tuple);
        r.index_build_range_scan = Some(index_build::index_build_range_scan);
        r.index_validate_scan = Some(index_build::index_validate_scan);
        r.relation_size = Some(rs::relation_size);
        r.relation_needs_toast_table = Some(rs::needs_toast_table);
        r.relation_estimate_size = Some(relation_estimate_size);
        crate::am::bitmap::install(&mut r);
        r.scan_sample_next_block = Some(sample::scan_sample_next_block);
        r.scan_sample_next_tuple = Some(sample::scan_sample_next_tuple);
        r
    })
}

fn not_supported(what: &str) -> ! {
    epiphany_core::pg::report(&Error::NotSupported(format!(
        "{what} on epiphany_columnar tables"
    )))
}

#[pg_guard]
unsafe extern "C-unwind" fn slot_callbacks(
    _rel: pg_sys::Relation,
) -> *const pg_sys::TupleTableSlotOps {
    &crate::convert::slot::TTS_OPS_COLUMNAR
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    _options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: Postgres passes an open relation locked for insert and a slot of it.
    unsafe {
        epiphany_core::pg::serializable::check_insert(rel);
        crate::writes::insert(Rel::new(rel), slot, cid)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn multi_insert(
    rel: pg_sys::Relation,
    slots: *mut *mut pg_sys::TupleTableSlot,
    nslots: i32,
    cid: pg_sys::CommandId,
    _options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    if nslots <= 0 {
        return;
    }
    // SAFETY: Postgres passes `nslots` valid slots of an open relation locked for insert.
    unsafe {
        let slots = std::slice::from_raw_parts(slots, nslots as usize);
        epiphany_core::pg::serializable::check_insert(rel);
        crate::writes::insert_many(Rel::new(rel), slots, cid);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn finish_bulk_insert(rel: pg_sys::Relation, _options: i32) {
    // A bulk load (COPY, CREATE TABLE AS, a table rewrite) ends here; a rewrite's new
    // relation is swapped in and dropped before commit, so its rows must be parts now.
    // SAFETY: an open relation we inserted into.
    unsafe { crate::writes::flush_relid((*rel).rd_id, true) };
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_insert_speculative(
    _rel: pg_sys::Relation,
    _slot: *mut pg_sys::TupleTableSlot,
    _cid: pg_sys::CommandId,
    _options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
    _token: u32,
) {
    not_supported("INSERT … ON CONFLICT")
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_complete_speculative(
    _rel: pg_sys::Relation,
    _slot: *mut pg_sys::TupleTableSlot,
    _token: u32,
    _succeeded: bool,
) {
    not_supported("INSERT … ON CONFLICT")
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn tuple_delete(
    _rel: pg_sys::Relation,
    _tid: pg_sys::ItemPointer,
    _cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    _crosscheck: pg_sys::Snapshot,
    _wait: bool,
    _tmfd: *mut pg_sys::TM_FailureData,
    _changing_part: bool,
) -> pg_sys::TM_Result::Type {
    not_supported("DELETE")
}

#[cfg(not(feature = "pg15"))]
type UpdateIndexes = pg_sys::TU_UpdateIndexes::Type;
#[cfg(feature = "pg15")]
type UpdateIndexes = bool;

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn tuple_update(
    _rel: pg_sys::Relation,
    _otid: pg_sys::ItemPointer,
    _slot: *mut pg_sys::TupleTableSlot,
    _cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    _crosscheck: pg_sys::Snapshot,
    _wait: bool,
    _tmfd: *mut pg_sys::TM_FailureData,
    _lockmode: *mut pg_sys::LockTupleMode::Type,
    _update_indexes: *mut UpdateIndexes,
) -> pg_sys::TM_Result::Type {
    not_supported("UPDATE")
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn tuple_lock(
    _rel: pg_sys::Relation,
    _tid: pg_sys::ItemPointer,
    _snapshot: pg_sys::Snapshot,
    _slot: *mut pg_sys::TupleTableSlot,
    _cid: pg_sys::CommandId,
    _mode: pg_sys::LockTupleMode::Type,
    _wait_policy: pg_sys::LockWaitPolicy::Type,
    _flags: u8,
    _tmfd: *mut pg_sys::TM_FailureData,
) -> pg_sys::TM_Result::Type {
    not_supported("SELECT … FOR UPDATE/SHARE (row locks)")
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_vacuum(
    rel: pg_sys::Relation,
    params: *mut pg_sys::VacuumParams,
    _strategy: pg_sys::BufferAccessStrategy,
) {
    // Rows are never deleted yet; what VACUUM finds are the pages of parts whose
    // transactions aborted (their catalog rows VACUUM of epiphany.columnar_parts removes).
    // SAFETY: Postgres's open relation and parameters.
    unsafe {
        let done = crate::am::vacuum::reclaim(Rel::new(rel)).or_report_in(Rel::new(rel));
        let verbose = !params.is_null()
            && (i64::from((*params).options) & i64::from(pg_sys::VACOPT_VERBOSE)) != 0;
        let name = std::ffi::CStr::from_ptr(pg_sys::get_rel_name((*rel).rd_id)).to_string_lossy();
        let message = if done.skipped {
            format!("\"{name}\": writers in progress, unused pages left for a later VACUUM")
        } else {
            format!(
                "\"{name}\": {} unused pages truncated, {} unused pages free for reuse",
                done.truncated, done.free
            )
        };
        if verbose {
            pgrx::info!("{message}");
        } else {
            pgrx::debug1!("{message}");
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_estimate_size(
    rel: pg_sys::Relation,
    _attr_widths: *mut i32,
    pages: *mut pg_sys::BlockNumber,
    tuples: *mut f64,
    allvisfrac: *mut f64,
) {
    // SAFETY: an open relation; the out-pointers are valid.
    unsafe {
        *pages = pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
        let rows = match crate::storage::meta::storage_id(Rel::new(rel)).or_report_in(Rel::new(rel))
        {
            Some(storage) => {
                let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
                let parts = crate::storage::catalog::visible(storage, snapshot);
                pg_sys::UnregisterSnapshot(snapshot);
                parts.or_report().iter().map(|p| p.row_count).sum::<u64>()
            }
            None => 0,
        };
        *tuples = rows as f64;
        *allvisfrac = 0.0;
    }
}
