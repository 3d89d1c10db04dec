//! Decoding a few rows of one column from the pages that hold them.
//!
//! A fetch by TID decodes one page window of a column. Parquet's reader builds a page
//! reader per column chunk it reads, and each builds its codec: zstd's context
//! constructors ask the CPU for its features (`cpuid`), which in a virtual machine traps
//! to the hypervisor — 43% of a random index probe of TPC-H lineitem went there. Here
//! page headers are read from the Thrift compact protocol, bodies are decompressed with
//! one zstd context per thread, and the pages go to Parquet's own array reader through
//! its `RowGroups` interface, so values are decoded by the same code into the same Arrow
//! arrays as a scan's. Pages this module does not know (format v2, index pages, other
//! codecs) make it answer `None`, and the caller takes Parquet's reader.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{Page, PageIterator, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result as PqResult};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::reader::ChunkReader;

use crate::error::{Error, Result};

const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;

/// What a page header says, of the fields a v1 data page or a dictionary page needs.
#[derive(Debug, Default, PartialEq)]
pub struct PageHead {
    pub kind: i32,
    pub uncompressed_size: i32,
    pub compressed_size: i32,
    pub num_values: i32,
    pub encoding: i32,
    pub def_encoding: i32,
    pub rep_encoding: i32,
    pub sorted: bool,
}

/// Reads the page header at the start of `bytes`; returns it and its length.
pub fn read_page_head(bytes: &[u8]) -> Result<(PageHead, usize)> {
    let mut c = Compact { bytes, pos: 0 };
    let mut head = PageHead::default();
    let mut last = 0i16;
    while let Some((id, ty)) = c.field(&mut last)? {
        match (id, ty) {
            (1, I32) => head.kind = c.i32()?,
            (2, I32) => head.uncompressed_size = c.i32()?,
            (3, I32) => head.compressed_size = c.i32()?,
            (5 | 7, STRUCT) => {
                let data = id == 5;
                let mut last = 0i16;
                while let Some((id, ty)) = c.field(&mut last)? {
                    match (data, id, ty) {
                        (_, 1, I32) => head.num_values = c.i32()?,
                        (_, 2, I32) => head.encoding = c.i32()?,
                        (true, 3, I32) => head.def_encoding = c.i32()?,
                        (true, 4, I32) => head.rep_encoding = c.i32()?,
                        (false, 3, TRUE | FALSE) => head.sorted = ty == TRUE,
                        _ => c.skip(ty, 0)?,
                    }
                }
            }
            _ => c.skip(ty, 0)?,
        }
    }
    Ok((head, c.pos))
}

// Thrift compact protocol type codes.
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const I8: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

struct Compact<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Compact<'_> {
    fn bad(&self, what: &str) -> Error {
        Error::Corrupted(format!("page header: {what} at byte {}", self.pos))
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.bad("cut short"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("an overlong varint"))
    }

    fn i64(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32> {
        i32::try_from(self.i64()?).map_err(|_| self.bad("an i32 out of range"))
    }

    /// The next field's id and type, `None` at the end of the struct.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let delta = (b >> 4) as i16;
        let id = if delta == 0 {
            i16::try_from(self.i64()?).map_err(|_| self.bad("a field id out of range"))?
        } else {
            *last + delta
        };
        *last = id;
        Ok(Some((id, b & 0x0f)))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| self.bad("a length past the header"))
    }

    fn skip(&mut self, ty: u8, depth: u32) -> Result<()> {
        if depth > 16 {
            return Err(self.bad("nesting too deep"));
        }
        match ty {
            TRUE | FALSE => {}
            I8 => {
                self.byte()?;
            }
            I16 | I32 | I64 => {
                self.varint()?;
            }
            DOUBLE => self.advance(8)?,
            BINARY => {
                let n = self.len()?;
                self.advance(n)?;
            }
            LIST | SET => {
                let b = self.byte()?;
                let n = match b >> 4 {
                    15 => self.len()?,
                    n => n as usize,
                };
                for _ in 0..n {
                    // Booleans in a list take a byte each.
                    match b & 0x0f {
                        TRUE | FALSE => self.advance(1)?,
                        t => self.skip(t, depth + 1)?,
                    }
                }
            }
            MAP => {
                let n = self.len()?;
                if n > 0 {
                    let kv = self.byte()?;
                    for _ in 0..n {
                        for t in [kv >> 4, kv & 0x0f] {
                            match t {
                                TRUE | FALSE => self.advance(1)?,
                                t => self.skip(t, depth + 1)?,
                            }
                        }
                    }
                }
            }
            STRUCT => {
                let mut last = 0i16;
                while let Some((_, t)) = self.field(&mut last)? {
                    self.skip(t, depth + 1)?;
                }
            }
            _ => return Err(self.bad("an unknown field type")),
        }
        Ok(())
    }

    fn advance(&mut self, n: usize) -> Result<()> {
        if self.bytes.len() - self.pos < n {
            return Err(self.bad("cut short"));
        }
        self.pos += n;
        Ok(())
    }
}

fn encoding(code: i32) -> Option<Encoding> {
    #[allow(deprecated)]
    Some(match code {
        0 => Encoding::PLAIN,
        2 => Encoding::PLAIN_DICTIONARY,
        3 => Encoding::RLE,
        4 => Encoding::BIT_PACKED,
        5 => Encoding::DELTA_BINARY_PACKED,
        6 => Encoding::DELTA_LENGTH_BYTE_ARRAY,
        7 => Encoding::DELTA_BYTE_ARRAY,
        8 => Encoding::RLE_DICTIONARY,
        9 => Encoding::BYTE_STREAM_SPLIT,
        _ => return None,
    })
}

thread_local! {
    /// One zstd context per thread, made once (see the module header).
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn decompress(codec: Compression, body: &[u8], size: usize) -> Result<Bytes> {
    let out = match codec {
        Compression::UNCOMPRESSED => body.to_vec(),
        Compression::ZSTD(_) => ZSTD.with(|z| {
            let mut z = z.borrow_mut();
            if z.is_none() {
                *z = Some(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| Error::Internal(format!("a zstd context: {e}")))?,
                );
            }
            z.as_mut()
                .expect("made above")
                .decompress(body, size)
                .map_err(|e| Error::Corrupted(format!("a zstd page: {e}")))
        })?,
        other => {
            return Err(Error::Internal(format!(
                "no page decompression for {other}"
            )))
        }
    };
    if out.len() != size {
        return Err(Error::Corrupted(format!(
            "a page of {} bytes decompressed to {}",
            size,
            out.len()
        )));
    }
    Ok(Bytes::from(out))
}

/// One page read from `bytes` (its header and body), decompressed; `None` if it is not a
/// v1 data page or a dictionary page in encodings this module knows.
fn decode_page(bytes: &[u8], codec: Compression) -> Result<Option<(Page, usize)>> {
    let (head, header_len) = read_page_head(bytes)?;
    let body = usize::try_from(head.compressed_size)
        .ok()
        .and_then(|n| bytes.get(header_len..header_len.checked_add(n)?))
        .ok_or_else(|| Error::Corrupted("a page body past its location".into()))?;
    let size = usize::try_from(head.uncompressed_size)
        .map_err(|_| Error::Corrupted("a page of negative size".into()))?;
    let values = u32::try_from(head.num_values)
        .map_err(|_| Error::Corrupted("a page of negative values".into()))?;
    Ok(match head.kind {
        DATA_PAGE => {
            let (Some(encoding), Some(def), Some(rep)) = (
                encoding(head.encoding),
                encoding(head.def_encoding),
                encoding(head.rep_encoding),
            ) else {
                return Ok(None);
            };
            let page = Page::DataPage {
                buf: decompress(codec, body, size)?,
                num_values: values,
                encoding,
                def_level_encoding: def,
                rep_level_encoding: rep,
                statistics: None,
            };
            Some((page, values as usize))
        }
        DICTIONARY_PAGE => {
            let Some(encoding) = encoding(head.encoding) else {
                return Ok(None);
            };
            let page = Page::DictionaryPage {
                buf: decompress(codec, body, size)?,
                num_values: values,
                encoding,
                is_sorted: head.sorted,
            };
            Some((page, values as usize))
        }
        _ => None,
    })
}

/// The pages of one column chunk that hold rows `rows` of it, with its dictionary page:
/// the row of the chunk the first of them starts at, and the pages. `None` when the part
/// has no offset index or a page is of a kind this module leaves to Parquet.
pub fn window_pages<R: ChunkReader>(
    source: &R,
    metadata: &ParquetMetaData,
    dictionaries: &Dictionaries,
    g: usize,
    column: usize,
    rows: std::ops::Range<usize>,
) -> Result<Option<WindowPages>> {
    let bad = |what: String| Error::Corrupted(format!("granule {g} column {column}: {what}"));
    let rg = metadata
        .row_groups()
        .get(g)
        .ok_or_else(|| bad("no such granule".into()))?;
    let chunk = rg
        .columns()
        .get(column)
        .ok_or_else(|| bad("no such column".into()))?;
    let codec = chunk.compression();
    if !matches!(codec, Compression::UNCOMPRESSED | Compression::ZSTD(_)) {
        return Ok(None);
    }
    let index = metadata.page_index_for_row_group(g);
    let Some(locations) = index.page_locations(column).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let granule_rows = usize::try_from(rg.num_rows()).map_err(|_| bad("negative rows".into()))?;
    let get = |offset: i64, len: i64| -> Result<Bytes> {
        let (Ok(offset), Ok(len)) = (u64::try_from(offset), usize::try_from(len)) else {
            return Err(bad(format!("a page at {offset}+{len}")));
        };
        source
            .get_bytes(offset, len)
            .map_err(|e| bad(format!("page bytes: {e}")))
    };
    let mut pages = VecDeque::new();
    let (start, _) = chunk.byte_range();
    let first_page = locations[0].offset;
    if u64::try_from(first_page).ok() != Some(start) {
        let page = match dictionaries.get(g, column) {
            Some(page) => page,
            None => {
                let len =
                    first_page - i64::try_from(start).map_err(|_| bad("chunk offset".into()))?;
                let bytes = get(i64::try_from(start).unwrap_or(i64::MAX), len)?;
                match decode_page(&bytes, codec)? {
                    Some((page @ Page::DictionaryPage { .. }, _)) => {
                        dictionaries.put(g, column, &page);
                        page
                    }
                    _ => return Ok(None),
                }
            }
        };
        pages.push_back((page, 0));
    }
    let mut first_row = None;
    let mut end_row = 0;
    for (i, loc) in locations.iter().enumerate() {
        let from = usize::try_from(loc.first_row_index).map_err(|_| bad("page row".into()))?;
        let to = match locations.get(i + 1) {
            Some(n) => usize::try_from(n.first_row_index).map_err(|_| bad("page row".into()))?,
            None => granule_rows,
        };
        if to <= from || to > granule_rows {
            return Err(bad(format!("a page of rows {from}..{to}")));
        }
        if from >= rows.end || to <= rows.start {
            continue;
        }
        let bytes = get(loc.offset, i64::from(loc.compressed_page_size))?;
        match decode_page(&bytes, codec)? {
            Some((page @ Page::DataPage { .. }, values)) => {
                // A flat column: a value (or null) per row.
                if values != to - from {
                    return Ok(None);
                }
                first_row.get_or_insert(from);
                end_row = to;
                pages.push_back((page, to - from));
            }
            _ => return Ok(None),
        }
    }
    let Some(first_row) = first_row else {
        return Err(bad(format!("no page holds rows {rows:?}")));
    };
    Ok(Some(WindowPages {
        pages,
        first_row,
        rows: end_row - first_row,
    }))
}

/// The decompressed dictionary pages of a part's column chunks, kept with the part:
/// every page window of a chunk (a granule of 8,192 rows has eight) decodes with its
/// chunk's dictionary, and decompressing it again for each was most of what a bitmap
/// scan's first pass over a table cost.
#[derive(Default)]
pub struct Dictionaries {
    pages: std::sync::Mutex<rustc_hash::FxHashMap<(usize, usize), Page>>,
    bytes: std::sync::atomic::AtomicU64,
}

impl Dictionaries {
    fn get(&self, g: usize, column: usize) -> Option<Page> {
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages.get(&(g, column)).cloned()
    }

    fn put(&self, g: usize, column: usize, page: &Page) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if pages.insert((g, column), page.clone()).is_none() {
            self.bytes.fetch_add(
                page.buffer().len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    /// Bytes of dictionaries held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Decompressed pages of one column chunk, served to Parquet's array reader.
pub struct WindowPages {
    /// Pages and their rows (0 for the dictionary page).
    pages: VecDeque<(Page, usize)>,
    /// The chunk row the first data page starts at, and how many rows the pages hold.
    pub first_row: usize,
    pub rows: usize,
}

impl Iterator for WindowPages {
    type Item = PqResult<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for WindowPages {
    fn get_next_page(&mut self) -> PqResult<Option<Page>> {
        Ok(self.pages.pop_front().map(|(p, _)| p))
    }

    fn peek_next_page(&mut self) -> PqResult<Option<PageMetadata>> {
        Ok(self.pages.front().map(|(p, rows)| {
            let dict = matches!(p, Page::DictionaryPage { .. });
            PageMetadata {
                num_rows: (!dict).then_some(*rows),
                num_levels: (!dict).then_some(*rows),
                is_dict: dict,
            }
        }))
    }

    fn skip_next_page(&mut self) -> PqResult<()> {
        self.pages.pop_front();
        Ok(())
    }
}

/// The data pages of one whole column chunk: headers read up front, bodies
/// decompressed only when Parquet's reader asks for them, so pages a row selection skips
/// cost nothing. The dictionary page, if any, is decompressed first (or taken from the
/// part's [`Dictionaries`]).
pub struct ChunkPages {
    bytes: Bytes,
    codec: Compression,
    dictionary: Option<Page>,
    /// Each data page: where its body lies in `bytes`, its header and its rows.
    pages: VecDeque<(std::ops::Range<usize>, PageHead, usize)>,
}

/// The pages of column `column` of granule `g`, whose bytes `source` must hold; `None`
/// when a page is of a kind this module leaves to Parquet (or the column is not flat).
pub fn chunk_pages<R: ChunkReader>(
    source: &R,
    metadata: &ParquetMetaData,
    dictionaries: &Dictionaries,
    g: usize,
    column: usize,
) -> Result<Option<ChunkPages>> {
    let bad = |what: String| Error::Corrupted(format!("granule {g} column {column}: {what}"));
    let rg = metadata
        .row_groups()
        .get(g)
        .ok_or_else(|| bad("no such granule".into()))?;
    let chunk = rg
        .columns()
        .get(column)
        .ok_or_else(|| bad("no such column".into()))?;
    let codec = chunk.compression();
    if !matches!(codec, Compression::UNCOMPRESSED | Compression::ZSTD(_)) {
        return Ok(None);
    }
    let (start, len) = chunk.byte_range();
    let len = usize::try_from(len).map_err(|_| bad("chunk length".into()))?;
    let bytes = source
        .get_bytes(start, len)
        .map_err(|e| bad(format!("chunk bytes: {e}")))?;
    let granule_rows = usize::try_from(rg.num_rows()).map_err(|_| bad("negative rows".into()))?;
    let mut dictionary = None;
    let mut pages = VecDeque::new();
    let mut rows = 0usize;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let (head, header_len) = read_page_head(&bytes[pos..])?;
        let body = usize::try_from(head.compressed_size)
            .ok()
            .and_then(|n| {
                let from = pos.checked_add(header_len)?;
                let to = from.checked_add(n)?;
                (to <= bytes.len()).then_some(from..to)
            })
            .ok_or_else(|| bad("a page body past its chunk".into()))?;
        let next = body.end;
        match head.kind {
            DICTIONARY_PAGE if pos == 0 => {
                dictionary = Some(match dictionaries.get(g, column) {
                    Some(page) => page,
                    None => match decode_page(&bytes[..next], codec)? {
                        Some((page @ Page::DictionaryPage { .. }, _)) => {
                            dictionaries.put(g, column, &page);
                            page
                        }
                        _ => return Ok(None),
                    },
                });
            }
            DATA_PAGE => {
                if encoding(head.encoding).is_none()
                    || encoding(head.def_encoding).is_none()
                    || encoding(head.rep_encoding).is_none()
                {
                    return Ok(None);
                }
                let values = usize::try_from(head.num_values)
                    .map_err(|_| bad("a page of negative values".into()))?;
                rows += values;
                pages.push_back((body, head, values));
            }
            _ => return Ok(None),
        }
        pos = next;
    }
    // A flat column holds a value (or null) per row.
    if rows != granule_rows {
        return Ok(None);
    }
    Ok(Some(ChunkPages {
        bytes,
        codec,
        dictionary,
        pages,
    }))
}

impl Iterator for ChunkPages {
    type Item = PqResult<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for ChunkPages {
    fn get_next_page(&mut self) -> PqResult<Option<Page>> {
        if let Some(page) = self.dictionary.take() {
            return Ok(Some(page));
        }
        let Some((body, head, values)) = self.pages.pop_front() else {
            return Ok(None);
        };
        let size = usize::try_from(head.uncompressed_size)
            .map_err(|_| ParquetError::General("a page of negative size".into()))?;
        let buf = decompress(self.codec, &self.bytes[body], size)
            .map_err(|e| ParquetError::General(e.to_string()))?;
        // Checked when the headers were read.
        let known =
            |code| encoding(code).ok_or_else(|| ParquetError::General("an encoding".into()));
        Ok(Some(Page::DataPage {
            buf,
            num_values: values as u32,
            encoding: known(head.encoding)?,
            def_level_encoding: known(head.def_encoding)?,
            rep_level_encoding: known(head.rep_encoding)?,
            statistics: None,
        }))
    }

    fn peek_next_page(&mut self) -> PqResult<Option<PageMetadata>> {
        if self.dictionary.is_some() {
            return Ok(Some(PageMetadata {
                num_rows: None,
                num_levels: None,
                is_dict: true,
            }));
        }
        Ok(self.pages.front().map(|(_, _, rows)| PageMetadata {
            num_rows: Some(*rows),
            num_levels: Some(*rows),
            is_dict: false,
        }))
    }

    fn skip_next_page(&mut self) -> PqResult<()> {
        if self.dictionary.take().is_none() {
            self.pages.pop_front();
        }
        Ok(())
    }
}

/// Page readers of some columns of one granule, as the `RowGroups` Parquet's array
/// reader reads: each column's pages are served once.
pub struct WindowRowGroups<'a> {
    pub metadata: &'a ParquetMetaData,
    pub granule: usize,
    pub pages: std::sync::Mutex<Vec<(usize, Box<dyn PageReader>)>>,
    pub rows: usize,
}

struct OnePageReader(Option<Box<dyn PageReader>>);

impl Iterator for OnePageReader {
    type Item = PqResult<Box<dyn PageReader>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.take().map(Ok)
    }
}

impl PageIterator for OnePageReader {}

impl parquet::arrow::arrow_reader::RowGroups for WindowRowGroups<'_> {
    fn num_rows(&self) -> usize {
        self.rows
    }

    fn column_chunks(&self, i: usize) -> PqResult<Box<dyn PageIterator>> {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        let k = pages
            .iter()
            .position(|(c, _)| *c == i)
            .ok_or_else(|| ParquetError::General(format!("column {i} not held or read twice")))?;
        let (_, reader) = pages.swap_remove(k);
        Ok(Box::new(OnePageReader(Some(reader))))
    }

    fn row_groups(&self) -> Box<dyn Iterator<Item = &RowGroupMetaData> + '_> {
        Box::new(self.metadata.row_groups().get(self.granule).into_iter())
    }

    fn metadata(&self) -> &ParquetMetaData {
        self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_with_statistics_and_unknown_fields_reads() {
        // PageHeader{type=0, uncompressed=100, compressed=40, data_page_header={
        // num_values=7, encoding=8, def=3, rep=3, statistics={max=binary "ab"}},
        // field 15 = list of 2 i32}.
        let bytes = [
            0x15, 0x00, // 1: i32 0
            0x15, 0xc8, 0x01, // 2: i32 100
            0x15, 0x50, // 3: i32 40
            0x2c, // 5: struct
            0x15, 0x0e, // 1: 7
            0x15, 0x10, // 2: 8
            0x15, 0x06, // 3: 3
            0x15, 0x06, // 4: 3
            0x1c, // 5: struct statistics
            0x18, 0x02, b'a', b'b', // 1: binary "ab"
            0x00, // end statistics
            0x00, // end data page header
            0xa9, 0x25, 0x02, 0x04, // 15: list<i32> [1, 2]
            0x00,
        ];
        let (head, len) = read_page_head(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(
            head,
            PageHead {
                kind: 0,
                uncompressed_size: 100,
                compressed_size: 40,
                num_values: 7,
                encoding: 8,
                def_encoding: 3,
                rep_encoding: 3,
                sorted: false,
            }
        );
    }

    #[test]
    fn damaged_headers_are_errors() {
        for bytes in [
            &[0x15][..],
            &[0x15, 0x80],
            &[0x1c, 0x18, 0xff, 0x7f],
            &[0x1d],
            &[],
        ] {
            assert!(read_page_head(bytes).is_err(), "{bytes:?}");
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = vec![0x1c; 1000];
        assert!(read_page_head(&deep).is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever bytes a page holds (damage the checksums missed), reading its
            /// header and body is an answer or an error, never a panic.
            #[test]
            fn any_page_bytes_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let _ = read_page_head(&bytes);
                let _ = decode_page(&bytes, Compression::UNCOMPRESSED);
                let _ = decode_page(&bytes, Compression::ZSTD(Default::default()));
            }

            /// A valid header followed by damage keeps being refused or read.
            #[test]
            fn damaged_bodies_read_without_panicking(
                size in 0i32..64, values in 0i32..64, body in proptest::collection::vec(any::<u8>(), 0..80)
            ) {
                let mut bytes = vec![0x15, 0x00, 0x15];
                bytes.extend(zigzag(size));
                bytes.push(0x15);
                bytes.extend(zigzag(body.len() as i32));
                bytes.extend([0x2c, 0x15]);
                bytes.extend(zigzag(values));
                bytes.extend([0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x00, 0x00]);
                bytes.extend(&body);
                let _ = decode_page(&bytes, Compression::UNCOMPRESSED);
                let _ = decode_page(&bytes, Compression::ZSTD(Default::default()));
            }
        }

        fn zigzag(v: i32) -> Vec<u8> {
            let mut z = ((v << 1) ^ (v >> 31)) as u32;
            let mut out = Vec::new();
            loop {
                if z < 0x80 {
                    out.push(z as u8);
                    return out;
                }
                out.push((z as u8 & 0x7f) | 0x80);
                z >>= 7;
            }
        }
    }
}
