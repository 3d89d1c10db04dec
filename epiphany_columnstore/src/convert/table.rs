//! What the access method needs to know about one columnar relation: its columns as the
//! core sees them, how each converts, and its options.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use epiphany_core::columnar::flush::buffer_schema;
use epiphany_core::columnar::{TableOptions, TableSchema};
use epiphany_core::pg::buffer::Rel;
use epiphany_core::Error;
use pgrx::pg_sys;

use crate::convert::datum::ColumnInfo;

pub struct TableInfo {
    pub schema: TableSchema,
    /// `schema` plus the buffered row number and command.
    pub buffered: TableSchema,
    pub columns: Vec<ColumnInfo>,
    /// Type of each column.
    pub types: Vec<pg_sys::Oid>,
    pub options: TableOptions,
    pub sort_key: Vec<usize>,
}

impl TableInfo {
    pub fn load(rel: Rel<'_>) -> Result<TableInfo, Error> {
        // SAFETY: the tuple descriptor of an open relation lives as long as it.
        unsafe { Self::load_with(rel, (*rel.raw()).rd_att) }
    }

    /// `rel` with its columns as `desc` describes them: the columns its parts were
    /// written with, while `ALTER TABLE … ALTER COLUMN … TYPE` rewrites it (the relation
    /// already has the new types; the rewrite reads with a copy of the old descriptor).
    ///
    /// # Safety
    /// `desc` must be a valid descriptor.
    pub unsafe fn load_with(rel: Rel<'_>, desc: pg_sys::TupleDesc) -> Result<TableInfo, Error> {
        // SAFETY: per the contract.
        let (names, columns, types) = unsafe {
            let natts = (*desc).natts as usize;
            let mut names = Vec::with_capacity(natts);
            let mut columns = Vec::with_capacity(natts);
            let mut types = Vec::with_capacity(natts);
            for i in 0..natts {
                let attr = tuple_desc_attr(desc, i);
                if (*attr).attisdropped {
                    return Err(Error::NotSupported(
                        "reading an epiphany_columnar table after ALTER TABLE … DROP COLUMN".into(),
                    ));
                }
                names.push(
                    std::ffi::CStr::from_ptr((*attr).attname.data.as_ptr())
                        .to_string_lossy()
                        .into_owned(),
                );
                columns.push(ColumnInfo::for_column((*attr).atttypid, (*attr).atttypmod));
                types.push((*attr).atttypid);
            }
            (names, columns, types)
        };
        let schema = TableSchema::new(names.iter().cloned().zip(columns.iter().map(|c| c.ty)));
        let options = crate::hooks::options::of_relation(rel.oid())?;
        let sort_key = options.resolve_order_by(&schema.names())?;
        Ok(TableInfo {
            buffered: buffer_schema(&schema),
            schema,
            columns,
            types,
            options,
            sort_key,
        })
    }

    /// `datum` of column `column` as its type's text.
    ///
    /// # Safety
    /// `datum` must be a valid non-null datum of the column's type.
    pub unsafe fn output(&self, column: usize, datum: pg_sys::Datum) -> String {
        let mut func = pg_sys::InvalidOid;
        let mut varlena = false;
        // SAFETY: per the contract; the returned C string is palloc'd and copied.
        unsafe {
            pg_sys::getTypeOutputInfo(self.types[column], &mut func, &mut varlena);
            let text = pg_sys::OidOutputFunctionCall(func, datum);
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned()
        }
    }
}

/// Whether two descriptors give every column the same type and type modifier.
///
/// # Safety
/// Both descriptors must be valid.
pub unsafe fn same_column_types(a: pg_sys::TupleDesc, b: pg_sys::TupleDesc) -> bool {
    // SAFETY: per the contract; indexes below natts.
    unsafe {
        (*a).natts == (*b).natts
            && (0..(*a).natts as usize).all(|i| {
                let (x, y) = (tuple_desc_attr(a, i), tuple_desc_attr(b, i));
                (*x).atttypid == (*y).atttypid && (*x).atttypmod == (*y).atttypmod
            })
    }
}

/// `TupleDescAttr(desc, i)`.
///
/// # Safety
/// `desc` must be valid and `i < natts`.
pub unsafe fn tuple_desc_attr(
    desc: pg_sys::TupleDesc,
    i: usize,
) -> *mut pg_sys::FormData_pg_attribute {
    // SAFETY: per the contract.
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::TupleDescAttr(desc, i as i32)
    }
    // SAFETY: per the contract: before PostgreSQL 18 the attributes follow the
    // descriptor (18 has an accessor function instead).
    #[cfg(not(feature = "pg18"))]
    unsafe {
        (*desc).attrs.as_mut_ptr().add(i)
    }
}
