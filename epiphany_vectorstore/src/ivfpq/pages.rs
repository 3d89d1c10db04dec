//! The pages of an epiphany_ivfpq index (formats in `epiphany_core::vector::ivf_page`):
//! block 0 the metapage, then the centroids and the codebooks (one float chunk per page),
//! the list directory (one head per list, rewritten in place), and each list's chain of
//! entry pages (the next page's number in the special space). Every change is GenericXLog.
//! Lock order: a directory page before list pages.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use epiphany_core::pg::OrReport;
use epiphany_core::vector::ivf_page::{
    floats_from_chunks, IvfMeta, ListHead, HEAD_SIZE, META_SIZE,
};
use epiphany_core::vector::pq::{IvfPq, ProductQuantizer};
use epiphany_core::Error;
use pgrx::pg_sys;

use epiphany_core::pg::buffer::{Buffer, Lock, Rel};
use epiphany_core::pg::page::{self, item_count, item_range, PAGE_CAPACITY, PAGE_HEADER};

pub const META_BLOCK: u32 = 0;
/// List heads per directory page.
pub const HEADS_PER_PAGE: usize = 400;
/// Special space of a list page: the next page of the chain (0: the last).
pub const LIST_SPECIAL: usize = 8;
/// Bytes of one float chunk page.
pub const CHUNK_BYTES: usize = PAGE_CAPACITY - 8;

/// Where list `list`'s head is: (block, item).
pub fn head_place(meta: &IvfMeta, list: usize) -> (u32, u16) {
    (
        meta.directory_block + (list / HEADS_PER_PAGE) as u32,
        (list % HEADS_PER_PAGE + 1) as u16,
    )
}

/// The next page of a list page.
pub fn next_of(page: &[u8]) -> u32 {
    let special = u16::from_le_bytes([page[16], page[17]]) as usize;
    if special + 4 > page.len() {
        return 0;
    }
    u32::from_le_bytes(page[special..special + 4].try_into().expect("4 bytes"))
}

/// Sets the next page of a list page (as GenericXLog handed it out).
pub fn set_next(page: &mut [u8], next: u32) {
    let special = u16::from_le_bytes([page[16], page[17]]) as usize;
    page[special..special + 4].copy_from_slice(&next.to_le_bytes());
}

/// The metapage of an epiphany_ivfpq index.
pub fn read_meta(rel: Rel<'_>) -> IvfMeta {
    if rel.nblocks() == 0 {
        Error::Corrupted("epiphany_ivfpq index has no metapage".into()).report();
    }
    let buffer = Buffer::read(rel, META_BLOCK, Lock::Share);
    IvfMeta::decode(&buffer.page()[PAGE_HEADER..PAGE_HEADER + META_SIZE]).or_report()
}

/// Writes the metapage's contents into a (registered) page.
pub fn put_meta(page: &mut [u8], meta: &IvfMeta) {
    page::put_contents(page, &meta.encode());
}

/// List `list`'s head, in an index described by `meta`.
pub fn read_head(rel: Rel<'_>, meta: &IvfMeta, list: usize) -> ListHead {
    let (block, item) = head_place(meta, list);
    let buffer = Buffer::read(rel, block, Lock::Share);
    head_in(buffer.page(), item)
}

/// The head at `item` of a locked directory page.
pub fn head_in(page: &[u8], item: u16) -> ListHead {
    let range = item_range(page, item)
        .unwrap_or_else(|| Error::Corrupted(format!("IVF-PQ index: no list head {item}")).report());
    ListHead::decode(&page[range]).or_report()
}

/// Overwrites the head at `item` of a (registered) directory page.
pub fn put_head(page: &mut [u8], item: u16, head: &ListHead) {
    let range = item_range(page, item)
        .filter(|r| r.len() == HEAD_SIZE)
        .unwrap_or_else(|| Error::Corrupted(format!("IVF-PQ index: no list head {item}")).report());
    page[range].copy_from_slice(&head.encode());
}

/// The floats stored in `pages` chunk pages from `first`.
fn read_floats(rel: Rel<'_>, first: u32, count: usize) -> Vec<f32> {
    let pages = (count * 4).div_ceil(CHUNK_BYTES);
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(pages);
    for block in first..first + pages as u32 {
        let buffer = Buffer::read(rel, block, Lock::Share);
        let page = buffer.page();
        chunks.push(
            item_range(page, 1)
                .map(|r| page[r].to_vec())
                .unwrap_or_default(),
        );
    }
    floats_from_chunks(chunks.iter().map(|c| c.as_slice()), count).or_report()
}

thread_local! {
    static MODELS: RefCell<HashMap<(pg_sys::Oid, u64), Rc<IvfPq>>> = RefCell::new(HashMap::new());
}

/// The centroids and codebooks of an index build described by `meta` (read once per
/// backend).
pub fn model(rel: Rel<'_>, meta: &IvfMeta) -> Rc<IvfPq> {
    let oid = rel.oid();
    if let Some(m) = MODELS.with(|c| c.borrow().get(&(oid, meta.build_id)).cloned()) {
        return m;
    }
    let centroids = read_floats(rel, meta.centroids_block, meta.lists * meta.dims);
    let codebooks = read_floats(
        rel,
        meta.codebooks_block,
        meta.dims * (1usize << meta.pq_bits),
    );
    let model = Rc::new(IvfPq {
        dims: meta.dims,
        metric: meta.metric.code_metric(),
        centroids,
        pq: ProductQuantizer {
            dims: meta.dims,
            m: meta.pq_m,
            bits: meta.pq_bits,
            codebooks,
        },
        lists: Vec::new(),
    });
    MODELS.with(|c| c.borrow_mut().insert((oid, meta.build_id), model.clone()));
    model
}

/// Every entry of a locked list page: (item, bytes).
pub fn entries(page: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    (1..=item_count(page)).filter_map(move |i| item_range(page, i).map(|r| (i, &page[r])))
}
