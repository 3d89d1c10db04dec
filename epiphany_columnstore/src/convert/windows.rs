//! Decoded page windows of fetched rows: one page window (up to 1,024 rows of a
//! granule) of one column, decoded once and kept in a per-backend cache with a byte
//! budget (`epiphany.columnar_fetch_cache`), so rows fetched near each other share the
//! work; the row a fetch stored deferred ([`DeferredRow`]) and, for PostgreSQL 18's
//! bitmap scans, a window's columns decoded together ([`Window`]).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::cell::RefCell;
use std::rc::Rc;

use arrow_array::{Array, ArrayRef};
use epiphany_core::columnar::cache::ByteLru;
use epiphany_core::pg::buffer::Rel;
use epiphany_core::Error;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

use crate::convert::table::TableInfo;
use crate::storage::part_access::OpenPart;
use crate::storage::part_access::RelationPart;

/// Bytes (kB) of decoded column windows and positions each backend keeps for fetches.
pub static FETCH_CACHE_KB: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

pub fn init() {
    GucRegistry::define_int_guc(
        c"epiphany.columnar_fetch_cache",
        c"Memory per backend for the column pages that fetches by TID (index and bitmap scans) decode from epiphany_columnar tables.",
        c"Rows fetched near each other share decoded pages; 0 decodes every fetch afresh.",
        &FETCH_CACHE_KB,
        0,
        i32::MAX / 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
}

/// What decoded windows are cached by: (storage id, part id, granule, first row of the
/// window, column; `u32::MAX` for the granule's stored positions).
pub type WindowKey = (u64, u64, u32, u32, u32);

thread_local! {
    static WINDOWS: RefCell<ByteLru<WindowKey, ArrayRef>> = RefCell::new(ByteLru::new(0));
}

/// The per-backend cache of decoded windows, with its budget from the GUC.
pub fn windows<R>(f: impl FnOnce(&mut ByteLru<WindowKey, ArrayRef>) -> R) -> R {
    let budget = FETCH_CACHE_KB.get().max(0) as usize * 1024;
    WINDOWS.with(|w| {
        let mut w = w.borrow_mut();
        w.set_budget(budget);
        f(&mut w)
    })
}

/// A fetched row whose columns are decoded on demand.
pub struct DeferredRow {
    pub info: Rc<TableInfo>,
    pub relid: pg_sys::Oid,
    pub part: Rc<OpenPart>,
    pub granule: usize,
    /// The page window holding the row: its first row within the granule, its rows.
    pub first: usize,
    pub count: usize,
    /// The row within the window.
    pub row: usize,
}

impl DeferredRow {
    /// Column `c` of the row's window, decoded (or from the cache).
    pub(super) fn column(&self, c: usize) -> Result<ArrayRef, Error> {
        let key = window_key(&self.part, self.granule, self.first, c);
        windows(|w| {
            w.get_or_insert(&key, || {
                // SAFETY: the relation is open and locked by the query that fetched the
                // row (the slot is the query's); NoLock only looks it up again.
                unsafe {
                    let rel = pg_sys::relation_open(self.relid, pg_sys::NoLock as _);
                    let array =
                        self.part
                            .column(Rel::new(rel), c, self.granule, self.first, self.count);
                    pg_sys::relation_close(rel, pg_sys::NoLock as _);
                    let array = array?;
                    let bytes = array.get_array_memory_size();
                    Ok((array, bytes))
                }
            })
        })
    }
}

fn window_key(part: &OpenPart, granule: usize, first: usize, c: usize) -> WindowKey {
    (
        part.row.storage_id,
        part.row.part_id,
        granule as u32,
        first as u32,
        c as u32,
    )
}

#[cfg(feature = "pg18")] // bitmap scans of PostgreSQL 18 (`bitmap`)
/// The page window of rows `first..first + count` of granule `g` of `part`: the
/// columns a slot needs, decoded (or from the cache), for storing many of its rows.
pub struct Window {
    /// (table column, its values in the window).
    pub(super) columns: Vec<(usize, ArrayRef)>,
}

#[cfg(feature = "pg18")]
impl Window {
    /// Decodes `needed` (see [`needed_columns`]) of the window.
    ///
    /// # Safety
    /// `rel` open, the relation `part` belongs to.
    pub unsafe fn decode(
        rel: Rel<'_>,
        part: &OpenPart,
        granule: usize,
        first: usize,
        count: usize,
        needed: &[usize],
    ) -> Result<Window, Error> {
        let mut columns = Vec::with_capacity(needed.len());
        for &c in needed {
            let key = window_key(part, granule, first, c);
            let array = windows(|w| {
                w.get_or_insert(&key, || {
                    // SAFETY: per the contract.
                    let array = part.column(rel, c, granule, first, count)?;
                    let bytes = array.get_array_memory_size();
                    Ok::<_, Error>((array, bytes))
                })
            })?;
            columns.push((c, array));
        }
        Ok(Window { columns })
    }
}
