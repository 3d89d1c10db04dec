//! Postgres's standard page layout (header, line pointers, items, special space) read
//! and written in pure Rust, so what the glue does to a page is tested without a server.
//! `pg::page` checks these constants against Postgres's own at compile time.

use std::ops::Range;

/// Bytes of a page (`BLCKSZ`). Our on-disk formats are defined for 8 kB pages.
pub const BLOCK_SIZE: usize = 8192;
/// Bytes of the page header (`SizeOfPageHeaderData`).
pub const PAGE_HEADER: usize = 24;
/// Bytes of one line pointer (`ItemIdData`).
pub const LINE_POINTER: usize = 4;
/// The largest item an empty page without special space takes.
pub const PAGE_CAPACITY: usize = BLOCK_SIZE - PAGE_HEADER - LINE_POINTER;
/// `LP_NORMAL`: a line pointer to a live item.
const LP_NORMAL: u32 = 1;

/// Whether the page was never initialized (a new block, zeroed).
pub fn is_new(page: &[u8]) -> bool {
    upper(page) == 0
}

/// `pd_lower`: where free space starts.
pub fn lower(page: &[u8]) -> usize {
    u16::from_le_bytes([page[12], page[13]]) as usize
}

/// `pd_upper`: where free space ends.
pub fn upper(page: &[u8]) -> usize {
    u16::from_le_bytes([page[14], page[15]]) as usize
}

/// Sets `pd_lower`. Generic WAL logs a page up to `pd_lower` and from `pd_upper`, so a
/// page that keeps its contents right after the header (no line pointers) must cover
/// them with `pd_lower`.
pub fn set_lower(page: &mut [u8], lower: usize) {
    assert!(lower <= BLOCK_SIZE);
    page[12..14].copy_from_slice(&(lower as u16).to_le_bytes());
}

/// The bytes after the header.
pub fn contents(page: &[u8]) -> &[u8] {
    &page[PAGE_HEADER..]
}

/// The bytes after the header, to write; [`set_lower`] must then cover what was written.
pub fn contents_mut(page: &mut [u8]) -> &mut [u8] {
    &mut page[PAGE_HEADER..]
}

/// Writes `bytes` right after the header of an initialized page and covers them with
/// `pd_lower`.
pub fn put_contents(page: &mut [u8], bytes: &[u8]) {
    assert!(bytes.len() <= BLOCK_SIZE - PAGE_HEADER);
    page[PAGE_HEADER..PAGE_HEADER + bytes.len()].copy_from_slice(bytes);
    set_lower(page, PAGE_HEADER + bytes.len());
}

/// Free space for a new item and its line pointer (`PageGetFreeSpace`).
pub fn free_space(page: &[u8]) -> usize {
    (upper(page).saturating_sub(lower(page))).saturating_sub(LINE_POINTER)
}

/// Items on a page.
pub fn item_count(page: &[u8]) -> u16 {
    (lower(page).saturating_sub(PAGE_HEADER) / LINE_POINTER) as u16
}

/// The bytes of item `item` (1-based), if it is a normal item inside the page.
pub fn item_range(page: &[u8], item: u16) -> Option<Range<usize>> {
    if item == 0 || item > item_count(page) {
        return None;
    }
    let at = PAGE_HEADER + (item as usize - 1) * LINE_POINTER;
    let word = u32::from_le_bytes(page[at..at + 4].try_into().expect("4 bytes"));
    let (off, flags, len) = (
        (word & 0x7fff) as usize,
        (word >> 15) & 3,
        (word >> 17) as usize,
    );
    (flags == LP_NORMAL && off >= PAGE_HEADER && off + len <= page.len()).then_some(off..off + len)
}

/// The special space (`special` bytes at the page's end).
pub fn special(page: &[u8], special: usize) -> &[u8] {
    &page[page.len() - special..]
}

pub fn special_mut(page: &mut [u8], special: usize) -> &mut [u8] {
    let n = page.len();
    &mut page[n - special..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_pointers_are_read_like_postgres_writes_them() {
        let mut page = vec![0u8; BLOCK_SIZE];
        // Two line pointers: item 1 normal at 8000 (len 100), item 2 unused.
        set_lower(&mut page, PAGE_HEADER + 8);
        let lp = |off: u32, flags: u32, len: u32| off | (flags << 15) | (len << 17);
        page[24..28].copy_from_slice(&lp(8000, 1, 100).to_le_bytes());
        page[28..32].copy_from_slice(&lp(0, 0, 0).to_le_bytes());
        assert_eq!(item_count(&page), 2);
        assert_eq!(item_range(&page, 1), Some(8000..8100));
        assert_eq!(item_range(&page, 2), None);
        assert_eq!(item_range(&page, 3), None);
        assert_eq!(item_range(&page, 0), None);
        // A pointer past the page is refused, not followed.
        page[24..28].copy_from_slice(&lp(8150, 1, 100).to_le_bytes());
        assert_eq!(item_range(&page, 1), None);
    }

    #[test]
    fn contents_are_covered_by_pd_lower() {
        let mut page = vec![0u8; BLOCK_SIZE];
        page[14..16].copy_from_slice(&(BLOCK_SIZE as u16).to_le_bytes());
        assert!(!is_new(&page));
        put_contents(&mut page, b"abc");
        assert_eq!(lower(&page), PAGE_HEADER + 3);
        assert_eq!(&contents(&page)[..3], b"abc");
        assert_eq!(
            free_space(&page),
            BLOCK_SIZE - PAGE_HEADER - 3 - LINE_POINTER
        );
    }
}
