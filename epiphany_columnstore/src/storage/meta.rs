//! The metapage (block 0) of a columnar relation, read and updated in shared buffers.
//!
//! Storage starts without one; the first write creates it under the relation extension
//! lock, with a storage id from `epiphany.columnar_storage_ids`. Updates are WAL-logged
//! through GenericXLog while the page is exclusively locked, so reservations are handed
//! out once even across crashes. It also holds the free pages VACUUM found (see
//! `vacuum`).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::{Buffer, ExtensionLock, Image, Lock, Rel, WalRecord};
use epiphany_core::pg::page;
use epiphany_core::storage::metapage::{self, Metapage};
use epiphany_core::Error;
use pgrx::pg_sys;

/// The metapage of a columnar relation, or `None` while the storage has none.
pub fn read(rel: Rel<'_>) -> Result<Option<Metapage>, Error> {
    if rel.nblocks() == 0 {
        return Ok(None);
    }
    let buffer = Buffer::read(rel, metapage::BLOCK, Lock::Share);
    decode_page(buffer.page())
}

/// The storage id, or `None` while the storage has no metapage (so no parts).
pub fn storage_id(rel: Rel<'_>) -> Result<Option<u64>, Error> {
    Ok(read(rel)?.map(|m| m.storage_id))
}

/// `None` for a page that was never initialized (extended, then a crash before its WAL
/// record), else the decoded metapage.
fn decode_page(page: &[u8]) -> Result<Option<Metapage>, Error> {
    if page::is_new(page) {
        return Ok(None);
    }
    Metapage::decode(page::contents(page)).map(Some)
}

/// Writes `meta` into an initialized metapage image. Generic WAL logs a page up to
/// pd_lower (and from pd_upper): the free list grows and shrinks the metapage's data.
fn encode_page(page: &mut [u8], meta: &Metapage) {
    meta.encode(page::contents_mut(page));
    page::set_lower(page, page::PAGE_HEADER + meta.encoded_len());
}

/// Runs `f` on the metapage under an exclusive lock and WAL-logs what it changed,
/// creating the metapage first if the storage has none. `rel` is locked for writing.
pub fn update<R>(
    rel: Rel<'_>,
    f: impl FnOnce(&mut Metapage) -> Result<R, Error>,
) -> Result<R, Error> {
    if read(rel)?.is_none() {
        create(rel)?;
    }
    let mut record = WalRecord::start(rel);
    let n = record.add(
        Buffer::read(rel, metapage::BLOCK, Lock::Exclusive),
        Image::Delta,
    );
    let page = record.page(n);
    let mut meta =
        decode_page(page)?.ok_or_else(|| Error::Corrupted("metapage vanished".into()))?;
    // An error here drops the record unfinished: nothing is logged or changed.
    let r = f(&mut meta)?;
    encode_page(page, &meta);
    record.finish();
    Ok(r)
}

/// Writes the metapage of new storage, unless a concurrent writer did first.
fn create(rel: Rel<'_>) -> Result<(), Error> {
    // Drawn before any lock is held: nextval takes locks of its own. A concurrent
    // creator may win, and this id is then simply unused.
    let storage_id = next_storage_id()?;
    // The extension lock makes "no metapage yet" stable while block 0 is created and
    // logged.
    let extension = ExtensionLock::take(rel);
    let buffer = if rel.nblocks() == 0 {
        extension.new_buffer(pg_sys::ForkNumber::MAIN_FORKNUM, Lock::Exclusive)
    } else {
        Buffer::read(rel, metapage::BLOCK, Lock::Exclusive)
    };
    if page::is_new(buffer.page()) {
        let mut record = WalRecord::start(rel);
        let n = record.add(buffer, Image::Full);
        let page = record.page(n);
        page::init(page, 0);
        encode_page(page, &Metapage::new(storage_id));
        record.finish();
    } else {
        drop(buffer);
    }
    drop(extension);
    Ok(())
}

unsafe extern "C-unwind" {
    // commands/sequence.h; pgrx does not bind it.
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
}

fn next_storage_id() -> Result<u64, Error> {
    let seq = crate::storage::catalog::object_oid(c"columnar_storage_ids")?;
    // SAFETY: an existing sequence, main thread. Writers need no privilege on it: the
    // access method draws ids on their behalf.
    #[allow(ffi_unwind_calls)] // guarded by pg_guard_ffi_boundary
    let id = unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| nextval_internal(seq, false)) };
    Ok(id as u64)
}
