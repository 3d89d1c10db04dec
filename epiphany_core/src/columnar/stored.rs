//! Parts as they are stored: a part's catalog entry ([`PartRow`]) and a part opened from
//! the pages of any [`PageStore`] ([`OpenPart`]): the footer read, column chunks and
//! pages fetched on demand and decoded by the core's reader. The glue gives it the
//! relation's pages; tests give it memory.

use arrow_array::{ArrayRef, RecordBatch};

use crate::columnar::fetch::SparsePart;
use crate::columnar::{PartReader, TableSchema};
use crate::error::{Error, Result};
use crate::storage::{Extent, ExtentReader, PageStore};

/// What a part's catalog row says of it.
#[derive(Clone, Debug, PartialEq)]
pub struct PartRow {
    pub storage_id: u64,
    pub part_id: u64,
    pub level: i32,
    pub first_row: u64,
    pub row_count: u64,
    pub first_block: u32,
    pub pages: u32,
    pub byte_len: u64,
    /// Part summary (`scan_plan::encode_stats`).
    pub stats: Vec<u8>,
}

impl PartRow {
    pub fn extent(&self) -> Extent {
        Extent {
            id: self.part_id,
            first_block: self.first_block,
            pages: self.pages,
            len: self.byte_len,
        }
    }
}

/// A part with the footer read; column chunks are fetched on demand.
pub struct OpenPart {
    pub row: PartRow,
    pub reader: PartReader<SparsePart>,
}

impl OpenPart {
    /// Reads the footer of part `row` from `store`; with `offsets`, also the offset index
    /// (where each page starts), for reads of a few rows of a granule (fetches by TID).
    pub fn open_from(
        store: &impl PageStore,
        schema: &TableSchema,
        row: PartRow,
        offsets: bool,
    ) -> Result<Self> {
        let extent = ExtentReader::new(store, row.extent())?;
        let mut fetch = |off, len| extent.read(off, len);
        let sparse = SparsePart::with_tail(row.byte_len, &mut fetch)?;
        let reader = if offsets {
            sparse.fetch_offset_indexes(&mut fetch)?;
            PartReader::open_with_offsets(schema, sparse)?
        } else {
            PartReader::open(schema, sparse)?
        };
        if reader.rows() != row.row_count {
            return Err(Error::Corrupted(format!(
                "part {} holds {} rows, its catalog row says {}",
                row.part_id,
                reader.rows(),
                row.row_count
            )));
        }
        Ok(OpenPart { row, reader })
    }

    /// Fetches the chunks of `columns` in `granules` (those not held yet).
    pub fn fetch_from(
        &self,
        store: &impl PageStore,
        columns: &[usize],
        granules: &[usize],
    ) -> Result<()> {
        let extent = ExtentReader::new(store, self.row.extent())?;
        self.reader.source().fetch_chunks(
            self.reader.metadata(),
            columns,
            granules,
            &mut |off, len| extent.read(off, len),
        )
    }

    /// Columns `columns` of granule `g`, decoded in one batch.
    pub fn granule_from(
        &self,
        store: &impl PageStore,
        columns: &[usize],
        g: usize,
    ) -> Result<RecordBatch> {
        self.fetch_from(store, columns, &[g])?;
        let rows = self.reader.granule_len(g).unwrap_or(0) as usize;
        let mut batches = self.reader.read(columns, &[g], rows.max(1))?;
        let batch = batches
            .next()
            .unwrap_or_else(|| Err(Error::Corrupted(format!("granule {g} is empty"))))?;
        if batch.num_rows() != rows {
            return Err(Error::Corrupted(format!(
                "granule {g}: {} rows, expected {rows}",
                batch.num_rows()
            )));
        }
        Ok(batch)
    }

    /// Rows `first .. first + count` of granule `g`, columns `columns`: only the pages
    /// holding them are fetched (opened with `offsets`).
    pub fn rows_from(
        &self,
        store: &impl PageStore,
        columns: &[usize],
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<RecordBatch> {
        let extent = ExtentReader::new(store, self.row.extent())?;
        self.reader.source().fetch_pages(
            self.reader.metadata(),
            columns,
            g,
            first..first + count,
            &mut |off, len| extent.read(off, len),
        )?;
        self.reader.read_rows(columns, g, first, count)
    }

    /// Rows `first .. first + count` of column `c` of granule `g`, decoded from only the
    /// pages holding them (what a fetch by TID decodes).
    pub fn column_from(
        &self,
        store: &impl PageStore,
        c: usize,
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<ArrayRef> {
        let extent = ExtentReader::new(store, self.row.extent())?;
        self.reader.source().fetch_pages(
            self.reader.metadata(),
            &[c],
            g,
            first..first + count,
            &mut |off, len| extent.read(off, len),
        )?;
        self.reader.read_column(c, g, first, count)
    }
}
