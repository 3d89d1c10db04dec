-- epiphany_columnstore 0.4.0 -> 0.5.0: no SQL changes.
\echo Use "ALTER EXTENSION epiphany_columnstore UPDATE" to load this file. \quit
