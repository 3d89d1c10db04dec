//! Building indexes over a columnar table, and rewriting it (`VACUUM FULL`, `CLUSTER`).
//!
//! An index build reads every row the build may see with its TID (the row number, fixed
//! for the row's life) and hands it to the index AM, evaluating index expressions and a
//! partial index's predicate as heap's build does. No row is ever dead, and writers are
//! excluded by the build's lock, so a fresh MVCC snapshot sees exactly the live rows.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::OrReportIn;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_guard]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn index_build_range_scan(
    table: pg_sys::Relation,
    index: pg_sys::Relation,
    info: *mut pg_sys::IndexInfo,
    _allow_sync: bool,
    _anyvisible: bool,
    _progress: bool,
    start_block: pg_sys::BlockNumber,
    numblocks: pg_sys::BlockNumber,
    callback: pg_sys::IndexBuildCallback,
    callback_state: *mut std::ffi::c_void,
    scan: pg_sys::TableScanDesc,
) -> f64 {
    // SAFETY: Postgres passes open relations and a valid IndexInfo; the executor state,
    // slot and snapshot made here are released before returning.
    unsafe {
        if (*info).ii_Unique || !(*info).ii_ExclusionOps.is_null() {
            Error::NotSupported(
                "unique indexes, primary keys and exclusion constraints on epiphany_columnar tables".into(),
            ).report();
        }
        // A caller's own scan: a parallel build's (not supported), or a check that reads
        // the rows its MVCC snapshot sees (amcheck's heapallindexed), which also marks
        // the build "concurrent" without being CREATE INDEX CONCURRENTLY.
        let given = !scan.is_null();
        if given && !(*scan).rs_parallel.is_null() {
            Error::NotSupported("parallel index builds on epiphany_columnar tables".into())
                .report();
        }
        if (*info).ii_Concurrent && !given {
            Error::NotSupported("CREATE INDEX CONCURRENTLY on epiphany_columnar tables".into())
                .report();
        }
        if start_block != 0 || numblocks != pg_sys::InvalidBlockNumber {
            Error::NotSupported(
                "block-range index builds (BRIN) on epiphany_columnar tables".into(),
            )
            .report();
        }
        let snapshot = pg_sys::RegisterSnapshot(if given {
            (*scan).rs_snapshot
        } else {
            pg_sys::GetLatestSnapshot()
        });
        let estate = pg_sys::CreateExecutorState();
        let econtext = pg_sys::MakePerTupleExprContext(estate);
        let slot =
            pg_sys::MakeSingleTupleTableSlot((*table).rd_att, &raw const pg_sys::TTSOpsVirtual);
        (*econtext).ecxt_scantuple = slot;
        let predicate = pg_sys::ExecPrepareQual((*info).ii_Predicate, estate);
        let mut values = [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize];
        let mut nulls = [false; pg_sys::INDEX_MAX_KEYS as usize];
        // As heap's build does, a scan handed over is read and ended here.
        let desc = if given {
            scan
        } else {
            crate::am::scan::scan_begin(
                table,
                snapshot,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                pg_sys::ScanOptions::SO_TYPE_SEQSCAN,
            )
        };
        let mut rows = 0f64;
        while crate::am::scan::scan_getnextslot(
            desc,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        ) {
            pgrx::check_for_interrupts!();
            pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
            rows += 1.0;
            if !predicate.is_null() && !pg_sys::ExecQual(predicate, econtext) {
                continue;
            }
            pg_sys::FormIndexDatum(info, slot, estate, values.as_mut_ptr(), nulls.as_mut_ptr());
            if let Some(cb) = callback {
                // The index's build callback can raise an ERROR (a unique violation, out
                // of memory): it unwinds through pgrx's guard, dropping this scan.
                #[allow(ffi_unwind_calls)]
                pg_sys::ffi::pg_guard_ffi_boundary(|| {
                    cb(
                        index,
                        &mut (*slot).tts_tid,
                        values.as_mut_ptr(),
                        nulls.as_mut_ptr(),
                        true,
                        callback_state,
                    )
                });
            }
        }
        crate::am::scan::scan_end(desc);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::FreeExecutorState(estate);
        pg_sys::UnregisterSnapshot(snapshot);
        (*info).ii_ExpressionsState = std::ptr::null_mut();
        (*info).ii_PredicateState = std::ptr::null_mut();
        rows
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_validate_scan(
    _table: pg_sys::Relation,
    _index: pg_sys::Relation,
    _info: *mut pg_sys::IndexInfo,
    _snapshot: pg_sys::Snapshot,
    _state: *mut pg_sys::ValidateIndexState,
) {
    Error::NotSupported("CREATE INDEX CONCURRENTLY on epiphany_columnar tables".into()).report()
}

/// `VACUUM FULL` / `CLUSTER`: every row into the new storage, in new parts. `CLUSTER …
/// USING index` sorts the rows by the index first (heap's tuplesort of a cluster), so row
/// numbers — TIDs — follow the index; each part is still stored sorted by `order_by`.
#[pg_guard]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn copy_for_cluster(
    old: pg_sys::Relation,
    new: pg_sys::Relation,
    old_index: pg_sys::Relation,
    _use_sort: bool,
    _oldest_xmin: pg_sys::TransactionId,
    _xid_cutoff: *mut pg_sys::TransactionId,
    _multi_cutoff: *mut pg_sys::MultiXactId,
    num_tuples: *mut f64,
    tups_vacuumed: *mut f64,
    tups_recently_dead: *mut f64,
) {
    // SAFETY: Postgres passes both relations open and exclusively locked.
    unsafe {
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let slot =
            pg_sys::MakeSingleTupleTableSlot((*old).rd_att, &raw const pg_sys::TTSOpsVirtual);
        let desc = crate::am::scan::scan_begin(
            old,
            snapshot,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            pg_sys::ScanOptions::SO_TYPE_SEQSCAN,
        );
        let cid = pg_sys::GetCurrentCommandId(true);
        let sort = if old_index.is_null() {
            std::ptr::null_mut()
        } else {
            pg_sys::tuplesort_begin_cluster(
                (*old).rd_att,
                old_index,
                pg_sys::maintenance_work_mem,
                std::ptr::null_mut(),
                0, // TUPLESORT_NONE
            )
        };
        let mut rows = 0f64;
        while crate::am::scan::scan_getnextslot(
            desc,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        ) {
            pgrx::check_for_interrupts!();
            if sort.is_null() {
                crate::writes::insert(Rel::new(new), slot, cid);
            } else {
                // The sort copies the tuple into its own memory.
                let mut should_free = false;
                let tuple = pg_sys::ExecFetchSlotHeapTuple(slot, true, &mut should_free);
                pg_sys::tuplesort_putheaptuple(sort, tuple);
                if should_free {
                    pg_sys::heap_freetuple(tuple);
                }
            }
            rows += 1.0;
        }
        crate::am::scan::scan_end(desc);
        if !sort.is_null() {
            pg_sys::tuplesort_performsort(sort);
            loop {
                pgrx::check_for_interrupts!();
                let tuple = pg_sys::tuplesort_getheaptuple(sort, true);
                if tuple.is_null() {
                    break;
                }
                pg_sys::ExecForceStoreHeapTuple(tuple, slot, false);
                crate::writes::insert(Rel::new(new), slot, cid);
            }
            pg_sys::tuplesort_end(sort);
        }
        crate::writes::flush(Rel::new(new), true).or_report_in(Rel::new(new));
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::UnregisterSnapshot(snapshot);
        *num_tuples = rows;
        *tups_vacuumed = 0.0;
        *tups_recently_dead = 0.0;
    }
}
