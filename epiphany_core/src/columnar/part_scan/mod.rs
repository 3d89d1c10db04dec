//! The scan of a table's parts that every sequential read shares: which parts to read
//! (their summaries may match the predicates), which granules of each (theirs may
//! match), batches of the columns read (and the row-number column, for TIDs) holding only
//! the rows that pass the vectorized qual and the row predicates — with counters of what
//! was scanned and skipped. Parts are opened from any [`PageStore`]; which part comes
//! next (a parallel scan's participants claim them) is the caller's.
//!
//! A granule is read column by column (late materialization, [`granule`]): the qual's
//! columns first, conjunct by conjunct, stopping at the first conjunct that leaves no
//! row; the other columns only when rows are left, and of them only the pages holding a
//! row left. A conjunct the granule's statistics prove true for every row is not
//! evaluated, nor its columns decoded.

pub mod claim;
mod granule;
#[cfg(test)]
mod tests;
pub mod top_n;

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::columnar::agg::Aggregator;
use crate::columnar::join_filter::JoinFilter;
use crate::columnar::prune::{ColumnStats, GranuleStats, Predicate};
use crate::columnar::qual::Qual;
use crate::columnar::scan_plan::ScanCounters;
use crate::columnar::stored::{OpenPart, PartRow};
use crate::columnar::{ColumnType, TableSchema};
use crate::error::{Error, Result};
use crate::storage::PageStore;

pub struct PartScan {
    schema: TableSchema,
    /// Table columns read, ascending.
    read: Vec<usize>,
    preds: Vec<Predicate>,
    /// How many of `preds` (the first ones) also filter rows; the rest only prune.
    row_preds: usize,
    /// The quals evaluated here instead of by Postgres (`qual`), if any.
    qual: Option<Qual>,
    /// The keys of the hash join this scan is the outer side of, once its table is built.
    join_filter: Option<JoinFilter>,
    row_numbers: bool,
    /// Read every granule's statistics, even without predicates (Top-N orders by them).
    stats_always: bool,
    pub counters: ScanCounters,
    /// Rows the qual and predicates dropped, not yet taken by [`PartScan::take_filtered`].
    filtered: u64,
    /// Columns whose batches may hold dictionary arrays ([`PartScan::keep_coded`]).
    coded: Vec<usize>,
}

/// Where a scan is in an open part: the granules left to read, their statistics (when
/// the scan has a qual or predicates), and the rest of a granule larger than a batch.
pub struct PartCursor {
    granules: VecDeque<usize>,
    stats: Option<Arc<Vec<GranuleStats>>>,
    pending: Option<(RecordBatch, usize)>,
    batch_rows: usize,
}

impl PartCursor {
    /// How many granules are left to read.
    pub fn granules_left(&self) -> usize {
        self.granules.len()
    }

    /// Of each granule left, in order: its rows and the statistics of table column
    /// `column` (`None` when unknown).
    pub fn column_stats(&self, column: usize) -> Vec<(u64, Option<&ColumnStats>)> {
        self.granules
            .iter()
            .map(|&g| {
                let s = self.stats.as_ref().and_then(|s| s.get(g));
                (
                    s.map_or(u64::MAX, |s| s.rows),
                    s.and_then(|s| s.columns.get(column)),
                )
            })
            .collect()
    }

    /// A cursor over the granules `range` of those this one has left (a parallel scan's
    /// claim, [`claim`]).
    pub fn claimed(&self, range: Range<usize>) -> PartCursor {
        PartCursor {
            granules: self.granules.range(range).copied().collect(),
            stats: self.stats.clone(),
            pending: None,
            batch_rows: self.batch_rows,
        }
    }

    /// The next at most `batch_rows` rows of the granule read last.
    fn take_pending(&mut self) -> Option<RecordBatch> {
        let (batch, from) = self.pending.take()?;
        let n = (batch.num_rows() - from).min(self.batch_rows);
        let out = batch.slice(from, n);
        if from + n < batch.num_rows() {
            self.pending = Some((batch, from + n));
        }
        Some(out)
    }
}

impl PartScan {
    pub fn new(
        schema: &TableSchema,
        read: Vec<usize>,
        preds: Vec<Predicate>,
        row_numbers: bool,
    ) -> PartScan {
        PartScan {
            schema: schema.clone(),
            read,
            row_preds: preds.len(),
            preds,
            qual: None,
            join_filter: None,
            row_numbers,
            stats_always: false,
            counters: Default::default(),
            filtered: 0,
            coded: Vec::new(),
        }
    }

    /// Batches may hold those of `columns` that parts store dictionary-coded as
    /// dictionary arrays (a consumer that groups by codes: the aggregator). Only text and
    /// bytes are ever so stored; columns a row predicate reads stay plain.
    pub fn keep_coded(&mut self, columns: impl IntoIterator<Item = usize>) {
        let preds = &self.preds[..self.row_preds];
        let schema = &self.schema;
        self.coded = columns
            .into_iter()
            .filter(|&c| {
                self.read.contains(&c)
                    && schema
                        .columns
                        .get(c)
                        .is_some_and(|col| matches!(col.ty, ColumnType::Text | ColumnType::Bytes))
                    && !preds.iter().any(|p| p.column() == c)
            })
            .collect();
    }

    pub fn read(&self) -> &[usize] {
        &self.read
    }

    /// Rows must satisfy `qual` (its columns must be among those read); parts and
    /// granules where no row can are skipped. Only the first `row_preds` predicates
    /// still filter rows (the others repeat the qual's tests).
    pub fn set_qual(&mut self, qual: Qual, row_preds: usize) {
        debug_assert!(qual.columns().iter().all(|c| self.read.contains(c)));
        self.row_preds = row_preds.min(self.preds.len());
        self.qual = Some(qual);
    }

    /// Rows must also pass `filter` (its columns must be among those read), tested after
    /// the qual; `None` takes it away.
    pub fn set_join_filter(&mut self, filter: Option<JoinFilter>) {
        debug_assert!(filter
            .as_ref()
            .is_none_or(|f| f.columns().iter().all(|c| self.read.contains(c))));
        self.join_filter = filter;
    }

    pub fn join_filter(&self) -> Option<&JoinFilter> {
        self.join_filter.as_ref()
    }

    /// Parts are opened with their granules' statistics (see [`PartCursor::column_stats`]).
    pub fn with_granule_stats(&mut self) {
        self.stats_always = true;
    }

    /// Batches without the row-number column (their rows need no TIDs).
    pub fn without_row_numbers(&mut self) {
        self.row_numbers = false;
    }

    /// Parts opened from now on are decoded with `schema` (a table rewrite reads the old
    /// parts with the old column types).
    pub fn set_schema(&mut self, schema: &TableSchema) {
        self.schema = schema.clone();
    }

    /// The parts of `parts` whose summaries may match the predicates (the others are
    /// counted as skipped).
    pub fn prune_parts(&mut self, parts: Vec<PartRow>) -> Result<Vec<PartRow>> {
        if self.preds.is_empty() && self.qual.is_none() {
            self.counters.parts_scanned += parts.len() as u64;
            return Ok(parts);
        }
        let summaries = parts
            .iter()
            .map(|p| crate::columnar::scan_plan::decode_stats(&p.stats))
            .collect::<Result<Vec<_>>>()?;
        let mut kept =
            crate::columnar::scan_plan::prune_parts(&summaries, &self.preds, &mut self.counters);
        if let Some(q) = &self.qual {
            let before = kept.len();
            kept.retain(|&i| q.may_pass(&summaries[i]));
            let skipped = (before - kept.len()) as u64;
            self.counters.parts_scanned -= skipped;
            self.counters.parts_skipped += skipped;
        }
        let mut parts: Vec<Option<PartRow>> = parts.into_iter().map(Some).collect();
        Ok(kept.into_iter().filter_map(|i| parts[i].take()).collect())
    }

    /// The columns a batch holds: those read, then the row-number column if asked for.
    fn batch_columns(&self, part: &OpenPart) -> Vec<usize> {
        let mut c = self.read.clone();
        if self.row_numbers {
            c.push(part.reader.row_column());
        }
        c
    }

    /// Opens part `row` from `store` to read it in batches of at most `batch_rows` rows,
    /// over the granules that may match; `None` when none may.
    pub fn open(
        &mut self,
        store: &impl PageStore,
        row: PartRow,
        batch_rows: usize,
    ) -> Result<Option<(OpenPart, PartCursor)>> {
        let part = OpenPart::open_from(store, &self.schema, row, false)?;
        let (granules, stats) =
            if self.preds.is_empty() && self.qual.is_none() && !self.stats_always {
                self.counters.granules_scanned += part.reader.granules() as u64;
                ((0..part.reader.granules()).collect(), None)
            } else {
                let stats = part.reader.granule_stats()?;
                (self.granules_that_may_match(&stats), Some(Arc::new(stats)))
            };
        if granules.is_empty() {
            return Ok(None);
        }
        let cursor = PartCursor {
            granules: granules.into(),
            stats,
            pending: None,
            batch_rows: batch_rows.max(1),
        };
        Ok(Some((part, cursor)))
    }

    /// The next batch of `part` of rows that pass the qual and the row predicates (never
    /// empty); `None` when the part has no more.
    pub fn next_batch(
        &mut self,
        store: &impl PageStore,
        part: &OpenPart,
        cursor: &mut PartCursor,
    ) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = cursor.take_pending() {
                return Ok(Some(batch));
            }
            let Some(g) = cursor.granules.pop_front() else {
                return Ok(None);
            };
            let columns = self.batch_columns(part);
            let stats = cursor.stats.as_ref().and_then(|s| s.get(g));
            if let Some(batch) = self.granule(store, part, g, stats, &columns)? {
                let batch = self.filter_preds(batch)?;
                if batch.num_rows() > 0 {
                    cursor.pending = Some((batch, 0));
                }
            }
        }
    }

    /// The granules whose statistics may match the predicates and the qual (the others
    /// counted as skipped).
    fn granules_that_may_match(&mut self, stats: &[GranuleStats]) -> Vec<usize> {
        let mut kept =
            crate::columnar::scan_plan::prune_granules(stats, &self.preds, &mut self.counters);
        if let Some(q) = &self.qual {
            let before = kept.len();
            kept.retain(|&g| q.may_pass(&stats[g]));
            let skipped = (before - kept.len()) as u64;
            self.counters.granules_scanned -= skipped;
            self.counters.granules_skipped += skipped;
        }
        kept
    }

    /// How many rows of part `row` the scan returns, and how many of those were counted
    /// from metadata alone: the whole part when the scan has no quals (the catalog's row
    /// count, the part not even opened), else every granule whose statistics prove that
    /// all its rows pass; of the other granules only the qual's columns are decoded.
    ///
    /// Exact while parts hold no deleted rows (nothing deletes from a part yet): once
    /// delete masks exist, a granule with deletions must be decoded instead.
    pub fn count(&mut self, store: &impl PageStore, row: PartRow) -> Result<(u64, u64)> {
        if self.preds.is_empty() && self.qual.is_none() {
            return Ok((row.row_count, row.row_count));
        }
        let part = OpenPart::open_from(store, &self.schema, row, false)?;
        let stats = part.reader.granule_stats()?;
        let kept = self.granules_that_may_match(&stats);
        // Predicates that still drop rows are quals not vectorized: they need their
        // columns, and no granule is answered from metadata.
        let columns = if self.row_preds == 0 {
            Vec::new()
        } else {
            self.read.clone()
        };
        let mut from_metadata = 0;
        let mut total = 0;
        for g in kept {
            if self.returns_whole(&stats[g]) {
                from_metadata += part.reader.granule_len(g).unwrap_or(0);
                continue;
            }
            if let Some(batch) = self.granule(store, &part, g, Some(&stats[g]), &columns)? {
                total += self.filter_preds(batch)?.num_rows() as u64;
            }
        }
        Ok((total + from_metadata, from_metadata))
    }

    /// Folds the rows of part `row` the scan returns into `agg`, an aggregator that
    /// [`Aggregator::answers_from_stats`]: a granule whose statistics prove that every
    /// row is returned from those statistics alone, the others decoded (the qual's
    /// columns, then the aggregated ones where rows pass). Returns the rows folded in and
    /// how many of them came from statistics.
    pub fn aggregate(
        &mut self,
        store: &impl PageStore,
        row: PartRow,
        agg: &mut Aggregator,
    ) -> Result<(u64, u64)> {
        let part = OpenPart::open_from(store, &self.schema, row, false)?;
        let stats = part.reader.granule_stats()?;
        let kept = self.granules_that_may_match(&stats);
        let columns = self.read.clone();
        let at = |c: usize| columns.iter().position(|&r| r == c);
        let (mut total, mut from_metadata) = (0, 0);
        for g in kept {
            if self.returns_whole(&stats[g]) && agg.add_stats(&stats[g]) {
                total += stats[g].rows;
                from_metadata += stats[g].rows;
                continue;
            }
            if let Some(batch) = self.granule(store, &part, g, Some(&stats[g]), &columns)? {
                let batch = self.filter_preds(batch)?;
                total += batch.num_rows() as u64;
                agg.push(&batch, &at)?;
            }
        }
        Ok((total, from_metadata))
    }

    /// Whether the scan returns every row of a granule with statistics `stats`, as those
    /// prove: no row predicate left to apply, and the qual, if any, true for every row.
    ///
    /// Every row of a part is visible to a snapshot that sees the part while nothing
    /// deletes from parts; once delete masks exist, a granule with deleted rows must
    /// answer no here, as this is what every answer from metadata rests on.
    fn returns_whole(&self, stats: &GranuleStats) -> bool {
        self.row_preds == 0
            && self.join_filter.is_none()
            && self.qual.as_ref().is_none_or(|q| q.all_pass(stats))
    }

    /// `batch` without the rows that certainly fail a row predicate (counted as
    /// filtered).
    fn filter_preds(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.row_preds == 0 {
            return Ok(batch);
        }
        let types: Vec<ColumnType> = self
            .read
            .iter()
            .map(|&c| self.schema.columns[c].ty)
            .collect();
        let preds: Vec<(usize, &Predicate)> = self.preds[..self.row_preds]
            .iter()
            .filter_map(|p| {
                self.read
                    .iter()
                    .position(|&c| c == p.column())
                    .map(|k| (k, p))
            })
            .collect();
        if batch.num_columns() < self.read.len() {
            return Err(Error::Internal(
                "row predicates over a batch without the columns read".into(),
            ));
        }
        let kept = crate::columnar::filter::filter_batch(&batch, &types, &preds)?;
        self.filtered += (batch.num_rows() - kept.num_rows()) as u64;
        Ok(kept)
    }

    /// The rows dropped by the qual and the predicates since the last call.
    pub fn take_filtered(&mut self) -> u64 {
        std::mem::take(&mut self.filtered)
    }
}
