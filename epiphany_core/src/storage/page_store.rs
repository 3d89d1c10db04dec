//! The seam between storage formats and where pages live.
//!
//! Formats are written against [`PageStore`]; the glue implements it over a Postgres
//! relation (shared buffers, GenericXLog), and [`MemoryPageStore`] implements it over a
//! vector for tests. Pages are only ever appended and then written once: a page store
//! never overwrites a page another transaction may read.

use crate::error::{Error, Result};

pub type BlockNumber = u32;

pub trait PageStore {
    /// Bytes available to a format in each page.
    fn page_size(&self) -> usize;

    /// Number of pages that exist.
    fn nblocks(&self) -> Result<BlockNumber>;

    /// Appends `count` zeroed pages and returns the first one's block number.
    fn extend(&mut self, count: u32) -> Result<BlockNumber>;

    /// Writes `pages` (each exactly `page_size` bytes) to consecutive blocks from `first`.
    fn write_pages(&mut self, first: BlockNumber, pages: &[&[u8]]) -> Result<()>;

    /// Calls `f` with the bytes of page `block`.
    fn read_page<R>(&self, block: BlockNumber, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R>;
}

/// A page store in memory, for tests and for tools that work on exported bytes.
#[derive(Debug, Clone)]
pub struct MemoryPageStore {
    page_size: usize,
    pages: Vec<Vec<u8>>,
}

impl MemoryPageStore {
    pub fn new(page_size: usize) -> Self {
        MemoryPageStore {
            page_size,
            pages: Vec::new(),
        }
    }

    /// The raw page, for tests that damage it on purpose.
    pub fn page_mut(&mut self, block: BlockNumber) -> &mut [u8] {
        &mut self.pages[block as usize]
    }
}

impl PageStore for MemoryPageStore {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn nblocks(&self) -> Result<BlockNumber> {
        Ok(self.pages.len() as BlockNumber)
    }

    fn extend(&mut self, count: u32) -> Result<BlockNumber> {
        let first = self.pages.len() as BlockNumber;
        self.pages
            .extend((0..count).map(|_| vec![0; self.page_size]));
        Ok(first)
    }

    fn write_pages(&mut self, first: BlockNumber, pages: &[&[u8]]) -> Result<()> {
        for (i, page) in pages.iter().enumerate() {
            let block = first as usize + i;
            let slot = self
                .pages
                .get_mut(block)
                .ok_or_else(|| Error::Corrupted(format!("write to block {block} past the end")))?;
            slot.copy_from_slice(page);
        }
        Ok(())
    }

    fn read_page<R>(&self, block: BlockNumber, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        let page = self.pages.get(block as usize).ok_or_else(|| {
            Error::Corrupted(format!(
                "block {block} is past the end ({} blocks)",
                self.pages.len()
            ))
        })?;
        f(page)
    }
}
