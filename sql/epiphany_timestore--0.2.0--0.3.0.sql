-- epiphany_timestore 0.2.0 -> 0.3.0: no SQL changes.
\echo Use "ALTER EXTENSION epiphany_timestore UPDATE" to load this file. \quit
