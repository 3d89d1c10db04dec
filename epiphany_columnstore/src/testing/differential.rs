//! Differential `#[pg_test]`s: the same rows in a heap table and a columnar one, the same
//! queries on both, results compared exactly. Each column type meets every comparison
//! operator with edge constants of its own type and of the cross types its btree family
//! compares it with (date against timestamp, int2 against int8, …): the pruning bounds
//! and the row filter of the custom scan must never drop a row Postgres would return.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or(-1)
    }

    /// Column, type, the values stored (SQL literals; each also stored as NULL rows), and
    /// the constants to compare it with.
    struct Case {
        column: &'static str,
        ty: &'static str,
        values: &'static [&'static str],
        constants: &'static [&'static str],
    }

    const CASES: &[Case] = &[
        Case {
            column: "c_bool",
            ty: "bool",
            values: &["true", "false"],
            constants: &["true", "false"],
        },
        Case {
            column: "c_int2",
            ty: "int2",
            values: &["-32768", "-1", "0", "1", "32767"],
            constants: &[
                "0::int2",
                "32767::int2",
                "(-32768)::int2",
                "40000::int4",
                "(-40000)::int4",
                "1::int8",
                "9223372036854775807::int8",
                "(-9223372036854775807 - 1)::int8",
            ],
        },
        Case {
            column: "c_int4",
            ty: "int4",
            values: &["-2147483648", "-7", "0", "7", "2147483647"],
            constants: &[
                "7::int2",
                "2147483647",
                "-2147483648",
                "3000000000::int8",
                "(-3000000000)::int8",
                "0",
            ],
        },
        Case {
            column: "c_int8",
            ty: "int8",
            values: &[
                "-9223372036854775808",
                "-1",
                "0",
                "5",
                "9223372036854775807",
            ],
            constants: &[
                "5::int2",
                "5::int4",
                "9223372036854775807::int8",
                "(-9223372036854775807 - 1)::int8",
                "0::int8",
            ],
        },
        Case {
            column: "c_float4",
            ty: "float4",
            values: &[
                "'-Infinity'",
                "-1.5",
                "-0.0",
                "0.0",
                "3.25",
                "'Infinity'",
                "'NaN'",
            ],
            constants: &[
                "'NaN'::float4",
                "'Infinity'::float4",
                "'-Infinity'::float4",
                "0::float4",
                "3.25::float8",
                "'NaN'::float8",
                "1e300::float8",
            ],
        },
        Case {
            column: "c_float8",
            ty: "float8",
            values: &[
                "'-Infinity'",
                "-1e300",
                "-0.0",
                "0.0",
                "2.5",
                "1e300",
                "'Infinity'",
                "'NaN'",
            ],
            constants: &[
                "'NaN'::float8",
                "'Infinity'::float8",
                "'-Infinity'::float8",
                "0::float8",
                "2.5::float4",
                "'NaN'::float4",
            ],
        },
        Case {
            column: "c_numeric",
            ty: "numeric(12, 3)",
            values: &[
                "-999999999.999",
                "-1.5",
                "0",
                "0.001",
                "2.5",
                "999999999.999",
                "'NaN'",
            ],
            constants: &[
                "0::numeric",
                "2.5::numeric",
                "2.4995::numeric",
                "0.0005::numeric",
                "-1.5::numeric",
                "'NaN'::numeric",
                "'Infinity'::numeric",
                "'-Infinity'::numeric",
                "1e30::numeric",
                "-1e30::numeric",
            ],
        },
        Case {
            column: "c_date",
            ty: "date",
            values: &[
                "'-infinity'",
                "'4713-11-24 BC'",
                "'1999-12-31'",
                "'2000-01-01'",
                "'2020-01-01'",
                "'294276-12-31'",
                "'infinity'",
            ],
            constants: &[
                "'2020-01-01'::date",
                "'infinity'::date",
                "'-infinity'::date",
                "'infinity'::timestamp",
                "'-infinity'::timestamp",
                "'2020-01-01'::timestamp",
                "'2020-01-01 12:00'::timestamp",
                "'1999-12-31 23:59:59.999999'::timestamp",
                "'294276-12-31 23:59:59'::timestamp",
                "'4713-11-24 00:00:00 BC'::timestamp",
            ],
        },
        Case {
            column: "c_timestamp",
            ty: "timestamp",
            values: &[
                "'-infinity'",
                "'4713-11-24 00:00 BC'",
                "'2000-01-01'",
                "'2020-01-01 12:00'",
                "'294276-12-31 23:59:59'",
                "'infinity'",
            ],
            constants: &[
                "'2020-01-01 12:00'::timestamp",
                "'infinity'::timestamp",
                "'-infinity'::timestamp",
                "'2020-01-01'::date",
                "'2020-01-02'::date",
                "'infinity'::date",
                "'-infinity'::date",
                "'294276-12-31'::date",
            ],
        },
        Case {
            column: "c_timestamptz",
            ty: "timestamptz",
            values: &[
                "'-infinity'",
                "'2000-01-01 00:00+00'",
                "'2020-01-01 12:00+00'",
                "'infinity'",
            ],
            constants: &[
                "'2020-01-01 12:00+00'::timestamptz",
                "'infinity'::timestamptz",
                "'-infinity'::timestamptz",
                "'2020-01-01'::date",
                "'infinity'::date",
                "'2020-01-01 12:00'::timestamp",
                "'infinity'::timestamp",
            ],
        },
        Case {
            column: "c_time",
            ty: "time",
            values: &["'00:00'", "'12:30'", "'23:59:59.999999'", "'24:00'"],
            constants: &["'12:30'::time", "'00:00'::time", "'24:00'::time"],
        },
        Case {
            column: "c_text",
            ty: "text",
            values: &[
                "''",
                "'A'",
                "'a'",
                "'b'",
                "'ab'",
                "'é'",
                "'z'",
                "'\u{10FFFF}'",
            ],
            constants: &[
                "'a'::text",
                "''::text",
                "'é'::text",
                "'a' COLLATE \"C\"",
                "'b' COLLATE \"POSIX\"",
                "'B'::text",
                "'ab'::varchar",
                "'a'::name",
                "'a  '::bpchar",
            ],
        },
        Case {
            column: "c_char",
            ty: "char(3)",
            values: &["''", "'a'", "'a '", "' a'", "'ab'", "'é'", "'abc'", "'a\t'"],
            constants: &[
                "'a'::bpchar",
                "'a  '::bpchar",
                "'ab'::bpchar",
                "'é'::bpchar",
                "''::bpchar",
                "'abcd'::bpchar",
                "'a'::text",
                "'a' COLLATE \"C\"",
            ],
        },
        Case {
            column: "c_varchar",
            ty: "varchar(5)",
            values: &["''", "'a'", "'ab'", "'zzzzz'"],
            constants: &[
                "'ab'::varchar",
                "'ab'::text",
                "'a' COLLATE \"C\"",
                "'ab'::name",
            ],
        },
        Case {
            column: "c_bytea",
            ty: "bytea",
            values: &["''", "'\\x00'", "'\\x0001'", "'\\xff'"],
            constants: &[
                "'\\x00'::bytea",
                "''::bytea",
                "'\\xff'::bytea",
                "'\\x0000'::bytea",
            ],
        },
        Case {
            column: "c_uuid",
            ty: "uuid",
            values: &[
                "'00000000-0000-0000-0000-000000000000'",
                "'7f000000-0000-0000-0000-000000000000'",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            ],
            constants: &[
                "'7f000000-0000-0000-0000-000000000000'::uuid",
                "'00000000-0000-0000-0000-000000000001'::uuid",
            ],
        },
    ];

    const OPERATORS: &[&str] = &["=", "<>", "<", "<=", ">", ">="];

    /// Loads one column's values into a heap and a columnar table (several parts, small
    /// granules, rows in an order that gives granules different bounds).
    fn load(case: &Case, granule_rows: u32, order_by: bool) {
        let with = if order_by {
            format!("WITH (granule_rows = {granule_rows}, order_by = 'v')")
        } else {
            format!("WITH (granule_rows = {granule_rows})")
        };
        run("DROP TABLE IF EXISTS diff_heap, diff_col");
        run(&format!("CREATE TABLE diff_heap (v {})", case.ty));
        run(&format!(
            "CREATE TABLE diff_col (v {}) USING epiphany_columnar {with}",
            case.ty
        ));
        let rows: Vec<String> = case
            .values
            .iter()
            .map(|v| format!("(({v})::{})", case.ty))
            .chain(std::iter::once("(NULL)".to_string()))
            .collect();
        // Three commands: three parts; the middle one reversed.
        for (i, part) in [rows.clone(), rows.iter().rev().cloned().collect(), rows]
            .iter()
            .enumerate()
        {
            let values = part.join(", ");
            run(&format!("INSERT INTO diff_heap VALUES {values}"));
            run(&format!("INSERT INTO diff_col VALUES {values}"));
            if i == 1 {
                run("INSERT INTO diff_col SELECT * FROM diff_heap LIMIT 0");
            }
        }
    }

    /// Every query `WHERE v <op> <constant>` (and IN, BETWEEN, NULL tests) on both tables;
    /// returns the queries whose counts differ.
    fn mismatches(case: &Case) -> Vec<String> {
        let mut queries = vec!["v IS NULL".to_string(), "v IS NOT NULL".to_string()];
        for c in case.constants {
            for op in OPERATORS {
                queries.push(format!("v {op} {c}"));
                queries.push(format!("{c} {op} v"));
            }
        }
        // IN lists and BETWEEN of two constants of one type (mixed ones may not resolve).
        let ty = |c: &str| c.rsplit_once("::").map(|(_, t)| t.to_string());
        for pair in case.constants.windows(2) {
            if ty(pair[0]).is_none() || ty(pair[0]) != ty(pair[1]) {
                continue;
            }
            queries.push(format!("v IN ({}, {})", pair[0], pair[1]));
            queries.push(format!("v BETWEEN {} AND {}", pair[0], pair[1]));
            queries.push(format!("v BETWEEN SYMMETRIC {} AND {}", pair[0], pair[1]));
        }
        let mut bad = Vec::new();
        for q in queries {
            let heap = count(&format!("SELECT count(*) FROM diff_heap WHERE {q}"));
            let columnar = count(&format!("SELECT count(*) FROM diff_col WHERE {q}"));
            if heap != columnar {
                bad.push(format!(
                    "{} {}: WHERE {q}: heap {heap}, columnar {columnar}",
                    case.column, case.ty
                ));
            }
        }
        bad
    }

    #[pg_test]
    fn every_column_type_operator_and_edge_constant_answers_like_heap() {
        run("SET epiphany.enable_columnar_scan = on");
        // Small tables: make sure the planner takes the custom scan anyway.
        run("SET enable_seqscan = off");
        let mut bad = Vec::new();
        for case in CASES {
            for (granule_rows, order_by) in [(2, false), (3, true)] {
                load(case, granule_rows, order_by);
                let plan = Spi::get_one::<String>(
                    "EXPLAIN (COSTS OFF) SELECT * FROM diff_col WHERE v IS NULL",
                )
                .unwrap()
                .unwrap_or_default();
                assert!(plan.contains("EpiphanyDB Columnar Scan"), "{plan}");
                bad.extend(mismatches(case));
            }
        }
        assert!(
            bad.is_empty(),
            "{} mismatches:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }

    fn same(a: &str, b: &str) {
        let q = format!(
            "SELECT count(*) FROM ((({a}) EXCEPT ALL ({b})) UNION ALL (({b}) EXCEPT ALL ({a}))) d"
        );
        assert_eq!(count(&q), 0, "{a}  vs  {b}");
        assert_eq!(
            count(&format!("SELECT count(*) FROM ({a}) x")),
            count(&format!("SELECT count(*) FROM ({b}) x")),
            "{a}"
        );
    }

    /// Rows fetched by TID decode only the columns the executor asks for: every way the
    /// executor reads, keeps or copies a fetched row must see the same values as heap's.
    #[pg_test]
    fn rows_fetched_by_tid_answer_like_heap_however_they_are_used() {
        let rows = "SELECT i AS id, (i * 7919) % 1000 AS k, 'name ' || i AS name,
            CASE WHEN i % 10 = 0 THEN NULL ELSE i * 1.5 END AS price,
            date '2024-01-01' + (i % 366) AS day, repeat(md5(i::text), 1 + i % 80) AS long,
            jsonb_build_object('i', i) AS doc, ARRAY[i, i + 1] AS arr
            FROM generate_series(1, 6000) i";
        run(&format!("CREATE TABLE tid_heap AS {rows}"));
        run("CREATE TABLE tid_col (id int, k int, name text, price numeric, day date, long text, doc jsonb, arr int[])
             USING epiphany_columnar WITH (order_by = 'k', granule_rows = 700)");
        run("INSERT INTO tid_col SELECT * FROM tid_heap WHERE id <= 3000");
        run("INSERT INTO tid_col SELECT * FROM tid_heap WHERE id > 3000");
        for t in ["tid_heap", "tid_col"] {
            run(&format!("CREATE INDEX ON {t} (id)"));
            run(&format!("CREATE INDEX ON {t} (name)"));
            run(&format!(
                "CREATE VIEW {t}_v AS SELECT id, name, price, day FROM {t}"
            ));
        }
        run("CREATE TABLE keys AS SELECT (g * 37) % 6000 + 1 AS id FROM generate_series(1, 800) g");
        let queries = [
            "SELECT * FROM {t} WHERE id BETWEEN 100 AND 900",
            "SELECT price, long FROM {t} WHERE id IN (5, 77, 1234, 5999, 6000)",
            "SELECT arr, doc->>'i', name FROM {t} WHERE name > 'name 59' ORDER BY day, id",
            "SELECT id FROM {t} WHERE id % 7 = 0 AND id < 3000",
            "SELECT count(*), sum(price), max(length(long)) FROM keys JOIN {t} USING (id)",
            "SELECT t.* FROM keys JOIN {t} t USING (id) ORDER BY t.long, t.id LIMIT 300",
            "WITH m AS MATERIALIZED (SELECT * FROM {t} WHERE id < 500) SELECT * FROM m a JOIN m b ON a.k = b.k",
            "SELECT id, sum(price) OVER (ORDER BY id) FROM {t} WHERE id BETWEEN 2000 AND 2600",
            "SELECT DISTINCT ON (k) k, name, long FROM {t} WHERE id < 4000 ORDER BY k, id",
            "SELECT x::text FROM {t} x WHERE id < 300",
            "SELECT id FROM {t} WHERE id < 3000 AND long LIKE '%ab%'",
            // Scans that project: only the columns they read are decoded.
            "SELECT sum(price), count(*) FROM {t} WHERE id BETWEEN 10 AND 4000",
            "SELECT count(*) FROM {t} WHERE id < 2000",
            "SELECT length(long) + k FROM {t} WHERE id IN (1, 2, 3, 4000, 5000)",
            "SELECT arr[2], doc FROM {t} WHERE name = 'name 42' OR id = 43",
            "SELECT k FROM {t} WHERE id < 1000 ORDER BY price NULLS FIRST, id",
            "SELECT (SELECT max(day) FROM {t} WHERE id < 100), count(*) FROM keys",
            // Aggregates above scans that hand their slot up: what the aggregate reads
            // (arguments, FILTER, ORDER BY within, HAVING, grouping columns).
            "SELECT name, count(*), sum(price) FILTER (WHERE k > 500) FROM {t} WHERE id < 3000 GROUP BY name ORDER BY name LIMIT 60",
            "SELECT string_agg(long, ',' ORDER BY day DESC, id) FILTER (WHERE price > 10) FROM {t} WHERE id BETWEEN 100 AND 140",
            "SELECT day, count(DISTINCT k) FROM {t} WHERE id < 2500 GROUP BY day HAVING max(name) > 'name 1' ORDER BY day",
            "SELECT k, day, count(*), min(arr) FROM {t} WHERE id < 1500 GROUP BY GROUPING SETS ((k), (day), ()) ORDER BY 1, 2, 3",
            "SELECT count(x) FROM {t} x WHERE id < 700",
            // Scans that hand their slot up: what nodes above read is what the query
            // names of the table (its permission entry's selectedCols).
            "SELECT t.name, t.price, keys.id FROM keys JOIN {t} t USING (id) WHERE t.day > '2024-03-01'",
            "SELECT id, (SELECT count(*) FROM keys WHERE keys.id = t.k) FROM {t} t WHERE id < 500",
            "SELECT v.name, v.price FROM keys JOIN {t}_v v USING (id)",
            "SELECT t::text FROM keys JOIN {t} t USING (id) WHERE keys.id < 1000",
            "SELECT row_to_json(t)::text FROM {t} t WHERE id IN (3, 4, 5)",
            "SELECT s.name FROM (SELECT * FROM {t} WHERE id < 800) s JOIN keys USING (id)",
            "SELECT keys.id, l.name, l.price FROM keys, LATERAL (SELECT name, price FROM {t} x WHERE x.id = keys.id) l",
            "SELECT k, max(name) FROM {t} WHERE id < 3000 GROUP BY k HAVING sum(price) > 100",
            "SELECT a.long, b.day FROM {t} a JOIN {t} b ON a.id = b.id + 1 WHERE a.id < 300",
            "SELECT a.name, b.price, b.k FROM keys JOIN {t} a USING (id) JOIN {t} b ON b.id = a.k + 1",
            "SELECT a.price FROM {t} a JOIN {t} b ON a.id = b.id AND a.day <> b.day + 1 WHERE a.id < 900",
            "SELECT a.id FROM keys JOIN {t} a ON a.id = keys.id AND a.price > keys.id",
        ];
        for (scan, settings) in [
            (
                "index",
                "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
            ),
            (
                "bitmap",
                "SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off",
            ),
            // Joins above unprojected index scans: what each join method reads of them.
            (
                "index",
                "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;
                 SET LOCAL enable_nestloop = off; SET LOCAL enable_hashjoin = off",
            ),
            (
                "index",
                "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;
                 SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off",
            ),
        ] {
            for cache in ["64MB", "0"] {
                run("RESET enable_seqscan; RESET enable_bitmapscan; RESET enable_indexscan; RESET enable_nestloop; RESET enable_hashjoin; RESET enable_mergejoin");
                run(settings);
                run(&format!(
                    "SET LOCAL epiphany.columnar_fetch_cache = '{cache}'"
                ));
                run("SET LOCAL epiphany.enable_columnar_scan = off");
                let plan = Spi::get_one::<String>(&format!(
                    "EXPLAIN (COSTS OFF) {}",
                    queries[0].replace("{t}", "tid_col")
                ))
                .unwrap()
                .unwrap_or_default();
                assert!(plan.to_lowercase().contains(scan), "{scan}: {plan}");
                for q in queries {
                    same(&q.replace("{t}", "tid_col"), &q.replace("{t}", "tid_heap"));
                }
            }
        }
    }

    /// Fetched rows handed up by a scan that does not project keep every column the
    /// query reads, where the query's permission entry does not list them all: policies
    /// (their quals name columns the query does not), partitions whose columns lie in
    /// another order than their parent's, inheritance children.
    #[pg_test]
    fn fetched_rows_keep_the_columns_of_policies_partitions_and_children() {
        let rows = "SELECT i AS id, (i * 7919) % 1000 AS k, 'name ' || i AS name,
            i * 1.5 AS price, date '2024-01-01' + (i % 366) AS day
            FROM generate_series(1, 4000) i";
        run(&format!("CREATE TABLE src AS {rows}"));
        run("CREATE ROLE epiphany_rls_reader");
        for (t, using) in [("h", ""), ("c", "USING epiphany_columnar")] {
            // A policy on a column the queries below do not name.
            run(&format!(
                "CREATE TABLE pol_{t} (id int, k int, name text, price numeric, day date) {using}"
            ));
            run(&format!("INSERT INTO pol_{t} SELECT * FROM src"));
            run(&format!("CREATE INDEX ON pol_{t} (id)"));
            run(&format!("ALTER TABLE pol_{t} ENABLE ROW LEVEL SECURITY"));
            run(&format!(
                "CREATE POLICY p ON pol_{t} USING (day < '2024-06-01' AND k % 3 <> 0)"
            ));
            run(&format!("GRANT SELECT ON pol_{t} TO epiphany_rls_reader"));
            // Partitions with their columns in another order, one added as a child.
            run(&format!("CREATE TABLE part_{t} (id int, k int, name text, price numeric, day date) PARTITION BY RANGE (id)"));
            run(&format!("CREATE TABLE part_{t}_1 (day date, price numeric, name text, k int, id int) {using}"));
            run(&format!(
                "ALTER TABLE part_{t} ATTACH PARTITION part_{t}_1 FOR VALUES FROM (0) TO (2000)"
            ));
            run(&format!("CREATE TABLE part_{t}_2 PARTITION OF part_{t} FOR VALUES FROM (2000) TO (10000) {using}"));
            run(&format!("INSERT INTO part_{t} SELECT * FROM src"));
            run(&format!("CREATE INDEX ON part_{t} (id)"));
            run(&format!(
                "CREATE TABLE inh_{t} (id int, k int, name text, price numeric, day date) {using}"
            ));
            run(&format!(
                "CREATE TABLE inh_{t}_child (extra int) INHERITS (inh_{t}) {using}"
            ));
            run(&format!(
                "INSERT INTO inh_{t} SELECT * FROM src WHERE id % 2 = 0"
            ));
            run(&format!(
                "INSERT INTO inh_{t}_child SELECT *, id FROM src WHERE id % 2 = 1"
            ));
            run(&format!("CREATE INDEX ON inh_{t} (id)"));
            run(&format!("CREATE INDEX ON inh_{t}_child (id)"));
            run(&format!(
                "GRANT SELECT ON part_{t}, inh_{t} TO epiphany_rls_reader"
            ));
        }
        run("GRANT SELECT ON src TO epiphany_rls_reader");
        run(
            "CREATE TABLE keys2 AS SELECT (g * 37) % 4000 + 1 AS id FROM generate_series(1, 600) g",
        );
        run("GRANT SELECT ON keys2 TO epiphany_rls_reader");
        let queries = [
            "SELECT t.name, t.price FROM keys2 JOIN pol_{t} t USING (id)",
            "SELECT count(*), sum(t.price) FROM keys2 JOIN pol_{t} t USING (id)",
            "SELECT t.name, t.price, t.day FROM keys2 JOIN part_{t} t USING (id)",
            "SELECT t.k, t::text FROM keys2 JOIN part_{t} t USING (id) WHERE t.id > 1500",
            "SELECT t.name, t.price FROM keys2 JOIN inh_{t} t USING (id)",
        ];
        run("SET LOCAL enable_seqscan = off");
        run("SET LOCAL enable_bitmapscan = off");
        run("SET LOCAL epiphany.enable_columnar_scan = off");
        run("SET LOCAL ROLE epiphany_rls_reader");
        for q in queries {
            same(&q.replace("{t}", "c"), &q.replace("{t}", "h"));
        }
        // The policy really filters (the comparison above is not between two full sets).
        assert!(count("SELECT count(*) FROM pol_c") < 4000);
        run("RESET ROLE");
    }

    /// A bitmap too large for work_mem goes lossy (every offset of a TID block, each
    /// rechecked); PostgreSQL 18 scans return rows in storage order, in batches. Both
    /// answer like heap.
    #[pg_test]
    fn lossy_and_exact_bitmap_scans_answer_like_heap() {
        let rows = "SELECT i AS id, ((i::bigint * 7919) % 1000)::int AS k, 'n' || (i % 977) AS name
            FROM generate_series(1, 700000) i";
        run(&format!("CREATE TABLE bm_heap AS {rows}"));
        run("CREATE TABLE bm_col (id int, k int, name text) USING epiphany_columnar WITH (order_by = 'k')");
        run("INSERT INTO bm_col SELECT * FROM bm_heap");
        for t in ["bm_heap", "bm_col"] {
            run(&format!("CREATE INDEX ON {t} (id)"));
            run(&format!("ANALYZE {t}"));
        }
        run("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off");
        run("SET LOCAL epiphany.enable_columnar_scan = off");
        let queries = [
            "SELECT k, name FROM {t} WHERE id BETWEEN 100 AND 650000 AND k % 7 = 0",
            "SELECT count(*), sum(k), max(name) FROM {t} WHERE id > 5000",
            "SELECT id FROM {t} WHERE id BETWEEN 300000 AND 300500 OR id < 50",
        ];
        for work_mem in ["64kB", "64MB"] {
            run(&format!("SET LOCAL work_mem = '{work_mem}'"));
            let plan = crate::testing::sql::explain_analyze(&queries[1].replace("{t}", "bm_col"));
            assert!(plan.contains("Bitmap Heap Scan"), "{plan}");
            assert_eq!(
                plan.contains("lossy="),
                work_mem == "64kB",
                "{work_mem}: {plan}"
            );
            for q in queries {
                same(&q.replace("{t}", "bm_col"), &q.replace("{t}", "bm_heap"));
            }
        }
    }
}
