-- The vector type as a pgvector user meets it: literals, dimensions, casts, operators,
-- functions, aggregates, ordering, and the errors for bad input.
\set VERBOSITY default
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS epiphany_unified_api CASCADE;
RESET client_min_messages;
SET search_path = public, epiphany;

SELECT '[1,2,3]'::vector, ' [ 1.5 , -2e-7,3e8 ] '::vector, '[0.1,100000,1000000]'::vector;
SELECT '[1,2,3]'::vector(3);
CREATE TABLE items (id int, v vector(3));
\d items
INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[1,1,1]'), (4, NULL);
INSERT INTO items VALUES (5, '[1,2]');
INSERT INTO items VALUES (5, ARRAY[1,2,3]), (6, ARRAY[1.5,2.5,3.5]::real[]), (7, ARRAY[0.25,0.5,1]::float8[]);
SELECT id, v FROM items ORDER BY id;

-- Distances and operators (NULLs stay NULL).
SELECT id, v <-> '[1,1,1]' AS l2, v <#> '[1,1,1]' AS neg_ip, round((v <=> '[1,1,1]')::numeric, 6) AS cos
FROM items ORDER BY id;
SELECT l2_distance('[0,0]', '[3,4]'), inner_product('[1,2,3]', '[4,5,6]'), cosine_distance('[1,0]', '[0,1]'),
       vector_l2_squared_distance('[0,0]', '[3,4]');
SELECT cosine_distance('[0,0]', '[1,1]') AS zero_vector_is_nan;
SELECT '[1,2,3]'::vector + '[4,5,6]', '[1,2,3]'::vector - '[4,5,6]', '[1,2,3]'::vector * '[4,5,6]';
SELECT vector_dims('[1,2,3]'::vector), vector_norm('[3,4]'), l2_normalize('[3,4]'), l2_normalize('[0,0]');
SELECT '[1,2,3]'::vector::real[], ARRAY[1,2]::vector;
-- || concatenates vectors (an operator of the type, not text concatenation).
SELECT '[1,2,3]'::vector || '[4,5]' AS v, pg_typeof('[1,2,3]'::vector || '[4,5]'), vector_concat('[1]', '[2]');
SELECT vector_dims(array_fill(1, ARRAY[8000])::vector || array_fill(1, ARRAY[8000])::vector);
SELECT vector_send('[1,2]');
-- Binary COPY round-trips every value (send, then receive with the column's dimensions).
COPY items TO '/tmp/epiphany_regress_vectors.bin' (FORMAT binary);
CREATE TABLE items_copy (id int, v vector(3));
COPY items_copy FROM '/tmp/epiphany_regress_vectors.bin' (FORMAT binary);
SELECT count(*) AS same FROM items i JOIN items_copy c ON c.id = i.id AND c.v IS NOT DISTINCT FROM i.v;
CREATE TABLE items_narrow (id int, v vector(2));
COPY items_narrow FROM '/tmp/epiphany_regress_vectors.bin' (FORMAT binary);
DROP TABLE items_copy, items_narrow;

-- Nearest neighbours, ordering, btree index, aggregates.
SELECT id FROM items WHERE v IS NOT NULL ORDER BY v <-> '[1,0.1,0]' LIMIT 3;
SELECT id, v FROM items WHERE v IS NOT NULL ORDER BY v, id;
SELECT '[1,2]'::vector < '[1,2,0]', '[1,2]'::vector = '[1,2]', '[2]'::vector > '[1,9]';
CREATE INDEX ON items (v);
SELECT avg(v), sum(v), count(v) FROM items;
SELECT avg(v) FROM items WHERE false;

-- Bad input: each is a clear error, nothing is stored.
SELECT '[1,2'::vector;
SELECT '1,2'::vector;
SELECT '[1,,2]'::vector;
SELECT '[]'::vector;
SELECT '[NaN]'::vector;
SELECT '[1,Infinity]'::vector;
SELECT '[1e39]'::vector;
SELECT '[hello]'::vector;
SELECT '[1,2]'::vector(3);
SELECT '[1]'::vector(0);
SELECT '[1]'::vector(16001);
SELECT '[1]'::vector(2, 3);
SELECT '[1,2]'::vector <-> '[1,2,3]';
SELECT '[1,2]'::vector + '[1]';
SELECT '[3e38]'::vector + '[3e38]';
SELECT ARRAY[1,NULL]::vector;
SELECT ARRAY[[1,2],[3,4]]::vector;
SELECT ARRAY[]::int[]::vector;
SELECT ('[' || repeat('1,', 16000) || '1]')::vector;
SELECT array_fill(1, ARRAY[8000])::vector || array_fill(1, ARRAY[8001])::vector;
SELECT count(*) FROM items;
DROP TABLE items;
