//! Bitmap heap scans over a columnar table: each TID of the bitmap is fetched like an
//! index scan's. A lossy page stands for every offset a TID block can have.
//!
//! TID order is insertion order, not the order a sorted part stores rows in, so rows in
//! TID order fall all over a part's page windows. On PostgreSQL 18, where the table
//! access method iterates the bitmap itself, TIDs are taken in batches and returned in
//! storage order (a bitmap heap scan promises no order), so each page window is decoded
//! once and read in sequence. Earlier versions hand over one TID block at a time.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::rowid::ROWS_PER_TID_BLOCK;
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::OrReportIn;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::am::fetch::FetchState;

pub struct BitmapState {
    fetch: FetchState,
    /// The current TID block and its offsets (before PostgreSQL 18).
    #[cfg(not(feature = "pg18"))]
    block: pg_sys::BlockNumber,
    #[cfg(not(feature = "pg18"))]
    offsets: Vec<u16>,
    #[cfg(not(feature = "pg18"))]
    next: usize,
    /// The located rows of the current batch, in storage order.
    #[cfg(feature = "pg18")]
    batch: Batch,
    #[cfg(feature = "pg18")]
    done: bool,
    /// The columns the scan's slot needs (known at the first row), without and with
    /// what a recheck reads.
    #[cfg(feature = "pg18")]
    needed: [Option<Vec<usize>>; 2],
    /// The page window rows come from now.
    #[cfg(feature = "pg18")]
    window: Option<Current>,
}

/// TIDs a PostgreSQL 18 bitmap scan sorts into storage order at a time (16 bytes each).
#[cfg(feature = "pg18")]
const BATCH_ROWS: usize = 1 << 17;

/// A batch's rows, each as a (part slot of the batch's part table, stored position)
/// word to sort by and its TID beside it (with the recheck flag), so that sorting moves
/// 16 bytes a row and returning rows in sorted order reads memory in sequence.
#[cfg(feature = "pg18")]
#[derive(Default)]
struct Batch {
    parts: Vec<std::rc::Rc<crate::storage::part_access::OpenPart>>,
    rows: Vec<(u64, u64)>,
    next: usize,
}

#[cfg(feature = "pg18")]
const RECHECK: u64 = 1 << 63;

#[cfg(feature = "pg18")]
impl Batch {
    fn push(&mut self, row: crate::am::fetch::StoredRow, recheck: bool) {
        let slot = match self
            .parts
            .iter()
            .rposition(|p| std::rc::Rc::ptr_eq(p, &row.part))
        {
            Some(i) => i,
            None => {
                self.parts.push(row.part);
                self.parts.len() - 1
            }
        };
        assert!(row.position < 1 << 32, "a stored position past 2^32");
        let (block, offset) = pgrx::itemptr::item_pointer_get_both(row.tid);
        let tid = u64::from(block) << 16 | u64::from(offset);
        self.rows.push((
            (slot as u64) << 32 | row.position,
            tid | if recheck { RECHECK } else { 0 },
        ));
    }

    /// Whether one more TID block's rows fit.
    fn has_room(&self) -> bool {
        self.rows.len() + ROWS_PER_TID_BLOCK as usize <= BATCH_ROWS
    }

    fn sort(&mut self) {
        self.rows.sort_unstable_by_key(|r| r.0);
    }

    /// The next row in storage order: (part slot, position, TID, recheck).
    fn pop(&mut self) -> Option<(usize, u64, pg_sys::ItemPointerData, bool)> {
        let (key, tid) = *self.rows.get(self.next)?;
        self.next += 1;
        let mut item = pg_sys::ItemPointerData::default();
        pgrx::itemptr::item_pointer_set_all(&mut item, (tid >> 16) as u32, tid as u16);
        Some((
            (key >> 32) as usize,
            key & 0xffff_ffff,
            item,
            tid & RECHECK != 0,
        ))
    }
}

/// The page window of the rows being returned: which part (slot of the batch's part
/// table) and which stored positions it covers.
#[cfg(feature = "pg18")]
struct Current {
    part: usize,
    positions: std::ops::Range<u64>,
    window: crate::convert::windows::Window,
    /// Whether it holds what a recheck reads.
    recheck: bool,
}

/// # Safety
/// `scan` must come from `scan::scan_begin`.
unsafe fn bitmap<'a>(scan: pg_sys::TableScanDesc) -> &'a mut BitmapState {
    // SAFETY: per the contract.
    unsafe {
        let state = crate::am::scan::state(scan);
        if state.bitmap.is_none() {
            state.bitmap = Some(BitmapState {
                fetch: {
                    let rel = Rel::new((*scan).rs_rd);
                    FetchState::new(rel).or_report_in(rel)
                },
                #[cfg(not(feature = "pg18"))]
                block: 0,
                #[cfg(not(feature = "pg18"))]
                offsets: Vec::new(),
                #[cfg(not(feature = "pg18"))]
                next: 0,
                #[cfg(feature = "pg18")]
                batch: Batch::default(),
                #[cfg(feature = "pg18")]
                done: false,
                #[cfg(feature = "pg18")]
                needed: [None, None],
                #[cfg(feature = "pg18")]
                window: None,
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
                .fetch(Rel::new((*scan).rs_rd), &mut tid, (*scan).rs_snapshot, slot)
                .or_report_in(Rel::new((*scan).rs_rd))
            {
                return true;
            }
        }
        false
    }
}

#[cfg(not(feature = "pg18"))]
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
        let rel = Rel::new((*scan).rs_rd);
        let snapshot = (*scan).rs_snapshot;
        loop {
            let b = bitmap(scan);
            if let Some((part, position, tid, check)) = b.batch.pop() {
                let open = &b.batch.parts[part];
                if !crate::convert::slot::is_columnar(slot) {
                    let row = crate::am::fetch::StoredRow {
                        part: open.clone(),
                        position,
                        tid,
                    };
                    b.fetch.store(rel, &row, slot).or_report_in(rel);
                } else {
                    let current = match &b.window {
                        Some(c)
                            if c.part == part
                                && c.positions.contains(&position)
                                && (c.recheck || !check) =>
                        {
                            c
                        }
                        _ => {
                            let needed = b.needed[check as usize].get_or_insert_with(|| {
                                crate::convert::slot::needed_columns(
                                    slot,
                                    b.fetch.column_count(),
                                    check,
                                )
                            });
                            let (positions, window) =
                                crate::am::fetch::window_at(rel, open, position, needed)
                                    .or_report_in(rel);
                            b.window.insert(Current {
                                part,
                                positions,
                                window,
                                recheck: check,
                            })
                        }
                    };
                    let r = (position - current.positions.start) as usize;
                    b.fetch
                        .store_from_window(rel, &current.window, r, tid, slot);
                }
                *recheck = check;
                return true;
            }
            if b.done {
                pg_sys::ExecClearTuple(slot);
                return false;
            }
            b.batch = Batch::default();
            b.window = None;
            while b.batch.has_room() {
                let mut result = pg_sys::TBMIterateResult::default();
                if !pg_sys::tbm_iterate(&mut (*scan).st.rs_tbmiterator, &mut result) {
                    b.done = true;
                    break;
                }
                let mut exact = [0u16; ROWS_PER_TID_BLOCK as usize];
                let (offsets, check) = if result.lossy {
                    *lossy_pages += 1;
                    (&ALL_OFFSETS[..], true)
                } else {
                    let n = pg_sys::tbm_extract_page_tuple(
                        &mut result,
                        exact.as_mut_ptr(),
                        exact.len() as u32,
                    );
                    *exact_pages += 1;
                    (&exact[..n.max(0) as usize], result.recheck)
                };
                for &offset in offsets {
                    let mut tid = pg_sys::ItemPointerData::default();
                    pgrx::itemptr::item_pointer_set_all(&mut tid, result.blockno, offset);
                    if let Some(row) = b.fetch.locate(rel, tid, snapshot).or_report_in(rel) {
                        b.batch.push(row, check);
                    }
                }
            }
            b.batch.sort();
        }
    }
}

/// Every offset a TID block can have (a lossy bitmap page stands for all of them).
#[cfg(feature = "pg18")]
const ALL_OFFSETS: [u16; ROWS_PER_TID_BLOCK as usize] = {
    let mut all = [0u16; ROWS_PER_TID_BLOCK as usize];
    let mut i = 0;
    while i < all.len() {
        all[i] = i as u16 + 1;
        i += 1;
    }
    all
};

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
