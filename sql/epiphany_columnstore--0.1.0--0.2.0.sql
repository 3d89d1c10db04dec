-- epiphany_columnstore 0.1.0 -> 0.2.0: the epiphany_columnar table access method, its
-- part catalog and the functions that describe and check columnar tables.
\echo Use "ALTER EXTENSION epiphany_columnstore UPDATE" to load this file. \quit

CREATE SEQUENCE epiphany.columnar_storage_ids;
COMMENT ON SEQUENCE epiphany.columnar_storage_ids IS
    'Ids of epiphany_columnar storages (a new one for every relfilenode that gets rows)';

CREATE TABLE epiphany.columnar_parts (
    storage_id  bigint  NOT NULL,
    part_id     bigint  NOT NULL,
    level       integer NOT NULL,
    first_row   bigint  NOT NULL,
    row_count   bigint  NOT NULL,
    first_block bigint  NOT NULL,
    pages       integer NOT NULL,
    byte_len    bigint  NOT NULL,
    stats       bytea   NOT NULL
);
COMMENT ON TABLE epiphany.columnar_parts IS
    'One row per part of every epiphany_columnar table: visible exactly when the part''s rows are (written by the access method; do not modify)';
REVOKE ALL ON epiphany.columnar_parts FROM PUBLIC;
REVOKE ALL ON SEQUENCE epiphany.columnar_storage_ids FROM PUBLIC;

CREATE FUNCTION epiphany.columnar_handler(internal) RETURNS table_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'columnar_handler_wrapper';
COMMENT ON FUNCTION epiphany.columnar_handler(internal) IS
    'Table access method handler of epiphany_columnar';
CREATE ACCESS METHOD epiphany_columnar TYPE TABLE HANDLER epiphany.columnar_handler;
COMMENT ON ACCESS METHOD epiphany_columnar IS
    'Columnar MergeTree storage: sorted, compressed, immutable parts with granule pruning';

-- epiphany_columnstore::introspect::columnar_part_list
CREATE  FUNCTION "columnar_part_list"(
	"rel" regclass /* PgRelation */
) RETURNS TABLE (
	"part_id" bigint,  /* i64 */
	"level" INT,  /* i32 */
	"first_row" bigint,  /* i64 */
	"rows" bigint,  /* i64 */
	"bytes_on_disk" bigint,  /* i64 */
	"sort_key_min" TEXT,  /* Option < String > */
	"sort_key_max" TEXT  /* Option < String > */
)
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'columnar_part_list_wrapper';

-- epiphany_columnstore::introspect::columnar_stats
CREATE  FUNCTION "columnar_stats"(
	"rel" regclass /* PgRelation */
) RETURNS TABLE (
	"rows" bigint,  /* i64 */
	"parts" bigint,  /* i64 */
	"compressed_bytes" bigint,  /* i64 */
	"uncompressed_bytes" bigint,  /* i64 */
	"compression_ratio" double precision  /* Option < f64 > */
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'columnar_stats_wrapper';

-- epiphany_columnstore::introspect::verify_table
CREATE  FUNCTION "verify_table"(
	"rel" regclass /* PgRelation */
) RETURNS TABLE (
	"part_id" bigint,  /* Option < i64 > */
	"problem" TEXT  /* String */
)
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_table_wrapper';

-- requires:
--   columnar_part_list
--   columnar_stats
--   verify_table


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

