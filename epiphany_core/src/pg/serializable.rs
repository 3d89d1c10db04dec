//! Serializable snapshot isolation (SSI) for table access methods whose rows are not heap
//! tuples: the predicate-lock calls heap makes on its own relations, made on ours.
//!
//! Heap takes a relation-wide SIREAD lock when it scans a table, checks inserts against
//! such locks (rw-conflict in), and reports reading past a concurrent writer's version
//! (rw-conflict out). A columnar table's rows live in parts that a heap catalog lists, so
//! without these calls SSI would watch the catalog instead: unrelated tables would
//! conflict with each other, and conflicts on the table itself would go unseen.
//! `storage/predicate.h` is not in pgrx's bindings; its signatures are the same on
//! PostgreSQL 13 to 18.

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;

mod ffi {
    use pgrx::pg_sys;
    unsafe extern "C-unwind" {
        pub fn PredicateLockRelation(relation: pg_sys::Relation, snapshot: pg_sys::Snapshot);
        pub fn CheckForSerializableConflictIn(
            relation: pg_sys::Relation,
            tid: pg_sys::ItemPointer,
            blkno: pg_sys::BlockNumber,
        );
    }
}

/// A read of all of `rel` (a scan, or a fetch by TID) under `snapshot`: in a serializable
/// transaction, an SIREAD lock on the whole relation, as heap's sequential scans take.
///
/// # Safety
/// Main thread; `rel` open; `snapshot` valid for the call.
#[allow(ffi_unwind_calls)] // guarded by pg_guard_ffi_boundary
pub unsafe fn lock_relation_read(rel: pg_sys::Relation, snapshot: pg_sys::Snapshot) {
    // SAFETY: per the contract; Postgres checks itself whether SSI applies (isolation
    // level, MVCC snapshot, temporary relation).
    // pg_guard_ffi_boundary turns an ERROR (out of shared memory) into a Rust unwind.
    unsafe { pg_guard_ffi_boundary(|| ffi::PredicateLockRelation(rel, snapshot)) }
}

/// An insert into `rel`: in a serializable transaction, fails with SQLSTATE 40001 where
/// a concurrent reader's SIREAD lock makes it a dangerous rw-conflict (heap_insert's
/// check).
///
/// # Safety
/// Main thread; `rel` open and locked for writing.
#[allow(ffi_unwind_calls)] // guarded by pg_guard_ffi_boundary
pub unsafe fn check_insert(rel: pg_sys::Relation) {
    // SAFETY: per the contract; a null TID and no block mean the whole relation.
    // pg_guard_ffi_boundary turns the serialization ERROR into a Rust unwind.
    unsafe {
        pg_guard_ffi_boundary(|| {
            ffi::CheckForSerializableConflictIn(
                rel,
                std::ptr::null_mut(),
                pg_sys::InvalidBlockNumber,
            )
        })
    }
}
