//! Rows a transaction has inserted but not yet written into parts, per table and per
//! subtransaction.
//!
//! Rows inserted in a subtransaction belong to it: `ROLLBACK TO SAVEPOINT` discards them,
//! `RELEASE` hands them to the parent. Rows are flushed into a part at pre-commit, or
//! earlier when the transaction reads the table or the buffer grows large; the part's
//! catalog row is then inserted by the *current* subtransaction. If that subtransaction
//! later aborts, the part vanishes with it, so rows it took from outer levels must not be
//! lost: they stay here, retained, until the part's inserting level has merged down into
//! theirs, and go back to pending if it aborts first.
//!
//! Subtransaction ids grow with nesting, as Postgres's `SubTransactionId`s do.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::columnar::buffer::{RawRows, RowBuffer};
use crate::columnar::types::{TableSchema, Value};
use crate::error::Result;

pub type SubXactId = u32;
pub type TableId = u32;

/// Rows sealed out of a buffer; shared (not copied) with a thread encoding them.
pub type Batch = Arc<RawRows>;

#[derive(Default)]
struct Pending {
    batches: Vec<Batch>,
    buffer: Option<RowBuffer>,
}

impl Pending {
    fn seal(&mut self, spare: Option<RawRows>) {
        if let Some(buffer) = self.buffer.as_mut().filter(|b| !b.is_empty()) {
            self.batches.push(Arc::new(buffer.take_rows(spare)));
        }
    }

    fn take(&mut self) -> Vec<Batch> {
        self.seal(None);
        std::mem::take(&mut self.batches)
    }

    fn bytes(&self) -> usize {
        self.batches.iter().map(|b| b.memory_bytes()).sum::<usize>()
            + self.buffer.as_ref().map_or(0, |b| b.memory_bytes())
    }

    fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.rows()).sum::<usize>()
            + self.buffer.as_ref().map_or(0, |b| b.rows())
    }
}

/// Rows flushed into a part by one level that belong to an outer level.
struct Retained {
    owner: SubXactId,
    table: TableId,
    batches: Vec<Batch>,
}

#[derive(Default)]
struct Level {
    pending: BTreeMap<TableId, Pending>,
    /// Outer levels' rows in parts this level inserted.
    retained: Vec<Retained>,
}

#[derive(Default)]
pub struct WriteSet {
    levels: BTreeMap<SubXactId, Level>,
    /// Memory of batches written out, for buffers to reuse.
    spare: Option<RawRows>,
}

impl WriteSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.levels
            .values()
            .all(|l| l.pending.values().all(|p| p.rows() == 0) && l.retained.is_empty())
    }

    /// The buffer rows `table` gets from subtransaction `level` are appended to
    /// (`schema` makes it when there is none yet).
    pub fn buffer(
        &mut self,
        level: SubXactId,
        table: TableId,
        schema: &TableSchema,
    ) -> &mut RowBuffer {
        self.levels
            .entry(level)
            .or_default()
            .pending
            .entry(table)
            .or_default()
            .buffer
            .get_or_insert_with(|| RowBuffer::new(schema.clone()))
    }

    /// Buffers one row for `table`, inserted by subtransaction `level`.
    pub fn insert(
        &mut self,
        level: SubXactId,
        table: TableId,
        schema: &TableSchema,
        row: &[Value<'_>],
    ) -> Result<()> {
        self.buffer(level, table, schema).push_row(row)
    }

    /// Rows of `table` waiting to be flushed, across all levels.
    pub fn pending_rows(&self, table: TableId) -> usize {
        self.levels
            .values()
            .filter_map(|l| l.pending.get(&table))
            .map(Pending::rows)
            .sum()
    }

    /// Approximate memory of the rows of `table` waiting to be flushed.
    pub fn pending_bytes(&self, table: TableId) -> usize {
        self.levels
            .values()
            .filter_map(|l| l.pending.get(&table))
            .map(Pending::bytes)
            .sum()
    }

    /// Tables with rows waiting to be flushed.
    pub fn pending_tables(&self) -> Vec<TableId> {
        let mut tables: Vec<TableId> = self
            .levels
            .values()
            .flat_map(|l| {
                l.pending
                    .iter()
                    .filter(|(_, p)| p.rows() > 0)
                    .map(|(t, _)| *t)
            })
            .collect();
        tables.sort_unstable();
        tables.dedup();
        tables
    }

    /// Takes every pending row of `table` for a part that subtransaction `current` (the
    /// innermost one) is about to insert.
    pub fn take_for_flush(&mut self, current: SubXactId, table: TableId) -> Vec<Batch> {
        let mut all = Vec::new();
        let mut retained = Vec::new();
        for (&level, state) in self.levels.range_mut(..=current) {
            let Some(pending) = state.pending.get_mut(&table) else {
                continue;
            };
            let batches = pending.take();
            if batches.is_empty() {
                continue;
            }
            if level != current {
                retained.push(Retained {
                    owner: level,
                    table,
                    batches: batches.clone(),
                });
            }
            all.extend(batches);
        }
        if !retained.is_empty() {
            self.levels
                .entry(current)
                .or_default()
                .retained
                .extend(retained);
        }
        all
    }

    /// `RELEASE SAVEPOINT` (or the end of a subtransaction that succeeded).
    pub fn subxact_commit(&mut self, sub: SubXactId, parent: SubXactId) {
        let Some(child) = self.levels.remove(&sub) else {
            return;
        };
        let target = self.levels.entry(parent).or_default();
        for (table, mut pending) in child.pending {
            let batches = pending.take();
            if !batches.is_empty() {
                target
                    .pending
                    .entry(table)
                    .or_default()
                    .batches
                    .extend(batches);
            }
        }
        // Parts this child inserted now live or die with the parent; rows of the parent's
        // own level in them need no copy any more.
        target
            .retained
            .extend(child.retained.into_iter().filter(|r| r.owner != parent));
    }

    /// `ROLLBACK TO SAVEPOINT` (or a subtransaction that failed): its rows are gone, and
    /// outer rows in parts it inserted are pending again.
    pub fn subxact_abort(&mut self, sub: SubXactId) {
        let aborted: Vec<SubXactId> = self.levels.range(sub..).map(|(&id, _)| id).collect();
        for id in aborted {
            let level = self.levels.remove(&id).expect("listed");
            for r in level.retained {
                if r.owner < sub {
                    let pending = self
                        .levels
                        .entry(r.owner)
                        .or_default()
                        .pending
                        .entry(r.table)
                        .or_default();
                    pending.batches.extend(r.batches);
                }
            }
        }
    }

    /// Seals what `level` buffered for `table` into a batch and returns (cheap, shared)
    /// clones of all its sealed batches: rows that can be encoded elsewhere while new
    /// rows keep arriving. The rows stay pending; see [`WriteSet::take_sealed`].
    pub fn seal(&mut self, level: SubXactId, table: TableId) -> Vec<Batch> {
        let Some(pending) = self
            .levels
            .get_mut(&level)
            .and_then(|l| l.pending.get_mut(&table))
        else {
            return Vec::new();
        };
        pending.seal(self.spare.take());
        pending.batches.clone()
    }

    /// Takes the sealed batches `expected` of (`level`, `table`) out, if they are still
    /// exactly the first sealed batches there; false (and nothing changes) otherwise.
    /// The memory of taken batches no one else holds is kept for new rows.
    pub fn take_sealed(&mut self, level: SubXactId, table: TableId, expected: Vec<Batch>) -> bool {
        let Some(pending) = self
            .levels
            .get_mut(&level)
            .and_then(|l| l.pending.get_mut(&table))
        else {
            return false;
        };
        let same = expected.len() <= pending.batches.len()
            && expected
                .iter()
                .zip(&pending.batches)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            let n = expected.len();
            drop(expected);
            for batch in pending.batches.drain(..n) {
                if let Ok(rows) = Arc::try_unwrap(batch) {
                    if self
                        .spare
                        .as_ref()
                        .is_none_or(|s| s.capacity() < rows.capacity())
                    {
                        self.spare = Some(rows);
                    }
                }
            }
        }
        same
    }

    /// The end of the top-level transaction, committed (after the pre-commit flush) or not.
    pub fn clear(&mut self) {
        self.levels.clear();
        self.spare = None;
    }
}

#[cfg(test)]
mod sealing_tests {
    use super::*;
    use crate::columnar::types::{ColumnType, TableSchema, Value};

    #[test]
    fn sealed_rows_are_taken_only_while_unchanged() {
        let schema = TableSchema::new([("x", ColumnType::Int32)]);
        let mut ws = WriteSet::new();
        for i in 0..3 {
            ws.insert(1, 7, &schema, &[Value::Int32(i)]).unwrap();
        }
        let sealed = ws.seal(1, 7);
        assert_eq!(sealed.iter().map(|b| b.rows()).sum::<usize>(), 3);
        // New rows arrive while the sealed ones are encoded elsewhere.
        ws.insert(1, 7, &schema, &[Value::Int32(9)]).unwrap();
        assert_eq!(ws.pending_rows(7), 4);
        assert!(ws.take_sealed(1, 7, sealed.clone()));
        assert_eq!(ws.pending_rows(7), 1);
        assert!(!ws.take_sealed(1, 7, sealed), "already taken");
        // A subtransaction that commits moves its rows: a stale seal no longer matches.
        ws.insert(2, 7, &schema, &[Value::Int32(5)]).unwrap();
        let inner = ws.seal(2, 7);
        ws.subxact_commit(2, 1);
        assert!(!ws.take_sealed(2, 7, inner));
        assert_eq!(ws.pending_rows(7), 2);
        assert!(ws.seal(3, 7).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::part::value_at;
    use crate::columnar::types::ColumnType;

    const T: TableId = 100;
    const TOP: SubXactId = 1;

    fn schema() -> TableSchema {
        TableSchema::new([("v", ColumnType::Int64)])
    }

    fn put(ws: &mut WriteSet, level: SubXactId, v: i64) {
        ws.insert(level, T, &schema(), &[Value::Int64(v)]).unwrap();
    }

    fn values(batches: &[Batch]) -> Vec<i64> {
        let mut out = Vec::new();
        for b in batches {
            let b = b.to_batch(&schema()).unwrap();
            for r in 0..b.num_rows() {
                if let Value::Int64(v) = value_at(b.column(0), ColumnType::Int64, r) {
                    out.push(v);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn savepoints_keep_or_discard_their_rows() {
        let mut ws = WriteSet::new();
        put(&mut ws, TOP, 1);
        put(&mut ws, 2, 2); // SAVEPOINT a
        put(&mut ws, 3, 3); // SAVEPOINT b
        ws.subxact_abort(3); // ROLLBACK TO b
        put(&mut ws, 4, 4); // SAVEPOINT b again
        ws.subxact_commit(4, 2); // RELEASE b
        ws.subxact_commit(2, TOP); // RELEASE a
        assert_eq!(ws.pending_rows(T), 3);
        assert_eq!(ws.pending_tables(), vec![T]);
        assert_eq!(values(&ws.take_for_flush(TOP, T)), vec![1, 2, 4]);
        assert!(ws.is_empty());
    }

    #[test]
    fn aborting_an_outer_savepoint_discards_inner_levels_too() {
        let mut ws = WriteSet::new();
        put(&mut ws, TOP, 1);
        put(&mut ws, 2, 2);
        put(&mut ws, 3, 3);
        ws.subxact_abort(2);
        assert_eq!(values(&ws.take_for_flush(TOP, T)), vec![1]);
    }

    #[test]
    fn rows_flushed_by_an_aborted_subtransaction_come_back() {
        let mut ws = WriteSet::new();
        put(&mut ws, TOP, 1);
        put(&mut ws, 2, 2);
        // Inside subtransaction 3 the table is read: everything is flushed into a part
        // that subtransaction 3 inserts.
        put(&mut ws, 3, 3);
        assert_eq!(values(&ws.take_for_flush(3, T)), vec![1, 2, 3]);
        assert_eq!(ws.pending_rows(T), 0);
        // 3 aborts: its part is gone, its own row with it; the outer rows are pending again.
        ws.subxact_abort(3);
        assert_eq!(ws.pending_rows(T), 2);
        // Back in subtransaction 2, a read flushes both again.
        assert_eq!(values(&ws.take_for_flush(2, T)), vec![1, 2]);
    }

    #[test]
    fn retained_rows_are_dropped_once_their_part_reaches_their_level() {
        let mut ws = WriteSet::new();
        put(&mut ws, TOP, 1);
        put(&mut ws, 2, 2);
        put(&mut ws, 3, 3);
        assert_eq!(values(&ws.take_for_flush(3, T)), vec![1, 2, 3]);
        ws.subxact_commit(3, 2); // the part now lives or dies with 2; row 1 still retained
        ws.subxact_abort(2); // the part is gone: row 1 (top level) is pending again, 2 and 3 are not
        assert_eq!(values(&ws.take_for_flush(TOP, T)), vec![1]);
        assert!(ws.is_empty());

        let mut ws = WriteSet::new();
        put(&mut ws, TOP, 1);
        put(&mut ws, 2, 2);
        assert_eq!(values(&ws.take_for_flush(2, T)), vec![1, 2]);
        ws.subxact_commit(2, TOP);
        assert!(
            ws.is_empty(),
            "the part belongs to the top level now: no copies kept"
        );
    }
}
