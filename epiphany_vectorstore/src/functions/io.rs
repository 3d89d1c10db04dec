//! `vector` input and output (text and binary), its type modifier, and the casts from and
//! to arrays.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use std::ffi::CStr;

use epiphany_core::pg::OrReport;
use epiphany_core::vector::{self};
use epiphany_core::Error;
use pgrx::fcinfo::pg_getarg_datum_raw;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::varlena::set_varsize_4b;

use super::{int_arg, vec_arg};
use crate::datum::new_vector;

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
