//! `WITH (order_by = …, …)` on columnar tables.
//!
//! Table access methods get no reloptions of their own: heap's parser validates every
//! table's `WITH` list and rejects names it does not know. So a utility hook takes our
//! names out of `CREATE TABLE`, `CREATE TABLE … AS` and `ALTER TABLE … SET/RESET` on
//! columnar tables, validates them (errors name the option, SQLSTATE 22023), lets
//! Postgres do the rest, and then stores them, normalized, in `pg_class.reloptions`.
//! There heap's reader ignores them (it does not validate stored options), `\d+` shows
//! them and `pg_dump` writes them back into `CREATE TABLE … WITH (…)`, which this hook
//! reads on restore. It needs the library preloaded, which the launcher needs anyway.

use std::cell::RefCell;
use std::ffi::{CStr, CString};

use epiphany_core::columnar::options::OPTION_NAMES;
use epiphany_core::columnar::TableOptions;
use epiphany_core::pg::OrReport;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

pub const AM_NAME: &str = "epiphany_columnar";

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// What the hook keeps for one running utility statement while Postgres executes it.
#[derive(Default)]
struct Frame {
    /// Options of the columnar table the statement is creating: a `CREATE TABLE … AS`
    /// fills the table before the options can be stored.
    creating: Option<TableOptions>,
    /// Work to do once the statement has succeeded (storing the options).
    after: Option<Box<dyn FnOnce()>>,
}

thread_local! {
    /// One frame per utility statement running, innermost last. Postgres's errors pass
    /// through the hook untouched (`epiphany_core::pg::hooks`), so a failed statement
    /// leaves its frame behind: the enclosing statement's return cuts the stack back to
    /// its own frame, and a top-level statement starts from an empty stack.
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

pub fn install() {
    // SAFETY: _PG_init runs once per backend on the main thread; the previous hook is
    // kept and called.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// Options of relation `relid`: its stored options, or those of the statement creating it.
///
/// # Safety
/// Main thread; `relid` names an existing relation.
pub unsafe fn of_relation(relid: pg_sys::Oid) -> Result<TableOptions, Error> {
    // SAFETY: per the contract.
    let stored = unsafe { stored_pairs(relid, true) };
    if stored.is_empty() {
        if let Some(creating) = FRAMES.with(|f| f.borrow().last().and_then(|f| f.creating.clone()))
        {
            return Ok(creating);
        }
    }
    TableOptions::parse(stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Our name/value pairs among `pg_class.reloptions` of `relid` (`ours`), or Postgres's.
unsafe fn stored_pairs(relid: pg_sys::Oid, ours: bool) -> Vec<(String, String)> {
    // SAFETY: syscache lookup and release on the main thread.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(relid),
        );
        if tuple.is_null() {
            return Vec::new();
        }
        let mut isnull = false;
        let datum = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::RELOID as _,
            tuple,
            pg_sys::Anum_pg_class_reloptions as _,
            &mut isnull,
        );
        let pairs = if isnull {
            Vec::new()
        } else {
            def_pairs(pg_sys::untransformRelOptions(datum))
                .into_iter()
                .filter(|(k, _)| is_ours(k) == ours)
                .collect()
        };
        pg_sys::ReleaseSysCache(tuple);
        pairs
    }
}

fn is_ours(name: &str) -> bool {
    OPTION_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// (name, value) of each `DefElem` of a list.
unsafe fn def_pairs(list: *mut pg_sys::List) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // SAFETY: a valid List of DefElem (or NIL).
    unsafe {
        let list = pgrx::PgList::<pg_sys::DefElem>::from_pg(list);
        for def in list.iter_ptr() {
            let name = CStr::from_ptr((*def).defname)
                .to_string_lossy()
                .into_owned();
            let value = if (*def).arg.is_null() {
                String::new()
            } else {
                CStr::from_ptr(pg_sys::defGetString(def))
                    .to_string_lossy()
                    .into_owned()
            };
            out.push((name, value));
        }
    }
    out
}

/// Splits a `WITH` list into ours and the rest (a new list; the input is not changed).
unsafe fn split(list: *mut pg_sys::List) -> (Vec<(String, String)>, *mut pg_sys::List) {
    let mut ours = Vec::new();
    let mut rest = pgrx::PgList::<pg_sys::DefElem>::new();
    // SAFETY: a valid List of DefElem (or NIL).
    unsafe {
        for def in pgrx::PgList::<pg_sys::DefElem>::from_pg(list).iter_ptr() {
            let name = CStr::from_ptr((*def).defname)
                .to_string_lossy()
                .into_owned();
            if (*def).defnamespace.is_null() && is_ours(&name) {
                let value = if (*def).arg.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(pg_sys::defGetString(def))
                        .to_string_lossy()
                        .into_owned()
                };
                ours.push((name.to_ascii_lowercase(), value));
            } else {
                rest.push(def);
            }
        }
    }
    (ours, rest.into_pg())
}

fn parse(pairs: &[(String, String)]) -> TableOptions {
    TableOptions::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).or_report()
}

/// The relation `rv` names (InvalidOid when missing and `missing_ok`), locked in `lockmode`.
///
/// # Safety
/// `rv` must be a valid RangeVar.
unsafe fn relid_of(
    rv: *mut pg_sys::RangeVar,
    lockmode: pg_sys::LOCKMODE,
    missing_ok: bool,
) -> pg_sys::Oid {
    let flags = if missing_ok {
        pg_sys::RVROption::RVR_MISSING_OK
    } else {
        0
    };
    // SAFETY: per the contract; no callback.
    unsafe { pg_sys::RangeVarGetRelidExtended(rv, lockmode, flags, None, std::ptr::null_mut()) }
}

/// Whether a table created with access method `am` (NULL: the default) is columnar.
unsafe fn is_columnar_am(am: *const std::ffi::c_char) -> bool {
    // SAFETY: `am` is NULL or a C string; the GUC value is a C string while set.
    unsafe {
        let name = if am.is_null() {
            let default =
                pg_sys::GetConfigOption(c"default_table_access_method".as_ptr(), true, false);
            if default.is_null() {
                return false;
            }
            CStr::from_ptr(default)
        } else {
            CStr::from_ptr(am)
        };
        name.to_bytes() == AM_NAME.as_bytes()
    }
}

/// Whether relation `relid` uses the columnar access method.
pub fn is_columnar_relation(relid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups on the main thread.
    unsafe {
        let am = pg_sys::get_am_oid(c"epiphany_columnar".as_ptr(), true);
        if am == pg_sys::InvalidOid {
            return false;
        }
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(relid),
        );
        if tuple.is_null() {
            return false;
        }
        let form = pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_class;
        let ours = (*form).relam == am;
        pg_sys::ReleaseSysCache(tuple);
        ours
    }
}

/// Stores `options` in `pg_class.reloptions` of `relid`, with Postgres's own options
/// `heap` (`None`: those stored are kept).
fn store(relid: pg_sys::Oid, options: &TableOptions, heap: Option<&[(String, String)]>) {
    // SAFETY: pg_class is opened, its row for `relid` copied, modified and updated with
    // the catalog helpers, then closed; all on the main thread inside a transaction.
    unsafe {
        let class = pg_sys::table_open(pg_sys::RelationRelationId, pg_sys::RowExclusiveLock as _);
        let tuple = pg_sys::SearchSysCacheCopy(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(relid),
            0.into(),
            0.into(),
            0.into(),
        );
        if tuple.is_null() {
            error!("cache lookup failed for relation {}", relid.to_u32());
        }
        let mut all = match heap {
            Some(heap) => heap.to_vec(),
            None => {
                let mut isnull = false;
                let old = pg_sys::heap_getattr(
                    tuple,
                    pg_sys::Anum_pg_class_reloptions as _,
                    (*class).rd_att,
                    &mut isnull,
                );
                if isnull {
                    Vec::new()
                } else {
                    def_pairs(pg_sys::untransformRelOptions(old))
                        .into_iter()
                        .filter(|(k, _)| !is_ours(k))
                        .collect()
                }
            }
        };
        all.extend(options.to_pairs());
        let datum = pg_sys::transformRelOptions(
            pg_sys::Datum::from(0usize),
            def_list(&all),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            false,
            false,
        );
        let natts = pg_sys::Natts_pg_class as usize;
        let mut values = vec![pg_sys::Datum::from(0usize); natts];
        let mut nulls = vec![false; natts];
        let mut replace = vec![false; natts];
        let i = pg_sys::Anum_pg_class_reloptions as usize - 1;
        values[i] = datum;
        nulls[i] = datum.is_null();
        replace[i] = true;
        let new = pg_sys::heap_modify_tuple(
            tuple,
            (*class).rd_att,
            values.as_mut_ptr(),
            nulls.as_mut_ptr(),
            replace.as_mut_ptr(),
        );
        pg_sys::CatalogTupleUpdate(class, &mut (*new).t_self, new);
        pg_sys::heap_freetuple(new);
        pg_sys::table_close(class, pg_sys::RowExclusiveLock as _);
        pg_sys::CommandCounterIncrement();
    }
}

/// Checks `options` against the columns of `relid` (`order_by` names must exist).
fn check_columns(relid: pg_sys::Oid, options: &TableOptions) {
    // SAFETY: the relation exists (just created or altered); opened and closed here.
    unsafe {
        let rel = pg_sys::relation_open(relid, pg_sys::AccessShareLock as _);
        let desc = (*rel).rd_att;
        let names: Vec<String> = (0..(*desc).natts as usize)
            .map(|i| crate::convert::table::tuple_desc_attr(desc, i))
            .filter(|a| !(**a).attisdropped)
            .map(|a| {
                CStr::from_ptr((*a).attname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        options.resolve_order_by(&names).or_report();
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
        let mut heap: Vec<(String, String)> = stored_pairs(relid, false)
            .into_iter()
            .filter(|(k, _)| !heap_reset.iter().any(|r| r.eq_ignore_ascii_case(k)))
            .filter(|(k, _)| !heap_set.iter().any(|(o, _)| o.eq_ignore_ascii_case(k)))
            .collect();
        heap.extend(heap_set);
        validate_heap_options(&heap);
        let mut pairs: Vec<(String, String)> = stored_pairs(relid, true)
            .into_iter()
            .filter(|(k, _)| !reset.iter().any(|r| r.eq_ignore_ascii_case(k)))
            .filter(|(k, _)| !ours.iter().any(|(o, _)| o.eq_ignore_ascii_case(k)))
            .collect();
        // A new (or reset) codec starts from its own default level unless one is given.
        let sets_level = ours.iter().any(|(k, _)| k == "compression_level");
        if reset.iter().any(|r| r == "compression")
            || (ours.iter().any(|(k, _)| k == "compression") && !sets_level)
        {
            pairs.retain(|(k, _)| k != "compression_level");
        }
        pairs.extend(ours);
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

/// `relid` and every table that inherits from it, at any depth (partitions included).
pub fn inheritors(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    Spi::connect(|c| {
        c.select(
            "WITH RECURSIVE t(r) AS (SELECT $1 UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN t ON i.inhparent = t.r) SELECT r FROM t",
            None,
            &[relid.into()],
        )
        .map(|rows| rows.filter_map(|r| r.get::<pg_sys::Oid>(1).ok().flatten()).collect())
    })
    .map_err(|e| Error::Internal(format!("listing the tables inheriting from {}: {e}", relid.to_u32())))
    .or_report()
}

/// A `DefElem` list of `pairs`, in the current memory context.
fn def_list(pairs: &[(String, String)]) -> *mut pg_sys::List {
    let mut list = pgrx::PgList::<pg_sys::DefElem>::new();
    for (k, v) in pairs {
        let name = CString::new(k.as_str()).expect("option names have no NUL");
        let value = CString::new(v.as_str()).expect("option values have no NUL");
        // SAFETY: palloc'd copies of the strings, on the main thread.
        unsafe {
            let node = pg_sys::makeString(pg_sys::pstrdup(value.as_ptr()));
            list.push(pg_sys::makeDefElem(
                pg_sys::pstrdup(name.as_ptr()),
                node as _,
                -1,
            ));
        }
    }
    list.into_pg()
}

/// Checks Postgres's own table options as `ALTER TABLE` would (raising its errors).
fn validate_heap_options(pairs: &[(String, String)]) {
    // SAFETY: Postgres's reloption parsing of a list we built, on the main thread.
    unsafe {
        let datum = pg_sys::transformRelOptions(
            pg_sys::Datum::from(0usize),
            def_list(pairs),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            false,
            false,
        );
        pg_sys::heap_reloptions(pg_sys::RELKIND_RELATION as _, datum, true);
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
