//! The pass over a finished plan that makes a columnar scan under `ORDER BY col LIMIT n`
//! a Top-N scan (`epiphany_core::columnar::part_scan::top_n`): it reads granules in the
//! order of their statistics and stops once the rest cannot hold one of the first `n`
//! rows. The Sort and Limit above stay: they still order and cut what the scan returns.
//!
//! Shapes: `Limit → Sort → Columnar Scan`, and `Limit → Gather Merge → Sort → Parallel
//! Columnar Scan`, whose Gather Merge goes (a scan that reads a few granules gains nothing
//! from workers, and the stopping rule needs every returned row in one process). The
//! scan must have no qual of Postgres's (each row it returns reaches the Sort), the first
//! sort key must be one of its columns of a type `TopNSpec::supports`, sorted by the
//! type's default btree order, and the limit and offset constants. The spec goes into
//! the scan's `custom_private` as an integer list.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::PgList;

use epiphany_core::columnar::part_scan::top_n::TopNSpec;

pub static ENABLE: GucSetting<bool> = GucSetting::<bool>::new(true);

/// The most rows (LIMIT + OFFSET) a Top-N scan remembers.
const MAX_ROWS: i64 = 1 << 20;

pub fn init() {
    GucRegistry::define_bool_guc(
        c"epiphany.enable_top_n",
        c"Lets a columnar scan under ORDER BY ... LIMIT read granules in the order of their statistics and stop early.",
        c"Applies when the first sort key is an integer, date, time or timestamp column, the scan evaluates all its quals itself, and LIMIT and OFFSET are constants; EXPLAIN ANALYZE shows the granules read.",
        &ENABLE,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// Rewrites `stmt`'s plan tree and subplans.
///
/// # Safety
/// A plan `standard_planner` just made, in the current memory context.
pub(crate) unsafe fn rewrite_statement(stmt: *mut pg_sys::PlannedStmt) {
    if !ENABLE.get() {
        return;
    }
    // SAFETY: per the contract.
    unsafe {
        (*stmt).planTree = rewrite((*stmt).planTree);
        let subplans = (*stmt).subplans;
        if !subplans.is_null() {
            for i in 0..(*subplans).length as usize {
                let cell = (*subplans).elements.add(i);
                (*cell).ptr_value = rewrite((*cell).ptr_value as *mut pg_sys::Plan).cast();
            }
        }
    }
}

unsafe fn rewrite(plan: *mut pg_sys::Plan) -> *mut pg_sys::Plan {
    if plan.is_null() {
        return plan;
    }
    // SAFETY: a valid plan tree.
    unsafe {
        for c in crate::vector_agg::children(plan) {
            *c = rewrite(*c);
        }
        if (*plan).type_ == pg_sys::NodeTag::T_Limit {
            top_n(plan as *mut pg_sys::Limit);
        }
        plan
    }
}

/// An int8 constant, or `None` for anything else (a NULL limit means none).
unsafe fn constant(node: *mut pg_sys::Node) -> Option<i64> {
    // SAFETY: a valid expression node.
    unsafe {
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Const {
            return None;
        }
        let k = node as *mut pg_sys::Const;
        ((*k).consttype == pg_sys::INT8OID && !(*k).constisnull)
            .then(|| (*k).constvalue.value() as i64)
    }
}

/// Makes the scan under `limit` a Top-N scan when the plan has one of the shapes.
unsafe fn top_n(limit: *mut pg_sys::Limit) {
    // SAFETY: a valid Limit of the plan being rewritten.
    unsafe {
        let Some(count) = constant((*limit).limitCount) else {
            return;
        };
        let offset = if (*limit).limitOffset.is_null() {
            0
        } else {
            match constant((*limit).limitOffset) {
                Some(o) => o,
                None => return,
            }
        };
        let rows = count.max(0).saturating_add(offset.max(0));
        if rows > MAX_ROWS {
            return;
        }
        let mut below = (*limit).plan.lefttree;
        let mut gather_merge = std::ptr::null_mut::<pg_sys::GatherMerge>();
        if !below.is_null() && (*below).type_ == pg_sys::NodeTag::T_GatherMerge {
            gather_merge = below as *mut pg_sys::GatherMerge;
            if !(*gather_merge).initParam.is_null() || !same_columns(below) {
                return;
            }
            below = (*below).lefttree;
        }
        if below.is_null() || (*below).type_ != pg_sys::NodeTag::T_Sort {
            return;
        }
        let sort = below as *mut pg_sys::Sort;
        let scan = (*below).lefttree;
        if scan.is_null()
            || !super::is_columnar_scan(scan)
            || !(*scan).qual.is_null()
            || (*scan).parallel_aware == gather_merge.is_null()
        {
            return;
        }
        let cs = scan as *mut pg_sys::CustomScan;
        let with_ties = (*limit).limitOption == pg_sys::LimitOption::LIMIT_OPTION_WITH_TIES;
        let Some(spec) = sort_key(sort, cs, rows as usize, with_ties) else {
            return;
        };
        let mut list = std::ptr::null_mut();
        for v in [
            spec.column as i32,
            i32::from(spec.descending),
            i32::from(spec.nulls_first),
            spec.rows as i32,
            i32::from(spec.ties),
        ] {
            list = pg_sys::lappend_int(list, v);
        }
        (*cs).custom_private = pg_sys::lappend((*cs).custom_private, list.cast());
        if !gather_merge.is_null() {
            (*scan).parallel_aware = false;
            (*limit).plan.lefttree = sort.cast();
        }
    }
}

/// Whether a Gather Merge returns its child's columns as they are (so the Limit above
/// reads the Sort's columns at the same positions).
unsafe fn same_columns(gather: *mut pg_sys::Plan) -> bool {
    // SAFETY: a valid plan node with a child.
    unsafe {
        let tl = PgList::<pg_sys::TargetEntry>::from_pg((*gather).targetlist);
        let child = PgList::<pg_sys::TargetEntry>::from_pg((*(*gather).lefttree).targetlist);
        tl.len() == child.len()
            && tl.iter_ptr().all(|t| {
                let e = (*t).expr as *mut pg_sys::Node;
                (*e).type_ == pg_sys::NodeTag::T_Var && {
                    let v = e as *mut pg_sys::Var;
                    (*v).varno == pg_sys::OUTER_VAR && (*v).varattno == (*t).resno
                }
            })
    }
}

/// The Top-N spec of `sort`'s first key over `scan`, if it is a plain column of the
/// scan of a supported type in its type's default btree order.
unsafe fn sort_key(
    sort: *mut pg_sys::Sort,
    scan: *mut pg_sys::CustomScan,
    rows: usize,
    with_ties: bool,
) -> Option<TopNSpec> {
    // SAFETY: a valid Sort over a valid scan.
    unsafe {
        if (*sort).numCols < 1 {
            return None;
        }
        let resno = *(*sort).sortColIdx as usize;
        let sort_tl = PgList::<pg_sys::TargetEntry>::from_pg((*sort).plan.targetlist);
        let te = sort_tl.get_ptr(resno.checked_sub(1)?)?;
        let e = (*te).expr as *mut pg_sys::Node;
        if (*e).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let v = e as *mut pg_sys::Var;
        if (*v).varno != pg_sys::OUTER_VAR || (*v).varattno < 1 {
            return None;
        }
        let scan_tl = PgList::<pg_sys::TargetEntry>::from_pg((*scan).scan.plan.targetlist);
        let se = scan_tl.get_ptr((*v).varattno as usize - 1)?;
        let e = (*se).expr as *mut pg_sys::Node;
        if (*e).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let var = e as *mut pg_sys::Var;
        if (*var).varno as pg_sys::Index != (*scan).scan.scanrelid
            || (*var).varattno < 1
            || (*var).varlevelsup != 0
        {
            return None;
        }
        let typid = (*var).vartype;
        let ty = crate::convert::datum::ColumnInfo::for_type(typid).ty;
        if !TopNSpec::supports(ty) {
            return None;
        }
        // The type's own btree order: `<` ascending, `>` descending.
        let op = *(*sort).sortOperators;
        let (mut family, mut input, mut strategy) = (pg_sys::InvalidOid, pg_sys::InvalidOid, 0);
        if !pg_sys::get_ordering_op_properties(op, &mut family, &mut input, &mut strategy) {
            return None;
        }
        let default = pg_sys::GetDefaultOpClass(typid, pg_sys::BTREE_AM_OID);
        if default == pg_sys::InvalidOid
            || pg_sys::get_opclass_family(default) != family
            || input != typid
        {
            return None;
        }
        let strategy = i64::from(strategy);
        let descending = if strategy == i64::from(pg_sys::BTLessStrategyNumber) {
            false
        } else if strategy == i64::from(pg_sys::BTGreaterStrategyNumber) {
            true
        } else {
            return None;
        };
        Some(TopNSpec {
            column: (*var).varattno as usize - 1,
            descending,
            nulls_first: *(*sort).nullsFirst,
            rows,
            ties: with_ties || (*sort).numCols > 1,
        })
    }
}

/// The Top-N spec the pass put into a scan's `custom_private`, if any.
///
/// # Safety
/// `private` is a columnar scan's `custom_private`.
pub(crate) unsafe fn spec_of(private: *mut pg_sys::List) -> Option<TopNSpec> {
    // SAFETY: per the contract: strings (see `vector_agg::plan`) and integer lists.
    unsafe {
        for n in PgList::<pg_sys::Node>::from_pg(private).iter_ptr() {
            if (*n).type_ != pg_sys::NodeTag::T_IntList {
                continue;
            }
            let list = n as *mut pg_sys::List;
            let v: Vec<i32> = (0..(*list).length)
                .map(|i| pg_sys::list_nth_int(list, i))
                .collect();
            if let [column, descending, nulls_first, rows, ties] = v[..] {
                return Some(TopNSpec {
                    column: column as usize,
                    descending: descending != 0,
                    nulls_first: nulls_first != 0,
                    rows: rows as usize,
                    ties: ties != 0,
                });
            }
        }
        None
    }
}
