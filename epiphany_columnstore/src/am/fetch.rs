//! Fetching rows by TID: index scans, `tuple_fetch_row_version`, bitmap heap scans.
//!
//! A TID is a row number; the part owning it is found among the parts the snapshot sees
//! (the list is reloaded when the snapshot changes) and its position from the part's
//! position column (one granule, cached). The row is stored deferred into the columnar
//! slot: only the columns the executor asks for are decoded, one page window each,
//! cached per backend (`slot`), so rows fetched near each other share the work and an
//! index-only scan decodes no column at all.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::cell::RefCell;
use std::rc::Rc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::Array;
use epiphany_core::columnar::cache::GrowingLru;
use epiphany_core::columnar::part::PAGE_ROWS;
use epiphany_core::columnar::rowid::{find_part, tid_to_row};
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::owned::ContextOwned;
use epiphany_core::pg::OrReportIn;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::convert::table::TableInfo;
use crate::convert::windows::DeferredRow;
use crate::storage::catalog::{self, PartRow};
use crate::storage::part_access::RelationPart;
use crate::storage::part_access::{store_row, OpenPart, RowContext};

#[repr(C)]
struct IndexFetch {
    base: pg_sys::IndexFetchTableData,
    state: ContextOwned<FetchState>,
}

/// What identifies a snapshot's view of the catalog.
#[derive(PartialEq, Clone, Copy)]
struct SnapshotKey {
    ptr: usize,
    kind: u32,
    xmin: u32,
    xmax: u32,
    curcid: u32,
}

impl SnapshotKey {
    /// # Safety
    /// `s` must be a valid snapshot.
    unsafe fn of(s: pg_sys::Snapshot) -> Self {
        // SAFETY: per the contract.
        unsafe {
            SnapshotKey {
                ptr: s as usize,
                kind: (*s).snapshot_type,
                xmin: (*s).xmin.into_inner(),
                xmax: (*s).xmax.into_inner(),
                curcid: (*s).curcid,
            }
        }
    }
}

pub struct FetchState {
    info: Rc<TableInfo>,
    storage: Option<u64>,
    snapshot: Option<SnapshotKey>,
    parts: Vec<PartRow>,
    /// The part of the last fetch (fetches often stay in one).
    last: Option<Rc<OpenPart>>,
    /// The stored positions of the last fetch's window (fetches in TID order stay in
    /// one), saving the cache lookup.
    positions: Option<(crate::convert::windows::WindowKey, arrow_array::ArrayRef)>,
    row_context: RowContext,
}

impl FetchState {
    /// # Safety
    /// `rel` open.
    pub unsafe fn new(rel: Rel<'_>) -> Result<FetchState, Error> {
        // SAFETY: per the contract; the context is deleted on drop.
        unsafe {
            if !pg_sys::IsInParallelMode() {
                crate::writes::flush_relid(rel.oid(), true);
            }
            Ok(FetchState {
                info: Rc::new(TableInfo::load(rel)?),
                storage: crate::storage::meta::storage_id(rel)?,
                snapshot: None,
                parts: Vec::new(),
                last: None,
                positions: None,
                row_context: RowContext::new(c"epiphany_columnar fetch"),
            })
        }
    }

    /// Row `tid` as `snapshot` sees it, into `slot`; false if it does not exist for it.
    /// Into a columnar slot the row is stored deferred: its columns are decoded when the
    /// executor asks for them (see `slot`).
    ///
    /// # Safety
    /// `rel` open, `snapshot` valid, `slot` a slot of `rel`.
    pub unsafe fn fetch(
        &mut self,
        rel: Rel<'_>,
        tid: pg_sys::ItemPointer,
        snapshot: pg_sys::Snapshot,
        slot: *mut pg_sys::TupleTableSlot,
    ) -> Result<bool, Error> {
        // SAFETY: per the contract.
        unsafe {
            match self.locate(rel, *tid, snapshot)? {
                Some(row) => {
                    self.store(rel, &row, slot)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        }
    }

    /// Where row `tid` is stored, as `snapshot` sees it; `None` if it does not exist for
    /// it.
    ///
    /// # Safety
    /// `rel` open, `snapshot` valid.
    pub unsafe fn locate(
        &mut self,
        rel: Rel<'_>,
        tid: pg_sys::ItemPointerData,
        snapshot: pg_sys::Snapshot,
    ) -> Result<Option<StoredRow>, Error> {
        let (block, offset) = pgrx::itemptr::item_pointer_get_both(tid);
        let Some(row) = tid_to_row(block, offset) else {
            return Ok(None);
        };
        let Some(storage) = self.storage else {
            return Ok(None);
        };
        // SAFETY: per the contract.
        let key = unsafe { SnapshotKey::of(snapshot) };
        if self.snapshot != Some(key) {
            // SAFETY: per the contract.
            self.parts = unsafe { catalog::visible_for_read(rel, Some(storage), snapshot) }?;
            self.snapshot = Some(key);
        }
        let Some(part) = find_part(&self.parts, row, |p| (p.first_row, p.row_count)) else {
            return Ok(None);
        };
        let open = match &self.last {
            Some(p) if p.row.part_id == part.part_id && p.row.storage_id == part.storage_id => {
                p.clone()
            }
            // SAFETY: per the contract.
            _ => {
                let p = unsafe { cached_part(rel, &self.info.schema, part) }?;
                self.last = Some(p.clone());
                p
            }
        };
        // SAFETY: per the contract.
        let position = unsafe { position_of(rel, &open, row, &mut self.positions) }?;
        Ok(Some(StoredRow {
            part: open,
            position,
            tid,
        }))
    }

    /// A located row into `slot` (deferred into a columnar slot).
    ///
    /// # Safety
    /// `rel` open, `slot` a slot of `rel`, `row` located by this state.
    pub unsafe fn store(
        &mut self,
        rel: Rel<'_>,
        row: &StoredRow,
        slot: *mut pg_sys::TupleTableSlot,
    ) -> Result<(), Error> {
        let open = &row.part;
        let (g, within, first, count) = row.window()?;
        // SAFETY: per the contract.
        unsafe {
            if crate::convert::slot::is_columnar(slot) {
                crate::convert::slot::store_deferred(
                    slot,
                    DeferredRow {
                        info: self.info.clone(),
                        relid: rel.oid(),
                        part: open.clone(),
                        granule: g,
                        first,
                        count,
                        row: within - first,
                    },
                    row.tid,
                );
                (*slot).tts_tableOid = rel.oid();
                return Ok(());
            }
            // Another kind of slot: every column now.
            let mut columns: Vec<usize> = (0..self.info.columns.len()).collect();
            columns.push(open.reader.row_column());
            let batch = open.rows(rel, &columns, g, first, count)?;
            store_row(
                &self.row_context,
                slot,
                &self.info.columns,
                &batch,
                within - first,
                open.row.first_row,
                rel.oid(),
            )?;
        }
        Ok(())
    }

    /// Row `r` of a decoded page window of `rel` into columnar `slot` with TID `tid`.
    ///
    /// # Safety
    /// `rel` open, `slot` a columnar slot of it, `window` decoded for the columns the
    /// slot needs.
    #[cfg(feature = "pg18")]
    pub unsafe fn store_from_window(
        &self,
        rel: Rel<'_>,
        window: &crate::convert::windows::Window,
        r: usize,
        tid: pg_sys::ItemPointerData,
        slot: *mut pg_sys::TupleTableSlot,
    ) {
        // SAFETY: per the contract.
        unsafe {
            crate::convert::slot::store_from_window(slot, &self.info, window, r, tid);
            (*slot).tts_tableOid = rel.oid();
        }
    }

    /// The table's columns.
    #[cfg(feature = "pg18")]
    pub fn column_count(&self) -> usize {
        self.info.columns.len()
    }
}

/// A row found by TID: its part and stored position.
pub struct StoredRow {
    pub part: Rc<OpenPart>,
    pub position: u64,
    pub tid: pg_sys::ItemPointerData,
}

impl StoredRow {
    /// The row's granule and place in it, and its page window (first row within the
    /// granule, rows): a fetch decodes (and caches) one page window per column.
    fn window(&self) -> Result<(usize, usize, usize, usize), Error> {
        let pos = self.position;
        let (g, within) = self.part.reader.locate(pos).ok_or_else(|| {
            Error::Corrupted(format!(
                "part {}: position {pos} past its rows",
                self.part.row.part_id
            ))
        })?;
        let granule_rows = self.part.reader.granule_len(g).unwrap_or(0) as usize;
        let first = within / PAGE_ROWS * PAGE_ROWS;
        let count = PAGE_ROWS.min(granule_rows - first);
        Ok((g, within, first, count))
    }
}

/// The page window holding stored position `position` of `part`, with the columns
/// `needed` decoded, and the stored positions it covers (rows in storage order share
/// it).
///
/// # Safety
/// `rel` open, the relation `part` belongs to.
#[cfg(feature = "pg18")]
pub unsafe fn window_at(
    rel: Rel<'_>,
    part: &Rc<OpenPart>,
    position: u64,
    needed: &[usize],
) -> Result<(std::ops::Range<u64>, crate::convert::windows::Window), Error> {
    let row = StoredRow {
        part: part.clone(),
        position,
        tid: pg_sys::ItemPointerData::default(),
    };
    let (g, within, first, count) = row.window()?;
    let start = position - (within - first) as u64;
    // SAFETY: per the contract.
    let window =
        unsafe { crate::convert::windows::Window::decode(rel, part, g, first, count, needed) }?;
    Ok((start..start + count as u64, window))
}

/// The stored position of row number `row` of `part` (the position column is decoded a
/// page window at a time and cached with the decoded column windows).
///
/// # Safety
/// `rel` open, the relation `part` belongs to.
unsafe fn position_of(
    rel: Rel<'_>,
    part: &OpenPart,
    row: u64,
    last: &mut Option<(crate::convert::windows::WindowKey, arrow_array::ArrayRef)>,
) -> Result<u64, Error> {
    let offset = row - part.row.first_row;
    let (g, within) = part.reader.locate(offset).ok_or_else(|| {
        Error::Corrupted(format!(
            "row offset {offset} past part {}",
            part.row.part_id
        ))
    })?;
    let granule_rows = part.reader.granule_len(g).unwrap_or(0) as usize;
    let first = within / PAGE_ROWS * PAGE_ROWS;
    let count = PAGE_ROWS.min(granule_rows - first);
    let column = part.reader.pos_column();
    let key = (
        part.row.storage_id,
        part.row.part_id,
        g as u32,
        first as u32,
        column as u32,
    );
    let positions = match last {
        Some((k, array)) if *k == key => array,
        _ => {
            let array = crate::convert::windows::windows(|w| {
                w.get_or_insert(&key, || {
                    // SAFETY: per the contract.
                    let array = part.column(rel, column, g, first, count)?;
                    let bytes = array.get_array_memory_size();
                    Ok::<_, Error>((array, bytes))
                })
            })?;
            &last.insert((key, array)).1
        }
    };
    let within = within - first;
    let pos = positions.as_primitive::<UInt32Type>().value(within);
    if u64::from(pos) >= part.row.row_count {
        return Err(Error::Corrupted(format!(
            "part {}: position {pos} out of range",
            part.row.part_id
        )));
    }
    Ok(u64::from(pos))
}

/// Parts opened by this backend's fetches (footer read, chunks fetched so far), across
/// queries: parts never change, and (storage id, part id) names one for good. Bounded
/// by a byte budget of what they hold; the least recently used go first.
const CACHE_BYTES: u64 = 64 << 20;

thread_local! {
    static PARTS: RefCell<GrowingLru<(u64, u64), Rc<OpenPart>>> =
        const { RefCell::new(GrowingLru::new(CACHE_BYTES)) };
}

/// The cached open part `row` of `rel`, opening it if needed.
///
/// # Safety
/// `rel` open, the relation `row` belongs to.
unsafe fn cached_part(
    rel: Rel<'_>,
    schema: &epiphany_core::columnar::TableSchema,
    row: &PartRow,
) -> Result<Rc<OpenPart>, Error> {
    let key = (row.storage_id, row.part_id);
    if let Some(part) = PARTS.with(|c| c.borrow_mut().get(&key)) {
        return Ok(part);
    }
    // SAFETY: per the contract.
    let part = Rc::new(OpenPart::open_for_fetch(rel, schema, row.clone())?);
    PARTS.with(|c| {
        c.borrow_mut().insert(key, part.clone(), |p| {
            p.reader.source().bytes_held() + p.reader.dictionary_bytes()
        })
    });
    Ok(part)
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_begin(
    rel: pg_sys::Relation,
) -> *mut pg_sys::IndexFetchTableData {
    // SAFETY: an open relation; the descriptor is freed by index_fetch_end.
    unsafe {
        let state = FetchState::new(Rel::new(rel)).or_report_in(Rel::new(rel));
        let desc = pg_sys::palloc0(std::mem::size_of::<IndexFetch>()) as *mut IndexFetch;
        (*desc).base.rel = rel;
        // Owned by the descriptor's memory context: an ERROR mid-scan frees it too.
        (*desc).state = ContextOwned::new(state);
        desc as _
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_reset(_data: *mut pg_sys::IndexFetchTableData) {}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_end(data: *mut pg_sys::IndexFetchTableData) {
    // SAFETY: a descriptor from index_fetch_begin, ended once.
    unsafe {
        let desc = data as *mut IndexFetch;
        (*desc).state.drop_now();
        pg_sys::pfree(desc as _);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_tuple(
    data: *mut pg_sys::IndexFetchTableData,
    tid: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
    call_again: *mut bool,
    all_dead: *mut bool,
) -> bool {
    // SAFETY: a descriptor from index_fetch_begin; Postgres's pointers are valid.
    unsafe {
        *call_again = false;
        if !all_dead.is_null() {
            *all_dead = false;
        }
        let desc = data as *mut IndexFetch;
        (*desc)
            .state
            .get()
            .expect("an index fetch used after its end")
            .fetch(Rel::new((*desc).base.rel), tid, snapshot, slot)
            .or_report_in(Rel::new((*desc).base.rel))
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_fetch_row_version(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: Postgres's arguments are valid for the call.
    unsafe {
        let rel = Rel::new(rel);
        let mut state = FetchState::new(rel).or_report_in(rel);
        state.fetch(rel, tid, snapshot, slot).or_report_in(rel)
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_tid_valid(
    _scan: pg_sys::TableScanDesc,
    tid: pg_sys::ItemPointer,
) -> bool {
    // SAFETY: a valid item pointer.
    let (block, offset) = unsafe { pgrx::itemptr::item_pointer_get_both(*tid) };
    tid_to_row(block, offset).is_some()
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_get_latest_tid(
    _scan: pg_sys::TableScanDesc,
    _tid: pg_sys::ItemPointer,
) {
    // Rows are never updated in place or moved to a new version: the TID is the latest.
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_satisfies_snapshot(
    _rel: pg_sys::Relation,
    _slot: *mut pg_sys::TupleTableSlot,
    _snapshot: pg_sys::Snapshot,
) -> bool {
    // A row read from a part is visible to every snapshot that sees the part, and rows
    // are not deleted yet.
    true
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_delete_tuples(
    _rel: pg_sys::Relation,
    delstate: *mut pg_sys::TM_IndexDeleteOp,
) -> pg_sys::TransactionId {
    // No row is ever dead yet, so no index entry can be removed.
    // SAFETY: a valid delete operation.
    unsafe { (*delstate).ndeltids = 0 };
    pg_sys::InvalidTransactionId
}
