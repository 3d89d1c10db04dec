//! Parts as they are stored: a part's catalog entry ([`PartRow`]) and a part opened from
//! the pages of any [`PageStore`] ([`OpenPart`]): the footer read, column chunks and
//! pages fetched on demand and decoded by the core's reader. The glue gives it the
//! relation's pages; tests give it memory.

use arrow_array::{ArrayRef, RecordBatch};

use crate::columnar::fetch::SparsePart;
use crate::columnar::{PartReader, TableSchema};
use crate::error::{Error, Result};
use crate::storage::{Extent, ExtentReader, PageStore};

/// What a part's catalog row says of it.
#[derive(Clone, Debug, PartialEq)]
pub struct PartRow {
    pub storage_id: u64,
    pub part_id: u64,
    pub level: i32,
    pub first_row: u64,
    pub row_count: u64,
    pub first_block: u32,
    pub pages: u32,
    pub byte_len: u64,
    /// Part summary (`scan_plan::encode_stats`).
    pub stats: Vec<u8>,
}

impl PartRow {
    pub fn extent(&self) -> Extent {
        Extent {
            id: self.part_id,
            first_block: self.first_block,
            pages: self.pages,
            len: self.byte_len,
        }
    }
}

/// A part with the footer read; column chunks are fetched on demand.
pub struct OpenPart {
    pub row: PartRow,
    pub reader: PartReader<SparsePart>,
}

impl OpenPart {
    /// Reads the footer of part `row` from `store`; with `offsets`, also the offset index
    /// (where each page starts), for reads of a few rows of a granule (fetches by TID).
    pub fn open_from(
        store: &impl PageStore,
        schema: &TableSchema,
        row: PartRow,
        offsets: bool,
    ) -> Result<Self> {
        let extent = ExtentReader::new(store, row.extent())?;
        let mut fetch = |off, len| extent.read(off, len);
        let sparse = SparsePart::with_tail(row.byte_len, &mut fetch)?;
        let reader = if offsets {
            sparse.fetch_offset_indexes(&mut fetch)?;
            PartReader::open_with_offsets(schema, sparse)?
        } else {
            PartReader::open(schema, sparse)?
        };
        if reader.rows() != row.row_count {
            return Err(Error::Corrupted(format!(
                "part {} holds {} rows, its catalog row says {}",
                row.part_id,
                reader.rows(),
                row.row_count
            )));
        }
        Ok(OpenPart { row, reader })
    }

    /// Fetches the chunks of `columns` in `granules` (those not held yet).
    pub fn fetch_from(
        &self,
        store: &impl PageStore,
        columns: &[usize],
        granules: &[usize],
    ) -> Result<()> {
        let extent = ExtentReader::new(store, self.row.extent())?;
        self.reader.source().fetch_chunks(
            self.reader.metadata(),
            columns,
            granules,
            &mut |off, len| extent.read(off, len),
        )
    }

    /// Columns `columns` of granule `g`, decoded in one batch.
    pub fn granule_from(
        &self,
        store: &impl PageStore,
        columns: &[usize],
        g: usize,
    ) -> Result<RecordBatch> {
        self.fetch_from(store, columns, &[g])?;
        let rows = self.reader.granule_len(g).unwrap_or(0) as usize;
        let mut batches = self.reader.read(columns, &[g], rows.max(1))?;
        let batch = batches
            .next()
            .unwrap_or_else(|| Err(Error::Corrupted(format!("granule {g} is empty"))))?;
        if batch.num_rows() != rows {
            return Err(Error::Corrupted(format!(
                "granule {g}: {} rows, expected {rows}",
                batch.num_rows()
            )));
        }
        Ok(batch)
    }

    /// Rows `first .. first + count` of granule `g`, columns `columns`: only the pages
    /// holding them are fetched (opened with `offsets`).
    pub fn rows_from(
        &self,
        store: &impl PageStore,
        columns: &[usize],
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<RecordBatch> {
        let extent = ExtentReader::new(store, self.row.extent())?;
        self.reader.source().fetch_pages(
            self.reader.metadata(),
            columns,
            g,
            first..first + count,
            &mut |off, len| extent.read(off, len),
        )?;
        self.reader.read_rows(columns, g, first, count)
    }

    /// Rows `first .. first + count` of column `c` of granule `g`, decoded from only the
    /// pages holding them (what a fetch by TID decodes).
    pub fn column_from(
        &self,
        store: &impl PageStore,
        c: usize,
        g: usize,
        first: usize,
        count: usize,
    ) -> Result<ArrayRef> {
        let extent = ExtentReader::new(store, self.row.extent())?;
        self.reader.source().fetch_pages(
            self.reader.metadata(),
            &[c],
            g,
            first..first + count,
            &mut |off, len| extent.read(off, len),
        )?;
        self.reader.read_column(c, g, first, count)
    }
}

/// The scan of a table's parts that every sequential read shares: which parts to read
/// (their summaries may match the predicates), which granules of each (theirs may
/// match), batches of the columns read (and the row-number column, for TIDs), and the
/// rows of each batch that certainly fail a predicate dropped — with counters of what
/// was scanned and skipped. Parts are opened from any [`PageStore`]; which part comes
/// next (a parallel scan's participants claim them) is the caller's.
pub struct PartScan {
    schema: TableSchema,
    /// Table columns read, ascending.
    read: Vec<usize>,
    preds: Vec<crate::columnar::prune::Predicate>,
    /// How many of `preds` (the first ones) also filter rows; the rest only prune.
    row_preds: usize,
    /// The quals evaluated here instead of by Postgres (`qual`), if any.
    qual: Option<crate::columnar::qual::Qual>,
    row_numbers: bool,
    pub counters: crate::columnar::scan_plan::ScanCounters,
    /// Rows the predicates dropped, not yet taken by [`PartScan::take_filtered`].
    filtered: u64,
}

impl PartScan {
    pub fn new(
        schema: &TableSchema,
        read: Vec<usize>,
        preds: Vec<crate::columnar::prune::Predicate>,
        row_numbers: bool,
    ) -> PartScan {
        PartScan {
            schema: schema.clone(),
            read,
            row_preds: preds.len(),
            preds,
            qual: None,
            row_numbers,
            counters: Default::default(),
            filtered: 0,
        }
    }

    pub fn read(&self) -> &[usize] {
        &self.read
    }

    /// Rows must satisfy `qual` (evaluated on the decoded columns, which must include
    /// its columns); parts and granules where no row can are skipped. Only the first
    /// `row_preds` predicates still filter rows (the others repeat the qual's tests).
    pub fn set_qual(&mut self, qual: crate::columnar::qual::Qual, row_preds: usize) {
        debug_assert!(qual.columns().iter().all(|c| self.read.contains(c)));
        self.row_preds = row_preds.min(self.preds.len());
        self.qual = Some(qual);
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

    /// Opens part `row` from `store` and starts its batches of `batch_rows` over the
    /// granules that may match; `None` when none may.
    pub fn open(
        &mut self,
        store: &impl PageStore,
        row: PartRow,
        batch_rows: usize,
    ) -> Result<Option<(OpenPart, crate::columnar::PartBatches)>> {
        let part = OpenPart::open_from(store, &self.schema, row, false)?;
        let granules: Vec<usize> = if self.preds.is_empty() && self.qual.is_none() {
            self.counters.granules_scanned += part.reader.granules() as u64;
            (0..part.reader.granules()).collect()
        } else {
            let stats = part.reader.granule_stats()?;
            self.granules_that_may_match(&stats)
        };
        if granules.is_empty() {
            return Ok(None);
        }
        let columns = self.batch_columns(&part);
        part.fetch_from(store, &columns, &granules)?;
        let batches = part.reader.read(&columns, &granules, batch_rows)?;
        Ok(Some((part, batches)))
    }

    /// The granules whose statistics may match the predicates and the qual (the others
    /// counted as skipped).
    fn granules_that_may_match(
        &mut self,
        stats: &[crate::columnar::prune::GranuleStats],
    ) -> Vec<usize> {
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
    /// all its rows pass; only the other granules' qual columns are decoded.
    ///
    /// Exact while parts hold no deleted rows (nothing deletes from a part yet): once
    /// delete masks exist, a granule with deletions must be decoded instead.
    pub fn count(
        &mut self,
        store: &impl PageStore,
        row: PartRow,
        batch_rows: usize,
    ) -> Result<(u64, u64)> {
        if self.preds.is_empty() && self.qual.is_none() {
            return Ok((row.row_count, row.row_count));
        }
        let part = OpenPart::open_from(store, &self.schema, row, false)?;
        let stats = part.reader.granule_stats()?;
        let kept = self.granules_that_may_match(&stats);
        // Predicates that still drop rows are quals not vectorized: decode everything.
        let (exact, decode): (Vec<usize>, Vec<usize>) = kept.into_iter().partition(|&g| {
            self.row_preds == 0 && self.qual.as_ref().is_some_and(|q| q.all_pass(&stats[g]))
        });
        let from_metadata: u64 = exact
            .iter()
            .filter_map(|&g| part.reader.granule_len(g))
            .sum();
        let mut total = from_metadata;
        if !decode.is_empty() {
            let columns = self.batch_columns(&part);
            part.fetch_from(store, &columns, &decode)?;
            for batch in part.reader.read(&columns, &decode, batch_rows)? {
                total += self.filter(batch?)?.num_rows() as u64;
            }
        }
        Ok((total, from_metadata))
    }

    /// `batch` with only the rows the qual holds for, without those that certainly
    /// fail a predicate (counted as filtered).
    pub fn filter(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let batch = match &self.qual {
            Some(q) => {
                let read = &self.read;
                let truth = q.eval(&batch, &|c| read.iter().position(|&r| r == c))?;
                let kept = truth.t.count_set_bits();
                if kept == batch.num_rows() {
                    batch
                } else {
                    self.filtered += (batch.num_rows() - kept) as u64;
                    arrow_select::filter::filter_record_batch(
                        &batch,
                        &arrow_array::BooleanArray::new(truth.t, None),
                    )
                    .map_err(|e| Error::Internal(format!("filtering a batch: {e}")))?
                }
            }
            None => batch,
        };
        if self.row_preds == 0 {
            return Ok(batch);
        }
        let types: Vec<crate::columnar::ColumnType> = self
            .read
            .iter()
            .map(|&c| self.schema.columns[c].ty)
            .collect();
        let preds: Vec<(usize, &crate::columnar::prune::Predicate)> = self.preds[..self.row_preds]
            .iter()
            .filter_map(|p| {
                self.read
                    .iter()
                    .position(|&c| c == p.column())
                    .map(|k| (k, p))
            })
            .collect();
        let kept = crate::columnar::filter::filter_batch(&batch, &types, &preds)?;
        self.filtered += (batch.num_rows() - kept.num_rows()) as u64;
        Ok(kept)
    }

    /// The rows dropped by the predicates since the last call.
    pub fn take_filtered(&mut self) -> u64 {
        std::mem::take(&mut self.filtered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::prune::{Op, Predicate, Scalar};
    use crate::columnar::{encode_part, ColumnType, RowBuffer, TableOptions, Value};
    use crate::storage::{write_extent, MemoryPageStore};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, UInt32Type};

    /// Parts of rows (k, k * 10) for k in each range, stored in memory.
    fn stored(ranges: &[std::ops::Range<i64>]) -> (MemoryPageStore, TableSchema, Vec<PartRow>) {
        let schema = TableSchema::new([("k", ColumnType::Int64), ("v", ColumnType::Int64)]);
        let options = TableOptions::parse([("granule_rows", "100")]).unwrap();
        let mut store = MemoryPageStore::new(4096);
        let mut rows = Vec::new();
        let mut first_row = 0;
        for (id, range) in ranges.iter().enumerate() {
            let mut buffer = RowBuffer::new(schema.clone());
            for k in range.clone() {
                buffer
                    .push_row(&[Value::Int64(k), Value::Int64(k * 10)])
                    .unwrap();
            }
            let part = encode_part(&schema, &buffer.take_batch().unwrap(), &[0], &options).unwrap();
            let extent = write_extent(&mut store, id as u64, &part.bytes).unwrap();
            let summary = crate::columnar::scan_plan::summarize(&part.granules);
            rows.push(PartRow {
                storage_id: 1,
                part_id: id as u64,
                level: 0,
                first_row,
                row_count: part.rows,
                first_block: extent.first_block,
                pages: extent.pages,
                byte_len: extent.len,
                stats: crate::columnar::scan_plan::encode_stats(&summary),
            });
            first_row += part.rows;
        }
        (store, schema, rows)
    }

    fn scan_all(
        scan: &mut PartScan,
        store: &MemoryPageStore,
        parts: Vec<PartRow>,
    ) -> Vec<(i64, u32)> {
        let mut out = Vec::new();
        for row in scan.prune_parts(parts).unwrap() {
            let Some((_, batches)) = scan.open(store, row, 64).unwrap() else {
                continue;
            };
            for batch in batches {
                let batch = scan.filter(batch.unwrap()).unwrap();
                let k = batch.column(0).as_primitive::<Int64Type>();
                let offsets = batch.column(1).as_primitive::<UInt32Type>();
                out.extend(
                    k.values()
                        .iter()
                        .copied()
                        .zip(offsets.values().iter().copied()),
                );
            }
        }
        out
    }

    #[test]
    fn scans_read_what_may_match_and_drop_what_cannot() {
        let (store, schema, parts) = stored(&[0..1000, 1000..2000, 2000..3000]);
        // k >= 1950: the first part is skipped by its summary, granules of the second
        // by theirs, and the rows of the granule holding 1950 that fail are dropped.
        let pred = Predicate::Compare {
            column: 0,
            op: Op::Ge,
            value: Scalar::Int(1950),
        };
        let mut scan = PartScan::new(&schema, vec![0], vec![pred], true);
        let got = scan_all(&mut scan, &store, parts.clone());
        let keys: Vec<i64> = got.iter().map(|&(k, _)| k).collect();
        assert_eq!(keys, (1950..3000).collect::<Vec<_>>());
        // Row numbers come along: k's row offset in its part.
        assert!(got.iter().all(|&(k, off)| off as i64 == k % 1000));
        let c = scan.counters;
        assert_eq!((c.parts_scanned, c.parts_skipped), (2, 1));
        assert_eq!((c.granules_scanned, c.granules_skipped), (11, 9));
        assert_eq!(scan.take_filtered(), 50);
        assert_eq!(scan.take_filtered(), 0);
        // Without predicates every row of every part, none filtered.
        let mut all = PartScan::new(&schema, vec![0], vec![], true);
        assert_eq!(scan_all(&mut all, &store, parts).len(), 3000);
        assert_eq!(all.counters.granules_scanned, 30);
    }

    #[test]
    fn counts_come_from_metadata_where_statistics_prove_every_row_passes() {
        use crate::columnar::qual::{Cmp, Qual, Test};
        let (store, schema, parts) = stored(&[0..1000, 1000..2000, 2000..3000]);
        // No quals: the catalog's row counts, nothing decoded.
        let mut all = PartScan::new(&schema, vec![], vec![], false);
        let counted: Vec<(u64, u64)> = parts
            .iter()
            .map(|p| all.count(&store, p.clone(), 64).unwrap())
            .collect();
        assert_eq!(counted, vec![(1000, 1000); 3]);
        // 150 <= k < 1950: granules of 100 rows inside the range from their min/max, the
        // two cut by a bound decoded (k 150..199 and 1900..1949).
        let k = |op, v| Qual::Test {
            column: 0,
            test: Test::Compare(op, Scalar::Int(v)),
        };
        let mut scan = PartScan::new(&schema, vec![0], vec![], false);
        scan.set_qual(Qual::And(vec![k(Cmp::Ge, 150), k(Cmp::Lt, 1950)]), 0);
        let mut total = (0, 0);
        for row in scan.prune_parts(parts).unwrap() {
            let (n, meta) = scan.count(&store, row, 64).unwrap();
            total = (total.0 + n, total.1 + meta);
        }
        assert_eq!(total, (1800, 1700));
        assert_eq!(scan.counters.parts_skipped, 1);
    }

    #[test]
    fn a_vectorized_qual_filters_rows_and_prunes_what_it_rules_out() {
        use crate::columnar::qual::{Cmp, Qual, Test};
        let (store, schema, parts) = stored(&[0..1000, 1000..2000, 2000..3000]);
        let k = |op, v| Qual::Test {
            column: 0,
            test: Test::Compare(op, Scalar::Int(v)),
        };
        // k < 50 OR (k >= 2950 AND NOT k = 2990): the middle part cannot hold a row.
        let qual = Qual::Or(vec![
            k(Cmp::Lt, 50),
            Qual::And(vec![
                k(Cmp::Ge, 2950),
                Qual::Not(Box::new(k(Cmp::Eq, 2990))),
            ]),
        ]);
        let mut scan = PartScan::new(&schema, vec![0], vec![], true);
        scan.set_qual(qual, 0);
        let keys: Vec<i64> = scan_all(&mut scan, &store, parts)
            .iter()
            .map(|&(k, _)| k)
            .collect();
        let want: Vec<i64> = (0..50).chain((2950..3000).filter(|&k| k != 2990)).collect();
        assert_eq!(keys, want);
        let c = scan.counters;
        assert_eq!((c.parts_scanned, c.parts_skipped), (2, 1));
        // One granule of each part read survives: 0..100 and 2900..3000.
        assert_eq!((c.granules_scanned, c.granules_skipped), (2, 18));
        assert_eq!(scan.take_filtered(), 200 - want.len() as u64);
    }
}
