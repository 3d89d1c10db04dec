-- epiphany_core 0.5.0 -> 0.6.0: no SQL changes.
\echo Use "ALTER EXTENSION epiphany_core UPDATE" to load this file. \quit
