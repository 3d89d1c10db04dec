use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::file::reader::ChunkReader;

use crate::columnar::options::TableOptions;
use crate::columnar::page_window;
use crate::columnar::prune::{may_match, Op, Predicate, Scalar};
use crate::columnar::types::{ColumnType, TableSchema, Value};
use crate::columnar::RowBuffer;
use crate::error::Error;

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn schema() -> TableSchema {
    TableSchema::new([
        ("b", ColumnType::Bool),
        ("i2", ColumnType::Int16),
        ("i4", ColumnType::Int32),
        ("i8", ColumnType::Int64),
        ("f4", ColumnType::Float32),
        ("f8", ColumnType::Float64),
        ("d", ColumnType::Date),
        ("t", ColumnType::Time),
        ("ts", ColumnType::Timestamp),
        ("tz", ColumnType::TimestampTz),
        ("s", ColumnType::Text),
        ("by", ColumnType::Bytes),
        ("u", ColumnType::Uuid),
        ("n", ColumnType::Opaque),
    ])
}

/// One row as owned strings (so rows can be compared and sorted in the test).
type Row = Vec<String>;

fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut g = Lcg(seed);
    (0..n)
        .map(|i| {
            let null = |g: &mut Lcg| g.next().is_multiple_of(10);
            let mut row = Vec::new();
            let r = g.next();
            row.push(if null(&mut g) {
                "N".into()
            } else {
                format!("b{}", r % 2)
            });
            row.push(if null(&mut g) {
                "N".into()
            } else {
                format!("i2{}", (r % 60000) as i64 - 30000)
            });
            row.push(format!("i4{}", (g.next() % 50) as i64 - 25));
            row.push(format!("i8{}", i as i64 * 7 - 3000));
            row.push(if null(&mut g) {
                "N".into()
            } else {
                format!("f4{}", (r % 1000) as f32 / 8.0)
            });
            row.push(format!("f8{}", (r % 100000) as f64 / 3.0));
            row.push(if null(&mut g) {
                "N".into()
            } else {
                format!("d{}", (g.next() % 20000) as i64 - 10000)
            });
            row.push(format!("t{}", g.next() % 86_400_000_000));
            row.push(format!(
                "ts{}",
                (g.next() % 2_000_000_000_000) as i64 - 1_000_000_000_000
            ));
            row.push(format!("tz{}", (g.next() % 2_000_000_000_000) as i64));
            row.push(if null(&mut g) {
                "N".into()
            } else {
                format!("s{}", "héllo ".repeat((r % 5) as usize))
            });
            row.push(format!("by{:?}", vec![(r % 256) as u8; (r % 4) as usize]));
            row.push(format!("u{}", r));
            row.push(format!("n{}", r % 13));
            row
        })
        .collect()
}

/// Turns a test row back into values (leaking the few bytes a test needs).
fn values(row: &Row) -> Vec<Value<'static>> {
    row.iter()
        .zip(schema().columns)
        .map(|(cell, col)| {
            if cell == "N" {
                return Value::Null;
            }
            let strip = |p: &str| cell.strip_prefix(p).unwrap().to_string();
            match col.ty {
                ColumnType::Bool => Value::Bool(strip("b") == "1"),
                ColumnType::Int16 => Value::Int16(strip("i2").parse().unwrap()),
                ColumnType::Int32 => Value::Int32(strip("i4").parse().unwrap()),
                ColumnType::Int64 | ColumnType::Numeric { .. } => {
                    Value::Int64(strip("i8").parse().unwrap())
                }
                ColumnType::Float32 => Value::Float32(strip("f4").parse().unwrap()),
                ColumnType::Float64 => Value::Float64(strip("f8").parse().unwrap()),
                ColumnType::Date => Value::Date(strip("d").parse().unwrap()),
                ColumnType::Time => Value::Time(strip("t").parse().unwrap()),
                ColumnType::Timestamp => Value::Timestamp(strip("ts").parse().unwrap()),
                ColumnType::TimestampTz => Value::Timestamp(strip("tz").parse().unwrap()),
                ColumnType::Text => Value::Text(Box::leak(strip("s").into_boxed_str())),
                ColumnType::Bytes => {
                    let v: Vec<u8> = strip("by")
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(", ")
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse().unwrap())
                        .collect();
                    Value::Bytes(Box::leak(v.into_boxed_slice()))
                }
                ColumnType::Uuid => {
                    let n: u128 = strip("u").parse().unwrap();
                    Value::Uuid(n.to_be_bytes())
                }
                ColumnType::Opaque => {
                    Value::Bytes(Box::leak(strip("n").into_bytes().into_boxed_slice()))
                }
            }
        })
        .collect()
}

fn cell(v: &Value<'_>, ty: ColumnType) -> String {
    match (v, ty) {
        (Value::Null, _) => "N".into(),
        (Value::Bool(b), _) => format!("b{}", *b as u8),
        (Value::Int16(x), _) => format!("i2{x}"),
        (Value::Int32(x), _) => format!("i4{x}"),
        (Value::Int64(x), _) => format!("i8{x}"),
        (Value::Float32(x), _) => format!("f4{x}"),
        (Value::Float64(x), _) => format!("f8{x}"),
        (Value::Date(x), _) => format!("d{x}"),
        (Value::Time(x), _) => format!("t{x}"),
        (Value::Timestamp(x), ColumnType::Timestamp) => format!("ts{x}"),
        (Value::Timestamp(x), _) => format!("tz{x}"),
        (Value::Text(s), _) => format!("s{s}"),
        (Value::Bytes(b), ColumnType::Opaque) => format!("n{}", String::from_utf8_lossy(b)),
        (Value::Bytes(b), _) => format!("by{:?}", b.to_vec()),
        (Value::Uuid(u), _) => format!("u{}", u128::from_be_bytes(*u)),
    }
}

fn encode(rows: &[Row], order_by: &str, granule_rows: u32) -> EncodedPart {
    let schema = schema();
    let mut buffer = RowBuffer::new(schema.clone());
    for row in rows {
        buffer.push_row(&values(row)).unwrap();
    }
    let granule_rows = granule_rows.to_string();
    let mut pairs = vec![("granule_rows", granule_rows.as_str())];
    if !order_by.is_empty() {
        pairs.push(("order_by", order_by));
    }
    let options = TableOptions::parse(pairs).unwrap();
    let key = options.resolve_order_by(&schema.names()).unwrap();
    encode_part(&schema, &buffer.take_batch().unwrap(), &key, &options).unwrap()
}

fn read_all(part: &EncodedPart, columns: &[usize], granules: &[usize]) -> Vec<Row> {
    let schema = schema();
    let reader = PartReader::open(&schema, part.bytes.clone()).unwrap();
    collect_rows(&reader, columns, granules)
}

fn collect_rows<R: ChunkReader + Clone + 'static>(
    reader: &PartReader<R>,
    columns: &[usize],
    granules: &[usize],
) -> Vec<Row> {
    let schema = schema();
    let mut out = Vec::new();
    for batch in reader.read(columns, granules, 77).unwrap() {
        let batch = batch.unwrap();
        for r in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .enumerate()
                    .map(|(k, &c)| {
                        cell(
                            &value_at(batch.column(k), schema.columns[c].ty, r),
                            schema.columns[c].ty,
                        )
                    })
                    .collect(),
            );
        }
    }
    out
}

#[test]
fn every_type_round_trips_sorted_by_the_key() {
    let input = rows(1000, 42);
    let part = encode(&input, "i4, i8", 128);
    assert_eq!(part.rows, 1000);
    assert_eq!(part.granules.len(), 8);
    let all: Vec<usize> = (0..schema().columns.len()).collect();
    let output = read_all(&part, &all, &(0..8).collect::<Vec<_>>());
    let mut expected = input.clone();
    let key = |r: &Row| -> (i64, i64) { (r[2][2..].parse().unwrap(), r[3][2..].parse().unwrap()) };
    expected.sort_by_key(key);
    assert_eq!(output, expected);
}

/// Reads one hidden column of the whole part.
fn hidden(reader: &PartReader, column: usize) -> Vec<u32> {
    let granules: Vec<usize> = (0..reader.granules()).collect();
    reader
        .read(&[column], &granules, 100)
        .unwrap()
        .flat_map(|b| {
            b.unwrap()
                .column(0)
                .as_primitive::<arrow_array::types::UInt32Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[test]
fn rows_keep_their_offsets_through_the_sort() {
    let input = rows(700, 11);
    let part = encode(&input, "s, i4", 64);
    let reader = PartReader::open(&schema(), part.bytes.clone()).unwrap();
    let row_at = hidden(&reader, reader.row_column());
    let pos_of = hidden(&reader, reader.pos_column());
    assert_eq!(row_at.len(), 700);
    let stored = read_all(
        &part,
        &(0..14).collect::<Vec<_>>(),
        &(0..11).collect::<Vec<_>>(),
    );
    for (offset, original) in input.iter().enumerate() {
        let pos = pos_of[offset] as usize;
        assert_eq!(row_at[pos] as usize, offset);
        assert_eq!(&stored[pos], original, "row offset {offset}");
        let (g, within) = reader.locate(pos as u64).unwrap();
        assert_eq!(reader.granule_starts()[g] as usize + within, pos);
    }
    assert_eq!(reader.locate(700), None);
}

#[test]
fn chunks_fetched_separately_read_like_one_range() {
    use crate::columnar::fetch::SparsePart;
    let part = encode(&rows(600, 21), "i4", 100);
    let bytes = part.bytes.clone();
    let mut fetch =
        |off: u64, len: usize| Ok(bytes.slice(off as usize..off as usize + len).to_vec());
    let sparse = SparsePart::with_tail(bytes.len() as u64, &mut fetch).unwrap();
    let reader = PartReader::open(&schema(), sparse.clone()).unwrap();
    // The hidden position column first, then the table's columns of the same
    // granule: ranges that touch end to end.
    sparse
        .fetch_chunks(reader.metadata(), &[reader.pos_column()], &[2], &mut fetch)
        .unwrap();
    let all: Vec<usize> = (0..14).collect();
    sparse
        .fetch_chunks(reader.metadata(), &all, &[2], &mut fetch)
        .unwrap();
    sparse
        .fetch_chunks(reader.metadata(), &[reader.row_column()], &[2], &mut fetch)
        .unwrap();
    let got = collect_rows(&reader, &all, &[2]);
    assert_eq!(got, read_all(&part, &all, &[2]));
    let mut with_rows = all.clone();
    with_rows.push(reader.row_column());
    assert_eq!(reader.read(&with_rows, &[2], 1000).unwrap().count(), 1);
}

#[test]
fn unsorted_parts_store_the_identity_almost_for_free() {
    let input = rows(5000, 12);
    let plain = encode(&input, "", 1000);
    let reader = PartReader::open(&schema(), plain.bytes.clone()).unwrap();
    assert_eq!(
        hidden(&reader, reader.pos_column()),
        (0..5000).collect::<Vec<u32>>()
    );
    let hidden_bytes: i64 = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.column(14).compressed_size() + rg.column(15).compressed_size())
        .sum();
    assert!(hidden_bytes < 1000, "{hidden_bytes} bytes for the identity");
}

#[test]
fn projection_and_granule_selection_read_only_what_was_asked() {
    let input = rows(500, 7);
    let part = encode(&input, "i8", 100);
    let got = read_all(&part, &[3, 10], &[1, 3]);
    let mut sorted = input.clone();
    sorted.sort_by_key(|r| r[3][2..].parse::<i64>().unwrap());
    let expected: Vec<Row> = sorted[100..200]
        .iter()
        .chain(&sorted[300..400])
        .map(|r| vec![r[3].clone(), r[10].clone()])
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn statistics_bound_every_granule_and_pruning_never_drops_a_match() {
    let input = rows(2000, 3);
    let part = encode(&input, "d", 64);
    let reader = PartReader::open(&schema(), part.bytes.clone()).unwrap();
    assert_eq!(reader.granule_stats().unwrap(), part.granules);
    let all: Vec<usize> = (0..schema().columns.len()).collect();
    let mut g = Lcg(99);
    for (gi, stats) in part.granules.iter().enumerate() {
        let rows = read_all(&part, &all, &[gi]);
        assert_eq!(stats.rows as usize, rows.len());
        let dates: Vec<Option<i64>> = rows
            .iter()
            .map(|r| {
                if r[6] == "N" {
                    None
                } else {
                    Some(r[6][1..].parse().unwrap())
                }
            })
            .collect();
        let nulls = dates.iter().filter(|d| d.is_none()).count() as u64;
        assert_eq!(stats.columns[6].nulls, Some(nulls));
        for _ in 0..40 {
            let v = (g.next() % 24000) as i64 - 12000;
            for op in [Op::Eq, Op::Lt, Op::Le, Op::Gt, Op::Ge] {
                let pred = Predicate::Compare {
                    column: 6,
                    op,
                    value: Scalar::Int(v),
                };
                let any = dates.iter().flatten().any(|&d| match op {
                    Op::Eq => d == v,
                    Op::Lt => d < v,
                    Op::Le => d <= v,
                    Op::Gt => d > v,
                    Op::Ge => d >= v,
                });
                if any {
                    assert!(
                        may_match(stats, &pred),
                        "granule {gi} wrongly pruned for {pred:?}"
                    );
                }
            }
        }
    }
    // Sorted by d, most granules are ruled out by a narrow range.
    let narrow = [
        Predicate::Compare {
            column: 6,
            op: Op::Ge,
            value: Scalar::Int(0),
        },
        Predicate::Compare {
            column: 6,
            op: Op::Lt,
            value: Scalar::Int(500),
        },
    ];
    let kept = part
        .granules
        .iter()
        .filter(|s| crate::columnar::prune::may_match_all(s, &narrow))
        .count();
    assert!(kept <= 3, "{kept} of {} granules kept", part.granules.len());
}

#[test]
fn damaged_bytes_are_an_error_not_a_panic() {
    let part = encode(&rows(300, 5), "i8", 100);
    let schema = schema();
    for cut in [0, 4, 8, part.bytes.len() / 2, part.bytes.len() - 1] {
        assert!(
            PartReader::open(&schema, part.bytes.slice(..cut)).is_err(),
            "cut at {cut}"
        );
    }
    let wrong = TableSchema::new([("x", ColumnType::Int32)]);
    assert!(PartReader::open(&wrong, part.bytes.clone()).is_err());
}

#[test]
fn a_scan_fetches_only_the_footer_and_the_chunks_it_reads() {
    use crate::columnar::fetch::SparsePart;
    use crate::storage::{write_extent, ExtentReader, MemoryPageStore};

    let input = rows(3000, 11);
    let part = encode(&input, "i8", 256);
    let mut store = MemoryPageStore::new(8168);
    let extent = write_extent(&mut store, 1, &part.bytes).unwrap();
    let extent_reader = ExtentReader::new(&store, extent).unwrap();
    let fetched = std::cell::Cell::new(0u64);
    let mut fetch = |off: u64, len: usize| {
        fetched.set(fetched.get() + len as u64);
        extent_reader.read(off, len)
    };
    let sparse = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
    let footer = fetched.get();
    let reader = PartReader::open(&schema(), sparse.clone()).unwrap();
    assert_eq!(reader.granule_stats().unwrap(), part.granules);
    // Two columns of two granules.
    let (columns, granules) = ([3usize, 10], [2usize, 7]);
    reader
        .source()
        .fetch_chunks(reader.metadata(), &columns, &granules, &mut fetch)
        .unwrap();
    assert_eq!(
        collect_rows(&reader, &columns, &granules),
        read_all(&part, &columns, &granules)
    );
    // 2 of 14 columns in 2 of 12 granules: a small fraction of the data.
    let data = part.bytes.len() as u64 - footer;
    let chunks = fetched.get() - footer;
    assert!(chunks * 20 < data, "fetched {chunks} of {data} data bytes");
    // A column that was not fetched is an error, not a panic or a wrong answer.
    let mut batches = reader.read(&[5], &[2], 100).unwrap();
    assert!(matches!(batches.next(), Some(Err(Error::Corrupted(_)))));
    assert!(
        batches.next().is_none(),
        "iteration ends at the first error"
    );
}

#[test]
fn a_column_without_values_reads_as_nulls_of_the_tables_type() {
    // PostgreSQL 18's virtual generated columns store only nulls, and changing such a
    // column's type rewrites nothing: old parts keep the old type.
    let written = TableSchema::new([("k", ColumnType::Int32), ("v", ColumnType::Int32)]);
    let mut buffer = RowBuffer::new(written.clone());
    for k in 0..3000 {
        buffer.push_row(&[Value::Int32(k), Value::Null]).unwrap();
    }
    let options = TableOptions::parse([("granule_rows", "1000")]).unwrap();
    let part = encode_part(&written, &buffer.take_batch().unwrap(), &[], &options).unwrap();
    let now = TableSchema::new([("k", ColumnType::Int32), ("v", ColumnType::Text)]);
    let reader = PartReader::open_with_offsets(&now, part.bytes.clone()).unwrap();
    let check = |batch: &RecordBatch, first: i32| {
        assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(batch.column(1).null_count(), batch.num_rows());
        let k = batch.column(0).as_primitive::<Int32Type>();
        assert_eq!(k.value(0), first);
    };
    let batches: Vec<RecordBatch> = reader
        .read(&[0, 1], &[0, 2], 500)
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(batches.len(), 4);
    check(&batches[2], 2000);
    check(&reader.read_rows(&[0, 1], 1, 10, 5).unwrap(), 1010);
    // Only the null column, alone and first.
    let only = reader.read_rows(&[1], 1, 10, 5).unwrap();
    assert_eq!(
        (only.num_rows(), only.column(0).data_type()),
        (5, &DataType::Utf8)
    );
    let swapped = reader.read_rows(&[1, 0], 0, 0, 2).unwrap();
    assert_eq!(swapped.column(1).as_primitive::<Int32Type>().value(1), 1);
    let column = reader.read_column(1, 2, 7, 9).unwrap();
    assert_eq!(
        (column.len(), column.null_count(), column.data_type()),
        (9, 9, &DataType::Utf8)
    );

    // A column that has values must still match.
    let changed = TableSchema::new([("k", ColumnType::Text), ("v", ColumnType::Int32)]);
    let err = PartReader::open(&changed, part.bytes.clone())
        .err()
        .unwrap();
    assert!(matches!(err, Error::Corrupted(_)), "{err:?}");
}

#[test]
fn rows_read_by_page_match_the_granule() {
    use crate::columnar::fetch::SparsePart;
    use crate::storage::{write_extent, ExtentReader, MemoryPageStore};

    let input = rows(6000, 5);
    let part = encode(&input, "i8", 5000);
    let mut store = MemoryPageStore::new(8168);
    let extent = write_extent(&mut store, 1, &part.bytes).unwrap();
    let extent_reader = ExtentReader::new(&store, extent).unwrap();
    let mut fetch = |off: u64, len: usize| extent_reader.read(off, len);
    let sparse = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
    sparse.fetch_offset_indexes(&mut fetch).unwrap();
    let reader = PartReader::open_with_offsets(&schema(), sparse).unwrap();
    let columns: Vec<usize> = (0..schema().columns.len()).collect();
    reader
        .source()
        .fetch_chunks(reader.metadata(), &columns, &[0, 1], &mut fetch)
        .unwrap();
    let whole = PartReader::open(&schema(), part.bytes.clone()).unwrap();
    let granule = whole
        .read(&columns, &[0], 5000)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    for (first, count) in [(0, 1), (1023, 2), (2048, 1024), (4999, 1), (3000, 2000)] {
        let rows = reader.read_rows(&columns, 0, first, count).unwrap();
        assert_eq!(rows, granule.slice(first, count), "{first}+{count}");
        assert_eq!(whole.read_rows(&columns, 0, first, count).unwrap(), rows);
    }
    let last = reader.read_rows(&columns, 1, 999, 1).unwrap();
    assert_eq!(last.num_rows(), 1);
    assert!(reader.read_rows(&columns, 0, 4999, 2).is_err());
    assert!(reader.read_rows(&columns, 2, 0, 1).is_err());
}

#[test]
fn rows_read_by_page_need_only_their_pages_fetched() {
    use crate::columnar::fetch::SparsePart;
    use crate::storage::{write_extent, ExtentReader, MemoryPageStore};
    use std::cell::Cell;

    let input = rows(6000, 5);
    let part = encode(&input, "i8", 5000);
    let mut store = MemoryPageStore::new(8168);
    let extent = write_extent(&mut store, 1, &part.bytes).unwrap();
    let extent_reader = ExtentReader::new(&store, extent).unwrap();
    let fetched = Cell::new(0u64);
    let mut fetch = |off: u64, len: usize| {
        fetched.set(fetched.get() + len as u64);
        extent_reader.read(off, len)
    };
    let sparse = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
    sparse.fetch_offset_indexes(&mut fetch).unwrap();
    let reader = PartReader::open_with_offsets(&schema(), sparse).unwrap();
    let whole = PartReader::open(&schema(), part.bytes.clone()).unwrap();
    let columns: Vec<usize> = (0..schema().columns.len()).collect();
    let before = fetched.get();
    let all: Vec<usize> = (0..columns.len() + 2).collect();
    for (g, first, count) in [(0, 2048, 1024), (0, 1023, 2), (1, 0, 1000), (0, 4999, 1)] {
        reader
            .source()
            .fetch_pages(reader.metadata(), &all, g, first..first + count, &mut fetch)
            .unwrap();
        let got = reader.read_rows(&all, g, first, count).unwrap();
        assert_eq!(got, whole.read_rows(&all, g, first, count).unwrap());
        // One column at a time from its pages, as fetches decode them.
        for &c in &all {
            let column = reader.read_column(c, g, first, count).unwrap();
            assert_eq!(&column, got.column(c), "column {c} rows {first}+{count}");
        }
    }
    // The windows of granule 0 span 4 of its 5 pages, granule 1's all: less than the
    // chunks, and a page fetched twice is held once.
    let data = part.bytes.len() as u64 - before;
    assert!(
        fetched.get() - before < data,
        "{} of {data}",
        fetched.get() - before
    );
    let held = reader.source().bytes_held();
    reader
        .source()
        .fetch_pages(reader.metadata(), &columns, 0, 2048..3072, &mut fetch)
        .unwrap();
    assert_eq!(reader.source().bytes_held(), held);
    // A page that was not fetched is an error, not a wrong answer.
    let fresh = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
    fresh.fetch_offset_indexes(&mut fetch).unwrap();
    let fresh = PartReader::open_with_offsets(&schema(), fresh).unwrap();
    fresh
        .source()
        .fetch_pages(fresh.metadata(), &columns, 0, 0..10, &mut fetch)
        .unwrap();
    assert!(fresh.read_rows(&columns, 0, 2048, 10).is_err());
    assert!(fresh.read_rows(&columns, 0, 0, 10).is_ok());
    assert!(fresh.read_column(3, 0, 2048, 10).is_err());
    assert!(fresh.read_column(3, 0, 0, 10).is_ok());
    assert!(fresh.read_column(3, 0, 4990, 20).is_err());
}

#[test]
fn columns_read_from_their_pages_match_the_reader_for_every_codec() {
    for codec in ["none", "lz4", "zstd"] {
        let schema = schema();
        let mut buffer = RowBuffer::new(schema.clone());
        for row in rows(3000, 9) {
            buffer.push_row(&values(&row)).unwrap();
        }
        let options =
            TableOptions::parse([("granule_rows", "2500"), ("compression", codec)]).unwrap();
        let part = encode_part(&schema, &buffer.take_batch().unwrap(), &[], &options).unwrap();
        let reader = PartReader::open_with_offsets(&schema, part.bytes.clone()).unwrap();
        for c in 0..schema.columns.len() + 2 {
            for (g, first, count) in [(0, 0, 1024), (0, 1500, 1000), (1, 10, 490)] {
                let want = reader.read_rows(&[c], g, first, count).unwrap();
                let got = reader.read_column(c, g, first, count).unwrap();
                assert_eq!(
                    &got,
                    want.column(0),
                    "{codec}: column {c} {g}:{first}+{count}"
                );
                // Read by this module's pages, not Parquet's reader (but for LZ4).
                let window = page_window::window_pages(
                    reader.source(),
                    reader.metadata(),
                    &Default::default(),
                    g,
                    c,
                    first..first + count,
                )
                .unwrap();
                assert_eq!(window.is_some(), codec != "lz4", "{codec}: column {c}");
            }
        }
        // Windows after the first of a chunk decoded with its kept dictionary (and
        // matched the reader above).
        assert_eq!(reader.dictionary_bytes() > 0, codec != "lz4", "{codec}");
    }
}

#[test]
fn a_damaged_footer_is_an_error() {
    use crate::columnar::fetch::SparsePart;
    let part = encode(&rows(100, 1), "i8", 50);
    let mut bytes = part.bytes.to_vec();
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut fetch = |off: u64, len: usize| Ok(bytes[off as usize..off as usize + len].to_vec());
    assert!(SparsePart::with_tail(n as u64, &mut fetch).is_err());
    assert!(SparsePart::with_tail(4, &mut fetch).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Each case encodes and reads a whole part: a sixteenth of the cases asked
        // for (PROPTEST_CASES, as the fuzz tier sets it), at least 64.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse::<u32>().ok()).map_or(64, |n| (n / 16).max(64))
        ))]
        /// Extent checksums catch damage before Parquet sees it; still, damaged part
        /// bytes must give an error or rows, never a panic.
        #[test]
        fn a_damaged_part_never_panics(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
            let part = encode(&rows(200, 4), "i8", 64);
            let mut bytes = part.bytes.to_vec();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            let outcome = std::panic::catch_unwind(|| {
                let Ok(reader) = PartReader::open(&schema(), Bytes::from(bytes)) else { return };
                let _ = reader.granule_stats();
                let all: Vec<usize> = (0..schema().columns.len()).collect();
                let granules: Vec<usize> = (0..reader.granules()).collect();
                if let Ok(batches) = reader.read(&all, &granules, 50) {
                    for batch in batches.flatten() {
                        for (c, col) in schema().columns.iter().enumerate() {
                            for r in 0..batch.num_rows() {
                                let _ = value_at(batch.column(c), col.ty, r);
                            }
                        }
                    }
                }
            });
            prop_assert!(outcome.is_ok(), "flipping byte {} panicked", i);
        }
    }
}
