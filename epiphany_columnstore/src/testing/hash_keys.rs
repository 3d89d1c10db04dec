//! Hash key filters (`custom_scan::hash_keys`) against heap and against themselves
//! switched off: inner, semi, right, left and anti joins on int2, int4, int8 and date
//! keys (one or two, cross-type), NULL keys, skewed keys, private and parallel hash
//! tables, joins spilled to several batches.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::testing::sql::{explain, explain_analyze, explain_with, run, same};

    fn load() {
        run("DROP TABLE IF EXISTS hk_fact_heap, hk_fact, hk_dim_heap, hk_dim");
        let fact = "(id int, k2 int2, k4 int4, k8 int8, d date, v numeric(12,2))";
        run(&format!("CREATE TABLE hk_fact_heap {fact}"));
        // A third of the rows share seven keys (skew), one in 23 has NULL keys.
        run("INSERT INTO hk_fact_heap SELECT i,
                CASE WHEN i % 23 = 0 THEN NULL ELSE (i % 3000)::int2 END,
                CASE WHEN i % 23 = 0 THEN NULL WHEN i % 3 = 0 THEN i % 7 ELSE i % 5000 END,
                CASE WHEN i % 23 = 0 THEN NULL ELSE (i % 4000)::int8 * 1000000007 END,
                date '2020-01-01' + (i % 1500), (i % 997) * 1.25
             FROM generate_series(1, 40000) i");
        run(&format!(
            "CREATE TABLE hk_fact {fact} USING epiphany_columnar WITH (order_by = 'id', granule_rows = 1000)"
        ));
        run("INSERT INTO hk_fact SELECT * FROM hk_fact_heap");
        let dim = "(k2 int2, k4 int4, k8 int8, d date, label text)";
        run(&format!("CREATE TABLE hk_dim_heap {dim}"));
        // Keys of a few fact rows each (some twice, some none), and NULLs.
        run("INSERT INTO hk_dim_heap SELECT
                CASE WHEN j % 50 = 0 THEN NULL ELSE (j * 37 % 3500)::int2 END,
                CASE WHEN j % 50 = 0 THEN NULL ELSE j * 37 % 6000 END,
                CASE WHEN j % 50 = 0 THEN NULL ELSE (j * 37 % 4500)::int8 * 1000000007 END,
                date '2020-01-01' + (j * 37 % 2000), 'l' || (j % 10)
             FROM generate_series(1, 400) j");
        run(&format!(
            "CREATE TABLE hk_dim {dim} USING epiphany_columnar"
        ));
        run("INSERT INTO hk_dim SELECT * FROM hk_dim_heap");
        for t in ["hk_fact_heap", "hk_fact", "hk_dim_heap", "hk_dim"] {
            run(&format!("ANALYZE {t}"));
        }
        run("SET enable_mergejoin = off");
        run("SET enable_nestloop = off");
    }

    /// Queries whose fact scan is the outer side of a hash join that filters.
    const FILTERED: &[&str] = &[
        "SELECT f.id, f.v, d.label FROM {f} f JOIN {d} d ON f.k4 = d.k4",
        "SELECT count(*), sum(f.v) FROM {f} f JOIN {d} d ON f.k4 = d.k4 WHERE d.label = 'l3'",
        "SELECT f.id, d.label FROM {f} f JOIN {d} d ON f.k8 = d.k8",
        "SELECT f.id FROM {f} f JOIN {d} d ON f.k2 = d.k2",
        "SELECT f.id, d.k8 FROM {f} f JOIN {d} d ON f.k4 = d.k8",
        "SELECT f.id, d.label FROM {f} f JOIN {d} d ON f.d = d.d",
        "SELECT f.id FROM {f} f JOIN {d} d ON f.k4 = d.k4 AND f.k8 = d.k8",
        "SELECT f.id, f.k4 FROM {f} f WHERE f.k4 IN (SELECT k4 FROM {d} WHERE label <> 'l1')",
        "SELECT f.id, f.k4 FROM {f} f WHERE f.id > 1000 AND f.k2 IN (SELECT k2 FROM {d})",
    ];

    /// Joins that return outer rows without a match: no filter.
    const UNFILTERED: &[&str] = &[
        "SELECT f.id, d.label FROM {f} f LEFT JOIN {d} d ON f.k4 = d.k4",
        "SELECT f.id FROM {f} f WHERE NOT EXISTS (SELECT FROM {d} d WHERE d.k4 = f.k4)",
        "SELECT f.id, d.label FROM {f} f FULL JOIN {d} d ON f.k8 = d.k8",
    ];

    fn on(q: &str, heap: bool) -> String {
        let (f, d) = if heap {
            ("hk_fact_heap", "hk_dim_heap")
        } else {
            ("hk_fact", "hk_dim")
        };
        q.replace("{f}", f).replace("{d}", d)
    }

    fn check(queries: &[&str], filtered: bool) {
        for q in queries {
            let col = on(q, false);
            run("SET epiphany.enable_hash_key_filter = on");
            let plan = explain(&col);
            assert_eq!(
                plan.contains("Hash Key Filter: "),
                filtered,
                "{col}\n{plan}"
            );
            let analyzed = explain_analyze(&col);
            if filtered {
                assert!(analyzed.contains(" inner rows; "), "{col}\n{analyzed}");
            }
            let with = format!("SELECT * FROM ({col}) x");
            let heap = on(q, true);
            same(&with, &heap);
            run("SET epiphany.enable_hash_key_filter = off");
            assert!(!explain(&col).contains("Hash Key Filter"), "{col}");
            same(&col, &heap);
            run("SET epiphany.enable_hash_key_filter = on");
        }
    }

    #[pg_test]
    fn hash_key_filters_answer_like_heap_serial_and_parallel() {
        run("SET max_parallel_workers_per_gather = 0");
        load();
        check(FILTERED, true);
        check(UNFILTERED, false);
        run("SET max_parallel_workers_per_gather = 2");
        run("SET parallel_setup_cost = 0");
        run("SET parallel_tuple_cost = 0");
        run("SET min_parallel_table_scan_size = 0");
        let plan = explain(&on(FILTERED[0], false));
        assert!(plan.contains("Parallel Hash"), "{plan}");
        check(FILTERED, true);
        // A private hash table under a parallel scan (each participant builds its own).
        run("SET enable_parallel_hash = off");
        let plan = explain(&on(FILTERED[0], false));
        assert!(plan.contains("Parallel Custom Scan") && !plan.contains("Parallel Hash"));
        check(FILTERED, true);
        check(UNFILTERED, false);
    }

    #[pg_test]
    fn hash_key_filter_holds_every_inner_row_and_says_what_it_did() {
        run("SET max_parallel_workers_per_gather = 0");
        load();
        // The inner rows with a key (NULL keys never enter the hash table), skew buckets
        // included: the outer side's most common keys are hashed apart.
        let q = "SELECT count(*) FROM hk_fact f JOIN hk_dim d ON f.k4 = d.k4";
        let plan = explain_analyze(q);
        assert!(
            plan.contains("Hash Key Filter: k4 (from 392 inner rows; "),
            "{plan}"
        );
        let plan = explain_analyze(&format!("{q} WHERE d.label = 'l3'"));
        assert!(plan.contains("(from 40 inner rows; "), "{plan}");
        // The rows the join matched all passed; most others were dropped.
        let kept: i64 = plan_number(&plan, " inner rows; ", " of ");
        let matched = crate::testing::sql::one::<i64>(
            "SELECT count(*) FROM hk_fact_heap f JOIN hk_dim_heap d ON f.k4 = d.k4 WHERE d.label = 'l3'",
        )
        .unwrap();
        assert!(kept >= matched && kept < matched + 2000, "{plan}");
        // Several batches: the table holds one, so nothing is filtered (and all is right).
        run("CREATE TEMP TABLE hk_keys AS SELECT DISTINCT k8, repeat('x', 200) AS pad FROM hk_fact_heap WHERE id % 2 = 0");
        run("ANALYZE hk_keys");
        run("SET work_mem = '64kB'");
        let big = "SELECT count(*), sum(f.v), sum(length(g.pad)) FROM hk_fact f JOIN hk_keys g ON f.k8 = g.k8";
        let plan = explain_analyze(big);
        assert!(
            plan.contains("Batches: ") && !plan.contains("Batches: 1 "),
            "{plan}"
        );
        assert!(
            plan.contains("(not used: the hash join went to several batches)"),
            "{plan}"
        );
        same(big, &big.replace("hk_fact f", "hk_fact_heap f"));
        run("RESET work_mem");
        // VERBOSE says why a join's scan does not filter.
        let plan = explain_with("VERBOSE, COSTS OFF", &on(UNFILTERED[0], false));
        assert!(
            plan.contains("Hash Key Filter: not used: the join returns outer rows without a match"),
            "{plan}"
        );
    }

    /// The number in `plan` between `after` and `before`.
    fn plan_number(plan: &str, after: &str, before: &str) -> i64 {
        let rest = &plan[plan.find(after).unwrap_or_else(|| panic!("{plan}")) + after.len()..];
        rest[..rest.find(before).unwrap()].trim().parse().unwrap()
    }

    /// PostgreSQL 18's right semi join returns inner rows an outer row matched: the
    /// outer columnar scan filters, and hashing the small side is priced with that.
    #[cfg(feature = "pg18")]
    #[pg_test]
    fn a_right_semi_join_probes_a_filtered_columnar_scan() {
        run("SET max_parallel_workers_per_gather = 0");
        load();
        run("RESET enable_nestloop");
        // Not the fact keys made unique first (a hashed aggregate).
        run("SET enable_hashagg = off");
        let q =
            "SELECT d.label, d.k4 FROM {d} d WHERE EXISTS (SELECT FROM {f} f WHERE f.k4 = d.k4)";
        let plan = explain(&on(q, false));
        assert!(
            plan.contains("Hash Right Semi Join") && plan.contains("Hash Key Filter: k4"),
            "{plan}"
        );
        same(&on(q, false), &on(q, true));
    }
}
