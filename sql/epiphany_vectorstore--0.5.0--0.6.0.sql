-- epiphany_vectorstore 0.5.0 -> 0.6.0: no SQL changes.
\echo Use "ALTER EXTENSION epiphany_vectorstore UPDATE" to load this file. \quit
