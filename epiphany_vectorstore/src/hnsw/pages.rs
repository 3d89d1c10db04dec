//! The pages of an epiphany_hnsw index: block 0 is the metapage, every other block is a
//! standard Postgres page whose items are graph nodes (`epiphany_core::vector::hnsw_node`).
//!
//! A node keeps its size for life, so linking rewrites it in place. Every change goes
//! through GenericXLog while the page is exclusively locked, which makes it crash-safe and
//! replayable on standbys. Lock order: the metapage before any node page, and never two
//! node pages at once.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::buffer::{Buffer, Image, Lock, Rel, WalRecord};
use epiphany_core::pg::page;
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
pub use epiphany_core::pg::page::{item_count, item_range, PAGE_CAPACITY, PAGE_HEADER};

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

/// Adds a new, initialized page at the end of `fork` to `record` (as a full image), with
/// `special` bytes of special space; its number in the record.
pub fn new_page<'a>(
    record: &mut WalRecord<'a>,
    rel: Rel<'a>,
    fork: pg_sys::ForkNumber::Type,
    special: usize,
) -> usize {
    let n = record.add(Buffer::extend(rel, fork, Lock::Exclusive), Image::Full);
    page::init(record.page(n), special);
    n
}

/// Writes the metapage's contents into a (registered) page; pd_lower covers them so a
/// full-page image keeps them.
pub fn put_meta(page: &mut [u8], meta: &Meta) {
    page::put_contents(page, &meta.encode());
}

/// The metapage of an epiphany_hnsw index.
pub fn read_meta(rel: Rel<'_>) -> Meta {
    if rel.nblocks() == 0 {
        Error::Corrupted("epiphany_hnsw index has no metapage".into()).report();
    }
    let buffer = Buffer::read(rel, META_BLOCK, Lock::Share);
    Meta::decode(page::contents(buffer.page())).or_report()
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

/// Runs `f` on every node of an index of `shape`, page by page, each page share-locked
/// meanwhile.
pub fn for_each_node(rel: Rel<'_>, shape: Shape, mut f: impl FnMut(NodeAddr, NodeRef<'_>)) {
    for block in 1..rel.nblocks() {
        let buffer = Buffer::read(rel, block, Lock::Share);
        let page = buffer.page();
        for item in 1..=item_count(page) {
            if item_range(page, item).is_some() {
                let addr = NodeAddr { block, item };
                f(addr, node_at(page, addr, shape));
            }
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
pub struct PageGraph<'a> {
    rel: Rel<'a>,
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

impl<'a> PageGraph<'a> {
    pub fn new(rel: Rel<'a>, meta: Meta, keep_vectors: bool) -> Self {
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
        self.cache = VectorCache::of(self.rel.oid(), self.meta.build_id, self.meta.shape);
        self
    }

    pub fn rel(&self) -> Rel<'a> {
        self.rel
    }

    /// Runs `f` on node `id` while its page is share-locked.
    pub fn with_node<R>(&self, id: NodeId, f: impl FnOnce(NodeRef<'_>) -> R) -> R {
        let addr = NodeAddr::unpack(id);
        if addr.block >= self.blocks.get() {
            self.blocks.set(self.rel.nblocks());
        }
        if addr.block == META_BLOCK || addr.block >= self.blocks.get() {
            Error::Corrupted(format!(
                "epiphany_hnsw: a link to block {} of {}",
                addr.block,
                self.blocks.get()
            ))
            .report();
        }
        // Pinned and share-locked while `f` reads it; an error inside releases both.
        let buffer = Buffer::read(self.rel, addr.block, Lock::Share);
        f(node_at(buffer.page(), addr, self.meta.shape))
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

impl GraphView for PageGraph<'_> {
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
