//! Bitmap heap scans over a columnar table: each TID of the bitmap is fetched like an
//! index scan's. A lossy page stands for every offset a TID block can have.

use epiphany_core::columnar::rowid::ROWS_PER_TID_BLOCK;
use epiphany_core::pg::OrReport;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::fetch::FetchState;

pub struct BitmapState {
    fetch: FetchState,
    block: pg_sys::BlockNumber,
    offsets: Vec<u16>,
    next: usize,
}

/// # Safety
/// `scan` must come from `scan::scan_begin`.
unsafe fn bitmap<'a>(scan: pg_sys::TableScanDesc) -> &'a mut BitmapState {
    // SAFETY: per the contract.
    unsafe {
        let state = crate::scan::state(scan);
        if state.bitmap.is_none() {
            state.bitmap = Some(BitmapState {
                fetch: FetchState::new((*scan).rs_rd).or_report(),
                block: 0,
                offsets: Vec::new(),
                next: 0,
            });
        }
        state.bitmap.as_mut().expect("set")
    }
}

/// The next row of the current bitmap page into `slot`; false when the page is done.
///
/// # Safety
/// `scan` from `scan_begin`, `slot` a slot of its relation.
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
                .or_report()
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
        loop {
            if next_on_page(scan, slot) {
                return true;
            }
            let mut result = pg_sys::TBMIterateResult::default();
            if !pg_sys::tbm_iterate(&mut (*scan).st.rs_tbmiterator, &mut result) {
                pg_sys::ExecClearTuple(slot);
                return false;
            }
            let b = bitmap(scan);
            b.block = result.blockno;
            b.next = 0;
            if result.lossy {
                b.offsets = all_offsets();
                *lossy_pages += 1;
                *recheck = true;
            } else {
                let mut offsets = [0u16; ROWS_PER_TID_BLOCK as usize];
                let n = pg_sys::tbm_extract_page_tuple(
                    &mut result,
                    offsets.as_mut_ptr(),
                    offsets.len() as u32,
                );
                b.offsets = offsets[..n.max(0) as usize].to_vec();
                *exact_pages += 1;
                *recheck = result.recheck;
            }
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
