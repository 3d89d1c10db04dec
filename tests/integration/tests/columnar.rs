//! epiphany_columnar against a real server: concurrent writers and `kill -9`, dump and
//! restore, damaged pages.

use std::collections::BTreeMap;
use std::sync::Mutex;

use epiphany_integration_tests::Cluster;

/// What a writer's transaction ended as, from the client's side.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Committed,
    RolledBack,
    /// COMMIT was sent but the server died before answering.
    InDoubt,
}

const ROWS_PER_TXN: i64 = 40;

/// One writer: transactions of `ROWS_PER_TXN` rows in two statements with a read in
/// between (a flush in mid-transaction), plus a batch in a savepoint that is always
/// rolled back; every third transaction rolls back as a whole.
fn writer(cluster: &Cluster, session: i32, outcomes: &Mutex<BTreeMap<(i32, i32), Outcome>>) {
    let Ok(mut c) = std::panic::catch_unwind(|| cluster.connect("app")) else {
        return;
    };
    for txn in 0.. {
        let half = ROWS_PER_TXN / 2;
        let work = (|| -> Result<(), postgres::Error> {
            c.batch_execute("BEGIN")?;
            c.execute(
                "INSERT INTO events SELECT $1, $2, g, repeat('x', (g % 50)::int) FROM generate_series(1, $3::int8) g",
                &[&session, &txn, &half],
            )?;
            c.query_one(
                "SELECT count(*) FROM events WHERE session = $1",
                &[&session],
            )?;
            c.batch_execute("SAVEPOINT s")?;
            c.execute(
                "INSERT INTO events SELECT $1, $2, -g, 'discarded' FROM generate_series(1, 5) g",
                &[&session, &txn],
            )?;
            c.batch_execute("ROLLBACK TO SAVEPOINT s")?;
            c.execute(
                "INSERT INTO events SELECT $1, $2, g, repeat('y', (g % 50)::int) FROM generate_series($3::int8 + 1, $4::int8) g",
                &[&session, &txn, &half, &ROWS_PER_TXN],
            )?;
            Ok(())
        })();
        if work.is_err() {
            return; // the server went away mid-transaction: nothing of it may survive
        }
        if txn % 3 == 2 {
            outcomes
                .lock()
                .unwrap()
                .insert((session, txn), Outcome::RolledBack);
            if c.batch_execute("ROLLBACK").is_err() {
                return;
            }
            continue;
        }
        outcomes
            .lock()
            .unwrap()
            .insert((session, txn), Outcome::InDoubt);
        if c.batch_execute("COMMIT").is_err() {
            return;
        }
        outcomes
            .lock()
            .unwrap()
            .insert((session, txn), Outcome::Committed);
    }
}

#[test]
fn committed_rows_survive_kill_9_exactly_once_and_aborted_rows_never_appear() {
    let cluster = Cluster::start_new("columnar_crash");
    let mut admin = cluster.create_db_with_suite("app");
    admin
        .batch_execute(
            "CREATE TABLE events (session int, txn int, n int8, payload text)
                 USING epiphany_columnar WITH (order_by = 'payload, n', granule_rows = 64);
             CREATE INDEX events_txn ON events (session, txn);",
        )
        .unwrap();
    let outcomes = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for session in 0..4 {
            let (cluster, outcomes) = (&cluster, &outcomes);
            s.spawn(move || writer(cluster, session, outcomes));
        }
        // Let them work, then pull the plug while they are mid-flight.
        std::thread::sleep(std::time::Duration::from_secs(4));
        cluster.kill9();
    });
    cluster.start();
    let mut c = cluster.connect_when_ready("app");
    let counts: BTreeMap<(i32, i32), i64> = c
        .query(
            "SELECT session, txn, count(*) FROM events GROUP BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let outcomes = outcomes.into_inner().unwrap();
    let committed = outcomes
        .values()
        .filter(|o| **o == Outcome::Committed)
        .count();
    assert!(
        committed >= 8,
        "only {committed} transactions committed before the crash"
    );
    for (key, outcome) in &outcomes {
        let found = counts.get(key).copied().unwrap_or(0);
        match outcome {
            Outcome::Committed => assert_eq!(found, ROWS_PER_TXN, "committed {key:?}"),
            Outcome::RolledBack => assert_eq!(found, 0, "rolled back {key:?}"),
            Outcome::InDoubt => assert!(
                found == 0 || found == ROWS_PER_TXN,
                "in doubt {key:?}: {found}"
            ),
        }
    }
    for key in counts.keys() {
        assert!(
            outcomes.contains_key(key),
            "rows of a transaction never run: {key:?}"
        );
    }
    let duplicates: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT session, txn, n FROM events GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(duplicates, 0);
    let discarded: i64 = c
        .query_one("SELECT count(*) FROM events WHERE n < 0", &[])
        .unwrap()
        .get(0);
    assert_eq!(discarded, 0, "rows of a rolled-back savepoint survived");
    // The index agrees with the table after recovery.
    c.batch_execute("SET enable_seqscan = off").unwrap();
    for (key, outcome) in outcomes
        .iter()
        .filter(|(_, o)| **o == Outcome::Committed)
        .take(20)
    {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM events WHERE session = $1 AND txn = $2",
                &[&key.0, &key.1],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, ROWS_PER_TXN, "{key:?} {outcome:?} through the index");
    }
    // And the table takes new rows after recovery.
    c.batch_execute("INSERT INTO events VALUES (99, 0, 1, 'after')")
        .unwrap();
    let after: i64 = c
        .query_one("SELECT count(*) FROM events WHERE session = 99", &[])
        .unwrap()
        .get(0);
    assert_eq!(after, 1);
}

#[test]
fn pg_dump_and_restore_keep_access_method_options_indexes_and_rows() {
    let cluster = Cluster::start_new("columnar_dump");
    let mut src = cluster.create_db_with_suite("source");
    src.batch_execute(
        "CREATE TABLE metrics (id int, at timestamptz, host text, value float8, tags jsonb)
             USING epiphany_columnar WITH (order_by = 'host, at', granule_rows = 1000, compression = 'lz4');
         INSERT INTO metrics SELECT g, timestamptz '2024-01-01' + g * interval '1 minute',
                'host' || (g % 7), g / 3.0, jsonb_build_object('g', g)
           FROM generate_series(1, 20000) g;
         CREATE INDEX metrics_id ON metrics (id);
         CREATE INDEX metrics_host ON metrics USING hash (host);",
    )
    .unwrap();
    cluster.dump_and_restore("source", "restored");

    let describe = |c: &mut postgres::Client| -> Vec<String> {
        let mut out: Vec<String> = c
            .query(
                "SELECT a.amname || ' ' || array_to_string(c.reloptions, ',')
                   FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname = 'metrics'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        out.extend(
            c.query(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'metrics' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0)),
        );
        out.push(
            c.query_one(
                "SELECT count(*) || ' ' || md5(string_agg(m::text, ',' ORDER BY id)) FROM metrics m",
                &[],
            )
            .unwrap()
            .get(0),
        );
        out
    };
    let mut restored = cluster.connect("restored");
    let before = describe(&mut src);
    assert_eq!(
        before[0],
        "epiphany_columnar order_by=host, at,granule_rows=1000,compression=lz4"
    );
    assert_eq!(describe(&mut restored), before);
    restored.batch_execute("SET enable_seqscan = off").unwrap();
    let host: String = restored
        .query_one("SELECT host FROM metrics WHERE id = 777", &[])
        .unwrap()
        .get(0);
    assert_eq!(host, "host0");
}

#[test]
fn damaged_pages_are_an_error_never_a_crash() {
    let cluster = Cluster::start_new("columnar_corrupt");
    let mut c = cluster.create_db_with_suite("app");
    c.batch_execute(
        "CREATE TABLE t (id int, s text) USING epiphany_columnar;
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
         CHECKPOINT;",
    )
    .unwrap();
    let path: String = c
        .query_one(
            "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('t')",
            &[],
        )
        .unwrap()
        .get(0);
    drop(c);
    cluster.stop(epiphany_integration_tests::Stop::Fast);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192 * 4);
    // A few bytes in the middle of a part page (past the page header and our header).
    let at = 8192 * 2 + 1000;
    for b in &mut bytes[at..at + 8] {
        *b ^= 0x5A;
    }
    std::fs::write(&path, &bytes).unwrap();
    cluster.start();
    let mut c = cluster.connect_when_ready("app");
    let err = c.query("SELECT sum(id) FROM t", &[]).unwrap_err();
    let db = err
        .as_db_error()
        .expect("a server error, not a lost connection");
    assert_eq!(db.code().code(), "XX001", "{db}");
    // PostgreSQL 18 initializes clusters with page checksums, which catch the damage
    // before our extent checksums do; either way it is a data-corruption error.
    assert!(
        db.message().contains("corrupted") || db.message().contains("invalid page"),
        "{db}"
    );
    // Past Postgres's page checksum, our own extent checksums catch it.
    c.batch_execute("SET ignore_checksum_failure = on").unwrap();
    let err = c.query("SELECT sum(id) FROM t", &[]).unwrap_err();
    let db = err
        .as_db_error()
        .expect("a server error, not a lost connection");
    assert_eq!(db.code().code(), "XX001", "{db}");
    // It names the table.
    assert!(
        db.message()
            .starts_with("data corrupted: table \"t\": block 2"),
        "{db}"
    );
    let problems: Vec<(Option<i64>, String)> = c
        .query(
            "SELECT part_id, problem FROM epiphany.verify_table('t')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].1.contains("block 2"), "{problems:?}");
    // The server is still up and other tables still work.
    let one: i32 = cluster
        .connect("app")
        .query_one("SELECT 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
}

#[test]
fn a_streaming_standby_answers_like_the_primary() {
    let primary = Cluster::start_new("columnar_primary");
    let mut p = primary.create_db_with_suite("app");
    p.batch_execute(
        "CREATE TABLE m (id int, at date, v float8, tag text)
             USING epiphany_columnar WITH (order_by = 'at', granule_rows = 500);
         INSERT INTO m SELECT g, date '2024-01-01' + g % 300, g * 0.5, 't' || g % 13
           FROM generate_series(1, 20000) g;",
    )
    .unwrap();
    let standby = Cluster::start_standby(&primary, "columnar_standby");
    // Work after the base backup reaches the standby through WAL only: inserts, a
    // TRUNCATE (new storage), more inserts, an index build.
    p.batch_execute(
        "INSERT INTO m SELECT g, date '2025-01-01' + g % 10, g, 'late' FROM generate_series(20001, 25000) g;
         BEGIN; TRUNCATE m;
         INSERT INTO m SELECT g, date '2024-06-01' + g % 100, -g, 'after truncate' FROM generate_series(1, 30000) g;
         COMMIT;
         INSERT INTO m VALUES (99999, '2030-01-01', 1, 'last');
         CREATE INDEX m_id ON m (id);",
    )
    .unwrap();
    standby.wait_for_replay(&primary);
    let mut s = standby.connect("app");
    let queries = [
        "SELECT count(*)::text || ' ' || sum(id)::text || ' ' || sum(v)::text FROM m",
        "SELECT string_agg(tag, ',' ORDER BY id) FROM m WHERE at BETWEEN '2024-06-10' AND '2024-06-11' AND id < 500",
        "SELECT string_agg(rows::text, ',' ORDER BY first_row) FROM epiphany.parts WHERE \"table\" = 'm'::regclass",
        "SELECT count(*)::text FROM epiphany.verify_table('m')",
    ];
    for q in queries {
        let a: String = p.query_one(q, &[]).unwrap().get(0);
        let b: String = s.query_one(q, &[]).unwrap().get(0);
        assert_eq!(a, b, "{q}");
    }
    s.batch_execute("SET enable_seqscan = off; SET epiphany.enable_columnar_scan = off")
        .unwrap();
    let tag: String = s
        .query_one("SELECT tag FROM m WHERE id = 99999", &[])
        .unwrap()
        .get(0);
    assert_eq!(tag, "last");
    // The standby is read-only, and says so.
    let err = s.execute("INSERT INTO m VALUES (1)", &[]).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("25006"));
}

/// Pages of parts whose transactions rolled back (or died with the server) come back:
/// VACUUM cuts a free tail off the file and lists the holes, and later writes fill the
/// holes before the file grows; a writer still in its transaction keeps its pages.
#[test]
fn vacuum_takes_back_the_pages_of_aborted_writes_and_writes_reuse_them() {
    let cluster = Cluster::start_new("columnar_reclaim");
    let mut c = cluster.create_db_with_suite("app");
    let size = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT pg_relation_size('t')", &[])
            .unwrap()
            .get(0)
    };
    let load = "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g";
    c.batch_execute("CREATE TABLE t (id int, s text) USING epiphany_columnar")
        .unwrap();
    c.batch_execute(&format!("{load}; INSERT INTO t VALUES (0, 'first')"))
        .unwrap();
    let committed = size(&mut c);
    // A rolled-back load at the end of the file: VACUUM cuts it off.
    c.batch_execute(&format!("BEGIN; {load}; SELECT count(*) FROM t; ROLLBACK"))
        .unwrap();
    assert!(
        size(&mut c) > committed + 1_000_000,
        "the aborted load wrote pages"
    );
    c.batch_execute("VACUUM t").unwrap();
    assert_eq!(size(&mut c), committed, "VACUUM cut the aborted pages off");
    // A hole in the middle (a committed part after the aborted one): listed, then reused.
    c.batch_execute(&format!("BEGIN; {load}; SELECT count(*) FROM t; ROLLBACK"))
        .unwrap();
    c.batch_execute("INSERT INTO t VALUES (-1, 'after the hole')")
        .unwrap();
    let with_hole = size(&mut c);
    c.batch_execute("VACUUM t").unwrap();
    assert_eq!(size(&mut c), with_hole, "a hole is not at the end");
    c.batch_execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
        .unwrap();
    assert_eq!(size(&mut c), with_hole, "the new part went into the hole");
    // A writer still in its transaction keeps its pages from VACUUM.
    let mut w = cluster.connect("app");
    w.batch_execute(&format!("BEGIN; {load}; SELECT count(*) FROM t"))
        .unwrap();
    let growing = size(&mut c);
    c.batch_execute("VACUUM t").unwrap();
    assert_eq!(
        size(&mut c),
        growing,
        "pages of a transaction in progress stay"
    );
    w.batch_execute("COMMIT").unwrap();
    let count: i64 = c.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(count, 100_001 + 1 + 20_000 + 100_000);
    // A writer killed with the server: its pages come back after recovery.
    let mut w = cluster.connect("app");
    w.batch_execute(&format!("BEGIN; {load}; SELECT count(*) FROM t"))
        .unwrap();
    let before_crash: i64 = c
        .query_one("SELECT pg_relation_size('t')", &[])
        .unwrap()
        .get(0);
    drop((c, w));
    cluster.kill9();
    cluster.start();
    let mut c = cluster.connect_when_ready("app");
    c.batch_execute("VACUUM t").unwrap();
    assert!(
        size(&mut c) < before_crash,
        "the crashed writer's pages are cut off"
    );
    let (count, sum): (i64, i64) = c
        .query_one("SELECT count(*), sum(id) FROM t", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(count, 100_001 + 1 + 20_000 + 100_000);
    assert_eq!(sum, 5_000_050_000 - 1 + 200_010_000 + 5_000_050_000);
    let problems: i64 = c
        .query_one("SELECT count(*) FROM epiphany.verify_table('t')", &[])
        .unwrap()
        .get(0);
    assert_eq!(problems, 0);
}

/// Serializable transactions on columnar tables end as they do on heap tables, step for
/// step: unrelated tables never conflict (the shared parts catalog takes no SIREAD locks),
/// a write skew on one table fails one writer, and a read that misses a concurrent
/// writer's committed rows is a rw-conflict (found by PostgreSQL's prepared_xacts test
/// run with our access method as the default).
#[test]
fn serializable_transactions_conflict_as_on_heap() {
    let cluster = Cluster::start_new("columnar_ssi");
    cluster.create_db_with_suite("app");
    // Steps: (session, SQL); a session whose statement fails rolls back and sits out.
    type Schedule = &'static [(usize, &'static str)];
    let schedules: [(&str, Schedule); 3] = [
        (
            "two tables, one writer each",
            &[
                (0, "SELECT count(*) FROM {a}"),
                (1, "SELECT count(*) FROM {b}"),
                (0, "INSERT INTO {a} VALUES (1)"),
                (1, "INSERT INTO {b} VALUES (1)"),
                (0, "SELECT count(*) FROM {a}"),
                (1, "SELECT count(*) FROM {b}"),
                (0, "COMMIT"),
                (1, "COMMIT"),
            ],
        ),
        (
            "write skew on one table",
            &[
                (0, "SELECT count(*) FROM {a} WHERE x = 5"),
                (1, "SELECT count(*) FROM {a} WHERE x = 6"),
                (0, "INSERT INTO {a} VALUES (6)"),
                (1, "INSERT INTO {a} VALUES (5)"),
                (0, "COMMIT"),
                (1, "COMMIT"),
            ],
        ),
        (
            "a read that misses a committed concurrent write",
            &[
                (0, "SELECT 1"),
                (1, "INSERT INTO {a} VALUES (7)"),
                (1, "SELECT count(*) FROM {b}"),
                (1, "COMMIT"),
                (0, "SELECT count(*) FROM {a}"),
                (0, "INSERT INTO {b} VALUES (7)"),
                (0, "COMMIT"),
            ],
        ),
    ];
    let run = |am: &str, schedule: Schedule| -> Vec<String> {
        let mut admin = cluster.connect("app");
        admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS sa, sb; CREATE TABLE sa (x int) USING {am}; CREATE TABLE sb (x int) USING {am}"
            ))
            .unwrap();
        let mut sessions = [cluster.connect("app"), cluster.connect("app")];
        for s in &mut sessions {
            s.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                .unwrap();
        }
        let mut failed = [false, false];
        let mut outcome = Vec::new();
        for &(who, sql) in schedule {
            if failed[who] {
                continue;
            }
            let sql = sql.replace("{a}", "sa").replace("{b}", "sb");
            match sessions[who].batch_execute(&sql) {
                Ok(()) => outcome.push(format!("{who}: {sql}: ok")),
                Err(e) => {
                    let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                    outcome.push(format!("{who}: {sql}: {code}"));
                    failed[who] = true;
                    sessions[who].batch_execute("ROLLBACK").unwrap();
                }
            }
        }
        let rows: i64 = admin
            .query_one(
                "SELECT (SELECT count(*) FROM sa) + (SELECT count(*) FROM sb)",
                &[],
            )
            .unwrap()
            .get(0);
        outcome.push(format!("rows: {rows}"));
        outcome
    };
    for (name, schedule) in schedules {
        let heap = run("heap", schedule);
        let columnar = run("epiphany_columnar", schedule);
        assert_eq!(columnar, heap, "{name}");
        if name != "two tables, one writer each" {
            assert!(
                heap.iter().any(|s| s.ends_with("40001")),
                "{name}: {heap:?}"
            );
        }
    }
}
