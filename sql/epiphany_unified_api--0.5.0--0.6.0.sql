-- epiphany_unified_api 0.5.0 -> 0.6.0: no SQL changes.
\echo Use "ALTER EXTENSION epiphany_unified_api UPDATE" to load this file. \quit
