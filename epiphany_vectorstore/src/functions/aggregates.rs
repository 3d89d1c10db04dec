//! `avg(vector)`: its transition state (pgvector's `double precision[]`), combine and
//! final functions.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::OrReport;
use epiphany_core::vector::Accumulator;
use pgrx::fcinfo::pg_getarg_datum_raw;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{float8, vec_arg};
use crate::datum::new_vector;

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
