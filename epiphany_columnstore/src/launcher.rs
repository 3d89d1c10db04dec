//! The columnstore maintenance launcher.
//!
//! A background worker the postmaster starts when `epiphany_columnstore` is listed in
//! `shared_preload_libraries`. It is the process background merges are scheduled from
//! (they arrive with the merge issue); today it holds its slot, reloads the configuration
//! on SIGHUP, stops on SIGTERM and shows up in `pg_stat_activity` under
//! [`COLUMNSTORE_LAUNCHER`], which is how `epiphany.status()` knows it runs. It starts
//! only once recovery has finished, because everything it will do writes.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::time::Duration;

use epiphany_core::component::COLUMNSTORE_LAUNCHER;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;

/// How long the launcher sleeps between looks at its latch when nothing wakes it.
const NAP: Duration = Duration::from_secs(60);

/// Registers the launcher; a no-op unless the library is being preloaded.
pub fn register() {
    // SAFETY: a plain bool the postmaster sets around loading shared_preload_libraries;
    // _PG_init runs on the main thread, so nothing writes it while we read.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    BackgroundWorkerBuilder::new("epiphany_columnstore launcher")
        .set_type(COLUMNSTORE_LAUNCHER)
        .set_library("epiphany_columnstore")
        .set_function("epiphany_columnstore_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn epiphany_columnstore_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // Like the autovacuum launcher: connected to no database (it will read only shared
    // catalogs such as pg_database), which also gives it a row in pg_stat_activity.
    BackgroundWorker::connect_worker_to_spi(None, None);
    log!("{COLUMNSTORE_LAUNCHER} started");
    while BackgroundWorker::wait_latch(Some(NAP)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: called from the worker's main thread, outside any transaction, as
            // the server's own processes do when they see SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    log!("{COLUMNSTORE_LAUNCHER} shutting down");
}
