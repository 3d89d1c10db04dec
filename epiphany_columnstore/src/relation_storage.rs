//! Creating and truncating a columnar relation's storage: the table-AM callbacks that
//! deal with files, not rows.
//!
//! The storage of a new relfilenode starts empty; the metapage is written with the first
//! part (see `epiphany_core::storage::metapage`), so creating a table writes no WAL of
//! ours. Until the access method itself lands, these callbacks serve the storage-only
//! access method that the `#[pg_test]`s register to exercise the page store.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// What names a relation's storage: `RelFileLocator` since PostgreSQL 16, `RelFileNode`
/// before.
#[cfg(not(feature = "pg15"))]
pub type StorageLocator = pg_sys::RelFileLocator;
#[cfg(feature = "pg15")]
pub type StorageLocator = pg_sys::RelFileNode;

/// `relation_set_new_filelocator` (PostgreSQL 16+) / `relation_set_new_filenode` (15).
#[pg_guard]
pub unsafe extern "C-unwind" fn set_new_storage(
    _rel: pg_sys::Relation,
    locator: *const StorageLocator,
    persistence: std::ffi::c_char,
    freeze_xid: *mut pg_sys::TransactionId,
    min_multi: *mut pg_sys::MultiXactId,
) {
    // SAFETY: Postgres passes valid pointers; storage is created for the new locator.
    unsafe {
        check_persistence(persistence);
        *freeze_xid = pg_sys::InvalidTransactionId;
        *min_multi = pg_sys::InvalidTransactionId; // InvalidMultiXactId: also 0
        pg_sys::RelationCreateStorage(*locator, persistence, true);
    }
}

fn check_persistence(persistence: std::ffi::c_char) {
    if persistence as u8 == pg_sys::RELPERSISTENCE_UNLOGGED {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "unlogged epiphany_columnar tables are not supported yet"
        );
    }
}

/// `relation_nontransactional_truncate`: TRUNCATE of a table created (or truncated) in
/// the same transaction. Dropping every block drops the metapage too, so the next write
/// starts new storage with a new storage id and the old parts' catalog rows match nothing.
#[pg_guard]
pub unsafe extern "C-unwind" fn truncate_now(rel: pg_sys::Relation) {
    // SAFETY: Postgres holds AccessExclusiveLock on `rel` for a truncate.
    unsafe { pg_sys::RelationTruncate(rel, 0) };
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_size(
    rel: pg_sys::Relation,
    fork: pg_sys::ForkNumber::Type,
) -> u64 {
    // SAFETY: an open relation; the block-based helper suits any smgr-backed AM.
    unsafe { pg_sys::table_block_relation_size(rel, fork) }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn needs_toast_table(_rel: pg_sys::Relation) -> bool {
    // Values are stored inside parts, detoasted; a TOAST table would never be used.
    false
}
