//! The columnar table's tuple slot: a virtual slot whose rows fetched by TID decode a
//! column only when the executor first asks for it.
//!
//! A fetch by TID (index scans, bitmap scans, EPQ and MERGE re-fetches) finds the row's
//! part and stored position, and stores a [`DeferredRow`]; the executor deforms the
//! columns its expressions need (`slot_getsomeattrs`, like a heap slot's lazy
//! deforming), and only those are decoded — one page window of one column each, kept in
//! a per-backend cache of decoded windows (`windows`), so nearby rows share the work.
//! An index-only scan, which only asks whether the row is visible, decodes nothing.
//! Rows stored by scans (and by Postgres itself, as for any virtual slot) carry all
//! their values already.
//!
//! The slot owns a memory context for the by-reference values it decodes or
//! materializes and for the deferred row; clearing the slot resets it, and a reset
//! callback drops the row's Rust state, so an ERROR leaks nothing.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::value_at;
use epiphany_core::pg::OrReport;
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::windows::DeferredRow;
#[cfg(feature = "pg18")]
use super::windows::Window;
#[cfg(feature = "pg18")]
use crate::convert::table::TableInfo;

#[cfg(feature = "pg18")]
/// The table columns a columnar slot's rows must carry: those the node owning it reads
/// (see `needed_columns`) — with what a recheck reads, for rows a bitmap heap scan
/// returns to be rechecked — or all.
///
/// # Safety
/// `slot` is a slot of a table with `ncolumns` columns.
pub unsafe fn needed_columns(
    slot: *mut pg_sys::TupleTableSlot,
    ncolumns: usize,
    recheck: bool,
) -> Vec<usize> {
    if !is_columnar(slot) {
        return (0..ncolumns).collect();
    }
    // SAFETY: per the contract.
    unsafe {
        let s = me(slot);
        let set = if recheck { s.recheck_needed } else { s.needed };
        (0..ncolumns)
            .filter(|&c| {
                let attno = c as i32 + 1 - pg_sys::FirstLowInvalidHeapAttributeNumber;
                set.is_null() || pg_sys::bms_is_member(attno, set)
            })
            .collect()
    }
}

#[cfg(feature = "pg18")]
/// Stores row `row` of `window` into columnar `slot` with TID `tid`, as a virtual tuple
/// whose by-reference values live in the slot's memory; columns the window does not
/// hold are NULL.
///
/// # Safety
/// `slot` is a columnar slot of the relation `info` describes; main thread.
pub unsafe fn store_from_window(
    slot: *mut pg_sys::TupleTableSlot,
    info: &TableInfo,
    window: &Window,
    row: usize,
    tid: pg_sys::ItemPointerData,
) {
    // SAFETY: per the contract; values and nulls have natts entries.
    unsafe {
        pg_sys::ExecClearTuple(slot);
        let s = me(slot);
        let natts = (*s.base.tts_tupleDescriptor).natts as usize;
        let values = std::slice::from_raw_parts_mut(s.base.tts_values, natts);
        let nulls = std::slice::from_raw_parts_mut(s.base.tts_isnull, natts);
        nulls.fill(true);
        let old = pg_sys::MemoryContextSwitchTo(s.context);
        for (c, array) in &window.columns {
            let (Some(column), true) = (info.columns.get(*c), *c < natts) else {
                continue;
            };
            let datum = crate::convert::datum::to_datum(column, &value_at(array, column.ty, row));
            values[*c] = datum.unwrap_or(pg_sys::Datum::from(0usize));
            nulls[*c] = datum.is_none();
        }
        pg_sys::MemoryContextSwitchTo(old);
        s.owned = true;
        s.base.tts_nvalid = natts as i16;
        s.base.tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        s.base.tts_tid = tid;
    }
}

#[repr(C)]
struct ColumnarSlot {
    base: pg_sys::TupleTableSlot,
    /// By-reference values the slot decoded or copied, and the deferred row's holder.
    context: pg_sys::MemoryContext,
    /// The deferred row (in `context`), or null.
    deferred: *mut Option<DeferredRow>,
    /// Every by-reference value lives in `context` (decoded or materialized).
    owned: bool,
    /// The columns the scan node owning the slot reads (attribute numbers offset by
    /// `FirstLowInvalidHeapAttributeNumber`, in the query's memory), or null: all.
    /// The others come out NULL without being decoded (see `needed_columns`).
    needed: *mut pg_sys::Bitmapset,
    /// What rows a bitmap heap scan must recheck need besides (see `needed_columns`), or
    /// null: all columns.
    recheck_needed: *mut pg_sys::Bitmapset,
}

/// The slot operations of columnar tables (`slot_callbacks`).
pub static TTS_OPS_COLUMNAR: pg_sys::TupleTableSlotOps = pg_sys::TupleTableSlotOps {
    base_slot_size: std::mem::size_of::<ColumnarSlot>(),
    init: Some(init_slot),
    release: Some(release_slot),
    clear: Some(clear_slot),
    getsomeattrs: Some(getsomeattrs),
    getsysattr: Some(getsysattr),
    #[cfg(not(any(feature = "pg15", feature = "pg16")))]
    is_current_xact_tuple: Some(is_current_xact_tuple),
    materialize: Some(materialize),
    copyslot: Some(copyslot),
    get_heap_tuple: None,
    get_minimal_tuple: None,
    copy_heap_tuple: Some(copy_heap_tuple),
    copy_minimal_tuple: Some(copy_minimal_tuple),
};

/// # Safety
/// `slot` is a slot of [`TTS_OPS_COLUMNAR`].
unsafe fn me<'a>(slot: *mut pg_sys::TupleTableSlot) -> &'a mut ColumnarSlot {
    // SAFETY: per the contract, the slot was allocated with our base_slot_size.
    unsafe { &mut *(slot as *mut ColumnarSlot) }
}

/// Whether `slot` is a columnar slot.
pub fn is_columnar(slot: *mut pg_sys::TupleTableSlot) -> bool {
    // SAFETY: a valid slot.
    unsafe { std::ptr::eq((*slot).tts_ops, &TTS_OPS_COLUMNAR) }
}

/// Stores `row` into `slot` (a columnar slot of its relation) with TID `tid`; its
/// columns are decoded when asked for.
///
/// # Safety
/// `slot` is a columnar slot of the relation `row.info` describes; main thread.
pub unsafe fn store_deferred(
    slot: *mut pg_sys::TupleTableSlot,
    row: DeferredRow,
    tid: pg_sys::ItemPointerData,
) {
    // SAFETY: per the contract; the holder and its reset callback live in the slot's
    // context, whose reset (clear) or deletion drops the row.
    unsafe {
        pg_sys::ExecClearTuple(slot);
        let s = me(slot);
        let holder =
            pg_sys::MemoryContextAlloc(s.context, std::mem::size_of::<Option<DeferredRow>>())
                as *mut Option<DeferredRow>;
        std::ptr::write(holder, Some(row));
        epiphany_core::pg::owned::on_reset(s.context, drop_deferred, holder as *mut _);
        s.deferred = holder;
        s.owned = true;
        s.base.tts_nvalid = 0;
        s.base.tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        s.base.tts_tid = tid;
    }
}

unsafe extern "C-unwind" fn drop_deferred(arg: *mut std::ffi::c_void) {
    // SAFETY: `arg` is a holder written by store_deferred, dropped exactly once (the
    // callback runs once, before its memory is freed).
    unsafe { std::ptr::drop_in_place(arg as *mut Option<DeferredRow>) };
}

#[pg_guard]
unsafe extern "C-unwind" fn init_slot(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: a new slot of ours, in its memory context.
    unsafe {
        let s = me(slot);
        s.context = pg_sys::AllocSetContextCreateExtended(
            s.base.tts_mcxt,
            c"epiphany_columnar slot".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as _,
            pg_sys::ALLOCSET_SMALL_INITSIZE as _,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as _,
        );
        s.deferred = std::ptr::null_mut();
        s.owned = false;
        s.needed = std::ptr::null_mut();
        s.recheck_needed = std::ptr::null_mut();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn release_slot(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: the slot is being dropped; deleting its context runs the reset callback.
    unsafe {
        let s = me(slot);
        s.deferred = std::ptr::null_mut();
        pg_sys::MemoryContextDelete(s.context);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn clear_slot(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: a slot of ours; resetting its context frees what it owned.
    unsafe {
        let s = me(slot);
        if !s.deferred.is_null() || s.owned {
            pg_sys::MemoryContextReset(s.context);
        }
        s.deferred = std::ptr::null_mut();
        s.owned = false;
        s.base.tts_nvalid = 0;
        s.base.tts_flags |= pg_sys::TTS_FLAG_EMPTY as u16;
        s.base.tts_flags &= !(pg_sys::TTS_FLAG_SHOULDFREE as u16);
        pgrx::itemptr::item_pointer_set_all(
            &mut s.base.tts_tid,
            pg_sys::InvalidBlockNumber,
            pg_sys::InvalidOffsetNumber,
        );
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn getsomeattrs(slot: *mut pg_sys::TupleTableSlot, natts: i32) {
    // SAFETY: a non-empty slot of ours; values and nulls have natts entries.
    unsafe { deform(slot, natts as usize) }.or_report()
}

/// Decodes columns `tts_nvalid..natts` of the deferred row.
///
/// # Safety
/// `slot` is a slot of ours; `natts` at most its descriptor's.
unsafe fn deform(slot: *mut pg_sys::TupleTableSlot, natts: usize) -> Result<(), Error> {
    // SAFETY: per the contract; datums are built in the slot's context.
    unsafe {
        let s = me(slot);
        let from = s.base.tts_nvalid as usize;
        if from >= natts {
            return Ok(());
        }
        let Some(row) = s.deferred.as_ref().and_then(|d| d.as_ref()) else {
            return Err(Error::Internal(
                "an epiphany_columnar slot without the values asked for".into(),
            ));
        };
        let values = std::slice::from_raw_parts_mut(s.base.tts_values, natts);
        let nulls = std::slice::from_raw_parts_mut(s.base.tts_isnull, natts);
        for c in from..natts {
            let attno = c as i32 + 1 - pg_sys::FirstLowInvalidHeapAttributeNumber;
            if !s.needed.is_null() && !pg_sys::bms_is_member(attno, s.needed) {
                // Not read by the node that owns the slot.
                values[c] = pg_sys::Datum::from(0usize);
                nulls[c] = true;
                continue;
            }
            let Some(info) = row.info.columns.get(c) else {
                // A column the table did not have when the part was written.
                nulls[c] = true;
                continue;
            };
            let array = row.column(c)?;
            let old = pg_sys::MemoryContextSwitchTo(s.context);
            let datum = crate::convert::datum::to_datum(info, &value_at(&array, info.ty, row.row));
            pg_sys::MemoryContextSwitchTo(old);
            values[c] = datum.unwrap_or(pg_sys::Datum::from(0usize));
            nulls[c] = datum.is_none();
        }
        s.base.tts_nvalid = natts as i16;
    }
    Ok(())
}

#[pg_guard]
unsafe extern "C-unwind" fn getsysattr(
    _slot: *mut pg_sys::TupleTableSlot,
    _attnum: i32,
    _isnull: *mut bool,
) -> pg_sys::Datum {
    // As for virtual slots: the row's TID is in tts_tid, other system columns do not
    // exist.
    error!("cannot retrieve a system column in this context")
}

#[cfg(not(any(feature = "pg15", feature = "pg16")))]
#[pg_guard]
unsafe extern "C-unwind" fn is_current_xact_tuple(_slot: *mut pg_sys::TupleTableSlot) -> bool {
    error!("don't have transaction information for this type of tuple")
}

#[pg_guard]
unsafe extern "C-unwind" fn materialize(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: a non-empty slot of ours; by-reference values are copied into its
    // context, so they no longer depend on memory the slot does not own.
    unsafe {
        let desc = (*slot).tts_tupleDescriptor;
        let natts = (*desc).natts as usize;
        deform(slot, natts).or_report();
        let s = me(slot);
        if !s.owned {
            copy_values(s, desc, natts);
            s.owned = true;
        }
        s.base.tts_flags |= pg_sys::TTS_FLAG_SHOULDFREE as u16;
    }
}

/// Copies the by-reference values of `s` into its context, in one allocation as a
/// virtual slot's materialization does (COPY materializes every row it batches).
///
/// # Safety
/// `s` holds `natts` valid values of `desc`.
unsafe fn copy_values(s: &mut ColumnarSlot, desc: pg_sys::TupleDesc, natts: usize) {
    // SAFETY: per the contract; each value's length is read from the value itself.
    unsafe {
        let values = std::slice::from_raw_parts_mut(s.base.tts_values, natts);
        let nulls = std::slice::from_raw_parts(s.base.tts_isnull, natts);
        let len = |i: usize| -> Option<usize> {
            let attr = crate::convert::table::tuple_desc_attr(desc, i);
            if nulls[i] || (*attr).attbyval {
                return None;
            }
            let p = values[i].cast_mut_ptr::<u8>();
            Some(match (*attr).attlen {
                -1 if pgrx::varlena::varatt_is_1b_e(p as _)
                    && pgrx::varlena::vartag_is_expanded(
                        pgrx::varlena::vartag_external(p as _) as _,
                    ) =>
                {
                    0 // an expanded object: flattened by datumCopy below
                }
                -1 => pgrx::varlena::varsize_any(p as _),
                -2 => std::ffi::CStr::from_ptr(p as _).to_bytes_with_nul().len(),
                n => n as usize,
            })
        };
        let lens: Vec<Option<usize>> = (0..natts).map(len).collect();
        let align = |n: usize| n.next_multiple_of(8);
        let total: usize = lens.iter().flatten().map(|&n| align(n)).sum();
        let mut at = if total > 0 {
            pg_sys::MemoryContextAlloc(s.context, total) as *mut u8
        } else {
            std::ptr::null_mut()
        };
        for (i, l) in lens.into_iter().enumerate() {
            match l {
                None => {}
                Some(0) => {
                    let attr = crate::convert::table::tuple_desc_attr(desc, i);
                    let old = pg_sys::MemoryContextSwitchTo(s.context);
                    #[allow(ffi_unwind_calls)] // guarded by pg_guard_ffi_boundary
                    let copied = pg_sys::ffi::pg_guard_ffi_boundary(|| {
                        datumCopy(values[i], false, i32::from((*attr).attlen))
                    });
                    values[i] = copied;
                    pg_sys::MemoryContextSwitchTo(old);
                }
                Some(n) => {
                    std::ptr::copy_nonoverlapping(values[i].cast_mut_ptr::<u8>(), at, n);
                    values[i] = pg_sys::Datum::from(at);
                    at = at.add(align(n));
                }
            }
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn copyslot(
    dst: *mut pg_sys::TupleTableSlot,
    src: *mut pg_sys::TupleTableSlot,
) {
    // SAFETY: two slots of the same descriptor shape; ours is `dst`.
    unsafe {
        clear_slot(dst);
        let natts = (*(*dst).tts_tupleDescriptor).natts;
        if i32::from((*src).tts_nvalid) < natts {
            pg_sys::slot_getsomeattrs_int(src, natts);
        }
        let n = natts as usize;
        std::ptr::copy_nonoverlapping((*src).tts_values, (*dst).tts_values, n);
        std::ptr::copy_nonoverlapping((*src).tts_isnull, (*dst).tts_isnull, n);
        (*dst).tts_nvalid = natts as i16;
        (*dst).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        materialize(dst);
    }
}

/// Every column of the row decoded (for forming a tuple of it).
///
/// # Safety
/// `slot` is a non-empty slot of ours.
unsafe fn deform_all(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: per the contract.
    unsafe { deform(slot, (*(*slot).tts_tupleDescriptor).natts as usize) }.or_report()
}

#[pg_guard]
unsafe extern "C-unwind" fn copy_heap_tuple(
    slot: *mut pg_sys::TupleTableSlot,
) -> pg_sys::HeapTuple {
    // SAFETY: a non-empty slot of ours, deformed first.
    unsafe {
        deform_all(slot);
        pg_sys::heap_form_tuple(
            (*slot).tts_tupleDescriptor,
            (*slot).tts_values,
            (*slot).tts_isnull,
        )
    }
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn copy_minimal_tuple(
    slot: *mut pg_sys::TupleTableSlot,
) -> pg_sys::MinimalTuple {
    // SAFETY: a non-empty slot of ours, deformed first.
    unsafe {
        deform_all(slot);
        pg_sys::heap_form_minimal_tuple(
            (*slot).tts_tupleDescriptor,
            (*slot).tts_values,
            (*slot).tts_isnull,
        )
    }
}

#[cfg(feature = "pg18")]
#[pg_guard]
unsafe extern "C-unwind" fn copy_minimal_tuple(
    slot: *mut pg_sys::TupleTableSlot,
    extra: pg_sys::Size,
) -> pg_sys::MinimalTuple {
    // SAFETY: a non-empty slot of ours, deformed first.
    unsafe {
        deform_all(slot);
        pg_sys::heap_form_minimal_tuple(
            (*slot).tts_tupleDescriptor,
            (*slot).tts_values,
            (*slot).tts_isnull,
            extra,
        )
    }
}

unsafe extern "C-unwind" {
    // utils/datum.h; pgrx does not bind it.
    fn datumCopy(value: pg_sys::Datum, typbyval: bool, typlen: i32) -> pg_sys::Datum;
}

/// Restricts a columnar slot to decoding `needed` (attribute numbers offset by
/// `FirstLowInvalidHeapAttributeNumber`, in the slot's memory context); the others come
/// out NULL. Rows a bitmap heap scan returns for a recheck carry `recheck` (null: every
/// column). See `needed_columns`.
///
/// # Safety
/// `slot` is a columnar slot; the sets live as long as it.
pub unsafe fn set_needed(
    slot: *mut pg_sys::TupleTableSlot,
    needed: *mut pg_sys::Bitmapset,
    recheck: *mut pg_sys::Bitmapset,
) {
    // SAFETY: per the contract.
    unsafe {
        let s = me(slot);
        s.needed = needed;
        s.recheck_needed = recheck;
    }
}
