-- epiphany_vectorstore 0.4.0 -> 0.5.0: vector_concat and the || operator on vectors (as
-- pgvector's; before, `vector || vector` resolved to text concatenation).
\echo Use "ALTER EXTENSION epiphany_vectorstore UPDATE" to load this file. \quit

CREATE FUNCTION vector_concat(vector, vector) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_concat';
COMMENT ON FUNCTION vector_concat(vector, vector) IS 'The elements of the first vector, then those of the second (operator ||)';
CREATE OPERATOR || (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_concat);
