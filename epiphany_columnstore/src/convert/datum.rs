//! Postgres datums into the core's row buffer, and back from its [`Value`]s.
//!
//! Which [`ColumnType`] a Postgres type is stored as is decided here, once per column; the
//! conversions then follow the type's storage (by value, fixed-length by reference,
//! varlena, C string). Types without a native encoding keep their exact in-memory image
//! as `Opaque` bytes, so every type round-trips, including domains, arrays and composites.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::{numeric, ColumnType, RowBuffer, Value};
use pgrx::pg_sys;
use pgrx::varlena::{set_varsize_4b, vardata_any, varsize_any_exhdr};

/// What the conversions need to know about one column.
#[derive(Debug, Clone, Copy)]
pub struct ColumnInfo {
    pub typlen: i16,
    pub typbyval: bool,
    pub ty: ColumnType,
    /// `char(n)`: every value is padded with spaces to `n` characters.
    pub char_length: Option<u32>,
}

impl ColumnInfo {
    /// A column of type `typid` with type modifier `typmod` (-1: none).
    pub fn for_column(typid: pg_sys::Oid, typmod: i32) -> ColumnInfo {
        let mut info = Self::for_type(typid);
        if typid == pg_sys::BPCHAROID && typmod >= pg_sys::VARHDRSZ as i32 {
            info.char_length = Some((typmod - pg_sys::VARHDRSZ as i32) as u32);
        }
        // numeric(p, s) with p <= 18 and 0 <= s <= p: a scaled integer.
        if typid == pg_sys::NUMERICOID && typmod >= pg_sys::VARHDRSZ as i32 {
            let t = typmod - pg_sys::VARHDRSZ as i32;
            let precision = ((t >> 16) & 0xffff) as u16;
            // The scale is an 11-bit signed field (negative scales exist since PG 15).
            let raw = (t & 0x7ff) as i16;
            let scale = if raw & 0x400 != 0 { raw | !0x7ff } else { raw };
            if (1..=numeric::MAX_PRECISION).contains(&precision)
                && scale >= 0
                && scale as u16 <= precision
            {
                info.ty = ColumnType::Numeric {
                    scale: scale as u16,
                };
            }
        }
        info
    }

    pub fn for_type(typid: pg_sys::Oid) -> ColumnInfo {
        let mut typlen = 0i16;
        let mut typbyval = false;
        // SAFETY: catalog lookups on the main thread; both out-pointers are valid locals.
        let (base, utf8) = unsafe {
            pg_sys::get_typlenbyval(typid, &mut typlen, &mut typbyval);
            (
                pg_sys::getBaseType(typid),
                pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32,
            )
        };
        let ty = match base {
            pg_sys::BOOLOID => ColumnType::Bool,
            pg_sys::INT2OID => ColumnType::Int16,
            pg_sys::INT4OID => ColumnType::Int32,
            pg_sys::INT8OID => ColumnType::Int64,
            pg_sys::FLOAT4OID => ColumnType::Float32,
            pg_sys::FLOAT8OID => ColumnType::Float64,
            pg_sys::DATEOID => ColumnType::Date,
            pg_sys::TIMEOID => ColumnType::Time,
            pg_sys::TIMESTAMPOID => ColumnType::Timestamp,
            pg_sys::TIMESTAMPTZOID => ColumnType::TimestampTz,
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID | pg_sys::JSONOID if utf8 => {
                ColumnType::Text
            }
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID | pg_sys::JSONOID => {
                ColumnType::Bytes
            }
            pg_sys::BYTEAOID => ColumnType::Bytes,
            pg_sys::UUIDOID => ColumnType::Uuid,
            _ => ColumnType::Opaque,
        };
        ColumnInfo {
            typlen,
            typbyval,
            ty,
            char_length: None,
        }
    }
}

/// Appends a non-null datum to the row `buffer` is building, in the representation the
/// buffer documents; returns the bytes it took (to pace memory measurements). Borrowed
/// bytes are copied into the buffer.
///
/// # Safety
/// `datum` must be a valid, non-null datum of the type `info` was made for.
#[inline]
pub unsafe fn push_datum(buffer: &mut RowBuffer, info: &ColumnInfo, datum: pg_sys::Datum) -> usize {
    match info.ty {
        ColumnType::Bool
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::Float32
        | ColumnType::Float64
        | ColumnType::Date
        | ColumnType::Time
        | ColumnType::Timestamp
        | ColumnType::TimestampTz => {
            buffer.push_word(datum.value() as u64);
            8
        }
        ColumnType::Uuid => {
            // SAFETY: a uuid datum points at its 16 bytes.
            buffer
                .push_bytes(unsafe { std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), 16) });
            16
        }
        ColumnType::Text | ColumnType::Bytes | ColumnType::Numeric { .. } => {
            // SAFETY: a valid varlena (text in a UTF-8 database is valid UTF-8, checked
            // again when the buffer is converted).
            let bytes = unsafe { varlena_bytes(datum) };
            buffer.push_bytes(bytes);
            bytes.len() + 8
        }
        ColumnType::Opaque if info.typbyval => {
            buffer.push_bytes(&(datum.value() as u64).to_le_bytes());
            16
        }
        ColumnType::Opaque => {
            // SAFETY: per the contract.
            let bytes = unsafe { image(info, datum) };
            buffer.push_bytes(bytes);
            bytes.len() + 8
        }
    }
}

/// The payload of a varlena datum, detoasted (decompressed, fetched) if needed.
///
/// # Safety
/// `datum` must point at a valid varlena.
unsafe fn varlena_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: per the contract; a plain varlena is read in place, anything else is
    // detoasted by pg_detoast_datum_packed into the current memory context.
    unsafe {
        let p = datum.cast_mut_ptr::<pg_sys::varlena>();
        let v = if is_plain_varlena(p) {
            p
        } else {
            pg_sys::pg_detoast_datum_packed(p)
        };
        std::slice::from_raw_parts(vardata_any(v) as *const u8, varsize_any_exhdr(v))
    }
}

/// Whether a varlena is neither compressed nor an external (TOAST) pointer, so it can be
/// read in place without a call into Postgres (the common case for every row a load
/// inserts). The header bits are those of little-endian builds.
///
/// # Safety
/// `p` must point at a valid varlena.
unsafe fn is_plain_varlena(p: *const pg_sys::varlena) -> bool {
    if cfg!(target_endian = "little") {
        // SAFETY: a varlena has at least one header byte.
        let first = unsafe { *(p as *const u8) };
        // 0x01: 1-byte header of an external pointer; low bits 10: 4-byte compressed.
        first != 0x01 && first & 0x03 != 0x02
    } else {
        false
    }
}

/// The bytes that make up a by-reference datum of a type without a native encoding.
///
/// # Safety
/// `datum` must be a valid datum of the type `info` was made for, not by value.
unsafe fn image<'a>(info: &ColumnInfo, datum: pg_sys::Datum) -> &'a [u8] {
    match info.typlen {
        // SAFETY (all arms): per the contract, the datum points at data of this layout.
        -1 => unsafe { varlena_bytes(datum) },
        -2 => unsafe { std::ffi::CStr::from_ptr(datum.cast_mut_ptr()).to_bytes() },
        n => unsafe { std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), n as usize) },
    }
}

/// A datum (palloc'd in the current memory context when by reference) for `value`;
/// `None` for NULL.
///
/// # Safety
/// `value` must come from a column of `info` (as the part reader returns them).
pub unsafe fn to_datum(info: &ColumnInfo, value: &Value<'_>) -> Option<pg_sys::Datum> {
    let word = |w: u64| Some(pg_sys::Datum::from(w as usize));
    match value {
        Value::Null => None,
        Value::Bool(b) => word(*b as u64),
        Value::Int16(v) => word(*v as i64 as u64),
        Value::Int32(v) | Value::Date(v) => word(*v as i64 as u64),
        Value::Int64(v) => match info.ty {
            // SAFETY: palloc on the main thread.
            ColumnType::Numeric { scale } => {
                Some(unsafe { new_varlena(&numeric::from_scaled(*v, scale)) })
            }
            _ => word(*v as u64),
        },
        Value::Time(v) | Value::Timestamp(v) => word(*v as u64),
        Value::Float32(v) => word(u64::from(v.to_bits())),
        Value::Float64(v) => word(v.to_bits()),
        Value::Uuid(bytes) => Some(pg_sys::Datum::from(unsafe { palloc_copy(bytes) })),
        Value::Text(s) => Some(unsafe { new_varlena(s.as_bytes()) }),
        Value::Bytes(b) if info.ty != ColumnType::Opaque => Some(unsafe { new_varlena(b) }),
        Value::Bytes(b) => Some(unsafe { from_image(info, b) }),
    }
}

/// The `numeric` datum (palloc'd) of a column with `scale` whose stored integer is `v`.
///
/// # Safety
/// Main thread only (palloc).
pub unsafe fn numeric_datum(v: i64, scale: u16) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe { new_varlena(&numeric::from_scaled(v, scale)) }
}

/// # Safety
/// Main thread only (palloc).
unsafe fn palloc_copy(bytes: &[u8]) -> *mut u8 {
    // SAFETY: palloc returns at least `len` writable bytes (or raises an ERROR).
    unsafe {
        let p = pg_sys::palloc(bytes.len().max(1)) as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        p
    }
}

/// A varlena datum (palloc'd) holding `payload`, e.g. a `bytea`.
///
/// # Safety
/// Main thread only (palloc).
pub unsafe fn varlena_datum(payload: &[u8]) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe { new_varlena(payload) }
}

/// # Safety
/// Main thread only (palloc).
unsafe fn new_varlena(payload: &[u8]) -> pg_sys::Datum {
    let total = payload.len() + pg_sys::VARHDRSZ;
    // SAFETY: palloc'd `total` bytes; header then payload written within bounds.
    unsafe {
        let p = pg_sys::palloc(total) as *mut pg_sys::varlena;
        set_varsize_4b(p, total as i32);
        std::ptr::copy_nonoverlapping(
            payload.as_ptr(),
            (p as *mut u8).add(pg_sys::VARHDRSZ),
            payload.len(),
        );
        pg_sys::Datum::from(p)
    }
}

/// # Safety
/// `bytes` must be what [`image`] produced for a column of `info`.
unsafe fn from_image(info: &ColumnInfo, bytes: &[u8]) -> pg_sys::Datum {
    if info.typbyval {
        let mut word = [0u8; 8];
        word[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
        return pg_sys::Datum::from(u64::from_le_bytes(word) as usize);
    }
    match info.typlen {
        // SAFETY (all arms): palloc'd copies in the layout the type expects.
        -1 => unsafe { new_varlena(bytes) },
        -2 => {
            let mut with_nul = bytes.to_vec();
            with_nul.push(0);
            pg_sys::Datum::from(unsafe { palloc_copy(&with_nul) })
        }
        _ => pg_sys::Datum::from(unsafe { palloc_copy(bytes) }),
    }
}
