//! Distances, element-wise arithmetic, concatenation, comparisons and the other
//! functions of two or one vectors.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::OrReport;
use epiphany_core::vector::{self, distance};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{boolean, float8, vec_arg};
use crate::datum::new_vector;

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
