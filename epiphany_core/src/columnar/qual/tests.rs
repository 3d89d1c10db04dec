//! Vectorized quals against a row-at-a-time reference with SQL's three-valued logic, on
//! random rows and random qual trees; statistics verdicts checked against the rows.

use std::cmp::Ordering;

use proptest::prelude::*;

use super::*;
use crate::columnar::{RowBuffer, TableSchema, Value};

/// Columns: int4, int8, date, text, bool, numeric(scale 2), and a second date (for
/// column-to-column comparisons).
fn schema() -> TableSchema {
    TableSchema::new([
        ("a", ColumnType::Int32),
        ("b", ColumnType::Int64),
        ("d", ColumnType::Date),
        ("s", ColumnType::Text),
        ("f", ColumnType::Bool),
        ("n", ColumnType::Numeric { scale: 2 }),
        ("e", ColumnType::Date),
    ])
}

#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
}

fn value(c: &Cell, ty: ColumnType) -> Value<'_> {
    match (c, ty) {
        (Cell::Null, _) => Value::Null,
        (Cell::Int(v), ColumnType::Int32) => Value::Int32(*v as i32),
        (Cell::Int(v), ColumnType::Date) => Value::Date(*v as i32),
        (Cell::Int(v), ColumnType::Bool) => Value::Bool(*v != 0),
        (Cell::Int(v), _) => Value::Int64(*v),
        (Cell::Text(s), _) => Value::Text(s),
    }
}

fn order(cell: &Cell, v: &Scalar) -> Option<Ordering> {
    match (cell, v) {
        (Cell::Null, _) => None,
        (Cell::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
        (Cell::Text(a), Scalar::Bytes(b)) => Some(a.as_bytes().cmp(b)),
        _ => panic!("test constant of the wrong kind"),
    }
}

/// The reference: SQL's three-valued logic, one row at a time.
// Not a try_fold: an unknown (None) must not stop the fold, a later false decides.
#[allow(clippy::manual_try_fold)]
/// `%`-only LIKE matching by backtracking, byte by byte: the reference for
/// [`Test::Like`].
fn glob(v: &[u8], p: &[u8]) -> bool {
    match p.split_first() {
        None => v.is_empty(),
        Some((b'%', rest)) => (0..=v.len()).any(|i| glob(&v[i..], rest)),
        Some((c, rest)) => v.first() == Some(c) && glob(&v[1..], rest),
    }
}

// Three-valued AND/OR go on past an unknown (`None`): a fold, not a try_fold.
#[allow(clippy::manual_try_fold)]
fn reference(q: &Qual, row: &[Cell]) -> Option<bool> {
    match q {
        Qual::Test { column, test } => {
            let c = &row[*column];
            match test {
                Test::IsNull => Some(matches!(c, Cell::Null)),
                Test::IsNotNull => Some(!matches!(c, Cell::Null)),
                Test::Compare(op, v) => order(c, v).map(|o| op.holds(o)),
                Test::In(vs) => {
                    if matches!(c, Cell::Null) {
                        None
                    } else {
                        Some(vs.iter().any(|v| order(c, v) == Some(Ordering::Equal)))
                    }
                }
                Test::Prefix(p) => match c {
                    Cell::Null => None,
                    Cell::Text(s) => Some(s.as_bytes().starts_with(p)),
                    Cell::Int(_) => panic!("prefix of a number"),
                },
                Test::Like(segments) => match c {
                    Cell::Null => None,
                    Cell::Text(s) => Some(glob(s.as_bytes(), &segments.join(&b'%'))),
                    Cell::Int(_) => panic!("LIKE of a number"),
                },
            }
        }
        Qual::Columns { left, cmp, right } => match (&row[*left], &row[*right]) {
            (Cell::Int(a), Cell::Int(b)) => Some(cmp.holds(a.cmp(b))),
            (Cell::Null, _) | (_, Cell::Null) => None,
            _ => panic!("a column comparison of other cells"),
        },
        Qual::And(qs) => qs
            .iter()
            .fold(Some(true), |acc, q| match (acc, reference(q, row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            }),
        Qual::Or(qs) => qs
            .iter()
            .fold(Some(false), |acc, q| match (acc, reference(q, row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }),
        Qual::Not(q) => reference(q, row).map(|b| !b),
    }
}

const TYPES: [ColumnType; 7] = [
    ColumnType::Int32,
    ColumnType::Int64,
    ColumnType::Date,
    ColumnType::Text,
    ColumnType::Bool,
    ColumnType::Numeric { scale: 2 },
    ColumnType::Date,
];

/// A cell of column `c`: small ranges, so constants hit values, and some NULLs.
fn cell(c: usize) -> BoxedStrategy<Cell> {
    let value: BoxedStrategy<Cell> = match c {
        3 => prop::sample::select(vec!["", "a", "ab", "abc", "b", "ba", "é", "zz"])
            .prop_map(|s| Cell::Text(s.to_string()))
            .boxed(),
        4 => (0i64..2).prop_map(Cell::Int).boxed(),
        _ => (-5i64..5).prop_map(Cell::Int).boxed(),
    };
    prop_oneof![1 => Just(Cell::Null), 5 => value].boxed()
}

fn constant(c: usize) -> BoxedStrategy<Scalar> {
    match c {
        3 => prop::sample::select(vec!["", "a", "ab", "abd", "b", "é", "zzz"])
            .prop_map(|s| Scalar::Bytes(s.as_bytes().to_vec()))
            .boxed(),
        4 => (0i64..2).prop_map(Scalar::Int).boxed(),
        // int4 also against constants beyond its range.
        0 => prop_oneof![
            (-6i64..6).prop_map(Scalar::Int),
            Just(Scalar::Int(1 << 40)),
            Just(Scalar::Int(-(1 << 40))),
        ]
        .boxed(),
        _ => (-6i64..6).prop_map(Scalar::Int).boxed(),
    }
}

fn cmp_op() -> impl Strategy<Value = Cmp> {
    prop::sample::select(vec![Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge])
}

fn leaf() -> impl Strategy<Value = Qual> {
    (0usize..6).prop_flat_map(|c| {
        let test = prop_oneof![
            (cmp_op(), constant(c)).prop_map(|(op, v)| Test::Compare(op, v)),
            prop::collection::vec(constant(c), 1..4).prop_map(Test::In),
            Just(Test::IsNull),
            Just(Test::IsNotNull),
        ];
        let test = if c == 3 {
            prop_oneof![
                test,
                prop::sample::select(vec!["", "a", "ab", "é", "q"])
                    .prop_map(|p| Test::Prefix(p.as_bytes().to_vec())),
                prop::collection::vec(prop::sample::select(vec!["", "a", "b", "ab", "é"]), 2..5)
                    .prop_map(|s| Test::Like(
                        s.into_iter().map(|s| s.as_bytes().to_vec()).collect()
                    ))
            ]
            .boxed()
        } else {
            test.boxed()
        };
        test.prop_map(move |test| Qual::Test { column: c, test })
    })
}

/// A leaf test, or a comparison of the two date columns (either way round).
fn any_leaf() -> impl Strategy<Value = Qual> {
    prop_oneof![
        4 => leaf(),
        1 => (cmp_op(), any::<bool>()).prop_map(|(cmp, flip)| {
            let (left, right) = if flip { (6, 2) } else { (2, 6) };
            Qual::Columns { left, cmp, right }
        }),
    ]
}

fn qual() -> impl Strategy<Value = Qual> {
    any_leaf().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Qual::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Qual::Or),
            inner.prop_map(|q| Qual::Not(Box::new(q))),
        ]
    })
}

fn rows() -> impl Strategy<Value = Vec<Vec<Cell>>> {
    prop::collection::vec((0..7).map(cell).collect::<Vec<_>>(), 0..40)
}

fn batch_of(rows: &[Vec<Cell>]) -> RecordBatch {
    let mut b = RowBuffer::new(schema());
    for row in rows {
        let values: Vec<Value<'_>> = row.iter().zip(TYPES).map(|(c, ty)| value(c, ty)).collect();
        b.push_row(&values).unwrap();
    }
    b.take_batch().unwrap()
}

/// Exact statistics of the rows, as granule statistics.
fn stats_of(rows: &[Vec<Cell>]) -> GranuleStats {
    let columns = (0..7)
        .map(|c| {
            let ints: Vec<i64> = rows
                .iter()
                .filter_map(|r| match &r[c] {
                    Cell::Int(v) => Some(*v),
                    _ => None,
                })
                .collect();
            let texts: Vec<&[u8]> = rows
                .iter()
                .filter_map(|r| match &r[c] {
                    Cell::Text(s) => Some(s.as_bytes()),
                    _ => None,
                })
                .collect();
            let (min, max) = if c == 3 {
                (
                    texts.iter().min().map(|b| Scalar::Bytes(b.to_vec())),
                    texts.iter().max().map(|b| Scalar::Bytes(b.to_vec())),
                )
            } else {
                (
                    ints.iter().min().map(|&v| Scalar::Int(v)),
                    ints.iter().max().map(|&v| Scalar::Int(v)),
                )
            };
            ColumnStats {
                min,
                max,
                nulls: Some(rows.iter().filter(|r| matches!(r[c], Cell::Null)).count() as u64),
            }
        })
        .collect();
    GranuleStats {
        rows: rows.len() as u64,
        columns,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every row's value of a random qual is the reference's, true, false and unknown.
    #[test]
    fn vectorized_quals_agree_with_three_valued_logic(rows in rows(), q in qual()) {
        prop_assert!(q.evaluable(&schema()));
        let batch = batch_of(&rows);
        let truth = q.eval(&batch, &|c| Some(c)).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let want = reference(&q, row);
            prop_assert_eq!((truth.t.value(i), truth.f.value(i)), (want == Some(true), want == Some(false)), "row {} {:?}", i, row);
        }
    }

    /// A granule said to pass entirely has no row the qual rejects; one said to hold no
    /// passing row has none.
    #[test]
    fn statistics_verdicts_never_contradict_the_rows(rows in rows(), q in qual()) {
        let stats = stats_of(&rows);
        let passing = rows.iter().filter(|r| reference(&q, r) == Some(true)).count();
        if q.all_pass(&stats) {
            prop_assert_eq!(passing, rows.len());
        }
        if !q.may_pass(&stats) {
            prop_assert_eq!(passing, 0);
        }
    }
}

#[test]
fn all_pass_granules_are_recognized() {
    let rows: Vec<Vec<Cell>> = (0..10)
        .map(|i| {
            vec![
                Cell::Int(i),
                Cell::Int(i),
                Cell::Int(i),
                Cell::Text("x".into()),
                Cell::Int(1),
                Cell::Int(i),
                Cell::Int(i + 1),
            ]
        })
        .collect();
    let stats = stats_of(&rows);
    let a = |op, v| Qual::Test {
        column: 0,
        test: Test::Compare(op, Scalar::Int(v)),
    };
    assert!(a(Cmp::Ge, 0).all_pass(&stats));
    assert!(!a(Cmp::Ge, 1).all_pass(&stats));
    assert!(Qual::And(vec![a(Cmp::Ge, 0), a(Cmp::Lt, 10)]).all_pass(&stats));
    assert!(Qual::Not(Box::new(a(Cmp::Gt, 9))).all_pass(&stats));
    // NOT over a column with NULLs is not known to pass everywhere.
    let mut with_null = rows.clone();
    with_null[0][0] = Cell::Null;
    assert!(!Qual::Not(Box::new(a(Cmp::Gt, 9))).all_pass(&stats_of(&with_null)));
    assert!(!a(Cmp::Gt, 9).may_pass(&stats));
    assert!(!a(Cmp::Eq, 1 << 40).may_pass(&stats));
    // Two columns compared: never proven from statistics either way.
    let d_lt_e = Qual::Columns {
        left: 2,
        cmp: Cmp::Lt,
        right: 6,
    };
    assert!(d_lt_e.may_pass(&stats) && !d_lt_e.all_pass(&stats));
}

#[test]
fn quals_on_floats_or_with_mistyped_constants_are_not_evaluable() {
    let schema = TableSchema::new([("x", ColumnType::Float64), ("s", ColumnType::Text)]);
    let f = Qual::Test {
        column: 0,
        test: Test::Compare(Cmp::Lt, Scalar::Float(1.0)),
    };
    assert!(!f.evaluable(&schema));
    let null_test = Qual::Test {
        column: 0,
        test: Test::IsNull,
    };
    assert!(null_test.evaluable(&schema));
    let wrong = Qual::Test {
        column: 1,
        test: Test::Compare(Cmp::Eq, Scalar::Int(1)),
    };
    assert!(!wrong.evaluable(&schema));
    assert!(!Qual::And(vec![]).evaluable(&schema));
}

/// The rows a part scan with qual `q` returns, as (input row, column b, column s), of
/// `rows` stored as one part sorted by `a` in granules of `granule_rows`.
fn scanned(
    rows: &[Vec<Cell>],
    q: &Qual,
    granule_rows: u32,
) -> Vec<(u32, Option<i64>, Option<String>)> {
    use crate::columnar::part_scan::PartScan;
    use crate::columnar::stored::PartRow;
    use crate::columnar::{encode_part, scan_plan, TableOptions};
    use crate::storage::{write_extent, MemoryPageStore};
    use arrow_array::types::UInt32Type;
    let schema = schema();
    let options =
        TableOptions::parse([("granule_rows", granule_rows.to_string().as_str())]).unwrap();
    let part = encode_part(&schema, &batch_of(rows), &[0], &options).unwrap();
    let mut store = MemoryPageStore::new(8192);
    let extent = write_extent(&mut store, 0, &part.bytes).unwrap();
    let row = PartRow {
        storage_id: 1,
        part_id: 0,
        level: 0,
        first_row: 0,
        row_count: part.rows,
        first_block: extent.first_block,
        pages: extent.pages,
        byte_len: extent.len,
        stats: scan_plan::encode_stats(&scan_plan::summarize(&part.granules)),
    };
    let mut scan = PartScan::new(&schema, (0..7).collect(), vec![], true);
    scan.set_qual(q.clone(), 0);
    let mut out = Vec::new();
    for row in scan.prune_parts(vec![row]).unwrap() {
        let Some((part, mut cursor)) = scan.open(&store, row, 700).unwrap() else {
            continue;
        };
        while let Some(batch) = scan.next_batch(&store, &part, &mut cursor).unwrap() {
            let b = batch.column(1).as_primitive::<Int64Type>();
            let s = batch.column(3).as_string::<i32>();
            let at = batch.column(7).as_primitive::<UInt32Type>();
            for i in 0..batch.num_rows() {
                out.push((
                    at.value(i),
                    b.is_valid(i).then(|| b.value(i)),
                    s.is_valid(i).then(|| s.value(i).to_string()),
                ));
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A part scan reads a granule column by column (the qual's columns conjunct by
    /// conjunct, the others only from pages holding a passing row): it returns exactly
    /// the rows the reference passes, each with its own values.
    #[test]
    fn late_materialized_scans_return_the_passing_rows(
        rows in prop::collection::vec((0..7).map(cell).collect::<Vec<_>>(), 0..4000),
        q in qual(),
        granule_rows in prop::sample::select(vec![700u32, 1500, 4096]),
    ) {
        let got = scanned(&rows, &q, granule_rows);
        let cell_int = |c: &Cell| match c { Cell::Int(v) => Some(*v), _ => None };
        let cell_text = |c: &Cell| match c { Cell::Text(s) => Some(s.clone()), _ => None };
        let want: Vec<(u32, Option<i64>, Option<String>)> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| reference(&q, r) == Some(true))
            .map(|(i, r)| (i as u32, cell_int(&r[1]), cell_text(&r[3])))
            .collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn like_patterns_become_equality_prefix_or_segments() {
    let seg = |v: &[&str]| {
        Some(Test::Like(
            v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ))
    };
    let eq = |v: &str| Some(Test::Compare(Cmp::Eq, Scalar::Bytes(v.as_bytes().to_vec())));
    assert_eq!(Test::like(b"abc%"), Some(Test::Prefix(b"abc".to_vec())));
    assert_eq!(Test::like(b"%"), Some(Test::Prefix(vec![])));
    assert_eq!(Test::like(b"%%"), Some(Test::Prefix(vec![])));
    assert_eq!(Test::like(b"abc"), eq("abc"));
    assert_eq!(Test::like(b"a\\%b%"), Some(Test::Prefix(b"a%b".to_vec())));
    assert_eq!(Test::like(b"a\\_"), eq("a_"));
    assert_eq!(Test::like(b"a%b"), seg(&["a", "b"]));
    assert_eq!(
        Test::like(b"%special%requests%"),
        seg(&["", "special", "requests", ""])
    );
    assert_eq!(Test::like(b"%x%%y"), seg(&["", "x", "y"]));
    assert_eq!(Test::like(b"a_%"), None);
    assert_eq!(Test::like(b"ab\\"), None);
}

proptest! {
    /// Segments matched as a backtracking `%` matcher would, on short words of few
    /// letters (where overlaps and repeats are common).
    #[test]
    fn like_segments_match_like_backtracking(
        v in prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c']), 0..8),
        segs in prop::collection::vec(prop::collection::vec(prop::sample::select(vec![b'a', b'b']), 0..3), 2..5),
    ) {
        let like = Like::new(&segs);
        prop_assert_eq!(like.matches(&v), glob(&v, &segs.join(&b'%')));
    }
}
