//! Hash key filters at run time (`epiphany_core::columnar::join_filter`): once the
//! executor state is built, each columnar scan that is the outer side of a hash join on
//! integer keys is linked to the join's Hash node; once the join has built its hash
//! table — in one batch, all in memory — the scan takes the hash values of every inner
//! row from it into a Bloom filter and drops the rows whose keys hash to none of them.
//!
//! Only joins that drop an outer row without a match qualify (inner, semi, right and
//! right semi joins): a left, full or anti join returns such rows. The join still probes every row
//! the scan returns, so the filter only decides which rows reach it, never what it
//! returns. A join whose table went to several batches keeps the other batches' rows in
//! files, not in the table: the scan then filters nothing. `epiphany.enable_hash_key_filter`
//! switches it off.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::join_filter::{JoinFilter, KeyHash};
use epiphany_core::columnar::ColumnType;
use pgrx::guc::GucSetting;
use pgrx::pg_sys;
use pgrx::PgList;

pub static ENABLE: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Hash tables of more rows are not copied into a filter (a filter of most of a large
/// table keeps most rows anyway, and the copy would cost more than it saves).
const MAX_INNER_ROWS: usize = 8 << 20;

/// The hash join a scan filters by: its Hash node and the scan's key columns.
pub struct HashKeySource {
    hash: *mut pg_sys::HashState,
    keys: Vec<(usize, ColumnType, KeyHash)>,
    status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    /// The join has not built its table yet.
    Waiting,
    /// Filtering, by the hash values of this many inner rows.
    Built(usize),
    Unusable(&'static str),
}

impl HashKeySource {
    /// The scan's key columns.
    pub fn columns(&self) -> Vec<usize> {
        self.keys.iter().map(|k| k.0).collect()
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// Waiting again (a rescan: the join may build a new table).
    pub fn restart(&mut self) {
        if matches!(self.status, Status::Built(_)) {
            self.status = Status::Waiting;
        }
    }

    /// The filter, if the join's table is built and usable and it was not taken yet.
    ///
    /// # Safety
    /// Main thread, during the execution of the query whose plan state holds the Hash
    /// node.
    pub unsafe fn poll(&mut self) -> Option<JoinFilter> {
        if self.status != Status::Waiting {
            return None;
        }
        // SAFETY: per the contract; the Hash node outlives its join's outer scan.
        let table = unsafe { (*self.hash).hashtable };
        if table.is_null() {
            return None;
        }
        // SAFETY: a hash table the join finished building (see the module header).
        match unsafe { inner_hashes(self.hash) } {
            Ok(hashes) => {
                self.status = Status::Built(hashes.len());
                Some(JoinFilter::new(self.keys.clone(), &hashes))
            }
            Err(why) => {
                self.status = Status::Unusable(why);
                None
            }
        }
    }
}

/// The first members of PostgreSQL's `HashJoinTableData` (executor/hashjoin.h, the same
/// from 15 to 18), which pgrx does not bind: what finding every inner row's hash value
/// takes. The members after these differ between majors and are not read.
#[repr(C)]
struct HashTableHead {
    nbuckets: i32,
    log2_nbuckets: i32,
    nbuckets_original: i32,
    nbuckets_optimal: i32,
    log2_nbuckets_optimal: i32,
    /// `HashJoinTuple *` (private) or `dsa_pointer_atomic *` (parallel).
    buckets: *mut std::ffi::c_void,
    skew_enabled: bool,
    skew_bucket: *mut *mut SkewBucket,
    skew_bucket_len: i32,
    n_skew_buckets: i32,
    skew_bucket_nums: *mut i32,
    nbatch: i32,
    curbatch: i32,
}

/// `HashJoinTupleData`: the next tuple (a pointer, or a `dsa_pointer` in a parallel
/// hash) and the hash value.
#[repr(C)]
struct HashTuple {
    next: usize,
    hashvalue: u32,
}

/// `HashSkewBucket`.
#[repr(C)]
struct SkewBucket {
    hashvalue: u32,
    tuples: *mut HashTuple,
}

/// The hash value of every row in the built, single-batch hash table of `hash`.
///
/// # Safety
/// `hash` is a Hash node whose join has finished building its table; main thread.
unsafe fn inner_hashes(hash: *mut pg_sys::HashState) -> Result<Vec<u32>, &'static str> {
    // SAFETY: per the contract; the tuples are not changed while the join probes.
    unsafe {
        let t = &*((*hash).hashtable as *const HashTableHead);
        if t.nbatch != 1 {
            return Err("the hash join went to several batches");
        }
        let mut hashes = Vec::new();
        let mut push = |h: u32| -> Result<(), &'static str> {
            if hashes.len() >= MAX_INNER_ROWS {
                return Err("the hash join's table is too large");
            }
            hashes.push(h);
            Ok(())
        };
        let nbuckets = t.nbuckets.max(0) as usize;
        if !(*(*hash).ps.plan).parallel_aware {
            let buckets = t.buckets as *const *const HashTuple;
            for b in 0..nbuckets {
                let mut tuple = *buckets.add(b);
                while !tuple.is_null() {
                    push((*tuple).hashvalue)?;
                    tuple = (*tuple).next as *const HashTuple;
                }
            }
            // The most common outer values' inner rows live in skew buckets instead.
            if t.skew_enabled {
                for i in 0..t.n_skew_buckets.max(0) as usize {
                    let bucket = *t.skew_bucket.add(*t.skew_bucket_nums.add(i) as usize);
                    if bucket.is_null() {
                        continue;
                    }
                    let mut tuple = (*bucket).tuples as *const HashTuple;
                    while !tuple.is_null() {
                        push((*tuple).hashvalue)?;
                        tuple = (*tuple).next as *const HashTuple;
                    }
                }
            }
        } else {
            // A parallel-aware hash: batch 0's buckets in the query's shared memory.
            let area = (*(*hash).ps.state).es_query_dsa;
            if t.curbatch != 0 || t.buckets.is_null() || area.is_null() {
                return Err("the shared hash table is not at its first batch");
            }
            let buckets = t.buckets as *const u64;
            for b in 0..nbuckets {
                let mut p = std::ptr::read_volatile(buckets.add(b));
                while p != 0 {
                    let tuple = pg_sys::dsa_get_address(area, p) as *const HashTuple;
                    push((*tuple).hashvalue)?;
                    p = (*tuple).next as u64;
                }
            }
        }
        Ok(hashes)
    }
}

/// After ExecutorStart: links every columnar scan that can filter by the keys of the
/// hash join above it.
///
/// # Safety
/// `query` has just been through ExecutorStart; main thread.
pub unsafe fn link(query: *mut pg_sys::QueryDesc) {
    if !ENABLE.get() {
        return;
    }
    // SAFETY: per the contract.
    unsafe {
        epiphany_core::pg::plan_states::walk(query, |ps, _| {
            if (*ps).type_ != pg_sys::NodeTag::T_HashJoinState {
                return;
            }
            let outer = (*ps).lefttree;
            let Some(scan) = super::exec::columnar_scan_state(outer) else {
                return;
            };
            let source = source_for(ps as *mut pg_sys::HashJoinState, outer);
            super::exec::set_hash_keys(scan, source);
        })
    }
}

/// The keys of hash join `join` that its outer side, columnar scan `outer`, can test.
///
/// # Safety
/// Initialized plan states; main thread.
unsafe fn source_for(
    join: *mut pg_sys::HashJoinState,
    outer: *mut pg_sys::PlanState,
) -> Result<HashKeySource, &'static str> {
    use pg_sys::JoinType::{JOIN_INNER, JOIN_RIGHT, JOIN_SEMI};
    // SAFETY: per the contract.
    unsafe {
        // A right semi join (PostgreSQL 18) returns inner rows, each once an outer row
        // matched it: an outer row without a match counts for nothing either.
        #[cfg(feature = "pg18")]
        let right_semi = (*join).js.jointype == pg_sys::JoinType::JOIN_RIGHT_SEMI;
        #[cfg(not(feature = "pg18"))]
        let right_semi = false;
        if !(matches!((*join).js.jointype, JOIN_INNER | JOIN_SEMI | JOIN_RIGHT) || right_semi) {
            return Err("the join returns outer rows without a match");
        }
        let plan = (*join).js.ps.plan as *mut pg_sys::HashJoin;
        let scan_plan = (*outer).plan;
        let scanrelid = (*(scan_plan as *mut pg_sys::Scan)).scanrelid;
        let rel = (*(outer as *mut pg_sys::ScanState)).ss_currentRelation;
        let tlist = PgList::<pg_sys::TargetEntry>::from_pg((*scan_plan).targetlist);
        let mut keys = Vec::new();
        for clause in PgList::<pg_sys::Node>::from_pg((*plan).hashclauses).iter_ptr() {
            if (*clause).type_ != pg_sys::NodeTag::T_OpExpr {
                return Err("a hash clause is not an operator");
            }
            let op = clause as *mut pg_sys::OpExpr;
            if !pg_sys::op_strict((*op).opno) {
                return Err("a hash operator is not strict");
            }
            // The outer side's argument comes first, a Var of the scan's output.
            let arg = strip(pg_sys::list_nth((*op).args, 0) as *mut pg_sys::Node);
            let var = arg as *mut pg_sys::Var;
            // Var.varno is unsigned before PostgreSQL 16.
            #[allow(clippy::unnecessary_cast)]
            let varno = (*var).varno as i32;
            if (*arg).type_ != pg_sys::NodeTag::T_Var || varno != pg_sys::OUTER_VAR {
                return Err("an outer hash key is not a column");
            }
            let entry = tlist
                .get_ptr((*var).varattno as usize - 1)
                .ok_or("an outer hash key the scan does not return")?;
            let expr = strip((*entry).expr as *mut pg_sys::Node);
            let column = expr as *mut pg_sys::Var;
            if (*expr).type_ != pg_sys::NodeTag::T_Var
                || (*column).varno as u32 != scanrelid
                || (*column).varattno < 1
            {
                return Err("an outer hash key is not a table column");
            }
            let c = (*column).varattno as usize - 1;
            let attr = crate::convert::table::tuple_desc_attr((*rel).rd_att, c);
            let ty =
                crate::convert::datum::ColumnInfo::for_column((*attr).atttypid, (*attr).atttypmod)
                    .ty;
            let mut left = pg_sys::InvalidOid;
            let mut right = pg_sys::InvalidOid;
            if !pg_sys::get_op_hash_functions((*op).opno, &mut left, &mut right) {
                return Err("a hash operator without hash functions");
            }
            let hash = match (left.to_u32(), ty) {
                (pg_sys::F_HASHINT2, ColumnType::Int16)
                | (pg_sys::F_HASHINT4, ColumnType::Int32) => KeyHash::for_column(ty, false),
                (pg_sys::F_HASHINT4, ColumnType::Date) => KeyHash::for_column(ty, false),
                // `hashdate`, new in PostgreSQL 18, hashes as `hashint4`.
                #[cfg(feature = "pg18")]
                (pg_sys::F_HASHDATE, ColumnType::Date) => KeyHash::for_column(ty, false),
                (pg_sys::F_HASHINT8, ColumnType::Int64) => KeyHash::for_column(ty, true),
                _ => None,
            }
            .ok_or("a hash key not of an integer or date type")?;
            keys.push((c, ty, hash));
        }
        if keys.is_empty() {
            return Err("the join has no hash keys");
        }
        Ok(HashKeySource {
            hash: (*join).js.ps.righttree as *mut pg_sys::HashState,
            keys,
            status: Status::Waiting,
        })
    }
}

/// `node` without binary-compatible relabelings.
///
/// # Safety
/// A valid expression node.
unsafe fn strip(mut node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: per the contract.
    unsafe {
        while !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
    }
    node
}
