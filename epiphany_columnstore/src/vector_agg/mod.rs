//! `EpiphanyDB Vector Agg`: aggregation over a columnar scan's Arrow batches instead of
//! its rows. After Postgres has planned a query, a pass over the finished plan
//! (`plan.rs`) replaces each partial `Agg` that reads our columnar scan with this node,
//! and turns a plain `Agg` into a Finalize `Agg` over it: the node emits partial states
//! in Postgres's own formats, so Postgres's Finalize Aggregate, Gather, HAVING and
//! ORDER BY stay as they are, and parallel plans work unchanged. Anything it cannot
//! compute exactly leaves the plan as Postgres made it; with
//! `epiphany.debug_require_vector_agg` that is an error saying why (for tests).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::ffi::CStr;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

mod exec;
mod plan;
mod translate;

pub(crate) use plan::children;

pub static ENABLE: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static REQUIRE: GucSetting<bool> = GucSetting::<bool>::new(false);

const NAME: &CStr = c"EpiphanyDB Vector Agg";

struct Methods<T>(T);
// SAFETY: the method tables are immutable after initialization and only read by the
// backend's main thread.
unsafe impl<T> Sync for Methods<T> {}

static SCAN_METHODS: Methods<pg_sys::CustomScanMethods> = Methods(pg_sys::CustomScanMethods {
    CustomName: NAME.as_ptr(),
    CreateCustomScanState: Some(exec::create_state),
});

static EXEC_METHODS: Methods<pg_sys::CustomExecMethods> = Methods(pg_sys::CustomExecMethods {
    CustomName: NAME.as_ptr(),
    BeginCustomScan: Some(exec::begin),
    ExecCustomScan: Some(exec::exec),
    EndCustomScan: Some(exec::end),
    ReScanCustomScan: Some(exec::rescan),
    MarkPosCustomScan: None,
    RestrPosCustomScan: None,
    EstimateDSMCustomScan: None,
    InitializeDSMCustomScan: None,
    ReInitializeDSMCustomScan: None,
    InitializeWorkerCustomScan: None,
    ShutdownCustomScan: None,
    ExplainCustomScan: Some(exec::explain),
});

static mut PREVIOUS: pg_sys::planner_hook_type = None;

pub fn init() {
    GucRegistry::define_bool_guc(
        c"epiphany.enable_vector_agg",
        c"Computes aggregates over columnar scans on column batches (EpiphanyDB Vector Agg).",
        c"count, sum, avg, min and max of integer, numeric, date and timestamp columns and of +, -, * over them, grouped by columns; PostgreSQL's Finalize Aggregate combines the node's partial states.",
        &ENABLE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"epiphany.debug_require_vector_agg",
        c"Makes planning fail when an aggregate over a columnar scan is not vectorized (for tests).",
        c"The error says why the aggregate was left to PostgreSQL.",
        &REQUIRE,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: _PG_init on the main thread; the previous hook is chained, and the node's
    // methods are registered so parallel workers and plan copies find them by name.
    unsafe {
        PREVIOUS = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        pg_sys::RegisterCustomScanMethods(&SCAN_METHODS.0);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query: *const std::ffi::c_char,
    cursor_options: i32,
    params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the planner's arguments; this frame holds nothing to drop across the call
    // (see `epiphany_core::pg::hooks`), and the post-pass runs in a scope of its own.
    unsafe {
        let stmt =
            epiphany_core::pg::hooks::planner(PREVIOUS, parse, query, cursor_options, params);
        // Both post-passes of finished plans live behind this one hook.
        crate::custom_scan::top_n::rewrite_statement(stmt);
        if ENABLE.get() {
            plan::rewrite_statement(stmt);
        }
        stmt
    }
}
