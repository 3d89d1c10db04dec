//! VACUUM of a columnar table: the pages no live part uses are taken back.
//!
//! Parts are written into pages before their transaction commits, so an aborted (or
//! crashed) writer leaves pages behind that no committed catalog row points at. VACUUM
//! computes them afresh each time (`epiphany_core::storage::free_space`): a free run at
//! the end of the relation is cut off (the file shrinks), the others go to the
//! metapage's free list, which writers use before they extend the relation.
//!
//! Writers and VACUUM exclude each other with a heavyweight lock on the metapage's
//! block (`LockPage`, a lock tag of its own, not the buffer): a writer holds it in share
//! mode from its first written page to the end of its transaction, so its pages are
//! never taken back while its catalog rows are still to come or in doubt; VACUUM takes it
//! exclusively only if it is free, and otherwise leaves the pages for the next VACUUM.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::Rel;
use epiphany_core::storage::free_space::{unused, FreeList};
use epiphany_core::storage::metapage;
use epiphany_core::Error;
use pgrx::pg_sys;

/// Before writing part pages of `rel` (locked for writing, in a transaction): no VACUUM
/// may take pages back until this transaction ends.
pub fn hold_off(rel: Rel<'_>) {
    // SAFETY: an open relation; the lock is released at transaction end (a second
    // request in the same transaction only counts up in the local lock table).
    unsafe { pg_sys::LockPage(rel.raw(), metapage::BLOCK, pg_sys::ShareLock as _) };
}

/// What one VACUUM found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Pages cut off the end of the relation.
    pub truncated: u32,
    /// Pages left on the free list.
    pub free: u64,
    /// Writers were at work: nothing was reclaimed.
    pub skipped: bool,
}

/// Takes back the pages of `rel` (locked by VACUUM: ShareUpdateExclusiveLock) that no
/// live part uses.
pub fn reclaim(rel: Rel<'_>) -> Result<Reclaimed, Error> {
    let Some(meta) = crate::storage::meta::read(rel)? else {
        return Ok(Reclaimed::default());
    };
    let raw = rel.raw();
    // SAFETY: an open relation; held to the end of VACUUM's transaction for this table.
    if !unsafe { pg_sys::ConditionalLockPage(raw, metapage::BLOCK, pg_sys::ExclusiveLock as _) } {
        return Ok(Reclaimed {
            skipped: true,
            ..Reclaimed::default()
        });
    }
    let used = crate::storage::catalog::referenced_extents(meta.storage_id)?;
    let mut nblocks = rel.nblocks();
    let mut free = unused(nblocks, &used);
    let mut truncated = 0;
    if let Some(tail) = free
        .last()
        .copied()
        .filter(|r| r.end() == u64::from(nblocks))
    {
        // Cutting the file needs every other backend off the relation, as for heap; if
        // it cannot be had at once the pages stay on the free list.
        // SAFETY: an open relation; the lock is dropped again right after, as heap's
        // VACUUM does.
        unsafe {
            if pg_sys::ConditionalLockRelation(raw, pg_sys::AccessExclusiveLock as _) {
                pg_sys::RelationTruncate(raw, tail.first);
                pg_sys::UnlockRelation(raw, pg_sys::AccessExclusiveLock as _);
                truncated = tail.pages;
                nblocks = tail.first;
                free.pop();
            }
        }
    }
    let list = FreeList::new(free);
    let pages = list.pages();
    debug_assert!(list.runs().iter().all(|r| r.end() <= u64::from(nblocks)));
    crate::storage::meta::update(rel, |m| {
        m.free = list;
        Ok(())
    })?;
    Ok(Reclaimed {
        truncated,
        free: pages,
        skipped: false,
    })
}
