//! The 22 TPC-H queries (tests/tpch) on heap tables and on epiphany_columnar tables of
//! the same generated data (scale factor 0.01): the same answers, serial and parallel,
//! with vectorized execution on and off.

use std::collections::BTreeMap;
use std::io::Write;

use epiphany_integration_tests::{Client, Cluster};
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

const SCALE: f64 = 0.01;

fn tpch_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tpch")
}

/// Rows of `table` in TPC-H's `|`-separated form (the trailing `|` dropped).
fn rows(table: &str) -> Vec<String> {
    fn lines<T: ToString>(it: impl Iterator<Item = T>) -> Vec<String> {
        it.map(|r| r.to_string().trim_end_matches('|').to_string())
            .collect()
    }
    match table {
        "region" => lines(RegionGenerator::new(SCALE, 1, 1).iter()),
        "nation" => lines(NationGenerator::new(SCALE, 1, 1).iter()),
        "part" => lines(PartGenerator::new(SCALE, 1, 1).iter()),
        "supplier" => lines(SupplierGenerator::new(SCALE, 1, 1).iter()),
        "partsupp" => lines(PartSuppGenerator::new(SCALE, 1, 1).iter()),
        "customer" => lines(CustomerGenerator::new(SCALE, 1, 1).iter()),
        "orders" => lines(OrderGenerator::new(SCALE, 1, 1).iter()),
        "lineitem" => lines(LineItemGenerator::new(SCALE, 1, 1).iter()),
        other => panic!("no TPC-H table {other}"),
    }
}

const TABLES: [(&str, &str); 8] = [
    ("region", "r_regionkey"),
    ("nation", "n_nationkey"),
    ("part", "p_partkey"),
    ("supplier", "s_suppkey"),
    ("partsupp", "ps_partkey"),
    ("customer", "c_custkey"),
    ("orders", "o_orderdate"),
    ("lineitem", "l_shipdate"),
];

fn load(client: &mut Client) {
    let schema = std::fs::read_to_string(tpch_dir().join("schema.sql")).unwrap();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA tpch_heap; SET search_path = tpch_heap; {schema}
             CREATE SCHEMA tpch_col; SET search_path = tpch_col;
             SET default_table_access_method = epiphany_columnar; {schema}
             RESET default_table_access_method; RESET search_path;"
        ))
        .unwrap();
    for (table, order_by) in TABLES {
        client
            .batch_execute(&format!(
                "ALTER TABLE tpch_col.{table} SET (order_by = '{order_by}', granule_rows = 2000)"
            ))
            .unwrap();
        let data = rows(table).join("\n") + "\n";
        for schema in ["tpch_heap", "tpch_col"] {
            let mut w = client
                .copy_in(&format!(
                    "COPY {schema}.{table} FROM STDIN WITH (DELIMITER '|')"
                ))
                .unwrap();
            w.write_all(data.as_bytes()).unwrap();
            w.finish().unwrap();
        }
    }
    client
        .batch_execute(
            "CREATE INDEX ON tpch_col.lineitem (l_orderkey); CREATE INDEX ON tpch_col.orders (o_orderkey);
             CREATE INDEX ON tpch_heap.lineitem (l_orderkey); CREATE INDEX ON tpch_heap.orders (o_orderkey);
             ANALYZE",
        )
        .unwrap();
}

/// The answer of query file `q` in `schema`, as sorted rows of text.
fn answer(client: &mut Client, schema: &str, q: usize) -> Vec<String> {
    let sql = std::fs::read_to_string(tpch_dir().join(format!("q{q}.sql"))).unwrap();
    client
        .batch_execute(&format!("SET search_path = {schema}, public"))
        .unwrap();
    let mut out: Vec<String> = client
        .query(&format!("SELECT x::text FROM ({sql}) x"), &[])
        .unwrap_or_else(|e| panic!("Q{q} on {schema}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    out.sort();
    out
}

#[test]
fn the_22_tpch_queries_answer_on_columnar_tables_as_on_heap() {
    let cluster = Cluster::start_new("tpch");
    let mut client = cluster.create_db_with_suite("tpch");
    load(&mut client);
    let expected: BTreeMap<usize, Vec<String>> = (1..=22)
        .map(|q| (q, answer(&mut client, "tpch_heap", q)))
        .collect();
    assert!(
        expected.values().filter(|rows| !rows.is_empty()).count() >= 20,
        "most queries return rows at this scale"
    );
    let mut wrong = Vec::new();
    for (label, settings) in [
        ("serial", "SET max_parallel_workers_per_gather = 0"),
        ("serial, nothing vectorized", "SET max_parallel_workers_per_gather = 0; SET epiphany.enable_vector_agg = off; SET epiphany.enable_vector_filter = off"),
        ("parallel", "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; RESET epiphany.enable_vector_agg; RESET epiphany.enable_vector_filter"),
    ] {
        client.batch_execute(settings).unwrap();
        for (&q, rows) in &expected {
            if &answer(&mut client, "tpch_col", q) != rows {
                wrong.push(format!("Q{q} ({label})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "columnar answers differ from heap's: {}",
        wrong.join(", ")
    );
}
