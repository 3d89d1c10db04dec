//! INSERT into epiphany_ivfpq: the row goes to its nearest list, its residual is encoded,
//! and the entry is appended to the list's last page (a new page is chained when it is
//! full). The list's directory page is locked for the whole append, so inserts into one
//! list take turns; the metapage and model are only read.

use epiphany_core::vector::hnsw_node::RowId;
use epiphany_core::vector::ivf_page::encode_entry;
use epiphany_core::Error;
use pgrx::pg_sys;

use super::pages::{self, head_in, head_place, page_mut, put_head, set_next, LIST_SPECIAL};
use crate::hnsw::pages::{new_page_with_special, page_bytes, read_buffer};

/// Inserts `vector` for table row `row`.
///
/// # Safety
/// `index` is an open epiphany_ivfpq index, locked for insertion.
pub unsafe fn insert(index: pg_sys::Relation, vector: &[f32], row: RowId) {
    // SAFETY: per the contract.
    let meta = unsafe { pages::read_meta(index) };
    if vector.len() != meta.dims {
        Error::Data(format!(
            "expected {} dimensions, not {}",
            meta.dims,
            vector.len()
        ))
        .report();
    }
    // SAFETY: per the contract.
    let model = unsafe { pages::model(index, &meta) };
    let prepared = meta.metric.prepare(vector);
    let (list, code) = model.assign(&prepared);
    let mut entry = Vec::with_capacity(meta.entry_size());
    encode_entry(row, &code, &mut entry);
    let (dir_block, item) = head_place(&meta, list);
    // SAFETY: per the contract; directory page, then list pages, locked exclusively while
    // one GenericXLog record changes them.
    unsafe {
        let dir = read_buffer(index, dir_block);
        pg_sys::LockBuffer(dir, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        let mut head = head_in(page_bytes(dir), item);
        let state = pg_sys::GenericXLogStart(index);
        let mut held = Vec::new();
        let target: pg_sys::Page;
        if head.last_block != 0 {
            let tail = read_buffer(index, head.last_block);
            pg_sys::LockBuffer(tail, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            held.push(tail);
            let page = pg_sys::GenericXLogRegisterBuffer(state, tail, 0);
            if pg_sys::PageGetFreeSpace(page) >= entry.len().next_multiple_of(8) {
                target = page;
            } else {
                let (b, p) = new_page_with_special(
                    index,
                    pg_sys::ForkNumber::MAIN_FORKNUM,
                    state,
                    LIST_SPECIAL,
                );
                held.push(b);
                let block = pg_sys::BufferGetBlockNumber(b);
                set_next(page_mut(page), block);
                head.last_block = block;
                target = p;
            }
        } else {
            let (b, p) =
                new_page_with_special(index, pg_sys::ForkNumber::MAIN_FORKNUM, state, LIST_SPECIAL);
            held.push(b);
            head.first_block = pg_sys::BufferGetBlockNumber(b);
            head.last_block = head.first_block;
            target = p;
        }
        let added = pg_sys::PageAddItemExtended(
            target,
            entry.as_ptr() as pg_sys::Item,
            entry.len(),
            pg_sys::InvalidOffsetNumber,
            0,
        );
        if added == pg_sys::InvalidOffsetNumber {
            Error::Internal("epiphany_ivfpq: an entry did not fit its page".into()).report();
        }
        head.rows += 1;
        put_head(
            page_mut(pg_sys::GenericXLogRegisterBuffer(state, dir, 0)),
            item,
            &head,
        );
        pg_sys::GenericXLogFinish(state);
        for b in held {
            pg_sys::UnlockReleaseBuffer(b);
        }
        pg_sys::UnlockReleaseBuffer(dir);
    }
}
