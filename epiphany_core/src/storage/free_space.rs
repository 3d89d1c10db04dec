//! Pages no part uses, and handing them out again.
//!
//! Parts are written into pages before their transaction commits; when it aborts (or
//! the server crashes first) the pages hold bytes no committed catalog row points at.
//! VACUUM finds them — every block past the metapage that no live part's extent covers —
//! and keeps them as a [`FreeList`] on the metapage: the next writes take them first
//! (first fit), and a free run at the end of the relation is cut off instead. Computing
//! the list from scratch each time means nothing is lost for good when the list is full
//! or a crash loses an update: the next VACUUM finds the same pages again.

use crate::storage::BlockNumber;

/// A run of consecutive free blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeRun {
    pub first: BlockNumber,
    pub pages: u32,
}

impl FreeRun {
    pub fn end(&self) -> u64 {
        u64::from(self.first) + u64::from(self.pages)
    }
}

/// Runs the metapage keeps (8 bytes each); past that, the largest are kept.
pub const MAX_RUNS: usize = 480;

/// The blocks in `1..nblocks` (block 0 is the metapage) that none of `used` covers, as
/// runs in block order. `used` are (first block, pages) of live extents, in any order;
/// parts past `nblocks` (impossible unless damaged) are ignored.
pub fn unused(nblocks: BlockNumber, used: &[(BlockNumber, u32)]) -> Vec<FreeRun> {
    let mut used: Vec<(u64, u64)> = used
        .iter()
        .map(|&(first, pages)| (u64::from(first), u64::from(first) + u64::from(pages)))
        .collect();
    used.sort_unstable();
    let mut free = Vec::new();
    let mut next = 1u64;
    let end = u64::from(nblocks);
    for (first, last) in used {
        if first > next && next < end {
            let stop = first.min(end);
            free.push(FreeRun {
                first: next as BlockNumber,
                pages: (stop - next) as u32,
            });
        }
        next = next.max(last);
    }
    if next < end {
        free.push(FreeRun {
            first: next as BlockNumber,
            pages: (end - next) as u32,
        });
    }
    free
}

/// Free runs, in block order, at most [`MAX_RUNS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeList {
    runs: Vec<FreeRun>,
}

impl FreeList {
    /// The list of `runs` (from [`unused`]); past [`MAX_RUNS`] the largest are kept.
    pub fn new(mut runs: Vec<FreeRun>) -> Self {
        runs.retain(|r| r.pages > 0);
        if runs.len() > MAX_RUNS {
            runs.sort_by_key(|r| std::cmp::Reverse(r.pages));
            runs.truncate(MAX_RUNS);
        }
        runs.sort_by_key(|r| r.first);
        FreeList { runs }
    }

    pub fn runs(&self) -> &[FreeRun] {
        &self.runs
    }

    pub fn pages(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.pages)).sum()
    }

    /// `pages` consecutive free blocks, taken off the list (the first run that is large
    /// enough); `None` when none is.
    pub fn allocate(&mut self, pages: u32) -> Option<BlockNumber> {
        let i = self.runs.iter().position(|r| r.pages >= pages)?;
        let run = &mut self.runs[i];
        let first = run.first;
        run.first += pages;
        run.pages -= pages;
        if run.pages == 0 {
            self.runs.remove(i);
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(first: u32, pages: u32) -> FreeRun {
        FreeRun { first, pages }
    }

    #[test]
    fn unused_blocks_are_the_gaps_between_live_extents() {
        assert_eq!(unused(1, &[]), vec![]);
        assert_eq!(unused(10, &[]), vec![run(1, 9)]);
        assert_eq!(unused(10, &[(1, 3), (6, 2)]), vec![run(4, 2), run(8, 2)]);
        assert_eq!(unused(10, &[(6, 4), (1, 5)]), vec![]);
        // Overlaps (damage) and extents past the end never produce bad runs.
        assert_eq!(
            unused(10, &[(2, 4), (3, 1), (8, 10)]),
            vec![run(1, 1), run(6, 2)]
        );
    }

    #[test]
    fn allocation_takes_the_first_run_that_fits() {
        let mut list = FreeList::new(vec![run(4, 2), run(8, 5), run(20, 1)]);
        assert_eq!(list.allocate(3), Some(8));
        assert_eq!(list.allocate(2), Some(4));
        assert_eq!(list.allocate(2), Some(11));
        assert_eq!(list.allocate(2), None);
        assert_eq!(list.allocate(1), Some(20));
        assert_eq!(list.runs(), &[]);
    }

    #[test]
    fn a_long_list_keeps_its_largest_runs() {
        let runs: Vec<FreeRun> = (0..1000).map(|i| run(1 + i * 10, 1 + i % 7)).collect();
        let list = FreeList::new(runs);
        assert_eq!(list.runs().len(), MAX_RUNS);
        assert!(list.runs().windows(2).all(|w| w[0].first < w[1].first));
        assert!(list.runs().iter().all(|r| r.pages >= 4));
    }

    proptest! {
        /// Free runs and live extents never overlap, and together cover every block.
        #[test]
        fn free_and_used_partition_the_relation(
            extents in proptest::collection::vec((1u32..200, 1u32..20), 0..30),
        ) {
            // Non-overlapping extents, as a healthy relation has.
            let mut used = Vec::new();
            let mut covered = vec![false; 512];
            for (first, pages) in extents {
                let span = first as usize..(first + pages) as usize;
                if span.clone().all(|b| !covered[b]) {
                    span.for_each(|b| covered[b] = true);
                    used.push((first, pages));
                }
            }
            let nblocks = 240;
            let free = unused(nblocks, &used);
            let mut seen = vec![false; 512];
            for r in &free {
                for b in r.first..r.first + r.pages {
                    prop_assert!(!covered[b as usize] && !seen[b as usize]);
                    seen[b as usize] = true;
                }
            }
            for b in 1..nblocks as usize {
                prop_assert!(covered[b] || seen[b], "block {} lost", b);
            }
        }
    }
}
