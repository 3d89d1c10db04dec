//! The pass over a finished plan that puts `EpiphanyDB Vector Agg` under the aggregates
//! it can compute.
//!
//! Two shapes, both over our columnar scan with every qual vectorized:
//! - a partial `Agg` (below Gather in a parallel plan) is replaced by the node, which
//!   emits the same columns;
//! - a plain `Agg` becomes a Finalize `Agg` over the node: the node emits the group keys
//!   and a partial state per aggregate, and the `Agg`'s aggregates combine them.
//!
//! Nothing is changed until every key and aggregate has been translated
//! (`translate.rs`); the expressions are copies until then.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::collections::HashSet;

use pgrx::pg_sys;
use pgrx::PgList;

use super::translate::{self, Scan};
use super::{REQUIRE, SCAN_METHODS};
use crate::convert::table::TableInfo;

/// What one group is taken to cost in memory (keys, states, map entry), to keep a node
/// within `work_mem × hash_mem_multiplier`.
const GROUP_BYTES: f64 = 160.0;

/// Rewrites `stmt`'s plan tree and subplans.
///
/// # Safety
/// A plan `standard_planner` just made, in the current memory context.
pub(super) unsafe fn rewrite_statement(stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: per the contract.
    unsafe {
        let mut ids = Ids(max_id((*stmt).planTree));
        for p in PgList::<pg_sys::Plan>::from_pg((*stmt).subplans).iter_ptr() {
            ids.0 = ids.0.max(max_id(p));
        }
        (*stmt).planTree = rewrite(stmt, (*stmt).planTree, &mut ids);
        let subplans = (*stmt).subplans;
        if !subplans.is_null() {
            for i in 0..(*subplans).length as usize {
                let cell = (*subplans).elements.add(i);
                (*cell).ptr_value =
                    rewrite(stmt, (*cell).ptr_value as *mut pg_sys::Plan, &mut ids).cast();
            }
        }
    }
}

/// The largest plan node id in use: a new node takes the next.
struct Ids(i32);

/// The pointers to `plan`'s child plans (to replace them).
///
/// # Safety
/// A valid plan node.
pub(crate) unsafe fn children(plan: *mut pg_sys::Plan) -> Vec<*mut *mut pg_sys::Plan> {
    // SAFETY: a valid plan node; the pointers point into it and its lists.
    unsafe {
        let mut out = vec![&raw mut (*plan).lefttree, &raw mut (*plan).righttree];
        let list = match (*plan).type_ {
            pg_sys::NodeTag::T_Append => (*(plan as *mut pg_sys::Append)).appendplans,
            pg_sys::NodeTag::T_MergeAppend => (*(plan as *mut pg_sys::MergeAppend)).mergeplans,
            pg_sys::NodeTag::T_CustomScan => (*(plan as *mut pg_sys::CustomScan)).custom_plans,
            pg_sys::NodeTag::T_SubqueryScan => {
                out.push(&raw mut (*(plan as *mut pg_sys::SubqueryScan)).subplan);
                std::ptr::null_mut()
            }
            _ => std::ptr::null_mut(),
        };
        if !list.is_null() {
            for i in 0..(*list).length as usize {
                out.push((&raw mut (*(*list).elements.add(i)).ptr_value).cast());
            }
        }
        out
    }
}

unsafe fn max_id(plan: *mut pg_sys::Plan) -> i32 {
    if plan.is_null() {
        return 0;
    }
    // SAFETY: a valid plan tree.
    unsafe {
        let mut m = (*plan).plan_node_id;
        for c in children(plan) {
            m = m.max(max_id(*c));
        }
        m
    }
}

unsafe fn rewrite(
    stmt: *mut pg_sys::PlannedStmt,
    plan: *mut pg_sys::Plan,
    ids: &mut Ids,
) -> *mut pg_sys::Plan {
    if plan.is_null() {
        return plan;
    }
    // SAFETY: a valid plan tree of `stmt`.
    unsafe {
        for c in children(plan) {
            *c = rewrite(stmt, *c, ids);
        }
        if (*plan).type_ == pg_sys::NodeTag::T_Gather {
            return without_gather(plan as *mut pg_sys::Gather);
        }
        if (*plan).type_ != pg_sys::NodeTag::T_Agg {
            return plan;
        }
        let agg = plan as *mut pg_sys::Agg;
        let mut child = (*plan).lefttree;
        // Sorted grouping sorts the scan's rows: then the groups are sorted instead.
        // A plain Agg over Gather (few rows expected) becomes Finalize over Gather over
        // the node: the node goes below the Gather.
        let mut sort = std::ptr::null_mut();
        let mut gather = std::ptr::null_mut();
        if !child.is_null() && (*child).type_ == pg_sys::NodeTag::T_Sort {
            sort = child as *mut pg_sys::Sort;
            child = (*child).lefttree;
        }
        if !child.is_null()
            && (*child).type_ == pg_sys::NodeTag::T_Gather
            && (*agg).aggsplit == pg_sys::AggSplit::AGGSPLIT_SIMPLE
        {
            gather = child as *mut pg_sys::Gather;
            child = (*child).lefttree;
        }
        if child.is_null() || !crate::custom_scan::is_columnar_scan(child) {
            return plan;
        }
        match vectorize(
            stmt,
            agg,
            sort,
            gather,
            child as *mut pg_sys::CustomScan,
            ids,
        ) {
            Ok(p) => p,
            Err(why) if REQUIRE.get() => {
                pgrx::ereport!(
                    ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("an aggregate over a columnar scan was not vectorized: {why}"),
                    "epiphany.debug_require_vector_agg is on."
                );
            }
            Err(why) => {
                // EXPLAIN VERBOSE of the scan says why (the scan keeps nothing else there).
                let text = std::ffi::CString::new(why).expect("no NUL in reasons");
                let why = pg_sys::makeString(pg_sys::pstrdup(text.as_ptr()));
                let scan = child as *mut pg_sys::CustomScan;
                (*scan).custom_private = pg_sys::lappend((*scan).custom_private, why.cast());
                plan
            }
        }
    }
}

/// `count(*)` of a whole table comes from the catalog in microseconds: launching
/// workers for it costs milliseconds. A Gather over a Vector Agg of `count(*)` alone
/// with no quals goes, and the scan below it reads every part itself.
unsafe fn without_gather(gather: *mut pg_sys::Gather) -> *mut pg_sys::Plan {
    // SAFETY: a valid Gather of the plan being rewritten.
    unsafe {
        let below = (*gather).plan.lefttree;
        let ours = !below.is_null()
            && (*below).type_ == pg_sys::NodeTag::T_CustomScan
            && std::ptr::eq(
                (*(below as *mut pg_sys::CustomScan)).methods,
                &SCAN_METHODS.0,
            );
        if !ours || !(*gather).initParam.is_null() || (*gather).single_copy {
            return gather.cast();
        }
        let node = below as *mut pg_sys::CustomScan;
        let scan = pg_sys::list_nth((*node).custom_plans, 0) as *mut pg_sys::CustomScan;
        let counts_only = (*node).custom_private.is_null()
            && (*scan).custom_exprs.is_null()
            && PgList::<pg_sys::TargetEntry>::from_pg((*node).custom_scan_tlist)
                .iter_ptr()
                .all(|t| {
                    let e = (*t).expr as *mut pg_sys::Node;
                    (*e).type_ == pg_sys::NodeTag::T_Aggref && (*(e as *mut pg_sys::Aggref)).aggstar
                });
        if !counts_only {
            return gather.cast();
        }
        (*scan).scan.plan.parallel_aware = false;
        below
    }
}

/// A Var referring to the scan's output column `attno` (1-based) from the Agg above it.
unsafe fn outer_column(node: *mut pg_sys::Node) -> Option<i16> {
    // SAFETY: a valid node.
    unsafe {
        if (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let v = node as *mut pg_sys::Var;
        ((*v).varno == pg_sys::OUTER_VAR && (*v).varlevelsup == 0).then_some((*v).varattno)
    }
}

/// Replaces, in place, each `OUTER_VAR` Var under `node` (an expression of only the node
/// types `translate` accepts) by the scan's Var it refers to.
unsafe fn resolve(
    node: *mut pg_sys::Node,
    scan_vars: &[*mut pg_sys::Var],
) -> Result<(), &'static str> {
    if node.is_null() {
        return Ok(());
    }
    // SAFETY: a valid expression tree, a copy owned by this pass.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_Var => {
                let k = outer_column(node).ok_or("a column of another relation")?;
                let target = *scan_vars
                    .get(k as usize - 1)
                    .ok_or("a column the scan does not return")?;
                *(node as *mut pg_sys::Var) = *target;
                Ok(())
            }
            pg_sys::NodeTag::T_Const => Ok(()),
            pg_sys::NodeTag::T_TargetEntry => {
                resolve((*(node as *mut pg_sys::TargetEntry)).expr.cast(), scan_vars)
            }
            pg_sys::NodeTag::T_OpExpr => {
                resolve_list((*(node as *mut pg_sys::OpExpr)).args, scan_vars)
            }
            pg_sys::NodeTag::T_FuncExpr => {
                resolve_list((*(node as *mut pg_sys::FuncExpr)).args, scan_vars)
            }
            pg_sys::NodeTag::T_Aggref => {
                resolve_list((*(node as *mut pg_sys::Aggref)).args, scan_vars)
            }
            _ => Err("an expression the vectorized aggregates do not evaluate"),
        }
    }
}

unsafe fn resolve_list(
    list: *mut pg_sys::List,
    scan_vars: &[*mut pg_sys::Var],
) -> Result<(), &'static str> {
    // SAFETY: a valid list of nodes.
    unsafe {
        for n in PgList::<pg_sys::Node>::from_pg(list).iter_ptr() {
            resolve(n, scan_vars)?;
        }
    }
    Ok(())
}

/// A copy of `aggref` over the scan's columns, if the core computes it.
unsafe fn partial_aggref(
    aggref: *mut pg_sys::Aggref,
    scan_vars: &[*mut pg_sys::Var],
    scan: &Scan<'_>,
) -> Result<*mut pg_sys::Aggref, &'static str> {
    // SAFETY: a valid Aggref; the copy is ours.
    unsafe {
        let copy = pg_sys::copyObjectImpl(aggref.cast()) as *mut pg_sys::Aggref;
        resolve(copy.cast(), scan_vars)?;
        translate::aggref(copy, scan)
            .ok_or("an aggregate or argument the vectorized aggregates do not compute")?;
        Ok(copy)
    }
}

unsafe fn tle(expr: *mut pg_sys::Node, resno: usize) -> *mut pg_sys::TargetEntry {
    // SAFETY: makeTargetEntry copies nothing; palloc in the planner's context.
    unsafe { pg_sys::makeTargetEntry(expr.cast(), resno as i16, std::ptr::null_mut(), false) }
}

unsafe fn var_for(varno: i32, attno: usize, expr: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: a valid expression.
    unsafe {
        pg_sys::makeVar(
            varno,
            attno as i16,
            pg_sys::exprType(expr),
            pg_sys::exprTypmod(expr),
            pg_sys::exprCollation(expr),
            0,
        ) as *mut pg_sys::Node
    }
}

unsafe fn vectorize(
    stmt: *mut pg_sys::PlannedStmt,
    agg: *mut pg_sys::Agg,
    sort: *mut pg_sys::Sort,
    gather: *mut pg_sys::Gather,
    child: *mut pg_sys::CustomScan,
    ids: &mut Ids,
) -> Result<*mut pg_sys::Plan, &'static str> {
    use pg_sys::AggSplit::{AGGSPLIT_FINAL_DESERIAL, AGGSPLIT_INITIAL_SERIAL, AGGSPLIT_SIMPLE};
    use pg_sys::AggStrategy::{AGG_HASHED, AGG_PLAIN, AGG_SORTED};
    // SAFETY: a valid Agg over our scan in `stmt`; everything changed is a copy until the
    // end, when the plan is rewired.
    unsafe {
        let partial = match (*agg).aggsplit {
            AGGSPLIT_INITIAL_SERIAL => true,
            AGGSPLIT_SIMPLE => false,
            _ => return Err("the aggregate is not a plain or partial one"),
        };
        let sorted = !sort.is_null();
        if !(matches!((*agg).aggstrategy, AGG_PLAIN | AGG_HASHED) && !sorted
            || (*agg).aggstrategy == AGG_SORTED && sorted)
        {
            return Err("mixed grouping, or a sort the grouping does not need");
        }
        // The sort's keys must be GROUP BY keys: the groups are sorted by them.
        let mut sort_keys = Vec::new();
        if sorted {
            for i in 0..(*sort).numCols as usize {
                let c = *(*sort).sortColIdx.add(i);
                let k = (0..(*agg).numCols as usize)
                    .position(|g| *(*agg).grpColIdx.add(g) == c)
                    .ok_or("a sort by something else than the GROUP BY keys")?;
                sort_keys.push(k);
            }
        }
        if !(*agg).groupingSets.is_null() || !(*agg).chain.is_null() {
            return Err("grouping sets");
        }
        if !(*agg).aggParams.is_null() {
            return Err("aggregate arguments with outer references");
        }
        // The node keeps every group in memory and never spills: more groups than the
        // hash memory PostgreSQL's own Agg would use are left to it.
        let budget = f64::from(pg_sys::work_mem) * 1024.0 * pg_sys::hash_mem_multiplier;
        if (*agg).numCols > 0 && (*agg).numGroups as f64 * GROUP_BYTES > budget {
            return Err("more groups than work_mem holds");
        }
        if !(*child).scan.plan.qual.is_null() {
            return Err("the scan has quals that are not vectorized");
        }
        let scanrelid = (*child).scan.scanrelid;
        let rte =
            pg_sys::list_nth((*stmt).rtable, scanrelid as i32 - 1) as *mut pg_sys::RangeTblEntry;
        let raw = pg_sys::table_open((*rte).relid, pg_sys::NoLock as _);
        let info = TableInfo::load(epiphany_core::pg::buffer::Rel::new(raw));
        pg_sys::table_close(raw, pg_sys::NoLock as _);
        let info = info.map_err(|_| "the table's columns cannot be read")?;
        let scan = Scan {
            info: &info,
            scanrelid,
        };
        let mut scan_vars = Vec::new();
        for t in PgList::<pg_sys::TargetEntry>::from_pg((*child).scan.plan.targetlist).iter_ptr() {
            let e = (*t).expr as *mut pg_sys::Node;
            if (*e).type_ != pg_sys::NodeTag::T_Var {
                return Err("the scan computes expressions");
            }
            scan_vars.push(e as *mut pg_sys::Var);
        }
        // The GROUP BY keys, as the scan's Vars.
        let ncols = (*agg).numCols as usize;
        let grp: Vec<i16> = (0..ncols).map(|i| *(*agg).grpColIdx.add(i)).collect();
        let mut keys: *mut pg_sys::List = std::ptr::null_mut();
        for &k in &grp {
            let v = *scan_vars
                .get(k as usize - 1)
                .ok_or("a key the scan does not return")?;
            translate::key(v.cast(), &scan)
                .ok_or("a GROUP BY key of a type or collation not compared by bytes")?;
            keys = pg_sys::lappend(keys, pg_sys::copyObjectImpl(v.cast()));
        }
        // The node's output: keys and partial aggregates.
        let mut entries: Vec<*mut pg_sys::Node> = Vec::new();
        let node_id;
        if partial {
            for t in PgList::<pg_sys::TargetEntry>::from_pg((*agg).plan.targetlist).iter_ptr() {
                let e = (*t).expr as *mut pg_sys::Node;
                if let Some(k) = outer_column(e) {
                    if !grp.contains(&k) {
                        return Err("an output column that is not a GROUP BY key");
                    }
                    entries.push(pg_sys::copyObjectImpl(scan_vars[k as usize - 1].cast()).cast());
                } else if (*e).type_ == pg_sys::NodeTag::T_Aggref {
                    entries.push(partial_aggref(e.cast(), &scan_vars, &scan)?.cast());
                } else {
                    return Err("an output expression of the partial aggregate");
                }
            }
            node_id = (*agg).plan.plan_node_id;
        } else {
            // The Finalize Agg's expressions: copies, changed in place.
            let tlist = pg_sys::copyObjectImpl((*agg).plan.targetlist.cast()) as *mut pg_sys::List;
            let qual = pg_sys::copyObjectImpl((*agg).plan.qual.cast()) as *mut pg_sys::List;
            for &k in &grp {
                entries.push(pg_sys::copyObjectImpl(scan_vars[k as usize - 1].cast()).cast());
            }
            let flags = (pg_sys::PVC_INCLUDE_AGGREGATES | pg_sys::PVC_INCLUDE_PLACEHOLDERS) as i32;
            let mut found: Vec<*mut pg_sys::Node> = Vec::new();
            for l in [tlist, qual] {
                let nodes = pg_sys::pull_var_clause(l.cast(), flags);
                found.extend(PgList::<pg_sys::Node>::from_pg(nodes).iter_ptr());
            }
            let mut seen = HashSet::new();
            let mut finals: Vec<(*mut pg_sys::Aggref, *mut pg_sys::Aggref)> = Vec::new();
            let mut key_vars: Vec<(*mut pg_sys::Var, i16)> = Vec::new();
            for n in found {
                if !seen.insert(n as usize) {
                    continue;
                }
                match (*n).type_ {
                    pg_sys::NodeTag::T_Aggref => {
                        let a = n as *mut pg_sys::Aggref;
                        finals.push((a, partial_aggref(a, &scan_vars, &scan)?));
                    }
                    pg_sys::NodeTag::T_Var => {
                        let k = outer_column(n).ok_or("a column of another relation")?;
                        let i = grp
                            .iter()
                            .position(|&g| g == k)
                            .ok_or("an output column that is not a GROUP BY key")?;
                        key_vars.push((n.cast(), i as i16 + 1));
                    }
                    _ => return Err("a placeholder in the aggregate's output"),
                }
            }
            // Everything translated: rewire the copies.
            for (v, attno) in key_vars {
                (*v).varattno = attno;
            }
            for (fin, part) in finals {
                pg_sys::mark_partial_aggref(part, AGGSPLIT_INITIAL_SERIAL);
                entries.push(part.cast());
                let input = var_for(pg_sys::OUTER_VAR, entries.len(), part.cast());
                (*fin).args = pg_sys::lappend(std::ptr::null_mut(), tle(input, 1).cast());
                (*fin).aggsplit = AGGSPLIT_FINAL_DESERIAL;
            }
            (*agg).plan.targetlist = tlist;
            (*agg).plan.qual = qual;
            for i in 0..ncols {
                *(*agg).grpColIdx.add(i) = i as i16 + 1;
            }
            (*agg).aggsplit = AGGSPLIT_FINAL_DESERIAL;
            ids.0 += 1;
            node_id = ids.0;
        }
        let mut node = node(agg, child, keys, &entries, node_id);
        if !gather.is_null() {
            let mut tlist = std::ptr::null_mut();
            for (i, &e) in entries.iter().enumerate() {
                tlist = pg_sys::lappend(
                    tlist,
                    tle(var_for(pg_sys::OUTER_VAR, i + 1, e), i + 1).cast(),
                );
            }
            (*gather).plan.targetlist = tlist;
            (*gather).plan.lefttree = node;
            node = gather.cast();
        }
        if sorted {
            // The sort now orders the groups: its keys are ours (the first outputs of a
            // plain Agg's node; where the partial Agg put them otherwise).
            let mut tlist = std::ptr::null_mut();
            for (i, &e) in entries.iter().enumerate() {
                tlist = pg_sys::lappend(
                    tlist,
                    tle(var_for(pg_sys::OUTER_VAR, i + 1, e), i + 1).cast(),
                );
            }
            let mut at = Vec::with_capacity(sort_keys.len());
            for &k in &sort_keys {
                at.push(if partial {
                    let key_var = pg_sys::list_nth(keys, k as i32) as *mut pg_sys::Node;
                    entries
                        .iter()
                        .position(|&e| pg_sys::equal(e.cast(), key_var.cast()))
                        .ok_or("a sort key not in the output")?
                        + 1
                } else {
                    *(*agg).grpColIdx.add(k) as usize
                });
            }
            for (i, a) in at.into_iter().enumerate() {
                *(*sort).sortColIdx.add(i) = a as i16;
            }
            (*sort).plan.targetlist = tlist;
            (*sort).plan.lefttree = node;
            node = sort.cast();
        }
        if partial {
            Ok(node)
        } else {
            (*agg).plan.lefttree = node;
            Ok(agg.cast())
        }
    }
}

/// The Vector Agg plan node over `child`, emitting `entries`.
unsafe fn node(
    agg: *mut pg_sys::Agg,
    child: *mut pg_sys::CustomScan,
    keys: *mut pg_sys::List,
    entries: &[*mut pg_sys::Node],
    node_id: i32,
) -> *mut pg_sys::Plan {
    // SAFETY: a new node palloc'd in the planner's context, filled as a scanrelid-0
    // custom scan whose output is its custom_scan_tlist.
    unsafe {
        let cs =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomScan>()) as *mut pg_sys::CustomScan;
        (*cs).scan.plan.type_ = pg_sys::NodeTag::T_CustomScan;
        let p = &mut (*cs).scan.plan;
        let a = &(*agg).plan;
        p.startup_cost = a.startup_cost;
        p.total_cost = a.total_cost;
        p.plan_rows = a.plan_rows;
        p.plan_width = a.plan_width;
        p.parallel_aware = false;
        p.parallel_safe = (*child).scan.plan.parallel_safe;
        p.plan_node_id = node_id;
        p.extParam = pg_sys::bms_copy((*child).scan.plan.extParam);
        p.allParam = pg_sys::bms_copy((*child).scan.plan.allParam);
        let mut tlist = std::ptr::null_mut();
        let mut scan_tlist = std::ptr::null_mut();
        for (i, &e) in entries.iter().enumerate() {
            scan_tlist = pg_sys::lappend(scan_tlist, tle(e, i + 1).cast());
            tlist = pg_sys::lappend(
                tlist,
                tle(var_for(pg_sys::INDEX_VAR, i + 1, e), i + 1).cast(),
            );
        }
        p.targetlist = tlist;
        (*cs).scan.scanrelid = 0;
        (*cs).custom_scan_tlist = scan_tlist;
        (*cs).custom_plans = pg_sys::lappend(std::ptr::null_mut(), child.cast());
        (*cs).custom_private = keys;
        (*cs).custom_relids = pg_sys::bms_make_singleton((*child).scan.scanrelid as i32);
        (*cs).methods = &SCAN_METHODS.0;
        cs.cast()
    }
}
