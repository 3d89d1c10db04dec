//! `epiphany.columnar_parts`: one heap row per part, the MVCC of columnar tables.
//!
//! A part's row is inserted by the transaction that wrote the part, stamped with the
//! command that inserted its rows, so the part appears to a snapshot exactly when its
//! rows should. Rows are read with the scan's own snapshot through the heap AM (not SPI,
//! whose snapshot is the active one), and written with `heap_insert`, which takes the
//! command id explicitly. Rows are keyed by storage id (see `meta`), not by relation.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::buffer::{ContentLock, Lock};
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::{FromDatum, IntoDatum};

const NATTS: usize = 9;

pub use epiphany_core::columnar::stored::PartRow;

/// The oid of an object of ours in schema `epiphany`.
pub fn object_oid(name: &std::ffi::CStr) -> Result<pg_sys::Oid, Error> {
    // SAFETY: catalog lookups by name, main thread.
    let oid = unsafe {
        let ns = pg_sys::get_namespace_oid(c"epiphany".as_ptr(), true);
        if ns == pg_sys::InvalidOid {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_relname_relid(name.as_ptr(), ns)
        }
    };
    if oid == pg_sys::InvalidOid {
        return Err(Error::NotSupported(format!(
            "epiphany_columnar without its catalog (epiphany.{} is missing: run CREATE EXTENSION epiphany_columnstore in this database)",
            name.to_string_lossy()
        )));
    }
    Ok(oid)
}

fn parts_oid() -> Result<pg_sys::Oid, Error> {
    object_oid(c"columnar_parts")
}

/// Inserts `part`'s row as command `cid` of the current (sub)transaction.
pub fn insert(part: &PartRow, cid: pg_sys::CommandId) -> Result<(), Error> {
    let oid = parts_oid()?;
    let mut values: [pg_sys::Datum; NATTS] = [
        (part.storage_id as i64).into(),
        (part.part_id as i64).into(),
        part.level.into(),
        (part.first_row as i64).into(),
        (part.row_count as i64).into(),
        i64::from(part.first_block).into(),
        (part.pages as i32).into(),
        (part.byte_len as i64).into(),
        part.stats.as_slice().into_datum().expect("bytea"),
    ];
    let mut nulls = [false; NATTS];
    // SAFETY: the catalog relation is opened, written and closed here; the tuple matches
    // its descriptor (nine non-null columns of the declared types).
    unsafe {
        let rel = pg_sys::table_open(oid, pg_sys::RowExclusiveLock as _);
        let tuple = pg_sys::heap_form_tuple((*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::heap_insert(rel, tuple, cid, 0, std::ptr::null_mut());
        pg_sys::heap_freetuple(tuple);
        pg_sys::table_close(rel, pg_sys::RowExclusiveLock as _);
    }
    Ok(())
}

/// The parts of `storage_id` visible to `snapshot`, ordered by first row.
///
/// The catalog is always read with an MVCC snapshot: a part row that is dead (its part
/// replaced, or written by an aborted transaction) names pages that may hold anything.
/// For the other kinds of snapshot a caller may pass for the data — `SnapshotAny` of
/// MERGE/UPDATE re-fetches and index builds, `SnapshotSelf`, `SnapshotDirty`, none at
/// all for ANALYZE — the parts are those committed now plus every part of this
/// transaction, whichever command wrote it.
///
/// # Safety
/// `snapshot` must be null or a valid snapshot (registered or active for the call).
pub unsafe fn visible(storage_id: u64, snapshot: pg_sys::Snapshot) -> Result<Vec<PartRow>, Error> {
    // SAFETY: per the contract.
    unsafe { visible_impl(storage_id, snapshot, std::ptr::null_mut()) }
}

/// As [`visible`], for a scan or fetch of the rows of `rel`, whose storage is
/// `storage_id` (none: no rows yet): in a serializable transaction `rel` gets the SIREAD lock heap's scans
/// take, and each part row a concurrent serializable transaction wrote that `snapshot`
/// does not see is a rw-conflict out, as an invisible heap tuple would be. The catalog
/// itself takes no predicate locks: it is shared by every columnar table, and SSI on it
/// would make unrelated tables conflict.
///
/// # Safety
/// As [`visible`].
pub unsafe fn visible_for_read(
    rel: Rel<'_>,
    storage_id: Option<u64>,
    snapshot: pg_sys::Snapshot,
) -> Result<Vec<PartRow>, Error> {
    // SAFETY: per the contract. An empty table is locked too: a later insert into it is
    // what a write skew is made of.
    unsafe {
        if is_mvcc(snapshot) {
            epiphany_core::pg::serializable::lock_relation_read(rel.raw(), snapshot);
        }
        match storage_id {
            Some(storage_id) => visible_impl(storage_id, snapshot, rel.raw()),
            None => Ok(Vec::new()),
        }
    }
}

/// # Safety
/// `snapshot` null or valid.
unsafe fn is_mvcc(snapshot: pg_sys::Snapshot) -> bool {
    // SAFETY: per the contract.
    !snapshot.is_null()
        && matches!(
            unsafe { (*snapshot).snapshot_type },
            pg_sys::SnapshotType::SNAPSHOT_MVCC | pg_sys::SnapshotType::SNAPSHOT_HISTORIC_MVCC
        )
}

/// # Safety
/// As [`visible`]; `reader` null or open.
unsafe fn visible_impl(
    storage_id: u64,
    snapshot: pg_sys::Snapshot,
    reader: pg_sys::Relation,
) -> Result<Vec<PartRow>, Error> {
    // SAFETY: per the contract.
    if unsafe { is_mvcc(snapshot) } {
        // SAFETY: per the contract.
        return unsafe { visible_to(storage_id, snapshot, reader) };
    }
    // SAFETY: a copy of a current MVCC snapshot on this frame serves the one catalog
    // scan below; its transaction arrays belong to the snapshot manager and are not
    // replaced while the scan runs (nothing in it takes a new snapshot). A parallel
    // operation may not take a new snapshot: its active one is the query's.
    unsafe {
        let current = if pg_sys::IsInParallelMode() {
            pg_sys::GetActiveSnapshot()
        } else {
            pg_sys::GetLatestSnapshot()
        };
        let mut own = *current;
        own.curcid = pg_sys::InvalidCommandId;
        visible_to(storage_id, &mut own, std::ptr::null_mut())
    }
}

/// The rows visible to `snapshot`, judged one by one over a `SnapshotAny` scan: an MVCC
/// scan of a heap table takes SIREAD locks on it in a serializable transaction. With a
/// `reader`, each row is also checked for a rw-conflict out on that relation.
///
/// # Safety
/// `snapshot` must be a valid MVCC snapshot for the call; `reader` null or open.
unsafe fn visible_to(
    storage_id: u64,
    snapshot: pg_sys::Snapshot,
    reader: pg_sys::Relation,
) -> Result<Vec<PartRow>, Error> {
    let mut parts = Vec::new();
    // SAFETY: per the contract; SnapshotAny returns every row version, each judged while
    // its buffer is share-locked (as heap's own scans judge tuples), then deformed while
    // the scan holds it.
    unsafe {
        scan(
            storage_id,
            pg_sys::AccessShareLock as _,
            |_, tuple, desc, buffer| {
                let lock = ContentLock::take(buffer, Lock::Share);
                let seen = pg_sys::HeapTupleSatisfiesVisibility(tuple, snapshot, buffer);
                if !reader.is_null() {
                    pg_sys::HeapCheckForSerializableConflictOut(
                        seen, reader, tuple, buffer, snapshot,
                    );
                }
                drop(lock);
                if seen {
                    parts.push(deform(tuple, desc));
                }
            },
        )?;
    }
    parts.sort_by_key(|p| p.first_row);
    Ok(parts)
}

/// Deletes every part row of `storage_id` visible now (the storage is being replaced or
/// dropped by the current transaction; if it aborts, the rows come back).
pub fn delete_storage(storage_id: u64) -> Result<(), Error> {
    // SAFETY: a registered latest snapshot serves the scan; each visible row is deleted
    // by tid while the scan holds it, as heap scans allow.
    unsafe {
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let result = scan(
            storage_id,
            pg_sys::RowExclusiveLock as _,
            |rel, tuple, _, buffer| {
                let lock = ContentLock::take(buffer, Lock::Share);
                let seen = pg_sys::HeapTupleSatisfiesVisibility(tuple, snapshot, buffer);
                drop(lock);
                if seen {
                    pg_sys::simple_heap_delete(rel, &mut (*tuple).t_self);
                }
            },
        );
        pg_sys::UnregisterSnapshot(snapshot);
        result
    }
}

/// Extents (first block, pages) of every part of `storage_id` that some transaction may
/// still read: all rows but those VACUUM could remove (written by an aborted
/// transaction, or deleted by one every snapshot sees as committed). Rows VACUUM of the
/// catalog already removed are not there at all.
pub fn referenced_extents(storage_id: u64) -> Result<Vec<(u32, u32)>, Error> {
    let mut extents = Vec::new();
    // SAFETY: SnapshotAny returns every row version; each is judged by
    // HeapTupleSatisfiesVacuum while its buffer is share-locked, as heap's VACUUM does.
    unsafe {
        let mut oldest = None;
        scan(
            storage_id,
            pg_sys::AccessShareLock as _,
            |rel, tuple, desc, buffer| {
                let oldest =
                    *oldest.get_or_insert_with(|| pg_sys::GetOldestNonRemovableTransactionId(rel));
                let lock = ContentLock::take(buffer, Lock::Share);
                let state = pg_sys::HeapTupleSatisfiesVacuum(tuple, oldest, buffer);
                drop(lock);
                if state != pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
                    let part = deform(tuple, desc);
                    extents.push((part.first_block, part.pages));
                }
            },
        )?;
    }
    Ok(extents)
}

/// Calls `f` for every version of every row of `storage_id` (`SnapshotAny`), with the
/// (pinned, not locked) buffer holding it; `f` judges visibility. Never an MVCC scan of
/// the catalog: in a serializable transaction that takes SIREAD locks on the catalog,
/// which every columnar table shares (see [`visible_for_read`]).
///
/// # Safety
/// Main thread.
unsafe fn scan(
    storage_id: u64,
    lockmode: pg_sys::LOCKMODE,
    mut f: impl FnMut(pg_sys::Relation, pg_sys::HeapTuple, pg_sys::TupleDesc, pg_sys::Buffer),
) -> Result<(), Error> {
    let oid = parts_oid()?;
    // SAFETY: per the contract; a scan key on column 1 (int8 equality) limits the scan
    // to this storage's rows; relation and scan are closed before returning.
    unsafe {
        let rel = pg_sys::table_open(oid, lockmode);
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as _,
            pg_sys::F_INT8EQ.into(),
            (storage_id as i64).into(),
        );
        let flags = pg_sys::ScanOptions::SO_TYPE_SEQSCAN
            | pg_sys::ScanOptions::SO_ALLOW_STRAT
            | pg_sys::ScanOptions::SO_ALLOW_PAGEMODE;
        let scan = pg_sys::heap_beginscan(
            rel,
            &raw mut pg_sys::SnapshotAnyData,
            1,
            &mut key,
            std::ptr::null_mut(),
            flags,
        );
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            f(
                rel,
                tuple,
                (*rel).rd_att,
                (*(scan as pg_sys::HeapScanDesc)).rs_cbuf,
            );
        }
        pg_sys::heap_endscan(scan);
        pg_sys::table_close(rel, lockmode);
    }
    Ok(())
}

/// # Safety
/// `tuple` must be a row of the catalog, `desc` its descriptor.
unsafe fn deform(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> PartRow {
    let mut values = [pg_sys::Datum::from(0usize); NATTS];
    let mut nulls = [false; NATTS];
    // SAFETY: per the contract; every column is NOT NULL.
    unsafe {
        pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        let int = |i: usize| values[i].value() as i64;
        PartRow {
            storage_id: int(0) as u64,
            part_id: int(1) as u64,
            level: int(2) as i32,
            first_row: int(3) as u64,
            row_count: int(4) as u64,
            first_block: int(5) as u32,
            pages: int(6) as i32 as u32,
            byte_len: int(7) as u64,
            stats: Vec::<u8>::from_datum(values[8], nulls[8]).unwrap_or_default(),
        }
    }
}
