//! Checking parts against what the catalog says about them (`epiphany.verify_table`).
//!
//! Every problem becomes one line of text; a healthy part yields none. The checks decode
//! everything, so they find what a scan would trip over — and what a scan would never
//! notice, such as a broken row-number permutation that only fetches by TID use.

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use bytes::Bytes;

use crate::columnar::part::PartReader;
use crate::columnar::scan_plan::decode_stats;
use crate::columnar::types::TableSchema;

/// What the catalog records about one part, for the checks.
#[derive(Debug, Clone, Copy)]
pub struct CatalogPart {
    pub part_id: u64,
    pub first_row: u64,
    pub rows: u64,
}

/// Problems of one part's bytes, given its catalog row and summary.
pub fn check_part(
    schema: &TableSchema,
    part: CatalogPart,
    bytes: Bytes,
    stats: &[u8],
) -> Vec<String> {
    let mut problems = Vec::new();
    match decode_stats(stats) {
        Ok(s) if s.rows != part.rows => problems.push(format!(
            "catalog summary counts {} rows, the catalog row {}",
            s.rows, part.rows
        )),
        Ok(s) if s.columns.len() != schema.columns.len() => problems.push(format!(
            "catalog summary has {} columns, the table {}",
            s.columns.len(),
            schema.columns.len()
        )),
        Ok(_) => {}
        Err(e) => problems.push(e.to_string()),
    }
    let reader = match PartReader::open(schema, bytes) {
        Ok(r) => r,
        Err(e) => {
            problems.push(e.to_string());
            return problems;
        }
    };
    if reader.rows() != part.rows {
        problems.push(format!(
            "part holds {} rows, the catalog says {}",
            reader.rows(),
            part.rows
        ));
        return problems;
    }
    let mut columns: Vec<usize> = (0..schema.columns.len()).collect();
    columns.extend([reader.row_column(), reader.pos_column()]);
    let granules: Vec<usize> = (0..reader.granules()).collect();
    let mut row_at: Vec<u32> = Vec::with_capacity(part.rows as usize);
    let mut pos_of: Vec<u32> = Vec::with_capacity(part.rows as usize);
    match reader.read(&columns, &granules, 8192) {
        Ok(batches) => {
            for batch in batches {
                match batch {
                    Ok(b) => {
                        let n = schema.columns.len();
                        row_at.extend(b.column(n).as_primitive::<UInt32Type>().values().iter());
                        pos_of.extend(b.column(n + 1).as_primitive::<UInt32Type>().values().iter());
                    }
                    Err(e) => {
                        problems.push(e.to_string());
                        return problems;
                    }
                }
            }
        }
        Err(e) => {
            problems.push(e.to_string());
            return problems;
        }
    }
    let n = row_at.len();
    let broken = row_at.iter().enumerate().find(|&(pos, &row)| {
        (row as usize) >= n || pos_of.get(row as usize).is_none_or(|&p| p as usize != pos)
    });
    if let Some((pos, row)) = broken {
        problems.push(format!(
            "row numbers are not a permutation: position {pos} holds row offset {row}"
        ));
    }
    problems
}

/// Parts whose row-number ranges overlap (`parts` in any order).
pub fn check_ranges(parts: &[CatalogPart]) -> Vec<(u64, String)> {
    let mut sorted: Vec<&CatalogPart> = parts.iter().collect();
    sorted.sort_by_key(|p| p.first_row);
    sorted
        .windows(2)
        .filter(|w| w[0].first_row + w[0].rows > w[1].first_row)
        .map(|w| {
            (
                w[1].part_id,
                format!(
                    "rows {}.. overlap part {} (rows {}..{})",
                    w[1].first_row,
                    w[0].part_id,
                    w[0].first_row,
                    w[0].first_row + w[0].rows
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::scan_plan::{encode_stats, summarize};
    use crate::columnar::types::{ColumnType, Value};
    use crate::columnar::{encode_part, RowBuffer, TableOptions};

    fn part() -> (TableSchema, crate::columnar::EncodedPart) {
        let schema = TableSchema::new([("a", ColumnType::Int64), ("b", ColumnType::Text)]);
        let mut buffer = RowBuffer::new(schema.clone());
        for i in 0..500i64 {
            let s = format!("v{}", (i * 37) % 101);
            buffer
                .push_row(&[Value::Int64(i), Value::Text(&s)])
                .unwrap();
        }
        let options = TableOptions::parse([("order_by", "b"), ("granule_rows", "64")]).unwrap();
        let part = encode_part(&schema, &buffer.take_batch().unwrap(), &[1], &options).unwrap();
        (schema, part)
    }

    #[test]
    fn a_healthy_part_has_no_problems_and_damage_is_named() {
        let (schema, part) = part();
        let stats = encode_stats(&summarize(&part.granules));
        let cat = CatalogPart {
            part_id: 7,
            first_row: 0,
            rows: 500,
        };
        assert!(check_part(&schema, cat, part.bytes.clone(), &stats).is_empty());
        let wrong_rows = CatalogPart { rows: 499, ..cat };
        let problems = check_part(&schema, wrong_rows, part.bytes.clone(), &stats);
        assert!(
            problems.iter().any(|p| p.contains("the catalog says 499")),
            "{problems:?}"
        );
        assert!(!check_part(&schema, cat, part.bytes.slice(..100), &stats).is_empty());
        assert!(!check_part(&schema, cat, part.bytes.clone(), &stats[..3]).is_empty());
    }

    #[test]
    fn overlapping_ranges_are_found() {
        let p = |id, first_row, rows| CatalogPart {
            part_id: id,
            first_row,
            rows,
        };
        assert!(check_ranges(&[p(1, 0, 10), p(2, 10, 5), p(3, 100, 1)]).is_empty());
        let found = check_ranges(&[p(2, 10, 5), p(1, 0, 11)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 2);
    }
}
