//! The `vector` type's SQL surface: I/O, casts, operators, functions, aggregates — the
//! names and behaviour of pgvector's, so its users' SQL keeps working. The rules and the
//! arithmetic are `epiphany_core::vector`; this module moves datums in and out.
//!
//! The functions are version-1 C functions declared by hand in the SQL below (pgrx cannot
//! declare a type with a type modifier and binary I/O).

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::ffi::CStr;

use epiphany_core::pg::OrReport;
use epiphany_core::vector::{self, distance, Accumulator};
use epiphany_core::Error;
use pgrx::fcinfo::pg_getarg_datum_raw;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::varlena::set_varsize_4b;

use crate::datum::{elements, new_vector};

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
unsafe fn vec_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> &'a [f32] {
    // SAFETY: per the contract.
    unsafe { elements(pg_getarg_datum_raw(fcinfo, i)) }
}

/// # Safety
/// A call with at least `i + 1` arguments.
unsafe fn int_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> i32 {
    // SAFETY: per the contract.
    unsafe { pg_getarg_datum_raw(fcinfo, i).value() as i32 }
}

fn float8(x: f64) -> pg_sys::Datum {
    pg_sys::Datum::from(x.to_bits() as usize)
}

fn boolean(b: bool) -> pg_sys::Datum {
    pg_sys::Datum::from(b as usize)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_in(cstring, oid, integer).
    let (text, typmod) = unsafe {
        let p = pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr::<std::ffi::c_char>();
        (CStr::from_ptr(p).to_string_lossy(), int_arg(fcinfo, 2))
    };
    let values = vector::text::parse(&text).or_report();
    vector::check_typmod(&values, typmod).or_report();
    new_vector(&values)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_out(vector).
    let text = vector::text::format(unsafe { vec_arg(fcinfo, 0) });
    let text = std::ffi::CString::new(text).expect("no NUL in a vector literal");
    // SAFETY: pstrdup copies into the current memory context.
    pg_sys::Datum::from(unsafe { pg_sys::pstrdup(text.as_ptr()) })
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_typmod_in(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mut n = 0;
    // SAFETY: vector_typmod_in(cstring[]); ArrayGetIntegerTypmods checks the array.
    let mods = unsafe {
        let arr = pg_sys::pg_detoast_datum(pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr())
            as *mut pg_sys::ArrayType;
        let p = pg_sys::ArrayGetIntegerTypmods(arr, &mut n);
        std::slice::from_raw_parts(p, n.max(0) as usize)
    };
    let [dims] = mods else {
        Error::InvalidParameter {
            name: "type modifier".into(),
            detail: "vector takes one: its dimensions".into(),
        }
        .report()
    };
    if *dims < 1 {
        Error::InvalidParameter {
            name: "type modifier".into(),
            detail: "dimensions for type vector must be at least 1".into(),
        }
        .report();
    }
    if *dims as usize > vector::MAX_DIM {
        Error::InvalidParameter {
            name: "type modifier".into(),
            detail: format!(
                "dimensions for type vector cannot exceed {}",
                vector::MAX_DIM
            ),
        }
        .report();
    }
    pg_sys::Datum::from(*dims as usize)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_recv(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_recv(internal, oid, integer): argument 0 is the message buffer, which
    // this consumes whole.
    let (values, typmod) = unsafe {
        let buf = pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr::<pg_sys::StringInfoData>();
        let start = (*buf).cursor as usize;
        let len = ((*buf).len as usize).saturating_sub(start);
        let bytes = std::slice::from_raw_parts((*buf).data.add(start) as *const u8, len);
        let values = vector::from_binary(bytes).or_report();
        (*buf).cursor = (*buf).len;
        (values, int_arg(fcinfo, 2))
    };
    vector::check_typmod(&values, typmod).or_report();
    new_vector(&values)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_send(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_send(vector).
    let bytes = vector::to_binary(unsafe { vec_arg(fcinfo, 0) });
    let size = bytes.len() + pg_sys::VARHDRSZ;
    // SAFETY: a palloc'd bytea of `size` bytes, header then payload.
    unsafe {
        let p = pg_sys::palloc(size) as *mut u8;
        set_varsize_4b(p as *mut pg_sys::varlena, size as i32);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(pg_sys::VARHDRSZ), bytes.len());
        pg_sys::Datum::from(p)
    }
}

/// `vector(vector, typmod, explicit)`: the length coercion of `vector(n)` columns.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector(vector, integer, boolean).
    unsafe {
        vector::check_typmod(vec_arg(fcinfo, 0), int_arg(fcinfo, 1)).or_report();
        pg_getarg_datum_raw(fcinfo, 0)
    }
}

/// `real[]`, `double precision[]` or `integer[]` to `vector`.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn array_to_vector(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: array_to_vector(anyarray of those, integer, boolean); deconstruct_array
    // reads an array of the element type it is told, which is the array's own.
    let (values, typmod) = unsafe {
        let arr = pg_sys::pg_detoast_datum(pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr())
            as *mut pg_sys::ArrayType;
        if (*arr).ndim > 1 {
            Error::Data("array must be 1-D".into()).report();
        }
        let elem = (*arr).elemtype;
        let (len, byval, align) = match elem {
            pg_sys::FLOAT4OID | pg_sys::INT4OID => (4, true, b'i'),
            pg_sys::FLOAT8OID => (8, true, b'd'),
            _ => Error::NotSupported("arrays of this element type as vectors".into()).report(),
        };
        let mut datums = std::ptr::null_mut();
        let mut nulls = std::ptr::null_mut();
        let mut n = 0;
        pg_sys::deconstruct_array(
            arr,
            elem,
            len,
            byval,
            align as std::ffi::c_char,
            &mut datums,
            &mut nulls,
            &mut n,
        );
        let n = n.max(0) as usize;
        let datums = std::slice::from_raw_parts(datums, n);
        let nulls = std::slice::from_raw_parts(nulls, n);
        if nulls.iter().any(|&x| x) {
            Error::Data("array must not contain nulls".into()).report();
        }
        let values: Vec<f32> = datums
            .iter()
            .map(|d| {
                let w = d.value() as u64;
                match elem {
                    pg_sys::FLOAT4OID => f32::from_bits(w as u32),
                    pg_sys::INT4OID => w as i32 as f32,
                    _ => f64::from_bits(w) as f32,
                }
            })
            .collect();
        (values, int_arg(fcinfo, 1))
    };
    vector::check(&values).or_report();
    vector::check_typmod(&values, typmod).or_report();
    new_vector(&values)
}

/// `vector` to `real[]`.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_to_float4(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: vector_to_float4(vector, integer, boolean); construct_array copies the
    // by-value elements into a new array.
    unsafe {
        let v = vec_arg(fcinfo, 0);
        let mut datums: Vec<pg_sys::Datum> = v
            .iter()
            .map(|x| pg_sys::Datum::from(x.to_bits() as usize))
            .collect();
        let arr = pg_sys::construct_array(
            datums.as_mut_ptr(),
            datums.len() as i32,
            pg_sys::FLOAT4OID,
            4,
            true,
            b'i' as std::ffi::c_char,
        );
        pg_sys::Datum::from(arr)
    }
}

/// Two vector arguments of the same dimensions.
///
/// # Safety
/// A call of a function of (vector, vector).
unsafe fn pair<'a>(fcinfo: pg_sys::FunctionCallInfo) -> (&'a [f32], &'a [f32]) {
    // SAFETY: per the contract.
    let (a, b) = unsafe { (vec_arg(fcinfo, 0), vec_arg(fcinfo, 1)) };
    vector::same_dims(a, b).or_report();
    (a, b)
}

macro_rules! binary_float8 {
    ($($name:ident => $f:expr;)*) => {
        $(
            #[pg_guard]
            #[unsafe(no_mangle)]
            pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
                // SAFETY: a function of (vector, vector).
                let (a, b) = unsafe { pair(fcinfo) };
                let f: fn(&[f32], &[f32]) -> f64 = $f;
                float8(f(a, b))
            }
        )*
    };
}

binary_float8! {
    l2_distance => distance::l2;
    vector_l2_squared_distance => |a, b| f64::from(distance::l2_squared(a, b));
    inner_product => |a, b| f64::from(distance::dot(a, b));
    vector_negative_inner_product => |a, b| -f64::from(distance::dot(a, b));
    cosine_distance => distance::cosine;
}

macro_rules! binary_vector {
    ($($name:ident => $op:tt;)*) => {
        $(
            #[pg_guard]
            #[unsafe(no_mangle)]
            pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
                // SAFETY: a function of (vector, vector).
                let (a, b) = unsafe { pair(fcinfo) };
                new_vector(&vector::elementwise(a, b, |x, y| x $op y).or_report())
            }
        )*
    };
}

binary_vector! {
    vector_add => +;
    vector_sub => -;
    vector_mul => *;
}

/// `a || b`: the elements of `a`, then those of `b`.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_concat(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: a function of (vector, vector).
    let (a, b) = unsafe { (vec_arg(fcinfo, 0), vec_arg(fcinfo, 1)) };
    new_vector(&vector::concat(a, b).or_report())
}

/// Btree comparisons (different dimensions compare too, as in pgvector).
macro_rules! comparison {
    ($($name:ident => $test:expr;)*) => {
        $(
            #[pg_guard]
            #[unsafe(no_mangle)]
            pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
                // SAFETY: a function of (vector, vector).
                let (a, b) = unsafe { (vec_arg(fcinfo, 0), vec_arg(fcinfo, 1)) };
                let test: fn(std::cmp::Ordering) -> bool = $test;
                boolean(test(vector::compare(a, b)))
            }
        )*
    };
}

comparison! {
    vector_lt => |o| o.is_lt();
    vector_le => |o| o.is_le();
    vector_eq => |o| o.is_eq();
    vector_ne => |o| o.is_ne();
    vector_ge => |o| o.is_ge();
    vector_gt => |o| o.is_gt();
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_cmp(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_cmp(vector, vector).
    let (a, b) = unsafe { (vec_arg(fcinfo, 0), vec_arg(fcinfo, 1)) };
    pg_sys::Datum::from(vector::compare(a, b) as i32 as isize as usize)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_dims(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_dims(vector).
    pg_sys::Datum::from(unsafe { vec_arg(fcinfo, 0) }.len())
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_norm(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_norm(vector).
    float8(vector::norm(unsafe { vec_arg(fcinfo, 0) }))
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn l2_normalize(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: l2_normalize(vector).
    new_vector(&vector::l2_normalize(unsafe { vec_arg(fcinfo, 0) }))
}

/// The `avg` state, a `double precision[]` of the count and then the sums (pgvector's
/// layout, so its parallel combine works the same way).
///
/// # Safety
/// `datum` is a non-null `double precision[]`.
unsafe fn state_of(datum: pg_sys::Datum) -> Accumulator {
    // SAFETY: per the contract.
    let values = unsafe {
        let arr = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let mut datums = std::ptr::null_mut();
        let mut nulls = std::ptr::null_mut();
        let mut n = 0;
        pg_sys::deconstruct_array(
            arr,
            pg_sys::FLOAT8OID,
            8,
            true,
            b'd' as std::ffi::c_char,
            &mut datums,
            &mut nulls,
            &mut n,
        );
        std::slice::from_raw_parts(datums, n.max(0) as usize)
            .iter()
            .map(|d| f64::from_bits(d.value() as u64))
            .collect::<Vec<f64>>()
    };
    match values.split_first() {
        Some((&count, sums)) if count >= 1.0 => Accumulator {
            count: count as u64,
            sums: sums.to_vec(),
        },
        _ => Accumulator::default(),
    }
}

fn state_datum(acc: &Accumulator) -> pg_sys::Datum {
    let mut datums: Vec<pg_sys::Datum> = std::iter::once(acc.count as f64)
        .chain(acc.sums.iter().copied())
        .map(float8)
        .collect();
    // SAFETY: construct_array copies the by-value elements into a new array.
    unsafe {
        pg_sys::Datum::from(pg_sys::construct_array(
            datums.as_mut_ptr(),
            datums.len() as i32,
            pg_sys::FLOAT8OID,
            8,
            true,
            b'd' as std::ffi::c_char,
        ))
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_accum(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_accum(double precision[], vector), strict.
    let (mut acc, v) = unsafe { (state_of(pg_getarg_datum_raw(fcinfo, 0)), vec_arg(fcinfo, 1)) };
    acc.add(v).or_report();
    state_datum(&acc)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_combine(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_combine(double precision[], double precision[]), strict.
    let (mut a, b) = unsafe {
        (
            state_of(pg_getarg_datum_raw(fcinfo, 0)),
            state_of(pg_getarg_datum_raw(fcinfo, 1)),
        )
    };
    a.merge(&b).or_report();
    state_datum(&a)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn vector_avg(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: vector_avg(double precision[]), strict.
    let acc = unsafe { state_of(pg_getarg_datum_raw(fcinfo, 0)) };
    match acc.avg().or_report() {
        Some(v) => new_vector(&v),
        None => {
            // SAFETY: a valid call frame; the result is NULL (no rows).
            unsafe { (*fcinfo).isnull = true };
            pg_sys::Datum::from(0usize)
        }
    }
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
