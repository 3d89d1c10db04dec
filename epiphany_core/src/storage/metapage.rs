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
//! ```text
//! offset  size  field
//!      0     4  magic "EPM1"
//!      4     4  CRC32C of bytes 8..40
//!      8     4  format version
//!     12     4  reserved, zero
//!     16     8  next row number
//!     24     8  next extent id
//!     32     8  storage id
//! ```

use crate::error::{Error, Result};

pub const MAGIC: [u8; 4] = *b"EPM1";
pub const FORMAT_VERSION: u32 = 1;
pub const LEN: usize = 40;
/// The metapage's block number.
pub const BLOCK: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metapage {
    pub storage_id: u64,
    pub next_row: u64,
    pub next_extent: u64,
}

impl Metapage {
    /// The metapage of new, empty storage. Extent ids start at 1 so 0 never names one.
    pub fn new(storage_id: u64) -> Self {
        Metapage {
            storage_id,
            next_row: 0,
            next_extent: 1,
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

    pub fn encode(&self, page: &mut [u8]) {
        assert!(page.len() >= LEN);
        page[..LEN].fill(0);
        page[0..4].copy_from_slice(&MAGIC);
        page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        page[16..24].copy_from_slice(&self.next_row.to_le_bytes());
        page[24..32].copy_from_slice(&self.next_extent.to_le_bytes());
        page[32..40].copy_from_slice(&self.storage_id.to_le_bytes());
        let crc = crc32c::crc32c(&page[8..LEN]);
        page[4..8].copy_from_slice(&crc.to_le_bytes());
    }

    pub fn decode(page: &[u8]) -> Result<Self> {
        let corrupt = |what: &str| Error::Corrupted(format!("metapage (block {BLOCK}): {what}"));
        if page.len() < LEN {
            return Err(corrupt("too short"));
        }
        if page[0..4] != MAGIC {
            return Err(corrupt("bad magic: not an epiphany_columnar relation"));
        }
        let stored = u32::from_le_bytes(page[4..8].try_into().unwrap());
        if crc32c::crc32c(&page[8..LEN]) != stored {
            return Err(corrupt("checksum mismatch"));
        }
        let version = u32::from_le_bytes(page[8..12].try_into().unwrap());
        if version != FORMAT_VERSION {
            return Err(corrupt(&format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        Ok(Metapage {
            storage_id: u64::from_le_bytes(page[32..40].try_into().unwrap()),
            next_row: u64::from_le_bytes(page[16..24].try_into().unwrap()),
            next_extent: u64::from_le_bytes(page[24..32].try_into().unwrap()),
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
    fn damage_is_detected() {
        let mut page = vec![0; 64];
        Metapage::new(1).encode(&mut page);
        for byte in 0..LEN {
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
            fn any_metapage_round_trips(storage_id: u64, next_row: u64, next_extent: u64) {
                let meta = Metapage { storage_id, next_row, next_extent };
                let mut page = vec![0u8; 64];
                meta.encode(&mut page);
                prop_assert_eq!(Metapage::decode(&page).unwrap(), meta);
            }
        }
    }
}
