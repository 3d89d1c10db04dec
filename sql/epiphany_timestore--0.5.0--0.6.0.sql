-- epiphany_timestore 0.5.0 -> 0.6.0: no SQL changes.
\echo Use "ALTER EXTENSION epiphany_timestore UPDATE" to load this file. \quit
