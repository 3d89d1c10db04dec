//! The Vector Agg node at run time: drains its columnar scan's batches into the core's
//! aggregator, then returns one row per group — the keys, and each aggregate's partial
//! state as the Finalize Aggregate above expects it (Postgres's serialized formats).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::agg::serial;
use epiphany_core::columnar::agg::{decimal_string, AggFn, Aggregator, Kind, Partial};
use epiphany_core::columnar::numeric;
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::owned::ContextOwned;
use epiphany_core::pg::OrReportIn;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use super::translate::{self, Scan};
use super::EXEC_METHODS;
use crate::convert::datum::{self, ColumnInfo};
use crate::convert::table::TableInfo;

/// What one output column holds.
#[derive(Clone, Copy)]
enum Output {
    /// GROUP BY key number `k` (its column's conversion).
    Key(usize, ColumnInfo),
    /// Aggregate number `a`'s partial state.
    State(usize),
}

struct Run {
    agg: Aggregator,
    outputs: Vec<Output>,
    /// The table columns of the scan's batches, in order.
    read: Vec<usize>,
    drained: bool,
    next_group: usize,
    batches: u64,
    rows: u64,
    /// Rows `count(*)` took from part and granule metadata without decoding.
    from_metadata: u64,
}

#[repr(C)]
struct VectorAgg {
    css: pg_sys::CustomScanState,
    run: ContextOwned<Run>,
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn create_state(
    _cscan: *mut pg_sys::CustomScan,
) -> *mut pg_sys::Node {
    // SAFETY: our node type begins with its CustomScanState.
    unsafe { crate::custom_scan::new_state::<VectorAgg>(&EXEC_METHODS.0) }
}

unsafe fn child(node: *mut pg_sys::CustomScanState) -> *mut pg_sys::CustomScanState {
    // SAFETY: begin set custom_ps to the one child.
    unsafe { pg_sys::list_nth((*node).custom_ps, 0) as *mut pg_sys::CustomScanState }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn begin(
    node: *mut pg_sys::CustomScanState,
    estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: our plan (made by `plan.rs`): one columnar scan in custom_plans, keys in
    // custom_private, outputs in custom_scan_tlist.
    unsafe {
        let me = node as *mut VectorAgg;
        let plan = (*node).ss.ps.plan as *mut pg_sys::CustomScan;
        let child_plan = pg_sys::list_nth((*plan).custom_plans, 0) as *mut pg_sys::Plan;
        let child = pg_sys::ExecInitNode(child_plan, estate, eflags);
        (*node).custom_ps = pg_sys::lappend(std::ptr::null_mut(), child.cast());
        let rel = Rel::new((*(child as *mut pg_sys::ScanState)).ss_currentRelation);
        let info = TableInfo::load(rel).or_report_in(rel);
        let scan = Scan {
            info: &info,
            scanrelid: (*(child_plan as *mut pg_sys::Scan)).scanrelid,
        };
        let broken = |what: &str| -> ! {
            Error::Internal(format!(
                "the Vector Agg plan cannot be executed: {what} (the table changed?)"
            ))
            .report()
        };
        let key_nodes: Vec<*mut pg_sys::Node> =
            PgList::from_pg((*plan).custom_private).iter_ptr().collect();
        let mut keys = Vec::new();
        for &k in &key_nodes {
            keys.push(translate::key(k, &scan).unwrap_or_else(|| broken("a key")));
        }
        let mut specs = Vec::new();
        let mut outputs = Vec::new();
        for t in PgList::<pg_sys::TargetEntry>::from_pg((*plan).custom_scan_tlist).iter_ptr() {
            let e = (*t).expr as *mut pg_sys::Node;
            if (*e).type_ == pg_sys::NodeTag::T_Aggref {
                let spec =
                    translate::aggref(e.cast(), &scan).unwrap_or_else(|| broken("an aggregate"));
                check_state_type(spec.func, pg_sys::exprType(e))
                    .unwrap_or_else(|| broken("a state type"));
                outputs.push(Output::State(specs.len()));
                specs.push(spec);
            } else {
                let k = key_nodes
                    .iter()
                    .position(|&k| pg_sys::equal(k.cast(), e.cast()))
                    .unwrap_or_else(|| broken("an output key"));
                outputs.push(Output::Key(k, info.columns[keys[k].0]));
            }
        }
        let agg = Aggregator::new(keys, specs).or_report_in(rel);
        let read = crate::custom_scan::batch_columns(child.cast());
        crate::custom_scan::keep_coded(child.cast(), agg.key_columns());
        (*me).run = ContextOwned::new(Run {
            agg,
            outputs,
            read,
            drained: false,
            next_group: 0,
            batches: 0,
            rows: 0,
            from_metadata: 0,
        });
    }
}

/// Whether Postgres's partial state type of `func` is what we emit.
fn check_state_type(func: AggFn, typ: pg_sys::Oid) -> Option<()> {
    let want = match func {
        AggFn::CountStar | AggFn::Count | AggFn::SumInt => Some(pg_sys::INT8OID),
        AggFn::AvgInt => Some(pg_sys::INT8ARRAYOID),
        AggFn::SumInt8 | AggFn::SumNumeric => Some(pg_sys::BYTEAOID),
        AggFn::Min | AggFn::Max => None,
    };
    want.is_none_or(|w| w == typ).then_some(())
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn exec(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: ExecScan drives our access callback, then the projection.
    unsafe { pg_sys::ExecScan(&mut (*node).ss, Some(next), Some(recheck)) }
}

#[pg_guard]
unsafe extern "C-unwind" fn recheck(
    _ss: *mut pg_sys::ScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn next(ss: *mut pg_sys::ScanState) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: `ss` is our node's ScanState; the slot is the scan slot of our
    // custom_scan_tlist; datums are made in the per-tuple context, reset before each call.
    unsafe {
        let node = ss as *mut pg_sys::CustomScanState;
        let me = node as *mut VectorAgg;
        let child = child(node);
        let rel = Rel::new((*(child as *mut pg_sys::ScanState)).ss_currentRelation);
        let run = (*me).run.get().expect("a Vector Agg read after its end");
        if !run.drained && run.agg.counts_rows_only() {
            while let Some((rows, from_metadata)) = crate::custom_scan::next_count(child) {
                run.agg.add_rows(rows);
                run.rows += rows;
                run.from_metadata += from_metadata;
                pg_sys::check_for_interrupts!();
            }
            run.drained = true;
        }
        if !run.drained && run.agg.answers_from_stats() {
            while let Some((rows, from_metadata)) =
                crate::custom_scan::next_aggregated(child, &mut run.agg)
            {
                run.rows += rows;
                run.from_metadata += from_metadata;
                pg_sys::check_for_interrupts!();
            }
            run.drained = true;
        }
        if !run.drained {
            while let Some(batch) = crate::custom_scan::next_batch(child) {
                run.batches += 1;
                run.rows += batch.num_rows() as u64;
                let read = &run.read;
                run.agg
                    .push(&batch, &|c| read.iter().position(|&r| r == c))
                    .or_report_in(rel);
                pg_sys::check_for_interrupts!();
            }
            run.drained = true;
        }
        let slot = (*ss).ss_ScanTupleSlot;
        pg_sys::ExecClearTuple(slot);
        if run.next_group >= run.agg.len() {
            return slot;
        }
        let g = run.next_group;
        run.next_group += 1;
        let econtext = (*ss).ps.ps_ExprContext;
        let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
        let key = run.agg.key(g).or_report_in(rel);
        for (i, out) in run.outputs.iter().enumerate() {
            let d = match *out {
                Output::Key(k, info) => datum::to_datum(&info, &key[k]),
                Output::State(a) => state_datum(&run.agg.partial(g, a)),
            };
            *(*slot).tts_values.add(i) = d.unwrap_or(pg_sys::Datum::from(0usize));
            *(*slot).tts_isnull.add(i) = d.is_none();
        }
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::ExecStoreVirtualTuple(slot);
        slot
    }
}

/// A partial state as the datum of Postgres's partial aggregate (palloc'd).
///
/// # Safety
/// Main thread, in the memory context the datum should live in.
unsafe fn state_datum(p: &Partial) -> Option<pg_sys::Datum> {
    let word = |w: i64| Some(pg_sys::Datum::from(w as usize));
    // SAFETY: palloc and Postgres's array and numeric constructors on the main thread.
    unsafe {
        match *p {
            Partial::Int8(v) => v.and_then(word),
            Partial::IntAvg { count, sum } => {
                let mut elems = [
                    pg_sys::Datum::from(count as usize),
                    pg_sys::Datum::from(sum as usize),
                ];
                let array = pg_sys::construct_array(
                    elems.as_mut_ptr(),
                    2,
                    pg_sys::INT8OID,
                    8,
                    true,
                    pg_sys::TYPALIGN_DOUBLE as std::ffi::c_char,
                );
                Some(pg_sys::Datum::from(array))
            }
            Partial::Poly { n, sum } => {
                (n > 0).then(|| datum::varlena_datum(&serial::poly_state(n, sum)))
            }
            Partial::Numeric { n, nan, sum, scale } => (n > 0 || nan > 0)
                .then(|| datum::varlena_datum(&serial::numeric_state(n, nan, sum, scale))),
            Partial::Scalar { value, kind } => {
                let v = value?;
                match kind {
                    Kind::Numeric { scale } => Some(numeric_datum(v, scale)),
                    _ => word(v as i64),
                }
            }
        }
    }
}

#[allow(improper_ctypes)]
unsafe extern "C-unwind" {
    /// Postgres's `numeric` input function (fmgr's calling convention).
    fn numeric_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// The numeric `v / 10^scale` (`NAN128`: NaN).
unsafe fn numeric_datum(v: i128, scale: u16) -> pg_sys::Datum {
    // SAFETY: palloc and numeric_in on the main thread.
    unsafe {
        if v == epiphany_core::columnar::agg::expr::NAN128 {
            return datum::numeric_datum(numeric::NAN, scale);
        }
        if v.unsigned_abs() < 1_000_000_000_000_000_000 {
            return datum::numeric_datum(v as i64, scale);
        }
        let text = std::ffi::CString::new(decimal_string(arrow_buffer::i256::from_i128(v), scale))
            .expect("digits hold no NUL");
        pg_sys::DirectFunctionCall3Coll(
            Some(numeric_in),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(text.as_ptr()),
            pg_sys::Datum::from(pg_sys::InvalidOid),
            pg_sys::Datum::from(-1i32 as isize as usize),
        )
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn end(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node; the child was begun by begin.
    unsafe {
        pg_sys::ExecEndNode(child(node).cast());
        (*(node as *mut VectorAgg)).run.drop_now();
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node and its child.
    unsafe {
        pg_sys::ExecReScan(child(node).cast());
        if let Some(run) = (*(node as *mut VectorAgg)).run.get() {
            run.agg.reset();
            run.drained = false;
            run.next_group = 0;
        }
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn explain(
    node: *mut pg_sys::CustomScanState,
    _ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: our node, begun.
    unsafe {
        let Some(run) = (*(node as *mut VectorAgg)).run.get() else {
            return;
        };
        let keys = PgList::<pg_sys::Node>::from_pg(
            (*((*node).ss.ps.plan as *mut pg_sys::CustomScan)).custom_private,
        )
        .len();
        let aggs = run
            .outputs
            .iter()
            .filter(|o| matches!(o, Output::State(_)))
            .count();
        pg_sys::ExplainPropertyInteger(
            c"Vectorized Aggregates".as_ptr(),
            std::ptr::null(),
            aggs as i64,
            es,
        );
        pg_sys::ExplainPropertyInteger(c"Group Keys".as_ptr(), std::ptr::null(), keys as i64, es);
        if (*es).analyze {
            for (label, value) in [
                (c"Batches", run.batches),
                (c"Rows Aggregated", run.rows),
                (c"Groups", run.agg.len() as u64),
                (c"Rows from Metadata", run.from_metadata),
            ] {
                pg_sys::ExplainPropertyInteger(label.as_ptr(), std::ptr::null(), value as i64, es);
            }
        }
    }
}
