//! Planning a scan: which parts and granules to read, and what EXPLAIN reports.
//!
//! The catalog keeps a summary of each part (its granule statistics merged), so whole
//! parts are skipped without touching their pages; the granules of the parts that remain
//! are pruned from the footer. Summaries travel through the catalog as bytes
//! ([`encode_stats`]), checked on the way back like any bytes read from disk.

use std::cmp::Ordering;

use crate::columnar::prune::{may_match_all, ColumnStats, GranuleStats, Predicate, Scalar};
use crate::error::{Error, Result};

/// What EXPLAIN (ANALYZE) shows for one scan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanCounters {
    pub parts_scanned: u64,
    pub parts_skipped: u64,
    pub granules_scanned: u64,
    pub granules_skipped: u64,
}

impl std::ops::Add for ScanCounters {
    type Output = ScanCounters;
    fn add(self, b: ScanCounters) -> ScanCounters {
        ScanCounters {
            parts_scanned: self.parts_scanned + b.parts_scanned,
            parts_skipped: self.parts_skipped + b.parts_skipped,
            granules_scanned: self.granules_scanned + b.granules_scanned,
            granules_skipped: self.granules_skipped + b.granules_skipped,
        }
    }
}

impl std::ops::Sub for ScanCounters {
    type Output = ScanCounters;
    /// What was counted since `b` (an earlier value of the same counters).
    fn sub(self, b: ScanCounters) -> ScanCounters {
        ScanCounters {
            parts_scanned: self.parts_scanned - b.parts_scanned,
            parts_skipped: self.parts_skipped - b.parts_skipped,
            granules_scanned: self.granules_scanned - b.granules_scanned,
            granules_skipped: self.granules_skipped - b.granules_skipped,
        }
    }
}

/// The statistics of a whole part, from those of its granules.
pub fn summarize(granules: &[GranuleStats]) -> GranuleStats {
    let columns = granules.first().map_or(0, |g| g.columns.len());
    let rows = granules.iter().map(|g| g.rows).sum();
    let columns = (0..columns)
        .map(|c| {
            let mut min: Option<Scalar> = None;
            let mut max: Option<Scalar> = None;
            let mut known = true;
            let mut nulls = Some(0u64);
            for g in granules {
                let s = &g.columns[c];
                nulls = nulls.zip(s.nulls).map(|(a, b)| a + b);
                if s.nulls == Some(g.rows) {
                    continue; // no values, no bounds to merge
                }
                match (&s.min, &s.max) {
                    (Some(lo), Some(hi)) if known => {
                        min = Some(pick(min, lo, Ordering::Less));
                        max = Some(pick(max, hi, Ordering::Greater));
                        known = min.is_some() && max.is_some();
                    }
                    _ => known = false,
                }
            }
            if known {
                ColumnStats { min, max, nulls }
            } else {
                ColumnStats {
                    min: None,
                    max: None,
                    nulls,
                }
            }
        })
        .collect();
    GranuleStats { rows, columns }
}

/// The smaller (`Less`) or larger (`Greater`) of `current` and `candidate`; bounds of
/// different kinds cannot be merged and make the result unknown.
fn pick(current: Option<Scalar>, candidate: &Scalar, want: Ordering) -> Scalar {
    match current {
        None => candidate.clone(),
        Some(c) => match compare(candidate, &c) {
            Some(o) if o == want => candidate.clone(),
            Some(_) => c,
            None => c,
        },
    }
}

fn compare(a: &Scalar, b: &Scalar) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        (Scalar::Float(x), Scalar::Float(y)) => x.partial_cmp(y),
        (Scalar::Bytes(x), Scalar::Bytes(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Indexes of the `parts` (their summaries) a scan with `preds` must read.
pub fn prune_parts(
    parts: &[GranuleStats],
    preds: &[Predicate],
    counters: &mut ScanCounters,
) -> Vec<usize> {
    let (kept, skipped) = keep_matching(parts, preds);
    counters.parts_scanned += kept.len() as u64;
    counters.parts_skipped += skipped;
    kept
}

/// Indexes of the `granules` of one part a scan with `preds` must read.
pub fn prune_granules(
    granules: &[GranuleStats],
    preds: &[Predicate],
    counters: &mut ScanCounters,
) -> Vec<usize> {
    let (kept, skipped) = keep_matching(granules, preds);
    counters.granules_scanned += kept.len() as u64;
    counters.granules_skipped += skipped;
    kept
}

fn keep_matching(stats: &[GranuleStats], preds: &[Predicate]) -> (Vec<usize>, u64) {
    let kept: Vec<usize> = (0..stats.len())
        .filter(|&i| may_match_all(&stats[i], preds))
        .collect();
    let skipped = (stats.len() - kept.len()) as u64;
    (kept, skipped)
}

const STATS_VERSION: u8 = 1;

/// Serializes a part summary for the catalog.
pub fn encode_stats(stats: &GranuleStats) -> Vec<u8> {
    let mut out = vec![STATS_VERSION];
    out.extend_from_slice(&stats.rows.to_le_bytes());
    out.extend_from_slice(&(stats.columns.len() as u32).to_le_bytes());
    for c in &stats.columns {
        let flags = u8::from(c.min.is_some())
            | u8::from(c.max.is_some()) << 1
            | u8::from(c.nulls.is_some()) << 2;
        out.push(flags);
        out.extend_from_slice(&c.nulls.unwrap_or(0).to_le_bytes());
        for bound in [&c.min, &c.max].into_iter().flatten() {
            match bound {
                Scalar::Int(v) => {
                    out.push(0);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Scalar::Float(v) => {
                    out.push(1);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Scalar::Bytes(b) => {
                    out.push(2);
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }
    out
}

/// Reads back what [`encode_stats`] wrote; anything else is corruption.
pub fn decode_stats(bytes: &[u8]) -> Result<GranuleStats> {
    let mut r = Cursor { bytes, pos: 0 };
    let version = r.take(1)?[0];
    if version != STATS_VERSION {
        return Err(Error::Corrupted(format!(
            "part statistics of version {version}"
        )));
    }
    let rows = r.u64()?;
    let n = r.u32()? as usize;
    if n > bytes.len() {
        return Err(Error::Corrupted(
            "part statistics claim more columns than bytes".into(),
        ));
    }
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        let flags = r.take(1)?[0];
        if flags & !0b111 != 0 {
            return Err(Error::Corrupted(format!(
                "part statistics flags {flags:#x}"
            )));
        }
        let nulls = r.u64()?;
        let min = if flags & 1 != 0 {
            Some(r.scalar()?)
        } else {
            None
        };
        let max = if flags & 2 != 0 {
            Some(r.scalar()?)
        } else {
            None
        };
        columns.push(ColumnStats {
            min,
            max,
            nulls: (flags & 4 != 0).then_some(nulls),
        });
    }
    if r.pos != bytes.len() {
        return Err(Error::Corrupted(
            "trailing bytes after part statistics".into(),
        ));
    }
    Ok(GranuleStats { rows, columns })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::Corrupted("part statistics end early".into()))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn scalar(&mut self) -> Result<Scalar> {
        Ok(match self.take(1)?[0] {
            0 => Scalar::Int(self.u64()? as i64),
            1 => Scalar::Float(f64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            2 => {
                let len = self.u32()? as usize;
                Scalar::Bytes(self.take(len)?.to_vec())
            }
            tag => return Err(Error::Corrupted(format!("part statistics value tag {tag}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::prune::Op;

    fn col(min: i64, max: i64, nulls: u64) -> ColumnStats {
        ColumnStats {
            min: Some(Scalar::Int(min)),
            max: Some(Scalar::Int(max)),
            nulls: Some(nulls),
        }
    }

    fn granule(rows: u64, columns: Vec<ColumnStats>) -> GranuleStats {
        GranuleStats { rows, columns }
    }

    #[test]
    fn a_summary_bounds_every_granule() {
        let all_null = ColumnStats {
            min: None,
            max: None,
            nulls: Some(4),
        };
        let s = summarize(&[
            granule(10, vec![col(5, 9, 0), col(0, 0, 1)]),
            granule(4, vec![all_null, col(-3, 2, 0)]),
            granule(10, vec![col(1, 7, 2), col(8, 8, 0)]),
        ]);
        assert_eq!(s.rows, 24);
        assert_eq!(s.columns[0], col(1, 9, 6));
        assert_eq!(s.columns[1], col(-3, 8, 1));
        // One granule with unknown bounds makes the part's unknown.
        let unknown = ColumnStats {
            min: None,
            max: None,
            nulls: Some(0),
        };
        let s = summarize(&[granule(3, vec![col(1, 2, 0)]), granule(3, vec![unknown])]);
        assert_eq!(
            s.columns[0],
            ColumnStats {
                min: None,
                max: None,
                nulls: Some(0)
            }
        );
        assert_eq!(summarize(&[]).rows, 0);
    }

    #[test]
    fn counters_add_up_across_parts_and_granules() {
        let parts = [
            granule(10, vec![col(0, 9, 0)]),
            granule(10, vec![col(10, 19, 0)]),
            granule(10, vec![col(20, 29, 0)]),
        ];
        let preds = [Predicate::Compare {
            column: 0,
            op: Op::Ge,
            value: Scalar::Int(15),
        }];
        let mut counters = ScanCounters::default();
        assert_eq!(prune_parts(&parts, &preds, &mut counters), vec![1, 2]);
        let granules = [
            granule(5, vec![col(10, 14, 0)]),
            granule(5, vec![col(15, 19, 0)]),
        ];
        assert_eq!(prune_granules(&granules, &preds, &mut counters), vec![1]);
        assert_eq!(
            counters,
            ScanCounters {
                parts_scanned: 2,
                parts_skipped: 1,
                granules_scanned: 1,
                granules_skipped: 1
            }
        );
    }

    #[test]
    fn stats_round_trip_and_garbage_is_rejected() {
        let stats = granule(
            42,
            vec![
                col(-5, 5, 3),
                ColumnStats {
                    min: Some(Scalar::Float(-0.5)),
                    max: Some(Scalar::Float(1e300)),
                    nulls: None,
                },
                ColumnStats {
                    min: Some(Scalar::Bytes(b"a".to_vec())),
                    max: Some(Scalar::Bytes(vec![0xff; 70])),
                    nulls: Some(0),
                },
                ColumnStats {
                    min: None,
                    max: None,
                    nulls: Some(42),
                },
            ],
        );
        let bytes = encode_stats(&stats);
        assert_eq!(decode_stats(&bytes).unwrap(), stats);
        for cut in 0..bytes.len() {
            assert!(decode_stats(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_stats(&extra).is_err());
        let mut bad_version = bytes.clone();
        bad_version[0] = 9;
        assert!(decode_stats(&bad_version).is_err());
        let mut huge = bytes.clone();
        huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_stats(&huge).is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn scalar() -> impl Strategy<Value = Scalar> {
            prop_oneof![
                any::<i64>().prop_map(Scalar::Int),
                any::<f64>()
                    .prop_filter("NaN never equals itself", |f| !f.is_nan())
                    .prop_map(Scalar::Float),
                proptest::collection::vec(any::<u8>(), 0..20).prop_map(Scalar::Bytes),
            ]
        }

        fn column() -> impl Strategy<Value = ColumnStats> {
            (
                proptest::option::of(scalar()),
                proptest::option::of(scalar()),
                proptest::option::of(any::<u64>()),
            )
                .prop_map(|(min, max, nulls)| ColumnStats { min, max, nulls })
        }

        proptest! {
            #[test]
            fn any_summary_round_trips(rows: u64, columns in proptest::collection::vec(column(), 0..8)) {
                let stats = GranuleStats { rows, columns };
                prop_assert_eq!(decode_stats(&encode_stats(&stats)).unwrap(), stats);
            }

            #[test]
            fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = decode_stats(&bytes);
            }
        }
    }
}
