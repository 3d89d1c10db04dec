//! CREATE INDEX: the table scan collects the distinct vectors, the graph is built from
//! them in memory by several threads, then written page by page. When the vectors and
//! their graph would outgrow `maintenance_work_mem`, what was collected so far is built
//! and written and the remaining rows are inserted into the stored graph one by one
//! (slower, bounded memory), with a NOTICE saying so.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::ffi::CStr;

use epiphany_core::pg::OrReport;
use epiphany_core::vector::hnsw::{Graph, GraphView, Metric, NodeId, Params};
use epiphany_core::vector::hnsw_node::{Meta, Node, NodeAddr, RowId, Shape, MAX_ROWS};
use epiphany_core::Error;
use pgrx::itemptr::item_pointer_get_both;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PgMemoryContexts, PgTupleDesc};
use rustc_hash::{FxHashMap, FxHasher};

use super::insert::{self, max_level};
use super::pages::{self, new_page, put_meta, META_BLOCK};
use crate::datum::elements;
use crate::options;
use epiphany_core::pg::buffer::{Buffer, Image, Lock, Rel, WalRecord};
use epiphany_core::pg::page;

/// Build phases shown in `pg_stat_progress_create_index.phase`.
pub const PHASE_LOAD: i64 = 2;
pub const PHASE_GRAPH: i64 = 3;
pub const PHASE_WRITE: i64 = 4;

/// The metric of an index of ours, from its opclass's distance function (support
/// function 1).
pub fn metric_of(index: Rel<'_>) -> Metric {
    // SAFETY: an open index (Rel) with one column; get_func_name pallocs the name.
    let name = unsafe {
        let proc = pg_sys::index_getprocid(index.raw(), 1, 1);
        let name = pg_sys::get_func_name(proc);
        if name.is_null() {
            Error::Internal("the index's distance function is missing".into()).report();
        }
        CStr::from_ptr(name).to_string_lossy().into_owned()
    };
    match name.as_str() {
        "vector_l2_squared_distance" | "l2_distance" => Metric::L2,
        "vector_negative_inner_product" => Metric::InnerProduct,
        "cosine_distance" => Metric::Cosine,
        other => Error::NotSupported(format!(
            "distance function {other} in an epiphany vector index operator class"
        ))
        .report(),
    }
}

/// The dimensions of the indexed column's type (`vector(n)`), if it has them.
pub fn typmod_dims(index: Rel<'_>) -> Option<usize> {
    // SAFETY: an open index (Rel) has a tuple descriptor of at least one attribute.
    let typmod = unsafe {
        PgTupleDesc::from_pg_unchecked((*index.raw()).rd_att)
            .get(0)
            .map_or(-1, |a| a.atttypmod)
    };
    (typmod > 0).then_some(typmod as usize)
}

pub(crate) fn progress(param: u32, value: i64) {
    // SAFETY: the backend's progress slot; harmless when no command is tracked.
    unsafe { pg_sys::pgstat_progress_update_param(param as i32, value) };
}

struct BuildState<'a> {
    index: Rel<'a>,
    m: usize,
    ef_construction: usize,
    metric: Metric,
    dims: Option<usize>,
    /// The distinct (prepared) vectors collected so far, node after node.
    vectors: Vec<f32>,
    graph: Option<Graph>,
    /// Per node, its first row; more rows of equal vectors in `more_rows`.
    first_row: Vec<RowId>,
    more_rows: FxHashMap<u32, Vec<RowId>>,
    by_hash: FxHashMap<u64, u32>,
    memory_limit: usize,
    spilled: bool,
    index_tuples: f64,
    tuple_context: PgMemoryContexts,
}

fn vector_hash(v: &[f32]) -> u64 {
    use std::hash::Hasher;
    let mut h = FxHasher::default();
    for x in v {
        h.write_u32(x.to_bits());
    }
    h.finish()
}

impl BuildState<'_> {
    /// Nodes collected so far.
    fn nodes(&self) -> usize {
        self.first_row.len()
    }

    /// Memory the collected vectors and their future graph take, roughly.
    fn memory(&self) -> usize {
        let per_node = 3 * self.m * 4 + 3 * 24 + 8 + std::mem::size_of::<RowId>();
        self.vectors.len() * 4 + self.nodes() * per_node
    }

    fn add(&mut self, v: &[f32], row: RowId) {
        let dims = *self.dims.get_or_insert(v.len());
        if v.len() != dims {
            Error::Data(format!("expected {dims} dimensions, not {}", v.len())).report();
        }
        self.index_tuples += 1.0;
        if self.spilled {
            insert::insert(self.index, v, row);
            return;
        }
        let prepared = self.metric.prepare(v);
        let v = &*prepared;
        let hash = vector_hash(v);
        if let Some(&node) = self.by_hash.get(&hash) {
            let at = node as usize * dims;
            let more = self.more_rows.entry(node).or_default();
            if self.vectors[at..at + dims] == *v && more.len() + 1 < MAX_ROWS {
                more.push(row);
                return;
            }
        }
        let node = u32::try_from(self.nodes()).unwrap_or_else(|_| {
            Error::Limit("more than 2^32 vectors in one index".into()).report()
        });
        self.vectors.extend_from_slice(v);
        self.first_row.push(row);
        self.by_hash.insert(hash, node);
        if self.nodes().is_multiple_of(1024) && self.memory() > self.memory_limit {
            let nodes = self.nodes();
            self.build_graph();
            self.write();
            self.spilled = true;
            pgrx::notice!(
                "epiphany_hnsw graph no longer fits into maintenance_work_mem after {nodes} nodes; the rest is inserted into the stored graph (slower)"
            );
            pgrx::notice!("raise maintenance_work_mem to build faster");
        }
    }

    /// Links the collected vectors into a graph, with as many threads as a parallel
    /// index build may use (`max_parallel_maintenance_workers` + this backend, at most
    /// the machine's cores). The threads only compute; this backend's thread reports
    /// progress and checks for interrupts between its batches.
    fn build_graph(&mut self) {
        let Some(dims) = self.dims else {
            return;
        };
        let shape = Shape { dims, m: self.m };
        let mut params =
            Params::new(self.m, self.ef_construction, self.metric.index_metric()).or_report();
        params.max_level = max_level(shape);
        epiphany_core::pg::assert_main_thread();
        // SAFETY: a GUC read on the main thread (asserted).
        let workers = unsafe { pg_sys::max_parallel_maintenance_workers }.max(0) as usize;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (workers + 1).min(cores).max(1);
        let total = self.nodes();
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_GRAPH);
        progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_TOTAL, total as i64);
        let vectors = std::mem::take(&mut self.vectors);
        let graph = Graph::build_parallel(params, dims, vectors, threads, |done| {
            progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, done as i64);
            pgrx::check_for_interrupts!();
        })
        .or_report();
        self.graph = Some(graph);
    }

    /// Writes the in-memory graph to pages 1.. (the index holds only its metapage, or the
    /// graph goes after what it holds) and points the metapage at it.
    fn write(&mut self) {
        let Some(mut graph) = self.graph.take() else {
            return;
        };
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_WRITE);
        progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_TOTAL, graph.len() as i64);
        let shape = Shape {
            dims: self.dims.expect("a graph has dimensions"),
            m: self.m,
        };
        // Node n's address: items are laid out in order, a page at a time, the way
        // PageAddItem places them (checked as they are written).
        let mut addrs = Vec::with_capacity(graph.len());
        let (mut block, mut item, mut free) = (1u32, 0u16, 0usize);
        for n in 0..graph.len() as u32 {
            let need = shape.node_size(graph.level(n)).next_multiple_of(8) + 4;
            if need > free {
                block += 1;
                item = 0;
                free = pages::PAGE_CAPACITY + 4;
            }
            item += 1;
            free -= need;
            addrs.push(NodeAddr {
                block: block - 1,
                item,
            });
        }
        let mut list = Vec::new();
        let mut at = 0usize;
        let rel = self.index;
        // Each new page is locked while GenericXLog writes it.
        while at < addrs.len() {
            let mut record = WalRecord::start(rel);
            let p = new_page(&mut record, rel, pg_sys::ForkNumber::MAIN_FORKNUM, 0);
            let block = record.block(p);
            while at < addrs.len() && addrs[at].block == block {
                let n = at as u32;
                let level = graph.level(n);
                let mut rows = vec![self.first_row[at]];
                rows.extend(self.more_rows.get(&n).into_iter().flatten());
                let node = Node {
                    level,
                    deleted: false,
                    rows,
                    vector: graph.vector(n).to_vec(),
                    neighbors: (0..=level)
                        .map(|l| {
                            graph.neighbors(NodeId::from(n), l, &mut list);
                            list.iter().map(|&x| addrs[x as usize]).collect()
                        })
                        .collect(),
                };
                let bytes = node.encode(shape).or_report();
                let placed = page::add_item(record.page(p), &bytes);
                if placed != Some(addrs[at].item) {
                    Error::Internal(format!(
                        "epiphany_hnsw build: node {at} landed at item {placed:?}, planned {}",
                        addrs[at].item
                    ))
                    .report();
                }
                at += 1;
            }
            if at == 0 || addrs[at - 1].block != block {
                Error::Internal(format!("epiphany_hnsw build: page {block} out of plan")).report();
            }
            record.finish();
            progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, at as i64);
            pages::delay_point();
        }
        let entry = graph.entry().map(|(n, l)| (addrs[n as usize], l));
        let last = addrs.last().map_or(META_BLOCK, |a| a.block);
        write_meta(
            self.index,
            &Meta {
                shape,
                ef_construction: self.ef_construction,
                metric: self.metric,
                max_level: max_level(shape),
                entry,
                insert_block: last,
                build_id: pages::read_meta(self.index).build_id,
            },
        );
    }
}

/// A random id for a new index build.
pub(crate) fn new_build_id() -> u64 {
    // SAFETY: the backend's PRNG, on the main thread.
    unsafe { pg_sys::pg_prng_uint64(&raw mut pg_sys::pg_global_prng_state) }
}

/// Rewrites the metapage of an index that has one.
pub fn write_meta(rel: Rel<'_>, meta: &Meta) {
    // The metapage is locked while GenericXLog rewrites it.
    let mut record = WalRecord::start(rel);
    let n = record.add(Buffer::read(rel, META_BLOCK, Lock::Exclusive), Image::Delta);
    put_meta(record.page(n), meta);
    record.finish();
}

/// The metapage of an empty index, written into its empty `fork`.
fn create_meta(rel: Rel<'_>, fork: pg_sys::ForkNumber::Type) {
    {
        let (m, ef_construction) = options::hnsw_params(rel);
        let metric = metric_of(rel);
        let shape = Shape {
            dims: typmod_dims(rel).unwrap_or(0),
            m,
        };
        Params::new(m, ef_construction, metric).or_report();
        let max_level = if shape.dims == 0 { 0 } else { max_level(shape) };
        let mut record = WalRecord::start(rel);
        let n = new_page(&mut record, rel, fork, 0);
        if record.block(n) != META_BLOCK {
            Error::Internal("epiphany_hnsw: the metapage is not block 0".into()).report();
        }
        put_meta(
            record.page(n),
            &Meta {
                shape,
                ef_construction,
                metric,
                max_level,
                entry: None,
                insert_block: META_BLOCK,
                build_id: new_build_id(),
            },
        );
        record.finish();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn build_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _tuple_is_alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the BuildState ambuild passed; values/isnull hold one column.
    unsafe {
        let st = &mut *(state as *mut BuildState);
        if *isnull {
            return;
        }
        let (block, item) = item_pointer_get_both(*tid);
        let row = RowId { block, item };
        // Detoasted copies go to a context emptied after every row.
        let context = st.tuple_context.value();
        let old = pg_sys::MemoryContextSwitchTo(context);
        st.add(elements(*values), row);
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextReset(context);
    }
}

/// `ambuild`.
#[pg_guard]
pub unsafe extern "C-unwind" fn build(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: Postgres passes the table, the new empty index and its info.
    unsafe {
        let rel = Rel::new(index);
        if rel.nblocks() != 0 {
            Error::Internal(format!("index \"{}\" already contains data", rel.name())).report();
        }
        create_meta(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
        let (m, ef_construction) = options::hnsw_params(rel);
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_LOAD);
        let mut state = BuildState {
            index: rel,
            m,
            ef_construction,
            metric: metric_of(rel),
            dims: typmod_dims(rel),
            vectors: Vec::new(),
            graph: None,
            first_row: Vec::new(),
            more_rows: FxHashMap::default(),
            by_hash: FxHashMap::default(),
            memory_limit: pg_sys::maintenance_work_mem as usize * 1024,
            spilled: false,
            index_tuples: 0.0,
            tuple_context: PgMemoryContexts::new("epiphany_hnsw build tuple"),
        };
        let heap_tuples = pg_sys::table_index_build_scan(
            heap,
            index,
            index_info,
            true,
            true,
            Some(build_callback),
            &mut state as *mut BuildState as *mut std::ffi::c_void,
            std::ptr::null_mut(),
        );
        if !state.spilled {
            state.build_graph();
            state.write();
        }
        let result = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBuildResult>())
            as *mut pg_sys::IndexBuildResult;
        (*result).heap_tuples = heap_tuples;
        (*result).index_tuples = state.index_tuples;
        result
    }
}

/// `ambuildempty`: the init fork of an unlogged index.
#[pg_guard]
pub unsafe extern "C-unwind" fn build_empty(index: pg_sys::Relation) {
    // SAFETY: Postgres passes the index whose init fork was just created.
    create_meta(unsafe { Rel::new(index) }, pg_sys::ForkNumber::INIT_FORKNUM);
}
