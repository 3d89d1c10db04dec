//! `#[pg_test]`s of the access method: each runs inside one transaction, so these cover
//! what a transaction sees of its own writes; commit, crash and restart behaviour is
//! tested against a running server in `tests/integration`.

#![allow(unsafe_code)] // tests that drive Postgres directly, each block with its SAFETY line

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::testing::sql::*;

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
