//! Blocks of a columnar table, for ANALYZE and TABLESAMPLE.
//!
//! Both sample by block. A columnar table has no heap blocks, so block `b` of `n` stands
//! for the rows `b * total / n .. (b + 1) * total / n` of the table, counted in stored
//! order across its parts (in catalog order): every row is in exactly one block, and
//! blocks differ in size by at most one row, so sampling blocks samples rows evenly.

/// The rows of block `block` of `nblocks` over parts holding `part_rows` rows each:
/// (part index, first stored position, end position) per part it touches, in order.
pub fn block_ranges(part_rows: &[u64], block: u32, nblocks: u32) -> Vec<(usize, u64, u64)> {
    let total: u64 = part_rows.iter().sum();
    let n = u128::from(nblocks.max(1));
    let start = (u128::from(block) * u128::from(total) / n) as u64;
    let end = ((u128::from(block) + 1) * u128::from(total) / n) as u64;
    let mut ranges = Vec::new();
    let mut base = 0u64;
    for (i, &rows) in part_rows.iter().enumerate() {
        let (lo, hi) = (base, base + rows);
        let (s, e) = (start.max(lo), end.min(hi));
        if s < e {
            ranges.push((i, s - lo, e - lo));
        }
        base = hi;
    }
    ranges
}

/// Rows in a block's ranges.
pub fn rows_in(ranges: &[(usize, u64, u64)]) -> u64 {
    ranges.iter().map(|r| r.2 - r.1).sum()
}

/// Row `offset` (1-based, as TABLESAMPLE numbers rows in a block) of a block's ranges:
/// (part index, stored position), or `None` past its rows.
pub fn nth_row(ranges: &[(usize, u64, u64)], offset: u64) -> Option<(usize, u64)> {
    let mut skip = offset.checked_sub(1)?;
    for &(part, start, end) in ranges {
        if skip < end - start {
            return Some((part, start + skip));
        }
        skip -= end - start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blocks_cut_across_parts() {
        // 10 rows in parts of 3, 0 and 7; 3 blocks of 3, 3 and 4 rows.
        let parts = [3, 0, 7];
        assert_eq!(block_ranges(&parts, 0, 3), [(0, 0, 3)]);
        assert_eq!(block_ranges(&parts, 1, 3), [(2, 0, 3)]);
        assert_eq!(block_ranges(&parts, 2, 3), [(2, 3, 7)]);
        assert_eq!(block_ranges(&parts, 3, 3), []);
        assert_eq!(nth_row(&block_ranges(&parts, 2, 3), 2), Some((2, 4)));
        assert_eq!(nth_row(&block_ranges(&parts, 2, 3), 0), None);
        assert_eq!(nth_row(&block_ranges(&parts, 2, 3), 5), None);
    }

    proptest! {
        /// Every row is in exactly one block, blocks in order, sizes within one row of
        /// each other; a block's numbered rows are its ranges' rows in order.
        #[test]
        fn blocks_cover_every_row_once(
            parts in proptest::collection::vec(0u64..2000, 0..12),
            nblocks in 1u32..400,
        ) {
            let total: u64 = parts.iter().sum();
            let mut seen = Vec::new();
            let (mut smallest, mut largest) = (u64::MAX, 0);
            for b in 0..nblocks {
                let ranges = block_ranges(&parts, b, nblocks);
                let n = rows_in(&ranges);
                smallest = smallest.min(n);
                largest = largest.max(n);
                for (k, &(part, start, end)) in ranges.iter().enumerate() {
                    prop_assert!(start < end && end <= parts[part]);
                    if k > 0 {
                        prop_assert!(part > ranges[k - 1].0);
                    }
                    seen.extend((start..end).map(|pos| (part, pos)));
                }
                let numbered: Vec<(usize, u64)> =
                    (1..=n).map(|o| nth_row(&ranges, o).unwrap()).collect();
                prop_assert_eq!(&numbered[..], &seen[seen.len() - n as usize..]);
                prop_assert_eq!(nth_row(&ranges, n + 1), None);
            }
            let all: Vec<(usize, u64)> = parts
                .iter()
                .enumerate()
                .flat_map(|(i, &rows)| (0..rows).map(move |pos| (i, pos)))
                .collect();
            prop_assert_eq!(seen, all);
            if total > 0 {
                prop_assert!(largest - smallest <= 1);
            }
        }
    }
}
