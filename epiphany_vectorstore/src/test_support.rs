//! Helpers of the vector indexes' `#[pg_test]`s: deterministic clustered data, loading
//! it, and recall against exact answers computed in the same transaction.

use epiphany_core::vector::kmeans::Rng;
use pgrx::prelude::*;

/// Every test starts here: the vector type lives in schema epiphany.
pub fn start() {
    run("SET LOCAL search_path = public, epiphany");
}

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn one<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn ids(sql: &str) -> Vec<i32> {
    Spi::connect(|c| {
        c.select(sql, None, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .map(|r| r.get::<i32>(1).unwrap().unwrap())
            .collect()
    })
}

pub fn plan(sql: &str) -> String {
    Spi::connect(|c| {
        c.select(&format!("EXPLAIN (COSTS OFF) {sql}"), None, &[])
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub fn literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("'[{}]'", parts.join(","))
}

/// Clustered points: `clusters` centres, points spread around them.
pub fn points(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| {
            (0..dims)
                .map(|_| (rng.next_f64() * 8.0 - 4.0) as f32)
                .collect()
        })
        .collect();
    (0..n)
        .map(|i| {
            centres[i % centres.len()]
                .iter()
                .map(|&c| c + (rng.next_f64() * 2.0 - 1.0) as f32)
                .collect()
        })
        .collect()
}

/// Adds rows `first..first + n` to `items` (category = id % 10).
pub fn load(first: usize, vectors: &[Vec<f32>]) {
    for (chunk_no, chunk) in vectors.chunks(500).enumerate() {
        let values: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = first + chunk_no * 500 + i;
                format!("({id}, {}, {})", id % 10, literal(v))
            })
            .collect();
        run(&format!("INSERT INTO items VALUES {}", values.join(",")));
    }
}

/// Mean recall@10 of the index over `queries` against exact answers.
pub fn recall(op: &str, queries: &[Vec<f32>], filter: &str) -> f64 {
    let mut hits = 0usize;
    let mut wanted = 0usize;
    for q in queries {
        let sql = format!(
            "SELECT id FROM items {filter} ORDER BY v {op} {}::vector LIMIT 10",
            literal(q)
        );
        run("SET LOCAL enable_indexscan = off");
        let exact = ids(&sql);
        run("SET LOCAL enable_indexscan = on");
        run("SET LOCAL enable_seqscan = off");
        let found = ids(&sql);
        run("SET LOCAL enable_seqscan = on");
        assert!(found.len() <= 10);
        wanted += exact.len();
        hits += found.iter().filter(|id| exact.contains(id)).count();
    }
    hits as f64 / wanted.max(1) as f64
}

pub fn setup(am: &str, dims: usize, opclass: &str, rows: usize, with: &str) -> Vec<Vec<f32>> {
    let mut all = points(rows + 40, dims, 11);
    let queries = all.split_off(rows);
    run(&format!(
        "CREATE TABLE items (id int, category int, v vector({dims}))"
    ));
    load(0, &all);
    run(&format!(
        "CREATE INDEX items_v ON items USING {am} (v {opclass}) WITH ({with})"
    ));
    queries
}
