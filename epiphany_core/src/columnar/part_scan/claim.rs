//! How the participants of a parallel scan share its work: granule by granule, not part
//! by part, so that two or three processes finish together even when pruning leaves
//! only a part or two (a date range over a table sorted by date).
//!
//! Every participant holds the same list of parts and prunes each the same way, so "the
//! `g`-th granule left after pruning part `p`" names the same rows in all of them. One
//! shared 64-bit word holds the next unclaimed `(p, g)`; a participant claims by
//! compare-and-swap, after opening part `p` itself to learn how many granules pruning
//! left. Of the participants that open a part, only the one that moves the word off
//! `(p, 0)` owns the part's pruning counters, so EXPLAIN counts each part once.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;

/// Granules of one part claimed by one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Index into the scan's list of parts.
    pub part: usize,
    /// Indexes into the part's granules left after pruning.
    pub granules: Range<usize>,
}

fn pack(part: usize, granule: usize) -> u64 {
    ((part as u64) << 32) | granule as u64
}

fn unpack(word: u64) -> (usize, usize) {
    ((word >> 32) as usize, (word & 0xffff_ffff) as usize)
}

/// Claims the next at most `per_claim` granules from `next` (shared by all
/// participants, 0 at the start) among `parts` parts; `None` when every granule is
/// claimed. `kept(p)` opens part `p` (if not yet) and says how many of its granules
/// pruning left; `owns(p)` is called once per part, in exactly one participant.
pub fn claim(
    next: &AtomicU64,
    parts: usize,
    per_claim: usize,
    mut kept: impl FnMut(usize) -> Result<usize>,
    mut owns: impl FnMut(usize),
) -> Result<Option<Claim>> {
    let per_claim = per_claim.max(1);
    let mut word = next.load(Ordering::Acquire);
    loop {
        let (p, g) = unpack(word);
        if p >= parts {
            return Ok(None);
        }
        let n = kept(p)?;
        let (to, claimed) = if g >= n {
            (pack(p + 1, 0), None)
        } else {
            let end = (g + per_claim).min(n);
            (pack(p, end), Some(g..end))
        };
        match next.compare_exchange_weak(word, to, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                if g == 0 {
                    owns(p);
                }
                if let Some(granules) = claimed {
                    return Ok(Some(Claim { part: p, granules }));
                }
                word = to;
            }
            Err(now) => word = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Each granule claimed exactly once and each part owned exactly once, by
    /// participants racing on real threads over parts of uneven sizes (empty ones too).
    #[test]
    fn every_granule_is_claimed_once_and_every_part_owned_once() {
        let sizes = [3usize, 0, 1, 17, 0, 0, 5, 64, 2];
        let next = AtomicU64::new(0);
        let claimed = Mutex::new(Vec::new());
        let owned = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    let mut own = Vec::new();
                    while let Some(c) =
                        claim(&next, sizes.len(), 2, |p| Ok(sizes[p]), |p| own.push(p)).unwrap()
                    {
                        assert!(c.granules.len() <= 2 && !c.granules.is_empty());
                        mine.extend(c.granules.map(|g| (c.part, g)));
                    }
                    claimed.lock().unwrap().extend(mine);
                    owned.lock().unwrap().extend(own);
                });
            }
        });
        let mut claimed = claimed.into_inner().unwrap();
        claimed.sort_unstable();
        let want: Vec<(usize, usize)> = sizes
            .iter()
            .enumerate()
            .flat_map(|(p, &n)| (0..n).map(move |g| (p, g)))
            .collect();
        assert_eq!(claimed, want);
        let mut owned = owned.into_inner().unwrap();
        owned.sort_unstable();
        assert_eq!(owned, (0..sizes.len()).collect::<Vec<_>>());
        assert_eq!(
            claim(&next, sizes.len(), 2, |p| Ok(sizes[p]), |_| {}).unwrap(),
            None
        );
    }

    #[test]
    fn an_error_opening_a_part_leaves_the_word_alone() {
        let next = AtomicU64::new(0);
        let err = claim(
            &next,
            2,
            1,
            |_| Err(crate::error::Error::Internal("corrupt".into())),
            |_| {},
        );
        assert!(err.is_err());
        assert_eq!(next.load(Ordering::Relaxed), 0);
    }
}
