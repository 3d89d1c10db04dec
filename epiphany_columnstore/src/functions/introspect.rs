//! What a user can ask about columnar tables: their parts (`epiphany.parts`), sizes and
//! compression (`epiphany.columnar_stats`), and a full check (`epiphany.verify_table`).
//! All read the parts the caller's snapshot sees, and need SELECT on the table.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use bytes::Bytes;
use epiphany_core::columnar::scan_plan::decode_stats;
use epiphany_core::columnar::verify::{check_part, check_ranges, CatalogPart};
use epiphany_core::pg::OrReport;
use epiphany_core::storage::ExtentReader;
use epiphany_core::Error;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgRelation};

use crate::convert::table::TableInfo;
use crate::storage::catalog::{self, PartRow};
use crate::storage::part_access::OpenPart;
use crate::storage::part_access::RelationPart;
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::page_store::RelationPageStore;

/// The columnar table `oid` names, opened for reading (AccessShareLock, held to the end
/// of the transaction) after checking the caller may read it. The functions take the
/// `regclass` as a plain OID and open it here, so that an OID naming nothing (0, a
/// dropped table) is a clear error and an index or a heap table is refused by name.
fn open_columnar(oid: pg_sys::Oid) -> PgRelation {
    // SAFETY: relation and catalog lookups on the main thread; the relation stays open
    // (and locked) while the returned value lives.
    unsafe {
        let rel = pg_sys::try_relation_open(oid, pg_sys::AccessShareLock as _);
        if rel.is_null() {
            Error::UndefinedTable(oid.to_u32()).report();
        }
        let rel = PgRelation::from_pg_owned(rel);
        if !crate::hooks::options::is_columnar_relation(oid) {
            epiphany_core::pg::report(&Error::InvalidParameter {
                name: "table".into(),
                detail: format!("\"{}\" is not an epiphany_columnar table", rel.name()),
            });
        }
        let acl = pg_sys::pg_class_aclcheck(oid, pg_sys::GetUserId(), pg_sys::ACL_SELECT as _);
        if acl != pg_sys::AclResult::ACLCHECK_OK {
            pg_sys::aclcheck_error(
                acl,
                pg_sys::ObjectType::OBJECT_TABLE,
                pg_sys::get_rel_name(oid),
            );
        }
        rel
    }
}

/// Parts of `rel` (from [`open_columnar`]) visible to the active snapshot.
fn visible_parts(rel: &PgRelation) -> Vec<PartRow> {
    // SAFETY: an open relation; catalog lookups on the main thread with the active
    // snapshot of the calling query.
    unsafe {
        crate::writes::flush_relid(rel.oid(), true);
        match crate::storage::meta::storage_id(Rel::of(rel)).or_report() {
            Some(storage) => catalog::visible(storage, pg_sys::GetActiveSnapshot()).or_report(),
            None => Vec::new(),
        }
    }
}

/// A bound of a column as its type's text, or NULL when unknown.
fn bound_text(
    info: &TableInfo,
    column: usize,
    bound: Option<&epiphany_core::columnar::prune::Scalar>,
) -> Option<String> {
    let ty = info.columns[column];
    let value = bound?.to_value(ty.ty)?;
    // SAFETY: the value has the column's type; the output function of that type renders it.
    unsafe {
        let datum = crate::convert::datum::to_datum(&ty, &value)?;
        Some(info.output(column, datum))
    }
}

#[allow(clippy::type_complexity)]
#[pg_extern(
    stable,
    parallel_safe,
    name = "columnar_part_list",
    sql = r#"
CREATE FUNCTION "columnar_part_list"("rel" regclass) RETURNS TABLE (
    "part_id" bigint, "level" INT, "first_row" bigint, "rows" bigint, "bytes_on_disk" bigint,
    "sort_key_min" TEXT, "sort_key_max" TEXT
) STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'columnar_part_list_wrapper';
"#
)]
fn columnar_part_list(
    rel: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(part_id, i64),
        name!(level, i32),
        name!(first_row, i64),
        name!(rows, i64),
        name!(bytes_on_disk, i64),
        name!(sort_key_min, Option<String>),
        name!(sort_key_max, Option<String>),
    ),
> {
    let rel = open_columnar(rel);
    let parts = visible_parts(&rel);
    // SAFETY: an open relation.
    let info = TableInfo::load(Rel::of(&rel)).or_report();
    let rows: Vec<_> = parts
        .iter()
        .map(|p| {
            let stats = decode_stats(&p.stats).ok();
            let bound = |min: bool| -> Option<String> {
                let stats = stats.as_ref()?;
                let texts: Option<Vec<String>> = info
                    .sort_key
                    .iter()
                    .map(|&c| {
                        let s = stats.columns.get(c)?;
                        bound_text(&info, c, if min { s.min.as_ref() } else { s.max.as_ref() })
                    })
                    .collect();
                let texts = texts?;
                if texts.is_empty() {
                    None
                } else if texts.len() == 1 {
                    texts.into_iter().next()
                } else {
                    Some(format!("({})", texts.join(", ")))
                }
            };
            (
                p.part_id as i64,
                p.level,
                p.first_row as i64,
                p.row_count as i64,
                i64::from(p.pages) * pg_sys::BLCKSZ as i64,
                bound(true),
                bound(false),
            )
        })
        .collect();
    TableIterator::new(rows)
}

#[pg_extern(
    stable,
    parallel_safe,
    sql = r#"
CREATE FUNCTION "columnar_stats"("rel" regclass) RETURNS TABLE (
    "rows" bigint, "parts" bigint, "compressed_bytes" bigint, "uncompressed_bytes" bigint,
    "compression_ratio" double precision
) STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'columnar_stats_wrapper';
"#
)]
fn columnar_stats(
    rel: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(rows, i64),
        name!(parts, i64),
        name!(compressed_bytes, i64),
        name!(uncompressed_bytes, i64),
        name!(compression_ratio, Option<f64>),
    ),
> {
    let rel = open_columnar(rel);
    let parts = visible_parts(&rel);
    // SAFETY: an open relation.
    let info = TableInfo::load(Rel::of(&rel)).or_report();
    let mut uncompressed = 0i64;
    for p in &parts {
        // SAFETY: an open relation; only the footer is read.
        let open = OpenPart::open(Rel::of(&rel), &info.schema, p.clone()).or_report();
        uncompressed += open
            .reader
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| rg.total_byte_size())
            .sum::<i64>();
    }
    let rows = parts.iter().map(|p| p.row_count as i64).sum();
    let compressed: i64 = parts.iter().map(|p| p.byte_len as i64).sum();
    let ratio = (compressed > 0).then(|| uncompressed as f64 / compressed as f64);
    TableIterator::once((rows, parts.len() as i64, compressed, uncompressed, ratio))
}

#[pg_extern(
    stable,
    sql = r#"
CREATE FUNCTION "verify_table"("rel" regclass) RETURNS TABLE ("part_id" bigint, "problem" TEXT)
    STRICT STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'verify_table_wrapper';
"#
)]
fn verify_table(
    rel: pg_sys::Oid,
) -> TableIterator<'static, (name!(part_id, Option<i64>), name!(problem, String))> {
    let rel = open_columnar(rel);
    // SAFETY: an open relation.
    let info = TableInfo::load(Rel::of(&rel)).or_report();
    let mut problems: Vec<(Option<i64>, String)> = Vec::new();
    // SAFETY: an open relation.
    if let Err(e) = crate::storage::meta::read(Rel::of(&rel)) {
        problems.push((None, e.to_string()));
        return TableIterator::new(problems);
    }
    let parts = visible_parts(&rel);
    let catalog_parts: Vec<CatalogPart> = parts
        .iter()
        .map(|p| CatalogPart {
            part_id: p.part_id,
            first_row: p.first_row,
            rows: p.row_count,
        })
        .collect();
    for (id, problem) in check_ranges(&catalog_parts) {
        problems.push((Some(id as i64), problem));
    }
    // SAFETY: an open relation, read through shared buffers.
    let store = RelationPageStore::new(Rel::of(&rel));
    for (p, cat) in parts.iter().zip(&catalog_parts) {
        pgrx::check_for_interrupts!();
        let bytes = ExtentReader::new(&store, p.extent()).and_then(|r| r.read_all());
        match bytes {
            Ok(bytes) => {
                for problem in check_part(&info.schema, *cat, Bytes::from(bytes), &p.stats) {
                    problems.push((Some(p.part_id as i64), problem));
                }
            }
            Err(e) => problems.push((Some(p.part_id as i64), e.to_string())),
        }
    }
    TableIterator::new(problems)
}

extension_sql!(
    r#"
CREATE VIEW epiphany.parts AS
SELECT c.oid::regclass AS "table", p.part_id, p.level, p.first_row, p.rows, p.bytes_on_disk,
       p.sort_key_min, p.sort_key_max
  FROM pg_class c
  JOIN pg_am a ON a.oid = c.relam AND a.amname = 'epiphany_columnar'
  CROSS JOIN LATERAL epiphany.columnar_part_list(c.oid::regclass) p
 WHERE c.relkind = 'r' AND has_table_privilege(c.oid, 'SELECT');
GRANT SELECT ON epiphany.parts TO PUBLIC;
COMMENT ON VIEW epiphany.parts IS
    'One row per live part of every epiphany_columnar table you can read: rows, bytes on disk, bounds of each sort-key column';
COMMENT ON FUNCTION epiphany.columnar_part_list(regclass) IS
    'Parts of one epiphany_columnar table visible to the current snapshot (the rows of epiphany.parts)';
COMMENT ON FUNCTION epiphany.columnar_stats(regclass) IS
    'Rows, parts, compressed and uncompressed bytes, and compression ratio of an epiphany_columnar table';
COMMENT ON FUNCTION epiphany.verify_table(regclass) IS
    'Reads and checks every part of an epiphany_columnar table (page checksums, part format, row counts, row numbering); one row per problem, none when healthy';
"#,
    name = "columnar_introspection",
    requires = [columnar_part_list, columnar_stats, verify_table],
);
