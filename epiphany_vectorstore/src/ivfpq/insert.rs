//! INSERT into epiphany_ivfpq: the row goes to its nearest list, its residual is encoded,
//! and the entry is appended to the list's last page (a new page is chained when it is
//! full). The list's directory page is locked for the whole append, so inserts into one
//! list take turns; the metapage and model are only read.

#![forbid(unsafe_code)]

use epiphany_core::vector::hnsw_node::RowId;
use epiphany_core::vector::ivf_page::encode_entry;
use epiphany_core::Error;
use pgrx::pg_sys;

use epiphany_core::pg::buffer::{Buffer, Image, Lock, Rel, WalRecord};
use epiphany_core::pg::page;

use super::pages::{self, head_in, head_place, put_head, set_next, LIST_SPECIAL};
use crate::hnsw::pages::new_page;

/// Inserts `vector` for table row `row` into an index locked for insertion.
pub fn insert(rel: Rel<'_>, vector: &[f32], row: RowId) {
    let meta = pages::read_meta(rel);
    if vector.len() != meta.dims {
        Error::Data(format!(
            "expected {} dimensions, not {}",
            meta.dims,
            vector.len()
        ))
        .report();
    }
    let model = pages::model(rel, &meta);
    let prepared = meta.metric.prepare(vector);
    let (list, code) = model.assign(&prepared);
    let mut entry = Vec::with_capacity(meta.entry_size());
    encode_entry(row, &code, &mut entry);
    let (dir_block, item) = head_place(&meta, list);
    // The directory page, then list pages, locked exclusively while one GenericXLog
    // record changes them.
    let dir = Buffer::read(rel, dir_block, Lock::Exclusive);
    let mut head = head_in(dir.page(), item);
    let mut record = WalRecord::start(rel);
    let fork = pg_sys::ForkNumber::MAIN_FORKNUM;
    let target = if head.last_block != 0 {
        let tail = record.add(
            Buffer::read(rel, head.last_block, Lock::Exclusive),
            Image::Delta,
        );
        if page::free_space(record.page(tail)) >= entry.len().next_multiple_of(8) {
            tail
        } else {
            let next = new_page(&mut record, rel, fork, LIST_SPECIAL);
            let block = record.block(next);
            set_next(record.page(tail), block);
            head.last_block = block;
            next
        }
    } else {
        let first = new_page(&mut record, rel, fork, LIST_SPECIAL);
        head.first_block = record.block(first);
        head.last_block = head.first_block;
        first
    };
    if page::add_item(record.page(target), &entry).is_none() {
        Error::Internal("epiphany_ivfpq: an entry did not fit its page".into()).report();
    }
    head.rows += 1;
    let d = record.add(dir, Image::Delta);
    put_head(record.page(d), item, &head);
    record.finish();
}
