//! epiphany_hnsw against a real server: VACUUM and a streaming standby, `kill -9` during
//! a build and during inserts, dump and restore.

use epiphany_integration_tests::Cluster;
use postgres::Client;

/// Element `d` of row `g`: 20 clusters along the diagonal, each element spread by a
/// deterministic hash of (g, d) in [-0.5, 0.5) so that no two rows tie on distance.
fn element(g: &str, d: &str) -> String {
    let h = format!("sin({g} * 12.9898 + {d} * 78.233) * 43758.5453");
    format!("({g} % 20) * 0.7 + ({h} - floor({h})) - 0.5")
}

/// Rows `first..=last` of clustered 8-dimensional vectors, deterministic.
fn insert_rows(c: &mut Client, first: i32, last: i32) {
    c.batch_execute(&format!(
        "INSERT INTO items
           SELECT g, g % 10, ARRAY(SELECT {} FROM generate_series(1, 8) d)::real[]::vector
             FROM generate_series({first}, {last}) g",
        element("g", "d")
    ))
    .unwrap();
}

/// The query vectors: points between the clusters.
fn queries() -> Vec<String> {
    (0..40)
        .map(|i| {
            let parts: Vec<String> = (1..=8)
                .map(|d| {
                    format!(
                        "{:.3}",
                        (i % 20) as f64 * 0.7 + ((i * 13 + d) as f64).cos() * 0.4
                    )
                })
                .collect();
            format!("[{}]", parts.join(","))
        })
        .collect()
}

/// Three writers insert 10-row transactions (every third rolled back) until the server
/// is killed, 3 s after they start.
fn insert_until_killed(cluster: &Cluster) {
    std::thread::scope(|scope| {
        for w in 0..3 {
            scope.spawn(move || {
                let Ok(mut c) = std::panic::catch_unwind(|| cluster.connect("app")) else {
                    return;
                };
                for i in 0.. {
                    let first = 100_000 + w * 1_000_000 + i * 10;
                    let sql = format!(
                        "BEGIN; INSERT INTO items SELECT g, 0, ARRAY(SELECT {}
                             FROM generate_series(1, 8) d)::real[]::vector FROM generate_series({first}, {}) g; {}",
                        element("g", "d"),
                        first + 9,
                        if i % 3 == 2 { "ROLLBACK" } else { "COMMIT" }
                    );
                    if c.batch_execute(&sql).is_err() {
                        return;
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_secs(3));
        cluster.kill9();
    });
}

fn top10(c: &mut Client, q: &str, index: bool) -> Vec<i32> {
    let settings = if index {
        "SET enable_seqscan = off; SET enable_indexscan = on"
    } else {
        "SET enable_seqscan = on; SET enable_indexscan = off"
    };
    c.batch_execute(settings).unwrap();
    c.query(
        &format!("SELECT id FROM items ORDER BY v <-> '{q}' LIMIT 10"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn recall(c: &mut Client) -> f64 {
    // The answers must come from the index, or the comparison proves nothing.
    c.batch_execute("SET enable_seqscan = off; SET enable_indexscan = on")
        .unwrap();
    let plan: String = c
        .query(
            &format!(
                "EXPLAIN SELECT id FROM items ORDER BY v <-> '{}' LIMIT 10",
                queries()[0]
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(plan.contains("Index Scan using items_v"), "{plan}");
    let (mut hits, mut wanted) = (0, 0);
    for q in queries() {
        let exact = top10(c, &q, false);
        let found = top10(c, &q, true);
        wanted += exact.len();
        hits += found.iter().filter(|id| exact.contains(id)).count();
    }
    hits as f64 / wanted as f64
}

fn setup(c: &mut Client) {
    c.batch_execute(
        "SET search_path = public, epiphany;
         ALTER DATABASE app SET search_path = public, epiphany;
         CREATE TABLE items (id int, category int, v vector(8))",
    )
    .unwrap();
}

/// Three rounds of DELETE (a quarter of the rows), VACUUM and 1000 inserts on a primary
/// with an index `items_v`; then recall holds, the last VACUUM counted the index's rows
/// exactly, and the standby returns the same top-10. Returns the rows an index scan over
/// everything finds and the table's rows.
fn vacuum_cycles_on_a_primary(primary: &Cluster, p: &mut Client, standby: &Cluster) -> (i64, i64) {
    let mut next = 4001;
    for round in 0..3 {
        p.batch_execute(&format!("DELETE FROM items WHERE id % 4 = {round}"))
            .unwrap();
        p.batch_execute("VACUUM items").unwrap();
        insert_rows(p, next, next + 999);
        next += 1000;
    }
    let r = recall(p);
    assert!(
        r >= 0.95,
        "recall@10 after delete/VACUUM/insert cycles: {r}"
    );
    let (through, rows) = all_through_index(p);
    let counted: f32 = p
        .query_one(
            "SELECT reltuples FROM pg_class WHERE relname = 'items_v'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        counted as i64,
        rows - 1000,
        "rows VACUUM counted in the index"
    );
    standby.wait_for_replay(primary);
    let mut s = standby.connect("app");
    for q in queries() {
        assert_eq!(top10(p, &q, true), top10(&mut s, &q, true), "query {q}");
    }
    (through, rows)
}

#[test]
fn vacuum_cycles_reach_a_standby_and_recall_holds() {
    let primary = Cluster::start_new("hnsw_primary");
    let mut p = primary.create_db_with_suite("app");
    setup(&mut p);
    insert_rows(&mut p, 1, 4000);
    p.batch_execute("CREATE INDEX items_v ON items USING epiphany_hnsw (v) WITH (m = 8)")
        .unwrap();
    let standby = Cluster::start_standby(&primary, "hnsw_standby");
    let (through_index, rows) = vacuum_cycles_on_a_primary(&primary, &mut p, &standby);
    // Deleted rows are gone from the index, not just filtered by visibility.
    assert!(
        through_index as f64 >= rows as f64 * 0.99 && through_index <= rows,
        "{through_index} rows through the index, {rows} in the table"
    );
}

#[test]
fn kill_9_during_a_build_and_during_inserts_leaves_a_usable_index() {
    let cluster = Cluster::start_new("hnsw_crash");
    let mut c = cluster.create_db_with_suite("app");
    setup(&mut c);
    insert_rows(&mut c, 1, 60000);
    c.batch_execute("CHECKPOINT").unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut b = cluster.connect("app");
            // The server dies under it.
            let _ = b.batch_execute(
                "SET maintenance_work_mem = '1MB'; CREATE INDEX items_v ON items USING epiphany_hnsw (v)",
            );
        });
        std::thread::sleep(std::time::Duration::from_millis(2500));
        cluster.kill9();
    });
    cluster.start();
    let mut c = cluster.connect_when_ready("app");
    let leftover: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'items_v'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leftover, 0, "the interrupted build left an index behind");
    // (In one transaction with the DELETE, the build would index the deleted rows too.)
    // The same for an IVF-PQ build: whenever the kill lands, the index is either absent
    // or complete and usable.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut b = cluster.connect("app");
            let _ = b.batch_execute(
                "CREATE INDEX items_ivf ON items USING epiphany_ivfpq (v) WITH (lists = 100)",
            );
        });
        std::thread::sleep(std::time::Duration::from_millis(400));
        cluster.kill9();
    });
    cluster.start();
    let mut c = cluster.connect_when_ready("app");
    let built: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'items_ivf'",
            &[],
        )
        .unwrap()
        .get(0);
    if built == 1 {
        c.batch_execute("SET enable_seqscan = off").unwrap();
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 100000) s",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 60000, "a complete IVF-PQ index returns every row");
    }
    c.batch_execute("DROP INDEX IF EXISTS items_ivf; SET enable_seqscan = on")
        .unwrap();
    c.batch_execute("DELETE FROM items WHERE id > 5000")
        .unwrap();
    c.batch_execute("VACUUM items").unwrap();
    c.batch_execute("CREATE INDEX items_v ON items USING epiphany_hnsw (v)")
        .unwrap();

    insert_until_killed(&cluster);
    cluster.start();
    let mut c = cluster.connect_when_ready("app");
    let rows: i64 = c
        .query_one("SELECT count(*) FROM items", &[])
        .unwrap()
        .get(0);
    assert!(rows > 5000, "no insert committed before the crash");
    let rows: i64 = c
        .query_one("SELECT count(*) FROM items WHERE v IS NOT NULL", &[])
        .unwrap()
        .get(0);
    c.batch_execute("SET enable_seqscan = off; SET epiphany.hnsw_max_scan_tuples = 1000000")
        .unwrap();
    let through_index: i64 = c
        .query_one(
            "SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 1000000) s",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        through_index as f64 >= rows as f64 * 0.99 && through_index <= rows,
        "{through_index} rows through the index, {rows} in the table"
    );
    let r = recall(&mut c);
    assert!(r >= 0.95, "recall@10 after the crash: {r}");
    insert_rows(&mut c, 2_000_000, 2_000_100);
}

#[test]
fn dump_and_restore_recreate_the_index() {
    let cluster = Cluster::start_new("hnsw_dump");
    let mut src = cluster.create_db_with_suite("app");
    setup(&mut src);
    insert_rows(&mut src, 1, 3000);
    src.batch_execute(
        "CREATE INDEX items_v ON items USING epiphany_hnsw (v vector_l2_ops) WITH (m = 10, ef_construction = 40)",
    )
    .unwrap();
    cluster.dump_and_restore("app", "restored");
    let mut dst = cluster.connect("restored");
    dst.batch_execute("SET search_path = public, epiphany")
        .unwrap();
    let def = |c: &mut Client| -> String {
        c.query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'items_v'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(def(&mut src), def(&mut dst));
    assert!(def(&mut dst).contains("epiphany_hnsw"));
    // The same rows; the graph itself differs (a build uses several threads), so the
    // answers are compared with the exact ones.
    let count = |c: &mut Client| -> i64 {
        c.query_one("SELECT count(*) FROM items", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(count(&mut src), count(&mut dst));
    for c in [&mut src, &mut dst] {
        let r = recall(c);
        assert!(r >= 0.95, "recall@10 {r}");
    }
}

#[test]
fn a_damaged_index_is_an_error_never_a_crash() {
    let cluster = Cluster::start_new("hnsw_corrupt");
    let mut c = cluster.create_db_with_suite("app");
    setup(&mut c);
    insert_rows(&mut c, 1, 2000);
    c.batch_execute("CREATE INDEX items_v ON items USING epiphany_hnsw (v); CHECKPOINT")
        .unwrap();
    let path: String = c
        .query_one(
            "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('items_v')",
            &[],
        )
        .unwrap()
        .get(0);
    drop(c);
    cluster.stop(epiphany_integration_tests::Stop::Fast);
    // Every node of every node page gets an unknown format version.
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / 8192;
    assert!(pages > 2);
    for page in bytes.chunks_mut(8192).skip(1) {
        let lower = u16::from_le_bytes([page[12], page[13]]) as usize;
        for lp in (24..lower).step_by(4) {
            let word = u32::from_le_bytes(page[lp..lp + 4].try_into().unwrap());
            let off = (word & 0x7fff) as usize;
            if off > 0 && off < 8192 {
                page[off] = 0x7f;
            }
        }
    }
    std::fs::write(&path, &bytes).unwrap();
    cluster.start();
    let mut c = cluster.connect_when_ready("app");
    c.batch_execute("SET enable_seqscan = off; SET ignore_checksum_failure = on")
        .unwrap();
    let err = c
        .query(
            &format!(
                "SELECT id FROM items ORDER BY v <-> '{}' LIMIT 10",
                queries()[0]
            ),
            &[],
        )
        .unwrap_err();
    let db = err
        .as_db_error()
        .expect("a server error, not a lost connection");
    assert_eq!(db.code().code(), "XX001", "{db}");
    assert!(db.message().contains("HNSW node: unknown version"), "{db}");
    // Inserts meet the same error; the server stays up and REINDEX repairs the index.
    assert!(c
        .batch_execute(&format!(
            "INSERT INTO items VALUES (0, 0, '{}')",
            queries()[1]
        ))
        .is_err());
    c.batch_execute("REINDEX INDEX items_v").unwrap();
    assert!(recall(&mut c) >= 0.95);
}

/// Rows an index scan returns when it may read every list (IVF-PQ keeps going until it has
/// returned every candidate), and the table's rows.
fn all_through_index(c: &mut Client) -> (i64, i64) {
    c.batch_execute(
        "SET enable_seqscan = off; SET epiphany.ivf_max_probes = 0; SET epiphany.hnsw_max_scan_tuples = 1000000",
    )
    .unwrap();
    let through: i64 = c
        .query_one(
            "SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 1000000) s",
            &[],
        )
        .unwrap()
        .get(0);
    c.batch_execute("SET enable_seqscan = on").unwrap();
    let rows: i64 = c
        .query_one("SELECT count(*) FROM items WHERE v IS NOT NULL", &[])
        .unwrap()
        .get(0);
    (through, rows)
}

#[test]
fn ivfpq_vacuum_standby_dump_and_kill_9() {
    let primary = Cluster::start_new("ivfpq_primary");
    let mut p = primary.create_db_with_suite("app");
    setup(&mut p);
    insert_rows(&mut p, 1, 4000);
    p.batch_execute(
        "CREATE INDEX items_v ON items USING epiphany_ivfpq (v) WITH (lists = 20, pq_m = 4)",
    )
    .unwrap();
    let standby = Cluster::start_standby(&primary, "ivfpq_standby");
    let (through, rows) = vacuum_cycles_on_a_primary(&primary, &mut p, &standby);
    assert_eq!(through, rows, "every row through the index");
    drop(standby);

    primary.dump_and_restore("app", "restored");
    let mut dst = primary.connect("restored");
    dst.batch_execute("SET search_path = public, epiphany")
        .unwrap();
    let def: String = dst
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'items_v'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        def.contains("epiphany_ivfpq") && def.contains("lists='20'"),
        "{def}"
    );
    let r = recall(&mut dst);
    assert!(r >= 0.95, "recall@10 after restore: {r}");

    insert_until_killed(&primary);
    primary.start();
    let mut c = primary.connect_when_ready("app");
    let (through, rows) = all_through_index(&mut c);
    assert_eq!(
        through, rows,
        "every committed row through the index after the crash"
    );
    let r = recall(&mut c);
    assert!(r >= 0.95, "recall@10 after the crash: {r}");
}
