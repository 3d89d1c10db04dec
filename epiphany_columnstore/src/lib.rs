//! epiphany_columnstore: the columnar MergeTree table access method.
//!
//! The access method `epiphany_columnar` ([`am`]) stores rows in sorted, compressed,
//! immutable parts (Parquet bytes in the relation's own pages, see `epiphany_core`), with
//! one catalog row per part ([`storage`]) for MVCC; values cross between Postgres and the
//! engine in [`convert`]; inserts are buffered and flushed into parts by [`writes`]; the
//! [`custom_scan`] reads only the columns and parts a query needs. The library must be
//! preloaded: it installs the [`hooks`] (table options, drops, which columns fetches
//! decode, the flush before a query reads) and the maintenance launcher (a background
//! worker, see [`launcher`]).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use pgrx::prelude::*;

mod am;
mod convert;
mod custom_scan;
mod functions;
mod hooks;
mod launcher;
mod storage;
#[cfg(any(test, feature = "pg_test"))]
mod testing;
mod vector_agg;
mod writes;

::pgrx::pg_module_magic!(name, version);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    launcher::register();
    hooks::utility::install();
    writes::init();
    convert::windows::init();
    custom_scan::init();
    vector_agg::init();
    hooks::object_access::install();
}

/// Version of the loaded `epiphany_columnstore` library.
#[pg_extern(stable, parallel_safe)]
fn columnstore_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

extension_sql!(
    r#"
COMMENT ON FUNCTION epiphany.columnstore_version() IS
    'Version of the loaded epiphany_columnstore library (compare with pg_extension.extversion)';
"#,
    name = "columnstore_comments",
    requires = [columnstore_version],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn installs_as_a_component_of_the_suite() {
        epiphany_core::pg::testing::assert_installed_as_component(
            "epiphany_columnstore",
            env!("CARGO_PKG_VERSION"),
        );
    }

    /// A value through everything a columnar table does to it: datum, row buffer, a
    /// zstd-compressed part, the part reader, and back to a datum.
    #[pg_extern]
    fn columnar_roundtrip(v: pgrx::AnyElement) -> pgrx::AnyElement {
        use epiphany_core::columnar::{
            encode_part, value_at, PartReader, RowBuffer, TableOptions, TableSchema,
        };
        let info = crate::convert::datum::ColumnInfo::for_type(v.oid());
        let schema = TableSchema::new([("v", info.ty)]);
        let mut buffer = RowBuffer::new(schema.clone());
        // SAFETY: a non-null datum of its own type, as the function was called with.
        unsafe { crate::convert::datum::push_datum(&mut buffer, &info, v.datum()) };
        buffer.end_row().unwrap();
        let batch = buffer.take_batch().unwrap();
        let part = encode_part(&schema, &batch, &[], &TableOptions::default()).unwrap();
        let reader = PartReader::open(&schema, part.bytes).unwrap();
        let batch = reader
            .read(&[0], &[0], 10)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let value = value_at(batch.column(0), info.ty, 0);
        // SAFETY: the value came from a column of this type.
        let datum = unsafe { crate::convert::datum::to_datum(&info, &value) }.unwrap();
        // SAFETY: a valid datum of v's type.
        unsafe { pgrx::AnyElement::from_polymorphic_datum(datum, false, v.oid()) }.unwrap()
    }

    #[pg_test]
    fn every_type_round_trips_through_a_part() {
        let cases = [
            "true",
            "false",
            "(-32768)::int2",
            "2147483647::int4",
            "(-9223372036854775808)::int8",
            "1.5::float4",
            "'NaN'::float4",
            "'-Infinity'::float8",
            "1e-300::float8",
            "(-0.0)::float8",
            "'2024-02-29'::date",
            "'infinity'::date",
            "'-infinity'::date",
            "'4713-11-24 BC'::date",
            "'5874897-12-31'::date",
            "'23:59:59.999999'::time",
            "'2000-01-01 00:00:00'::timestamp",
            "'294276-12-31 23:59:59'::timestamp",
            "'infinity'::timestamp",
            "'-infinity'::timestamptz",
            "'1999-12-31 23:59:59.5+05'::timestamptz",
            "''::text",
            "'héllo wörld ✓'::text",
            "repeat('x', 100000)::text",
            "'padded'::char(10)",
            "'v'::varchar(3)",
            "'{\"a\": [1, 2]}'::json",
            "'\\x00ff00'::bytea",
            "''::bytea",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
            "123456789012345678901234567890.123456789::numeric",
            "'NaN'::numeric",
            "'{\"b\": {\"c\": null}}'::jsonb",
            "'1 year 2 mons 3 days 04:05:06'::interval",
            "ARRAY[1, NULL, 3]",
            "ARRAY['a', 'b']::text[]",
            "'(1,2)'::point",
            "'name'::name",
            "42::oid",
            "'x'::\"char\"",
            "'192.168.0.1/24'::inet",
            "ROW(1, 'a')",
            "'[1,5)'::int4range",
            "'a & b'::tsquery",
            "'10:00+02'::timetz",
            "12.5::money",
        ];
        for expr in cases {
            let query = format!(
                "SELECT tests.columnar_roundtrip({expr})::text IS NOT DISTINCT FROM ({expr})::text"
            );
            assert_eq!(Spi::get_one::<bool>(&query), Ok(Some(true)), "{expr}");
        }
    }

    /// A table access method with storage callbacks only, so tests get a relation whose
    /// main fork belongs to the page store. Test builds only; scanning or inserting into
    /// its tables is not possible (the callbacks are absent).
    #[pg_extern(sql = "
        CREATE FUNCTION storage_only_handler(internal) RETURNS table_am_handler
            LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
        CREATE ACCESS METHOD tests_storage_only TYPE TABLE HANDLER storage_only_handler;
    ")]
    fn storage_only_handler(_fcinfo: pg_sys::FunctionCallInfo) -> pgrx::Internal {
        use crate::am::relation_storage as rs;
        static ROUTINE: std::sync::OnceLock<pg_sys::TableAmRoutine> = std::sync::OnceLock::new();
        let routine = ROUTINE.get_or_init(|| {
            let mut r = pg_sys::TableAmRoutine {
                type_: pg_sys::NodeTag::T_TableAmRoutine,
                ..Default::default()
            };
            #[cfg(not(feature = "pg15"))]
            {
                r.relation_set_new_filelocator = Some(rs::set_new_storage);
            }
            #[cfg(feature = "pg15")]
            {
                r.relation_set_new_filenode = Some(rs::set_new_storage);
            }
            r.relation_nontransactional_truncate = Some(rs::truncate_now);
            r.relation_size = Some(rs::relation_size);
            r.relation_needs_toast_table = Some(rs::needs_toast_table);
            r
        });
        pgrx::Internal::from(Some(pg_sys::Datum::from(routine as *const _)))
    }

    #[pg_test]
    fn extents_round_trip_through_shared_buffers_and_detect_damage() {
        use epiphany_core::storage::{write_extent, ExtentReader, PageStore};
        Spi::run("CREATE TABLE store_t (x int) USING tests_storage_only").unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'store_t'::regclass::oid")
            .unwrap()
            .unwrap();
        // SAFETY: the table exists; opened and closed on this thread with a lock held.
        let rel = unsafe { pg_sys::relation_open(oid, pg_sys::AccessExclusiveLock as _) };
        // SAFETY: `rel` stays open until relation_close below.
        let mut store = epiphany_core::pg::page_store::RelationPageStore::new(unsafe {
            epiphany_core::pg::buffer::Rel::new(rel)
        });
        assert_eq!(store.nblocks(), Ok(0));
        let small: Vec<u8> = (0..100u32).map(|i| i as u8).collect();
        let large: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let a = write_extent(&mut store, 1, &small).unwrap();
        let b = write_extent(&mut store, 2, &large).unwrap();
        assert_eq!((a.first_block, a.pages), (0, 1));
        assert_eq!(b.first_block, 1);
        assert_eq!(store.nblocks(), Ok(1 + b.pages));
        assert_eq!(
            ExtentReader::new(&store, a).unwrap().read_all().unwrap(),
            small
        );
        let reader = ExtentReader::new(&store, b).unwrap();
        assert_eq!(reader.read_all().unwrap(), large);
        assert_eq!(reader.read(100_000, 10).unwrap(), &large[100_000..100_010]);
        // The wrong extent id for the blocks, or blocks past the end, are errors.
        let wrong = epiphany_core::storage::Extent { id: 3, ..b };
        assert!(ExtentReader::new(&store, wrong)
            .unwrap()
            .read(0, 1)
            .is_err());
        let past = epiphany_core::storage::Extent {
            first_block: 5000,
            ..b
        };
        assert!(ExtentReader::new(&store, past).is_err());
        // The pages went through WAL-logged full-page writes: the relation's size on disk
        // is what the page store reports.
        let bytes = Spi::get_one::<i64>("SELECT pg_relation_size('store_t')")
            .unwrap()
            .unwrap();
        assert_eq!(bytes, (1 + b.pages as i64) * pg_sys::BLCKSZ as i64);
        // SAFETY: opened above.
        unsafe { pg_sys::relation_close(rel, pg_sys::AccessExclusiveLock as _) };
    }

    #[pg_test]
    fn a_part_in_relation_pages_reads_back_only_what_a_scan_needs() {
        use epiphany_core::columnar::fetch::SparsePart;
        use epiphany_core::columnar::prune::{Op, Predicate, Scalar};
        use epiphany_core::columnar::scan_plan::{prune_granules, ScanCounters};
        use epiphany_core::columnar::{
            encode_part, value_at, ColumnType, PartReader, RowBuffer, TableOptions, TableSchema,
            Value,
        };
        use epiphany_core::storage::{write_extent, ExtentReader};

        Spi::run("CREATE TABLE part_t (x int) USING tests_storage_only").unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'part_t'::regclass::oid")
            .unwrap()
            .unwrap();
        // SAFETY: the table exists; opened and closed on this thread with a lock held.
        let rel = unsafe { pg_sys::relation_open(oid, pg_sys::AccessExclusiveLock as _) };
        // SAFETY: `rel` stays open until relation_close below.
        let mut store = epiphany_core::pg::page_store::RelationPageStore::new(unsafe {
            epiphany_core::pg::buffer::Rel::new(rel)
        });

        // 20,000 rows inserted in reverse day order; order_by = day sorts them.
        let schema = TableSchema::new([
            ("day", ColumnType::Date),
            ("n", ColumnType::Int64),
            ("note", ColumnType::Text),
        ]);
        let mut buffer = RowBuffer::new(schema.clone());
        let notes: Vec<String> = (0..20_000).map(|i| format!("row {i}")).collect();
        for i in (0..20_000i64).rev() {
            buffer
                .push_row(&[
                    Value::Date((i / 100) as i32),
                    Value::Int64(i),
                    Value::Text(&notes[i as usize]),
                ])
                .unwrap();
        }
        let options = TableOptions::parse([("order_by", "day"), ("granule_rows", "1000")]).unwrap();
        let part = encode_part(&schema, &buffer.take_batch().unwrap(), &[0], &options).unwrap();
        let extent = write_extent(&mut store, 1, &part.bytes).unwrap();

        // A scan of `n` for day in [50, 60): the footer, then one column of the granules
        // that can hold those days.
        let reader = ExtentReader::new(&store, extent).unwrap();
        let fetched = std::cell::Cell::new(0usize);
        let mut fetch = |off: u64, len: usize| {
            fetched.set(fetched.get() + len);
            reader.read(off, len)
        };
        let sparse = SparsePart::with_tail(extent.len, &mut fetch).unwrap();
        let footer = fetched.get();
        let part_reader = PartReader::open(&schema, sparse.clone()).unwrap();
        let preds = [
            Predicate::Compare {
                column: 0,
                op: Op::Ge,
                value: Scalar::Int(50),
            },
            Predicate::Compare {
                column: 0,
                op: Op::Lt,
                value: Scalar::Int(60),
            },
        ];
        let mut counters = ScanCounters::default();
        let granules = prune_granules(&part_reader.granule_stats().unwrap(), &preds, &mut counters);
        assert_eq!(
            (counters.granules_scanned, counters.granules_skipped),
            (1, 19)
        );
        sparse
            .fetch_chunks(part_reader.metadata(), &[1], &granules, &mut fetch)
            .unwrap();
        let mut seen = Vec::new();
        for batch in part_reader.read(&[1], &granules, 256).unwrap() {
            let batch = batch.unwrap();
            for r in 0..batch.num_rows() {
                if let Value::Int64(n) = value_at(batch.column(0), ColumnType::Int64, r) {
                    seen.push(n);
                }
            }
        }
        // Rows of one day come in no particular order: the sort key is the day alone.
        seen.sort_unstable();
        assert_eq!(seen, (5000..6000).collect::<Vec<i64>>());
        // One column of one granule in twenty: a small fraction of the data bytes.
        let (chunks, data) = (fetched.get() - footer, part.bytes.len() - footer);
        assert!(chunks * 20 < data, "fetched {chunks} of {data} data bytes");
        // SAFETY: opened above.
        unsafe { pg_sys::relation_close(rel, pg_sys::AccessExclusiveLock as _) };
    }

    #[pg_test]
    fn the_launcher_runs_when_preloaded() {
        // pg_test::postgresql_conf_options preloads the library, so the postmaster must
        // start exactly one launcher; it may still be forking when the first test runs.
        let mut running = None;
        for _ in 0..200 {
            // Backend status is cached per transaction: drop the cache before each look.
            Spi::run("SELECT pg_stat_clear_snapshot()").unwrap();
            running = Spi::get_one_with_args::<i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = $1",
                &[epiphany_core::component::COLUMNSTORE_LAUNCHER.into()],
            )
            .unwrap();
            if running == Some(1) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(running, Some(1));
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'epiphany_columnstore'"]
    }
}
