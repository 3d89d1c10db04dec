//! Block 0 of a columnar relation: what must be handed out exactly once.
//!
//! Row numbers and extent ids are reserved here, outside any transaction (under the
//! page's exclusive lock, WAL-logged), so concurrent writers never collide and an aborted
//! writer only leaves a gap. The page carries its own checksum like every extent page.
//!
//! The storage id names this particular storage of the relation: a transactional
//! TRUNCATE (or a rewrite) gives the relation new storage with a new id, and catalog rows
//! are keyed by it, so parts of the old storage vanish or reappear exactly as the
//! TRUNCATE commits or aborts. Relfilenode numbers cannot serve: they are reused.
//!
//! VACUUM also keeps here the pages no live part uses ([`FreeList`]), for writers to
//! take before they extend the relation.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "EPM1"
//!      4     4  CRC32C of bytes 8..(48 + 8 × free runs) (version 1: 8..40)
//!      8     4  format version (2; version 1 has no free list)
//!     12     4  reserved, zero
//!     16     8  next row number
//!     24     8  next extent id
//!     32     8  storage id
//!     40     4  free runs (version 2)
//!     44     4  reserved, zero
//!     48   8×n  free runs: first block, pages (u32 each)
//! ```

use crate::error::{Error, Result};
use crate::storage::free_space::{FreeList, FreeRun, MAX_RUNS};

pub const MAGIC: [u8; 4] = *b"EPM1";
pub const FORMAT_VERSION: u32 = 2;
/// Bytes of a version 1 metapage, and of the fields both versions share.
pub const LEN: usize = 40;
const HEADER_V2: usize = 48;
/// The most bytes a metapage takes.
pub const MAX_LEN: usize = HEADER_V2 + 8 * MAX_RUNS;
/// The metapage's block number.
pub const BLOCK: u32 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metapage {
    pub storage_id: u64,
    pub next_row: u64,
    pub next_extent: u64,
    /// Pages no live part uses (as the last VACUUM found them, less those taken since).
    pub free: FreeList,
}

impl Metapage {
    /// The metapage of new, empty storage. Extent ids start at 1 so 0 never names one.
    pub fn new(storage_id: u64) -> Self {
        Metapage {
            storage_id,
            next_row: 0,
            next_extent: 1,
            free: FreeList::default(),
        }
    }

    /// Reserves `rows` row numbers; returns the first.
    pub fn reserve_rows(&mut self, rows: u64) -> Result<u64> {
        let end = self
            .next_row
            .checked_add(rows)
            .filter(|&end| end <= crate::columnar::rowid::MAX_ROWS)
            .ok_or_else(|| Error::NotSupported("a table with this many rows".into()))?;
        let first = self.next_row;
        self.next_row = end;
        Ok(first)
    }

    /// Reserves one extent id.
    pub fn reserve_extent(&mut self) -> u64 {
        let id = self.next_extent;
        self.next_extent += 1;
        id
    }

    /// Bytes [`Metapage::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_V2 + 8 * self.free.runs().len()
    }

    pub fn encode(&self, page: &mut [u8]) {
        let len = self.encoded_len();
        assert!(page.len() >= len);
        page[..len].fill(0);
        page[0..4].copy_from_slice(&MAGIC);
        page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        page[16..24].copy_from_slice(&self.next_row.to_le_bytes());
        page[24..32].copy_from_slice(&self.next_extent.to_le_bytes());
        page[32..40].copy_from_slice(&self.storage_id.to_le_bytes());
        let runs = self.free.runs();
        page[40..44].copy_from_slice(&(runs.len() as u32).to_le_bytes());
        for (i, r) in runs.iter().enumerate() {
            let at = HEADER_V2 + 8 * i;
            page[at..at + 4].copy_from_slice(&r.first.to_le_bytes());
            page[at + 4..at + 8].copy_from_slice(&r.pages.to_le_bytes());
        }
        let crc = crc32c::crc32c(&page[8..len]);
        page[4..8].copy_from_slice(&crc.to_le_bytes());
    }

    pub fn decode(page: &[u8]) -> Result<Self> {
        let corrupt = |what: &str| Error::Corrupted(format!("metapage (block {BLOCK}): {what}"));
        let word = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().unwrap());
        let long = |at: usize| u64::from_le_bytes(page[at..at + 8].try_into().unwrap());
        if page.len() < LEN {
            return Err(corrupt("too short"));
        }
        if page[0..4] != MAGIC {
            return Err(corrupt("bad magic: not an epiphany_columnar relation"));
        }
        let version = word(8);
        let len = match version {
            1 => LEN,
            FORMAT_VERSION => {
                if page.len() < HEADER_V2 {
                    return Err(corrupt("too short"));
                }
                let runs = word(40) as usize;
                if runs > MAX_RUNS || page.len() < HEADER_V2 + 8 * runs {
                    return Err(corrupt(&format!("{runs} free runs")));
                }
                HEADER_V2 + 8 * runs
            }
            _ => {
                return Err(corrupt(&format!(
                    "format version {version}, this build reads 1 and {FORMAT_VERSION}"
                )))
            }
        };
        if crc32c::crc32c(&page[8..len]) != word(4) {
            return Err(corrupt("checksum mismatch"));
        }
        let mut runs = Vec::new();
        let mut previous_end = 1u64;
        for i in 0..(len - HEADER_V2.min(len)) / 8 {
            let at = HEADER_V2 + 8 * i;
            let run = FreeRun {
                first: word(at),
                pages: word(at + 4),
            };
            if run.pages == 0 || u64::from(run.first) < previous_end {
                return Err(corrupt("free runs out of order"));
            }
            previous_end = run.end();
            runs.push(run);
        }
        Ok(Metapage {
            storage_id: long(32),
            next_row: long(16),
            next_extent: long(24),
            free: FreeList::new(runs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_overlap_and_survive_a_round_trip() {
        let mut meta = Metapage::new(77);
        assert_eq!(meta.reserve_rows(10).unwrap(), 0);
        assert_eq!(meta.reserve_extent(), 1);
        assert_eq!(meta.reserve_rows(0).unwrap(), 10);
        assert_eq!(meta.reserve_rows(5).unwrap(), 10);
        assert_eq!(meta.reserve_extent(), 2);
        meta.free = FreeList::new(vec![FreeRun { first: 3, pages: 2 }]);
        let mut page = vec![0xEE; 128];
        meta.encode(&mut page);
        assert_eq!(Metapage::decode(&page).unwrap(), meta);
        assert_eq!(Metapage::decode(&page).unwrap().storage_id, 77);
        assert!(meta.reserve_rows(u64::MAX).is_err());
        assert_eq!(
            meta,
            Metapage::decode(&page).unwrap(),
            "a failed reservation changes nothing"
        );
    }

    #[test]
    fn version_1_pages_still_read() {
        let mut page = vec![0u8; 64];
        page[0..4].copy_from_slice(&MAGIC);
        page[8..12].copy_from_slice(&1u32.to_le_bytes());
        page[16..24].copy_from_slice(&5u64.to_le_bytes());
        page[24..32].copy_from_slice(&6u64.to_le_bytes());
        page[32..40].copy_from_slice(&7u64.to_le_bytes());
        let crc = crc32c::crc32c(&page[8..LEN]);
        page[4..8].copy_from_slice(&crc.to_le_bytes());
        let meta = Metapage::decode(&page).unwrap();
        assert_eq!(
            (meta.next_row, meta.next_extent, meta.storage_id),
            (5, 6, 7)
        );
        assert_eq!(meta.free, FreeList::default());
    }

    #[test]
    fn damage_is_detected() {
        let mut page = vec![0; 128];
        let mut meta = Metapage::new(1);
        meta.free = FreeList::new(vec![
            FreeRun { first: 3, pages: 2 },
            FreeRun { first: 9, pages: 1 },
        ]);
        meta.encode(&mut page);
        for byte in 0..meta.encoded_len() {
            let mut bad = page.clone();
            bad[byte] ^= 0x04;
            assert!(Metapage::decode(&bad).is_err(), "byte {byte}");
        }
        assert!(Metapage::decode(&[0; 8]).is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
                let _ = Metapage::decode(&bytes);
            }

            #[test]
            fn any_metapage_round_trips(
                storage_id: u64,
                next_row: u64,
                next_extent: u64,
                gaps in proptest::collection::vec((1u32..100, 1u32..100), 0..40),
            ) {
                let mut first = 1;
                let runs = gaps
                    .into_iter()
                    .map(|(gap, pages)| {
                        let run = FreeRun { first: first + gap, pages };
                        first = run.first + pages;
                        run
                    })
                    .collect();
                let meta = Metapage { storage_id, next_row, next_extent, free: FreeList::new(runs) };
                let mut page = vec![0u8; MAX_LEN];
                meta.encode(&mut page);
                prop_assert_eq!(Metapage::decode(&page).unwrap(), meta);
            }
        }
    }
}
