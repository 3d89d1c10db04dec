-- epiphany_columnstore 0.5.0 -> 0.6.0: no SQL changes (0.6.0 creates epiphany.columnar_parts
-- USING heap explicitly; an installed 0.5.0 already has it as heap).
\echo Use "ALTER EXTENSION epiphany_columnstore UPDATE" to load this file. \quit
