//! Reading a part without reading all of it.
//!
//! A scan needs the footer (metadata and granule statistics), then only the column chunks
//! of the columns it projects in the granules it did not prune; a fetch by TID only the
//! pages holding its rows. [`SparsePart`] holds just those byte ranges, fetched through a
//! callback (from an extent, in the glue), and serves them to the Parquet reader; asking
//! it for bytes it does not hold is an error.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};

use crate::error::{Error, Result};

/// Bytes fetched from the end of a part in the first request (about one page): the footer
/// and often all of the metadata; larger metadata takes a second request.
const TAIL_GUESS: u64 = 8 * 1024;
/// Parquet's footer: metadata length (4 bytes) and the magic "PAR1".
const FOOTER: u64 = 8;

/// Byte ranges of one part; cheap to clone (clones share the ranges).
#[derive(Clone)]
pub struct SparsePart {
    len: u64,
    ranges: Arc<Mutex<Ranges>>,
}

/// Held ranges by start. None lies within another, so ordered by start they are ordered
/// by end too: the last one starting at or before an offset reaches furthest from it.
#[derive(Default)]
struct Ranges {
    by_start: BTreeMap<u64, Bytes>,
    bytes: u64,
}

impl Ranges {
    /// The held range reaching furthest from `start`, if one holds `start`.
    fn around(&self, start: u64) -> Option<(u64, &Bytes)> {
        let (&s, b) = self.by_start.range(..=start).next_back()?;
        (start <= s + b.len() as u64).then_some((s, b))
    }

    fn holds(&self, start: u64, len: u64) -> bool {
        self.around(start)
            .is_some_and(|(s, b)| start + len <= s + b.len() as u64)
    }

    fn insert(&mut self, start: u64, bytes: Bytes) {
        let end = start + bytes.len() as u64;
        if bytes.is_empty() || self.holds(start, bytes.len() as u64) {
            return;
        }
        // Ranges within the new one go.
        let inside: Vec<u64> = self
            .by_start
            .range(start..)
            .take_while(|(&s, b)| s + b.len() as u64 <= end)
            .map(|(&s, _)| s)
            .collect();
        for s in inside {
            let b = self.by_start.remove(&s).expect("listed");
            self.bytes -= b.len() as u64;
        }
        self.bytes += bytes.len() as u64;
        self.by_start.insert(start, bytes);
    }
}

impl SparsePart {
    /// Fetches the footer and metadata of a part of `len` bytes.
    pub fn with_tail(
        len: u64,
        fetch: &mut impl FnMut(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        if len < FOOTER {
            return Err(Error::Corrupted(format!(
                "a part of {len} bytes has no footer"
            )));
        }
        let part = SparsePart {
            len,
            ranges: Arc::new(Mutex::new(Ranges::default())),
        };
        let guess = len.min(TAIL_GUESS);
        part.add(len - guess, fetch(len - guess, guess as usize)?)?;
        let footer = part
            .get_bytes(len - FOOTER, FOOTER as usize)
            .map_err(|e| Error::Corrupted(e.to_string()))?;
        let metadata_len = u64::from(u32::from_le_bytes(footer[..4].try_into().unwrap()));
        let needed = metadata_len + FOOTER;
        if needed > len {
            return Err(Error::Corrupted(format!(
                "part metadata of {metadata_len} bytes exceeds the part"
            )));
        }
        if needed > guess {
            // The reader asks for the metadata in one piece: hold it as one range.
            *part.ranges.lock().unwrap() = Ranges::default();
            part.add(len - needed, fetch(len - needed, needed as usize)?)?;
        }
        Ok(part)
    }

    /// Fetches the column chunks of `columns` in `granules` that are not held yet.
    pub fn fetch_chunks(
        &self,
        metadata: &ParquetMetaData,
        columns: &[usize],
        granules: &[usize],
        fetch: &mut impl FnMut(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<()> {
        let mut wanted: Vec<(u64, u64)> = Vec::new();
        for &g in granules {
            for &c in columns {
                wanted.push(chunk_range(metadata, g, c)?);
            }
        }
        self.fetch_ranges(wanted, fetch)
    }

    /// Fetches, of `columns` in granule `g`, the pages holding its rows `rows` and each
    /// chunk's dictionary page, from the offset index (whole chunks without one).
    pub fn fetch_pages(
        &self,
        metadata: &ParquetMetaData,
        columns: &[usize],
        g: usize,
        rows: Range<usize>,
        fetch: &mut impl FnMut(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<()> {
        if metadata
            .page_index()
            .is_none_or(|p| !p.has_offset_indexes())
        {
            return self.fetch_chunks(metadata, columns, &[g], fetch);
        }
        let index = metadata.page_index_for_row_group(g);
        let mut wanted: Vec<(u64, u64)> = Vec::new();
        for &c in columns {
            let (start, len) = chunk_range(metadata, g, c)?;
            let Some(pages) = index.page_locations(c).filter(|p| !p.is_empty()) else {
                wanted.push((start, len));
                continue;
            };
            let first_page = u64::try_from(pages[0].offset).unwrap_or(u64::MAX);
            if first_page < start || first_page > start.saturating_add(len) {
                return Err(Error::Corrupted(format!(
                    "granule {g} column {c}: first page at {first_page} outside its chunk"
                )));
            }
            if first_page > start {
                // The dictionary page comes first.
                wanted.push((start, first_page - start));
            }
            for (i, page) in pages.iter().enumerate() {
                let from = usize::try_from(page.first_row_index).unwrap_or(usize::MAX);
                let to = pages.get(i + 1).map_or(usize::MAX, |n| {
                    usize::try_from(n.first_row_index).unwrap_or(usize::MAX)
                });
                if from < rows.end && rows.start < to {
                    let (Ok(offset), Ok(size)) = (
                        u64::try_from(page.offset),
                        u64::try_from(page.compressed_page_size),
                    ) else {
                        return Err(Error::Corrupted(format!(
                            "granule {g} column {c}: a negative page location"
                        )));
                    };
                    wanted.push((offset, size));
                }
            }
        }
        self.fetch_ranges(wanted, fetch)
    }

    /// Fetches the ranges not held yet; adjacent ones (the columns of one granule,
    /// usually) together.
    fn fetch_ranges(
        &self,
        mut wanted: Vec<(u64, u64)>,
        fetch: &mut impl FnMut(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<()> {
        for &(start, len) in &wanted {
            if start.checked_add(len).is_none_or(|end| end > self.len) {
                return Err(Error::Corrupted(format!(
                    "bytes {start}+{len} outside a part of {} bytes",
                    self.len
                )));
            }
        }
        // Held ranges are left out before merging: a merged range must not fetch again
        // what is held (pages of a chunk next to each other, fetched at different times).
        wanted.retain(|&(start, len)| !self.holds(start, len));
        wanted.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (start, len) in wanted {
            match merged.last_mut() {
                Some((s, l)) if start <= *s + *l => *l = (*l).max(start + len - *s),
                _ => merged.push((start, len)),
            }
        }
        for (start, len) in merged {
            self.add(start, fetch(start, len as usize)?)?;
        }
        Ok(())
    }

    /// Fetches the offset indexes of every column chunk (one range: Parquet writes them
    /// together, before the footer), for [`PartReader::open_with_offsets`].
    ///
    /// [`PartReader::open_with_offsets`]: crate::columnar::PartReader::open_with_offsets
    pub fn fetch_offset_indexes(
        &self,
        fetch: &mut impl FnMut(u64, usize) -> Result<Vec<u8>>,
    ) -> Result<()> {
        let parse = || ParquetMetaDataReader::new().parse_and_finish(self);
        let metadata = std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
            .map_err(|_| Error::Corrupted("a part's footer cannot be read".into()))?
            .map_err(|e| Error::Corrupted(format!("reading a part's footer: {e}")))?;
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for rg in metadata.row_groups() {
            for c in rg.columns() {
                if let (Some(off), Some(len)) = (c.offset_index_offset(), c.offset_index_length()) {
                    let (Ok(off), Ok(len)) = (u64::try_from(off), u64::try_from(len)) else {
                        return Err(Error::Corrupted("a negative offset index range".into()));
                    };
                    lo = lo.min(off);
                    hi = hi.max(off.saturating_add(len));
                }
            }
        }
        if lo >= hi {
            return Ok(());
        }
        if hi > self.len {
            return Err(Error::Corrupted(format!(
                "offset indexes {lo}..{hi} outside a part of {} bytes",
                self.len
            )));
        }
        if !self.holds(lo, hi - lo) {
            self.add(lo, fetch(lo, (hi - lo) as usize)?)?;
        }
        Ok(())
    }

    fn holds(&self, start: u64, len: u64) -> bool {
        self.ranges.lock().unwrap().holds(start, len)
    }

    fn add(&self, start: u64, bytes: Vec<u8>) -> Result<()> {
        if start + bytes.len() as u64 > self.len {
            return Err(Error::Corrupted("fetched bytes beyond the part".into()));
        }
        self.ranges
            .lock()
            .unwrap()
            .insert(start, Bytes::from(bytes));
        Ok(())
    }

    /// Bytes held, for tests and EXPLAIN.
    pub fn bytes_held(&self) -> u64 {
        self.ranges.lock().unwrap().bytes
    }

    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        let ranges = self.ranges.lock().unwrap();
        if let Some((s, b)) = ranges.around(start) {
            let from = (start - s) as usize;
            match len {
                Some(l) if from + l <= b.len() => return Ok(b.slice(from..from + l)),
                Some(_) => {}
                // A reader without a length reads on from `start` (a range that merely
                // ends there would be empty).
                None if from < b.len() => return Ok(b.slice(from..)),
                None => {}
            }
        }
        Err(ParquetError::General(format!(
            "bytes {start}+{} of the part were not fetched",
            len.map_or("…".to_string(), |l| l.to_string())
        )))
    }
}

/// Where column `c` of granule `g` lies in the part (bounds are checked when fetched).
fn chunk_range(metadata: &ParquetMetaData, g: usize, c: usize) -> Result<(u64, u64)> {
    let rg = metadata
        .row_groups()
        .get(g)
        .ok_or_else(|| Error::Corrupted(format!("granule {g} does not exist")))?;
    let chunk = rg
        .columns()
        .get(c)
        .ok_or_else(|| Error::Corrupted(format!("column {c} does not exist")))?;
    Ok(chunk.byte_range())
}

impl Length for SparsePart {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for SparsePart {
    type T = Cursor<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(Cursor::new(self.slice(start, None)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}
