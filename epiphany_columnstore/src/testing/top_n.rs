//! Top-N scans (`custom_scan::top_n`) against heap and against themselves switched off:
//! `ORDER BY … LIMIT` over overlapping parts, NULLs first and last, both directions,
//! offsets, ties, vectorized quals, serial and parallel plans.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::testing::sql::{explain, explain_analyze, run};

    fn load() {
        run("DROP TABLE IF EXISTS tn_heap, tn_col");
        let columns = "(id int, k int4, d date, at timestamptz, s int2)";
        run(&format!("CREATE TABLE tn_heap {columns}"));
        run("INSERT INTO tn_heap SELECT i,
                CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 7919) % 5000 END,
                CASE WHEN i % 17 = 0 THEN NULL ELSE date '2020-01-01' + (i % 3000) END,
                timestamptz '2020-01-01 00:00+00' + (i * 37 % 20000) * interval '1 minute',
                (i % 50)::int2
             FROM generate_series(1, 20000) i");
        run(&format!(
            "CREATE TABLE tn_col {columns} USING epiphany_columnar WITH (order_by = 'd', granule_rows = 100)"
        ));
        // Rows of every range in each insert (parts, where the inserts make several).
        run("INSERT INTO tn_col SELECT * FROM tn_heap WHERE id % 3 = 0");
        run("INSERT INTO tn_col SELECT * FROM tn_heap WHERE id % 3 = 1");
        run("INSERT INTO tn_col SELECT * FROM tn_heap WHERE id % 3 = 2");
        run("ANALYZE tn_heap");
        run("ANALYZE tn_col");
    }

    /// The rows of `sql` as text, in its order.
    fn rows(sql: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(&format!("SELECT x::text FROM ({sql}) x"), None, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
                .collect()
        })
    }

    /// Deterministic answers only: ordered by a unique tail (`id`), or returning only
    /// the sort key.
    const QUERIES: &[&str] = &[
        "SELECT d FROM {t} ORDER BY d LIMIT 10",
        "SELECT d, id FROM {t} ORDER BY d, id LIMIT 25",
        "SELECT d, id FROM {t} ORDER BY d DESC, id LIMIT 25",
        "SELECT d, id FROM {t} ORDER BY d NULLS FIRST, id LIMIT 40",
        "SELECT d, id FROM {t} ORDER BY d DESC NULLS LAST, id LIMIT 40",
        "SELECT k, id FROM {t} ORDER BY k, id LIMIT 30 OFFSET 15",
        "SELECT k, id FROM {t} ORDER BY k DESC, id LIMIT 1500",
        "SELECT k, id FROM {t} WHERE k > 4000 AND d < date '2025-01-01' ORDER BY k, id LIMIT 20",
        "SELECT k, id FROM {t} WHERE k IS NULL ORDER BY k, id LIMIT 20",
        "SELECT at, id FROM {t} ORDER BY at DESC, id LIMIT 7",
        "SELECT s, id FROM {t} ORDER BY s, id LIMIT 33",
        "SELECT d FROM {t} ORDER BY d LIMIT 0",
        "SELECT d, id FROM {t} ORDER BY d, id LIMIT 100000",
        "SELECT d FROM {t} ORDER BY d FETCH FIRST 3 ROWS WITH TIES",
        "SELECT count(*) FROM (SELECT d FROM {t} ORDER BY d DESC LIMIT 50) x",
    ];

    fn check_all(parallel: bool) {
        for q in QUERIES {
            let heap = q.replace("{t}", "tn_heap");
            let col = q.replace("{t}", "tn_col");
            run("SET epiphany.enable_top_n = on");
            let plan = explain(&col);
            assert!(plan.contains("Top-N: "), "{col}\n{plan}");
            if parallel {
                assert!(!plan.contains("Parallel Custom Scan"), "{col}\n{plan}");
            }
            let on = rows(&col);
            run("SET epiphany.enable_top_n = off");
            let off = rows(&col);
            run("SET epiphany.enable_top_n = on");
            let expected = rows(&heap);
            assert_eq!(on, expected, "{col}: Top-N vs heap");
            assert_eq!(off, expected, "{col}: without Top-N vs heap");
        }
    }

    #[pg_test]
    fn top_n_answers_like_heap_serial_and_parallel() {
        run("SET max_parallel_workers_per_gather = 0");
        load();
        check_all(false);
        // Limit → Gather Merge → Sort → Parallel scan loses its Gather Merge.
        run("SET max_parallel_workers_per_gather = 2");
        run("SET parallel_setup_cost = 0");
        run("SET parallel_tuple_cost = 0");
        run("SET min_parallel_table_scan_size = 0");
        run("SET epiphany.enable_top_n = off");
        let plan = explain("SELECT d, id FROM tn_col ORDER BY d, id LIMIT 25");
        assert!(plan.contains("Gather Merge"), "{plan}");
        check_all(true);
    }

    #[pg_test]
    fn top_n_reads_few_granules_and_says_so() {
        run("SET max_parallel_workers_per_gather = 0");
        load();
        let plan = explain_analyze("SELECT d, id FROM tn_col ORDER BY d DESC LIMIT 10");
        assert!(plan.contains("Top-N: d DESC, 10 rows"), "{plan}");
        let line = plan
            .lines()
            .find_map(|l| l.trim().strip_prefix("Top-N Granules Read: "))
            .unwrap_or_else(|| panic!("{plan}"));
        let (read, total) = line.split_once(" of ").unwrap();
        let (read, total): (u64, u64) = (read.parse().unwrap(), total.parse().unwrap());
        // The granules holding NULLs first (DESC puts them first), nothing more.
        assert!(read <= 6 && total >= 200, "{plan}");
        // Not Top-N: a qual Postgres evaluates (its rows would not all reach the Sort),
        // an expression as the key, a type whose order is not compared here.
        for q in [
            "SELECT d FROM tn_col WHERE id % 2 = 0 ORDER BY d LIMIT 5",
            "SELECT d FROM tn_col ORDER BY d + 1 LIMIT 5",
            "SELECT id FROM tn_col ORDER BY id::text LIMIT 5",
        ] {
            let plan = explain(q);
            assert!(!plan.contains("Top-N: "), "{q}\n{plan}");
        }
    }
}
