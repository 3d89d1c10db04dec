//! The flush-before-read gate: a query that reads a table this transaction has buffered
//! rows for flushes them first (at ExecutorStart, the one place every reader passes),
//! and the snapshots of running queries are recorded so flushes in the middle of a
//! transaction cut parts where those queries must not see rows.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{ensure_callbacks, flush_relid, BACKEND};

static mut PREVIOUS_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREVIOUS_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;

pub(super) fn install() {
    // SAFETY: _PG_init on the main thread; the previous hook is chained.
    unsafe {
        PREVIOUS_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREVIOUS_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
    }
}

/// Flushes before a query reads a table this transaction has buffered rows for; a
/// parallel query cannot write once it runs. Records the query's snapshot as live.
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: a valid query descriptor.
    if let Some(curcid) = unsafe { snapshot_command(query) } {
        ensure_callbacks();
        BACKEND.with(|b| b.borrow_mut().snapshots.record(curcid));
    }
    // SAFETY: a valid query descriptor with a planned statement.
    unsafe { refuse_on_conflict((*query).plannedstmt) };
    let pending = BACKEND.with(|b| !b.borrow().writes.is_empty());
    if pending {
        // SAFETY: a valid query descriptor with a planned statement.
        unsafe {
            let stmt = (*query).plannedstmt;
            // An INSERT's target is written, not read: its rows keep buffering (a
            // transaction of many single-row INSERTs makes one part, not one per row).
            let targets = (*stmt).resultRelations;
            let n_targets = if targets.is_null() {
                0
            } else {
                (*targets).length
            };
            let is_target =
                |index: i32| (0..n_targets).any(|i| pg_sys::list_nth_int(targets, i) == index);
            let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
            for (i, rte) in rtable.iter_ptr().enumerate() {
                if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && !is_target(i as i32 + 1) {
                    flush_relid((*rte).relid, true);
                }
            }
        }
    }
    // SAFETY: forwarding to the next hook or the standard implementation; nothing here
    // needs dropping if it raises an error.
    unsafe { epiphany_core::pg::hooks::executor_start(PREVIOUS_EXECUTOR_START, query, eflags) }
    // SAFETY: the query's executor state is built.
    unsafe {
        crate::hooks::needed_columns::read_only_needed_columns(query);
        crate::custom_scan::hash_keys::link(query);
    }
}

/// `INSERT … ON CONFLICT` into a columnar table is refused even where no unique index
/// makes it speculative (Postgres then never asks the access method): conflicts are not
/// supported, and accepting the clause only sometimes would hide that.
///
/// # Safety
/// `stmt` is a valid planned statement.
unsafe fn refuse_on_conflict(stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: per the contract; a ModifyTable node is the root of its (sub)plan.
    unsafe {
        if (*stmt).commandType != pg_sys::CmdType::CMD_INSERT && !(*stmt).hasModifyingCTE {
            return;
        }
        let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
        let subplans = pgrx::PgList::<pg_sys::Plan>::from_pg((*stmt).subplans);
        let roots = std::iter::once((*stmt).planTree).chain(subplans.iter_ptr());
        for plan in roots {
            if plan.is_null() || (*plan).type_ != pg_sys::NodeTag::T_ModifyTable {
                continue;
            }
            let mt = plan as *mut pg_sys::ModifyTable;
            if (*mt).operation != pg_sys::CmdType::CMD_INSERT
                || (*mt).onConflictAction == pg_sys::OnConflictAction::ONCONFLICT_NONE
            {
                continue;
            }
            let targets = pgrx::PgList::<std::ffi::c_void>::from_pg((*mt).resultRelations);
            for index in targets.iter_int() {
                let Some(rte) = rtable.get_ptr(index as usize - 1) else {
                    continue;
                };
                if crate::hooks::options::is_columnar_relation((*rte).relid) {
                    Error::NotSupported("INSERT … ON CONFLICT on epiphany_columnar tables".into())
                        .report();
                }
            }
        }
    }
}

/// The query no longer reads with its snapshot.
#[pg_guard]
unsafe extern "C-unwind" fn executor_end(query: *mut pg_sys::QueryDesc) {
    // SAFETY: a valid query descriptor.
    if let Some(curcid) = unsafe { snapshot_command(query) } {
        BACKEND.with(|b| b.borrow_mut().snapshots.release(curcid));
    }
    // SAFETY: as in executor_start.
    unsafe { epiphany_core::pg::hooks::executor_end(PREVIOUS_EXECUTOR_END, query) }
}

/// The command id of the snapshot `query` reads with, if it has one.
///
/// # Safety
/// `query` is a valid query descriptor.
unsafe fn snapshot_command(query: *mut pg_sys::QueryDesc) -> Option<u32> {
    // SAFETY: per the contract; the snapshot is registered while the query lives.
    unsafe {
        let snapshot = (*query).snapshot;
        (!snapshot.is_null()).then(|| (*snapshot).curcid)
    }
}
