#!/usr/bin/env bash
# Runs once, when the container initialises an empty data directory: preload the
# libraries with background workers (effective after the entrypoint's restart) and
# install the whole suite into $POSTGRES_DB and template1.
set -euo pipefail
preload=$(cat /usr/share/epiphany/preload_libraries)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
ALTER SYSTEM SET shared_preload_libraries = '$preload';
SQL
for db in template1 "$POSTGRES_DB"; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" \
        -c "CREATE EXTENSION IF NOT EXISTS epiphany_unified_api CASCADE"
done
