//! Settings of the vector indexes: reloptions (`WITH (m = 16)`) and GUCs.
//!
//! Reloptions are registered with a kind of their own at library load, so Postgres parses,
//! range-checks and dumps them like any built-in index's options.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::ffi::CStr;
use std::mem::{offset_of, size_of};

use epiphany_core::pg::buffer::Rel;
use epiphany_core::Error;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

pub static HNSW_EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(40);
pub static HNSW_MAX_SCAN_TUPLES: GucSetting<i32> = GucSetting::<i32>::new(20_000);
pub static HNSW_VECTOR_CACHE_KB: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

pub static IVF_PROBES: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static IVF_RERANK: GucSetting<i32> = GucSetting::<i32>::new(40);
pub static IVF_MAX_PROBES: GucSetting<i32> = GucSetting::<i32>::new(0);

static mut HNSW_KIND: pg_sys::relopt_kind::Type = 0;
static mut IVF_KIND: pg_sys::relopt_kind::Type = 0;

/// `m` and `ef_construction` as stored in `rd_options`.
#[repr(C)]
struct HnswOptions {
    vl_len: i32,
    m: i32,
    ef_construction: i32,
}

/// `lists`, `pq_m` and `pq_bits` as stored in `rd_options`.
#[repr(C)]
struct IvfOptions {
    vl_len: i32,
    lists: i32,
    pq_m: i32,
    pq_bits: i32,
}

pub const IVF_DEFAULT_LISTS: usize = 100;
pub const IVF_DEFAULT_BITS: u32 = 8;

pub const HNSW_DEFAULT_M: usize = 16;
pub const HNSW_DEFAULT_EF_CONSTRUCTION: usize = 64;

pub fn init() {
    GucRegistry::define_int_guc(
        c"epiphany.hnsw_ef_search",
        c"Candidates an epiphany_hnsw index scan keeps while it searches the graph.",
        c"Higher values find the true nearest neighbours more often (recall) and cost time.",
        &HNSW_EF_SEARCH,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"epiphany.hnsw_max_scan_tuples",
        c"Most graph nodes an epiphany_hnsw index scan returns before it stops.",
        c"A scan whose rows are filtered out by WHERE keeps searching, doubling its candidates, until it has returned this many nodes.",
        &HNSW_MAX_SCAN_TUPLES,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"epiphany.hnsw_vector_cache",
        c"Memory each backend may use to keep copies of epiphany_hnsw node vectors it has read.",
        c"Searches compute distances to cached vectors without reading index pages; 0 turns the cache off. Vectors are cached as they are read, until the limit.",
        &HNSW_VECTOR_CACHE_KB,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"epiphany.ivf_probes",
        c"Lists an epiphany_ivfpq index scan searches first.",
        c"More lists find the true nearest neighbours more often (recall) and cost time.",
        &IVF_PROBES,
        1,
        32768,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"epiphany.ivf_rerank",
        c"Candidates an epiphany_ivfpq index scan measures with exact distances before it returns a row.",
        c"Candidates are ranked by their compressed codes; this many of the best are measured exactly (reading their table rows), then more as long as a candidate's code, less twice the error the scan has seen in codes, could still beat the next row to return.",
        &IVF_RERANK,
        1,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"epiphany.ivf_max_probes",
        c"Most lists an epiphany_ivfpq index scan searches when a WHERE clause keeps rejecting rows (0: all).",
        c"A scan that has returned every candidate of its lists goes on with the next lists until this bound.",
        &IVF_MAX_PROBES,
        0,
        32768,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: _PG_init runs once per backend on the main thread, before any index of ours
    // is opened; the names and descriptions are static.
    unsafe {
        HNSW_KIND = pg_sys::add_reloption_kind();
        pg_sys::add_int_reloption(
            HNSW_KIND,
            c"m".as_ptr(),
            c"Neighbours per graph node (twice as many on the bottom layer)".as_ptr(),
            HNSW_DEFAULT_M as i32,
            2,
            100,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            HNSW_KIND,
            c"ef_construction".as_ptr(),
            c"Candidates kept while a node is linked into the graph".as_ptr(),
            HNSW_DEFAULT_EF_CONSTRUCTION as i32,
            4,
            1000,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        IVF_KIND = pg_sys::add_reloption_kind();
        pg_sys::add_int_reloption(
            IVF_KIND,
            c"lists".as_ptr(),
            c"Coarse clusters (k-means centroids) the vectors are divided into".as_ptr(),
            IVF_DEFAULT_LISTS as i32,
            1,
            32768,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            IVF_KIND,
            c"pq_m".as_ptr(),
            c"Sub-quantizers per vector (must divide the dimensions; 0 picks about one per 4 dimensions)".as_ptr(),
            0,
            0,
            4096,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            IVF_KIND,
            c"pq_bits".as_ptr(),
            c"Bits per sub-quantizer code".as_ptr(),
            IVF_DEFAULT_BITS as i32,
            1,
            8,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
    }
}

fn int_option(name: &'static CStr, offset: usize) -> pg_sys::relopt_parse_elt {
    pg_sys::relopt_parse_elt {
        optname: name.as_ptr(),
        opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
        offset: offset as i32,
        ..Default::default()
    }
}

/// `amoptions` of epiphany_hnsw.
#[pg_guard]
pub unsafe extern "C-unwind" fn hnsw_options(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let table = [
        int_option(c"m", offset_of!(HnswOptions, m)),
        int_option(c"ef_construction", offset_of!(HnswOptions, ef_construction)),
    ];
    // SAFETY: the table describes HnswOptions; build_reloptions pallocs the result.
    unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            HNSW_KIND,
            size_of::<HnswOptions>(),
            table.as_ptr(),
            table.len() as i32,
        ) as *mut pg_sys::bytea
    }
}

type AmOptions = unsafe extern "C-unwind" fn(pg_sys::Datum, bool) -> *mut pg_sys::bytea;

/// The parsed options of `index`, checked to be those `parse` built (an index of
/// another access method would have options of another layout).
fn options_of(index: Rel<'_>, parse: AmOptions) -> *const std::ffi::c_void {
    // SAFETY: an open index (Rel) has its access method's routine and its options.
    unsafe {
        let am = (*index.raw()).rd_indam;
        let ours = !am.is_null()
            && (*am)
                .amoptions
                .is_some_and(|f| std::ptr::fn_addr_eq(f, parse));
        if !ours {
            Error::Internal(format!(
                "\"{}\" is not an index of this access method",
                index.name()
            ))
            .report();
        }
        (*index.raw()).rd_options as *const std::ffi::c_void
    }
}

/// `(m, ef_construction)` of an epiphany_hnsw index.
pub fn hnsw_params(index: Rel<'_>) -> (usize, usize) {
    let opts = options_of(index, hnsw_options) as *const HnswOptions;
    // SAFETY: null, or the struct hnsw_options built (options_of checked whose).
    unsafe {
        if opts.is_null() {
            (HNSW_DEFAULT_M, HNSW_DEFAULT_EF_CONSTRUCTION)
        } else {
            ((*opts).m as usize, (*opts).ef_construction as usize)
        }
    }
}

/// `amoptions` of epiphany_ivfpq.
#[pg_guard]
pub unsafe extern "C-unwind" fn ivf_options(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let table = [
        int_option(c"lists", offset_of!(IvfOptions, lists)),
        int_option(c"pq_m", offset_of!(IvfOptions, pq_m)),
        int_option(c"pq_bits", offset_of!(IvfOptions, pq_bits)),
    ];
    // SAFETY: the table describes IvfOptions; build_reloptions pallocs the result.
    unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            IVF_KIND,
            size_of::<IvfOptions>(),
            table.as_ptr(),
            table.len() as i32,
        ) as *mut pg_sys::bytea
    }
}

/// `(lists, pq_m (0: automatic), pq_bits)` of an epiphany_ivfpq index.
pub fn ivf_params(index: Rel<'_>) -> (usize, usize, u32) {
    let opts = options_of(index, ivf_options) as *const IvfOptions;
    // SAFETY: null, or the struct ivf_options built (options_of checked whose).
    unsafe {
        if opts.is_null() {
            (IVF_DEFAULT_LISTS, 0, IVF_DEFAULT_BITS)
        } else {
            (
                (*opts).lists as usize,
                (*opts).pq_m as usize,
                (*opts).pq_bits as u32,
            )
        }
    }
}
