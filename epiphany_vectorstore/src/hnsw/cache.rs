//! A backend's cache of node vectors, so a search computes most distances without touching
//! a buffer: a node's vector never changes while its index build lives (nodes are written
//! once and never moved), so a copy keyed by (index, build id, node address) stays right.
//! Neighbour lists change and are always read from the pages. The cache of all indexes of
//! a backend together holds at most `epiphany.hnsw_vector_cache`; when it is full, new
//! vectors are simply not cached.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use epiphany_core::vector::hnsw::NodeId;
use epiphany_core::vector::hnsw_node::{NodeAddr, Shape};
use pgrx::pg_sys;
use rustc_hash::FxHashMap;

use super::pages::PAGE_CAPACITY;
use crate::options::HNSW_VECTOR_CACHE_KB;

/// The cached vectors of one index build. A node address maps to its slot through a
/// table indexed by block and item (a page holds a bounded number of nodes), one array
/// read instead of a hash probe.
pub struct VectorCache {
    dims: usize,
    items_per_page: usize,
    /// Per (block, item), the slot + 1 of its vector; 0 when not cached.
    slots: Vec<u32>,
    data: Vec<f32>,
}

/// Bytes a cached vector costs, its slot in the table included.
fn cost(dims: usize) -> usize {
    dims * 4 + 4
}

/// A cache as its users hold it.
pub type SharedCache = Rc<RefCell<VectorCache>>;

thread_local! {
    static CACHES: RefCell<FxHashMap<(pg_sys::Oid, u64), SharedCache>> =
        RefCell::new(FxHashMap::default());
    static USED: Cell<usize> = const { Cell::new(0) };
}

impl VectorCache {
    /// The cache of one index build (made on first use), or `None` when caching is off.
    pub fn of(index: pg_sys::Oid, build_id: u64, shape: Shape) -> Option<Rc<RefCell<VectorCache>>> {
        let dims = shape.dims;
        if HNSW_VECTOR_CACHE_KB.get() <= 0 || dims == 0 {
            return None;
        }
        Some(CACHES.with(|c| {
            c.borrow_mut()
                .entry((index, build_id))
                .or_insert_with(|| {
                    Rc::new(RefCell::new(VectorCache {
                        dims,
                        items_per_page: PAGE_CAPACITY / shape.node_size(0) + 1,
                        slots: Vec::new(),
                        data: Vec::new(),
                    }))
                })
                .clone()
        }))
    }

    fn index(&self, id: NodeId) -> Option<usize> {
        let a = NodeAddr::unpack(id);
        let item = a.item as usize;
        (item >= 1 && item <= self.items_per_page)
            .then(|| a.block as usize * self.items_per_page + item - 1)
    }

    pub fn get(&self, id: NodeId) -> Option<&[f32]> {
        let slot = *self.slots.get(self.index(id)?)?;
        if slot == 0 {
            return None;
        }
        let at = (slot - 1) as usize * self.dims;
        Some(&self.data[at..at + self.dims])
    }

    /// Asks the CPU to start loading a cached vector (a search's next distances).
    pub fn prefetch(&self, id: NodeId) {
        #[cfg(target_arch = "x86_64")]
        if let Some(&slot) = self.index(id).and_then(|i| self.slots.get(i)) {
            if slot != 0 {
                let at = (slot - 1) as usize * self.dims;
                let p = self.data[at..].as_ptr() as *const i8;
                for line in (0..self.dims * 4).step_by(64).take(4) {
                    // SAFETY: a prefetch is a hint; the address is inside `data`.
                    unsafe {
                        std::arch::x86_64::_mm_prefetch(p.add(line), std::arch::x86_64::_MM_HINT_T0)
                    };
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// Keeps a copy of `vector` if the backend's budget allows.
    pub fn put(&mut self, id: NodeId, vector: &[f32]) {
        let Some(i) = self.index(id) else {
            return;
        };
        if vector.len() != self.dims || self.slots.get(i).is_some_and(|&s| s != 0) {
            return;
        }
        let limit = HNSW_VECTOR_CACHE_KB.get().max(0) as usize * 1024;
        let used = USED.with(Cell::get);
        if used + cost(self.dims) > limit {
            return;
        }
        if i >= self.slots.len() {
            let grown = (i + 1).max(self.slots.len() * 2);
            USED.with(|u| u.set(u.get() + 4 * (grown - self.slots.len())));
            self.slots.resize(grown, 0);
        }
        USED.with(|u| u.set(u.get() + self.dims * 4));
        self.data.extend_from_slice(vector);
        self.slots[i] = (self.data.len() / self.dims) as u32;
    }
}
