//! The [`PageStore`] over a relation's main fork: shared buffers, WAL-logged.
//!
//! Each page keeps Postgres's standard header (so `data_checksums`, `pg_checksums`,
//! `amcheck`-style tools and GenericXLog all understand it); the store's page is what
//! follows that header. New pages are written once, as full images through GenericXLog,
//! so crash recovery, streaming standbys and `pg_basebackup` need nothing of ours.
//! Extending takes the relation extension lock for all pages of one extent, so an
//! extent's pages are consecutive even with concurrent writers.

use crate::pg::buffer::MAX_PAGES_PER_RECORD;
use crate::pg::buffer::{Buffer, ExtensionLock, Image, Lock, Rel, WalRecord};
use crate::pg::page::{self, BLOCK_SIZE, PAGE_HEADER};
use crate::storage::{BlockNumber, PageStore};
use crate::Error;

/// The pages of an open relation, locked for reading (or for writing, when the store
/// writes).
pub struct RelationPageStore<'a> {
    rel: Rel<'a>,
}

impl<'a> RelationPageStore<'a> {
    pub fn new(rel: Rel<'a>) -> Self {
        RelationPageStore { rel }
    }

    fn rel(&self) -> Rel<'a> {
        self.rel
    }
}

impl PageStore for RelationPageStore<'_> {
    fn page_size(&self) -> usize {
        BLOCK_SIZE - PAGE_HEADER
    }

    fn nblocks(&self) -> Result<BlockNumber, Error> {
        Ok(self.rel().nblocks())
    }

    fn extend(&mut self, count: u32) -> Result<BlockNumber, Error> {
        // The extension lock is held while extending, so the new blocks are consecutive.
        ExtensionLock::take(self.rel()).extend_by(count)
    }

    fn write_pages(&mut self, first: BlockNumber, pages: &[&[u8]]) -> Result<(), Error> {
        let rel = self.rel();
        for (batch_no, batch) in pages.chunks(MAX_PAGES_PER_RECORD).enumerate() {
            // Blocks below nblocks (extend() made them), each locked exclusively while
            // GenericXLog rewrites it as a full image.
            let start = first + (batch_no * MAX_PAGES_PER_RECORD) as u32;
            let mut record = WalRecord::start(rel);
            for (i, payload) in batch.iter().enumerate() {
                let buffer = Buffer::read(rel, start + i as u32, Lock::Exclusive);
                let n = record.add(buffer, Image::Full);
                let image = record.page(n);
                page::init(image, 0);
                page::put_contents(image, payload);
            }
            record.finish();
        }
        Ok(())
    }

    fn read_page<R>(
        &self,
        block: BlockNumber,
        f: impl FnOnce(&[u8]) -> Result<R, Error>,
    ) -> Result<R, Error> {
        // The caller checked block < nblocks (ExtentReader does); the buffer is
        // share-locked while `f` reads the page and released after.
        let buffer = Buffer::read(self.rel(), block, Lock::Share);
        let page = buffer.page();
        if page::is_new(page) {
            return Err(Error::Corrupted(format!("block {block} was never written")));
        }
        f(page::contents(page))
    }
}
