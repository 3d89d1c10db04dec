-- epiphany_columnstore 0.1.0 -> 0.2.0: the epiphany_columnar table access method and its
-- part catalog.
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
