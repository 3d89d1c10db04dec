-- Installing and removing the suite: one command in, one command out, nothing left.
\set VERBOSITY terse
SELECT count(*) AS nsp_before FROM pg_namespace \gset
SELECT count(*) AS proc_before FROM pg_proc \gset
SELECT count(*) AS type_before FROM pg_type \gset
SELECT count(*) AS class_before FROM pg_class \gset
SELECT count(*) AS depend_before FROM pg_depend \gset

CREATE EXTENSION epiphany_unified_api CASCADE;
SELECT extname, extnamespace::regnamespace AS schema, extversion = epiphany.version() AS current_version
FROM pg_extension WHERE extname LIKE 'epiphany%' ORDER BY oid;

-- Every function of the suite lives in schema epiphany and has a comment; the suite
-- leaves the built-in functions of the same names alone.
SELECT p.proname, obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
FROM pg_proc p WHERE p.pronamespace = 'epiphany'::regnamespace ORDER BY 1;
SELECT obj_description('pg_catalog.version()'::regprocedure, 'pg_proc') LIKE 'PostgreSQL%' AS builtin_comment_kept;
SELECT nspname FROM pg_namespace WHERE nspname = 'public' OR nspname LIKE 'epiphany%' ORDER BY 1;

-- The components cannot be moved or installed anywhere else.
ALTER EXTENSION epiphany_columnstore SET SCHEMA public;
DROP EXTENSION epiphany_timestore;

-- Dropping the unified API keeps the storage extensions.
DROP EXTENSION epiphany_unified_api;
SELECT count(*) FROM pg_extension WHERE extname LIKE 'epiphany%';

-- Dropping epiphany_core removes the whole suite and leaves the catalogs as they were.
DROP EXTENSION epiphany_core CASCADE;
SELECT count(*) AS extensions_left FROM pg_extension WHERE extname LIKE 'epiphany%';
SELECT (SELECT count(*) FROM pg_namespace) = :nsp_before AS namespaces_same,
       (SELECT count(*) FROM pg_proc) = :proc_before AS procs_same,
       (SELECT count(*) FROM pg_type) = :type_before AS types_same,
       (SELECT count(*) FROM pg_class) = :class_before AS relations_same,
       (SELECT count(*) FROM pg_depend) = :depend_before AS dependencies_same;

-- A schema called epiphany that holds user objects is never taken over.
CREATE SCHEMA epiphany;
CREATE TABLE epiphany.mine (i int);
CREATE EXTENSION epiphany_unified_api CASCADE;
SELECT count(*) AS extensions_left FROM pg_extension WHERE extname LIKE 'epiphany%';
DROP SCHEMA epiphany CASCADE;

-- An empty one is adopted, so it goes away with the suite.
CREATE SCHEMA epiphany;
CREATE EXTENSION epiphany_unified_api CASCADE;
DROP EXTENSION epiphany_core CASCADE;
SELECT count(*) AS epiphany_schemas FROM pg_namespace WHERE nspname = 'epiphany';

-- Installed step by step works as well as with CASCADE; a missing requirement is named.
CREATE EXTENSION epiphany_core;
CREATE EXTENSION epiphany_columnstore;
CREATE EXTENSION epiphany_unified_api;
CREATE EXTENSION epiphany_timestore;
CREATE EXTENSION epiphany_vectorstore;
CREATE EXTENSION epiphany_unified_api;
SELECT count(*) AS installed FROM pg_extension WHERE extname LIKE 'epiphany%';
DROP EXTENSION epiphany_core CASCADE;
