//! Turning a transaction's buffered rows into parts.
//!
//! Every buffered row carries the row number it was given at insert (its TID, already in
//! the indexes) and the command that inserted it. A part owns a contiguous range of row
//! numbers, so the rows are ordered by number and cut wherever the numbers jump (another
//! backend's reservation, or rows discarded by `ROLLBACK TO SAVEPOINT`). A flush in the
//! middle of a transaction also cuts where the command changes: the part's catalog row
//! is stamped with its rows' command id, so a cursor opened between two commands sees
//! exactly the rows inserted before it.

use std::sync::Arc;

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

/// Rows for one part: the table's columns, row `i` being row number `first_row + i`.
#[derive(Debug)]
pub struct Run {
    pub first_row: u64,
    /// The latest command among the rows.
    pub command: u32,
    pub batch: RecordBatch,
}

/// Orders buffered `batches` (in [`buffer_schema`]) by row number and cuts them into
/// runs of consecutive numbers, and, with `split_from = Some(c)`, where the command
/// changes — except between two commands that are both below `c` (no snapshot that
/// could still read the table sits between them).
pub fn plan_runs(
    table: &TableSchema,
    batches: &[RecordBatch],
    split_from: Option<u32>,
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
        arrow_select::concat::concat_batches(&first.schema(), batches)
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
    let user: SchemaRef = Arc::new(table.arrow_schema().as_ref().clone());
    let projected = all
        .project(&(0..columns).collect::<Vec<_>>())
        .map_err(|e| Error::Internal(format!("projecting buffered rows: {e}")))?;
    let projected = RecordBatch::try_new(user, projected.columns().to_vec())
        .map_err(|e| Error::Internal(format!("projecting buffered rows: {e}")))?;
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=numbers.len() {
        let cut = i == numbers.len()
            || numbers[i] != numbers[i - 1] + 1
            || split_from.is_some_and(|c| {
                commands[i] != commands[i - 1]
                    && !((commands[i] as u32) < c && (commands[i - 1] as u32) < c)
            });
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
        assert_eq!(
            summary(&plan_runs(&table, &[buffered(&[(16, 16, 7)]), c.clone()], Some(0)).unwrap()),
            vec![(16, 7, vec![16]), (17, 8, vec![17])]
        );
        // Commands 7 and 8 are both below 9: one part, stamped with the later one.
        assert_eq!(
            summary(&plan_runs(&table, &[buffered(&[(16, 16, 7)]), c.clone()], Some(9)).unwrap()),
            vec![(16, 8, vec![16, 17])]
        );
        assert_eq!(
            summary(&plan_runs(&table, &[buffered(&[(16, 16, 7)]), c], Some(8)).unwrap()),
            vec![(16, 7, vec![16]), (17, 8, vec![17])]
        );
        assert!(plan_runs(&table, &[], Some(0)).unwrap().is_empty());
    }
}
