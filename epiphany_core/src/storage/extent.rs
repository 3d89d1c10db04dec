//! An extent: one immutable byte stream in consecutive pages of a [`PageStore`].
//!
//! A part is written once as an extent and never changed; its catalog row records the
//! [`Extent`] (id, first block, page count, length), and readers ask for byte ranges.
//! Every page read is validated (magic, checksum, extent id, sequence number), so a
//! damaged page, or a catalog row that points at the wrong blocks, is an error.

use crate::error::{Error, Result};
use crate::storage::page::{self, PageHeader, HEADER_LEN};
use crate::storage::page_store::{BlockNumber, PageStore};

/// Where an extent lives; stored in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub id: u64,
    pub first_block: BlockNumber,
    pub pages: u32,
    pub len: u64,
}

/// Payload bytes per page for a store.
fn payload_per_page<S: PageStore>(store: &S) -> usize {
    store.page_size() - HEADER_LEN
}

/// How many pages of `store` an extent of `len` bytes takes.
pub fn pages_for<S: PageStore>(store: &S, len: usize) -> u32 {
    len.div_ceil(payload_per_page(store)).max(1) as u32
}

/// Pages written per call to [`PageStore::write_pages`]; Postgres's generic WAL records
/// hold at most four pages.
const WRITE_BATCH: usize = 4;

/// Appends `bytes` to `store` as extent `id`.
pub fn write_extent<S: PageStore>(store: &mut S, id: u64, bytes: &[u8]) -> Result<Extent> {
    let pages = pages_for(store, bytes.len());
    let first_block = store.extend(pages)?;
    write_extent_at(store, id, bytes, first_block)
}

/// Writes `bytes` as extent `id` into the [`pages_for`] pages from `first_block` on,
/// which exist and hold nothing anyone reads (fresh, or free: see `free_space`).
pub fn write_extent_at<S: PageStore>(
    store: &mut S,
    id: u64,
    bytes: &[u8],
    first_block: BlockNumber,
) -> Result<Extent> {
    let per_page = payload_per_page(store);
    let pages = pages_for(store, bytes.len());
    let mut chunks: Vec<&[u8]> = bytes.chunks(per_page).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let mut buffers = vec![vec![0u8; store.page_size()]; WRITE_BATCH];
    for (batch_no, batch) in chunks.chunks(WRITE_BATCH).enumerate() {
        for (i, chunk) in batch.iter().enumerate() {
            let seq = (batch_no * WRITE_BATCH + i) as u32;
            page::encode(
                &mut buffers[i],
                PageHeader {
                    extent_id: id,
                    seq,
                    len: chunk.len() as u32,
                },
                chunk,
            );
        }
        let refs: Vec<&[u8]> = buffers[..batch.len()]
            .iter()
            .map(|b| b.as_slice())
            .collect();
        store.write_pages(first_block + (batch_no * WRITE_BATCH) as u32, &refs)?;
    }
    Ok(Extent {
        id,
        first_block,
        pages,
        len: bytes.len() as u64,
    })
}

/// Reads byte ranges of one extent.
pub struct ExtentReader<'s, S: PageStore> {
    store: &'s S,
    extent: Extent,
}

impl<'s, S: PageStore> ExtentReader<'s, S> {
    pub fn new(store: &'s S, extent: Extent) -> Result<Self> {
        let expected = pages_for(store, extent.len as usize);
        if extent.pages != expected {
            return Err(Error::Corrupted(format!(
                "extent {} of {} bytes claims {} pages, needs {expected}",
                extent.id, extent.len, extent.pages
            )));
        }
        let end = u64::from(extent.first_block) + u64::from(extent.pages);
        if end > u64::from(store.nblocks()?) {
            return Err(Error::Corrupted(format!(
                "extent {} ends at block {end}, past the end of the relation",
                extent.id
            )));
        }
        Ok(ExtentReader { store, extent })
    }

    pub fn len(&self) -> u64 {
        self.extent.len
    }

    pub fn is_empty(&self) -> bool {
        self.extent.len == 0
    }

    /// The bytes `[offset, offset + len)` of the extent.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.extent.len)
            .ok_or_else(|| {
                Error::Corrupted(format!(
                    "read of {len} bytes at {offset} is outside extent {} of {} bytes",
                    self.extent.id, self.extent.len
                ))
            })?;
        let per_page = payload_per_page(self.store) as u64;
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while pos < end {
            let seq = (pos / per_page) as u32;
            let within = (pos % per_page) as usize;
            let take = ((end - pos) as usize).min(per_page as usize - within);
            let block = self.extent.first_block + seq;
            let is_last = seq + 1 == self.extent.pages;
            self.store.read_page(block, |bytes| {
                let payload = page::decode(bytes, self.extent.id, seq, block)?;
                let expected = if is_last {
                    (self.extent.len - u64::from(seq) * per_page) as usize
                } else {
                    per_page as usize
                };
                if payload.len() != expected {
                    return Err(Error::Corrupted(format!(
                        "block {block}: page {seq} of extent {} holds {} bytes, expected {expected}",
                        self.extent.id,
                        payload.len()
                    )));
                }
                out.extend_from_slice(&payload[within..within + take]);
                Ok(())
            })?;
            pos += take as u64;
        }
        Ok(out)
    }

    /// The whole extent.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.read(0, self.extent.len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryPageStore;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn round_trips_any_length_and_any_range() {
        let mut store = MemoryPageStore::new(100);
        let per = 100 - HEADER_LEN;
        for (id, n) in [
            0usize,
            1,
            per - 1,
            per,
            per + 1,
            5 * per,
            5 * per + 3,
            17 * per + 11,
        ]
        .iter()
        .enumerate()
        {
            let data = bytes(*n, id as u8);
            let extent = write_extent(&mut store, id as u64, &data).unwrap();
            let reader = ExtentReader::new(&store, extent).unwrap();
            assert_eq!(reader.read_all().unwrap(), data);
            for (off, len) in [
                (0, 0),
                (0, 1.min(*n)),
                (n / 3, n / 3),
                (n.saturating_sub(1), 1.min(*n)),
            ] {
                assert_eq!(
                    reader.read(off as u64, len).unwrap(),
                    data[off..off + len],
                    "n={n} off={off} len={len}"
                );
            }
            assert!(reader.read(0, n + 1).is_err());
            assert!(reader.read(u64::MAX, 2).is_err());
        }
    }

    #[test]
    fn extents_written_one_after_another_do_not_overlap() {
        let mut store = MemoryPageStore::new(64);
        let a = write_extent(&mut store, 1, &bytes(500, 1)).unwrap();
        let b = write_extent(&mut store, 2, &bytes(70, 2)).unwrap();
        assert_eq!(b.first_block, a.first_block + a.pages);
        assert_eq!(
            ExtentReader::new(&store, a).unwrap().read_all().unwrap(),
            bytes(500, 1)
        );
        assert_eq!(
            ExtentReader::new(&store, b).unwrap().read_all().unwrap(),
            bytes(70, 2)
        );
    }

    #[test]
    fn free_pages_take_a_new_extent_and_the_old_one_no_longer_reads() {
        let mut store = MemoryPageStore::new(64);
        let a = write_extent(&mut store, 1, &bytes(500, 1)).unwrap();
        let b = write_extent(&mut store, 2, &bytes(70, 2)).unwrap();
        let c = write_extent_at(&mut store, 3, &bytes(100, 3), a.first_block).unwrap();
        assert_eq!(c.first_block, a.first_block);
        assert!(c.pages <= a.pages);
        assert_eq!(
            ExtentReader::new(&store, c).unwrap().read_all().unwrap(),
            bytes(100, 3)
        );
        assert_eq!(
            ExtentReader::new(&store, b).unwrap().read_all().unwrap(),
            bytes(70, 2)
        );
        // A stale catalog row of the old extent is an error, never the new bytes.
        assert!(ExtentReader::new(&store, a).unwrap().read_all().is_err());
    }

    #[test]
    fn damage_and_wrong_catalog_rows_are_corruption_errors() {
        let mut store = MemoryPageStore::new(64);
        let extent = write_extent(&mut store, 5, &bytes(300, 9)).unwrap();
        // A flipped byte in the middle page.
        let mut damaged = store.clone();
        damaged.page_mut(extent.first_block + 2)[40] ^= 0x10;
        let err = ExtentReader::new(&damaged, extent)
            .unwrap()
            .read_all()
            .unwrap_err();
        assert!(matches!(err, Error::Corrupted(_)), "{err}");
        // A catalog row pointing one block off, or claiming more bytes than were written.
        let shifted = Extent {
            first_block: extent.first_block + 1,
            ..extent
        };
        assert!(ExtentReader::new(&store, shifted)
            .and_then(|r| r.read_all())
            .is_err());
        let longer = Extent {
            len: extent.len + 1,
            ..extent
        };
        assert!(ExtentReader::new(&store, longer)
            .and_then(|r| r.read_all())
            .is_err());
        let past_end = Extent {
            first_block: 1000,
            ..extent
        };
        assert!(ExtentReader::new(&store, past_end).is_err());
        // Another extent's id.
        let other = Extent { id: 6, ..extent };
        assert!(ExtentReader::new(&store, other)
            .unwrap()
            .read(0, 1)
            .is_err());
    }

    mod properties {
        use super::super::*;
        use crate::storage::MemoryPageStore;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_stream_and_any_range_round_trip(
                data in proptest::collection::vec(any::<u8>(), 0..3000),
                page_size in 40usize..600,
                a in any::<prop::sample::Index>(),
                b in any::<prop::sample::Index>(),
            ) {
                let mut store = MemoryPageStore::new(page_size);
                write_extent(&mut store, 9, b"before").unwrap();
                let extent = write_extent(&mut store, 10, &data).unwrap();
                let reader = ExtentReader::new(&store, extent).unwrap();
                prop_assert_eq!(reader.read_all().unwrap(), data.clone());
                if !data.is_empty() {
                    let (x, y) = (a.index(data.len()), b.index(data.len()));
                    let (lo, hi) = (x.min(y), x.max(y));
                    prop_assert_eq!(reader.read(lo as u64, hi - lo).unwrap(), &data[lo..hi]);
                }
            }
        }
    }
}
