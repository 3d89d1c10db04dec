//! Walking a query's executor state tree once ExecutorStart has built it, each node with
//! the node it returns its rows to — what the extensions' post-start passes (which
//! columns a fetch decodes, which scans filter by a hash join's keys) look at.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use pgrx::pg_sys;

/// Calls `visit(node, parent)` for every node of `query`'s plan state trees (the main
/// plan's and its subplans'). `parent` is the node the rows go to when it is known:
/// null for roots and for children kept in lists (Append, MergeAppend, a subquery scan's
/// subplan, a custom scan's children), whose parents read them in their own ways.
///
/// # Safety
/// `query` has just been through ExecutorStart; main thread.
pub unsafe fn walk(
    query: *mut pg_sys::QueryDesc,
    mut visit: impl FnMut(*mut pg_sys::PlanState, *mut pg_sys::PlanState),
) {
    // SAFETY: per the contract; the plan state trees are complete.
    unsafe {
        let estate = (*query).estate;
        if estate.is_null() {
            return;
        }
        let none = std::ptr::null_mut();
        let mut stack: Vec<(*mut pg_sys::PlanState, *mut pg_sys::PlanState)> =
            vec![((*query).planstate, none)];
        for sub in pgrx::PgList::<pg_sys::PlanState>::from_pg((*estate).es_subplanstates).iter_ptr()
        {
            stack.push((sub, none));
        }
        while let Some((ps, parent)) = stack.pop() {
            if ps.is_null() {
                continue;
            }
            stack.push(((*ps).lefttree, ps));
            stack.push(((*ps).righttree, ps));
            let children = |list: *mut *mut pg_sys::PlanState, n: i32| {
                (0..n.max(0) as usize).map(move |i| (*list.add(i), none))
            };
            use pg_sys::NodeTag as T;
            match (*ps).type_ {
                T::T_AppendState => {
                    let a = ps as *mut pg_sys::AppendState;
                    stack.extend(children((*a).appendplans, (*a).as_nplans));
                }
                T::T_MergeAppendState => {
                    let m = ps as *mut pg_sys::MergeAppendState;
                    stack.extend(children((*m).mergeplans, (*m).ms_nplans));
                }
                T::T_SubqueryScanState => {
                    stack.push(((*(ps as *mut pg_sys::SubqueryScanState)).subplan, none))
                }
                T::T_CustomScanState => {
                    let c = ps as *mut pg_sys::CustomScanState;
                    stack.extend(
                        pgrx::PgList::<pg_sys::PlanState>::from_pg((*c).custom_ps)
                            .iter_ptr()
                            .map(|p| (p, none)),
                    );
                }
                _ => {}
            }
            visit(ps, parent);
        }
    }
}
