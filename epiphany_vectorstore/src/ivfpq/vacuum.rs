//! VACUUM of epiphany_ivfpq: every list's pages lose their dead entries (the page is
//! compacted; nothing points at an entry's position), and each list's row count is
//! set to what is left. Emptied pages stay in their chain and fill again on insert.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::OrReport;
use epiphany_core::vector::ivf_page::decode_entry;
use pgrx::itemptr::item_pointer_set_all;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::index_am::{vacuum_stats, Vacuumed};

use epiphany_core::pg::buffer::{Image, Lock, WalRecord};
use epiphany_core::pg::page;

use super::pages::{self, entries, head_in, head_place, next_of, put_head};

/// `ambulkdelete`.
#[pg_guard]
pub unsafe extern "C-unwind" fn bulk_delete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: Postgres passes the VACUUM's info and a callback that says which TIDs died.
    unsafe {
        let stats = vacuum_stats(stats);
        let vacuum = Vacuumed::new(info);
        let rel = vacuum.rel;
        let meta = pages::read_meta(rel);
        let size = meta.entry_size();
        let is_dead = callback.expect("VACUUM passes a callback");
        let mut kept_total = 0.0;
        for list in 0..meta.lists {
            let head = pages::read_head(rel, &meta, list);
            let mut block = head.first_block;
            let mut kept = 0u64;
            let mut removed = 0u64;
            while block != 0 {
                crate::hnsw::pages::delay_point();
                let buffer = vacuum.read(block, Lock::Exclusive);
                let page = buffer.page();
                let mut dead: Vec<u16> = Vec::new();
                let mut live = 0u64;
                for (item, bytes) in entries(page) {
                    let (row, _) = decode_entry(bytes, size).or_report();
                    let mut tid = pg_sys::ItemPointerData::default();
                    item_pointer_set_all(&mut tid, row.block, row.item);
                    // VACUUM's callback, guarded like any call into Postgres.
                    #[allow(ffi_unwind_calls)]
                    let gone =
                        pg_sys::ffi::pg_guard_ffi_boundary(|| is_dead(&mut tid, callback_state));
                    if gone {
                        dead.push(item);
                    } else {
                        live += 1;
                    }
                }
                let next = next_of(page);
                if !dead.is_empty() {
                    let mut record = WalRecord::start(rel);
                    let n = record.add(buffer, Image::Delta);
                    page::delete_items(record.page(n), &mut dead);
                    record.finish();
                    (*stats).tuples_removed += dead.len() as f64;
                    removed += dead.len() as u64;
                }
                kept += live;
                block = next;
            }
            kept_total += kept as f64;
            if removed > 0 {
                let (dir_block, item) = head_place(&meta, list);
                let dir = vacuum.read(dir_block, Lock::Exclusive);
                let mut now = head_in(dir.page(), item);
                now.rows = now.rows.saturating_sub(removed);
                let mut record = WalRecord::start(rel);
                let n = record.add(dir, Image::Delta);
                put_head(record.page(n), item, &now);
                record.finish();
            }
        }
        (*stats).num_index_tuples = kept_total;
        stats
    }
}

/// `amvacuumcleanup`.
#[pg_guard]
pub unsafe extern "C-unwind" fn vacuum_cleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: Postgres passes the VACUUM's info and the bulk-delete result, if any.
    unsafe {
        let vacuum = Vacuumed::new(info);
        if vacuum.analyze_only {
            return stats;
        }
        let index = vacuum.rel;
        let stats = if stats.is_null() {
            let s = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>())
                as *mut pg_sys::IndexBulkDeleteResult;
            let meta = pages::read_meta(index);
            (*s).num_index_tuples = (0..meta.lists)
                .map(|l| pages::read_head(index, &meta, l).rows as f64)
                .sum();
            s
        } else {
            stats
        };
        (*stats).num_pages = index.nblocks();
        (*stats).estimated_count = false;
        stats
    }
}
