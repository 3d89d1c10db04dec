//! `#[pg_test]`s of the access method: each runs inside one transaction, so these cover
//! what a transaction sees of its own writes; commit, crash and restart behaviour is
//! tested against a running server in `tests/integration`.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn one<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn same(a: &str, b: &str) {
        let q =
            format!("SELECT count(*) FROM (({a} EXCEPT ALL {b}) UNION ALL ({b} EXCEPT ALL {a})) d");
        assert_eq!(one::<i64>(&q), Some(0), "{a}  vs  {b}");
    }

    use crate::testing::sql::explain_analyze;

    fn explain(sql: &str) -> String {
        crate::testing::sql::explain_with("COSTS OFF", sql)
    }

    /// The value of an EXPLAIN line `label: n`.
    fn counter(plan: &str, label: &str) -> i64 {
        plan.lines()
            .find_map(|l| l.trim().strip_prefix(label)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("no {label} in {plan}"))
            .parse()
            .unwrap()
    }

    const ROWS: &str = "SELECT i AS id, (i * 7919) % 1000 AS k, 'name ' || i AS name,
        CASE WHEN i % 10 = 0 THEN NULL ELSE i * 1.5 END AS price,
        date '2024-01-01' + (i % 366) AS day, i % 3 = 0 AS flag,
        jsonb_build_object('i', i) AS doc, ARRAY[i, i + 1] AS arr
        FROM generate_series(1, 5000) i";

    fn load(table: &str, with: &str) {
        run(&format!("CREATE TABLE {table}_heap AS {ROWS}"));
        run(&format!(
            "CREATE TABLE {table} (id int, k int, name text, price numeric, day date, flag bool, doc jsonb, arr int[])
             USING epiphany_columnar {with}"
        ));
        run(&format!("INSERT INTO {table} SELECT * FROM {table}_heap"));
    }

    #[pg_test]
    fn rows_inserted_are_read_back_exactly() {
        load("t1", "WITH (order_by = 'k, id', granule_rows = 512)");
        same("SELECT * FROM t1", "SELECT * FROM t1_heap");
        assert_eq!(
            one::<i64>("SELECT count(DISTINCT ctid) FROM t1"),
            Some(5000)
        );
        // More rows in a later command: the earlier part stays, a new one joins it.
        run("INSERT INTO t1 SELECT * FROM t1_heap WHERE id <= 100");
        assert_eq!(one::<i64>("SELECT count(*) FROM t1"), Some(5100));
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM epiphany.columnar_parts p
                 WHERE p.storage_id = (SELECT max(storage_id) FROM epiphany.columnar_parts)"
            ),
            Some(2)
        );
    }

    #[pg_test]
    fn options_are_validated_stored_and_applied() {
        load("t2", "WITH (order_by = 'day', compression = 'lz4')");
        let options =
            one::<Vec<String>>("SELECT reloptions FROM pg_class WHERE oid = 't2'::regclass")
                .unwrap();
        assert_eq!(
            options,
            vec!["order_by=day", "granule_rows=8192", "compression=lz4"]
        );
        run("ALTER TABLE t2 SET (granule_rows = 1000)");
        let options =
            one::<Vec<String>>("SELECT reloptions FROM pg_class WHERE oid = 't2'::regclass")
                .unwrap();
        assert!(
            options.contains(&"granule_rows=1000".to_string()),
            "{options:?}"
        );
        run("ALTER TABLE t2 RESET (order_by)");
        let options =
            one::<Vec<String>>("SELECT reloptions FROM pg_class WHERE oid = 't2'::regclass")
                .unwrap();
        assert!(
            !options.iter().any(|o| o.starts_with("order_by")),
            "{options:?}"
        );
        // CREATE TABLE AS with options sorts the rows it loads.
        run("CREATE TABLE t2_ctas USING epiphany_columnar WITH (order_by = 'name') AS SELECT * FROM t2_heap");
        same("SELECT * FROM t2_ctas", "SELECT * FROM t2_heap");
        let first = one::<String>("SELECT name FROM t2_ctas LIMIT 1");
        assert_eq!(first.as_deref(), Some("name 1"));
    }

    #[pg_test(error = "invalid value for granule_rows: 0 is outside 1..1048576")]
    fn a_bad_option_value_is_an_error() {
        run("CREATE TABLE bad (x int) USING epiphany_columnar WITH (granule_rows = 0)");
    }

    #[pg_test(error = "invalid value for order_by: column \"nope\" does not exist")]
    fn order_by_must_name_a_column() {
        run("CREATE TABLE bad (x int) USING epiphany_columnar WITH (order_by = 'nope')");
    }

    #[pg_test(error = "unrecognized parameter \"order_by\"")]
    fn heap_tables_still_reject_our_options() {
        run("CREATE TABLE bad (x int) WITH (order_by = 'x')");
    }

    #[pg_test(error = "UPDATE on epiphany_columnar tables is not supported yet")]
    fn update_is_not_supported_yet() {
        run("CREATE TABLE u (x int) USING epiphany_columnar");
        run("INSERT INTO u VALUES (1)");
        run("UPDATE u SET x = 2");
    }

    #[pg_test(error = "DELETE on epiphany_columnar tables is not supported yet")]
    fn delete_is_not_supported_yet() {
        run("CREATE TABLE d (x int) USING epiphany_columnar");
        run("INSERT INTO d VALUES (1)");
        run("DELETE FROM d");
    }

    #[pg_test]
    fn a_savepoint_rollback_discards_its_rows_only() {
        run("CREATE TABLE s (x int) USING epiphany_columnar");
        Spi::connect_mut(|c| {
            c.update("INSERT INTO s VALUES (1), (2)", None, &[])
                .unwrap();
            // SPI cannot run SAVEPOINT; internal subtransactions are what it maps to.
        });
        // SAFETY: a subtransaction begun and rolled back on the main thread.
        unsafe {
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            Spi::run("INSERT INTO s VALUES (3)").unwrap();
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            Spi::run("INSERT INTO s VALUES (4)").unwrap();
            assert_eq!(
                Spi::get_one::<i64>("SELECT sum(x) FROM s").unwrap(),
                Some(7)
            );
            pg_sys::ReleaseCurrentSubTransaction();
        }
        assert_eq!(one::<i64>("SELECT sum(x) FROM s"), Some(7));
        assert_eq!(one::<i64>("SELECT count(*) FROM s"), Some(3));
    }

    #[pg_test]
    fn indexes_serve_index_bitmap_and_index_only_scans() {
        load("t3", "WITH (order_by = 'k', granule_rows = 256)");
        run("CREATE INDEX t3_id ON t3 (id)");
        run("CREATE INDEX t3_name ON t3 USING hash (name)");
        run("CREATE INDEX t3_expr ON t3 ((id % 100)) WHERE flag");
        run("SET enable_seqscan = off");
        run("SET enable_bitmapscan = off");
        let q = "SELECT * FROM t3 WHERE id = 4321";
        assert!(
            explain(q).contains("Index Scan using t3_id"),
            "{}",
            explain(q)
        );
        same(q, "SELECT * FROM t3_heap WHERE id = 4321");
        same(
            "SELECT * FROM t3 WHERE name = 'name 77'",
            "SELECT * FROM t3_heap WHERE name = 'name 77'",
        );
        same(
            "SELECT * FROM t3 WHERE id % 100 = 3 AND flag",
            "SELECT * FROM t3_heap WHERE id % 100 = 3 AND flag",
        );
        run("SET enable_indexscan = off");
        run("SET enable_bitmapscan = on");
        let q = "SELECT * FROM t3 WHERE id BETWEEN 100 AND 2000";
        assert!(explain(q).contains("Bitmap Heap Scan"), "{}", explain(q));
        same(q, "SELECT * FROM t3_heap WHERE id BETWEEN 100 AND 2000");
        // Rows inserted after the build are in the index too.
        run("INSERT INTO t3 VALUES (90001, 1, 'late', 1, '2024-01-01', true, '{}', '{}')");
        assert_eq!(
            one::<String>("SELECT name FROM t3 WHERE id = 90001").as_deref(),
            Some("late")
        );
    }

    #[pg_test(
        error = "unique indexes, primary keys and exclusion constraints on epiphany_columnar tables is not supported yet"
    )]
    fn unique_indexes_are_refused() {
        run("CREATE TABLE uq (x int) USING epiphany_columnar");
        run("CREATE UNIQUE INDEX ON uq (x)");
    }

    #[pg_test]
    fn analyze_samples_rows_for_the_planner() {
        load("t4", "WITH (granule_rows = 300)");
        run("ANALYZE t4");
        assert_eq!(
            one::<f32>("SELECT reltuples FROM pg_class WHERE oid = 't4'::regclass"),
            Some(5000.0)
        );
        let distinct =
            one::<f32>("SELECT n_distinct FROM pg_stats WHERE tablename = 't4' AND attname = 'k'")
                .unwrap();
        assert!(
            distinct > 900.0 || (-1.0..-0.1).contains(&distinct),
            "{distinct}"
        );
        let null_frac = one::<f32>(
            "SELECT null_frac FROM pg_stats WHERE tablename = 't4' AND attname = 'price'",
        )
        .unwrap();
        assert!((null_frac - 0.1).abs() < 0.02, "{null_frac}");
    }

    #[pg_test]
    fn truncate_rewrite_and_set_access_method_keep_the_right_rows() {
        load("t5", "WITH (order_by = 'id')");
        run("CREATE INDEX t5_id ON t5 (id)");
        run("TRUNCATE t5");
        assert_eq!(one::<i64>("SELECT count(*) FROM t5"), Some(0));
        run("INSERT INTO t5 SELECT * FROM t5_heap WHERE id <= 10");
        assert_eq!(one::<i64>("SELECT count(*) FROM t5"), Some(10));
        run("CLUSTER t5 USING t5_id");
        assert_eq!(one::<i64>("SELECT sum(id) FROM t5"), Some(55));
        run("ALTER TABLE t5_heap SET ACCESS METHOD epiphany_columnar");
        same(
            "SELECT * FROM t5_heap",
            &format!("SELECT * FROM ({ROWS}) r"),
        );
        run("ALTER TABLE t5_heap SET ACCESS METHOD heap");
        same(
            "SELECT * FROM t5_heap",
            &format!("SELECT * FROM ({ROWS}) r"),
        );
        run("DROP TABLE t5");
    }

    #[pg_test]
    fn parts_stats_and_verification_describe_the_table() {
        load("t6", "WITH (order_by = 'day', granule_rows = 1000)");
        // A read between the two inserts writes the first rows as their own part.
        run("SELECT count(*) FROM t6");
        run("INSERT INTO t6 SELECT * FROM t6_heap WHERE id <= 10");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM epiphany.parts WHERE \"table\" = 't6'::regclass"),
            Some(2)
        );
        assert_eq!(
            one::<i64>(
                "SELECT sum(rows)::int8 FROM epiphany.parts WHERE \"table\" = 't6'::regclass"
            ),
            Some(5010)
        );
        let (min, max) = Spi::get_two::<String, String>(
            "SELECT sort_key_min, sort_key_max FROM epiphany.parts WHERE \"table\" = 't6'::regclass AND rows = 5000",
        )
        .unwrap();
        assert_eq!(
            (min.as_deref(), max.as_deref()),
            (Some("2024-01-01"), Some("2024-12-31"))
        );
        let (rows, parts) =
            Spi::get_two::<i64, i64>("SELECT rows, parts FROM epiphany.columnar_stats('t6')")
                .unwrap();
        assert_eq!((rows, parts), (Some(5010), Some(2)));
        let ratio =
            one::<f64>("SELECT compression_ratio FROM epiphany.columnar_stats('t6')").unwrap();
        assert!(ratio > 1.5, "{ratio}");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM epiphany.verify_table('t6')"),
            Some(0)
        );
    }

    #[pg_test(error = "invalid value for table: \"t7\" is not an epiphany_columnar table")]
    fn introspection_refuses_other_tables() {
        run("CREATE TABLE t7 (x int)");
        run("SELECT * FROM epiphany.columnar_stats('t7')");
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
    fn index_builds_stay_serial_and_index_every_row_once() {
        run("CREATE TABLE t10 (id int, s text) USING epiphany_columnar WITH (granule_rows = 500)");
        for i in 0..8 {
            run(&format!(
                "INSERT INTO t10 SELECT g, md5(g::text) FROM generate_series({} + 1, {} + 5000) g",
                i * 5000,
                i * 5000
            ));
        }
        run("SET max_parallel_maintenance_workers = 2");
        run("SET min_parallel_table_scan_size = 0");
        run("SET maintenance_work_mem = '64MB'");
        run("CREATE INDEX t10_id ON t10 (id)");
        // Rebuilds are serial too (a parallel one would fail).
        run("REINDEX INDEX t10_id");
        run("REINDEX TABLE t10");
        run("CLUSTER t10 USING t10_id");
        run("SET enable_seqscan = off");
        run("SET epiphany.enable_columnar_scan = off");
        run("SET enable_bitmapscan = off");
        assert!(explain("SELECT s FROM t10 WHERE id = 17").contains("Index Scan using t10_id"));
        assert_eq!(
            one::<String>("SELECT s FROM t10 WHERE id = 31337"),
            one::<String>("SELECT md5('31337')")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM t10 WHERE id BETWEEN 1 AND 40000"),
            Some(40000)
        );
    }

    #[pg_test]
    fn large_loads_are_encoded_in_the_background_and_savepoints_still_hold() {
        run("SET epiphany.columnar_write_buffer = '1MB'");
        run("CREATE TABLE t11 (id int, s text) USING epiphany_columnar WITH (order_by = 's')");
        run("INSERT INTO t11 SELECT g, md5(g::text) FROM generate_series(1, 100000) g");
        let (_, started) = crate::writes::encoders();
        // SAFETY: a subtransaction begun and rolled back on the main thread.
        unsafe {
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            Spi::run("INSERT INTO t11 SELECT g, 'rolled back' FROM generate_series(1, 100000) g")
                .unwrap();
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        // A statement that fails while its rows are being encoded in the background: the
        // encoder thread is stopped and joined at the abort, not left running.
        run("SET LOCAL epiphany.columnar_write_buffer = '8MB'");
        run("DO $$ BEGIN
               INSERT INTO t11 SELECT g, CASE WHEN g = 200000 THEN (1 / 0)::text ELSE md5(g::text) END
               FROM generate_series(1, 300000) g;
             EXCEPTION WHEN division_by_zero THEN NULL; END $$");
        let (running, now_started) = crate::writes::encoders();
        assert!(now_started > started, "no encoder thread ran");
        assert_eq!(running, 0, "an encoder thread outlived its subtransaction");
        run("RESET epiphany.columnar_write_buffer");
        run("INSERT INTO t11 SELECT g, md5(g::text) FROM generate_series(100001, 150000) g");
        assert_eq!(one::<i64>("SELECT count(*) FROM t11"), Some(150000));
        assert_eq!(
            one::<i64>("SELECT count(DISTINCT id) FROM t11"),
            Some(150000)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM t11 WHERE s = 'rolled back'"),
            Some(0)
        );
        let parts =
            one::<i64>("SELECT count(*) FROM epiphany.parts WHERE \"table\" = 't11'::regclass")
                .unwrap();
        assert!(parts >= 4, "{parts} parts");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM epiphany.verify_table('t11')"),
            Some(0)
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
    fn many_single_row_inserts_in_a_transaction_make_one_part() {
        run("CREATE TABLE t13 (id int, s text) USING epiphany_columnar");
        for i in 0..200 {
            run(&format!("INSERT INTO t13 VALUES ({i}, 'row {i}')"));
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM t13"), Some(200));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM epiphany.parts WHERE \"table\" = 't13'::regclass"),
            Some(1)
        );
        // INSERT … SELECT from the same table reads it: earlier rows are flushed first.
        run("INSERT INTO t13 SELECT id + 1000, s FROM t13");
        assert_eq!(one::<i64>("SELECT count(*) FROM t13"), Some(400));
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

    /// PostgreSQL 18's virtual generated columns are stored as nulls; changing one's type
    /// rewrites nothing, so parts keep the old type (found by PostgreSQL's own
    /// `generated_virtual` test run with our access method as the default).
    #[cfg(feature = "pg18")]
    #[pg_test]
    fn virtual_generated_columns_survive_a_type_change() {
        for (name, sql) in [("gv", "USING epiphany_columnar"), ("gv_heap", "USING heap")] {
            run(&format!(
                "CREATE TABLE {name} (a int, b int, x int GENERATED ALWAYS AS ((a + b) * 2) VIRTUAL) {sql}"
            ));
            run(&format!(
                "INSERT INTO {name} (a, b) SELECT i, i % 7 FROM generate_series(1, 3000) i"
            ));
            run(&format!("ALTER TABLE {name} ALTER COLUMN x TYPE numeric"));
            run(&format!(
                "INSERT INTO {name} (a, b) VALUES (3, 7), (NULL, 1)"
            ));
        }
        same("SELECT a, b, x FROM gv", "SELECT a, b, x FROM gv_heap");
        same(
            "SELECT row_to_json(gv)::text FROM gv",
            "SELECT row_to_json(gv_heap)::text FROM gv_heap",
        );
        same(
            "SELECT a, x FROM gv WHERE a = 17",
            "SELECT a, x FROM gv_heap WHERE a = 17",
        );
        run("CREATE INDEX ON gv (a)");
        run("SET LOCAL enable_seqscan = off; SET LOCAL epiphany.enable_columnar_scan = off");
        same(
            "SELECT a, x FROM gv WHERE a = 17",
            "SELECT a, x FROM gv_heap WHERE a = 17",
        );
        assert_eq!(
            one::<pgrx::AnyNumeric>("SELECT x FROM gv WHERE a = 3 AND b = 7")
                .map(|n| n.to_string()),
            Some("20".into())
        );
    }

    /// `CLUSTER … USING index` orders the rows (their TIDs) by the index, as on heap
    /// (found by PostgreSQL's tuplesort test).
    #[pg_test]
    fn cluster_orders_rows_by_the_index() {
        for (name, using) in [("cl", "epiphany_columnar"), ("cl_heap", "heap")] {
            run(&format!(
                "CREATE TABLE {name} (id int, k int, s text) USING {using}"
            ));
            run(&format!(
                "INSERT INTO {name} SELECT i, (i * 7919) % 3001, 'row ' || i FROM generate_series(1, 3000) i"
            ));
            run(&format!("CREATE INDEX {name}_k ON {name} (k DESC, id)"));
            run(&format!("CLUSTER {name} USING {name}_k"));
        }
        let by_ctid = |t: &str| {
            one::<Vec<i32>>(&format!("SELECT array_agg(id ORDER BY ctid) FROM {t}")).unwrap()
        };
        assert_eq!(by_ctid("cl"), by_ctid("cl_heap"));
        same("SELECT * FROM cl", "SELECT * FROM cl_heap");
        run("SET LOCAL enable_seqscan = off; SET LOCAL epiphany.enable_columnar_scan = off");
        same(
            "SELECT * FROM cl WHERE k < 100",
            "SELECT * FROM cl_heap WHERE k < 100",
        );
    }
}
