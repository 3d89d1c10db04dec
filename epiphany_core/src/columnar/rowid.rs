//! Row identity: every row of a columnar table has a row number, and a TID encodes it.
//!
//! Parts own disjoint row-number ranges handed out by the table's metapage. Indexes store
//! TIDs, so a row number is spread over (block, offset) with at most
//! [`ROWS_PER_TID_BLOCK`] offsets per block: bitmap scans keep one bit per possible heap
//! tuple of a page, and offsets beyond that would be lost. The blocks in these TIDs are
//! virtual; they have nothing to do with where the part's pages are.

use crate::error::{Error, Result};

/// `MaxHeapTuplesPerPage` for 8 KiB pages.
pub const ROWS_PER_TID_BLOCK: u64 = 291;
/// Largest valid block number in a TID (`MaxBlockNumber`).
const MAX_BLOCK: u64 = 0xFFFF_FFFE;
/// One past the largest row number a TID can carry.
pub const MAX_ROWS: u64 = (MAX_BLOCK + 1) * ROWS_PER_TID_BLOCK;

/// The TID (block, offset) of row `row`.
pub fn row_to_tid(row: u64) -> Result<(u32, u16)> {
    if row >= MAX_ROWS {
        return Err(Error::NotSupported(format!(
            "more than {MAX_ROWS} rows in one table"
        )));
    }
    Ok((
        (row / ROWS_PER_TID_BLOCK) as u32,
        (row % ROWS_PER_TID_BLOCK + 1) as u16,
    ))
}

/// The row a TID names, or `None` for a TID no row of ours can have.
pub fn tid_to_row(block: u32, offset: u16) -> Option<u64> {
    if u64::from(block) > MAX_BLOCK || offset == 0 || u64::from(offset) > ROWS_PER_TID_BLOCK {
        return None;
    }
    Some(u64::from(block) * ROWS_PER_TID_BLOCK + u64::from(offset) - 1)
}

/// Row numbers a backend reserved from the metapage and has not used yet. Each refill
/// asks for twice the last (up to a cap): a one-row transaction wastes little, a COPY
/// touches the metapage rarely, and a run of numbers rarely breaks into many parts.
#[derive(Debug, Default)]
pub struct Reservation {
    next: u64,
    end: u64,
    last_chunk: u64,
}

impl Reservation {
    pub const FIRST_CHUNK: u64 = 64;
    pub const MAX_CHUNK: u64 = 1 << 20;

    /// The next reserved number, if any is left.
    pub fn take(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// How many numbers to reserve next.
    pub fn next_chunk(&self) -> u64 {
        (self.last_chunk * 2).clamp(Self::FIRST_CHUNK, Self::MAX_CHUNK)
    }

    /// Numbers `first .. first + len` were reserved.
    pub fn refill(&mut self, first: u64, len: u64) {
        self.next = first;
        self.end = first + len;
        self.last_chunk = len;
    }
}

/// Which part holds a row: parts sorted by `first_row`, each with its row count.
pub fn find_part<T>(parts: &[T], row: u64, range: impl Fn(&T) -> (u64, u64)) -> Option<&T> {
    let i = parts.partition_point(|p| range(p).0 <= row);
    let candidate = parts.get(i.checked_sub(1)?)?;
    let (first, rows) = range(candidate);
    (row < first + rows).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_hand_out_each_number_once_and_grow() {
        let mut r = Reservation::default();
        assert_eq!(r.take(), None);
        assert_eq!(r.next_chunk(), Reservation::FIRST_CHUNK);
        r.refill(100, 2);
        assert_eq!((r.take(), r.take(), r.take()), (Some(100), Some(101), None));
        assert_eq!(r.next_chunk(), Reservation::FIRST_CHUNK);
        r.refill(500, 1 << 19);
        assert_eq!(r.next_chunk(), 1 << 20);
        r.refill(0, 1 << 20);
        assert_eq!(r.next_chunk(), Reservation::MAX_CHUNK);
    }

    #[test]
    fn tids_round_trip_and_stay_within_bitmap_offsets() {
        for row in [0, 1, 290, 291, 292, 1_000_000, MAX_ROWS - 1] {
            let (block, offset) = row_to_tid(row).unwrap();
            assert!((1..=291).contains(&offset));
            assert_eq!(tid_to_row(block, offset), Some(row));
        }
        assert_eq!(row_to_tid(0).unwrap(), (0, 1));
        assert_eq!(row_to_tid(291).unwrap(), (1, 1));
        assert!(row_to_tid(MAX_ROWS).is_err());
        assert_eq!(tid_to_row(0, 0), None);
        assert_eq!(tid_to_row(0, 292), None);
        assert_eq!(tid_to_row(u32::MAX, 1), None);
    }

    #[test]
    fn finds_the_part_owning_a_row_and_none_in_gaps() {
        // Parts [0,10), [10,15), [100,200): rows 15..100 belong to an aborted writer.
        let parts = [(0u64, 10u64), (10, 5), (100, 100)];
        let find = |row| find_part(&parts, row, |p| *p).copied();
        assert_eq!(find(0), Some((0, 10)));
        assert_eq!(find(9), Some((0, 10)));
        assert_eq!(find(10), Some((10, 5)));
        assert_eq!(find(14), Some((10, 5)));
        assert_eq!(find(15), None);
        assert_eq!(find(99), None);
        assert_eq!(find(199), Some((100, 100)));
        assert_eq!(find(200), None);
        assert_eq!(find_part(&[] as &[(u64, u64)], 0, |p| *p), None);
    }
}
