//! Encoding buffered rows into parts, on a helper thread while a load goes on.
//!
//! The thread works on shared clones of sealed batches and calls no Postgres function;
//! its parts are written by the backend (see the parent module) only if those very
//! batches are still pending when it collects them. A job whose rows are rolled back or
//! discarded is cancelled and joined, never left running.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use epiphany_core::columnar::flush::{encode_runs, SnapshotCommands};
use epiphany_core::columnar::write_set::Batch;
use epiphany_core::Error;
use pgrx::pg_sys;

/// A part encoding running on a helper thread. It works on shared clones of sealed
/// batches that stay pending in the write set; its result is used only if those very
/// batches are still there when it is collected, so correctness never depends on it.
pub(super) struct Job {
    pub(super) relid: pg_sys::Oid,
    pub(super) level: pg_sys::SubTransactionId,
    pub(super) batches: Vec<Batch>,
    pub(super) bytes: usize,
    pub(super) handle: std::thread::JoinHandle<Result<Vec<Encoded>, Error>>,
    /// Set to make the thread stop at the next part it would encode.
    pub(super) cancel: Arc<AtomicBool>,
}

impl Job {
    /// Stops the thread and waits for it: a job whose rows are discarded or rolled back
    /// must not go on using a core and memory after its transaction ends.
    pub(super) fn cancel(self) {
        self.cancel.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// Encoder threads running in this process, and started so far (tests check none
/// outlives its job).
static ENCODERS: AtomicUsize = AtomicUsize::new(0);
static ENCODERS_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Encoder threads running now, and started so far.
#[cfg(any(test, feature = "pg_test"))]
pub fn encoders() -> (usize, usize) {
    (
        ENCODERS.load(Ordering::SeqCst),
        ENCODERS_STARTED.load(Ordering::SeqCst),
    )
}

pub(super) struct Running;

impl Running {
    pub(super) fn start() -> Running {
        ENCODERS.fetch_add(1, Ordering::SeqCst);
        ENCODERS_STARTED.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        ENCODERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One part ready to be written.
pub(super) use epiphany_core::columnar::flush::EncodedRun as Encoded;

/// Encodes sealed batches into parts (`epiphany_core::columnar::flush::encode_runs`):
/// pure Rust, runs on any thread.
#[allow(clippy::too_many_arguments)]
pub(super) fn encode(
    schema: &epiphany_core::columnar::TableSchema,
    buffered: &epiphany_core::columnar::TableSchema,
    sort_key: &[usize],
    options: &epiphany_core::columnar::TableOptions,
    batches: &[Batch],
    snapshots: Option<&SnapshotCommands>,
    parallel: bool,
    cancel: Option<&AtomicBool>,
) -> Result<Vec<Encoded>, Error> {
    let batches = batches
        .iter()
        .map(|b| b.to_batch(buffered))
        .collect::<Result<Vec<_>, Error>>()?;
    encode_runs(
        schema, sort_key, options, &batches, snapshots, parallel, cancel,
    )
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// A cancelled job's thread is stopped and joined before `cancel` returns (a job
    /// whose transaction aborted used to be detached and run on).
    #[pgrx::pg_test]
    fn a_cancelled_encoder_job_is_joined() {
        let cancel = Arc::new(AtomicBool::new(false));
        let seen = cancel.clone();
        let (running_before, _) = encoders();
        let running = Running::start();
        let handle = std::thread::spawn(move || {
            let _running = running;
            while !seen.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(Error::Internal("cancelled".into()))
        });
        let job = Job {
            relid: pg_sys::InvalidOid,
            level: 0,
            batches: Vec::new(),
            bytes: 0,
            handle,
            cancel,
        };
        assert_eq!(encoders().0, running_before + 1);
        job.cancel();
        assert_eq!(encoders().0, running_before);
    }
}
