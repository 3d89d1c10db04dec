//! The core's [`PageStore`] over a relation's main fork: shared buffers, WAL-logged.
//!
//! Each page keeps Postgres's standard header (so `data_checksums`, `pg_checksums`,
//! `amcheck`-style tools and GenericXLog all understand it); the store's page is what
//! follows that header. New pages are written once, as full images through GenericXLog,
//! so crash recovery, streaming standbys and `pg_basebackup` need nothing of ours.
//! Extending takes the relation extension lock for all pages of one extent, so an
//! extent's pages are consecutive even with concurrent writers.

use epiphany_core::storage::{BlockNumber, PageStore};
use epiphany_core::Error;
use pgrx::pg_sys;

/// Bytes of Postgres's page header (`SizeOfPageHeaderData`).
pub(crate) const PAGE_HEADER: usize = std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp);
pub(crate) const BLOCK_SIZE: usize = pg_sys::BLCKSZ as usize;
/// Pages in one generic WAL record (`MAX_GENERIC_XLOG_PAGES`).
const MAX_PAGES_PER_RECORD: usize = 4;

pub struct RelationPageStore {
    rel: pg_sys::Relation,
}

impl RelationPageStore {
    /// # Safety
    /// `rel` must be open (and stay open while the store is used), with a lock that
    /// allows reading, or writing when the store writes.
    pub unsafe fn new(rel: pg_sys::Relation) -> Self {
        RelationPageStore { rel }
    }
}

impl PageStore for RelationPageStore {
    fn page_size(&self) -> usize {
        BLOCK_SIZE - PAGE_HEADER
    }

    fn nblocks(&self) -> Result<BlockNumber, Error> {
        // SAFETY: an open relation (constructor contract), main thread.
        Ok(unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(self.rel, pg_sys::ForkNumber::MAIN_FORKNUM)
        })
    }

    fn extend(&mut self, count: u32) -> Result<BlockNumber, Error> {
        let lockmode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
        // SAFETY: an open relation; the extension lock is held while extending so the new
        // blocks are consecutive.
        unsafe {
            pg_sys::LockRelationForExtension(self.rel, lockmode);
            let result = extend_locked(self.rel, count);
            pg_sys::UnlockRelationForExtension(self.rel, lockmode);
            result
        }
    }

    fn write_pages(&mut self, first: BlockNumber, pages: &[&[u8]]) -> Result<(), Error> {
        for (batch_no, batch) in pages.chunks(MAX_PAGES_PER_RECORD).enumerate() {
            let mut buffers = Vec::with_capacity(batch.len());
            // SAFETY: blocks below nblocks (extend() made them), each locked exclusively
            // while GenericXLog rewrites it; every payload fits after the page header.
            unsafe {
                let state = pg_sys::GenericXLogStart(self.rel);
                for (i, payload) in batch.iter().enumerate() {
                    assert!(payload.len() <= BLOCK_SIZE - PAGE_HEADER);
                    let block = first + (batch_no * MAX_PAGES_PER_RECORD + i) as u32;
                    let buffer = read_buffer(self.rel, block);
                    pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as _);
                    let page = pg_sys::GenericXLogRegisterBuffer(
                        state,
                        buffer,
                        pg_sys::GENERIC_XLOG_FULL_IMAGE as _,
                    );
                    pg_sys::PageInit(page, BLOCK_SIZE, 0);
                    let data = (page as *mut u8).add(PAGE_HEADER);
                    std::ptr::copy_nonoverlapping(payload.as_ptr(), data, payload.len());
                    (*(page as *mut pg_sys::PageHeaderData)).pd_lower =
                        (PAGE_HEADER + payload.len()) as u16;
                    buffers.push(buffer);
                }
                pg_sys::GenericXLogFinish(state);
                for buffer in buffers {
                    pg_sys::UnlockReleaseBuffer(buffer);
                }
            }
        }
        Ok(())
    }

    fn read_page<R>(
        &self,
        block: BlockNumber,
        f: impl FnOnce(&[u8]) -> Result<R, Error>,
    ) -> Result<R, Error> {
        // SAFETY: the caller checked block < nblocks (ExtentReader does); the buffer is
        // share-locked while `f` reads the page and released before returning.
        unsafe {
            let buffer = read_buffer(self.rel, block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as _);
            let page = pg_sys::BufferGetPage(buffer) as *const u8;
            let header = &*(page as *const pg_sys::PageHeaderData);
            let result = if header.pd_upper == 0 {
                Err(Error::Corrupted(format!("block {block} was never written")))
            } else {
                f(std::slice::from_raw_parts(
                    page.add(PAGE_HEADER),
                    BLOCK_SIZE - PAGE_HEADER,
                ))
            };
            pg_sys::UnlockReleaseBuffer(buffer);
            result
        }
    }
}

/// Block `block` of the main fork, pinned (not locked).
///
/// # Safety
/// `rel` must be open and `block` below its size.
pub(crate) unsafe fn read_buffer(rel: pg_sys::Relation, block: BlockNumber) -> pg_sys::Buffer {
    // SAFETY: per the contract.
    unsafe {
        pg_sys::ReadBufferExtended(
            rel,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            block,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        )
    }
}

/// Adds `count` zeroed blocks at the end of the main fork; returns the first. The caller
/// holds the relation extension lock.
///
/// # Safety
/// `rel` must be open and its extension lock held.
#[cfg(feature = "pg15")]
unsafe fn extend_locked(rel: pg_sys::Relation, count: u32) -> Result<BlockNumber, Error> {
    let mut first = None;
    for i in 0..count {
        // SAFETY: per the contract; the pin is released right away.
        let block = unsafe {
            let buffer = extend_by_one(rel);
            let block = pg_sys::BufferGetBlockNumber(buffer);
            pg_sys::ReleaseBuffer(buffer);
            block
        };
        let start = *first.get_or_insert(block);
        consecutive(block, start + i)?;
    }
    Ok(first.unwrap_or(0))
}

/// As above; from PostgreSQL 16 the buffer manager extends by many blocks at once (one
/// `fallocate` instead of a write per block).
///
/// # Safety
/// `rel` must be open and its extension lock held.
#[cfg(not(feature = "pg15"))]
unsafe fn extend_locked(rel: pg_sys::Relation, count: u32) -> Result<BlockNumber, Error> {
    const AT_ONCE: u32 = 64;
    let bmr = manager_relation(rel);
    let mut buffers = [0 as pg_sys::Buffer; AT_ONCE as usize];
    let mut first = None;
    let mut done = 0;
    while done < count {
        let mut got = 0u32;
        // SAFETY: per the contract (so the buffer manager must not take the lock again);
        // `buffers` has room for AT_ONCE pins, each released right away.
        let block = unsafe {
            let block = pg_sys::ExtendBufferedRelBy(
                bmr,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                std::ptr::null_mut(),
                pg_sys::ExtendBufferedFlags::EB_SKIP_EXTENSION_LOCK,
                (count - done).min(AT_ONCE),
                buffers.as_mut_ptr(),
                &mut got,
            );
            for &buffer in &buffers[..got as usize] {
                pg_sys::ReleaseBuffer(buffer);
            }
            block
        };
        let start = *first.get_or_insert(block);
        consecutive(block, start + done)?;
        done += got.max(1);
    }
    Ok(first.unwrap_or(0))
}

fn consecutive(got: BlockNumber, expected: BlockNumber) -> Result<(), Error> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::Corrupted(format!(
            "extending: got block {got}, expected {expected}"
        )))
    }
}

/// A new zeroed block at the end of the main fork, pinned; the caller holds the relation
/// extension lock.
///
/// # Safety
/// `rel` must be open and its extension lock held.
#[cfg(feature = "pg15")]
pub(crate) unsafe fn extend_by_one(rel: pg_sys::Relation) -> pg_sys::Buffer {
    // SAFETY: per the contract; P_NEW (InvalidBlockNumber) extends the fork.
    unsafe {
        pg_sys::ReadBufferExtended(
            rel,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        )
    }
}

/// # Safety
/// `rel` must be open and its extension lock held.
#[cfg(not(feature = "pg15"))]
pub(crate) unsafe fn extend_by_one(rel: pg_sys::Relation) -> pg_sys::Buffer {
    // SAFETY: per the contract; we hold the extension lock, so tell the buffer manager
    // not to take it again.
    unsafe {
        pg_sys::ExtendBufferedRel(
            manager_relation(rel),
            pg_sys::ForkNumber::MAIN_FORKNUM,
            std::ptr::null_mut(),
            pg_sys::ExtendBufferedFlags::EB_SKIP_EXTENSION_LOCK,
        )
    }
}

#[cfg(not(feature = "pg15"))]
fn manager_relation(rel: pg_sys::Relation) -> pg_sys::BufferManagerRelation {
    pg_sys::BufferManagerRelation {
        rel,
        smgr: std::ptr::null_mut(),
        relpersistence: 0,
    }
}
