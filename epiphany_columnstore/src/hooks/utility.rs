//! The utility hook: what `CREATE TABLE`, `CREATE TABLE … AS`, `ALTER TABLE` and the
//! index-building statements do differently for columnar tables. Our table options are
//! taken out of the statement before Postgres sees them and stored after it succeeded
//! (see `options`); `ALTER TABLE … SET/RESET` is handled here entirely; `RENAME COLUMN`
//! makes `order_by` follow; index builds over columnar tables run serially.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::cell::RefCell;
use std::ffi::CStr;

use epiphany_core::columnar::options::{merge_set_reset, merge_table_options};
use epiphany_core::columnar::TableOptions;
use epiphany_core::pg::OrReport;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::options::*;

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// What the hook keeps for one running utility statement while Postgres executes it.
#[derive(Default)]
pub(super) struct Frame {
    /// Options of the columnar table the statement is creating: a `CREATE TABLE … AS`
    /// fills the table before the options can be stored.
    pub(super) creating: Option<TableOptions>,
    /// Work to do once the statement has succeeded (storing the options).
    after: Option<Box<dyn FnOnce()>>,
}

thread_local! {
    /// One frame per utility statement running, innermost last. Postgres's errors pass
    /// through the hook untouched (`epiphany_core::pg::hooks`), so a failed statement
    /// leaves its frame behind: the enclosing statement's return cuts the stack back to
    /// its own frame, and a top-level statement starts from an empty stack.
    pub(super) static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

pub fn install() {
    // SAFETY: _PG_init runs once per backend on the main thread; the previous hook is
    // kept and called.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    if context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL {
        FRAMES.with(|f| f.borrow_mut().clear());
    }
    // SAFETY: Postgres's statement; see `prepare`.
    let Some((pstmt, frame, serial_index_build)) = (unsafe { prepare(pstmt, read_only_tree) })
    else {
        return;
    };
    let depth = FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        f.push(frame);
        f.len() - 1
    });
    // SAFETY: forwarding Postgres's arguments (the statement possibly copied and
    // stripped of our options); this frame holds nothing that needs dropping if the
    // statement raises an error, which passes through untouched.
    unsafe {
        epiphany_core::pg::hooks::process_utility(
            PREVIOUS,
            pstmt,
            query,
            read_only_tree,
            context,
            params,
            env,
            dest,
            qc,
        )
    };
    let frame = FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        f.truncate(depth + 1);
        f.pop().unwrap_or_default()
    });
    if let Some(level) = serial_index_build {
        // Restores the setting (on error, transaction abort restores it).
        // SAFETY: the nest level opened in `prepare`.
        unsafe { pg_sys::AtEOXact_GUC(true, level) };
    }
    if let Some(after) = frame.after {
        after();
    }
}

/// Our part of a utility statement before Postgres runs it: the statement to run (our
/// options taken out of a copy), the frame to keep while it runs, and the GUC nest level
/// opened for a serial index build. `None`: handled entirely here.
///
/// # Safety
/// `pstmt` is the valid statement Postgres passed the hook.
unsafe fn prepare(
    pstmt: *mut pg_sys::PlannedStmt,
    read_only_tree: bool,
) -> Option<(*mut pg_sys::PlannedStmt, Frame, Option<i32>)> {
    // SAFETY: per the contract; we copy the statement before changing it when the tree
    // is read-only.
    unsafe {
        let mut pstmt = pstmt;
        let mut frame = Frame::default();
        let mut serial_index_build: Option<i32> = None;
        let node = (*pstmt).utilityStmt;
        match (*node).type_ {
            pg_sys::NodeTag::T_CreateStmt => {
                let stmt = node as *mut pg_sys::CreateStmt;
                if is_columnar_am((*stmt).accessMethod) {
                    let (ours, _) = split((*stmt).options);
                    if !ours.is_empty() {
                        let options = parse(&ours);
                        if read_only_tree {
                            pstmt = pg_sys::copyObjectImpl(pstmt as _) as _;
                        }
                        let stmt = (*pstmt).utilityStmt as *mut pg_sys::CreateStmt;
                        (*stmt).options = split((*stmt).options).1;
                        let relation =
                            pg_sys::copyObjectImpl((*stmt).relation as _) as *mut pg_sys::RangeVar;
                        // IF NOT EXISTS on an existing table changes nothing, options included.
                        let existed = (*stmt).if_not_exists
                            && relid_of(relation, pg_sys::NoLock as _, true) != pg_sys::InvalidOid;
                        if !existed {
                            frame.after = Some(Box::new(move || {
                                let relid = relid_of(relation, pg_sys::NoLock as _, false);
                                check_columns(relid, &options);
                                store(relid, &options, None);
                            }));
                        }
                    }
                }
            }
            pg_sys::NodeTag::T_CreateTableAsStmt => {
                let stmt = node as *mut pg_sys::CreateTableAsStmt;
                let into = (*stmt).into;
                if !into.is_null() && is_columnar_am((*into).accessMethod) {
                    let (ours, _) = split((*into).options);
                    if !ours.is_empty() {
                        let options = parse(&ours);
                        if read_only_tree {
                            pstmt = pg_sys::copyObjectImpl(pstmt as _) as _;
                        }
                        let stmt = (*pstmt).utilityStmt as *mut pg_sys::CreateTableAsStmt;
                        (*(*stmt).into).options = split((*(*stmt).into).options).1;
                        let relation = pg_sys::copyObjectImpl((*(*stmt).into).rel as _)
                            as *mut pg_sys::RangeVar;
                        frame.creating = Some(options.clone());
                        frame.after = Some(Box::new(move || {
                            let relid = relid_of(relation, pg_sys::NoLock as _, false);
                            if relid != pg_sys::InvalidOid {
                                check_columns(relid, &options);
                                store(relid, &options, None);
                            }
                        }));
                    }
                }
            }
            // ANALYZE counts a table's blocks before it scans: rows this transaction
            // buffered must be in parts by then.
            pg_sys::NodeTag::T_VacuumStmt
            | pg_sys::NodeTag::T_IndexStmt
            | pg_sys::NodeTag::T_ReindexStmt
            | pg_sys::NodeTag::T_ClusterStmt => {
                crate::writes::flush_all();
                // Index builds on columnar tables are serial: a parallel build scans with
                // SnapshotAny in parallel mode, where no fresh snapshot can be taken to
                // tell committed parts from aborted ones. Statements that build indexes
                // of many tables (REINDEX SCHEMA, VACUUM FULL of a database, …) build
                // them all serially.
                if builds_columnar_indexes(node) {
                    serial_index_build = Some(pg_sys::NewGUCNestLevel());
                    pg_sys::set_config_option(
                        c"max_parallel_maintenance_workers".as_ptr(),
                        c"0".as_ptr(),
                        pg_sys::GucContext::PGC_USERSET,
                        pg_sys::GucSource::PGC_S_SESSION,
                        pg_sys::GucAction::GUC_ACTION_SAVE,
                        true,
                        0,
                        false,
                    );
                }
            }
            pg_sys::NodeTag::T_AlterTableStmt
                if alter_table(node as *mut pg_sys::AlterTableStmt) == Some(true) =>
            {
                return None;
            }
            pg_sys::NodeTag::T_RenameStmt => {
                let stmt = node as *mut pg_sys::RenameStmt;
                if (*stmt).renameType == pg_sys::ObjectType::OBJECT_COLUMN
                    && !(*stmt).relation.is_null()
                {
                    let relation =
                        pg_sys::copyObjectImpl((*stmt).relation as _) as *mut pg_sys::RangeVar;
                    let old = CStr::from_ptr((*stmt).subname)
                        .to_string_lossy()
                        .into_owned();
                    let new = CStr::from_ptr((*stmt).newname)
                        .to_string_lossy()
                        .into_owned();
                    frame.after = Some(Box::new(move || {
                        follow_column_rename(relation, &old, &new);
                    }));
                }
            }
            _ => {}
        }
        Some((pstmt, frame, serial_index_build))
    }
}

/// `ALTER TABLE t SET (…)` / `RESET (…)` on a columnar table: handled here entirely
/// (`Some(true)`), ours and Postgres's table options alike — Postgres's own code would
/// validate the stored list, ours included, and refuse it. Postgres's options are
/// validated as it would (an unknown name is an error naming it; resetting an unknown
/// name does nothing). Other ALTER TABLE actions in the same statement are refused.
unsafe fn alter_table(stmt: *mut pg_sys::AlterTableStmt) -> Option<bool> {
    // SAFETY: a valid statement; the relation is locked as ALTER TABLE would before it
    // is changed.
    unsafe {
        let cmds = pgrx::PgList::<pg_sys::AlterTableCmd>::from_pg((*stmt).cmds);
        let mut ours = Vec::new();
        let mut reset = Vec::new();
        let mut heap_set: Vec<(String, String)> = Vec::new();
        let mut heap_reset: Vec<String> = Vec::new();
        let mut options_cmds = false;
        let mut others = false;
        let mut namespaced = false;
        for cmd in cmds.iter_ptr() {
            let subtype = (*cmd).subtype;
            let is_set = subtype == pg_sys::AlterTableType::AT_SetRelOptions;
            if !is_set && subtype != pg_sys::AlterTableType::AT_ResetRelOptions {
                others = true;
                continue;
            }
            options_cmds = true;
            let (mine, rest) = split((*cmd).def as *mut pg_sys::List);
            for def in pgrx::PgList::<pg_sys::DefElem>::from_pg(rest).iter_ptr() {
                namespaced |= !(*def).defnamespace.is_null();
            }
            let rest = def_pairs(rest);
            if is_set {
                ours.extend(mine);
                heap_set.extend(rest);
            } else {
                reset.extend(mine.into_iter().map(|(k, _)| k));
                heap_reset.extend(rest.into_iter().map(|(k, _)| k));
            }
        }
        if !options_cmds {
            return None;
        }
        let relid = relid_of((*stmt).relation, pg_sys::NoLock as _, true);
        if relid == pg_sys::InvalidOid || !is_columnar_relation(relid) {
            return None;
        }
        let relid = relid_of(
            (*stmt).relation,
            pg_sys::AccessExclusiveLock as _,
            (*stmt).missing_ok,
        );
        if others {
            Error::NotSupported(
                "changing table options together with other ALTER TABLE actions in one statement on an epiphany_columnar table"
                    .into(),
            )
            .report();
        }
        if namespaced {
            Error::NotSupported("toast.* options on epiphany_columnar tables".into()).report();
        }
        #[cfg(not(feature = "pg15"))]
        let owner =
            pg_sys::object_ownercheck(pg_sys::RelationRelationId, relid, pg_sys::GetUserId());
        #[cfg(feature = "pg15")]
        let owner = pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId());
        if !owner {
            pg_sys::aclcheck_error(
                pg_sys::AclResult::ACLCHECK_NOT_OWNER,
                pg_sys::ObjectType::OBJECT_TABLE,
                pg_sys::get_rel_name(relid),
            );
        }
        let heap = merge_set_reset(stored_pairs(relid, false), heap_set, &heap_reset);
        validate_heap_options(&heap);
        let pairs = merge_table_options(stored_pairs(relid, true), ours, &reset);
        let options = parse(&pairs);
        check_columns(relid, &options);
        store(relid, &options, Some(&heap));
        Some(true)
    }
}

/// After `ALTER TABLE … RENAME COLUMN old TO new` (of `relation` and, unless `ONLY`,
/// the tables that inherit from it): `order_by` of every columnar table among them
/// names the column by its new name. Options keep names, not column numbers, so that
/// `pg_dump` writes them back as they read.
fn follow_column_rename(relation: *mut pg_sys::RangeVar, old: &str, new: &str) {
    // SAFETY: the renamed relation is locked by the RENAME; catalog lookups on the main
    // thread.
    unsafe {
        let relid = relid_of(relation, pg_sys::NoLock as _, true);
        if relid == pg_sys::InvalidOid {
            return;
        }
        let relids = if (*relation).inh {
            inheritors(relid)
        } else {
            vec![relid]
        };
        for relid in relids {
            if !is_columnar_relation(relid) {
                continue;
            }
            let mut options = of_relation(relid).or_report();
            if !options.order_by.iter().any(|c| c == old) {
                continue;
            }
            for c in options.order_by.iter_mut().filter(|c| *c == old) {
                *c = new.to_string();
            }
            store(relid, &options, None);
        }
    }
}

/// Whether `node` (a utility statement that may build indexes) may build an index of a
/// columnar table.
///
/// # Safety
/// `node` is a parsed utility statement; main thread, in a transaction.
unsafe fn builds_columnar_indexes(node: *mut pg_sys::Node) -> bool {
    let columnar = |rv: *mut pg_sys::RangeVar| {
        if rv.is_null() {
            return false;
        }
        // SAFETY: a RangeVar of the statement; a missing relation is not ours.
        let relid = unsafe { relid_of(rv, pg_sys::NoLock as _, true) };
        relid != pg_sys::InvalidOid && is_columnar_relation(relid)
    };
    // SAFETY (all arms): the node's tag says which statement it is.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_IndexStmt => columnar((*(node as *mut pg_sys::IndexStmt)).relation),
            pg_sys::NodeTag::T_ReindexStmt => {
                let stmt = node as *mut pg_sys::ReindexStmt;
                match (*stmt).kind {
                    pg_sys::ReindexObjectType::REINDEX_OBJECT_TABLE => columnar((*stmt).relation),
                    pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX => {
                        let index = relid_of((*stmt).relation, pg_sys::NoLock as _, true);
                        index != pg_sys::InvalidOid && {
                            let table = pg_sys::IndexGetRelation(index, true);
                            table != pg_sys::InvalidOid && is_columnar_relation(table)
                        }
                    }
                    _ => true,
                }
            }
            pg_sys::NodeTag::T_ClusterStmt => {
                let rv = (*(node as *mut pg_sys::ClusterStmt)).relation;
                rv.is_null() || columnar(rv)
            }
            pg_sys::NodeTag::T_VacuumStmt => {
                let rels = pgrx::PgList::<pg_sys::VacuumRelation>::from_pg(
                    (*(node as *mut pg_sys::VacuumStmt)).rels,
                );
                rels.is_empty() || rels.iter_ptr().any(|r| columnar((*r).relation))
            }
            _ => false,
        }
    }
}
