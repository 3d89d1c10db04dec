-- epiphany_core 0.6.0: the schema every EpiphanyDB extension lives in.
\echo Use "CREATE EXTENSION epiphany_core" to load this file. \quit

-- The other extensions name `schema = epiphany` in their control files. When one of them
-- is created with CASCADE, Postgres creates that schema (empty, owned by nobody) before it
-- installs this extension; we then adopt it, so that dropping epiphany_core drops it too.
-- A schema of that name with anything in it belongs to the user: refuse to take it over.
DO $epiphany$
DECLARE
    nsp oid := to_regnamespace('epiphany');
BEGIN
    IF nsp IS NULL THEN
        CREATE SCHEMA epiphany;
    ELSIF EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = nsp)
       OR EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = nsp)
       OR EXISTS (SELECT 1 FROM pg_type WHERE typnamespace = nsp)
       OR EXISTS (SELECT 1 FROM pg_depend
                  WHERE classid = 'pg_namespace'::regclass AND objid = nsp AND deptype = 'e') THEN
        RAISE EXCEPTION 'schema "epiphany" already exists and is not empty'
            USING ERRCODE = 'duplicate_schema',
                  HINT = 'EpiphanyDB installs into schema "epiphany"; rename or drop the existing schema first.';
    ELSE
        ALTER EXTENSION epiphany_core ADD SCHEMA epiphany;
    END IF;
END
$epiphany$;

COMMENT ON SCHEMA epiphany IS 'EpiphanyDB: columnar, time-series and vector storage for PostgreSQL';
GRANT USAGE ON SCHEMA epiphany TO PUBLIC;
