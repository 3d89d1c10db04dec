//! What a hash key filter (`hash_keys`) saves, in the planner's costs: a hash join whose
//! outer side is a columnar scan it can filter is offered once more at a lower price, so
//! that the planner can hash the small side and probe the large columnar table (TPC-H
//! Q4: hash the 57k qualifying `orders` and probe `lineitem`, rather than hash 3.8M
//! `lineitem` rows).
//!
//! Postgres prices every outer row at a tuple's CPU cost in the scan plus hashing its
//! keys in the join; what a columnar scan really spends on a row it returns is about a
//! tuple's CPU cost per column (see `repriced`). With the filter, a row no inner row
//! matches costs only the hashing in the scan; the share of outer rows that match is the join clauses' selectivity times
//! the inner rows (capped at one, plus the Bloom filter's false positives). Only joins
//! the filter serves are repriced: inner, semi and right joins on `int2`, `int4`, `int8`
//! and `date` keys whose hash table the planner expects to fit in one batch.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

static mut PREVIOUS: pg_sys::set_join_pathlist_hook_type = None;

/// The share of rows matching nothing the filter lets through.
const FALSE_POSITIVES: f64 = 0.02;

thread_local! {
    /// The repriced copies made so far, by address, with their total cost: the hook runs
    /// for every pair of sides and join type, and sees the copies it made before.
    static REPRICED: RefCell<HashMap<usize, f64>> = RefCell::new(HashMap::new());
}

pub(super) fn install() {
    // SAFETY: _PG_init on the main thread; the previous hook is chained.
    unsafe {
        PREVIOUS = pg_sys::set_join_pathlist_hook;
        pg_sys::set_join_pathlist_hook = Some(set_join_pathlist);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn set_join_pathlist(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    outerrel: *mut pg_sys::RelOptInfo,
    innerrel: *mut pg_sys::RelOptInfo,
    jointype: pg_sys::JoinType::Type,
    extra: *mut pg_sys::JoinPathExtraData,
) {
    // SAFETY: the planner's structures, valid during the call.
    unsafe {
        // First, while this frame holds nothing to drop (see `epiphany_core::pg::hooks`).
        epiphany_core::pg::hooks::set_join_pathlist(
            PREVIOUS, root, joinrel, outerrel, innerrel, jointype, extra,
        );
        if !super::ENABLE.get() || !super::hash_keys::ENABLE.get() {
            return;
        }
        let cheaper = |list: *mut pg_sys::List| -> Vec<*mut pg_sys::Path> {
            PgList::<pg_sys::Path>::from_pg(list)
                .iter_ptr()
                .filter_map(|p| repriced(root, p))
                .collect()
        };
        let whole = cheaper((*joinrel).pathlist);
        let partial = cheaper((*joinrel).partial_pathlist);
        for p in whole {
            pg_sys::add_path(joinrel, p);
        }
        for p in partial {
            pg_sys::add_partial_path(joinrel, p);
        }
    }
}

/// A copy of `path` at the price its hash key filter brings, if it is a hash join whose
/// outer columnar scan can filter by its keys and the filter pays.
///
/// # Safety
/// Planner structures; main thread.
unsafe fn repriced(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::Path,
) -> Option<*mut pg_sys::Path> {
    use pg_sys::JoinType::{JOIN_INNER, JOIN_RIGHT, JOIN_SEMI};
    // SAFETY: per the contract.
    unsafe {
        if (*path).type_ != pg_sys::NodeTag::T_HashPath {
            return None;
        }
        let already =
            REPRICED.with(|r| r.borrow().get(&(path as usize)) == Some(&(*path).total_cost));
        if already {
            return None;
        }
        let hash = path as *mut pg_sys::HashPath;
        let join = &(*hash).jpath;
        #[cfg(feature = "pg18")]
        let right_semi = join.jointype == pg_sys::JoinType::JOIN_RIGHT_SEMI;
        #[cfg(not(feature = "pg18"))]
        let right_semi = false;
        if !(matches!(join.jointype, JOIN_INNER | JOIN_SEMI | JOIN_RIGHT) || right_semi)
            || (*hash).num_batches != 1
        {
            return None;
        }
        let outer = join.outerjoinpath;
        if (*outer).type_ != pg_sys::NodeTag::T_CustomPath
            || !std::ptr::eq(
                (*(outer as *mut pg_sys::CustomPath)).methods,
                &super::PATH_METHODS.0,
            )
        {
            return None;
        }
        let clauses = PgList::<pg_sys::RestrictInfo>::from_pg((*hash).path_hashclauses);
        if clauses.is_empty() || !clauses.iter_ptr().all(|c| outer_key_filterable(c)) {
            return None;
        }
        let selectivity = pg_sys::clauselist_selectivity(
            root,
            (*hash).path_hashclauses,
            0,
            JOIN_INNER,
            std::ptr::null_mut(),
        );
        let inner_rows = if (*hash).inner_rows_total > 0.0 {
            (*hash).inner_rows_total
        } else {
            (*join.innerjoinpath).rows
        };
        let kept = (inner_rows * selectivity + FALSE_POSITIVES).min(1.0);
        // A row the filter drops is never decoded beyond its keys, converted into a
        // tuple, nor probed: measured on TPC-H Q8 (lineitem, 5 columns), 0.41 µs a row,
        // where the scan's plan costs 10 µs a unit — a tuple's CPU cost per column
        // returned, and one more for the row.
        let columns = pg_sys::list_length((*(*outer).pathtarget).exprs).max(1) as f64;
        let hashing = pg_sys::cpu_operator_cost * clauses.len() as f64;
        let per_row = (1.0 - kept) * (pg_sys::cpu_tuple_cost * (1.0 + columns) + hashing) - hashing;
        let saved = (*outer).rows * per_row;
        let run = (*path).total_cost - (*path).startup_cost;
        if saved <= 0.0 || saved >= run {
            return None;
        }
        let copy = pg_sys::palloc(std::mem::size_of::<pg_sys::HashPath>()) as *mut pg_sys::HashPath;
        std::ptr::copy_nonoverlapping(hash, copy, 1);
        (*copy).jpath.path.total_cost -= saved;
        let total = (*copy).jpath.path.total_cost;
        REPRICED.with(|r| {
            let mut r = r.borrow_mut();
            // Addresses of earlier queries' paths are stale; their costs rarely match.
            if r.len() > 100_000 {
                r.clear();
            }
            r.insert(copy as usize, total);
        });
        Some(copy as *mut pg_sys::Path)
    }
}

/// Whether the outer side of hash clause `clause` is a column the filter hashes.
///
/// # Safety
/// A valid RestrictInfo of a hash join.
unsafe fn outer_key_filterable(clause: *mut pg_sys::RestrictInfo) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let expr = (*clause).clause as *mut pg_sys::Node;
        if (*expr).type_ != pg_sys::NodeTag::T_OpExpr {
            return false;
        }
        let op = expr as *mut pg_sys::OpExpr;
        if !pg_sys::op_strict((*op).opno) || pg_sys::list_length((*op).args) != 2 {
            return false;
        }
        let side = if (*clause).outer_is_left { 0 } else { 1 };
        let mut arg = pg_sys::list_nth((*op).args, side) as *mut pg_sys::Node;
        while (*arg).type_ == pg_sys::NodeTag::T_RelabelType {
            arg = (*(arg as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
        if (*arg).type_ != pg_sys::NodeTag::T_Var || (*(arg as *mut pg_sys::Var)).varattno < 1 {
            return false;
        }
        matches!(
            pg_sys::getBaseType((*(arg as *mut pg_sys::Var)).vartype),
            pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID | pg_sys::DATEOID
        )
    }
}
