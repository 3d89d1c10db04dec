//! epiphany_columnstore: the columnar MergeTree table access method.
//!
//! The storage itself arrives with the columnar issue; this crate already carries what
//! every later piece hangs on: the library's registration (`_PG_init`), its maintenance
//! launcher (a background worker, see [`launcher`]) and its version function.

use pgrx::prelude::*;

// The table access method (next) converts every value through it; until then only the
// round-trip test does.
#[cfg_attr(not(any(test, feature = "pg_test")), allow(dead_code))]
mod datum;
mod launcher;

::pgrx::pg_module_magic!(name, version);

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    launcher::register();
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
        let info = crate::datum::ColumnInfo::for_type(v.oid());
        let schema = TableSchema::new([("v", info.ty)]);
        let mut buffer = RowBuffer::new(schema.clone());
        // SAFETY: a non-null datum of its own type, as the function was called with.
        buffer
            .push_row(&[unsafe { crate::datum::to_value(&info, v.datum()) }])
            .unwrap();
        let part =
            encode_part(&schema, &buffer.take_batch(), &[], &TableOptions::default()).unwrap();
        let reader = PartReader::open(&schema, part.bytes).unwrap();
        let batch = reader
            .read(&[0], &[0], 10)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let value = value_at(batch.column(0), info.ty, 0);
        // SAFETY: the value came from a column of this type.
        let datum = unsafe { crate::datum::to_datum(&info, &value) }.unwrap();
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
