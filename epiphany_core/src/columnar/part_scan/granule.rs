//! One granule read column by column: the qual's conjuncts evaluated one at a time on
//! just their columns, then the hash key filter (`join_filter`) on its key columns, the
//! other columns decoded only where rows are left.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder};
use arrow_schema::{Field, Schema};
use arrow_select::filter::{FilterBuilder, FilterPredicate};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};

use super::PartScan;
use crate::columnar::part::plain_array;
use crate::columnar::part::PAGE_ROWS;
use crate::columnar::prune::GranuleStats;
use crate::columnar::qual::Qual;
use crate::columnar::stored::OpenPart;
use crate::error::{Error, Result};
use crate::storage::PageStore;

impl PartScan {
    /// Columns `columns` (positions in the part) of the rows of granule `g` that pass
    /// the qual; `None` when none does. `stats` are the granule's statistics, if read.
    /// Those of the scan's `coded` columns that the part stores dictionary-coded come as
    /// dictionary arrays.
    pub(super) fn granule(
        &mut self,
        store: &impl PageStore,
        part: &OpenPart,
        g: usize,
        stats: Option<&GranuleStats>,
        columns: &[usize],
    ) -> Result<Option<RecordBatch>> {
        let rows = part
            .reader
            .granule_len(g)
            .ok_or_else(|| Error::Corrupted(format!("granule {g} does not exist")))?
            as usize;
        let qual = match (&self.qual, stats) {
            (Some(q), Some(s)) => q.for_granule(s),
            (Some(q), None) => Some(q.clone()),
            (None, _) => None,
        };
        let conjuncts = match qual {
            None => Vec::new(),
            Some(Qual::And(qs)) => qs,
            Some(q) => vec![q],
        };
        // The columns decoded whole, for the qual.
        let mut decoded: Vec<(usize, ArrayRef)> = Vec::new();
        let mut mask: Option<BooleanBuffer> = None;
        for q in &conjuncts {
            decode_whole(store, part, g, q.columns(), &mut decoded)?;
            let arrays: Vec<ArrayRef> = decoded.iter().map(|(_, a)| a.clone()).collect();
            let truth = q.eval_arrays(&arrays, &|c| decoded.iter().position(|(d, _)| *d == c))?;
            let t = match mask {
                Some(m) => &m & &truth.t,
                None => truth.t,
            };
            let none_left = t.count_set_bits() == 0;
            mask = Some(t);
            if none_left {
                break;
            }
        }
        let none_left = mask.as_ref().is_some_and(|m| m.count_set_bits() == 0);
        if let Some(f) = self
            .join_filter
            .as_mut()
            .filter(|f| f.active() && !none_left)
        {
            decode_whole(store, part, g, f.columns(), &mut decoded)?;
            let arrays = f
                .columns()
                .iter()
                .map(|c| {
                    decoded
                        .iter()
                        .find(|(d, _)| d == c)
                        .map(|(_, a)| plain_array(a.clone()))
                        .expect("decoded above")
                })
                .collect::<Result<Vec<_>>>()?;
            let t = f.eval(&arrays.iter().collect::<Vec<_>>())?;
            mask = Some(match mask {
                Some(m) => &m & &t,
                None => t,
            });
        }
        let kept = mask.as_ref().map_or(rows, BooleanBuffer::count_set_bits);
        self.filtered += (rows - kept) as u64;
        if kept == 0 {
            return Ok(None);
        }
        let mask = mask.filter(|_| kept < rows);
        // Coded columns are decoded whole: codes are cheap, and filtered like the qual's.
        let coded = &self.coded;
        let wanted: Vec<usize> = coded
            .iter()
            .copied()
            .filter(|c| columns.contains(c))
            .collect();
        decode_whole(store, part, g, wanted, &mut decoded)?;
        let rest: Vec<usize> = columns
            .iter()
            .copied()
            .filter(|c| !decoded.iter().any(|(d, _)| d == c))
            .collect();
        let mut rest_filter = None;
        let rest_arrays = if rest.is_empty() {
            Vec::new()
        } else {
            part.fetch_from(store, &rest, &[g])?;
            match &mask {
                None => part.reader.read_granule(&rest, g, None)?,
                Some(m) => {
                    let (selection, selected) = page_selection(m);
                    rest_filter = Some(predicate(&selected));
                    part.reader.read_granule(&rest, g, selection.as_ref())?
                }
            }
        };
        let full_filter = mask.as_ref().map(predicate);
        let apply = |f: &Option<FilterPredicate>, a: &ArrayRef| -> Result<ArrayRef> {
            match f {
                None => Ok(a.clone()),
                Some(f) => f
                    .filter(a.as_ref())
                    .map_err(|e| Error::Internal(format!("filtering a granule: {e}"))),
            }
        };
        let out = columns
            .iter()
            .map(|c| match decoded.iter().find(|(d, _)| d == c) {
                Some((_, a)) if coded.contains(c) => apply(&full_filter, a),
                Some((_, a)) => apply(&full_filter, a).and_then(plain_array),
                None => {
                    let k = rest.iter().position(|r| r == c).expect("listed in rest");
                    apply(&rest_filter, &rest_arrays[k])
                }
            })
            .collect::<Result<Vec<_>>>()?;
        batch_of(columns, out, kept).map(Some)
    }
}

/// Decodes whole, into `decoded`, those of `columns` of granule `g` not decoded yet
/// (text as dictionary arrays where its pages are dictionary-coded).
fn decode_whole(
    store: &impl PageStore,
    part: &OpenPart,
    g: usize,
    columns: Vec<usize>,
    decoded: &mut Vec<(usize, ArrayRef)>,
) -> Result<()> {
    let need: Vec<usize> = columns
        .into_iter()
        .filter(|c| !decoded.iter().any(|(d, _)| d == c))
        .collect();
    if !need.is_empty() {
        part.fetch_from(store, &need, &[g])?;
        let arrays = part.reader.read_granule_coded(&need, g)?;
        decoded.extend(need.into_iter().zip(arrays));
    }
    Ok(())
}

fn predicate(mask: &BooleanBuffer) -> FilterPredicate {
    FilterBuilder::new(&BooleanArray::new(mask.clone(), None))
        .optimize()
        .build()
}

/// The pages (runs of `PAGE_ROWS` rows, as parts are written) holding a row `mask`
/// keeps, as a row selection — `None` when every page does — and `mask` over the rows
/// selected.
fn page_selection(mask: &BooleanBuffer) -> (Option<RowSelection>, BooleanBuffer) {
    let rows = mask.len();
    let mut selectors: Vec<RowSelector> = Vec::new();
    let mut selected = BooleanBufferBuilder::new(rows);
    let mut push = |select: bool, n: usize| match selectors.last_mut() {
        Some(last) if last.skip != select => last.row_count += n,
        _ => selectors.push(if select {
            RowSelector::select(n)
        } else {
            RowSelector::skip(n)
        }),
    };
    let mut from = 0;
    while from < rows {
        let n = PAGE_ROWS.min(rows - from);
        let page = mask.slice(from, n);
        let any = page.count_set_bits() > 0;
        if any {
            selected.append_buffer(&page);
        }
        push(any, n);
        from += n;
    }
    if selectors.len() == 1 && !selectors[0].skip {
        return (None, mask.clone());
    }
    (Some(RowSelection::from(selectors)), selected.finish())
}

/// A batch of `arrays` (part columns `columns`) of `rows` rows.
fn batch_of(columns: &[usize], arrays: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .zip(&arrays)
        .map(|(c, a)| Field::new(format!("c{c}"), a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| Error::Internal(format!("assembling a granule's batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_selection_keeps_the_pages_holding_a_row() {
        let rows = PAGE_ROWS * 3 + 10;
        // Rows kept: one in page 0, none in page 1, two in page 2, none in the tail.
        let keep = [5, PAGE_ROWS * 2 + 1, PAGE_ROWS * 2 + 7];
        let mask = BooleanBuffer::from_iter((0..rows).map(|r| keep.contains(&r)));
        let (selection, selected) = page_selection(&mask);
        let selectors: Vec<RowSelector> = selection.unwrap().into();
        assert_eq!(
            selectors,
            vec![
                RowSelector::select(PAGE_ROWS),
                RowSelector::skip(PAGE_ROWS),
                RowSelector::select(PAGE_ROWS),
                RowSelector::skip(10),
            ]
        );
        assert_eq!(selected.len(), 2 * PAGE_ROWS);
        let at: Vec<usize> = selected.set_indices().collect();
        assert_eq!(at, vec![5, PAGE_ROWS + 1, PAGE_ROWS + 7]);
        // Every page holding a row: no selection.
        let dense = BooleanBuffer::from_iter((0..rows).map(|r| r % 10 == 0));
        assert!(page_selection(&dense).0.is_none());
    }
}
