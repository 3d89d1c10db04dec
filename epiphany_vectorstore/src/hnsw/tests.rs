//! `#[pg_test]`s of epiphany_hnsw: recall floors against exact answers computed in the
//! same test, inserts after the build, filtered search, and bad input. VACUUM (which cannot
//! run inside a test's transaction), crashes, standbys and dumps are tested against a
//! running server in `tests/integration`.

#[pgrx::pg_schema]
mod tests {
    use crate::test_support::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn recall_holds_after_build_and_after_inserts_for_every_opclass() {
        start();
        for (opclass, op) in [
            ("vector_l2_ops", "<->"),
            ("vector_ip_ops", "<#>"),
            ("vector_cosine_ops", "<=>"),
        ] {
            let queries = setup(
                "epiphany_hnsw",
                16,
                opclass,
                2000,
                "m = 12, ef_construction = 64",
            );
            let q = format!(
                "SELECT id FROM items ORDER BY v {op} {}::vector LIMIT 10",
                literal(&queries[0])
            );
            run("SET LOCAL enable_seqscan = off");
            assert!(
                plan(&q).contains("Index Scan using items_v"),
                "{}",
                plan(&q)
            );
            run("SET LOCAL enable_seqscan = on");
            let r = recall(op, &queries, "");
            assert!(r >= 0.95, "{opclass}: recall@10 after build {r}");
            load(2000, &points(1500, 16, 12));
            let r = recall(op, &queries, "");
            assert!(r >= 0.95, "{opclass}: recall@10 after inserts {r}");
            run("DROP TABLE items");
        }
    }

    #[pg_test]
    fn filtered_search_returns_limit_rows() {
        start();
        let queries = setup(
            "epiphany_hnsw",
            16,
            "vector_l2_ops",
            3000,
            "m = 12, ef_construction = 64",
        );
        run("UPDATE items SET category = 100 WHERE id IN (7, 333, 1201, 1500, 1777, 2001, 2222, 2500, 2801, 2999, 42, 1000)");
        run("SET LOCAL enable_seqscan = off");
        for q in queries.iter().take(5) {
            let lit = literal(q);
            let common = ids(&format!(
                "SELECT id FROM items WHERE category = 3 ORDER BY v <-> {lit} LIMIT 10"
            ));
            assert_eq!(common.len(), 10);
            let rare = ids(&format!(
                "SELECT id FROM items WHERE category = 100 ORDER BY v <-> {lit} LIMIT 10"
            ));
            assert_eq!(rare.len(), 10, "a filter matching 12 of 3000 rows");
        }
        // The backend's vector cache changes no answer.
        let q = format!(
            "SELECT id FROM items ORDER BY v <-> {} LIMIT 10",
            literal(&queries[1])
        );
        let cached = ids(&q);
        run("SET LOCAL epiphany.hnsw_vector_cache = 0");
        assert_eq!(ids(&q), cached);
        run("RESET epiphany.hnsw_vector_cache");
        run("RESET enable_seqscan");
        let r = recall("<->", &queries, "WHERE category = 3");
        assert!(r >= 0.9, "filtered recall@10 {r}");
        // With the bound at the first round's size, the scan stops early.
        run("SET LOCAL epiphany.hnsw_max_scan_tuples = 40");
        run("SET LOCAL enable_seqscan = off");
        let rare = ids(&format!(
            "SELECT id FROM items WHERE category = 100 ORDER BY v <-> {} LIMIT 10",
            literal(&queries[0])
        ));
        assert!(rare.len() < 10);
    }

    #[pg_test]
    fn a_build_that_outgrows_maintenance_work_mem_finishes_on_disk() {
        start();
        run("SET LOCAL maintenance_work_mem = '1MB'");
        let queries = setup(
            "epiphany_hnsw",
            64,
            "vector_l2_ops",
            4000,
            "m = 12, ef_construction = 64",
        );
        let r = recall("<->", &queries, "");
        assert!(r >= 0.95, "recall@10 {r}");
    }

    #[pg_test]
    fn equal_vectors_nulls_and_zero_vectors() {
        start();
        run("CREATE TABLE items (id int, category int, v vector)");
        run("INSERT INTO items SELECT i, 0, '[1,2,3]' FROM generate_series(1, 25) i");
        run("INSERT INTO items SELECT i, 0, NULL FROM generate_series(26, 30) i");
        run("INSERT INTO items VALUES (31, 0, '[0,0,0]'), (32, 0, '[3,2,1]')");
        run("CREATE INDEX items_v ON items USING epiphany_hnsw (v vector_cosine_ops)");
        run("INSERT INTO items SELECT i, 0, '[1,2,3]' FROM generate_series(33, 40) i");
        run("INSERT INTO items VALUES (41, 0, NULL), (42, 0, '[0,0,0]')");
        run("SET LOCAL enable_seqscan = off");
        let all = ids("SELECT id FROM items ORDER BY v <=> '[1,2,3]' LIMIT 100");
        // Every non-null row; equal vectors first, zero vectors (no direction) last.
        if all.len() != 36 {
            panic!(
                "{all:?} {}",
                plan("SELECT id FROM items ORDER BY v <=> '[1,2,3]' LIMIT 100")
            );
        }
        assert!(all[..33]
            .iter()
            .all(|&id| id <= 25 || (33..=40).contains(&id)));
        assert_eq!(all[33], 32);
        let mut tail = all[34..].to_vec();
        tail.sort();
        assert_eq!(tail, vec![31, 42]);
        // A NULL query (a parameter of a generic plan) returns every non-null row.
        run("SET LOCAL plan_cache_mode = force_generic_plan");
        run("PREPARE near(vector) AS SELECT id FROM items ORDER BY v <=> $1 LIMIT 100");
        assert_eq!(ids("EXECUTE near(NULL)").len(), 36);
        run("DEALLOCATE near");
    }

    #[pg_test(error = "expected 3 dimensions, not 2")]
    fn inserting_other_dimensions_is_an_error() {
        start();
        run("CREATE TABLE items (id int, v vector)");
        run("INSERT INTO items VALUES (1, '[1,2,3]')");
        run("CREATE INDEX ON items USING epiphany_hnsw (v)");
        run("INSERT INTO items VALUES (2, '[1,2]')");
    }

    #[pg_test(error = "the query vector has 2 dimensions, the index 3")]
    fn a_query_of_other_dimensions_is_an_error() {
        start();
        run("CREATE TABLE items (id int, v vector(3))");
        run("INSERT INTO items VALUES (1, '[1,2,3]')");
        run("CREATE INDEX ON items USING epiphany_hnsw (v)");
        run("SET LOCAL enable_seqscan = off");
        ids("SELECT id FROM items ORDER BY v <-> '[1,2]' LIMIT 1");
    }

    #[pg_test(
        error = "vectors of 3000 dimensions do not fit an epiphany_hnsw index with m = 16 (at most 1926)"
    )]
    fn too_many_dimensions_is_an_error() {
        start();
        run("CREATE TABLE items (id int, v vector(3000))");
        run("CREATE INDEX ON items USING epiphany_hnsw (v)");
    }

    #[pg_test(error = "value 1 out of bounds for option \"m\"")]
    fn bad_options_are_errors() {
        start();
        run("CREATE TABLE items (id int, v vector(3))");
        run("CREATE INDEX ON items USING epiphany_hnsw (v) WITH (m = 1)");
    }

    #[pg_test]
    fn options_show_in_the_catalog_and_need_order_by() {
        start();
        run("CREATE TABLE items (id int, v vector(3))");
        run("INSERT INTO items SELECT i, ARRAY[i, i, i]::real[]::vector FROM generate_series(1, 100) i");
        run("CREATE INDEX items_v ON items USING epiphany_hnsw (v) WITH (m = 8, ef_construction = 32)");
        assert_eq!(
            one::<String>(
                "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'items_v'"
            ),
            Some("m=8,ef_construction=32".into())
        );
        run("SET LOCAL enable_seqscan = off");
        // A WHERE on the vector alone cannot use the index.
        assert!(!plan("SELECT id FROM items WHERE v = '[1,1,1]'").contains("items_v"));
        assert_eq!(
            ids("SELECT id FROM items ORDER BY v <-> '[50,50,50]' LIMIT 3"),
            vec![50, 49, 51]
        );
    }

    /// `enable_seqscan = off` must not push a query without ORDER BY onto a vector index
    /// (PostgreSQL 18 compares disabled nodes before costs).
    #[pg_test]
    fn queries_without_order_by_do_not_use_vector_indexes_when_seqscan_is_off() {
        start();
        run("CREATE TABLE items (id int, v vector(3))");
        run("INSERT INTO items SELECT i, ARRAY[i, 1, 2]::real[]::vector FROM generate_series(1, 100) i");
        run("INSERT INTO items VALUES (101, NULL)");
        run("CREATE INDEX items_hnsw ON items USING epiphany_hnsw (v)");
        run("CREATE INDEX items_ivf ON items USING epiphany_ivfpq (v) WITH (lists = 4)");
        run("SET LOCAL enable_seqscan = off");
        assert_eq!(one::<i64>("SELECT count(*) FROM items"), Some(101));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM items WHERE v IS NULL"),
            Some(1)
        );
        assert_eq!(
            ids("SELECT id FROM items ORDER BY v <-> '[3,1,2]' LIMIT 1"),
            vec![3]
        );
    }
}
