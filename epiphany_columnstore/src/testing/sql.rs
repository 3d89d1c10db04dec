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

pub(crate) fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub(crate) fn one<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub(crate) fn same(a: &str, b: &str) {
    let q = format!("SELECT count(*) FROM (({a} EXCEPT ALL {b}) UNION ALL ({b} EXCEPT ALL {a})) d");
    assert_eq!(one::<i64>(&q), Some(0), "{a}  vs  {b}");
}

pub(crate) fn explain(sql: &str) -> String {
    explain_with("COSTS OFF", sql)
}

/// The value of an EXPLAIN line `label: n`.
pub(crate) fn counter(plan: &str, label: &str) -> i64 {
    plan.lines()
        .find_map(|l| l.trim().strip_prefix(label)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {label} in {plan}"))
        .parse()
        .unwrap()
}

pub(crate) const ROWS: &str = "SELECT i AS id, (i * 7919) % 1000 AS k, 'name ' || i AS name,
    CASE WHEN i % 10 = 0 THEN NULL ELSE i * 1.5 END AS price,
    date '2024-01-01' + (i % 366) AS day, i % 3 = 0 AS flag,
    jsonb_build_object('i', i) AS doc, ARRAY[i, i + 1] AS arr
    FROM generate_series(1, 5000) i";

pub(crate) fn load(table: &str, with: &str) {
    run(&format!("CREATE TABLE {table}_heap AS {ROWS}"));
    run(&format!(
        "CREATE TABLE {table} (id int, k int, name text, price numeric, day date, flag bool, doc jsonb, arr int[])
         USING epiphany_columnar {with}"
    ));
    run(&format!("INSERT INTO {table} SELECT * FROM {table}_heap"));
}
