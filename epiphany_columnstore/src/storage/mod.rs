//! Where a columnar table's data lives: the parts catalog (`epiphany.columnar_parts`, the
//! MVCC of parts), the metapage, the relation's pages as the core's `PageStore`, and
//! opening a part from those pages.

pub(crate) mod catalog;
pub(crate) mod meta;
pub(crate) mod page_store;
pub(crate) mod part_access;
