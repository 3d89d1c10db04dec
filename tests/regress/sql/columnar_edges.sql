-- epiphany_columnar where outside test suites found it wanting: rows fetched by TID,
-- a transaction's own rows under cursors and savepoints, infinite bounds, schema
-- changes, tables without columns, options, and errors it must leave alone.
\set VERBOSITY default
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS epiphany_unified_api CASCADE;
RESET client_min_messages;

-- A row fetched by TID stays valid after the fetch: MERGE's fetch of the target row,
-- TID scans, functions that keep the value.
CREATE TABLE fetched (a text, n int) USING epiphany_columnar;
INSERT INTO fetched VALUES ('hello', 1), (repeat('x', 3000), 2);
CREATE FUNCTION noisy(text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE NOTICE 'saw % (% bytes)', left($1, 5), length($1); RETURN true; END $$;
MERGE INTO fetched USING (VALUES ('hello'), (repeat('x', 3000))) v(a) ON fetched.a = v.a
    WHEN MATCHED AND noisy(fetched.a) THEN DO NOTHING;
CREATE FUNCTION same_text(text) RETURNS text LANGUAGE sql AS 'SELECT $1';
SET epiphany.enable_columnar_scan = off;
SET enable_seqscan = off;
SELECT n, left(a, 5), length(same_text(a)) FROM fetched WHERE ctid = (SELECT ctid FROM fetched WHERE n = 1);
SELECT n, left(a, 5), length(same_text(a)) FROM fetched WHERE ctid = (SELECT ctid FROM fetched WHERE n = 2);
RESET epiphany.enable_columnar_scan;
RESET enable_seqscan;

-- Rows a savepoint flushed and then rolled back are written again in a later part
-- that covers the same row numbers: a fetch with SnapshotAny (MERGE) must read the
-- committed part, never the aborted one.
CREATE TABLE rewritten (id int, v text) USING epiphany_columnar;
BEGIN;
INSERT INTO rewritten SELECT g, 'v' || g FROM generate_series(1, 100) g;
SAVEPOINT s;
SELECT count(*) FROM rewritten;
ROLLBACK TO SAVEPOINT s;
INSERT INTO rewritten SELECT g, 'v' || g FROM generate_series(101, 300) g;
COMMIT;
MERGE INTO rewritten USING (VALUES (50), (250)) v(id) ON rewritten.id = v.id
    WHEN MATCHED AND noisy(rewritten.v) THEN DO NOTHING;
SELECT count(*), sum(id) FROM rewritten;

-- A STABLE function reads under the cursor's snapshot: the rows inserted before the
-- cursor, not those after it (and COMMIT leaks nothing).
CREATE TABLE counted (f1 int) USING epiphany_columnar;
CREATE FUNCTION count_counted() RETURNS int8 LANGUAGE sql STABLE AS 'SELECT count(*) FROM counted';
BEGIN;
INSERT INTO counted VALUES (1);
DECLARE c1 CURSOR FOR SELECT count_counted();
INSERT INTO counted VALUES (2);
FETCH ALL FROM c1;
SELECT count_counted();
DECLARE c2 CURSOR FOR SELECT count(*) FROM counted;
INSERT INTO counted VALUES (3);
SELECT count(*) FROM counted;
FETCH ALL FROM c2;
COMMIT;
SELECT count(*) FROM counted;

-- Infinite bounds compare across types as Postgres compares them.
CREATE TABLE days (d date, ts timestamp) USING epiphany_columnar;
INSERT INTO days VALUES ('infinity', 'infinity'), ('-infinity', '-infinity'), ('2020-01-01', '2020-01-01');
SELECT count(*) FROM days WHERE d <= 'infinity'::timestamp;
SELECT count(*) FROM days WHERE d >= '-infinity'::timestamp;
SELECT count(*) FROM days WHERE d = 'infinity'::timestamp;
SELECT count(*) FROM days WHERE ts >= 'infinity'::date;
SELECT count(*) FROM days WHERE ts > '-infinity'::date;

-- ALTER COLUMN … TYPE rewrites rows written with the old types.
CREATE TABLE retyped (i int, t text, o int) USING epiphany_columnar WITH (order_by = 'o');
INSERT INTO retyped SELECT g, g::text, -g FROM generate_series(1, 1000) g;
ALTER TABLE retyped ALTER COLUMN i TYPE numeric;
ALTER TABLE retyped ALTER COLUMN i TYPE int8;
ALTER TABLE retyped ALTER COLUMN t TYPE int USING t::int;
SELECT sum(i), sum(t), min(o), count(*), pg_typeof(min(i)), pg_typeof(min(t)) FROM retyped;

-- order_by follows a column's renames (and stays readable and writable).
ALTER TABLE retyped RENAME COLUMN o TO sort_key;
SELECT reloptions FROM pg_class WHERE relname = 'retyped';
INSERT INTO retyped VALUES (1, 2, 3);
SELECT count(*) FROM retyped;
ALTER TABLE retyped SET (granule_rows = 100);
SELECT reloptions FROM pg_class WHERE relname = 'retyped';

-- Adding or dropping a column is refused however the statement reaches the table.
ALTER TABLE retyped DROP COLUMN sort_key;
ALTER TABLE retyped ADD COLUMN z int;
CREATE TABLE parent (a int, b int) PARTITION BY RANGE (a);
CREATE TABLE parent_1 PARTITION OF parent FOR VALUES FROM (0) TO (100) USING epiphany_columnar;
INSERT INTO parent VALUES (1, 2);
ALTER TABLE parent ADD COLUMN c int;
ALTER TABLE parent DROP COLUMN b;
CREATE TABLE base (a int, b int);
CREATE TABLE heir () INHERITS (base) USING epiphany_columnar;
ALTER TABLE base ADD COLUMN c int;
CREATE TYPE pair AS (x int, y int);
CREATE TABLE typed OF pair USING epiphany_columnar;
ALTER TYPE pair ADD ATTRIBUTE z int CASCADE;
SELECT * FROM parent;
ALTER TABLE parent RENAME COLUMN b TO bb;
SELECT * FROM parent;

-- A table without columns.
CREATE TABLE nocols () USING epiphany_columnar;
INSERT INTO nocols DEFAULT VALUES;
INSERT INTO nocols SELECT FROM generate_series(1, 9);
SELECT count(*) FROM nocols;

-- Postgres's own table options on a columnar table: validated as Postgres does, kept
-- beside ours.
ALTER TABLE retyped SET (autovacuum_enabled = false);
ALTER TABLE retyped SET (nonexistent = 1);
ALTER TABLE retyped RESET (order_by, nonexistent);
ALTER TABLE retyped RESET (autovacuum_enabled);
SELECT reloptions FROM pg_class WHERE relname = 'retyped';
ALTER TABLE retyped SET (granule_rows = 10), ALTER COLUMN t SET STATISTICS 10;

-- Introspection refuses what is not a columnar table.
CREATE TABLE plain (a int);
CREATE INDEX plain_a ON plain (a);
SELECT * FROM epiphany.verify_table('plain');
SELECT * FROM epiphany.verify_table('plain_a');
SELECT * FROM epiphany.verify_table(0);
SELECT * FROM epiphany.columnar_stats('plain_a');

-- amcheck verifies indexes of columnar tables, also against every row of the table.
CREATE EXTENSION IF NOT EXISTS amcheck;
CREATE INDEX retyped_i ON retyped (i);
SELECT bt_index_check('retyped_i', true), bt_index_parent_check('retyped_i', true);
CREATE INDEX CONCURRENTLY retyped_t ON retyped (t);

-- ON CONFLICT needs a unique index, which columnar tables do not have yet.
INSERT INTO nocols DEFAULT VALUES ON CONFLICT DO NOTHING;

-- Errors of other statements keep their position and CONTEXT lines with the library
-- loaded (its hooks pass them through untouched).
CREATE DOMAIN posix_int AS int COLLATE "POSIX";
CREATE TABLE copied (a int);
COPY copied FROM STDIN;
1
foo
\.
