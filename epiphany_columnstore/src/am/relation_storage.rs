//! Creating and truncating a columnar relation's storage: the table-AM callbacks that
//! deal with files, not rows.
//!
//! The storage of a new relfilenode starts empty; the metapage is written with the first
//! row (see `meta`), so creating a table writes no WAL of ours. When storage is replaced
//! (TRUNCATE, a rewrite), the old storage's catalog rows are deleted in the same
//! transaction, so they come back if it aborts, and rows buffered for it are dropped.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::OrReportIn;
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
    rel: pg_sys::Relation,
    locator: *const StorageLocator,
    persistence: std::ffi::c_char,
    freeze_xid: *mut pg_sys::TransactionId,
    min_multi: *mut pg_sys::MultiXactId,
) {
    // SAFETY: Postgres passes valid pointers; storage is created for the new locator.
    unsafe {
        check_persistence(persistence);
        // A new relation is created with its own locator; anything else replaces
        // existing storage.
        if !std::ptr::eq(locator, (*rel).rd_locator_field()) {
            forget_storage(Rel::new(rel));
        }
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

/// Deletes the catalog rows of `rel`'s current storage and its buffered rows (`rel` is
/// exclusively locked, with existing storage).
pub fn forget_storage(rel: Rel<'_>) {
    crate::writes::discard(rel.oid());
    if !crate::hooks::options::is_columnar_relation(rel.oid())
        || crate::storage::catalog::object_oid(c"columnar_parts").is_err()
    {
        return;
    }
    if let Some(storage) = crate::storage::meta::storage_id(rel).or_report_in(rel) {
        crate::storage::catalog::delete_storage(storage).or_report_in(rel);
    }
}

/// The relation's own locator field, by version.
trait LocatorField {
    fn rd_locator_field(&self) -> &StorageLocator;
}

impl LocatorField for pg_sys::RelationData {
    fn rd_locator_field(&self) -> &StorageLocator {
        #[cfg(not(feature = "pg15"))]
        {
            &self.rd_locator
        }
        #[cfg(feature = "pg15")]
        {
            &self.rd_node
        }
    }
}

/// `relation_copy_data`: `ALTER TABLE … SET TABLESPACE`. The pages move as they are, so
/// the metapage (and its storage id) come along and the catalog rows stay valid.
#[pg_guard]
pub unsafe extern "C-unwind" fn copy_data(rel: pg_sys::Relation, locator: *const StorageLocator) {
    // SAFETY: Postgres holds AccessExclusiveLock; the new storage is created, filled
    // block by block (WAL-logged by RelationCopyStorage) and the old one scheduled for
    // deletion at commit, as heap does.
    unsafe {
        let persistence = (*(*rel).rd_rel).relpersistence;
        pg_sys::FlushRelationBuffers(rel);
        let dst = pg_sys::RelationCreateStorage(*locator, persistence, true);
        pg_sys::RelationCopyStorage(
            pg_sys::RelationGetSmgr(rel),
            dst,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            persistence,
        );
        pg_sys::RelationDropStorage(rel);
        pg_sys::smgrclose(dst);
    }
}

/// `relation_nontransactional_truncate`: TRUNCATE of a table created (or truncated) in
/// the same transaction. Dropping every block drops the metapage too, so the next write
/// starts new storage with a new storage id and the old parts' catalog rows match nothing.
#[pg_guard]
pub unsafe extern "C-unwind" fn truncate_now(rel: pg_sys::Relation) {
    // SAFETY: Postgres holds AccessExclusiveLock on `rel` for a truncate.
    unsafe {
        forget_storage(Rel::new(rel));
        pg_sys::RelationTruncate(rel, 0)
    };
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
