//! Inserts: rows buffered per (sub)transaction, flushed into parts.
//!
//! A row gets its row number (so its TID) at insert, from numbers this backend reserved
//! on the metapage, because indexes are updated right after. Rows wait in the core's
//! [`WriteSet`] and become parts at pre-commit, when the same transaction is about to
//! read the table (a query's start, or a scan that begins without one), at the end of a
//! bulk insert (`COPY`, `CREATE TABLE AS`, table rewrites) or when the buffer passes
//! `epiphany.columnar_write_buffer`, which bounds the memory of any load.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use epiphany_core::columnar::flush::SnapshotCommands;
use epiphany_core::columnar::rowid::{row_to_tid, Reservation};
use epiphany_core::columnar::scan_plan::{encode_stats, summarize};
use epiphany_core::columnar::write_set::WriteSet;
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::{OrReport, OrReportIn};
use epiphany_core::storage::{pages_for, write_extent, write_extent_at};
use epiphany_core::Error;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::convert::table::TableInfo;

mod encoder;
mod gate;

use crate::storage::catalog::{self, PartRow};
#[cfg(any(test, feature = "pg_test"))]
pub use encoder::encoders;
use encoder::{encode, Encoded, Job, Running};
use epiphany_core::pg::page_store::RelationPageStore;

/// Buffered bytes (kB) per table that trigger a flush.
pub static WRITE_BUFFER_KB: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

#[derive(Default)]
struct Backend {
    writes: WriteSet,
    /// Per table written in this transaction.
    tables: HashMap<pg_sys::Oid, TableInfo>,
    /// Per (table, storage id), kept across transactions.
    reservations: HashMap<(pg_sys::Oid, u64), Reservation>,
    /// Storage ids of tables written in this transaction.
    storage: HashMap<pg_sys::Oid, u64>,
    /// Parts being encoded on a helper thread while a load goes on.
    job: Option<Job>,
    /// Snapshots of this transaction's running queries (where flushes in the middle of
    /// it must cut parts).
    snapshots: SnapshotCommands,
    /// Rows and bytes inserted since the buffer was last measured (they pace the
    /// measurements).
    unmeasured_rows: usize,
    unmeasured: usize,
    registered: bool,
}

impl Backend {
    /// The snapshots a flush now must respect: those recorded, and one at the current
    /// command (the reader that asks for the flush).
    fn snapshots_now(&self) -> SnapshotCommands {
        let mut s = self.snapshots.clone();
        // SAFETY: main thread, in a transaction.
        s.record(unsafe { pg_sys::GetCurrentCommandId(false) });
        s
    }
}

thread_local! {
    static BACKEND: RefCell<Backend> = RefCell::new(Backend::default());
}

pub fn init() {
    GucRegistry::define_int_guc(
        c"epiphany.columnar_write_buffer",
        c"Rows a transaction inserts into one epiphany_columnar table are buffered up to this much memory before they are written as a part.",
        c"Larger buffers give larger, better sorted parts; the memory of a COPY stays near this bound.",
        &WRITE_BUFFER_KB,
        1024,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    gate::install();
}

fn ensure_callbacks() {
    let register = BACKEND.with(|b| !std::mem::replace(&mut b.borrow_mut().registered, true));
    if register {
        // SAFETY: registered once per backend, on the main thread.
        unsafe {
            pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
        }
    }
}

/// Buffers the row in `slot` for `rel` and gives the slot its TID.
///
/// # Safety
/// `rel` is a columnar relation locked for writing; `slot` holds a row of it.
pub unsafe fn insert(rel: Rel<'_>, slot: *mut pg_sys::TupleTableSlot, cid: pg_sys::CommandId) {
    // SAFETY: per the contract.
    unsafe { insert_many(rel, &[slot], cid) }
}

/// Buffers the rows in `slots` for `rel` and gives each slot its TID. What does not
/// depend on the row is done once for all of them: COPY hands over up to 1000 at a time.
///
/// # Safety
/// `rel` is a columnar relation locked for writing; each slot holds a row of it.
pub unsafe fn insert_many(
    rel: Rel<'_>,
    slots: &[*mut pg_sys::TupleTableSlot],
    cid: pg_sys::CommandId,
) {
    ensure_callbacks();
    let relid = rel.oid();
    let mut rows = Vec::with_capacity(slots.len());
    for _ in slots {
        rows.push(next_row_number(rel).or_report_in(rel));
    }
    // SAFETY: main thread.
    let level = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let over = BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        let b = &mut *b;
        let info = match b.tables.entry(relid) {
            Entry::Vacant(e) => e.insert(TableInfo::load(rel).or_report_in(rel)),
            Entry::Occupied(e) => e.into_mut(),
        };
        let buffer = b.writes.buffer(level, relid.to_u32(), &info.buffered);
        let n = info.columns.len();
        let mut batch_bytes = 0;
        for (&slot, &row) in slots.iter().zip(&rows) {
            // SAFETY: a slot of this relation; its values are copied while it holds them.
            unsafe {
                pg_sys::slot_getallattrs(slot);
                let values = std::slice::from_raw_parts((*slot).tts_values, n);
                let nulls = std::slice::from_raw_parts((*slot).tts_isnull, n);
                for (i, column) in info.columns.iter().enumerate() {
                    if nulls[i] {
                        buffer.push_null();
                        batch_bytes += 8;
                    } else {
                        batch_bytes += crate::convert::datum::push_datum(buffer, column, values[i]);
                    }
                }
            }
            buffer.push_word(row);
            buffer.push_word(u64::from(cid));
            buffer.end_row().or_report();
            batch_bytes += 16;
        }
        // Measuring the buffer walks its batches: do it every few hundred rows, or sooner
        // after large values (so the buffer never grows far past its bound).
        b.unmeasured_rows += slots.len();
        b.unmeasured += batch_bytes;
        if b.unmeasured_rows < 256 && b.unmeasured < 1 << 20 {
            return false;
        }
        b.unmeasured_rows = 0;
        b.unmeasured = 0;
        let encoding = b
            .job
            .as_ref()
            .filter(|j| j.relid == relid)
            .map_or(0, |j| j.bytes);
        b.writes
            .pending_bytes(relid.to_u32())
            .saturating_sub(encoding)
            > WRITE_BUFFER_KB.get() as usize * 1024
    });
    for (&slot, &row) in slots.iter().zip(&rows) {
        // SAFETY: a valid slot.
        unsafe {
            let (block, offset) = row_to_tid(row).or_report();
            pgrx::itemptr::item_pointer_set_all(&mut (*slot).tts_tid, block, offset);
            (*slot).tts_tableOid = relid;
        }
    }
    if over {
        flush_in_background(rel).or_report_in(rel);
    }
}

/// Writes what the helper thread encoded for `rel` (if anything), then hands this
/// level's buffered rows of `rel` (locked for writing) to a new helper thread.
fn flush_in_background(rel: Rel<'_>) -> Result<(), Error> {
    let relid = rel.oid();
    collect_job(rel)?;
    // SAFETY: main thread.
    let level = unsafe { pg_sys::GetCurrentSubTransactionId() };
    BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        let b = &mut *b;
        let batches = b.writes.seal(level, relid.to_u32());
        let Some(info) = b.tables.get(&relid) else {
            return;
        };
        if batches.is_empty() {
            return;
        }
        let (schema, buffered, sort_key, options) = (
            info.schema.clone(),
            info.buffered.clone(),
            info.sort_key.clone(),
            info.options.clone(),
        );
        let work = batches.clone();
        let bytes = batches.iter().map(|x| x.memory_bytes()).sum();
        let snapshots = b.snapshots_now();
        let cancel = Arc::new(AtomicBool::new(false));
        let cancelled = cancel.clone();
        let running = Running::start();
        let handle = std::thread::spawn(move || {
            let _running = running;
            encode(
                &schema,
                &buffered,
                &sort_key,
                &options,
                &work,
                Some(&snapshots),
                false,
                Some(&cancelled),
            )
        });
        b.job = Some(Job {
            relid,
            level,
            batches,
            bytes,
            handle,
            cancel,
        });
    });
    Ok(())
}

/// Waits for the helper thread's parts for `rel` and writes them, if the rows they hold
/// are still pending in this subtransaction; otherwise they are dropped and the rows
/// stay pending for an ordinary flush. `rel` is locked for writing.
fn collect_job(rel: Rel<'_>) -> Result<(), Error> {
    let relid = rel.oid();
    let job = BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        if b.job.as_ref().is_some_and(|j| j.relid == relid) {
            b.job.take()
        } else {
            None
        }
    });
    let Some(job) = job else {
        return Ok(());
    };
    let encoded = job
        .handle
        .join()
        .unwrap_or_else(|_| Err(Error::Internal("the part encoder thread panicked".into())))?;
    // SAFETY: main thread.
    let level = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let taken = level == job.level
        && BACKEND.with(|b| {
            b.borrow_mut()
                .writes
                .take_sealed(level, relid.to_u32(), job.batches)
        });
    if taken {
        write_parts(rel, encoded)?;
    }
    Ok(())
}

/// Forgets the helper thread's work (its rows are being discarded or rolled back).
fn drop_job(relid: Option<pg_sys::Oid>) {
    let job = BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        if b.job
            .as_ref()
            .is_some_and(|j| relid.is_none_or(|r| r == j.relid))
        {
            b.job.take()
        } else {
            None
        }
    });
    if let Some(job) = job {
        job.cancel();
    }
}

/// Writes encoded parts into `rel`'s pages and their catalog rows (`rel` is locked for
/// writing).
fn write_parts(rel: Rel<'_>, parts: Vec<Encoded>) -> Result<(), Error> {
    if parts.is_empty() {
        return Ok(());
    }
    // Pages are written before the transaction commits: VACUUM must not take pages back
    // while it runs (see `vacuum`).
    crate::am::vacuum::hold_off(rel);
    let storage_id = crate::storage::meta::update(rel, |m| Ok(m.storage_id))?;
    let mut store = RelationPageStore::new(rel);
    for e in parts {
        let pages = pages_for(&store, e.part.bytes.len());
        // Free pages VACUUM found are used before the relation grows.
        let (part_id, free) = crate::storage::meta::update(rel, |m| {
            Ok((m.reserve_extent(), m.free.allocate(pages)))
        })?;
        let extent = match free {
            Some(first) => write_extent_at(&mut store, part_id, &e.part.bytes, first)?,
            None => write_extent(&mut store, part_id, &e.part.bytes)?,
        };
        catalog::insert(
            &PartRow {
                storage_id,
                part_id,
                level: 0,
                first_row: e.first_row,
                row_count: e.part.rows,
                first_block: extent.first_block,
                pages: extent.pages,
                byte_len: extent.len,
                stats: encode_stats(&summarize(&e.part.granules)),
            },
            e.command,
        )?;
    }
    Ok(())
}

/// A row number for a new row of `rel` (locked for writing).
fn next_row_number(rel: Rel<'_>) -> Result<u64, Error> {
    let relid = rel.oid();
    let cached = BACKEND.with(|b| b.borrow().storage.get(&relid).copied());
    let storage = match cached {
        Some(s) => s,
        None => {
            // Creates the metapage if needed.
            let s = crate::storage::meta::update(rel, |m| Ok(m.storage_id))?;
            BACKEND.with(|b| b.borrow_mut().storage.insert(relid, s));
            s
        }
    };
    let (taken, chunk) = BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        let r = b.reservations.entry((relid, storage)).or_default();
        (r.take(), r.next_chunk())
    });
    if let Some(n) = taken {
        return Ok(n);
    }
    let first = crate::storage::meta::update(rel, |m| m.reserve_rows(chunk))?;
    Ok(BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        let r = b.reservations.entry((relid, storage)).or_default();
        r.refill(first, chunk);
        r.take().expect("just reserved")
    }))
}

/// Whether this transaction has buffered rows for `relid`.
pub fn has_pending(relid: pg_sys::Oid) -> bool {
    BACKEND.with(|b| b.borrow().writes.pending_rows(relid.to_u32()) > 0)
}

/// Writes the buffered rows of `rel` as parts, inserted by the current subtransaction.
/// `by_command` cuts parts at command boundaries (needed while the transaction goes on).
/// `rel` is locked for writing.
pub fn flush(rel: Rel<'_>, by_command: bool) -> Result<(), Error> {
    collect_job(rel)?;
    let relid = rel.oid();
    // SAFETY: main thread.
    let level = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let batches = BACKEND.with(|b| b.borrow_mut().writes.take_for_flush(level, relid.to_u32()));
    if batches.is_empty() {
        return Ok(());
    }
    let info = match BACKEND.with(|b| b.borrow_mut().tables.remove(&relid)) {
        Some(info) => info,
        None => TableInfo::load(rel)?,
    };
    // Parts are stamped with their rows' latest command. In the middle of a transaction
    // a snapshot taken between two commands (a cursor's, say) must see exactly the rows
    // before it, so parts are cut where a snapshot lies between two commands.
    let snapshots = by_command.then(|| BACKEND.with(|b| b.borrow().snapshots_now()));
    let result = encode(
        &info.schema,
        &info.buffered,
        &info.sort_key,
        &info.options,
        &batches,
        snapshots.as_ref(),
        true,
        None,
    )
    .and_then(|parts| write_parts(rel, parts));
    BACKEND.with(|b| b.borrow_mut().tables.insert(relid, info));
    result
}

/// Flushes the buffered rows of relation `relid` if it has any.
pub fn flush_relid(relid: pg_sys::Oid, by_command: bool) {
    if !has_pending(relid) {
        return;
    }
    // SAFETY: the transaction holds RowExclusiveLock on a table it inserted into; the
    // relation is closed again before returning.
    unsafe {
        let rel = pg_sys::try_relation_open(relid, pg_sys::RowExclusiveLock as _);
        if rel.is_null() {
            discard(relid);
            return;
        }
        let result = flush(Rel::new(rel), by_command);
        pg_sys::relation_close(rel, pg_sys::RowExclusiveLock as _);
        result.or_report();
    }
}

/// Flushes every table with buffered rows.
pub fn flush_all() {
    let tables = BACKEND.with(|b| b.borrow().writes.pending_tables());
    for t in tables {
        flush_relid(pg_sys::Oid::from(t), true);
    }
}

/// Forgets the buffered rows of `relid` (its storage is being replaced or dropped).
pub fn discard(relid: pg_sys::Oid) {
    BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        // SAFETY: main thread.
        let level = unsafe { pg_sys::GetCurrentSubTransactionId() };
        // Taking them for a flush that never happens drops them; if this subtransaction
        // aborts, rows of outer levels come back, as the replaced storage does.
        let _ = b.writes.take_for_flush(level, relid.to_u32());
        b.storage.remove(&relid);
        b.tables.remove(&relid);
    });
    drop_job(Some(relid));
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PRE_PREPARE => {
            let tables = BACKEND.with(|b| b.borrow().writes.pending_tables());
            for t in tables {
                flush_relid(pg_sys::Oid::from(t), false);
            }
        }
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE => {
            BACKEND.with(|b| {
                let mut b = b.borrow_mut();
                b.writes.clear();
                b.tables.clear();
                b.storage.clear();
                b.snapshots.clear();
                if let Some(job) = b.job.take() {
                    job.cancel();
                }
            });
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    sub: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    match event {
        SUBXACT_EVENT_COMMIT_SUB => {
            BACKEND.with(|b| b.borrow_mut().writes.subxact_commit(sub, parent))
        }
        SUBXACT_EVENT_ABORT_SUB => BACKEND.with(|b| {
            let mut b = b.borrow_mut();
            b.writes.subxact_abort(sub);
            // A TRUNCATE in the aborted subtransaction may have changed the storage.
            b.storage.clear();
            if b.job.as_ref().is_some_and(|j| j.level >= sub) {
                b.job.take().expect("checked").cancel();
            }
        }),
        _ => {}
    }
}
