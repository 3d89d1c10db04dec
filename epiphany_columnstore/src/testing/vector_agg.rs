//! `EpiphanyDB Vector Agg` against heap and against itself switched off: the same rows
//! and aggregate queries, exact answers compared, serial and parallel.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::testing::sql::{counter, explain, run, same};

    /// Rows with NULLs, NaN, numerics of several scales, values near the integer limits,
    /// many groups and few.
    const ROWS: &str = "SELECT i AS id, (i % 7)::int2 AS s, (i * 7919 % 1000)::int4 AS k,
        CASE WHEN i % 11 = 0 THEN NULL ELSE (i::int8 * 1000003) END AS b,
        CASE WHEN i % 13 = 0 THEN NULL WHEN i % 97 = 0 THEN 'NaN'::numeric ELSE (i * 7 % 100000) / 100.0 END AS price,
        ((i % 10) / 100.0)::numeric(15,2) AS disc,
        (i % 9)::numeric(18,0) AS q,
        date '2020-01-01' + (i % 1500) AS day,
        timestamp '2020-01-01' + (i % 5000) * interval '1 hour' AS at,
        CASE WHEN i % 17 = 0 THEN NULL ELSE chr(65 + i % 3) END AS flag,
        chr(70 + i % 2)::char(1) AS status,
        CASE WHEN i % 3 = 0 THEN 9223372036854775000 - i ELSE -9223372036854775000 + i END AS big
        FROM generate_series(1, 20000) i";

    fn load(order_by: &str) {
        run("DROP TABLE IF EXISTS va_heap, va_col");
        let columns = "(id int, s int2, k int4, b int8, price numeric(12,2), disc numeric(15,2),
               q numeric(18,0), day date, at timestamp, flag text, status char(1), big int8)";
        run(&format!("CREATE TABLE va_heap {columns}"));
        run(&format!("INSERT INTO va_heap {ROWS}"));
        run(&format!(
            "CREATE TABLE va_col {columns} USING epiphany_columnar WITH (order_by = '{order_by}', granule_rows = 1000)"
        ));
        run("INSERT INTO va_col SELECT * FROM va_heap WHERE id <= 12000");
        run("INSERT INTO va_col SELECT * FROM va_heap WHERE id > 12000");
        run("ANALYZE va_heap");
        run("ANALYZE va_col");
    }

    const QUERIES: &[&str] = &[
        "SELECT count(*) FROM {t}",
        "SELECT count(*) FROM {t} WHERE day >= date '2021-01-01' AND day < date '2022-01-01'",
        "SELECT count(*) FROM {t} WHERE flag = 'A' OR k > 990",
        "SELECT count(*), count(*) FROM {t} WHERE day IS NULL",
        "SELECT count(*), count(b), count(price), count(flag) FROM {t}",
        "SELECT sum(s), sum(k), sum(b), avg(s), avg(k), avg(b) FROM {t}",
        "SELECT sum(price), avg(price), min(price), max(price) FROM {t}",
        "SELECT sum(price), count(*) FROM {t} WHERE price < 500",
        "SELECT sum(disc), avg(disc), sum(q), avg(q), min(q), max(q) FROM {t}",
        "SELECT min(day), max(day), min(at), max(at), min(k), max(b), min(s) FROM {t}",
        "SELECT sum(big), avg(big), min(big), max(big) FROM {t}",
        "SELECT min(day), max(at), count(b), min(big), max(big), count(*) FROM {t} WHERE day >= date '2021-01-01' AND day < date '2022-01-01'",
        "SELECT max(k), min(s), count(flag), min(day) FROM {t} WHERE k > 990",
        "SELECT min(b), max(b), count(b), count(*) FROM {t} WHERE b IS NULL",
        "SELECT min(at), max(day) FROM {t} WHERE day > date '2030-01-01'",
        "SELECT count(*), sum(k), min(day) FROM {t} WHERE b < big OR k = 5",
        "SELECT flag, count(*) FROM {t} WHERE NOT (big >= b) AND b <> big GROUP BY flag",
        "SELECT flag, status, count(*), sum(disc), avg(price), sum(price * (1 - disc)), sum(price * (1 - disc) * (1 + disc)) FROM {t} GROUP BY flag, status",
        "SELECT s, sum(k * 2 + 1), avg(-k), sum(k::int8 * 3), sum(b - k) FROM {t} GROUP BY s",
        "SELECT k, count(*), max(day) FROM {t} GROUP BY k",
        "SELECT day, count(*) FROM {t} WHERE day >= date '2021-01-01' GROUP BY day",
        "SELECT flag, sum(q) / count(*) AS ratio FROM {t} GROUP BY flag HAVING count(*) > 100",
        "SELECT count(*), sum(k) FROM {t} WHERE k < 0",
        "SELECT flag, count(*) FROM {t} WHERE k < 0 GROUP BY flag",
        "SELECT status, sum(disc) FROM {t} WHERE flag IN ('A', 'B') AND day < date '2022-06-01' GROUP BY status",
        "SELECT sum(q * 1.5), sum(s::numeric), sum(k::numeric * disc) FROM {t}",
    ];

    /// Every query answers on our node as on heap and as with the node switched off, and
    /// every one of them is vectorized (the debug switch makes planning fail otherwise).
    fn check_all() {
        for q in QUERIES {
            let heap = q.replace("{t}", "va_heap");
            let col = q.replace("{t}", "va_col");
            run("SET epiphany.enable_vector_agg = on");
            run("SET epiphany.debug_require_vector_agg = on");
            let plan = explain(&col);
            assert!(plan.contains("EpiphanyDB Vector Agg"), "{col}\n{plan}");
            run("SET epiphany.debug_require_vector_agg = off");
            // `same` reads both sides in one query: the heap side has no Vector Agg.
            run("SET epiphany.enable_vector_agg = on");
            let on: Vec<String> = rows(&col);
            run("SET epiphany.enable_vector_agg = off");
            let off: Vec<String> = rows(&col);
            let expected: Vec<String> = rows(&heap);
            assert_eq!(on, expected, "{col}: vectorized vs heap");
            assert_eq!(off, expected, "{col}: not vectorized vs heap");
            run("SET epiphany.enable_vector_agg = on");
            same(&col, &heap);
        }
    }

    /// The rows of `sql` as text, sorted.
    fn rows(sql: &str) -> Vec<String> {
        let mut out: Vec<String> = Spi::connect(|c| {
            c.select(&format!("SELECT x::text FROM ({sql}) x"), None, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
                .collect()
        });
        out.sort();
        out
    }

    #[pg_test]
    fn vector_agg_answers_like_heap_serial_and_parallel() {
        run("SET max_parallel_workers_per_gather = 0");
        load("day");
        check_all();
        // Parallel plans: Finalize Agg → Gather → Vector Agg → Parallel Columnar Scan.
        run("SET max_parallel_workers_per_gather = 2");
        run("SET parallel_setup_cost = 0");
        run("SET min_parallel_table_scan_size = 0");
        let plan = explain("SELECT flag, sum(price) FROM va_col GROUP BY flag");
        assert!(
            plan.contains("Gather") && plan.contains("EpiphanyDB Vector Agg"),
            "{plan}"
        );
        check_all();
        // Another sort order: groups arrive in another order.
        run("SET max_parallel_workers_per_gather = 0");
        load("k");
        check_all();
    }

    #[pg_test]
    fn vector_agg_shows_what_it_did_and_leaves_what_it_cannot_compute() {
        run("SET max_parallel_workers_per_gather = 0");
        load("day");
        let plan = crate::testing::sql::explain_analyze(
            "SELECT flag, count(*), sum(price) FROM va_col WHERE day < date '2021-01-01' GROUP BY flag",
        );
        assert!(plan.contains("Finalize HashAggregate"), "{plan}");
        assert!(
            plan.contains("Custom Scan (EpiphanyDB Vector Agg)"),
            "{plan}"
        );
        assert!(plan.contains("Vectorized Aggregates: 2"), "{plan}");
        assert!(plan.contains("Groups: 4"), "{plan}");
        assert!(
            plan.contains("Custom Scan (EpiphanyDB Columnar Scan)"),
            "{plan}"
        );
        // count(*) from the catalog's row counts, and from granule statistics where they
        // prove every row passes.
        let all = crate::testing::sql::explain_analyze("SELECT count(*) FROM va_col");
        assert_eq!(counter(&all, "Rows from Metadata"), 20000, "{all}");
        let range = crate::testing::sql::explain_analyze(
            "SELECT count(*) FROM va_col WHERE day >= date '2021-01-01' AND day < date '2022-01-01'",
        );
        let from_metadata = counter(&range, "Rows from Metadata");
        assert!(
            from_metadata > 0 && from_metadata < counter(&range, "Rows Aggregated"),
            "{range}"
        );
        // min/max of integer, date and timestamp columns and count(col) too.
        let extremes = crate::testing::sql::explain_analyze(
            "SELECT min(day), max(at), min(k), count(b) FROM va_col",
        );
        assert_eq!(
            counter(&extremes, "Rows from Metadata"),
            20000,
            "{extremes}"
        );
        let cut = crate::testing::sql::explain_analyze(
            "SELECT max(b), min(day) FROM va_col WHERE day >= date '2021-01-01' AND day < date '2022-01-01'",
        );
        let from_metadata = counter(&cut, "Rows from Metadata");
        assert!(
            from_metadata > 0 && from_metadata < counter(&cut, "Rows Aggregated"),
            "{cut}"
        );
        // A sum is read from the data.
        let sum = crate::testing::sql::explain_analyze("SELECT sum(k), min(day) FROM va_col");
        assert_eq!(counter(&sum, "Rows from Metadata"), 0, "{sum}");
        let verbose = crate::testing::sql::explain_with(
            "VERBOSE, COSTS OFF",
            "SELECT flag, sum(price) FROM va_col GROUP BY flag",
        );
        assert!(
            verbose.contains("PARTIAL sum(va_col.price)") || verbose.contains("PARTIAL sum(price)"),
            "{verbose}"
        );
        // Not computed here: left to Postgres, and the debug switch says why.
        for (q, why) in [
            ("SELECT max(flag) FROM va_col", "aggregate"),
            (
                "SELECT sum(k) FILTER (WHERE s = 1) FROM va_col",
                "aggregate",
            ),
            ("SELECT string_agg(flag, ',') FROM va_col", "aggregate"),
            ("SELECT sum(k) FROM va_col WHERE k % 2 = 0", "quals"),
            ("SELECT sum(price / 2) FROM va_col", "aggregate"),
        ] {
            let plan = explain(q);
            assert!(!plan.contains("EpiphanyDB Vector Agg"), "{q}\n{plan}");
            // EXPLAIN VERBOSE says why on the scan.
            let verbose = crate::testing::sql::explain_with("VERBOSE, COSTS OFF", q);
            assert!(
                verbose.contains("Vector Agg: not used: ") && verbose.contains(why),
                "{q}\n{verbose}"
            );
            run("SET epiphany.debug_require_vector_agg = on");
            let err = err_of(&format!("EXPLAIN {q}"));
            run("SET epiphany.debug_require_vector_agg = off");
            let err = err.unwrap_or_else(|| panic!("{q}: the debug switch let it through"));
            assert!(
                err.starts_with("0A000: an aggregate over a columnar scan was not vectorized")
                    && err.contains(why),
                "{q}: {err}"
            );
        }
    }

    /// The node never spills: more groups than work_mem holds stay PostgreSQL's.
    #[pg_test]
    fn vector_agg_leaves_more_groups_than_work_mem_holds_to_postgres() {
        run("SET max_parallel_workers_per_gather = 0");
        load("day");
        let q = "SELECT k, count(*) FROM va_col GROUP BY k";
        assert!(
            explain(q).contains("EpiphanyDB Vector Agg"),
            "{}",
            explain(q)
        );
        run("SET work_mem = '64kB'");
        let verbose = crate::testing::sql::explain_with("VERBOSE, COSTS OFF", q);
        assert!(
            verbose.contains("Vector Agg: not used: more groups than work_mem holds"),
            "{verbose}"
        );
        same(q, "SELECT k, count(*) FROM va_heap GROUP BY k");
        run("RESET work_mem");
    }

    #[pg_test]
    fn vector_agg_overflows_as_heap_does() {
        run("SET max_parallel_workers_per_gather = 0");
        load("day");
        run("SET epiphany.debug_require_vector_agg = on");
        for q in [
            "SELECT sum(k + 2147483000) FROM {t}",
            "SELECT s, sum(s * 10000::int2) FROM {t} GROUP BY s",
            "SELECT sum(big * 2) FROM {t}",
        ] {
            let heap = err_of(&q.replace("{t}", "va_heap"));
            let col = err_of(&q.replace("{t}", "va_col"));
            assert!(heap.is_some(), "{q}: heap did not fail");
            assert_eq!(heap, col, "{q}");
        }
    }

    /// The SQLSTATE and message of the error `sql` raises (in a subtransaction), if any.
    fn err_of(sql: &str) -> Option<String> {
        run(
            "CREATE OR REPLACE FUNCTION pg_temp.err_of(q text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE q; RETURN NULL;
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $f$",
        );
        crate::testing::sql::one::<String>(&format!("SELECT pg_temp.err_of($q${sql}$q$)"))
    }
}
