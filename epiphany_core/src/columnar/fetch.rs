//! Reading a part without reading all of it.
//!
//! A scan needs the footer (metadata and granule statistics), then only the column chunks
//! of the columns it projects in the granules it did not prune. [`SparsePart`] holds just
//! those byte ranges, fetched through a callback (from an extent, in the glue), and serves
//! them to the Parquet reader; asking it for bytes it does not hold is an error.

use std::io::Cursor;
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
    ranges: Arc<Mutex<Vec<(u64, Bytes)>>>,
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
            ranges: Arc::new(Mutex::new(Vec::new())),
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
            part.ranges.lock().unwrap().clear();
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
            let rg = metadata
                .row_groups()
                .get(g)
                .ok_or_else(|| Error::Corrupted(format!("granule {g} does not exist")))?;
            for &c in columns {
                let chunk = rg
                    .columns()
                    .get(c)
                    .ok_or_else(|| Error::Corrupted(format!("column {c} does not exist")))?;
                let (start, len) = chunk.byte_range();
                if start.checked_add(len).is_none_or(|end| end > self.len) {
                    return Err(Error::Corrupted(format!(
                        "column chunk {start}+{len} outside the part"
                    )));
                }
                wanted.push((start, len));
            }
        }
        // Adjacent chunks (the columns of one granule, usually) are fetched together.
        wanted.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (start, len) in wanted {
            match merged.last_mut() {
                Some((s, l)) if start <= *s + *l => *l = (*l).max(start + len - *s),
                _ => merged.push((start, len)),
            }
        }
        for (start, len) in merged {
            if !self.holds(start, len) {
                self.add(start, fetch(start, len as usize)?)?;
            }
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
        let ranges = self.ranges.lock().unwrap();
        ranges
            .iter()
            .any(|(s, b)| *s <= start && start + len <= *s + b.len() as u64)
    }

    fn add(&self, start: u64, bytes: Vec<u8>) -> Result<()> {
        if start + bytes.len() as u64 > self.len {
            return Err(Error::Corrupted("fetched bytes beyond the part".into()));
        }
        self.ranges
            .lock()
            .unwrap()
            .push((start, Bytes::from(bytes)));
        Ok(())
    }

    /// Bytes held, for tests and EXPLAIN.
    pub fn bytes_held(&self) -> u64 {
        self.ranges
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.len() as u64)
            .sum()
    }

    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        let ranges = self.ranges.lock().unwrap();
        // A reader without a length reads on from `start`: give it the held range that
        // reaches furthest (one that merely ends at `start` would be empty).
        let mut best: Option<Bytes> = None;
        for (s, b) in ranges.iter() {
            let end = *s + b.len() as u64;
            if *s <= start && start <= end {
                let from = (start - s) as usize;
                match len {
                    Some(l) if from + l <= b.len() => return Ok(b.slice(from..from + l)),
                    Some(_) => continue,
                    None => {
                        if best.as_ref().is_none_or(|x| x.len() < b.len() - from) {
                            best = Some(b.slice(from..));
                        }
                    }
                }
            }
        }
        if let Some(bytes) = best.filter(|b| !b.is_empty()) {
            return Ok(bytes);
        }
        Err(ParquetError::General(format!(
            "bytes {start}+{} of the part were not fetched",
            len.map_or("…".to_string(), |l| l.to_string())
        )))
    }
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
