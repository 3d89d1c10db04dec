//! The pages of an epiphany_hnsw index: block 0 is the metapage, every other block is a
//! standard Postgres page whose items are graph nodes (`epiphany_core::vector::hnsw_node`).
//!
//! A node keeps its size for life, so linking rewrites it in place. Every change goes
//! through GenericXLog while the page is exclusively locked, which makes it crash-safe and
//! replayable on standbys. Lock order: the metapage before any node page, and never two
//! node pages at once.

use std::ops::Range;

use epiphany_core::pg::OrReport;
use epiphany_core::vector::hnsw::{GraphView, Metric, NodeId};
use epiphany_core::vector::hnsw_node::{Meta, NodeAddr, NodeRef, Shape};
use epiphany_core::Error;
use pgrx::pg_sys;
use rustc_hash::FxHashMap;

use super::cache::VectorCache;
use std::cell::RefCell;
use std::rc::Rc;

#[cfg(not(target_endian = "little"))]
compile_error!("index pages store floats little-endian and read them in place");

pub const META_BLOCK: u32 = 0;
pub const PAGE_SIZE: usize = pg_sys::BLCKSZ as usize;
pub const PAGE_HEADER: usize = 24;
const LINE_POINTER: usize = 4;
/// The largest item an empty page takes.
pub const PAGE_CAPACITY: usize = PAGE_SIZE - PAGE_HEADER - LINE_POINTER;

/// The bytes of item `item` (1-based) on a page, if it is a normal item.
pub fn item_range(page: &[u8], item: u16) -> Option<Range<usize>> {
    let lower = u16::from_le_bytes([page[12], page[13]]) as usize;
    let count = lower.saturating_sub(PAGE_HEADER) / LINE_POINTER;
    if item == 0 || item as usize > count {
        return None;
    }
    let at = PAGE_HEADER + (item as usize - 1) * LINE_POINTER;
    let word = u32::from_le_bytes(page[at..at + 4].try_into().expect("4 bytes"));
    let (off, flags, len) = (
        (word & 0x7fff) as usize,
        (word >> 15) & 3,
        (word >> 17) as usize,
    );
    (flags == pg_sys::LP_NORMAL && off >= PAGE_HEADER && off + len <= PAGE_SIZE)
        .then_some(off..off + len)
}

/// Items on a page.
pub fn item_count(page: &[u8]) -> u16 {
    let lower = u16::from_le_bytes([page[12], page[13]]) as usize;
    (lower.saturating_sub(PAGE_HEADER) / LINE_POINTER) as u16
}

/// # Safety
/// `buffer` is pinned and locked.
pub unsafe fn page_bytes<'a>(buffer: pg_sys::Buffer) -> &'a [u8] {
    // SAFETY: a pinned buffer's page is PAGE_SIZE bytes that stay while it is pinned.
    unsafe { std::slice::from_raw_parts(pg_sys::BufferGetPage(buffer) as *const u8, PAGE_SIZE) }
}

/// # Safety
/// `page` is a page GenericXLog handed out (or an exclusively locked buffer's page).
pub unsafe fn page_bytes_mut<'a>(page: pg_sys::Page) -> &'a mut [u8] {
    // SAFETY: per the contract, PAGE_SIZE writable bytes.
    unsafe { std::slice::from_raw_parts_mut(page as *mut u8, PAGE_SIZE) }
}

/// # Safety
/// `rel` is an open index; `block` exists.
pub unsafe fn read_buffer(rel: pg_sys::Relation, block: u32) -> pg_sys::Buffer {
    // SAFETY: per the contract.
    unsafe {
        pg_sys::ReadBufferExtended(
            rel,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            block,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        )
    }
}

/// Lets VACUUM's cost-based delay and interrupts in between pages.
pub fn delay_point() {
    // SAFETY: a backend running a VACUUM or an index build, on the main thread.
    unsafe {
        #[cfg(feature = "pg18")]
        pg_sys::vacuum_delay_point(false);
        #[cfg(not(feature = "pg18"))]
        pg_sys::vacuum_delay_point();
    }
}

/// # Safety
/// `rel` is an open index.
pub unsafe fn block_count(rel: pg_sys::Relation) -> u32 {
    // SAFETY: per the contract.
    unsafe { pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) }
}

/// A new, locked, initialized page at the end of `fork` (registered with `state` as a
/// full image).
///
/// # Safety
/// `rel` is an open index; `state` is a running GenericXLog record.
pub unsafe fn new_page(
    rel: pg_sys::Relation,
    fork: pg_sys::ForkNumber::Type,
    state: *mut pg_sys::GenericXLogState,
) -> (pg_sys::Buffer, pg_sys::Page) {
    // SAFETY: per the contract.
    unsafe { new_page_with_special(rel, fork, state, 0) }
}

/// [`new_page`] with `special` bytes of special space at the page's end.
///
/// # Safety
/// As [`new_page`].
pub unsafe fn new_page_with_special(
    rel: pg_sys::Relation,
    fork: pg_sys::ForkNumber::Type,
    state: *mut pg_sys::GenericXLogState,
    special: usize,
) -> (pg_sys::Buffer, pg_sys::Page) {
    // SAFETY: per the contract; P_NEW under the extension lock (needed before 16, harmless
    // after: the lock is re-entrant).
    unsafe {
        let lock = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
        pg_sys::LockRelationForExtension(rel, lock);
        let buffer = pg_sys::ReadBufferExtended(
            rel,
            fork,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::UnlockRelationForExtension(rel, lock);
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        let page = pg_sys::GenericXLogRegisterBuffer(
            state,
            buffer,
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32,
        );
        pg_sys::PageInit(page, PAGE_SIZE, special);
        (buffer, page)
    }
}

/// Writes the metapage's contents into a (registered) page.
///
/// # Safety
/// `page` is the metapage as GenericXLog handed it out.
pub unsafe fn put_meta(page: pg_sys::Page, meta: &Meta) {
    let bytes = meta.encode();
    // SAFETY: per the contract; the contents fit after the header, and pd_lower covers
    // them so a full-page image keeps them.
    unsafe {
        let p = page_bytes_mut(page);
        p[PAGE_HEADER..PAGE_HEADER + bytes.len()].copy_from_slice(&bytes);
        (*(page as *mut pg_sys::PageHeaderData)).pd_lower = (PAGE_HEADER + bytes.len()) as u16;
    }
}

/// The metapage of an index.
///
/// # Safety
/// `rel` is an open epiphany_hnsw index.
pub unsafe fn read_meta(rel: pg_sys::Relation) -> Meta {
    // SAFETY: per the contract; the page is read under a share lock.
    unsafe {
        if block_count(rel) == 0 {
            Error::Corrupted("epiphany_hnsw index has no metapage".into()).report();
        }
        let buffer = read_buffer(rel, META_BLOCK);
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32);
        let meta = Meta::decode(&page_bytes(buffer)[PAGE_HEADER..]);
        pg_sys::UnlockReleaseBuffer(buffer);
        meta.or_report()
    }
}

/// Parses the node at `addr` of a locked page.
pub fn node_at<'a>(page: &'a [u8], addr: NodeAddr, shape: Shape) -> NodeRef<'a> {
    let Some(range) = item_range(page, addr.item) else {
        Error::Corrupted(format!(
            "epiphany_hnsw: no node at ({},{})",
            addr.block, addr.item
        ))
        .report()
    };
    NodeRef::parse(&page[range], shape).or_report()
}

/// Runs `f` on every node of the index, page by page, each page share-locked meanwhile.
///
/// # Safety
/// `rel` is an open epiphany_hnsw index of `shape`.
pub unsafe fn for_each_node(
    rel: pg_sys::Relation,
    shape: Shape,
    mut f: impl FnMut(NodeAddr, NodeRef<'_>),
) {
    // SAFETY: per the contract.
    unsafe {
        for block in 1..block_count(rel) {
            let buffer = read_buffer(rel, block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32);
            let page = page_bytes(buffer);
            for item in 1..=item_count(page) {
                if item_range(page, item).is_some() {
                    let addr = NodeAddr { block, item };
                    f(addr, node_at(page, addr, shape));
                }
            }
            pg_sys::UnlockReleaseBuffer(buffer);
        }
    }
}

/// Distance from a node's vector, read in place, to `query`.
pub fn distance_in_place(metric: Metric, vector: &[u8], query: &[f32]) -> f32 {
    if (vector.as_ptr() as usize).is_multiple_of(4) {
        // SAFETY: 4-byte aligned, 4 * dims bytes of little-endian f32 (checked above).
        let v =
            unsafe { std::slice::from_raw_parts(vector.as_ptr() as *const f32, vector.len() / 4) };
        metric.distance(v, query)
    } else {
        let v: Vec<f32> = vector
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        metric.distance(&v, query)
    }
}

/// The graph as stored in an index's pages, read under short share locks.
pub struct PageGraph {
    rel: pg_sys::Relation,
    pub meta: Meta,
    /// How stored (prepared) vectors are compared: `meta.metric.index_metric()`.
    pub metric: Metric,
    /// The index's length when last asked: asking costs a system call, so only a link
    /// past it asks again.
    blocks: std::cell::Cell<u32>,
    /// Vectors read so far, when the caller needs them again (inserts, VACUUM).
    vectors: Option<FxHashMap<NodeId, Vec<f32>>>,
    /// The backend's vector cache of this index build (scans).
    cache: Option<Rc<RefCell<VectorCache>>>,
}

impl PageGraph {
    /// # Safety
    /// `rel` is an open epiphany_hnsw index that stays open while this lives.
    pub unsafe fn new(rel: pg_sys::Relation, meta: Meta, keep_vectors: bool) -> Self {
        PageGraph {
            rel,
            meta,
            metric: meta.metric.index_metric(),
            blocks: std::cell::Cell::new(0),
            vectors: keep_vectors.then(FxHashMap::default),
            cache: None,
        }
    }

    /// Uses the backend's vector cache for this index build.
    pub fn with_cache(mut self) -> Self {
        // SAFETY: the index is open (new's contract).
        let oid = unsafe { (*self.rel).rd_id };
        self.cache = VectorCache::of(oid, self.meta.build_id, self.meta.shape);
        self
    }

    /// Runs `f` on node `id` while its page is share-locked.
    pub fn with_node<R>(&self, id: NodeId, f: impl FnOnce(NodeRef<'_>) -> R) -> R {
        let addr = NodeAddr::unpack(id);
        // SAFETY: the index is open (new's contract); the page is pinned and share-locked
        // while `f` reads it, then released. An error raised inside releases both at abort.
        unsafe {
            if addr.block >= self.blocks.get() {
                self.blocks.set(block_count(self.rel));
            }
            if addr.block == META_BLOCK || addr.block >= self.blocks.get() {
                Error::Corrupted(format!(
                    "epiphany_hnsw: a link to block {} of {}",
                    addr.block,
                    self.blocks.get()
                ))
                .report();
            }
            let buffer = read_buffer(self.rel, addr.block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32);
            let r = f(node_at(page_bytes(buffer), addr, self.meta.shape));
            pg_sys::UnlockReleaseBuffer(buffer);
            r
        }
    }

    /// Reads node `id`'s vector into the cache (graphs that keep vectors).
    pub fn load(&mut self, id: NodeId) {
        if self.vectors.as_ref().is_some_and(|c| !c.contains_key(&id)) {
            let v = self.with_node(id, |n| n.vector());
            self.vectors.as_mut().expect("kept").insert(id, v);
        }
    }

    /// Caches a vector the caller knows (a node it just wrote).
    pub fn remember(&mut self, id: NodeId, vector: &[f32]) {
        if let Some(c) = self.vectors.as_mut() {
            c.insert(id, vector.to_vec());
        }
    }

    /// A vector [`load`](Self::load) read.
    pub fn cached(&self, id: NodeId) -> &[f32] {
        self.vectors
            .as_ref()
            .and_then(|c| c.get(&id))
            .expect("the vector was loaded")
    }
}

impl GraphView for PageGraph {
    fn entry(&mut self) -> Option<(NodeId, usize)> {
        self.meta.entry.map(|(a, l)| (a.pack(), l))
    }

    fn neighbors(&mut self, node: NodeId, level: usize, out: &mut Vec<NodeId>) {
        self.with_node(node, |n| n.neighbors(level, out).or_report());
        if let Some(cache) = &self.cache {
            let cache = cache.borrow();
            for &n in out.iter() {
                cache.prefetch(n);
            }
        }
    }

    fn distance_to(&mut self, node: NodeId, query: &[f32]) -> f32 {
        let metric = self.metric;
        if self.vectors.is_some() {
            self.load(node);
            return metric.distance(self.cached(node), query);
        }
        if let Some(cache) = &self.cache {
            if let Some(v) = cache.borrow().get(node) {
                return metric.distance(v, query);
            }
            let v = self.with_node(node, |n| n.vector());
            cache.borrow_mut().put(node, &v);
            return metric.distance(&v, query);
        }
        self.with_node(node, |n| distance_in_place(metric, n.vector_bytes(), query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_pointers_are_read_like_postgres_writes_them() {
        let mut page = vec![0u8; PAGE_SIZE];
        // Two line pointers: item 1 normal at 8000 (len 100), item 2 unused.
        page[12..14].copy_from_slice(&((PAGE_HEADER + 8) as u16).to_le_bytes());
        let lp = |off: u32, flags: u32, len: u32| off | (flags << 15) | (len << 17);
        page[24..28].copy_from_slice(&lp(8000, 1, 100).to_le_bytes());
        page[28..32].copy_from_slice(&lp(0, 0, 0).to_le_bytes());
        assert_eq!(item_count(&page), 2);
        assert_eq!(item_range(&page, 1), Some(8000..8100));
        assert_eq!(item_range(&page, 2), None);
        assert_eq!(item_range(&page, 3), None);
        assert_eq!(item_range(&page, 0), None);
        // A pointer past the page is refused, not followed.
        page[24..28].copy_from_slice(&lp(8150, 1, 100).to_le_bytes());
        assert_eq!(item_range(&page, 1), None);
    }
}
