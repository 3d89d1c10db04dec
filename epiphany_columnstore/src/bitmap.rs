//! Bitmap heap scans over a columnar table: each TID of the bitmap is fetched like an
//! index scan's. A lossy page stands for every offset a TID block can have.
//!
//! TID order is insertion order, not the order a sorted part stores rows in, so rows in
//! TID order fall all over a part's page windows. On PostgreSQL 18, where the table
//! access method iterates the bitmap itself, TIDs are taken in batches and returned in
//! storage order (a bitmap heap scan promises no order), so each page window is decoded
//! once and read in sequence. Earlier versions hand over one TID block at a time.

use epiphany_core::columnar::rowid::ROWS_PER_TID_BLOCK;
use epiphany_core::pg::OrReportIn;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::fetch::FetchState;

pub struct BitmapState {
    fetch: FetchState,
    /// The current TID block and its offsets (before PostgreSQL 18).
    #[cfg(not(feature = "pg18"))]
    block: pg_sys::BlockNumber,
    #[cfg(not(feature = "pg18"))]
    offsets: Vec<u16>,
    #[cfg(not(feature = "pg18"))]
    next: usize,
    /// Located rows of the current batch in storage order, with their recheck flags.
    #[cfg(feature = "pg18")]
    ready: std::collections::VecDeque<(crate::fetch::StoredRow, bool)>,
    #[cfg(feature = "pg18")]
    done: bool,
}

/// TIDs a PostgreSQL 18 bitmap scan sorts into storage order at a time (about 40 bytes
/// each).
#[cfg(feature = "pg18")]
const BATCH_ROWS: usize = 1 << 17;

/// # Safety
/// `scan` must come from `scan::scan_begin`.
unsafe fn bitmap<'a>(scan: pg_sys::TableScanDesc) -> &'a mut BitmapState {
    // SAFETY: per the contract.
    unsafe {
        let state = crate::scan::state(scan);
        if state.bitmap.is_none() {
            state.bitmap = Some(BitmapState {
                fetch: FetchState::new((*scan).rs_rd).or_report_in((*scan).rs_rd),
                #[cfg(not(feature = "pg18"))]
                block: 0,
                #[cfg(not(feature = "pg18"))]
                offsets: Vec::new(),
                #[cfg(not(feature = "pg18"))]
                next: 0,
                #[cfg(feature = "pg18")]
                ready: Default::default(),
                #[cfg(feature = "pg18")]
                done: false,
            });
        }
        state.bitmap.as_mut().expect("set")
    }
}

/// The next row of the current bitmap page into `slot`; false when the page is done.
///
/// # Safety
/// `scan` from `scan_begin`, `slot` a slot of its relation.
#[cfg(not(feature = "pg18"))]
unsafe fn next_on_page(scan: pg_sys::TableScanDesc, slot: *mut pg_sys::TupleTableSlot) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let b = bitmap(scan);
        while b.next < b.offsets.len() {
            let offset = b.offsets[b.next];
            b.next += 1;
            let mut tid = pg_sys::ItemPointerData::default();
            pgrx::itemptr::item_pointer_set_all(&mut tid, b.block, offset);
            if b.fetch
                .fetch((*scan).rs_rd, &mut tid, (*scan).rs_snapshot, slot)
                .or_report_in((*scan).rs_rd)
            {
                return true;
            }
        }
        false
    }
}

fn all_offsets() -> Vec<u16> {
    (1..=ROWS_PER_TID_BLOCK as u16).collect()
}

#[cfg(feature = "pg18")]
pub fn install(r: &mut pg_sys::TableAmRoutine) {
    r.scan_bitmap_next_tuple = Some(scan_bitmap_next_tuple);
}

#[cfg(feature = "pg18")]
#[pg_guard]
unsafe extern "C-unwind" fn scan_bitmap_next_tuple(
    scan: pg_sys::TableScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    recheck: *mut bool,
    lossy_pages: *mut u64,
    exact_pages: *mut u64,
) -> bool {
    // SAFETY: the executor set up rs_tbmiterator before the first call; out-pointers
    // are valid.
    unsafe {
        let rel = (*scan).rs_rd;
        let snapshot = (*scan).rs_snapshot;
        loop {
            let b = bitmap(scan);
            if let Some((row, check)) = b.ready.pop_front() {
                b.fetch.store(rel, &row, slot).or_report_in(rel);
                *recheck = check;
                return true;
            }
            if b.done {
                pg_sys::ExecClearTuple(slot);
                return false;
            }
            let mut batch = Vec::new();
            while batch.len() < BATCH_ROWS {
                let mut result = pg_sys::TBMIterateResult::default();
                if !pg_sys::tbm_iterate(&mut (*scan).st.rs_tbmiterator, &mut result) {
                    b.done = true;
                    break;
                }
                let (offsets, check) = if result.lossy {
                    *lossy_pages += 1;
                    (all_offsets(), true)
                } else {
                    let mut offsets = [0u16; ROWS_PER_TID_BLOCK as usize];
                    let n = pg_sys::tbm_extract_page_tuple(
                        &mut result,
                        offsets.as_mut_ptr(),
                        offsets.len() as u32,
                    );
                    *exact_pages += 1;
                    (offsets[..n.max(0) as usize].to_vec(), result.recheck)
                };
                for offset in offsets {
                    let mut tid = pg_sys::ItemPointerData::default();
                    pgrx::itemptr::item_pointer_set_all(&mut tid, result.blockno, offset);
                    if let Some(row) = b.fetch.locate(rel, tid, snapshot).or_report_in(rel) {
                        batch.push((row, check));
                    }
                }
            }
            // Sorted as (key, index) pairs, keys computed once: comparing through each
            // row's part would chase pointers, and moving whole rows costs more.
            let mut order: Vec<((u64, u64, u64), u32)> = batch
                .iter()
                .enumerate()
                .map(|(i, (row, _))| (row.storage_key(), i as u32))
                .collect();
            order.sort_unstable();
            let mut rows: Vec<Option<_>> = batch.into_iter().map(Some).collect();
            b.ready = order
                .into_iter()
                .filter_map(|(_, i)| rows[i as usize].take())
                .collect();
        }
    }
}

#[cfg(not(feature = "pg18"))]
pub fn install(r: &mut pg_sys::TableAmRoutine) {
    r.scan_bitmap_next_block = Some(scan_bitmap_next_block);
    r.scan_bitmap_next_tuple = Some(scan_bitmap_next_tuple);
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn scan_bitmap_next_block(
    scan: pg_sys::TableScanDesc,
    tbmres: *mut pg_sys::TBMIterateResult,
) -> bool {
    // SAFETY: the executor's current bitmap page, with `ntuples` offsets (-1: lossy).
    unsafe {
        let b = bitmap(scan);
        b.block = (*tbmres).blockno;
        b.next = 0;
        b.offsets = if (*tbmres).ntuples < 0 {
            all_offsets()
        } else {
            (*tbmres)
                .offsets
                .as_slice((*tbmres).ntuples as usize)
                .to_vec()
        };
        true
    }
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn scan_bitmap_next_tuple(
    scan: pg_sys::TableScanDesc,
    _tbmres: *mut pg_sys::TBMIterateResult,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: a scan from scan_begin and a slot of its relation.
    unsafe { next_on_page(scan, slot) }
}
