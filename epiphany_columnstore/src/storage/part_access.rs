//! Reading parts of a relation: the core's open part over the relation's pages, and
//! turning decoded rows into slot contents.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::RecordBatch;
use epiphany_core::columnar::rowid::row_to_tid;
use epiphany_core::columnar::{value_at, TableSchema};
use epiphany_core::Error;
use pgrx::pg_sys;

use crate::convert::datum::ColumnInfo;
use crate::storage::catalog::PartRow;
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::page_store::RelationPageStore;

pub use epiphany_core::columnar::stored::OpenPart;

/// [`OpenPart`] over a relation's pages (`epiphany_core::columnar::stored`); `rel` is
/// locked for reading, and for all but `open*` the relation the part was opened from.
pub trait RelationPart: Sized {
    fn open(rel: Rel<'_>, schema: &TableSchema, row: PartRow) -> Result<Self, Error>;

    /// As [`RelationPart::open`], with the offset index loaded for [`RelationPart::rows`]:
    /// for fetches by TID, which read a few rows of a granule.
    fn open_for_fetch(rel: Rel<'_>, schema: &TableSchema, row: PartRow) -> Result<Self, Error>;

    fn granule(&self, rel: Rel<'_>, columns: &[usize], g: usize) -> Result<RecordBatch, Error>;

    fn rows(
        &self,
        rel: Rel<'_>,
        columns: &[usize],
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<RecordBatch, Error>;

    fn column(
        &self,
        rel: Rel<'_>,
        c: usize,
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<arrow_array::ArrayRef, Error>;
}

impl RelationPart for OpenPart {
    fn open(rel: Rel<'_>, schema: &TableSchema, row: PartRow) -> Result<Self, Error> {
        OpenPart::open_from(&RelationPageStore::new(rel), schema, row, false)
    }

    fn open_for_fetch(rel: Rel<'_>, schema: &TableSchema, row: PartRow) -> Result<Self, Error> {
        OpenPart::open_from(&RelationPageStore::new(rel), schema, row, true)
    }

    fn granule(&self, rel: Rel<'_>, columns: &[usize], g: usize) -> Result<RecordBatch, Error> {
        self.granule_from(&RelationPageStore::new(rel), columns, g)
    }

    fn rows(
        &self,
        rel: Rel<'_>,
        columns: &[usize],
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<RecordBatch, Error> {
        self.rows_from(&RelationPageStore::new(rel), columns, g, first, count)
    }

    fn column(
        &self,
        rel: Rel<'_>,
        c: usize,
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<arrow_array::ArrayRef, Error> {
        self.column_from(&RelationPageStore::new(rel), c, g, first, count)
    }
}

/// A memory context for the datums of the rows a scan or fetch hands out, deleted with
/// its owner — or before it, with its parent: a scan's state is dropped by its memory
/// context's reset callback when an ERROR unwinds the query, and Postgres deletes child
/// contexts before it runs a parent's callbacks. The context's own callback marks it
/// gone, so the owner's drop never deletes it twice.
pub struct RowContext {
    context: pg_sys::MemoryContext,
    /// False once Postgres deleted the context (shared with its callback, so boxed).
    alive: Box<std::cell::Cell<bool>>,
}

impl RowContext {
    /// A child of the current memory context.
    pub fn new(name: &'static std::ffi::CStr) -> RowContext {
        // SAFETY: main thread; the context is deleted at most once (see `alive`).
        let context = unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::CurrentMemoryContext,
                name.as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as _,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as _,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as _,
            )
        };
        let row = RowContext {
            context,
            alive: Box::new(std::cell::Cell::new(true)),
        };
        row.watch();
        row
    }

    pub fn get(&self) -> pg_sys::MemoryContext {
        self.context
    }

    /// Frees everything in the context (a reset also runs, and forgets, its callbacks).
    pub fn reset(&self) {
        // SAFETY: the context is alive while its owner is.
        unsafe { pg_sys::MemoryContextReset(self.context) };
        self.alive.set(true);
        self.watch();
    }

    fn watch(&self) {
        // SAFETY: the callback lives in the context it watches; `alive` outlives the
        // context (it is dropped after deleting it, or after Postgres did).
        unsafe {
            epiphany_core::pg::owned::on_reset(
                self.context,
                mark_gone,
                &*self.alive as *const std::cell::Cell<bool> as *mut std::ffi::c_void,
            );
        }
    }
}

unsafe extern "C-unwind" fn mark_gone(arg: *mut std::ffi::c_void) {
    // SAFETY: `arg` is a RowContext's `alive`, which outlives its context.
    unsafe { (*(arg as *const std::cell::Cell<bool>)).set(false) };
}

impl Drop for RowContext {
    fn drop(&mut self) {
        if self.alive.get() {
            // SAFETY: created in new(), not deleted yet.
            unsafe { pg_sys::MemoryContextDelete(self.context) };
        }
    }
}

/// A decoded batch as datums, column by column: what a scan copies into its slot row by
/// row. By-reference values live in the memory context current while decoding.
pub struct DatumBatch {
    pub rows: usize,
    /// Per column read: values and nulls.
    values: Vec<Vec<pg_sys::Datum>>,
    nulls: Vec<Vec<bool>>,
    offsets: Vec<u32>,
    first_row: u64,
}

impl DatumBatch {
    /// Converts `batch` (columns `read` of the table, then the row-offset column if the
    /// rows are to get TIDs).
    ///
    /// # Safety
    /// Main thread (by-reference values are palloc'd).
    pub unsafe fn decode(
        columns: &[ColumnInfo],
        read: &[usize],
        batch: &RecordBatch,
        first_row: u64,
    ) -> DatumBatch {
        use arrow_array::types::{
            Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
            Time64MicrosecondType,
        };
        use epiphany_core::columnar::ColumnType as T;
        let rows = batch.num_rows();
        let mut values = Vec::with_capacity(read.len());
        let mut nulls = Vec::with_capacity(read.len());
        for (k, &c) in read.iter().enumerate() {
            let info = &columns[c];
            let array = batch.column(k);
            let null: Vec<bool> = (0..rows).map(|i| array.is_null(i)).collect();
            let word = |w: u64| pg_sys::Datum::from(w as usize);
            let vals: Vec<pg_sys::Datum> = match info.ty {
                T::Int16 => array
                    .as_primitive::<Int16Type>()
                    .values()
                    .iter()
                    .map(|&v| word(v as i64 as u64))
                    .collect(),
                T::Int32 => array
                    .as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .map(|&v| word(v as i64 as u64))
                    .collect(),
                T::Int64 | T::Timestamp | T::TimestampTz => array
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|&v| word(v as u64))
                    .collect(),
                T::Time => array
                    .as_primitive::<Time64MicrosecondType>()
                    .values()
                    .iter()
                    .map(|&v| word(v as u64))
                    .collect(),
                T::Float32 => array
                    .as_primitive::<Float32Type>()
                    .values()
                    .iter()
                    .map(|&v| word(u64::from(v.to_bits())))
                    .collect(),
                T::Float64 => array
                    .as_primitive::<Float64Type>()
                    .values()
                    .iter()
                    .map(|&v| word(v.to_bits()))
                    .collect(),
                T::Date => array
                    .as_primitive::<Date32Type>()
                    .values()
                    .iter()
                    .map(
                        |&v| word(epiphany_core::columnar::types::date_from_arrow(v) as i64 as u64),
                    )
                    .collect(),
                T::Numeric { scale } => array
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .zip(&null)
                    .map(|(&v, &is_null)| {
                        if is_null {
                            word(0)
                        } else {
                            // SAFETY: main thread (palloc).
                            unsafe { crate::convert::datum::numeric_datum(v, scale) }
                        }
                    })
                    .collect(),
                _ => (0..rows)
                    .map(|i| {
                        if null[i] {
                            pg_sys::Datum::from(0usize)
                        } else {
                            // SAFETY: a value of this column's type.
                            unsafe {
                                crate::convert::datum::to_datum(info, &value_at(array, info.ty, i))
                            }
                            .unwrap_or(pg_sys::Datum::from(0usize))
                        }
                    })
                    .collect(),
            };
            values.push(vals);
            nulls.push(null);
        }
        let offsets = if batch.num_columns() > read.len() {
            batch
                .column(read.len())
                .as_primitive::<UInt32Type>()
                .values()
                .to_vec()
        } else {
            Vec::new()
        };
        DatumBatch {
            rows,
            values,
            nulls,
            offsets,
            first_row,
        }
    }

    /// Row `r` into `slot` as a virtual tuple with its TID; columns not read are NULL.
    ///
    /// # Safety
    /// `slot` must be a slot of the relation the batch was decoded for.
    pub unsafe fn store(
        &self,
        slot: *mut pg_sys::TupleTableSlot,
        read: &[usize],
        r: usize,
        relid: pg_sys::Oid,
    ) -> Result<(), Error> {
        // SAFETY: per the contract; the slot has natts entries.
        unsafe {
            pg_sys::ExecClearTuple(slot);
            let n = (*(*slot).tts_tupleDescriptor).natts as usize;
            let values = std::slice::from_raw_parts_mut((*slot).tts_values, n);
            let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, n);
            if read.len() < n {
                nulls.fill(true);
            }
            for (k, &c) in read.iter().enumerate() {
                values[c] = self.values[k][r];
                nulls[c] = self.nulls[k][r];
            }
            pg_sys::ExecStoreVirtualTuple(slot);
            match self.offsets.get(r) {
                Some(&offset) => {
                    let (block, off) = row_to_tid(self.first_row + u64::from(offset))?;
                    pgrx::itemptr::item_pointer_set_all(&mut (*slot).tts_tid, block, off);
                }
                None => pgrx::itemptr::item_pointer_set_all(
                    &mut (*slot).tts_tid,
                    pg_sys::InvalidBlockNumber,
                    pg_sys::InvalidOffsetNumber,
                ),
            }
            (*slot).tts_tableOid = relid;
        }
        Ok(())
    }
}

/// Stores row `r` of `batch` (every table column in order, then the row-offset column)
/// into `slot` as a materialized virtual tuple with its TID: the slot owns copies of its
/// by-reference values (in its own memory), so the row stays valid however long the
/// caller keeps the slot — after the fetch state is gone, and whichever slot the next
/// fetch uses. `context` only holds the datums while they are built; it is reset.
///
/// # Safety
/// `slot` must be a virtual-compatible slot of the relation `columns` describe, and
/// nothing else keeps data in `context`.
pub unsafe fn store_row(
    context: &RowContext,
    slot: *mut pg_sys::TupleTableSlot,
    columns: &[ColumnInfo],
    batch: &RecordBatch,
    r: usize,
    first_row: u64,
    relid: pg_sys::Oid,
) -> Result<(), Error> {
    // SAFETY: per the contract; the slot has natts entries.
    unsafe {
        context.reset();
        let old = pg_sys::MemoryContextSwitchTo(context.get());
        pg_sys::ExecClearTuple(slot);
        let n = columns.len();
        let values = std::slice::from_raw_parts_mut((*slot).tts_values, n);
        let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, n);
        for (c, info) in columns.iter().enumerate() {
            let datum =
                crate::convert::datum::to_datum(info, &value_at(batch.column(c), info.ty, r));
            values[c] = datum.unwrap_or(pg_sys::Datum::from(0usize));
            nulls[c] = datum.is_none();
        }
        pg_sys::MemoryContextSwitchTo(old);
        let offset = batch.column(n).as_primitive::<UInt32Type>().value(r);
        let (block, off) = row_to_tid(first_row + u64::from(offset))?;
        pg_sys::ExecStoreVirtualTuple(slot);
        pg_sys::ExecMaterializeSlot(slot);
        context.reset();
        pgrx::itemptr::item_pointer_set_all(&mut (*slot).tts_tid, block, off);
        (*slot).tts_tableOid = relid;
    }
    Ok(())
}
