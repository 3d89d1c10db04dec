//! Versioned SQL: what a release installed must stay reachable by `ALTER EXTENSION … UPDATE`.
//!
//! `sql/` keeps the install script of every released version of every extension and the
//! upgrade scripts between them. These tests check that the scripts of the current version
//! are the ones the build generates (so a schema change forces a new version and an upgrade
//! script), and that every older release, updated, ends with the same schema as a fresh
//! install of the current one.

use std::collections::BTreeSet;
use std::path::PathBuf;

use epiphany_integration_tests::Cluster;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// In dependency order; epiphany_core first.
const EXTENSIONS: [&str; 5] = [
    "epiphany_core",
    "epiphany_columnstore",
    "epiphany_timestore",
    "epiphany_vectorstore",
    "epiphany_unified_api",
];

fn sql_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sql")
}

/// The statements of a pgrx-generated script, without comments, blank space or the
/// order pgrx happened to emit them in (it follows a dependency graph, and its comments
/// carry source line numbers).
fn statements(script: &str) -> BTreeSet<String> {
    let mut without_comments = String::new();
    let mut rest = script;
    while let Some(start) = rest.find("/*") {
        without_comments.push_str(&rest[..start]);
        let end = rest[start..]
            .find("*/")
            .map(|e| start + e + 2)
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    without_comments.push_str(rest);
    let code: String = without_comments
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every object the extensions own, with what defines it; pg_dump leaves extension members
/// out, so a schema dump cannot tell two installs apart.
fn fingerprint(client: &mut postgres::Client) -> Vec<String> {
    const QUERY: &str = r#"
        SELECT e.extname || ' ' || e.extversion || ': ' || pg_describe_object(d.classid, d.objid, d.objsubid)
            || coalesce(' | ' || obj_description(d.objid, d.classid::regclass::text), '')
            || coalesce(' | ' || (SELECT concat_ws(' ', p.prokind, p.prorettype::regtype,
                                       pg_get_function_arguments(p.oid), p.provolatile, p.proparallel,
                                       p.proisstrict, p.prosrc, p.probin)
                                  FROM pg_proc p WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid), '')
            || coalesce(' | ' || (SELECT r.relkind::text || ' ' || coalesce(pg_get_viewdef(r.oid), '') || ' '
                                       || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                                             || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                                                             ', ' ORDER BY a.attnum)
                                           FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0
                                             AND NOT a.attisdropped)
                                  FROM pg_class r WHERE d.classid = 'pg_class'::regclass AND r.oid = d.objid), '')
            || coalesce(' | ' || (SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
                                  WHERE d.classid = 'pg_class'::regclass AND i.indexrelid = d.objid), '')
        FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
        WHERE d.deptype = 'e' AND e.extname LIKE 'epiphany%'
        ORDER BY 1"#;
    client
        .query(QUERY, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn normalising_ignores_comments_order_and_layout() {
    let a = "/* x */\n-- a.rs:1\nCREATE FUNCTION f() RETURNS int\nAS 'x';\nCOMMENT ON FUNCTION f() IS 'y';";
    let b =
        "COMMENT ON FUNCTION f() IS 'y';\n-- a.rs:9\nCREATE  FUNCTION f()   RETURNS int AS 'x';";
    assert_eq!(statements(a), statements(b));
    assert_ne!(
        statements(a),
        statements("CREATE FUNCTION f() RETURNS bigint AS 'x';")
    );
}

#[test]
fn released_sql_of_the_current_version_is_what_the_build_generates() {
    let cluster = Cluster::start_new("sqlfrozen");
    let installed = cluster.sharedir().join("extension");
    for ext in &EXTENSIONS[1..] {
        let file = format!("{ext}--{VERSION}.sql");
        let frozen = std::fs::read_to_string(sql_dir().join(&file)).unwrap_or_else(|e| {
            panic!("sql/{file}: {e}: every version's install script is kept in sql/")
        });
        let built = std::fs::read_to_string(installed.join(&file)).expect("installed script");
        assert_eq!(
            statements(&frozen),
            statements(&built),
            "the SQL of {ext} {VERSION} changed: a released version's objects are fixed. Bump the \
             workspace version, add sql/{ext}--{VERSION}--<new>.sql, and keep the new install \
             script in sql/ (README, 'Versioned SQL')"
        );
    }
    assert!(sql_dir()
        .join(format!("epiphany_core--{VERSION}.sql"))
        .exists());
}

#[test]
fn every_older_release_updates_to_the_schema_of_a_fresh_install() {
    let mut older = BTreeSet::new();
    for entry in std::fs::read_dir(sql_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        let parts: Vec<&str> = stem.split("--").collect();
        if parts.len() == 2 && EXTENSIONS.contains(&parts[0]) && parts[1] != VERSION {
            older.insert(parts[1].to_string());
        }
    }
    let cluster = Cluster::start_new("sqlupdate");
    let mut c = cluster.create_db_with_suite("fresh");
    let fresh = fingerprint(&mut c);
    assert!(
        fresh
            .iter()
            .any(|o| o.contains("function epiphany.status()")),
        "{fresh:#?}"
    );

    for old in &older {
        let db = format!("from_{}", old.replace('.', "_"));
        cluster
            .connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        let mut c = cluster.connect(&db);
        for ext in EXTENSIONS {
            c.batch_execute(&format!("CREATE EXTENSION {ext} VERSION '{old}'"))
                .unwrap_or_else(|e| panic!("install {ext} {old} from sql/: {e}"));
        }
        for ext in EXTENSIONS {
            c.batch_execute(&format!("ALTER EXTENSION {ext} UPDATE"))
                .unwrap_or_else(|e| panic!("update {ext} from {old}: {e}"));
        }
        assert_eq!(
            fingerprint(&mut c),
            fresh,
            "{old} updated differs from a fresh {VERSION}"
        );
    }
}

/// A database whose default table access method is ours (set before the extension is
/// there, as a user making every table columnar would) still installs the suite: the
/// extension's own catalog tables say `USING heap` (found by PostgreSQL's regression
/// suite run with our access method as the default).
#[test]
fn the_suite_installs_where_columnar_is_already_the_default() {
    let cluster = Cluster::start_new("sqldefaultam");
    let mut admin = cluster.connect("postgres");
    admin.batch_execute("CREATE DATABASE colfirst").unwrap();
    admin
        .batch_execute(
            "ALTER DATABASE colfirst SET default_table_access_method = 'epiphany_columnar'",
        )
        .unwrap();
    let mut c = cluster.connect("colfirst");
    for ext in EXTENSIONS {
        c.batch_execute(&format!("CREATE EXTENSION {ext}"))
            .unwrap_or_else(|e| panic!("CREATE EXTENSION {ext} with columnar as the default: {e}"));
    }
    let am = |c: &mut postgres::Client, rel: &str| -> String {
        c.query_one(
            "SELECT amname::text FROM pg_class JOIN pg_am ON relam = pg_am.oid WHERE pg_class.oid = $1::text::regclass",
            &[&rel],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(am(&mut c, "epiphany.columnar_parts"), "heap");
    // New sessions make columnar tables by default.
    let mut c = cluster.connect("colfirst");
    c.batch_execute("CREATE TABLE t AS SELECT i FROM generate_series(1, 10) i")
        .unwrap();
    assert_eq!(am(&mut c, "t"), "epiphany_columnar");
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 10);
}
