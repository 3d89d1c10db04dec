//! A real server: several sessions, restarts (fast and immediate), pg_dump | pg_restore.

use std::time::Duration;

use epiphany_integration_tests::{eventually, Cluster, Stop};

const LAUNCHER: &str = "epiphany_columnstore launcher";

fn launcher_running(cluster: &Cluster) -> bool {
    let mut c = cluster.connect_when_ready("postgres");
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = $1",
            &[&LAUNCHER],
        )
        .unwrap()
        .get(0);
    n == 1
}

fn status_states(client: &mut postgres::Client) -> Vec<(String, String)> {
    client
        .query("SELECT component, state FROM epiphany.status()", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn several_sessions_share_one_installation() {
    let cluster = Cluster::start_new("sessions");
    let mut admin = cluster.create_db_with_suite("app");
    admin
        .batch_execute("CREATE TABLE ledger (session int, n int)")
        .unwrap();

    // Four sessions work at once; each sees the suite and commits its own rows.
    std::thread::scope(|s| {
        for session in 0..4 {
            let cluster = &cluster;
            s.spawn(move || {
                let mut c = cluster.connect("app");
                for n in 0..50 {
                    let mut tx = c.transaction().unwrap();
                    tx.execute("INSERT INTO ledger VALUES ($1, $2)", &[&session, &n])
                        .unwrap();
                    let v: String = tx
                        .query_one("SELECT epiphany.version()", &[])
                        .unwrap()
                        .get(0);
                    assert!(!v.is_empty());
                    tx.commit().unwrap();
                }
            });
        }
    });
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM ledger", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 200);

    // Two more sessions through libpq (psql), at the same time.
    std::thread::scope(|s| {
        for session in [10, 11] {
            let cluster = &cluster;
            s.spawn(move || {
                let mut psql = cluster.client_tool("psql");
                psql.args(["-X", "-v", "ON_ERROR_STOP=1", "-d", "app", "-c"])
                    .arg(format!(
                        "INSERT INTO ledger SELECT {session}, g FROM generate_series(1, 100) g; \
                     SELECT epiphany.version();"
                    ));
                cluster.run_ok(psql);
            });
        }
    });
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM ledger WHERE session >= 10", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 200);

    // An uncommitted row is invisible to the other sessions.
    let mut writer = cluster.connect("app");
    writer
        .batch_execute("BEGIN; INSERT INTO ledger VALUES (99, 0)")
        .unwrap();
    let seen: i64 = admin
        .query_one("SELECT count(*) FROM ledger WHERE session = 99", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
    writer.batch_execute("ROLLBACK").unwrap();

    // The launcher is up (preloaded) and every component reports ok.
    assert!(
        eventually(Duration::from_secs(20), || launcher_running(&cluster)),
        "{}",
        cluster.log_tail()
    );
    for (component, state) in status_states(&mut admin) {
        assert_eq!(state, "ok", "{component}");
    }
}

#[test]
fn committed_work_survives_fast_and_immediate_shutdown() {
    let cluster = Cluster::start_new("restart");
    let mut c = cluster.create_db_with_suite("app");
    c.batch_execute("CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 1000)")
        .unwrap();
    drop(c);

    cluster.restart(Stop::Fast);
    let mut c = cluster.connect_when_ready("app");
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 1000);

    // One more committed batch, one left open, then the server dies without a checkpoint.
    c.batch_execute("INSERT INTO t SELECT generate_series(1001, 1500)")
        .unwrap();
    let mut open = cluster.connect("app");
    open.batch_execute("BEGIN; INSERT INTO t SELECT generate_series(5001, 6000)")
        .unwrap();
    cluster.restart(Stop::Immediate);

    let mut c = cluster.connect_when_ready("app");
    let (n, max): (i64, i32) = {
        let r = c.query_one("SELECT count(*), max(i) FROM t", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (n, max),
        (1500, 1500),
        "committed rows kept, the open transaction's rows gone"
    );

    // Crash recovery brings the suite back: the launcher restarts and status is clean.
    assert!(
        eventually(Duration::from_secs(30), || launcher_running(&cluster)),
        "{}",
        cluster.log_tail()
    );
    for (component, state) in status_states(&mut c) {
        assert_eq!(state, "ok", "{component} after crash recovery");
    }
}

#[test]
fn pg_dump_and_pg_restore_round_trip() {
    let cluster = Cluster::start_new("dump");
    let mut src = cluster.create_db_with_suite("source");
    src.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;",
    )
    .unwrap();

    // pg_dump -Fc | pg_restore, as a user would move a database.
    cluster.dump_and_restore("source", "restored");

    let extensions = |client: &mut postgres::Client| -> Vec<(String, String, String)> {
        client
            .query(
                "SELECT extname::text, extversion, extnamespace::regnamespace::text
                 FROM pg_extension WHERE extname LIKE 'epiphany%' ORDER BY extname",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let mut dst = cluster.connect("restored");
    let before = extensions(&mut src);
    assert_eq!(before.len(), 5, "{before:?}");
    assert_eq!(extensions(&mut dst), before);
    assert_eq!(status_states(&mut dst), status_states(&mut src));
    let digest = "SELECT count(*), md5(string_agg(id || name, ',' ORDER BY id)) FROM items";
    let a = src.query_one(digest, &[]).unwrap();
    let b = dst.query_one(digest, &[]).unwrap();
    assert_eq!(
        (a.get::<_, i64>(0), a.get::<_, String>(1)),
        (b.get::<_, i64>(0), b.get::<_, String>(1))
    );

    // The restored suite is whole: dropping it leaves no schema behind.
    dst.batch_execute("DROP EXTENSION epiphany_core CASCADE")
        .unwrap();
    let left: i64 = dst
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'epiphany'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
