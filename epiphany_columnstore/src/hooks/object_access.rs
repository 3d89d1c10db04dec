//! The object access hook: what happens to columnar tables through the catalog, whichever
//! statement does it.
//!
//! - `DROP TABLE` of a columnar table deletes its parts' catalog rows (in the dropping
//!   transaction, so an aborted DROP keeps them). The dropped relation's pages go with
//!   its files, as for any table.
//! - A column added to or dropped from a columnar table is refused: parts store the
//!   columns they were written with, and reading them with another column list is not
//!   supported yet. The hook sees every way a column comes or goes — `ALTER TABLE` of the
//!   table, of a partitioned or inheritance parent, `ALTER TYPE … CASCADE` of a typed
//!   table, a `DROP … CASCADE` that reaches a column — where a utility hook would have to
//!   know each statement.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::Rel;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREVIOUS: pg_sys::object_access_hook_type = None;

pub fn install() {
    // SAFETY: _PG_init on the main thread; the previous hook is chained.
    unsafe {
        PREVIOUS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: i32,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: forwarding Postgres's arguments; the relation being dropped is locked by
    // the DROP and still exists while the hook runs.
    unsafe {
        // First, while this frame holds nothing to drop (see `hooks`).
        epiphany_core::pg::hooks::object_access(PREVIOUS, access, class_id, object_id, sub_id, arg);
        if class_id != pg_sys::RelationRelationId
            || !matches!(
                access,
                pg_sys::ObjectAccessType::OAT_DROP | pg_sys::ObjectAccessType::OAT_POST_CREATE
            )
            || !crate::hooks::options::is_columnar_relation(object_id)
        {
            return;
        }
        if sub_id > 0 {
            let what = if access == pg_sys::ObjectAccessType::OAT_DROP {
                "dropping a column of"
            } else {
                "adding a column to"
            };
            let name = std::ffi::CStr::from_ptr(pg_sys::get_rel_name(object_id)).to_string_lossy();
            Error::NotSupported(format!(
                "{what} epiphany_columnar table \"{name}\" (create a new table with CREATE TABLE … AS)"
            ))
            .report();
        }
        if access == pg_sys::ObjectAccessType::OAT_DROP
            && sub_id == 0
            && crate::storage::catalog::object_oid(c"columnar_parts").is_ok()
        {
            let rel = pg_sys::relation_open(object_id, pg_sys::AccessExclusiveLock as _);
            crate::am::relation_storage::forget_storage(Rel::new(rel));
            pg_sys::relation_close(rel, pg_sys::NoLock as _);
        }
    }
}
