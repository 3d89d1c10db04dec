//! Which columns of a fetched row a scan must decode.
//!
//! A columnar slot decodes a fetched row's columns when they are read (`slot`); a scan
//! node that names which it reads spares the rest. This is decided once per query, after
//! ExecutorStart, from the plan: what the scan's own expressions read, and, when the scan
//! hands its slot up unprojected, what the join above reads of it (or, under other nodes,
//! what the query names of the table).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use pgrx::pg_sys;

use crate::convert::slot::{is_columnar, set_needed};

/// After a query's executor state is built: the index and bitmap heap scans of columnar
/// tables decode only the columns they read. A scan node reads its slot through its
/// quals (and index recheck and reorder expressions) and its target list; when it
/// projects, nothing above it sees the slot, so a fetched row's other columns need not
/// be decoded at all — for `SELECT sum(b) FROM t WHERE …` through an index, one column,
/// not every column up to `b`. A node that does not project hands its slot up as it is
/// (its target list is the table's columns, and a join above deforms every column up to
/// the last it needs). Under a join, what the join's expressions read of that side (its
/// target list, quals, join, merge and hash clauses, nested-loop parameters) is known,
/// and so is what an aggregate reads (its target list, HAVING, grouping columns); a
/// bitmap heap scan on PostgreSQL 18 decodes its index conditions' columns only for
/// rows to recheck. Under any other node, nodes above can only read columns the query names, which the
/// parser recorded in the table's `selectedCols` for the permission check (whole-row
/// references included). Policies' quals run in the scan node itself. Without a
/// permission entry (a partition or inheritance child on PostgreSQL 16+) every column
/// stays.
///
/// # Safety
/// `query` has just been through ExecutorStart; main thread.
pub unsafe fn read_only_needed_columns(query: *mut pg_sys::QueryDesc) {
    // SAFETY: per the contract.
    unsafe {
        epiphany_core::pg::plan_states::walk(query, |ps, parent| {
            if matches!(
                (*ps).type_,
                pg_sys::NodeTag::T_IndexScanState | pg_sys::NodeTag::T_BitmapHeapScanState
            ) {
                mark_scan(ps, parent);
            }
        })
    }
}

/// # Safety
/// `ps` is an initialized IndexScanState or BitmapHeapScanState, `parent` the node it
/// returns its rows to (null if not known).
unsafe fn mark_scan(ps: *mut pg_sys::PlanState, parent: *mut pg_sys::PlanState) {
    // SAFETY: per the contract.
    unsafe {
        let ss = ps as *mut pg_sys::ScanState;
        let slot = (*ss).ss_ScanTupleSlot;
        if slot.is_null() || !is_columnar(slot) {
            return;
        }
        let plan = (*ps).plan;
        let scanrelid = (*(plan as *mut pg_sys::Scan)).scanrelid;
        let old = pg_sys::MemoryContextSwitchTo((*slot).tts_mcxt);
        let mut needed: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        if (*ps).ps_ProjInfo.is_null() && !parent_reads(parent, ps, scanrelid, &mut needed) {
            // The slot goes up as it is: what the query reads of the table.
            let selected = selected_columns((*ps).state, scanrelid);
            if selected.is_null() {
                pg_sys::MemoryContextSwitchTo(old);
                return;
            }
            needed = pg_sys::bms_copy(selected);
        }
        let mut add =
            |list: *mut pg_sys::List| pg_sys::pull_varattnos(list as _, scanrelid, &mut needed);
        if !(*ps).ps_ProjInfo.is_null() {
            add((*plan).targetlist);
        }
        add((*plan).qual);
        if (*ps).type_ == pg_sys::NodeTag::T_IndexScanState {
            let scan = plan as *mut pg_sys::IndexScan;
            // The index conditions are evaluated on the row only when the index asks for
            // a recheck, which a B-tree never does (an EvalPlanQual recheck reads its own
            // slot, not this one): a join through a B-tree does not decode its key.
            let index = (*(ps as *mut pg_sys::IndexScanState)).iss_RelationDesc;
            if index.is_null() || (*(*index).rd_rel).relam != pg_sys::BTREE_AM_OID {
                add((*scan).indexqualorig);
            }
            add((*scan).indexorderbyorig);
        }
        // A bitmap heap scan evaluates its original index conditions only on rows the
        // bitmap asks to recheck (lossy pages, or an index that cannot be exact). On
        // PostgreSQL 18 the access method returns the rows with their recheck flag, so
        // only those rows need the conditions' columns; before, the slot must always
        // carry them (it cannot tell which rows the executor will recheck).
        let mut recheck = std::ptr::null_mut();
        if (*ps).type_ == pg_sys::NodeTag::T_BitmapHeapScanState {
            let quals = (*(plan as *mut pg_sys::BitmapHeapScan)).bitmapqualorig;
            if cfg!(feature = "pg18") {
                recheck = pg_sys::bms_copy(needed);
                pg_sys::pull_varattnos(quals as _, scanrelid, &mut recheck);
                recheck = non_empty(recheck);
            } else {
                add(quals);
            }
        }
        let needed = non_empty(needed);
        pg_sys::MemoryContextSwitchTo(old);
        // A whole-row reference reads every column (a null set).
        let whole_row =
            |set| pg_sys::bms_is_member(-pg_sys::FirstLowInvalidHeapAttributeNumber, set);
        if whole_row(needed) {
            return;
        }
        if whole_row(recheck) {
            recheck = std::ptr::null_mut();
        }
        set_needed(slot, needed, recheck);
    }
}

/// An empty set is a real answer (count(*) reads no column): kept non-null, as the set
/// of no column but the (never decoded) attribute 0.
///
/// # Safety
/// In the memory context `set` lives in.
unsafe fn non_empty(set: *mut pg_sys::Bitmapset) -> *mut pg_sys::Bitmapset {
    if set.is_null() {
        // SAFETY: per the contract.
        unsafe { pg_sys::bms_make_singleton(0) }
    } else {
        set
    }
}

/// Adds to `needed` the columns of `child`'s relation `scanrelid` that `parent`, a join
/// or an aggregate, reads of the unprojected rows `child` hands it; false when `parent`
/// is not a node whose reads are known (nothing added then).
///
/// # Safety
/// `child` is an initialized scan node that does not project, `parent` null or the node
/// above it; in a memory context that lives as long as `needed`.
unsafe fn parent_reads(
    parent: *mut pg_sys::PlanState,
    child: *mut pg_sys::PlanState,
    scanrelid: pg_sys::Index,
    needed: &mut *mut pg_sys::Bitmapset,
) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if parent.is_null() {
            return false;
        }
        // A join's (or aggregate's) expressions read its children's slots as OUTER_VAR /
        // INNER_VAR, by position in the child's target list.
        let side = if (*parent).lefttree == child {
            pg_sys::OUTER_VAR
        } else if (*parent).righttree == child {
            pg_sys::INNER_VAR
        } else {
            return false;
        };
        let plan = (*parent).plan;
        let mut refs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        let mut add = |node: *mut pg_sys::List| {
            pg_sys::pull_varattnos(node as _, side as pg_sys::Index, &mut refs)
        };
        add((*plan).targetlist);
        add((*plan).qual);
        use pg_sys::NodeTag as T;
        match (*parent).type_ {
            T::T_NestLoopState => {
                let j = plan as *mut pg_sys::NestLoop;
                add((*j).join.joinqual);
                // Parameters for the inner side, taken from the outer row.
                for p in pgrx::PgList::<pg_sys::NestLoopParam>::from_pg((*j).nestParams).iter_ptr()
                {
                    pg_sys::pull_varattnos((*p).paramval as _, side as pg_sys::Index, &mut refs);
                }
            }
            T::T_MergeJoinState => {
                let j = plan as *mut pg_sys::MergeJoin;
                add((*j).join.joinqual);
                add((*j).mergeclauses);
            }
            T::T_HashJoinState => {
                let j = plan as *mut pg_sys::HashJoin;
                add((*j).join.joinqual);
                add((*j).hashclauses);
                add((*j).hashkeys);
            }
            // An aggregate reads its input through its target list and HAVING (the
            // aggregates' arguments, filters and orderings are in them) and groups by
            // input columns named by position. Grouping sets in more than one phase
            // (`chain`) read in ways not followed here.
            T::T_AggState => {
                let a = plan as *mut pg_sys::Agg;
                if !(*a).chain.is_null() || side != pg_sys::OUTER_VAR {
                    return false;
                }
                for i in 0..(*a).numCols.max(0) as usize {
                    let position = i32::from(*(*a).grpColIdx.add(i));
                    refs = pg_sys::bms_add_member(
                        refs,
                        position - pg_sys::FirstLowInvalidHeapAttributeNumber,
                    );
                }
            }
            _ => return false,
        }
        let entries = pgrx::PgList::<pg_sys::TargetEntry>::from_pg((*(*child).plan).targetlist);
        let mut m = -1;
        loop {
            m = pg_sys::bms_next_member(refs, m);
            if m < 0 {
                return true;
            }
            let position = m + pg_sys::FirstLowInvalidHeapAttributeNumber;
            let Some(entry) = usize::try_from(position - 1)
                .ok()
                .and_then(|i| entries.get_ptr(i))
            else {
                // A whole-row reference to the child, or a position it does not have.
                *needed = std::ptr::null_mut();
                return false;
            };
            pg_sys::pull_varattnos((*entry).expr as _, scanrelid, needed);
        }
    }
}

/// The columns the query reads of range table entry `rti` (offset by
/// `FirstLowInvalidHeapAttributeNumber`, as `pull_varattnos` gives them), or null when it
/// has no permission entry to say.
///
/// # Safety
/// `estate` is an initialized executor state, `rti` one of its range table indexes.
unsafe fn selected_columns(
    estate: *mut pg_sys::EState,
    rti: pg_sys::Index,
) -> *mut pg_sys::Bitmapset {
    // SAFETY: per the contract.
    unsafe {
        let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*estate).es_range_table);
        let Some(rte) = rtable.get_ptr(rti as usize - 1) else {
            return std::ptr::null_mut();
        };
        #[cfg(feature = "pg15")]
        {
            if (*rte).requiredPerms == 0 {
                return std::ptr::null_mut();
            }
            (*rte).selectedCols
        }
        #[cfg(not(feature = "pg15"))]
        {
            let index = (*rte).perminfoindex as usize;
            if index == 0 {
                return std::ptr::null_mut();
            }
            let infos =
                pgrx::PgList::<pg_sys::RTEPermissionInfo>::from_pg((*estate).es_rteperminfos);
            match infos.get_ptr(index - 1) {
                Some(info) if (*info).requiredPerms != 0 => (*info).selectedCols,
                _ => std::ptr::null_mut(),
            }
        }
    }
}
