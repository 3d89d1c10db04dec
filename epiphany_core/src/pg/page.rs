//! Postgres's standard page layout as our storage uses it (see
//! [`crate::storage::pg_page`] for the pure part): the layout constants checked against
//! Postgres's own at compile time, so a server built with another block size fails the
//! build, not a page; and the page functions only Postgres implements.

use pgrx::pg_sys;

pub use crate::storage::pg_page::*;

const _: () = assert!(
    pg_sys::BLCKSZ as usize == BLOCK_SIZE,
    "EpiphanyDB's page formats need BLCKSZ = 8192"
);
const _: () = assert!(std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp) == PAGE_HEADER);
const _: () = assert!(std::mem::size_of::<pg_sys::ItemIdData>() == LINE_POINTER);
const _: () = assert!(pg_sys::LP_NORMAL == 1);

/// `MaxHeapTuplesPerPage`: the most line pointers a heap page can have, and so the most
/// offsets a TID block of ours uses (TIDs must look like heap TIDs to indexes and
/// bitmaps).
pub const MAX_HEAP_TUPLES_PER_PAGE: usize = (BLOCK_SIZE - PAGE_HEADER)
    / (std::mem::offset_of!(pg_sys::HeapTupleHeaderData, t_bits).next_multiple_of(8)
        + LINE_POINTER);

const _: () = assert!(
    MAX_HEAP_TUPLES_PER_PAGE == crate::columnar::rowid::ROWS_PER_TID_BLOCK as usize,
    "rows per TID block must be Postgres's MaxHeapTuplesPerPage"
);

/// A new empty page with `special` bytes of special space (`PageInit`).
pub fn init(page: &mut [u8], special: usize) {
    assert_eq!(page.len(), BLOCK_SIZE);
    // SAFETY: BLCKSZ writable bytes; PageInit only writes inside them.
    unsafe { pg_sys::PageInit(page.as_mut_ptr() as pg_sys::Page, BLOCK_SIZE, special) };
}

/// Adds `item` as the page's next item (`PageAddItem`); its 1-based number, or `None`
/// when it does not fit.
pub fn add_item(page: &mut [u8], item: &[u8]) -> Option<u16> {
    assert_eq!(page.len(), BLOCK_SIZE);
    // SAFETY: an initialized page of BLCKSZ bytes; PageAddItemExtended checks the
    // space and only writes inside the page.
    let n = unsafe {
        pg_sys::PageAddItemExtended(
            page.as_mut_ptr() as pg_sys::Page,
            item.as_ptr() as pg_sys::Item,
            item.len(),
            pg_sys::InvalidOffsetNumber,
            0,
        )
    };
    (n != pg_sys::InvalidOffsetNumber).then_some(n)
}

/// Removes items `items` (1-based, any order) and compacts the page
/// (`PageIndexMultiDelete`); later items are renumbered.
pub fn delete_items(page: &mut [u8], items: &mut [u16]) {
    assert_eq!(page.len(), BLOCK_SIZE);
    assert!(items.iter().all(|&i| i >= 1 && i <= item_count(page)));
    // SAFETY: an initialized page of BLCKSZ bytes and item numbers it has (checked).
    unsafe {
        pg_sys::PageIndexMultiDelete(
            page.as_mut_ptr() as pg_sys::Page,
            items.as_mut_ptr(),
            items.len() as i32,
        )
    };
}
