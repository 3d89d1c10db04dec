//! The part scan over parts kept in memory.

use super::*;
use crate::columnar::prune::{Op, Predicate, Scalar};
use crate::columnar::stored::PartRow;
use crate::columnar::{encode_part, ColumnType, RowBuffer, TableOptions, Value};
use crate::storage::{write_extent, MemoryPageStore};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};
use arrow_array::Array;

/// Parts of rows (k, k * 10) for k in each range, stored in memory.
fn stored(ranges: &[std::ops::Range<i64>]) -> (MemoryPageStore, TableSchema, Vec<PartRow>) {
    stored_with(ranges, |k| Value::Int64(k * 10))
}

/// `part` written to `store` as part `id` whose rows start at `first_row`: its catalog
/// entry.
fn store_part(
    store: &mut MemoryPageStore,
    id: u64,
    first_row: u64,
    part: &crate::columnar::EncodedPart,
) -> PartRow {
    let extent = write_extent(store, id, &part.bytes).unwrap();
    let summary = crate::columnar::scan_plan::summarize(&part.granules);
    PartRow {
        storage_id: 1,
        part_id: id,
        level: 0,
        first_row,
        row_count: part.rows,
        first_block: extent.first_block,
        pages: extent.pages,
        byte_len: extent.len,
        stats: crate::columnar::scan_plan::encode_stats(&summary),
    }
}

/// Parts of rows (k, v(k)) for k in each range, stored in memory.
fn stored_with(
    ranges: &[std::ops::Range<i64>],
    v: impl Fn(i64) -> Value<'static>,
) -> (MemoryPageStore, TableSchema, Vec<PartRow>) {
    let schema = TableSchema::new([("k", ColumnType::Int64), ("v", ColumnType::Int64)]);
    let options = TableOptions::parse([("granule_rows", "100")]).unwrap();
    let mut store = MemoryPageStore::new(4096);
    let mut rows = Vec::new();
    let mut first_row = 0;
    for (id, range) in ranges.iter().enumerate() {
        let mut buffer = RowBuffer::new(schema.clone());
        for k in range.clone() {
            buffer.push_row(&[Value::Int64(k), v(k)]).unwrap();
        }
        let part = encode_part(&schema, &buffer.take_batch().unwrap(), &[0], &options).unwrap();
        let row = store_part(&mut store, id as u64, first_row, &part);
        first_row += row.row_count;
        rows.push(row);
    }
    (store, schema, rows)
}

fn scan_all(scan: &mut PartScan, store: &MemoryPageStore, parts: Vec<PartRow>) -> Vec<(i64, u32)> {
    let mut out = Vec::new();
    for row in scan.prune_parts(parts).unwrap() {
        let Some((part, mut cursor)) = scan.open(store, row, 64).unwrap() else {
            continue;
        };
        while let Some(batch) = scan.next_batch(store, &part, &mut cursor).unwrap() {
            assert!(batch.num_rows() > 0 && batch.num_rows() <= 64);
            let k = batch.column(0).as_primitive::<Int64Type>();
            let offsets = batch.column(1).as_primitive::<UInt32Type>();
            out.extend(
                k.values()
                    .iter()
                    .copied()
                    .zip(offsets.values().iter().copied()),
            );
        }
    }
    out
}

#[test]
fn scans_read_what_may_match_and_drop_what_cannot() {
    let (store, schema, parts) = stored(&[0..1000, 1000..2000, 2000..3000]);
    // k >= 1950: the first part is skipped by its summary, granules of the second
    // by theirs, and the rows of the granule holding 1950 that fail are dropped.
    let pred = Predicate::Compare {
        column: 0,
        op: Op::Ge,
        value: Scalar::Int(1950),
    };
    let mut scan = PartScan::new(&schema, vec![0], vec![pred], true);
    let got = scan_all(&mut scan, &store, parts.clone());
    let keys: Vec<i64> = got.iter().map(|&(k, _)| k).collect();
    assert_eq!(keys, (1950..3000).collect::<Vec<_>>());
    // Row numbers come along: k's row offset in its part.
    assert!(got.iter().all(|&(k, off)| off as i64 == k % 1000));
    let c = scan.counters;
    assert_eq!((c.parts_scanned, c.parts_skipped), (2, 1));
    assert_eq!((c.granules_scanned, c.granules_skipped), (11, 9));
    assert_eq!(scan.take_filtered(), 50);
    assert_eq!(scan.take_filtered(), 0);
    // Without predicates every row of every part, none filtered.
    let mut all = PartScan::new(&schema, vec![0], vec![], true);
    assert_eq!(scan_all(&mut all, &store, parts).len(), 3000);
    assert_eq!(all.counters.granules_scanned, 30);
}

#[test]
fn counts_come_from_metadata_where_statistics_prove_every_row_passes() {
    use crate::columnar::qual::{Cmp, Qual, Test};
    let (store, schema, parts) = stored(&[0..1000, 1000..2000, 2000..3000]);
    // No quals: the catalog's row counts, nothing decoded.
    let mut all = PartScan::new(&schema, vec![], vec![], false);
    let counted: Vec<(u64, u64)> = parts
        .iter()
        .map(|p| all.count(&store, p.clone()).unwrap())
        .collect();
    assert_eq!(counted, vec![(1000, 1000); 3]);
    // 150 <= k < 1950: granules of 100 rows inside the range from their min/max, the
    // two cut by a bound decoded (k 150..199 and 1900..1949).
    let k = |op, v| Qual::Test {
        column: 0,
        test: Test::Compare(op, Scalar::Int(v)),
    };
    let mut scan = PartScan::new(&schema, vec![0], vec![], false);
    scan.set_qual(Qual::And(vec![k(Cmp::Ge, 150), k(Cmp::Lt, 1950)]), 0);
    let mut total = (0, 0);
    for row in scan.prune_parts(parts).unwrap() {
        let (n, meta) = scan.count(&store, row).unwrap();
        total = (total.0 + n, total.1 + meta);
    }
    assert_eq!(total, (1800, 1700));
    assert_eq!(scan.counters.parts_skipped, 1);
}

#[test]
fn aggregates_come_from_statistics_where_every_row_passes_and_match_decoding() {
    use crate::columnar::agg::{AggFn, AggSpec, Aggregator, Expr, Partial};
    use crate::columnar::qual::{Cmp, Qual, Test};
    // v NULL where k % 7 == 0, and in the whole granule 1500..1600.
    let (store, schema, parts) = stored_with(&[0..1000, 1000..2000, 2000..3000], |k| {
        if k % 7 == 0 || (1500..1600).contains(&k) {
            Value::Null
        } else {
            Value::Int64(5000 - k)
        }
    });
    let col = |column| Expr::Column {
        column,
        ty: ColumnType::Int64,
        digits: 19,
    };
    let specs = || {
        vec![
            AggSpec {
                func: AggFn::CountStar,
                arg: None,
            },
            AggSpec {
                func: AggFn::Count,
                arg: Some(col(1)),
            },
            AggSpec {
                func: AggFn::Min,
                arg: Some(col(1)),
            },
            AggSpec {
                func: AggFn::Max,
                arg: Some(col(1)),
            },
            AggSpec {
                func: AggFn::Max,
                arg: Some(col(0)),
            },
        ]
    };
    let k = |op, v| Qual::Test {
        column: 0,
        test: Test::Compare(op, Scalar::Int(v)),
    };
    let quals = [
        None,
        Some(Qual::And(vec![k(Cmp::Ge, 150), k(Cmp::Lt, 1950)])),
        Some(Qual::And(vec![k(Cmp::Ge, 1500), k(Cmp::Lt, 1600)])),
        Some(k(Cmp::Gt, 5000)),
    ];
    for qual in quals {
        let with_qual = |read: Vec<usize>| {
            let mut scan = PartScan::new(&schema, read, vec![], false);
            if let Some(q) = &qual {
                scan.set_qual(q.clone(), 0);
            }
            scan
        };
        // From statistics where they answer.
        let mut fast = Aggregator::new(vec![], specs()).unwrap();
        assert!(fast.answers_from_stats());
        let mut scan = with_qual(vec![0, 1]);
        let (mut rows, mut meta) = (0, 0);
        for row in scan.prune_parts(parts.clone()).unwrap() {
            let (n, m) = scan.aggregate(&store, row, &mut fast).unwrap();
            rows += n;
            meta += m;
        }
        // Decoding every batch.
        let mut slow = Aggregator::new(vec![], specs()).unwrap();
        let mut scan = with_qual(vec![0, 1]);
        let mut slow_rows = 0;
        for row in scan.prune_parts(parts.clone()).unwrap() {
            let Some((part, mut cursor)) = scan.open(&store, row, 64).unwrap() else {
                continue;
            };
            while let Some(batch) = scan.next_batch(&store, &part, &mut cursor).unwrap() {
                slow_rows += batch.num_rows() as u64;
                slow.push(&batch, &|c| Some(c)).unwrap();
            }
        }
        assert_eq!(rows, slow_rows, "{qual:?}");
        for a in 0..5 {
            assert_eq!(
                fast.partial(0, a),
                slow.partial(0, a),
                "{qual:?} aggregate {a}"
            );
        }
        match &qual {
            None => assert_eq!(meta, 3000),
            Some(Qual::And(_)) if rows == 1800 => assert_eq!(meta, 1700),
            Some(Qual::And(_)) => {
                // Only NULLs of v: min/max offered nothing, the counts everything.
                assert_eq!((rows, meta), (100, 100));
                assert_eq!(
                    fast.partial(0, 2),
                    Partial::Scalar {
                        value: None,
                        kind: crate::columnar::agg::Kind::Int64
                    }
                );
            }
            Some(_) => assert_eq!((rows, meta), (0, 0)),
        }
    }
    // A GROUP BY or a sum is not answered from statistics.
    let sum = AggSpec {
        func: AggFn::SumInt8,
        arg: Some(col(1)),
    };
    assert!(!Aggregator::new(vec![], vec![sum])
        .unwrap()
        .answers_from_stats());
    let keyed = Aggregator::new(vec![(0, ColumnType::Int64)], specs()).unwrap();
    assert!(!keyed.answers_from_stats());
}

#[test]
fn quals_on_dictionary_coded_text_answer_as_on_plain_text() {
    use crate::columnar::qual::{Cmp, Qual, Test};
    use arrow_array::cast::AsArray;
    let words = ["AIR", "MAIL", "RAIL", "SHIP", "TRUCK"];
    let word = |k: i64| (k % 11 != 0).then(|| words[(k * 7 % 5) as usize]);
    let schema = TableSchema::new([("k", ColumnType::Int64), ("t", ColumnType::Text)]);
    let options = TableOptions::parse([("granule_rows", "100")]).unwrap();
    let mut buffer = RowBuffer::new(schema.clone());
    for k in 0..1000 {
        let t = word(k).map_or(Value::Null, Value::Text);
        buffer.push_row(&[Value::Int64(k), t]).unwrap();
    }
    let part = encode_part(&schema, &buffer.take_batch().unwrap(), &[0], &options).unwrap();
    let mut store = MemoryPageStore::new(4096);
    let row = store_part(&mut store, 0, 0, &part);
    // The few distinct words are dictionary-coded: the qual reads them as such.
    let open = OpenPart::open_from(&store, &schema, row.clone(), false).unwrap();
    open.fetch_from(&store, &[1], &[0]).unwrap();
    let coded = open.reader.read_granule_coded(&[1], 0).unwrap();
    assert!(matches!(
        coded[0].data_type(),
        arrow_schema::DataType::Dictionary(..)
    ));
    let t = |test| Qual::Test { column: 1, test };
    let bytes = |w: &str| Scalar::Bytes(w.as_bytes().to_vec());
    type Check = Box<dyn Fn(Option<&str>) -> bool>;
    let cases: Vec<(Qual, Check)> = vec![
        (
            t(Test::Compare(Cmp::Eq, bytes("RAIL"))),
            Box::new(|w| w == Some("RAIL")),
        ),
        (
            t(Test::Compare(Cmp::Ne, bytes("RAIL"))),
            Box::new(|w| w.is_some_and(|w| w != "RAIL")),
        ),
        (
            t(Test::Compare(Cmp::Lt, bytes("RAIL"))),
            Box::new(|w| w.is_some_and(|w| w < "RAIL")),
        ),
        (
            t(Test::In(vec![bytes("AIR"), bytes("TRUCK")])),
            Box::new(|w| matches!(w, Some("AIR" | "TRUCK"))),
        ),
        // Every distinct value answers alike: false, and true.
        (
            t(Test::Compare(Cmp::Eq, bytes("BOAT"))),
            Box::new(|_| false),
        ),
        (
            t(Test::Compare(Cmp::Ge, bytes("AIR"))),
            Box::new(|w| w.is_some()),
        ),
        (t(Test::IsNull), Box::new(|w| w.is_none())),
        (t(Test::IsNotNull), Box::new(|w| w.is_some())),
        (
            t(Test::Prefix(b"MA".to_vec())),
            Box::new(|w| w == Some("MAIL")),
        ),
        (
            Qual::Not(Box::new(t(Test::Compare(Cmp::Eq, bytes("SHIP"))))),
            Box::new(|w| w.is_some_and(|w| w != "SHIP")),
        ),
        (
            Qual::Or(vec![
                t(Test::IsNull),
                t(Test::Compare(Cmp::Ge, bytes("SHIP"))),
            ]),
            Box::new(|w| w.is_none_or(|w| w >= "SHIP")),
        ),
    ];
    for (qual, check) in cases {
        let mut scan = PartScan::new(&schema, vec![0, 1], vec![], false);
        scan.set_qual(qual.clone(), 0);
        let Some((part, mut cursor)) = scan.open(&store, row.clone(), 64).unwrap() else {
            panic!("{qual:?}: no granule");
        };
        let mut got = Vec::new();
        while let Some(batch) = scan.next_batch(&store, &part, &mut cursor).unwrap() {
            // The words come back as plain text.
            let text = batch.column(1).as_string::<i32>();
            let k = batch.column(0).as_primitive::<Int64Type>();
            for r in 0..batch.num_rows() {
                let w = text.is_valid(r).then(|| text.value(r).to_string());
                assert_eq!(w.as_deref(), word(k.value(r)), "{qual:?}");
                got.push(k.value(r));
            }
        }
        let want: Vec<i64> = (0..1000).filter(|&k| check(word(k))).collect();
        assert_eq!(got, want, "{qual:?}");
    }
}

#[test]
fn a_vectorized_qual_filters_rows_and_prunes_what_it_rules_out() {
    use crate::columnar::qual::{Cmp, Qual, Test};
    let (store, schema, parts) = stored(&[0..1000, 1000..2000, 2000..3000]);
    let k = |op, v| Qual::Test {
        column: 0,
        test: Test::Compare(op, Scalar::Int(v)),
    };
    // k < 50 OR (k >= 2950 AND NOT k = 2990): the middle part cannot hold a row.
    let qual = Qual::Or(vec![
        k(Cmp::Lt, 50),
        Qual::And(vec![
            k(Cmp::Ge, 2950),
            Qual::Not(Box::new(k(Cmp::Eq, 2990))),
        ]),
    ]);
    let mut scan = PartScan::new(&schema, vec![0], vec![], true);
    scan.set_qual(qual, 0);
    let keys: Vec<i64> = scan_all(&mut scan, &store, parts)
        .iter()
        .map(|&(k, _)| k)
        .collect();
    let want: Vec<i64> = (0..50).chain((2950..3000).filter(|&k| k != 2990)).collect();
    assert_eq!(keys, want);
    let c = scan.counters;
    assert_eq!((c.parts_scanned, c.parts_skipped), (2, 1));
    // One granule of each part read survives: 0..100 and 2900..3000.
    assert_eq!((c.granules_scanned, c.granules_skipped), (2, 18));
    assert_eq!(scan.take_filtered(), 200 - want.len() as u64);
}

#[test]
fn a_hash_key_filter_drops_only_rows_no_inner_key_matches() {
    use crate::columnar::join_filter::{hash_int8, JoinFilter, KeyHash};
    use crate::columnar::qual::{Cmp, Qual, Test};
    let (store, schema, parts) = stored(&[0..1000, 1000..2000, 2000..3000]);
    // Inner keys of v (k * 10): every 37th row's, and some no row holds.
    let inner: Vec<i64> = (0..3000)
        .step_by(37)
        .map(|k| k * 10)
        .chain([-10, 5])
        .collect();
    let hashes: Vec<u32> = inner.iter().map(|&v| hash_int8(v)).collect();
    let filter = JoinFilter::new(vec![(1, ColumnType::Int64, KeyHash::Int8)], &hashes);
    // With and without a qual before it (k < 2500, vectorized).
    for qual in [None, Some(2500)] {
        let mut scan = PartScan::new(&schema, vec![0, 1], vec![], true);
        if let Some(limit) = qual {
            let test = Test::Compare(Cmp::Lt, Scalar::Int(limit));
            scan.set_qual(Qual::Test { column: 0, test }, 0);
        }
        scan.set_join_filter(Some(filter.clone()));
        let mut keys: Vec<i64> = Vec::new();
        for row in scan.prune_parts(parts.clone()).unwrap() {
            let Some((part, mut cursor)) = scan.open(&store, row, 64).unwrap() else {
                continue;
            };
            while let Some(batch) = scan.next_batch(&store, &part, &mut cursor).unwrap() {
                let k = batch.column(0).as_primitive::<Int64Type>();
                let v = batch.column(1).as_primitive::<Int64Type>();
                assert!(k.values().iter().zip(v.values()).all(|(k, v)| k * 10 == *v));
                keys.extend(k.values());
            }
        }
        let limit = qual.unwrap_or(i64::MAX);
        let members: Vec<i64> = (0..3000).filter(|k| k % 37 == 0 && *k < limit).collect();
        // Every matching row kept, in order; the few others kept are false positives.
        let kept_members: Vec<i64> = keys.iter().copied().filter(|k| k % 37 == 0).collect();
        assert_eq!(kept_members, members);
        assert!(keys.iter().all(|&k| k < limit));
        assert!(keys.len() < members.len() + 100, "{} rows kept", keys.len());
        let (tested, passed) = scan.join_filter().unwrap().tested();
        assert_eq!(passed as usize, keys.len());
        assert_eq!(tested, limit.min(3000) as u64);
        assert_eq!(scan.take_filtered(), tested - keys.len() as u64);
    }
}
