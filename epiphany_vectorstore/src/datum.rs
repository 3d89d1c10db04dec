//! The `vector` datum: pgvector's layout (varlena header, `int16` dimensions, `int16`
//! unused, `float4` elements), so values look the same to anyone reading pages.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::pg::OrReport;
use epiphany_core::vector;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::varlena::{set_varsize_4b, varsize_any};

/// Bytes before the first element.
const HEADER: usize = 8;

/// The elements of a `vector` datum, detoasted if needed. The slice lives in the current
/// memory context (or in the tuple it points into).
///
/// # Safety
/// `datum` must be a non-null `vector` datum.
pub unsafe fn elements<'a>(datum: pg_sys::Datum) -> &'a [f32] {
    // SAFETY: per the contract; pg_detoast_datum returns a plain 4-byte-header varlena
    // (a palloc'd copy when the value was compressed, external or short-headed).
    unsafe {
        let p = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *const u8;
        let size = varsize_any(p as *const pg_sys::varlena);
        if size < HEADER {
            Error::Corrupted(format!("a vector of {size} bytes")).report();
        }
        let dims = i16::from_ne_bytes([*p.add(4), *p.add(5)]);
        if dims < 0 || size != HEADER + 4 * dims as usize {
            Error::Corrupted(format!("a vector of {size} bytes with {dims} dimensions")).report();
        }
        let data = p.add(HEADER);
        let n = dims as usize;
        if (data as usize).is_multiple_of(std::mem::align_of::<f32>()) {
            std::slice::from_raw_parts(data as *const f32, n)
        } else {
            let copy = pg_sys::palloc(4 * n.max(1)) as *mut f32;
            std::ptr::copy_nonoverlapping(data, copy as *mut u8, 4 * n);
            std::slice::from_raw_parts(copy, n)
        }
    }
}

/// A new `vector` datum (palloc'd) holding `values`, which must already be valid.
pub fn new_vector(values: &[f32]) -> pg_sys::Datum {
    vector::check(values).or_report();
    let size = HEADER + 4 * values.len();
    // SAFETY: palloc0 on the main thread returns `size` zeroed bytes; the header and the
    // elements are written within them.
    unsafe {
        let p = pg_sys::palloc0(size) as *mut u8;
        set_varsize_4b(p as *mut pg_sys::varlena, size as i32);
        std::ptr::copy_nonoverlapping((values.len() as i16).to_ne_bytes().as_ptr(), p.add(4), 2);
        std::ptr::copy_nonoverlapping(
            values.as_ptr() as *const u8,
            p.add(HEADER),
            4 * values.len(),
        );
        pg_sys::Datum::from(p)
    }
}
