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

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::ffi::{CStr, CString};

use epiphany_core::columnar::options::OPTION_NAMES;
use epiphany_core::columnar::TableOptions;
use epiphany_core::pg::OrReport;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

pub const AM_NAME: &str = "epiphany_columnar";

/// Options of relation `relid`: its stored options, or those of the statement creating it.
pub fn of_relation(relid: pg_sys::Oid) -> Result<TableOptions, Error> {
    let stored = stored_pairs(relid, true);
    if stored.is_empty() {
        if let Some(creating) =
            super::utility::FRAMES.with(|f| f.borrow().last().and_then(|f| f.creating.clone()))
        {
            return Ok(creating);
        }
    }
    TableOptions::parse(stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Our name/value pairs among `pg_class.reloptions` of `relid` (`ours`), or Postgres's
/// (none for a relation that does not exist).
pub(super) fn stored_pairs(relid: pg_sys::Oid, ours: bool) -> Vec<(String, String)> {
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

pub(super) fn is_ours(name: &str) -> bool {
    OPTION_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// (name, value) of each `DefElem` of a list.
pub(super) unsafe fn def_pairs(list: *mut pg_sys::List) -> Vec<(String, String)> {
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
pub(super) unsafe fn split(list: *mut pg_sys::List) -> (Vec<(String, String)>, *mut pg_sys::List) {
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

pub(super) fn parse(pairs: &[(String, String)]) -> TableOptions {
    TableOptions::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).or_report()
}

/// The relation `rv` names (InvalidOid when missing and `missing_ok`), locked in `lockmode`.
///
/// # Safety
/// `rv` must be a valid RangeVar.
pub(super) unsafe fn relid_of(
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
pub(super) unsafe fn is_columnar_am(am: *const std::ffi::c_char) -> bool {
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
pub(super) fn store(relid: pg_sys::Oid, options: &TableOptions, heap: Option<&[(String, String)]>) {
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
pub(super) fn check_columns(relid: pg_sys::Oid, options: &TableOptions) {
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
pub(super) fn def_list(pairs: &[(String, String)]) -> *mut pg_sys::List {
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
pub(super) fn validate_heap_options(pairs: &[(String, String)]) {
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
