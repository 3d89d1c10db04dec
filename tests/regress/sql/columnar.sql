-- epiphany_columnar as a user meets it: DDL with options, loading, reading, indexes,
-- introspection, and the errors for what is not supported (yet).
\set VERBOSITY default
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS epiphany_unified_api CASCADE;
RESET client_min_messages;

CREATE TABLE orders (
    id int, customer text, placed date, amount numeric(12,2), note text
) USING epiphany_columnar WITH (order_by = 'placed, id', granule_rows = 100, compression = 'zstd', compression_level = 5);
\d+ orders

INSERT INTO orders
SELECT g, 'customer ' || (g % 37), date '2024-01-01' + (g % 200), g * 1.25, CASE WHEN g % 9 = 0 THEN NULL ELSE 'n' || g END
FROM generate_series(1, 2000) g;
COPY orders FROM stdin;
5001	walk-in	2024-12-24	10.50	\N
5002	walk-in	2024-12-25	\N	christmas
\.

SELECT count(*), sum(amount), min(placed), max(placed), count(note) FROM orders;
SELECT * FROM orders WHERE id IN (7, 5002) ORDER BY id;

-- A transaction reads its own rows; a savepoint rollback discards only its own.
BEGIN;
INSERT INTO orders VALUES (6001, 'tx', '2025-01-01', 1, 'kept');
SAVEPOINT s;
INSERT INTO orders VALUES (6002, 'tx', '2025-01-01', 1, 'discarded');
ROLLBACK TO SAVEPOINT s;
SELECT id, note FROM orders WHERE customer = 'tx';
COMMIT;
SELECT id, note FROM orders WHERE customer = 'tx';

-- Indexes.
CREATE INDEX orders_id ON orders (id);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT customer FROM orders WHERE id = 1234;
SELECT customer, placed FROM orders WHERE id = 1234;
RESET enable_seqscan;

-- The columnar custom scan reads only the columns a query needs and prunes by min/max.
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM orders WHERE placed BETWEEN '2024-03-01' AND '2024-03-05';
SELECT sum(amount) FROM orders WHERE placed BETWEEN '2024-03-01' AND '2024-03-05';
SET epiphany.enable_columnar_scan = off;
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM orders WHERE placed BETWEEN '2024-03-01' AND '2024-03-05';
RESET epiphany.enable_columnar_scan;
RESET max_parallel_workers_per_gather;

-- TABLESAMPLE.
SELECT count(*) FROM orders TABLESAMPLE SYSTEM (100);
SELECT count(*) FROM orders TABLESAMPLE BERNOULLI (0);

-- What the catalog knows.
SELECT rows, parts FROM epiphany.columnar_stats('orders');
SELECT rows, sort_key_min, sort_key_max FROM epiphany.parts WHERE "table" = 'orders'::regclass ORDER BY first_row;
SELECT * FROM epiphany.verify_table('orders');

-- Options are checked, and changed with ALTER TABLE.
ALTER TABLE orders SET (granule_rows = 500);
SELECT reloptions FROM pg_class WHERE oid = 'orders'::regclass;
ALTER TABLE orders SET (compression = 'lz4');
SELECT reloptions FROM pg_class WHERE oid = 'orders'::regclass;
ALTER TABLE orders SET (granule_rows = -1);
ALTER TABLE orders SET (order_by = 'missing');
ALTER TABLE orders SET (fillfactor = 50, granule_rows = 10);
CREATE TABLE bad (x int) USING epiphany_columnar WITH (compression = 'snappy');
CREATE TABLE bad (x int) USING epiphany_columnar WITH (compression = 'none', compression_level = 3);
CREATE TABLE bad (x int) USING epiphany_columnar WITH (granule_rows = 10, granule_rows = 20);
CREATE UNLOGGED TABLE bad (x int) USING epiphany_columnar;

-- Not supported yet: clear errors with SQLSTATE 0A000.
\set VERBOSITY sqlstate
UPDATE orders SET note = 'x' WHERE id = 1;
DELETE FROM orders WHERE id = 1;
INSERT INTO orders VALUES (1) ON CONFLICT DO NOTHING;
SELECT * FROM orders FOR UPDATE;
CREATE UNIQUE INDEX ON orders (id);
ALTER TABLE orders ADD COLUMN extra int;
ALTER TABLE orders DROP COLUMN note;
\set VERBOSITY default
UPDATE orders SET note = 'x' WHERE id = 1;

-- TRUNCATE inside a transaction that rolls back keeps every row.
BEGIN;
TRUNCATE orders;
SELECT count(*) FROM orders;
ROLLBACK;
SELECT count(*) FROM orders;

DROP TABLE orders;
SELECT count(*) FROM epiphany.parts;
