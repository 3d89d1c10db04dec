//! Turning a transaction's buffered rows into parts.
//!
//! Every buffered row carries the row number it was given at insert (its TID, already in
//! the indexes) and the command that inserted it. A part owns a contiguous range of row
//! numbers, so the rows are ordered by number and cut wherever the numbers jump (another
//! backend's reservation, or rows discarded by `ROLLBACK TO SAVEPOINT`). A flush in the
//! middle of a transaction also cuts where the command changes: the part's catalog row
//! is stamped with its rows' command id, so a cursor opened between two commands sees
//! exactly the rows inserted before it.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::columnar::types::{ColumnType, TableSchema};
use crate::error::{Error, Result};

/// Buffered column holding each row's number.
pub const ROW_NUMBER: &str = "_epiphany_row_number";
/// Buffered column holding each row's inserting command id (a `u32` stored as `i32`).
pub const COMMAND: &str = "_epiphany_command";

/// The schema rows are buffered with: the table's columns, then row number and command.
pub fn buffer_schema(table: &TableSchema) -> TableSchema {
    let mut schema = table.clone();
    schema.columns.push(crate::columnar::ColumnDef {
        name: ROW_NUMBER.into(),
        ty: ColumnType::Int64,
    });
    schema.columns.push(crate::columnar::ColumnDef {
        name: COMMAND.into(),
        ty: ColumnType::Int32,
    });
    schema
}

/// The command ids (`curcid`) of the snapshots this transaction's queries read with while
/// they run (from executor start to end; a cursor's until it is closed). A snapshot sees
/// the rows of commands below its `curcid`, so rows of two commands may share a part —
/// stamped with the later command — only when no live snapshot lies between them. A
/// cursor, or a STABLE function running under a cursor's snapshot, reads with a
/// `curcid` older than the commands after it.
#[derive(Debug, Default, Clone)]
pub struct SnapshotCommands {
    /// curcid → how many live queries read with it.
    live: std::collections::BTreeMap<u32, u32>,
    /// Too many to track: every change of command is a cut.
    overflowed: bool,
}

/// Live snapshots tracked per transaction before every command change is a cut (an
/// error skips a query's end, so entries can pile up in a long transaction).
const MAX_TRACKED_SNAPSHOTS: usize = 10_000;

impl SnapshotCommands {
    /// A query starts reading with a snapshot at `curcid`.
    pub fn record(&mut self, curcid: u32) {
        if self.live.len() >= MAX_TRACKED_SNAPSHOTS {
            self.overflowed = true;
        } else {
            *self.live.entry(curcid).or_default() += 1;
        }
    }

    /// A query recorded at `curcid` has ended.
    pub fn release(&mut self, curcid: u32) {
        if let Some(n) = self.live.get_mut(&curcid) {
            *n -= 1;
            if *n == 0 {
                self.live.remove(&curcid);
            }
        }
    }

    pub fn clear(&mut self) {
        self.live.clear();
        self.overflowed = false;
    }

    /// Whether some live snapshot sees the rows of one of the commands and not the
    /// other's.
    pub fn separates(&self, a: u32, b: u32) -> bool {
        let (lo, hi) = (a.min(b), a.max(b));
        lo != hi && (self.overflowed || self.live.range(lo + 1..=hi).next().is_some())
    }
}

/// Rows for one part: the table's columns, row `i` being row number `first_row + i`.
#[derive(Debug)]
pub struct Run {
    pub first_row: u64,
    /// The latest command among the rows.
    pub command: u32,
    pub batch: RecordBatch,
}

/// Orders buffered `batches` (in [`buffer_schema`]) by row number and cuts them into
/// runs of consecutive numbers, and, with `snapshots` (a flush in the middle of a
/// transaction), where the command changes and a snapshot lies between the two
/// commands. At commit (`None`) no snapshot of the transaction reads on.
pub fn plan_runs(
    table: &TableSchema,
    batches: &[RecordBatch],
    snapshots: Option<&SnapshotCommands>,
) -> Result<Vec<Run>> {
    let columns = table.columns.len();
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    // A single writer's rows usually come as one batch already in row-number order:
    // then there is nothing to copy.
    let all = if batches.len() == 1 {
        first.clone()
    } else {
        let batches = crate::columnar::types::unify_text_columns(batches);
        arrow_select::concat::concat_batches(&batches[0].schema(), &batches)
            .map_err(|e| Error::Internal(format!("gathering buffered rows: {e}")))?
    };
    let in_order = all
        .column(columns)
        .as_primitive::<Int64Type>()
        .values()
        .windows(2)
        .all(|w| w[0] < w[1]);
    let all = if in_order {
        all
    } else {
        let order = arrow_ord::sort::sort_to_indices(all.column(columns), None, None)
            .map_err(|e| Error::Internal(format!("ordering buffered rows: {e}")))?;
        arrow_select::take::take_record_batch(&all, &order)
            .map_err(|e| Error::Internal(format!("ordering buffered rows: {e}")))?
    };
    let numbers = all
        .column(columns)
        .as_primitive::<Int64Type>()
        .values()
        .clone();
    let commands = all
        .column(columns + 1)
        .as_primitive::<Int32Type>()
        .values()
        .clone();
    let user: SchemaRef = crate::columnar::types::schema_of(table, &all.columns()[..columns]);
    let projected = all
        .project(&(0..columns).collect::<Vec<_>>())
        .map_err(|e| Error::Internal(format!("projecting buffered rows: {e}")))?;
    // The row count is explicit: a table may have no columns at all.
    let projected = RecordBatch::try_new_with_options(
        user,
        projected.columns().to_vec(),
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(all.num_rows())),
    )
    .map_err(|e| Error::Internal(format!("projecting buffered rows: {e}")))?;
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=numbers.len() {
        let cut = i == numbers.len()
            || numbers[i] != numbers[i - 1] + 1
            || snapshots.is_some_and(|s| s.separates(commands[i] as u32, commands[i - 1] as u32));
        if !cut {
            continue;
        }
        if numbers[start] < 0 {
            return Err(Error::Internal(format!("row number {}", numbers[start])));
        }
        runs.push(Run {
            first_row: numbers[start] as u64,
            command: commands[start..i]
                .iter()
                .map(|&c| c as u32)
                .max()
                .unwrap_or(0),
            batch: projected.slice(start, i - start),
        });
        start = i;
    }
    Ok(runs)
}

/// One part encoded from a run of buffered rows: the run's first row number and
/// command, and the part.
pub struct EncodedRun {
    pub first_row: u64,
    pub command: u32,
    pub part: crate::columnar::EncodedPart,
}

/// Runs of at least twice this many rows are encoded as two parts in parallel.
pub const SPLIT_ROWS: usize = 100_000;

/// Encodes buffered rows (`batches`, in the [`buffer_schema`] of `schema`) into parts,
/// one per run of [`plan_runs`]: pure Rust, runs on any thread. With `parallel`, a run of
/// at least twice [`SPLIT_ROWS`] is cut in two and the parts are encoded on two threads.
/// Once `cancel` is set no further part is begun (the result is then an error).
pub fn encode_runs(
    schema: &TableSchema,
    sort_key: &[usize],
    options: &crate::columnar::TableOptions,
    batches: &[RecordBatch],
    snapshots: Option<&SnapshotCommands>,
    parallel: bool,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Vec<EncodedRun>> {
    // The final flush of a load waits for its parts: two threads then use a second core
    // instead of leaving it idle. In the background a second thread would only take a
    // core from the backend, which is what a load waits for.
    let mut pieces = Vec::new();
    for run in plan_runs(schema, batches, snapshots)? {
        let rows = run.batch.num_rows();
        if parallel && rows >= 2 * SPLIT_ROWS {
            let mid = rows / 2;
            pieces.push((run.first_row, run.command, run.batch.slice(0, mid)));
            pieces.push((
                run.first_row + mid as u64,
                run.command,
                run.batch.slice(mid, rows - mid),
            ));
        } else {
            pieces.push((run.first_row, run.command, run.batch));
        }
    }
    let encode_one = |(first_row, command, batch): &(u64, u32, RecordBatch)| {
        if cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(Error::Internal("part encoding cancelled".into()));
        }
        Ok(EncodedRun {
            first_row: *first_row,
            command: *command,
            part: crate::columnar::encode_part(schema, batch, sort_key, options)?,
        })
    };
    if !parallel || pieces.len() < 2 {
        return pieces.iter().map(encode_one).collect();
    }
    let (left, right) = pieces.split_at(pieces.len() / 2);
    let (a, b) = std::thread::scope(|scope| {
        let helper = scope.spawn(|| right.iter().map(encode_one).collect::<Result<Vec<_>>>());
        let a = left.iter().map(encode_one).collect::<Result<Vec<_>>>();
        let b = helper
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the part encoder thread panicked".into())));
        (a, b)
    });
    let mut all = a?;
    all.extend(b?);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::{RowBuffer, Value};

    fn buffered(rows: &[(i32, i64, u32)]) -> RecordBatch {
        let table = TableSchema::new([("x", ColumnType::Int32)]);
        let mut buffer = RowBuffer::new(buffer_schema(&table));
        for &(x, n, c) in rows {
            buffer
                .push_row(&[Value::Int32(x), Value::Int64(n), Value::Int32(c as i32)])
                .unwrap();
        }
        buffer.take_batch().unwrap()
    }

    fn summary(runs: &[Run]) -> Vec<(u64, u32, Vec<i32>)> {
        runs.iter()
            .map(|r| {
                (
                    r.first_row,
                    r.command,
                    r.batch
                        .column(0)
                        .as_primitive::<Int32Type>()
                        .values()
                        .to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn rows_are_ordered_by_number_and_cut_at_gaps() {
        let table = TableSchema::new([("x", ColumnType::Int32)]);
        // Two batches (an outer level's and an inner one's), interleaved numbers, a gap
        // at 13 (a discarded savepoint), commands 5 and 7.
        let a = buffered(&[(10, 10, 5), (12, 12, 5), (15, 15, 7)]);
        let b = buffered(&[(11, 11, 5), (14, 14, 7), (16, 16, 7)]);
        let runs = plan_runs(&table, &[a.clone(), b.clone()], None).unwrap();
        assert_eq!(
            summary(&runs),
            vec![(10, 5, vec![10, 11, 12]), (14, 7, vec![14, 15, 16])]
        );
        assert_eq!(runs[0].batch.schema().fields().len(), 1);
        let c = buffered(&[(17, 17, 8)]);
        assert_eq!(
            summary(&plan_runs(&table, &[b, c.clone()], None).unwrap()),
            vec![(11, 5, vec![11]), (14, 7, vec![14]), (16, 8, vec![16, 17])]
        );
        let snapshots = |ids: &[u32]| {
            let mut s = SnapshotCommands::default();
            ids.iter().for_each(|&i| s.record(i));
            s
        };
        let rows = || [buffered(&[(16, 16, 7)]), c.clone()];
        // A snapshot at 8 sees command 7's row and not command 8's: two parts.
        assert_eq!(
            summary(&plan_runs(&table, &rows(), Some(&snapshots(&[3, 8]))).unwrap()),
            vec![(16, 7, vec![16]), (17, 8, vec![17])]
        );
        // Snapshots at 7 and 9 see both rows or neither: one part, stamped with the later.
        assert_eq!(
            summary(&plan_runs(&table, &rows(), Some(&snapshots(&[7, 9]))).unwrap()),
            vec![(16, 8, vec![16, 17])]
        );
        let mut overflowed = snapshots(&[]);
        overflowed.overflowed = true;
        assert_eq!(
            summary(&plan_runs(&table, &rows(), Some(&overflowed)).unwrap()),
            vec![(16, 7, vec![16]), (17, 8, vec![17])]
        );
        assert!(plan_runs(&table, &[], Some(&overflowed))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_table_without_columns_keeps_its_rows() {
        let table = TableSchema::new(Vec::<(String, ColumnType)>::new());
        let mut buffer = RowBuffer::new(buffer_schema(&table));
        for n in 0..3 {
            buffer
                .push_row(&[Value::Int64(n), Value::Int32(1)])
                .unwrap();
        }
        let runs = plan_runs(&table, &[buffer.take_batch().unwrap()], None).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].first_row, runs[0].batch.num_rows()), (0, 3));
        assert_eq!(runs[0].batch.num_columns(), 0);
        let part =
            crate::columnar::encode_part(&table, &runs[0].batch, &[], &Default::default()).unwrap();
        let reader = crate::columnar::PartReader::open(&table, part.bytes).unwrap();
        assert_eq!(reader.rows(), 3);
    }

    #[test]
    fn text_that_is_not_utf8_survives_buffering_sorting_and_parts() {
        let table = TableSchema::new([("s", ColumnType::Text)]);
        let schema = buffer_schema(&table);
        let batch = |rows: &[(&[u8], i64)]| {
            let mut raw = RowBuffer::new(schema.clone());
            for &(text, n) in rows {
                raw.push_bytes(text);
                raw.push_word(n as u64);
                raw.push_word(1);
                raw.end_row().unwrap();
            }
            raw.take_batch().unwrap()
        };
        // One batch is valid UTF-8, the next is not: they concatenate as bytes.
        let runs = plan_runs(
            &table,
            &[
                batch(&[(b"b", 0), (b"a", 1)]),
                batch(&[(&[0xff, 0x00], 2), (b"c", 3)]),
            ],
            None,
        )
        .unwrap();
        assert_eq!(runs.len(), 1);
        let part = crate::columnar::encode_part(&table, &runs[0].batch, &[0], &Default::default())
            .unwrap();
        let reader = crate::columnar::PartReader::open(&table, part.bytes).unwrap();
        let read = reader
            .read(&[0], &[0], 10)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let values: Vec<Vec<u8>> = (0..4)
            .map(
                |i| match crate::columnar::value_at(read.column(0), ColumnType::Text, i) {
                    Value::Bytes(b) => b.to_vec(),
                    v => panic!("{v:?}"),
                },
            )
            .collect();
        // Sorted by bytes, as Postgres's "C" order sorts them.
        assert_eq!(
            values,
            vec![
                b"a".to_vec(),
                b"b".to_vec(),
                b"c".to_vec(),
                vec![0xff, 0x00]
            ]
        );
        assert_eq!(part.granules.len(), 1);
    }

    #[test]
    fn live_snapshots_separate_commands_they_see_differently() {
        let mut s = SnapshotCommands::default();
        s.record(5);
        s.record(5);
        assert!(s.separates(4, 5) && s.separates(7, 2));
        assert!(!s.separates(5, 9) && !s.separates(1, 4) && !s.separates(5, 5));
        s.release(5);
        assert!(s.separates(4, 5), "one query still reads at 5");
        s.release(5);
        assert!(!s.separates(4, 5));
        s.record(5);
        s.clear();
        assert!(!s.separates(4, 5));
    }

    #[test]
    fn runs_encode_to_parts_alike_on_one_thread_or_two() {
        let table = TableSchema::new([("x", ColumnType::Int32)]);
        let options = crate::columnar::TableOptions::default();
        let n = 2 * SPLIT_ROWS + 10;
        // Rows 0..n (one run), then a gap and 5 more (a second run).
        let mut rows: Vec<(i32, i64, u32)> = (0..n as i64).map(|i| (i as i32, i, 1)).collect();
        rows.extend((0..5).map(|i| (i, n as i64 + 100 + i as i64, 1)));
        let batches = [buffered(&rows)];
        let summary = |parts: &[EncodedRun]| -> Vec<(u64, u64)> {
            parts.iter().map(|p| (p.first_row, p.part.rows)).collect()
        };
        let serial = encode_runs(&table, &[0], &options, &batches, None, false, None).unwrap();
        assert_eq!(summary(&serial), [(0, n as u64), (n as u64 + 100, 5)]);
        let parallel = encode_runs(&table, &[0], &options, &batches, None, true, None).unwrap();
        let half = (n / 2) as u64;
        assert_eq!(
            summary(&parallel),
            [(0, half), (half, n as u64 - half), (n as u64 + 100, 5)]
        );
        // Cancelled before it starts: no part, an error.
        let cancel = std::sync::atomic::AtomicBool::new(true);
        assert!(encode_runs(&table, &[0], &options, &batches, None, true, Some(&cancel)).is_err());
    }
}
