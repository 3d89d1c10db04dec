//! `DROP TABLE` of a columnar table deletes its parts' catalog rows (in the dropping
//! transaction, so an aborted DROP keeps them). The dropped relation's pages go with its
//! files, as for any table.

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
        if let Some(previous) = PREVIOUS {
            previous(access, class_id, object_id, sub_id, arg);
        }
        if access == pg_sys::ObjectAccessType::OAT_DROP
            && class_id == pg_sys::RelationRelationId
            && sub_id == 0
            && crate::options::is_columnar_relation(object_id)
            && crate::catalog::object_oid(c"columnar_parts").is_ok()
        {
            let rel = pg_sys::relation_open(object_id, pg_sys::AccessExclusiveLock as _);
            crate::relation_storage::forget_storage(rel);
            pg_sys::relation_close(rel, pg_sys::NoLock as _);
        }
    }
}
