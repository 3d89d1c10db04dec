-- epiphany.version() and epiphany.status() on a server that preloads epiphany_columnstore.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION epiphany_unified_api CASCADE;
RESET client_min_messages;

SELECT epiphany.version() ~ '^[0-9]+\.[0-9]+\.[0-9]+$' AS looks_like_a_version;
SELECT epiphany.version() = epiphany.columnstore_version()
   AND epiphany.version() = epiphany.timestore_version()
   AND epiphany.version() = epiphany.vectorstore_version() AS one_build;

-- One row per component, in dependency order. The launcher may still be starting right
-- after the server came up, so wait for it (bounded) before looking.
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN (SELECT workers_running FROM epiphany.status()
                   WHERE component = 'epiphany_columnstore') = 1;
        PERFORM pg_sleep(0.1);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END $$;
SELECT component, version = epiphany.version() AS version_ok,
       library_version IS NULL OR library_version = version AS library_ok,
       preloaded, workers_expected, workers_running, state
FROM epiphany.status();

DROP EXTENSION epiphany_core CASCADE;
