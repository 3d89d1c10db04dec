//! The `vector` type's SQL surface: I/O, casts, operators, functions, aggregates — the
//! names and behaviour of pgvector's, so its users' SQL keeps working. The rules and the
//! arithmetic are `epiphany_core::vector`; this module moves datums in and out.
//!
//! The functions are version-1 C functions declared by hand in the SQL below (pgrx cannot
//! declare a type with a type modifier and binary I/O): `io`, `operators`, `aggregates`.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use pgrx::fcinfo::pg_getarg_datum_raw;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::datum::elements;

mod aggregates;
mod io;
mod operators;

/// Declares the version-1 calling convention of C functions, as `PG_FUNCTION_INFO_V1`.
macro_rules! v1 {
    ($($finfo:ident),* $(,)?) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
                const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
                &V1
            }
        )*
    };
}

v1!(
    pg_finfo_vector_in,
    pg_finfo_vector_out,
    pg_finfo_vector_typmod_in,
    pg_finfo_vector_recv,
    pg_finfo_vector_send,
    pg_finfo_vector,
    pg_finfo_array_to_vector,
    pg_finfo_vector_to_float4,
    pg_finfo_l2_distance,
    pg_finfo_vector_l2_squared_distance,
    pg_finfo_inner_product,
    pg_finfo_vector_negative_inner_product,
    pg_finfo_cosine_distance,
    pg_finfo_vector_dims,
    pg_finfo_vector_norm,
    pg_finfo_l2_normalize,
    pg_finfo_vector_add,
    pg_finfo_vector_sub,
    pg_finfo_vector_mul,
    pg_finfo_vector_concat,
    pg_finfo_vector_cmp,
    pg_finfo_vector_lt,
    pg_finfo_vector_le,
    pg_finfo_vector_eq,
    pg_finfo_vector_ne,
    pg_finfo_vector_ge,
    pg_finfo_vector_gt,
    pg_finfo_vector_accum,
    pg_finfo_vector_combine,
    pg_finfo_vector_avg,
);

/// Argument `i` as a vector.
///
/// # Safety
/// A call of a function whose argument `i` is a non-null `vector`.
pub(super) unsafe fn vec_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> &'a [f32] {
    // SAFETY: per the contract.
    unsafe { elements(pg_getarg_datum_raw(fcinfo, i)) }
}

/// # Safety
/// A call with at least `i + 1` arguments.
pub(super) unsafe fn int_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> i32 {
    // SAFETY: per the contract.
    unsafe { pg_getarg_datum_raw(fcinfo, i).value() as i32 }
}

pub(super) fn float8(x: f64) -> pg_sys::Datum {
    pg_sys::Datum::from(x.to_bits() as usize)
}

pub(super) fn boolean(b: bool) -> pg_sys::Datum {
    pg_sys::Datum::from(b as usize)
}

extension_sql!(
    r#"
CREATE TYPE vector;

CREATE FUNCTION vector_in(cstring, oid, integer) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_in';
CREATE FUNCTION vector_out(vector) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_out';
CREATE FUNCTION vector_typmod_in(cstring[]) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_typmod_in';
CREATE FUNCTION vector_recv(internal, oid, integer) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_recv';
CREATE FUNCTION vector_send(vector) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_send';

CREATE TYPE vector (
    INPUT = vector_in,
    OUTPUT = vector_out,
    TYPMOD_IN = vector_typmod_in,
    RECEIVE = vector_recv,
    SEND = vector_send,
    STORAGE = external
);
COMMENT ON TYPE vector IS
    'Vector of float4 (pgvector''s text and binary formats); vector(n) fixes the dimensions, up to 16000';

CREATE FUNCTION vector(vector, integer, boolean) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector';
CREATE FUNCTION array_to_vector(integer[], integer, boolean) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'array_to_vector';
CREATE FUNCTION array_to_vector(real[], integer, boolean) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'array_to_vector';
CREATE FUNCTION array_to_vector(double precision[], integer, boolean) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'array_to_vector';
CREATE FUNCTION vector_to_float4(vector, integer, boolean) RETURNS real[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_to_float4';

CREATE CAST (vector AS vector) WITH FUNCTION vector(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS vector) WITH FUNCTION array_to_vector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS vector) WITH FUNCTION array_to_vector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS vector) WITH FUNCTION array_to_vector(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (vector AS real[]) WITH FUNCTION vector_to_float4(vector, integer, boolean) AS IMPLICIT;

CREATE FUNCTION l2_distance(vector, vector) RETURNS double precision
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'l2_distance';
CREATE FUNCTION vector_l2_squared_distance(vector, vector) RETURNS double precision
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_l2_squared_distance';
CREATE FUNCTION inner_product(vector, vector) RETURNS double precision
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'inner_product';
CREATE FUNCTION vector_negative_inner_product(vector, vector) RETURNS double precision
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_negative_inner_product';
CREATE FUNCTION cosine_distance(vector, vector) RETURNS double precision
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'cosine_distance';
CREATE FUNCTION vector_dims(vector) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_dims';
CREATE FUNCTION vector_norm(vector) RETURNS double precision
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_norm';
CREATE FUNCTION l2_normalize(vector) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'l2_normalize';
CREATE FUNCTION vector_add(vector, vector) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_add';
CREATE FUNCTION vector_sub(vector, vector) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_sub';
CREATE FUNCTION vector_mul(vector, vector) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_mul';
CREATE FUNCTION vector_concat(vector, vector) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_concat';
CREATE FUNCTION vector_cmp(vector, vector) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_cmp';
CREATE FUNCTION vector_lt(vector, vector) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_lt';
CREATE FUNCTION vector_le(vector, vector) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_le';
CREATE FUNCTION vector_eq(vector, vector) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_eq';
CREATE FUNCTION vector_ne(vector, vector) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_ne';
CREATE FUNCTION vector_ge(vector, vector) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_ge';
CREATE FUNCTION vector_gt(vector, vector) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_gt';
CREATE FUNCTION vector_accum(double precision[], vector) RETURNS double precision[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_accum';
CREATE FUNCTION vector_combine(double precision[], double precision[]) RETURNS double precision[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_combine';
CREATE FUNCTION vector_avg(double precision[]) RETURNS vector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'vector_avg';

COMMENT ON FUNCTION vector_in(cstring, oid, integer) IS 'Input of type vector (text format [1,2,3])';
COMMENT ON FUNCTION vector_out(vector) IS 'Output of type vector (text format [1,2,3])';
COMMENT ON FUNCTION vector_typmod_in(cstring[]) IS 'Type modifier of vector(n): the dimensions, 1 to 16000';
COMMENT ON FUNCTION vector_recv(internal, oid, integer) IS 'Binary input of type vector (pgvector''s format)';
COMMENT ON FUNCTION vector_send(vector) IS 'Binary output of type vector (pgvector''s format)';
COMMENT ON FUNCTION vector(vector, integer, boolean) IS 'Checks a vector against the dimensions of vector(n)';
COMMENT ON FUNCTION array_to_vector(integer[], integer, boolean) IS 'Cast of integer[] to vector';
COMMENT ON FUNCTION array_to_vector(real[], integer, boolean) IS 'Cast of real[] to vector';
COMMENT ON FUNCTION array_to_vector(double precision[], integer, boolean) IS 'Cast of double precision[] to vector';
COMMENT ON FUNCTION vector_to_float4(vector, integer, boolean) IS 'Cast of vector to real[]';
COMMENT ON FUNCTION vector_add(vector, vector) IS 'Element-wise sum (operator +)';
COMMENT ON FUNCTION vector_sub(vector, vector) IS 'Element-wise difference (operator -)';
COMMENT ON FUNCTION vector_mul(vector, vector) IS 'Element-wise product (operator *)';
COMMENT ON FUNCTION vector_cmp(vector, vector) IS 'Btree order: element by element, then the shorter vector first';
COMMENT ON FUNCTION vector_lt(vector, vector) IS 'Operator <';
COMMENT ON FUNCTION vector_le(vector, vector) IS 'Operator <=';
COMMENT ON FUNCTION vector_eq(vector, vector) IS 'Operator =';
COMMENT ON FUNCTION vector_concat(vector, vector) IS 'The elements of the first vector, then those of the second (operator ||)';
COMMENT ON FUNCTION vector_ne(vector, vector) IS 'Operator <>';
COMMENT ON FUNCTION vector_ge(vector, vector) IS 'Operator >=';
COMMENT ON FUNCTION vector_gt(vector, vector) IS 'Operator >';
COMMENT ON FUNCTION vector_accum(double precision[], vector) IS 'State function of avg(vector)';
COMMENT ON FUNCTION vector_combine(double precision[], double precision[]) IS 'Combines two avg(vector) states (parallel aggregation)';
COMMENT ON FUNCTION vector_avg(double precision[]) IS 'Final function of avg(vector)';
COMMENT ON FUNCTION l2_distance(vector, vector) IS 'Euclidean distance (operator <->)';
COMMENT ON FUNCTION vector_l2_squared_distance(vector, vector) IS 'Squared Euclidean distance';
COMMENT ON FUNCTION inner_product(vector, vector) IS 'Inner product (operator <#> is its negative)';
COMMENT ON FUNCTION vector_negative_inner_product(vector, vector) IS 'Negative inner product (operator <#>)';
COMMENT ON FUNCTION cosine_distance(vector, vector) IS 'Cosine distance, 1 - cosine similarity (operator <=>); NaN for a zero vector';
COMMENT ON FUNCTION vector_dims(vector) IS 'Number of dimensions';
COMMENT ON FUNCTION vector_norm(vector) IS 'Euclidean norm';
COMMENT ON FUNCTION l2_normalize(vector) IS 'The vector scaled to norm 1 (a zero vector stays zero)';

CREATE OPERATOR <-> (LEFTARG = vector, RIGHTARG = vector, FUNCTION = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <#> (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_negative_inner_product, COMMUTATOR = '<#>');
CREATE OPERATOR <=> (LEFTARG = vector, RIGHTARG = vector, FUNCTION = cosine_distance, COMMUTATOR = '<=>');
CREATE OPERATOR + (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_add, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_sub);
CREATE OPERATOR * (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_mul, COMMUTATOR = *);
CREATE OPERATOR || (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_concat);
CREATE OPERATOR < (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

CREATE OPERATOR CLASS vector_ops DEFAULT FOR TYPE vector USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 vector_cmp(vector, vector);

CREATE AGGREGATE avg(vector) (
    SFUNC = vector_accum, STYPE = double precision[], FINALFUNC = vector_avg,
    COMBINEFUNC = vector_combine, INITCOND = '{0}', PARALLEL = SAFE
);
CREATE AGGREGATE sum(vector) (
    SFUNC = vector_add, STYPE = vector, COMBINEFUNC = vector_add, PARALLEL = SAFE
);
COMMENT ON AGGREGATE avg(vector) IS 'Element-wise average';
COMMENT ON AGGREGATE sum(vector) IS 'Element-wise sum';
"#,
    name = "vector_type",
);
