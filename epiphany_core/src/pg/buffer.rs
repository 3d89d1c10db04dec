//! Relations, buffers and GenericXLog records as values that clean up after themselves.
//!
//! Every page of ours (columnar extents and metapages, HNSW and IVF-PQ index pages) is
//! read and written through these three types, so the pin/lock/log protocol is written
//! once: a [`Buffer`] is pinned (and maybe locked) until it is dropped; a [`WalRecord`]
//! hands out the images of exclusively locked buffers, WAL-logs them on
//! [`finish`](WalRecord::finish), and is aborted (nothing changed) when it is dropped
//! unfinished — by an early return or while an ERROR unwinds. A [`Rel`] is made once
//! per callback from the relation Postgres passed, so what follows needs no
//! "the relation is open" contract of its own.

use std::marker::PhantomData;

use pgrx::pg_sys;

use crate::Error;

/// An open relation, for the duration of one callback (`'a`). Not `Send`: Postgres is
/// called only from the backend's main thread.
#[derive(Clone, Copy)]
pub struct Rel<'a> {
    raw: pg_sys::Relation,
    _open: PhantomData<&'a pg_sys::RelationData>,
}

impl<'a> Rel<'a> {
    /// # Safety
    /// `raw` is an open relation, locked as its uses need, that stays open for `'a`;
    /// main thread.
    pub unsafe fn new(raw: pg_sys::Relation) -> Rel<'a> {
        Rel {
            raw,
            _open: PhantomData,
        }
    }

    /// The relation a [`pgrx::PgRelation`] holds open.
    pub fn of(rel: &'a pgrx::PgRelation) -> Rel<'a> {
        // SAFETY: a PgRelation is open (and locked as it was opened) while it lives.
        unsafe { Rel::new(rel.as_ptr()) }
    }

    pub fn raw(self) -> pg_sys::Relation {
        self.raw
    }

    pub fn oid(self) -> pg_sys::Oid {
        // SAFETY: open for 'a (constructor contract).
        unsafe { (*self.raw).rd_id }
    }

    /// The relation's name, for messages.
    pub fn name(self) -> String {
        // SAFETY: open for 'a; rd_rel is its pg_class row.
        unsafe {
            std::ffi::CStr::from_ptr((*(*self.raw).rd_rel).relname.data.as_ptr())
                .to_string_lossy()
                .into_owned()
        }
    }

    /// Blocks in `fork`.
    pub fn nblocks_in(self, fork: pg_sys::ForkNumber::Type) -> u32 {
        // SAFETY: open for 'a, main thread.
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(self.raw, fork) }
    }

    /// Blocks in the main fork.
    pub fn nblocks(self) -> u32 {
        self.nblocks_in(pg_sys::ForkNumber::MAIN_FORKNUM)
    }
}

/// How a buffer's content lock is held.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lock {
    Share,
    Exclusive,
}

impl Lock {
    fn mode(self) -> i32 {
        match self {
            Lock::Share => pg_sys::BUFFER_LOCK_SHARE as i32,
            Lock::Exclusive => pg_sys::BUFFER_LOCK_EXCLUSIVE as i32,
        }
    }
}

/// A pinned shared buffer of a relation, locked or not; dropping it unlocks and unpins.
pub struct Buffer<'a> {
    id: pg_sys::Buffer,
    lock: Option<Lock>,
    _rel: PhantomData<Rel<'a>>,
}

impl<'a> Buffer<'a> {
    /// Block `block` of the main fork, pinned and locked. A block past the end is an
    /// ERROR of Postgres's ("could not read block"), not undefined behaviour.
    pub fn read(rel: Rel<'a>, block: u32, lock: Lock) -> Buffer<'a> {
        Buffer::read_in(rel, pg_sys::ForkNumber::MAIN_FORKNUM, block, lock)
    }

    /// Block `block` of `fork`, pinned and locked.
    pub fn read_in(
        rel: Rel<'a>,
        fork: pg_sys::ForkNumber::Type,
        block: u32,
        lock: Lock,
    ) -> Buffer<'a> {
        let mut b = Buffer::pin(rel, fork, block);
        b.lock(lock);
        b
    }

    /// Block `block` of `fork`, pinned only.
    pub fn pin(rel: Rel<'a>, fork: pg_sys::ForkNumber::Type, block: u32) -> Buffer<'a> {
        // SAFETY: a null strategy is the default one.
        unsafe { Buffer::pin_with(rel, fork, block, std::ptr::null_mut()) }
    }

    /// Block `block` of the main fork, pinned and locked, read through `strategy` (a
    /// VACUUM's ring of buffers).
    ///
    /// # Safety
    /// `strategy` is null or a live buffer access strategy.
    pub unsafe fn read_with(
        rel: Rel<'a>,
        block: u32,
        strategy: pg_sys::BufferAccessStrategy,
        lock: Lock,
    ) -> Buffer<'a> {
        // SAFETY: per the contract.
        let mut b =
            unsafe { Buffer::pin_with(rel, pg_sys::ForkNumber::MAIN_FORKNUM, block, strategy) };
        b.lock(lock);
        b
    }

    /// # Safety
    /// `strategy` is null or a live buffer access strategy.
    unsafe fn pin_with(
        rel: Rel<'a>,
        fork: pg_sys::ForkNumber::Type,
        block: u32,
        strategy: pg_sys::BufferAccessStrategy,
    ) -> Buffer<'a> {
        // SAFETY: an open relation (Rel), main thread, a valid strategy (contract);
        // ReadBufferExtended raises an ERROR for a block that does not exist.
        let id = unsafe {
            pg_sys::ReadBufferExtended(
                rel.raw(),
                fork,
                block,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                strategy,
            )
        };
        Buffer {
            id,
            lock: None,
            _rel: PhantomData,
        }
    }

    /// A new zeroed block at the end of `fork`, pinned and locked. Takes the relation
    /// extension lock for the call (re-entrant: a caller may already hold it, see
    /// [`ExtensionLock`]).
    pub fn extend(rel: Rel<'a>, fork: pg_sys::ForkNumber::Type, lock: Lock) -> Buffer<'a> {
        let guard = ExtensionLock::take(rel);
        let id = new_block(rel, fork);
        drop(guard);
        let mut b = Buffer {
            id,
            lock: None,
            _rel: PhantomData,
        };
        b.lock(lock);
        b
    }

    /// Takes the content lock (the buffer must not hold one).
    pub fn lock(&mut self, lock: Lock) {
        assert!(self.lock.is_none(), "buffer {} locked twice", self.id);
        // SAFETY: a buffer this value pins, main thread.
        unsafe { pg_sys::LockBuffer(self.id, lock.mode()) };
        self.lock = Some(lock);
    }

    /// Releases the content lock, keeping the pin.
    pub fn unlock(&mut self) {
        if self.lock.take().is_some() {
            // SAFETY: a buffer this value pins and locked.
            unsafe { pg_sys::LockBuffer(self.id, pg_sys::BUFFER_LOCK_UNLOCK as i32) };
        }
    }

    pub fn id(&self) -> pg_sys::Buffer {
        self.id
    }

    pub fn block(&self) -> u32 {
        // SAFETY: a pinned buffer.
        unsafe { pg_sys::BufferGetBlockNumber(self.id) }
    }

    /// The page, read under the buffer's lock.
    pub fn page(&self) -> &[u8] {
        assert!(self.lock.is_some(), "buffer {} read unlocked", self.id);
        // SAFETY: a pinned, locked buffer's page is BLCKSZ bytes that nobody changes
        // while the lock is held; the borrow ends before the guard drops.
        unsafe {
            std::slice::from_raw_parts(
                pg_sys::BufferGetPage(self.id) as *const u8,
                crate::pg::page::BLOCK_SIZE,
            )
        }
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        // SAFETY: the pin (and lock) this value holds, released once. While an ERROR
        // unwinds this runs before the transaction's abort, which would release them
        // too; releasing them here keeps a caught error from leaving a page locked.
        unsafe {
            if self.lock.take().is_some() {
                pg_sys::UnlockReleaseBuffer(self.id);
            } else {
                pg_sys::ReleaseBuffer(self.id);
            }
        }
    }
}

/// The content lock of a buffer pinned by someone else (a heap scan's current page, to
/// judge a tuple's visibility), held until dropped.
pub struct ContentLock {
    id: pg_sys::Buffer,
}

impl ContentLock {
    /// # Safety
    /// `buffer` stays pinned while the lock lives and is not locked by this backend;
    /// main thread.
    pub unsafe fn take(buffer: pg_sys::Buffer, lock: Lock) -> ContentLock {
        // SAFETY: per the contract.
        unsafe { pg_sys::LockBuffer(buffer, lock.mode()) };
        ContentLock { id: buffer }
    }
}

impl Drop for ContentLock {
    fn drop(&mut self) {
        // SAFETY: the lock take() acquired on a buffer still pinned.
        unsafe { pg_sys::LockBuffer(self.id, pg_sys::BUFFER_LOCK_UNLOCK as i32) };
    }
}

/// The relation extension lock, held until dropped: pages added meanwhile are
/// consecutive, and a check for "no page yet" stays true while the page is made.
pub struct ExtensionLock<'a> {
    rel: Rel<'a>,
}

impl<'a> ExtensionLock<'a> {
    pub fn take(rel: Rel<'a>) -> ExtensionLock<'a> {
        // SAFETY: an open relation, main thread; released by drop.
        unsafe { pg_sys::LockRelationForExtension(rel.raw(), pg_sys::ExclusiveLock as _) };
        ExtensionLock { rel }
    }

    /// A new zeroed block at the end of `fork`, pinned and locked.
    pub fn new_buffer(&self, fork: pg_sys::ForkNumber::Type, lock: Lock) -> Buffer<'a> {
        let mut b = Buffer {
            id: new_block(self.rel, fork),
            lock: None,
            _rel: PhantomData,
        };
        b.lock(lock);
        b
    }

    /// Adds `count` zeroed blocks at the end of the main fork; returns the first.
    pub fn extend_by(&self, count: u32) -> Result<u32, Error> {
        extend_by(self.rel, count)
    }
}

impl Drop for ExtensionLock<'_> {
    fn drop(&mut self) {
        // SAFETY: the lock take() acquired.
        unsafe { pg_sys::UnlockRelationForExtension(self.rel.raw(), pg_sys::ExclusiveLock as _) };
    }
}

/// A new block at the end of `fork`, pinned (the caller holds the extension lock).
fn new_block(rel: Rel<'_>, fork: pg_sys::ForkNumber::Type) -> pg_sys::Buffer {
    // SAFETY: an open relation, main thread; P_NEW (InvalidBlockNumber) extends the
    // fork. From 16 the buffer manager is told the caller holds the extension lock.
    unsafe {
        #[cfg(feature = "pg15")]
        {
            pg_sys::ReadBufferExtended(
                rel.raw(),
                fork,
                pg_sys::InvalidBlockNumber,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            )
        }
        #[cfg(not(feature = "pg15"))]
        {
            pg_sys::ExtendBufferedRel(
                manager_relation(rel),
                fork,
                std::ptr::null_mut(),
                pg_sys::ExtendBufferedFlags::EB_SKIP_EXTENSION_LOCK,
            )
        }
    }
}

#[cfg(not(feature = "pg15"))]
fn manager_relation(rel: Rel<'_>) -> pg_sys::BufferManagerRelation {
    pg_sys::BufferManagerRelation {
        rel: rel.raw(),
        smgr: std::ptr::null_mut(),
        relpersistence: 0,
    }
}

/// `count` new blocks at the end of the main fork (extension lock held); the first.
#[cfg(feature = "pg15")]
fn extend_by(rel: Rel<'_>, count: u32) -> Result<u32, Error> {
    let mut first = None;
    for i in 0..count {
        let id = new_block(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
        // SAFETY: the pin new_block took, released right away.
        let block = unsafe {
            let block = pg_sys::BufferGetBlockNumber(id);
            pg_sys::ReleaseBuffer(id);
            block
        };
        let start = *first.get_or_insert(block);
        consecutive(block, start + i)?;
    }
    Ok(first.unwrap_or(0))
}

/// As above; from PostgreSQL 16 the buffer manager extends by many blocks at once (one
/// `fallocate` instead of a write per block).
#[cfg(not(feature = "pg15"))]
fn extend_by(rel: Rel<'_>, count: u32) -> Result<u32, Error> {
    const AT_ONCE: u32 = 64;
    let mut buffers = [0 as pg_sys::Buffer; AT_ONCE as usize];
    let mut first = None;
    let mut done = 0;
    while done < count {
        let mut got = 0u32;
        // SAFETY: the caller holds the extension lock (so the buffer manager must not
        // take it again); `buffers` has room for AT_ONCE pins, each released right away.
        let block = unsafe {
            let block = pg_sys::ExtendBufferedRelBy(
                manager_relation(rel),
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

fn consecutive(got: u32, expected: u32) -> Result<(), Error> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::Corrupted(format!(
            "extending: got block {got}, expected {expected}"
        )))
    }
}

/// How a registered page is logged.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// Only the bytes that changed (GenericXLog computes the delta).
    Delta,
    /// The whole page (new or re-initialized pages).
    Full,
}

/// Pages in one generic WAL record (`MAX_GENERIC_XLOG_PAGES`).
pub const MAX_PAGES_PER_RECORD: usize = pg_sys::MAX_GENERIC_XLOG_PAGES as usize;

/// One GenericXLog record under way. It takes the exclusively locked buffers it changes
/// and hands out their pages as private images; [`finish`](Self::finish) copies the
/// images into the buffers and WAL-logs them in one critical section, then releases the
/// buffers. Dropped unfinished — an early return, an ERROR unwinding — it is aborted
/// and the buffers are released as they were.
pub struct WalRecord<'a> {
    state: *mut pg_sys::GenericXLogState,
    buffers: Vec<Buffer<'a>>,
    pages: [*mut u8; MAX_PAGES_PER_RECORD],
}

impl<'a> WalRecord<'a> {
    pub fn start(rel: Rel<'a>) -> WalRecord<'a> {
        // SAFETY: an open relation, main thread; the state is finished or aborted once.
        let state = unsafe { pg_sys::GenericXLogStart(rel.raw()) };
        WalRecord {
            state,
            buffers: Vec::with_capacity(MAX_PAGES_PER_RECORD),
            pages: [std::ptr::null_mut(); MAX_PAGES_PER_RECORD],
        }
    }

    /// Adds exclusively locked `buffer` to the record (at most four); its number in the
    /// record, for [`page`](Self::page).
    pub fn add(&mut self, buffer: Buffer<'a>, image: Image) -> usize {
        assert_eq!(
            buffer.lock,
            Some(Lock::Exclusive),
            "a page changed without its exclusive lock"
        );
        let n = self.buffers.len();
        assert!(
            n < MAX_PAGES_PER_RECORD,
            "more pages than one WAL record takes"
        );
        assert!(
            self.buffers.iter().all(|b| b.id != buffer.id),
            "buffer {} added twice to one WAL record",
            buffer.id
        );
        let flags = match image {
            Image::Delta => 0,
            Image::Full => pg_sys::GENERIC_XLOG_FULL_IMAGE as i32,
        };
        // SAFETY: a running record and a buffer it keeps locked until it ends.
        self.pages[n] =
            unsafe { pg_sys::GenericXLogRegisterBuffer(self.state, buffer.id, flags) } as *mut u8;
        self.buffers.push(buffer);
        n
    }

    /// The image of page `i` to change.
    pub fn page(&mut self, i: usize) -> &mut [u8] {
        assert!(
            i < self.buffers.len(),
            "page {i} of a WAL record of {}",
            self.buffers.len()
        );
        // SAFETY: BLCKSZ bytes of the record's own memory, one image per buffer, valid
        // until the record ends (which takes `self`); the borrow of `self` keeps two
        // images from being changed through one page at once.
        unsafe { std::slice::from_raw_parts_mut(self.pages[i], crate::pg::page::BLOCK_SIZE) }
    }

    /// The block of page `i`.
    pub fn block(&self, i: usize) -> u32 {
        self.buffers[i].block()
    }

    /// Pages added so far.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// Applies the images to their buffers and WAL-logs them; then releases the buffers.
    pub fn finish(mut self) {
        let state = std::mem::replace(&mut self.state, std::ptr::null_mut());
        // SAFETY: the running record, finished once (drop sees a null state) while its
        // buffers are still locked.
        unsafe { pg_sys::GenericXLogFinish(state) };
    }
}

impl Drop for WalRecord<'_> {
    fn drop(&mut self) {
        if !self.state.is_null() {
            // SAFETY: a record neither finished nor aborted; aborting only frees it.
            unsafe { pg_sys::GenericXLogAbort(self.state) };
        }
        // The buffers are released after this, as the fields drop.
    }
}
