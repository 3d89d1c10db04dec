//! The metapage (block 0) of a columnar relation, read and updated in shared buffers.
//!
//! Storage starts without one; the first write creates it under the relation extension
//! lock, with a storage id from `epiphany.columnar_storage_ids`. Updates are WAL-logged
//! through GenericXLog while the page is exclusively locked, so reservations are handed
//! out once even across crashes. It also holds the free pages VACUUM found (see
//! `vacuum`).

use epiphany_core::storage::metapage::{self, Metapage};
use epiphany_core::Error;
use pgrx::pg_sys;

use crate::page_store::{extend_by_one, read_buffer, BLOCK_SIZE, PAGE_HEADER};

/// The metapage, or `None` while the storage has none.
///
/// # Safety
/// `rel` must be an open columnar relation.
pub unsafe fn read(rel: pg_sys::Relation) -> Result<Option<Metapage>, Error> {
    // SAFETY: per the contract; the buffer is share-locked while decoded.
    unsafe {
        if pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) == 0 {
            return Ok(None);
        }
        let buffer = read_buffer(rel, metapage::BLOCK);
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as _);
        let result = decode_page(pg_sys::BufferGetPage(buffer) as *const u8);
        pg_sys::UnlockReleaseBuffer(buffer);
        result
    }
}

/// The storage id, or `None` while the storage has no metapage (so no parts).
///
/// # Safety
/// `rel` must be an open columnar relation.
pub unsafe fn storage_id(rel: pg_sys::Relation) -> Result<Option<u64>, Error> {
    // SAFETY: per the contract.
    Ok(unsafe { read(rel) }?.map(|m| m.storage_id))
}

/// `None` for a page that was never initialized (extended, then a crash before its WAL
/// record), else the decoded metapage.
///
/// # Safety
/// `page` must point at a pinned, locked buffer page.
unsafe fn decode_page(page: *const u8) -> Result<Option<Metapage>, Error> {
    // SAFETY: per the contract, BLCKSZ readable bytes.
    unsafe {
        if (*(page as *const pg_sys::PageHeaderData)).pd_upper == 0 {
            return Ok(None);
        }
        let data = std::slice::from_raw_parts(page.add(PAGE_HEADER), BLOCK_SIZE - PAGE_HEADER);
        Metapage::decode(data).map(Some)
    }
}

/// Runs `f` on the metapage under an exclusive lock and WAL-logs what it changed,
/// creating the metapage first if the storage has none.
///
/// # Safety
/// `rel` must be an open columnar relation, locked for writing.
pub unsafe fn update<R>(
    rel: pg_sys::Relation,
    f: impl FnOnce(&mut Metapage) -> Result<R, Error>,
) -> Result<R, Error> {
    // SAFETY: per the contract.
    unsafe {
        if read(rel)?.is_none() {
            create(rel)?;
        }
        let buffer = read_buffer(rel, metapage::BLOCK);
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as _);
        let state = pg_sys::GenericXLogStart(rel);
        let page = pg_sys::GenericXLogRegisterBuffer(state, buffer, 0) as *mut u8;
        let outcome = decode_page(page).and_then(|meta| {
            let mut meta = meta.ok_or_else(|| Error::Corrupted("metapage vanished".into()))?;
            let r = f(&mut meta)?;
            let data =
                std::slice::from_raw_parts_mut(page.add(PAGE_HEADER), BLOCK_SIZE - PAGE_HEADER);
            meta.encode(data);
            // Generic WAL logs a page up to pd_lower (and from pd_upper): the free list
            // grows and shrinks the metapage's data.
            (*(page as *mut pg_sys::PageHeaderData)).pd_lower =
                (PAGE_HEADER + meta.encoded_len()) as u16;
            Ok(r)
        });
        if outcome.is_ok() {
            pg_sys::GenericXLogFinish(state);
        } else {
            pg_sys::GenericXLogAbort(state);
        }
        pg_sys::UnlockReleaseBuffer(buffer);
        outcome
    }
}

/// Writes the metapage of new storage, unless a concurrent writer did first.
///
/// # Safety
/// `rel` must be an open columnar relation, locked for writing.
unsafe fn create(rel: pg_sys::Relation) -> Result<(), Error> {
    // Drawn before any lock is held: nextval takes locks of its own. A concurrent
    // creator may win, and this id is then simply unused.
    let storage_id = next_storage_id()?;
    let lockmode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: per the contract; the extension lock makes "no metapage yet" stable while
    // block 0 is created and logged.
    unsafe {
        pg_sys::LockRelationForExtension(rel, lockmode);
        let nblocks =
            pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
        let buffer = if nblocks == 0 {
            extend_by_one(rel)
        } else {
            read_buffer(rel, metapage::BLOCK)
        };
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as _);
        let current = pg_sys::BufferGetPage(buffer) as *const u8;
        let empty = (*(current as *const pg_sys::PageHeaderData)).pd_upper == 0;
        if empty {
            let state = pg_sys::GenericXLogStart(rel);
            let page = pg_sys::GenericXLogRegisterBuffer(
                state,
                buffer,
                pg_sys::GENERIC_XLOG_FULL_IMAGE as _,
            );
            pg_sys::PageInit(page, BLOCK_SIZE, 0);
            let data = std::slice::from_raw_parts_mut(
                (page as *mut u8).add(PAGE_HEADER),
                BLOCK_SIZE - PAGE_HEADER,
            );
            let meta = Metapage::new(storage_id);
            meta.encode(data);
            (*(page as *mut pg_sys::PageHeaderData)).pd_lower =
                (PAGE_HEADER + meta.encoded_len()) as u16;
            pg_sys::GenericXLogFinish(state);
        }
        pg_sys::UnlockReleaseBuffer(buffer);
        pg_sys::UnlockRelationForExtension(rel, lockmode);
    }
    Ok(())
}

unsafe extern "C-unwind" {
    // commands/sequence.h; pgrx does not bind it.
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
}

fn next_storage_id() -> Result<u64, Error> {
    let seq = crate::catalog::object_oid(c"columnar_storage_ids")?;
    // SAFETY: an existing sequence, main thread. Writers need no privilege on it: the
    // access method draws ids on their behalf.
    let id = unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| nextval_internal(seq, false)) };
    Ok(id as u64)
}
