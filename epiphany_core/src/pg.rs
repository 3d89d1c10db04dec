//! Glue between this crate's [`Error`] and Postgres error reporting (feature `pg`).
//!
//! This is the one place an [`Error`] becomes an `ereport(ERROR)`: extension crates call
//! [`report`] or [`OrReport::or_report`] at their SQL boundary and nowhere else.

#![allow(unsafe_code)] // the glue: each block carries its SAFETY line

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;

use crate::error::Error;

pub mod buffer;
pub mod hooks;
pub mod owned;
pub mod page;
pub mod page_store;
pub mod plan_states;
pub mod serializable;
pub mod testing;

/// Panics unless called on the thread Postgres runs on (the backend's main thread).
/// Every `pg_sys` function call checks this already (pgrx guards each one); safe
/// functions that reach Postgres's state some other way — its globals, memory it owns,
/// or a cache keyed by its objects — call it first.
#[inline]
pub fn assert_main_thread() {
    pgrx::pg_sys::submodules::thread_check::check_active_thread();
}

/// Raises `err` as an ERROR with its SQLSTATE; never returns.
pub fn report(err: &Error) -> ! {
    let code = PgSqlErrorCode::from(err.sqlstate().encoded());
    ErrorReport::new(code, err.to_string(), "epiphany").report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

impl Error {
    /// Raises this error as an ERROR with its SQLSTATE; never returns.
    pub fn report(&self) -> ! {
        report(self)
    }
}

/// `result.or_report()`: the value, or the error raised as an ERROR.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for Result<T, Error> {
    fn or_report(self) -> T {
        self.unwrap_or_else(|err| report(&err))
    }
}

/// As [`OrReport`], for errors met while working on relation `rel`: corruption and
/// internal errors name it (see [`Error::in_table`]).
pub trait OrReportIn<T> {
    fn or_report_in(self, rel: buffer::Rel<'_>) -> T;
}

impl<T> OrReportIn<T> for Result<T, Error> {
    fn or_report_in(self, rel: buffer::Rel<'_>) -> T {
        self.unwrap_or_else(|err| {
            let name = rel.name();
            report(&err.in_table(&name))
        })
    }
}
