//! Where a columnar table's data lives: the parts catalog (`epiphany.columnar_parts`, the
//! MVCC of parts), the metapage, and opening a part from the relation's pages (the
//! core's `pg::page_store`).

pub(crate) mod catalog;
pub(crate) mod meta;
pub(crate) mod part_access;
