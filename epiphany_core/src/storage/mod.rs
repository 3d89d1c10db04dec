//! The page store: how immutable byte streams (a columnar part, say) live in a relation's
//! pages.
//!
//! A [`PageStore`] is a sequence of fixed-size pages addressed by block number; the glue
//! implements it over a Postgres relation fork (shared buffers, WAL-logged), tests over
//! memory. On top of it an [`Extent`] is one stream written into consecutive fresh pages,
//! each carrying a header with a CRC32C ([`page`]), so that a torn or flipped byte is
//! reported as corruption, never decoded.

#![forbid(unsafe_code)]

pub mod extent;
pub mod free_space;
pub mod metapage;
pub mod page;
pub mod page_store;
pub mod pg_page;

pub use extent::{pages_for, write_extent, write_extent_at, Extent, ExtentReader};
pub use page_store::{BlockNumber, MemoryPageStore, PageStore};
