//! `#[pg_test]`s of the read paths: the custom scan, parallel scans, TABLESAMPLE, fetches
//! by TID under every snapshot, stored values read back byte for byte, and scans that fail
//! halfway leaving no memory behind.

#![allow(unsafe_code)] // tests that drive Postgres directly, each block with its SAFETY line

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::testing::sql::*;

    /// Quals the scan evaluates on column batches return exactly heap's rows, under
    /// three-valued logic; EXPLAIN tells them from the ones Postgres evaluates.
    #[pg_test]
    fn vectorized_filters_answer_like_heap_and_say_what_they_evaluate() {
        load("vf", "WITH (order_by = 'k', granule_rows = 300)");
        run("SET max_parallel_workers_per_gather = 0");
        let plan =
            explain("SELECT id FROM vf WHERE k < 10 AND name LIKE 'name 1%' AND price * 2 > 3");
        assert!(
            plan.contains("Vectorized Filter: ((k < 10) AND (name ~~ 'name 1%'::text))"),
            "{plan}"
        );
        assert!(
            plan.contains("Filter: ((price * '2'::numeric) > '3'::numeric)"),
            "{plan}"
        );
        let infix = explain("SELECT id FROM vf WHERE name LIKE '%1%2'");
        assert!(
            infix.contains("Vectorized Filter: (name ~~ '%1%2'::text)"),
            "{infix}"
        );
        let conds = [
            "k <> 7",
            "NOT (k = 7)",
            "NOT (price > 100)",
            "price <> 1.5",
            "NOT (price IS NULL) AND k >= 990",
            "k < 5 OR (price > 7000 AND NOT flag)",
            "NOT (k IN (1, 2, 3))",
            "NOT (k IN (1, 2, NULL))",
            "k IN (1, NULL) OR price IS NULL",
            "NOT (k = ANY(ARRAY[5, 6]))",
            "name LIKE 'name 12%'",
            "name NOT LIKE 'name 1%'",
            "name LIKE 'name 4242'",
            "name LIKE 'name_1%'",
            "name LIKE '%'",
            "name LIKE '%42'",
            "name LIKE '%1%2%'",
            "name NOT LIKE 'na%e 1%%'",
            "name LIKE 'name 1%1'",
            "name LIKE '%\\%%'",
            "NOT (name LIKE 'name 2%' OR k > 500)",
            "flag",
            "NOT flag",
            "flag IS NULL OR day > '2024-12-01'",
            "NOT (day BETWEEN '2024-02-01' AND '2024-11-30')",
            "k < 10000000000",
            "k > -10000000000 AND k < 3",
            "NOT (price < 10) OR NOT (price >= 10)",
        ];
        for on in ["on", "off"] {
            run(&format!("SET epiphany.enable_vector_filter = {on}"));
            for cond in conds {
                same(
                    &format!("SELECT * FROM vf WHERE {cond}"),
                    &format!("SELECT * FROM vf_heap WHERE {cond}"),
                );
            }
        }
        run("SET epiphany.enable_vector_filter = on");
        // Rows the vectorized filter drops count as removed by a filter, as on heap.
        let q = "SELECT id FROM vf WHERE k <> 7 AND NOT flag";
        let analyzed = explain_analyze(q);
        let heap = explain_analyze("SELECT id FROM vf_heap WHERE k <> 7 AND NOT flag");
        assert_eq!(
            counter(&analyzed, "Rows Removed by Filter"),
            counter(&heap, "Rows Removed by Filter"),
            "{analyzed}"
        );
        // A granule whose statistics rule the qual out is not read, also under OR/NOT.
        let analyzed = explain_analyze("SELECT id FROM vf WHERE k < 3 OR NOT (k < 997)");
        assert!(counter(&analyzed, "Granules Skipped") >= 10, "{analyzed}");
        run("SET epiphany.enable_vector_filter = off");
        assert!(!explain(q).contains("Vectorized Filter"), "{}", explain(q));
    }

    #[pg_test]
    fn the_custom_scan_reads_few_columns_prunes_and_answers_like_heap() {
        load("t8", "WITH (order_by = 'day', granule_rows = 200)");
        run("SET max_parallel_workers_per_gather = 0");
        let q = "SELECT id, day FROM t8 WHERE day BETWEEN '2024-03-01' AND '2024-03-10'";
        let plan = explain(q);
        assert!(
            plan.contains("Custom Scan (EpiphanyDB Columnar Scan) on t8"),
            "{plan}"
        );
        assert!(plan.contains("Columns Read: 2 of 8"), "{plan}");
        assert!(plan.contains("Pruning Quals: 2"), "{plan}");
        let analyzed = explain_analyze(q);
        assert!(counter(&analyzed, "Granules Skipped") >= 20, "{analyzed}");
        // Rows of the granules read that the predicates dropped are "Rows Removed by
        // Filter", as heap counts them (k spreads over every granule: none is skipped).
        let analyzed = explain_analyze("SELECT id FROM t8 WHERE k < 100");
        assert_eq!(counter(&analyzed, "Granules Skipped"), 0, "{analyzed}");
        let heap = explain_analyze("SELECT id FROM t8_heap WHERE k < 100");
        assert_eq!(
            counter(&analyzed, "Rows Removed by Filter"),
            counter(&heap, "Rows Removed by Filter"),
            "{analyzed}"
        );
        for cond in [
            "day BETWEEN '2024-03-01' AND '2024-03-10'",
            "day = '2024-07-04'",
            "day < '2024-01-05'",
            "day <= '2024-01-05'",
            "day > '2024-12-25'",
            "day >= '2024-12-25'",
            "'2024-12-25' <= day",
            "day < timestamp '2024-01-05 12:00'",
            "day >= timestamp '2024-12-25 00:00:01'",
            "day < date '2024-01-01' + interval '10 days'",
            "day IN ('2024-02-02', '2024-05-05', NULL)",
            "price IS NULL",
            "price IS NOT NULL AND k = 7",
            "k < 3 OR k > 997",
            "name = 'name 4242'",
            "id BETWEEN 100 AND 120 AND flag",
            "id = ANY(ARRAY[1, 2, 3000])",
            "day > '2025-06-01'",
        ] {
            same(
                &format!("SELECT * FROM t8 WHERE {cond}"),
                &format!("SELECT * FROM t8_heap WHERE {cond}"),
            );
        }
        same(
            "SELECT count(*), sum(id) FROM t8",
            "SELECT count(*), sum(id) FROM t8_heap",
        );
        same(
            "SELECT t8::text FROM t8 WHERE id < 50",
            "SELECT t8_heap::text FROM t8_heap WHERE id < 50",
        );
        // A query that reads ctid gets every row's own TID (others skip reading them).
        assert!(explain("SELECT count(DISTINCT ctid) FROM t8").contains("Columnar Scan"));
        same(
            "SELECT count(DISTINCT ctid) FROM t8",
            "SELECT count(*) FROM t8",
        );
        run("SET epiphany.enable_columnar_scan = off");
        assert!(!explain(q).contains("Custom Scan"), "{}", explain(q));
        same(
            q,
            "SELECT id, day FROM t8_heap WHERE day BETWEEN '2024-03-01' AND '2024-03-10'",
        );
    }

    #[pg_test]
    fn parallel_scans_share_out_parts_and_return_every_row_once() {
        run("CREATE TABLE t9_heap AS SELECT g AS id, g % 97 AS k, md5(g::text) AS s FROM generate_series(1, 60000) g");
        run("CREATE TABLE t9 (id int, k int, s text) USING epiphany_columnar WITH (granule_rows = 1000)");
        // Many parts: one per statement.
        for i in 0..12 {
            run(&format!(
                "INSERT INTO t9 SELECT * FROM t9_heap WHERE id % 12 = {i}"
            ));
        }
        run("ANALYZE t9");
        run("SET parallel_setup_cost = 0");
        run("SET parallel_tuple_cost = 0");
        run("SET min_parallel_table_scan_size = 0");
        run("SET max_parallel_workers_per_gather = 2");
        let q = "SELECT count(*), sum(id), count(DISTINCT s) FROM t9 WHERE k < 50";
        let plan = explain(q);
        assert!(
            plan.contains("Parallel Custom Scan (EpiphanyDB Columnar Scan)"),
            "{plan}"
        );
        same(
            q,
            "SELECT count(*), sum(id), count(DISTINCT s) FROM t9_heap WHERE k < 50",
        );
        // EXPLAIN counts the granules of every participant (60 of 1000 rows), not only
        // the leader's: here the leader scans none itself.
        run("SET parallel_leader_participation = off");
        let analyzed = explain_analyze("SELECT count(*) FROM t9 WHERE k >= 0");
        assert!(analyzed.contains("Workers Launched: 2"), "{analyzed}");
        assert_eq!(counter(&analyzed, "Granules Scanned"), 60, "{analyzed}");
        assert_eq!(counter(&analyzed, "Granules Skipped"), 0, "{analyzed}");
        let analyzed = explain_analyze("SELECT count(*) FROM t9 WHERE id BETWEEN 100 AND 200");
        let scanned = counter(&analyzed, "Granules Scanned");
        assert!(scanned > 0, "{analyzed}");
        assert_eq!(
            scanned + counter(&analyzed, "Granules Skipped"),
            60,
            "{analyzed}"
        );
        // With an index that wins, the planner drops our path (a regression test: the
        // partial path must not be copied from a path add_path has freed).
        run("CREATE INDEX t9_id ON t9 (id)");
        same(
            "SELECT s FROM t9 WHERE id < 10",
            "SELECT s FROM t9_heap WHERE id < 10",
        );
        run("SET epiphany.enable_columnar_scan = off");
        let plan = explain(q);
        assert!(plan.contains("Parallel Seq Scan on t9"), "{plan}");
        same(
            q,
            "SELECT count(*), sum(id), count(DISTINCT s) FROM t9_heap WHERE k < 50",
        );
    }

    #[pg_test]
    fn numerics_with_a_precision_are_native_exact_and_pruned() {
        run("CREATE TABLE n_heap (a numeric(15,2), b numeric(18,0), c numeric(5,5), d numeric, e numeric(20,2))");
        run("INSERT INTO n_heap VALUES
            (0, 0, 0, 0, 0), (-0.01, -1, -0.00001, -1e-30, 1), (12.34, 999999999999999999, 0.99999, 1e30, 123456789012345678.99),
            (9999999999999.99, -999999999999999999, 0.5, 'NaN', -1), ('NaN', 'NaN', 'NaN', 'NaN', 'NaN'), (NULL, NULL, NULL, NULL, NULL),
            (1.5, 15, 0.15, 1.5, 1.5), (1.50, 2, 0.00002, 2, 2)");
        run("INSERT INTO n_heap SELECT g / 100.0, g, (g % 100000) / 100000.0, g, g FROM generate_series(-5000, 5000) g");
        run("CREATE TABLE n (a numeric(15,2), b numeric(18,0), c numeric(5,5), d numeric, e numeric(20,2))
             USING epiphany_columnar WITH (order_by = 'a', granule_rows = 256)");
        run("INSERT INTO n SELECT * FROM n_heap");
        same(
            "SELECT a::text, b::text, c::text, d::text, e::text FROM n",
            "SELECT a::text, b::text, c::text, d::text, e::text FROM n_heap",
        );
        for cond in [
            "a < 0.125",
            "a <= 0.125",
            "a > 1.005",
            "a >= 1.005",
            "a = 1.50",
            "a = 1.505",
            "a IN (1.5, 2, 'NaN')",
            "a > 9000",
            "a < 'NaN'",
            "a >= 'NaN'",
            "a BETWEEN -3 AND -2.999",
            "b > 999999999999999998",
            "c < 0.00002",
            "a IS NULL",
            "a > 12 AND b < 0",
        ] {
            same(
                &format!("SELECT a::text, b::text FROM n WHERE {cond}"),
                &format!("SELECT a::text, b::text FROM n_heap WHERE {cond}"),
            );
        }
        same("SELECT sum(a), avg(b), max(c), sum(e) FROM n WHERE a <> 'NaN' AND b <> 'NaN' AND c <> 'NaN' AND e <> 'NaN'",
             "SELECT sum(a), avg(b), max(c), sum(e) FROM n_heap WHERE a <> 'NaN' AND b <> 'NaN' AND c <> 'NaN' AND e <> 'NaN'");
        let plan = explain("SELECT a FROM n WHERE a > 40");
        assert!(plan.contains("Pruning Quals: 1"), "{plan}");
    }

    #[pg_test]
    fn tablesample_samples_rows_and_blocks() {
        load("t12", "WITH (granule_rows = 700)");
        run("INSERT INTO t12 SELECT * FROM t12_heap");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM t12 TABLESAMPLE BERNOULLI (100)"),
            Some(10000)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM t12 TABLESAMPLE SYSTEM (100)"),
            Some(10000)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM t12 TABLESAMPLE BERNOULLI (0)"),
            Some(0)
        );
        let b = one::<i64>("SELECT count(*) FROM t12 TABLESAMPLE BERNOULLI (10) REPEATABLE (7)")
            .unwrap();
        assert!((700..1300).contains(&b), "{b}");
        let s =
            one::<i64>("SELECT count(*) FROM t12 TABLESAMPLE SYSTEM (20) REPEATABLE (7)").unwrap();
        assert!((500..4500).contains(&s), "{s}");
        same(
            "SELECT * FROM t12 TABLESAMPLE BERNOULLI (5) REPEATABLE (42)",
            "SELECT * FROM t12 TABLESAMPLE BERNOULLI (5) REPEATABLE (42)",
        );
        // Sampled rows are real rows.
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM (SELECT * FROM t12 TABLESAMPLE SYSTEM (30) REPEATABLE (3)
                 EXCEPT SELECT * FROM t12_heap) s"
            ),
            Some(0)
        );
    }

    #[pg_test]
    fn toasted_and_compressed_values_are_stored_whole() {
        run("CREATE TABLE big_heap (id int, t text, b bytea)");
        run("ALTER TABLE big_heap ALTER COLUMN b SET STORAGE EXTERNAL");
        run("INSERT INTO big_heap SELECT g, repeat(md5(g::text), 2000), decode(repeat(md5(g::text), 3000), 'hex') FROM generate_series(1, 20) g");
        run("INSERT INTO big_heap VALUES (99, repeat('y', 5000000), NULL)");
        run("CREATE TABLE big (id int, t text, b bytea) USING epiphany_columnar");
        run("INSERT INTO big SELECT * FROM big_heap");
        same(
            "SELECT id, md5(t), md5(b), length(t) FROM big",
            "SELECT id, md5(t), md5(b), length(t) FROM big_heap",
        );
    }

    #[pg_test]
    fn a_cursor_sees_the_rows_inserted_before_it_and_no_later_ones() {
        run("CREATE TABLE t14 (x int) USING epiphany_columnar");
        run("INSERT INTO t14 VALUES (1)");
        run("DECLARE c1 CURSOR FOR SELECT sum(x) FROM t14");
        run("INSERT INTO t14 VALUES (10)");
        run("DECLARE c2 CURSOR FOR SELECT sum(x) FROM t14");
        run("INSERT INTO t14 VALUES (100)");
        // Fetched in reverse order, with rows still buffered.
        assert_eq!(one::<i64>("FETCH c2"), Some(11));
        assert_eq!(one::<i64>("FETCH c1"), Some(1));
        assert_eq!(one::<i64>("SELECT sum(x) FROM t14"), Some(111));
    }

    /// MERGE and UPDATE re-fetch rows with SnapshotAny: the parts catalog must still be
    /// read with an MVCC snapshot, or the part of an aborted subtransaction (whose rows
    /// were written again, with the same row numbers, in a later part) would be found.
    #[pg_test]
    fn fetches_with_snapshot_any_never_find_the_parts_of_aborted_subtransactions() {
        run("CREATE TABLE t15 (x int) USING epiphany_columnar");
        // SAFETY: a subtransaction begun and rolled back on the main thread.
        run("INSERT INTO t15 SELECT generate_series(1, 100)");
        unsafe {
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            // Flushed by the subtransaction: its part dies with it, the rows come back.
            assert_eq!(one::<i64>("SELECT count(*) FROM t15"), Some(100));
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        run("INSERT INTO t15 SELECT generate_series(1, 10)");
        assert_eq!(one::<i64>("SELECT count(*) FROM t15"), Some(110));
        let oid = one::<pg_sys::Oid>("SELECT 't15'::regclass::oid").unwrap();
        // SAFETY: an open relation of this transaction, closed again below.
        let rows: Vec<u64> = unsafe {
            let rel = pg_sys::relation_open(oid, pg_sys::AccessShareLock as _);
            let storage =
                crate::storage::meta::storage_id(epiphany_core::pg::buffer::Rel::new(rel))
                    .unwrap()
                    .unwrap();
            let parts = crate::storage::catalog::visible(storage, &raw mut pg_sys::SnapshotAnyData)
                .unwrap();
            pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
            parts.iter().map(|p| p.row_count).collect()
        };
        assert_eq!(rows.iter().sum::<u64>(), 110, "{rows:?}");
    }

    /// Postgres stores text byte for byte as a C function (or a SQL_ASCII client) hands
    /// it over, valid UTF-8 or not; so must a columnar table, through every read path.
    #[pg_test]
    fn text_that_is_not_utf8_is_stored_byte_for_byte() {
        run("CREATE TABLE bt_heap (id int, t text)");
        run("CREATE TABLE bt (id int, t text) USING epiphany_columnar WITH (order_by = 't', granule_rows = 2)");
        let texts: [&[u8]; 5] = [b"plain", &[0xff, 0xfe, 0x41], &[0xc3], b"\xe9t\xe9", b"zz"];
        for (i, bytes) in texts.iter().enumerate() {
            // SAFETY: a text datum of these bytes, palloc'd on the main thread.
            let datum = unsafe {
                pg_sys::cstring_to_text_with_len(bytes.as_ptr() as *const _, bytes.len() as i32)
            };
            for table in ["bt_heap", "bt"] {
                // SAFETY: the datum is a text value.
                let args = unsafe {
                    [
                        pgrx::datum::DatumWithOid::from(i as i32),
                        pgrx::datum::DatumWithOid::new(pg_sys::Datum::from(datum), pg_sys::TEXTOID),
                    ]
                };
                Spi::run_with_args(&format!("INSERT INTO {table} VALUES ($1, $2)"), &args).unwrap();
            }
            if i == 2 {
                // A read flushes the first rows: the table gets two parts.
                run("INSERT INTO bt SELECT 100, 'valid' WHERE false");
                assert_eq!(one::<i64>("SELECT count(*) FROM bt"), Some(3));
            }
        }
        run("INSERT INTO bt_heap VALUES (9, 'ok')");
        run("INSERT INTO bt VALUES (9, 'ok')");
        let rows = "SELECT id, md5(t), octet_length(t) FROM";
        same(&format!("{rows} bt"), &format!("{rows} bt_heap"));
        run("SET LOCAL epiphany.enable_columnar_scan = off");
        same(&format!("{rows} bt"), &format!("{rows} bt_heap"));
        run("CREATE INDEX ON bt (id)");
        run("SET LOCAL enable_seqscan = off");
        same(
            &format!("{rows} bt WHERE id IN (1, 2, 3)"),
            &format!("{rows} bt_heap WHERE id IN (1, 2, 3)"),
        );
        run("RESET enable_seqscan");
        run("RESET epiphany.enable_columnar_scan");
        // Pruning and filters on a text column stored as bytes stay exact.
        same(
            &format!("{rows} bt WHERE t > 'a' COLLATE \"C\""),
            &format!("{rows} bt_heap WHERE t > 'a' COLLATE \"C\""),
        );
        same(
            &format!("{rows} bt WHERE t = 'zz'"),
            &format!("{rows} bt_heap WHERE t = 'zz'"),
        );
        let problems = one::<i64>("SELECT count(*) FROM epiphany.verify_table('bt')");
        assert_eq!(problems, Some(0));
    }

    /// The backend's resident memory, in kB.
    fn backend_rss_kb() -> i64 {
        let status = one::<String>("SELECT pg_read_file('/proc/self/status')").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/self/status")
    }

    /// An ERROR in the middle of a scan or fetch frees the scan's Rust state with the
    /// query's memory (it was boxed and leaked, 600 KB a scan): hundreds of scans that fail
    /// halfway grow the backend no more than the same scans of a heap table do (Postgres's
    /// own bookkeeping of failed subtransactions grows a little on some versions). Each
    /// kind of scan: the custom scan, the access method's own scan, index and bitmap scans.
    #[pg_test]
    fn scans_that_fail_halfway_leak_nothing() {
        for (t, using) in [
            ("boom", "USING epiphany_columnar WITH (granule_rows = 1000)"),
            ("boom_heap", ""),
        ] {
            run(&format!("CREATE TABLE {t} (id int, v text) {using}"));
            run(&format!(
                "INSERT INTO {t} SELECT i, repeat('x', i % 50) FROM generate_series(1, 20000) i"
            ));
            run(&format!("CREATE INDEX ON {t} (id)"));
        }
        run(
            "CREATE FUNCTION boom_at(int) RETURNS bool LANGUAGE plpgsql AS
             $$ BEGIN IF $1 = 10005 THEN RAISE EXCEPTION 'boom'; END IF; RETURN true; END $$",
        );
        let settings = [
            "SET LOCAL epiphany.enable_columnar_scan = on",
            "SET LOCAL epiphany.enable_columnar_scan = off; SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off",
            "SET LOCAL epiphany.enable_columnar_scan = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
            "SET LOCAL epiphany.enable_columnar_scan = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off",
        ];
        // The backend's growth over `n` scans of `t` that fail halfway, in kB.
        let grown = |t: &str, n: usize| {
            let fail = |n: usize| {
                run(&format!(
                    "DO $$ BEGIN FOR i IN 1..{n} LOOP
                       BEGIN PERFORM count(*) FROM {t} WHERE id > 10000 AND boom_at(id) AND length(v) >= 0;
                       EXCEPTION WHEN raise_exception THEN NULL; END;
                     END LOOP; END $$"
                ))
            };
            fail(30); // caches and allocator arenas warm up
            let before = backend_rss_kb();
            fail(n);
            backend_rss_kb() - before
        };
        for set in settings {
            run(set);
            let heap = grown("boom_heap", 300);
            let columnar = grown("boom", 300);
            assert!(
                columnar < heap + 4 * 1024,
                "{set}: over 300 failed scans the backend grew by {columnar} kB (heap: {heap} kB)"
            );
        }
    }
}
