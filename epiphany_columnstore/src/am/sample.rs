//! ANALYZE's and TABLESAMPLE's block sampling of a columnar table: Postgres samples
//! blocks, then rows within each block. Our blocks hold compressed parts, so block `b`
//! of `n` stands for a run of stored rows (`epiphany_core::columnar::sample`): every row
//! belongs to exactly one block and the sample stays uniform.

#![allow(unsafe_code)] // glue: calls into Postgres, each block with its SAFETY line

use arrow_array::RecordBatch;
use epiphany_core::columnar::sample::{block_ranges, nth_row, rows_in};
use epiphany_core::pg::buffer::Rel;
use epiphany_core::pg::{OrReport, OrReportIn};
use epiphany_core::Error;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::scan::{state, ScanState};
use crate::storage::part_access::RelationPart;
use crate::storage::part_access::{store_row, OpenPart};

pub(super) struct SampleState {
    /// Stored-position ranges of the rows of the block being sampled.
    ranges: Vec<(usize, u64, u64)>,
    cursor: usize,
    pos: u64,
    cache: Option<(usize, usize, RecordBatch)>,
    opened: Option<OpenPart>,
    total_rows: u64,
    nblocks: u32,
}

impl ScanState {
    /// Makes block `block` of the relation's physical blocks the one ANALYZE samples.
    ///
    /// # Safety
    /// `rel` open.
    unsafe fn sample_block(&mut self, rel: Rel<'_>, block: u32) {
        // ANALYZE counted the blocks just before this scan began (rows this transaction
        // buffered were flushed before ANALYZE started; see `options`).
        // SAFETY: per the contract.
        let nblocks = unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(rel.raw(), pg_sys::ForkNumber::MAIN_FORKNUM)
        }
        .max(1);
        self.select_block(block, nblocks);
    }

    /// Makes block `block` of `nblocks` (fixed by the first call) the current one.
    pub(super) fn select_block(&mut self, block: u32, nblocks: u32) {
        let total = self.total_rows();
        let sample = self.sample.get_or_insert_with(|| SampleState {
            ranges: Vec::new(),
            cursor: 0,
            pos: 0,
            cache: None,
            opened: None,
            total_rows: total,
            nblocks,
        });
        let rows: Vec<u64> = self.parts.iter().map(|p| p.row_count).collect();
        debug_assert_eq!(rows.iter().sum::<u64>(), sample.total_rows);
        sample.ranges = block_ranges(&rows, block, sample.nblocks);
        sample.cursor = 0;
        sample.pos = sample.ranges.first().map_or(0, |r| r.1);
    }

    /// Rows in the current sample block.
    pub(super) fn block_rows(&self) -> u64 {
        self.sample.as_ref().map_or(0, |s| rows_in(&s.ranges))
    }

    /// The next row of the current sample block into `slot`; false after its last.
    ///
    /// # Safety
    /// `rel` open, `slot` a slot of it.
    unsafe fn sample_next(
        &mut self,
        rel: Rel<'_>,
        slot: *mut pg_sys::TupleTableSlot,
    ) -> Result<bool, Error> {
        let Some(sample) = self.sample.as_mut() else {
            return Ok(false);
        };
        loop {
            let Some(&(part_index, _, end)) = sample.ranges.get(sample.cursor) else {
                return Ok(false);
            };
            if sample.pos >= end {
                sample.cursor += 1;
                if let Some(r) = sample.ranges.get(sample.cursor) {
                    sample.pos = r.1;
                }
                continue;
            }
            let pos = sample.pos;
            sample.pos += 1;
            // SAFETY: per the contract.
            unsafe { self.store_sampled(rel, slot, part_index, pos) }?;
            return Ok(true);
        }
    }

    /// Row number `offset` (1-based) of the current sample block into `slot`; false when
    /// the block has no such row.
    ///
    /// # Safety
    /// `rel` open, `slot` a slot of it.
    pub(super) unsafe fn sample_offset(
        &mut self,
        rel: Rel<'_>,
        slot: *mut pg_sys::TupleTableSlot,
        offset: u64,
    ) -> Result<bool, Error> {
        let Some((part_index, pos)) = self
            .sample
            .as_ref()
            .and_then(|s| nth_row(&s.ranges, offset))
        else {
            return Ok(false);
        };
        // SAFETY: per the contract.
        unsafe { self.store_sampled(rel, slot, part_index, pos) }?;
        Ok(true)
    }

    /// Stored position `pos` of part `part_index` into `slot`.
    ///
    /// # Safety
    /// `rel` open, `slot` a slot of it.
    unsafe fn store_sampled(
        &mut self,
        rel: Rel<'_>,
        slot: *mut pg_sys::TupleTableSlot,
        part_index: usize,
        pos: u64,
    ) -> Result<(), Error> {
        let sample = self.sample.as_mut().expect("a sample block");
        let part_row = &self.parts[part_index];
        if sample.opened.as_ref().map(|o| o.row.part_id) != Some(part_row.part_id) {
            // SAFETY: per the contract.
            sample.opened = Some(OpenPart::open(rel, &self.info.schema, part_row.clone())?);
            sample.cache = None;
        }
        let part = sample.opened.as_ref().expect("opened");
        let (g, within) = part
            .reader
            .locate(pos)
            .ok_or_else(|| Error::Corrupted(format!("part {}: short of rows", part.row.part_id)))?;
        if !matches!(&sample.cache, Some((p, cg, _)) if *p == part_index && *cg == g) {
            let mut columns: Vec<usize> = (0..self.info.columns.len()).collect();
            columns.push(part.reader.row_column());
            // SAFETY: per the contract.
            let batch = part.granule(rel, &columns, g)?;
            sample.cache = Some((part_index, g, batch));
        }
        let batch = &sample.cache.as_ref().expect("cached").2;
        // SAFETY: per the contract; datums go to the row context.
        unsafe {
            store_row(
                &self.row_context,
                slot,
                &self.info.columns,
                batch,
                within,
                part.row.first_row,
                rel.oid(),
            )
        }
    }
}

// TABLESAMPLE: the sampling method chooses blocks, then offsets within a block. Here a
// block is a run of `ROWS_PER_TID_BLOCK` rows in stored order (as many as a heap page can
// hold), so SYSTEM samples runs of rows and BERNOULLI single rows, as on heap tables.

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_sample_next_block(
    scan: pg_sys::TableScanDesc,
    scanstate: *mut pg_sys::SampleScanState,
) -> bool {
    // SAFETY: a descriptor from scan_begin; the executor's sample scan state.
    unsafe {
        let st = state(scan);
        let per_block = epiphany_core::columnar::rowid::ROWS_PER_TID_BLOCK;
        let nblocks = st
            .total_rows()
            .div_ceil(per_block)
            .min(u64::from(u32::MAX - 1)) as u32;
        let tsm = (*scanstate).tsmroutine;
        let block = match (*tsm).NextSampleBlock {
            Some(next) => {
                // The sampling method's code: an ERROR in it unwinds through pgrx's guard.
                #[allow(ffi_unwind_calls)]
                let b = pg_sys::ffi::pg_guard_ffi_boundary(|| next(scanstate, nblocks));
                b
            }
            None => {
                let b = st.sample_cursor;
                st.sample_cursor += 1;
                if b < nblocks {
                    b
                } else {
                    pg_sys::InvalidBlockNumber
                }
            }
        };
        if block == pg_sys::InvalidBlockNumber || block >= nblocks {
            return false;
        }
        st.select_block(block, nblocks);
        st.sample_block_no = block;
        true
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_sample_next_tuple(
    scan: pg_sys::TableScanDesc,
    scanstate: *mut pg_sys::SampleScanState,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: a descriptor from scan_begin; the executor's sample scan state and a slot
    // of the relation.
    unsafe {
        let st = state(scan);
        let rows = st.block_rows() as u16;
        let tsm = (*scanstate).tsmroutine;
        let Some(next) = (*tsm).NextSampleTuple else {
            return false;
        };
        #[allow(ffi_unwind_calls)] // guarded, as above
        let offset =
            pg_sys::ffi::pg_guard_ffi_boundary(|| next(scanstate, st.sample_block_no, rows));
        // 0 is InvalidOffsetNumber: the method is done with this block.
        if offset == 0 || offset > rows {
            pg_sys::ExecClearTuple(slot);
            return false;
        }
        st.sample_offset(Rel::new((*scan).rs_rd), slot, u64::from(offset))
            .or_report()
    }
}

// PostgreSQL 17 hands ANALYZE's blocks over as a read stream; 15 and 16 as numbers.
#[cfg(not(any(feature = "pg15", feature = "pg16")))]
#[pg_guard]
pub unsafe extern "C-unwind" fn scan_analyze_next_block(
    scan: pg_sys::TableScanDesc,
    stream: *mut pg_sys::ReadStream,
) -> bool {
    // SAFETY: a descriptor from scan_begin; the stream yields pinned buffers of the
    // sampled blocks, released right away (we only need their numbers).
    unsafe {
        let buffer = pg_sys::read_stream_next_buffer(stream, std::ptr::null_mut());
        if buffer == pg_sys::InvalidBuffer as pg_sys::Buffer {
            return false;
        }
        let block = pg_sys::BufferGetBlockNumber(buffer);
        pg_sys::ReleaseBuffer(buffer);
        state(scan).sample_block(Rel::new((*scan).rs_rd), block);
        true
    }
}

#[cfg(any(feature = "pg15", feature = "pg16"))]
#[pg_guard]
pub unsafe extern "C-unwind" fn scan_analyze_next_block(
    scan: pg_sys::TableScanDesc,
    block: pg_sys::BlockNumber,
    _strategy: pg_sys::BufferAccessStrategy,
) -> bool {
    // SAFETY: a descriptor from scan_begin.
    unsafe { state(scan).sample_block(Rel::new((*scan).rs_rd), block) };
    true
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_analyze_next_tuple(
    scan: pg_sys::TableScanDesc,
    _oldest_xmin: pg_sys::TransactionId,
    liverows: *mut f64,
    _deadrows: *mut f64,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: a descriptor from scan_begin and a slot of its relation.
    unsafe {
        let found = state(scan)
            .sample_next(Rel::new((*scan).rs_rd), slot)
            .or_report_in(Rel::new((*scan).rs_rd));
        if found {
            *liverows += 1.0;
        } else {
            pg_sys::ExecClearTuple(slot);
        }
        found
    }
}
