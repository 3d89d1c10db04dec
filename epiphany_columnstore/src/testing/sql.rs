//! SQL helpers the `#[pg_test]` modules share.

use pgrx::prelude::*;

/// The lines of `EXPLAIN (options) sql`, joined.
pub fn explain_with(options: &str, sql: &str) -> String {
    Spi::connect(|c| {
        c.select(&format!("EXPLAIN ({options}) {sql}"), None, &[])
            .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"))
            .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `EXPLAIN ANALYZE` of `sql` without timings or costs.
pub fn explain_analyze(sql: &str) -> String {
    explain_with("ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF", sql)
}
