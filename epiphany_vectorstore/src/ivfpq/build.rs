//! CREATE INDEX for epiphany_ivfpq: a first table scan keeps a seeded reservoir sample,
//! k-means and product quantization are trained on it, a second scan assigns every row
//! to its list and encodes its residual; entries are kept per list in memory and written
//! as page chains, flushed early when they would outgrow `maintenance_work_mem`.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::OrReport;
use epiphany_core::vector::hnsw::Metric;
use epiphany_core::vector::hnsw_node::RowId;
use epiphany_core::vector::ivf_page::{encode_entry, float_chunks, IvfMeta, ListHead};
use epiphany_core::vector::kmeans::Rng;
use epiphany_core::vector::pq::{IvfPq, ProductQuantizer};
use epiphany_core::Error;
use pgrx::itemptr::item_pointer_get_both;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use super::pages::{
    head_place, put_head, put_meta, set_next, CHUNK_BYTES, HEADS_PER_PAGE, LIST_SPECIAL, META_BLOCK,
};
use crate::datum::elements;
use crate::hnsw::build::{metric_of, new_build_id, progress, typmod_dims};
use crate::hnsw::pages::new_page;
use crate::options;
use epiphany_core::pg::buffer::{Buffer, Image, Lock, Rel, WalRecord};
use epiphany_core::pg::page;

pub const PHASE_SAMPLE: i64 = 2;
pub const PHASE_TRAIN: i64 = 3;
pub const PHASE_ASSIGN: i64 = 4;
const SEED: u64 = 0x001f_5eed;

/// The column the index is on (rerank reads it from the table's rows).
pub fn indexed_column(index: Rel<'_>) -> i16 {
    // SAFETY: an open index (Rel) has its pg_index row and at least one key.
    let attnum = unsafe { *(*(*index.raw()).rd_index).indkey.values.as_ptr() };
    if attnum <= 0 {
        Error::NotSupported("epiphany_ivfpq indexes on expressions".into()).report();
    }
    attnum
}

struct Sampler {
    metric: Metric,
    dims: Option<usize>,
    want: usize,
    seen: usize,
    sample: Vec<Vec<f32>>,
    rng: Rng,
    context: PgMemoryContexts,
}

struct Assigner<'a> {
    index: Rel<'a>,
    meta: IvfMeta,
    model: IvfPq,
    pending: Vec<Vec<u8>>,
    pending_bytes: usize,
    heads: Vec<ListHead>,
    memory_limit: usize,
    rows: f64,
    context: PgMemoryContexts,
}

fn check_dims(expected: &mut Option<usize>, got: usize) {
    let dims = *expected.get_or_insert(got);
    if got != dims {
        Error::Data(format!("expected {dims} dimensions, not {got}")).report();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn sample_callback(
    _index: pg_sys::Relation,
    _tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the Sampler the build passed; one column.
    unsafe {
        let s = &mut *(state as *mut Sampler);
        if *isnull {
            return;
        }
        let old = pg_sys::MemoryContextSwitchTo(s.context.value());
        let v = elements(*values);
        check_dims(&mut s.dims, v.len());
        s.seen += 1;
        let v = s.metric.prepare(v).into_owned();
        if s.sample.len() < s.want {
            s.sample.push(v);
        } else {
            let j = s.rng.below(s.seen);
            if j < s.want {
                s.sample[j] = v;
            }
        }
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextReset(s.context.value());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn assign_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the Assigner the build passed; one column.
    unsafe {
        let a = &mut *(state as *mut Assigner);
        if *isnull {
            return;
        }
        let old = pg_sys::MemoryContextSwitchTo(a.context.value());
        let v = elements(*values);
        if v.len() != a.meta.dims {
            Error::Data(format!(
                "expected {} dimensions, not {}",
                a.meta.dims,
                v.len()
            ))
            .report();
        }
        let v = a.meta.metric.prepare(v);
        let (list, code) = a.model.assign(&v);
        let (block, item) = item_pointer_get_both(*tid);
        let before = a.pending[list].len();
        encode_entry(RowId { block, item }, &code, &mut a.pending[list]);
        a.pending_bytes += a.pending[list].len() - before;
        a.rows += 1.0;
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextReset(a.context.value());
        if (a.rows as u64).is_multiple_of(1024) {
            progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, a.rows as i64);
            if a.pending_bytes > a.memory_limit {
                a.flush(pg_sys::ForkNumber::MAIN_FORKNUM);
            }
        }
    }
}

impl Assigner<'_> {
    /// Appends the pending entries of every list to its chain.
    fn flush(&mut self, fork: pg_sys::ForkNumber::Type) {
        let size = self.meta.entry_size();
        for list in 0..self.pending.len() {
            if self.pending[list].is_empty() {
                continue;
            }
            let bytes = std::mem::take(&mut self.pending[list]);
            append(self.index, fork, &mut self.heads[list], &bytes, size);
        }
        self.pending_bytes = 0;
    }
}

/// Appends entries (`size` bytes each) to a list's chain, filling its last page first;
/// the index is being built by this backend (no concurrent writers).
pub(super) fn append(
    rel: Rel<'_>,
    fork: pg_sys::ForkNumber::Type,
    head: &mut ListHead,
    bytes: &[u8],
    size: usize,
) {
    let mut at = 0;
    // Pages are locked while GenericXLog writes them.
    while at < bytes.len() {
        let mut record = WalRecord::start(rel);
        let mut chained = false;
        let mut current = if head.last_block != 0 {
            let last = Buffer::read_in(rel, fork, head.last_block, Lock::Exclusive);
            record.add(last, Image::Delta)
        } else {
            let n = new_page(&mut record, rel, fork, LIST_SPECIAL);
            head.first_block = record.block(n);
            head.last_block = head.first_block;
            n
        };
        let mut added = 0;
        while at < bytes.len() {
            if page::add_item(record.page(current), &bytes[at..at + size]).is_none() {
                if added == 0 && !chained {
                    // The last page is full: chain a new one in the same record.
                    let n = new_page(&mut record, rel, fork, LIST_SPECIAL);
                    let block = record.block(n);
                    set_next(record.page(current), block);
                    head.last_block = block;
                    chained = true;
                    current = n;
                    continue;
                }
                break;
            }
            head.rows += 1;
            added += 1;
            at += size;
        }
        record.finish();
        if added == 0 {
            Error::Internal("epiphany_ivfpq: an entry did not fit an empty page".into()).report();
        }
    }
}

/// Writes `floats` as chunk pages of an index this backend builds; returns the first
/// block.
fn write_floats(rel: Rel<'_>, fork: pg_sys::ForkNumber::Type, floats: &[f32]) -> u32 {
    let mut first = 0;
    for (i, chunk) in float_chunks(floats, CHUNK_BYTES).iter().enumerate() {
        let mut record = WalRecord::start(rel);
        let n = new_page(&mut record, rel, fork, 0);
        if i == 0 {
            first = record.block(n);
        }
        if page::add_item(record.page(n), chunk) != Some(1) {
            Error::Internal("epiphany_ivfpq: a float chunk did not fit its page".into()).report();
        }
        record.finish();
    }
    first
}

/// Writes (or rewrites) the metapage and every list head of an index that holds the
/// pages `meta` names.
fn write_directory(
    rel: Rel<'_>,
    fork: pg_sys::ForkNumber::Type,
    meta: &IvfMeta,
    heads: &[ListHead],
) {
    for (page_no, chunk) in heads.chunks(HEADS_PER_PAGE).enumerate() {
        let (block, _) = head_place(meta, page_no * HEADS_PER_PAGE);
        let mut record = WalRecord::start(rel);
        let n = record.add(
            Buffer::read_in(rel, fork, block, Lock::Exclusive),
            Image::Delta,
        );
        let page = record.page(n);
        for (i, head) in chunk.iter().enumerate() {
            put_head(page, (i + 1) as u16, head);
        }
        record.finish();
    }
    let mut record = WalRecord::start(rel);
    let n = record.add(
        Buffer::read_in(rel, fork, META_BLOCK, Lock::Exclusive),
        Image::Delta,
    );
    put_meta(record.page(n), meta);
    record.finish();
}

/// Lays out a new index in `fork` for `model`: metapage, centroids, codebooks, empty
/// directory, in its empty `fork`. Returns the metapage contents.
fn create(rel: Rel<'_>, fork: pg_sys::ForkNumber::Type, model: &IvfPq, metric: Metric) -> IvfMeta {
    {
        let mut record = WalRecord::start(rel);
        let n = new_page(&mut record, rel, fork, 0);
        if record.block(n) != META_BLOCK {
            Error::Internal("epiphany_ivfpq: the metapage is not block 0".into()).report();
        }
        record.finish();
        let centroids_block = write_floats(rel, fork, &model.centroids);
        let codebooks_block = write_floats(rel, fork, &model.pq.codebooks);
        let lists = model.centroids.len() / model.dims;
        let mut directory_block = 0;
        let empty = ListHead::default().encode();
        for page_no in 0..lists.div_ceil(HEADS_PER_PAGE) {
            let mut record = WalRecord::start(rel);
            let n = new_page(&mut record, rel, fork, 0);
            if page_no == 0 {
                directory_block = record.block(n);
            }
            for _ in 0..HEADS_PER_PAGE.min(lists - page_no * HEADS_PER_PAGE) {
                if page::add_item(record.page(n), &empty).is_none() {
                    Error::Internal("epiphany_ivfpq: list heads did not fit a page".into())
                        .report();
                }
            }
            record.finish();
        }
        let meta = IvfMeta {
            dims: model.dims,
            lists,
            pq_m: model.pq.m,
            pq_bits: model.pq.bits,
            metric,
            seed: SEED,
            build_id: new_build_id(),
            centroids_block,
            codebooks_block,
            directory_block,
        };
        write_directory(rel, fork, &meta, &vec![ListHead::default(); lists]);
        meta
    }
}

/// A model for a table without rows (see [`IvfPq::untrained`]).
fn empty_model(dims: usize, pq_m: usize, bits: u32, metric: Metric) -> IvfPq {
    let mut model = IvfPq::untrained(dims, pq_m, bits, metric.code_metric());
    model.lists.clear();
    model
}

/// The shape of the index: (lists, pq_m, bits), checked.
fn shape(index: Rel<'_>, dims: usize) -> (usize, usize, u32) {
    let (lists, pq_m, bits) = options::ivf_params(index);
    let pq_m = if pq_m == 0 {
        ProductQuantizer::auto_m(dims)
    } else {
        pq_m
    };
    ProductQuantizer::check_shape(dims, pq_m, bits).or_report();
    if 6 + pq_m > CHUNK_BYTES {
        Error::Limit(format!("pq_m {pq_m} makes entries larger than a page")).report();
    }
    (lists, pq_m, bits)
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
        indexed_column(rel);
        let metric = metric_of(rel);
        let (lists_wanted, _, _) = options::ivf_params(rel);
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_SAMPLE);
        let mut sampler = Sampler {
            metric,
            dims: typmod_dims(rel),
            want: (lists_wanted * 64).clamp(10_000, 100_000),
            seen: 0,
            sample: Vec::new(),
            rng: Rng::new(SEED),
            context: PgMemoryContexts::new("epiphany_ivfpq sample"),
        };
        pg_sys::table_index_build_scan(
            heap,
            index,
            index_info,
            true,
            true,
            Some(sample_callback),
            &mut sampler as *mut Sampler as *mut std::ffi::c_void,
            std::ptr::null_mut(),
        );
        let Some(dims) = sampler.dims else {
            Error::NotSupported(
                "an epiphany_ivfpq index on a column without dimensions (vector(n)) and without rows".into(),
            )
            .report()
        };
        let (lists, pq_m, bits) = shape(rel, dims);
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_TRAIN);
        let model = if sampler.sample.is_empty() {
            empty_model(dims, pq_m, bits, metric)
        } else {
            let k = lists.min(sampler.sample.len());
            if k < lists {
                pgrx::notice!(
                    "epiphany_ivfpq: {} rows for {lists} lists; trained {k} lists (REINDEX after loading more rows)",
                    sampler.seen
                );
            }
            let flat: Vec<f32> = sampler.sample.iter().flatten().copied().collect();
            IvfPq::train(&flat, dims, k, pq_m, bits, metric.code_metric(), SEED).or_report()
        };
        drop(sampler);
        let meta = create(rel, pg_sys::ForkNumber::MAIN_FORKNUM, &model, metric);
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_ASSIGN);
        let mut assigner = Assigner {
            index: rel,
            meta,
            pending: vec![Vec::new(); meta.lists],
            pending_bytes: 0,
            heads: vec![ListHead::default(); meta.lists],
            memory_limit: pg_sys::maintenance_work_mem as usize * 1024,
            rows: 0.0,
            model,
            context: PgMemoryContexts::new("epiphany_ivfpq assign"),
        };
        let heap_tuples = pg_sys::table_index_build_scan(
            heap,
            index,
            index_info,
            true,
            true,
            Some(assign_callback),
            &mut assigner as *mut Assigner as *mut std::ffi::c_void,
            std::ptr::null_mut(),
        );
        assigner.flush(pg_sys::ForkNumber::MAIN_FORKNUM);
        write_directory(
            rel,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            &meta,
            &assigner.heads,
        );
        let result = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBuildResult>())
            as *mut pg_sys::IndexBuildResult;
        (*result).heap_tuples = heap_tuples;
        (*result).index_tuples = assigner.rows;
        result
    }
}

/// `ambuildempty`: the init fork of an unlogged index (an untrained, empty index).
#[pg_guard]
pub unsafe extern "C-unwind" fn build_empty(index: pg_sys::Relation) {
    // SAFETY: Postgres passes the index whose init fork was just created.
    let rel = unsafe { Rel::new(index) };
    {
        let metric = metric_of(rel);
        let Some(dims) = typmod_dims(rel) else {
            Error::NotSupported(
                "an unlogged epiphany_ivfpq index on a column without dimensions (vector(n))"
                    .into(),
            )
            .report()
        };
        let (_, pq_m, bits) = shape(rel, dims);
        create(
            rel,
            pg_sys::ForkNumber::INIT_FORKNUM,
            &empty_model(dims, pq_m, bits, metric),
            metric,
        );
    }
}
