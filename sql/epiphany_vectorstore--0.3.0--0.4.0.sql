-- epiphany_vectorstore 0.3.0 -> 0.4.0: the epiphany_hnsw and epiphany_ivfpq index
-- access methods and their operator classes for L2, inner product and cosine distance.
\echo Use "ALTER EXTENSION epiphany_vectorstore UPDATE" to load this file. \quit

CREATE FUNCTION hnsw_handler(internal) RETURNS index_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'hnsw_handler';
COMMENT ON FUNCTION hnsw_handler(internal) IS 'Index access method handler of epiphany_hnsw';
CREATE ACCESS METHOD epiphany_hnsw TYPE INDEX HANDLER hnsw_handler;
COMMENT ON ACCESS METHOD epiphany_hnsw IS
    'HNSW graph index for nearest-neighbour search on vector columns (ORDER BY <->, <#>, <=>)';

CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE vector USING epiphany_hnsw AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_l2_squared_distance(vector, vector);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING epiphany_hnsw AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING epiphany_hnsw AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(vector, vector);

CREATE FUNCTION ivfpq_handler(internal) RETURNS index_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'ivfpq_handler';
COMMENT ON FUNCTION ivfpq_handler(internal) IS 'Index access method handler of epiphany_ivfpq';
CREATE ACCESS METHOD epiphany_ivfpq TYPE INDEX HANDLER ivfpq_handler;
COMMENT ON ACCESS METHOD epiphany_ivfpq IS
    'IVF-PQ index: k-means lists of product-quantized vectors, reranked with exact distances (ORDER BY <->, <#>, <=>)';

CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE vector USING epiphany_ivfpq AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_l2_squared_distance(vector, vector);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING epiphany_ivfpq AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING epiphany_ivfpq AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(vector, vector);
