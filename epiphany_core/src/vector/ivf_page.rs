//! The on-page forms of an IVF-PQ index: the metapage, the list directory (where each
//! list's chain of pages starts and ends), list entries (a row and the PQ code of its
//! residual), and float arrays (centroids, codebooks) cut into page-sized chunks.
//! Decoding checks every length and value range, so a damaged page is an error.

use crate::error::{Error, Result};
use crate::vector::hnsw::Metric;
use crate::vector::hnsw_node::RowId;
use crate::vector::pq::ProductQuantizer;

const MAGIC: u32 = 0x4550_4956; // "EPIV"
const VERSION: u8 = 1;
pub const META_SIZE: usize = 64;
/// Bytes of one list's directory entry.
pub const HEAD_SIZE: usize = 16;

fn corrupt(what: String) -> Error {
    Error::Corrupted(format!("IVF-PQ index: {what}"))
}

/// What an IVF-PQ index's metapage holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IvfMeta {
    pub dims: usize,
    pub lists: usize,
    pub pq_m: usize,
    pub pq_bits: u32,
    pub metric: Metric,
    /// Seed of the training (k-means and codebooks), so a rebuild trains the same way.
    pub seed: u64,
    /// Random per build, as in HNSW: caches key on it.
    pub build_id: u64,
    /// First pages of the centroids, the codebooks and the list directory.
    pub centroids_block: u32,
    pub codebooks_block: u32,
    pub directory_block: u32,
}

impl IvfMeta {
    pub fn encode(&self) -> [u8; META_SIZE] {
        let mut out = [0u8; META_SIZE];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4] = VERSION;
        out[5] = match self.metric {
            Metric::L2 => 0,
            Metric::InnerProduct => 1,
            Metric::Cosine => 2,
        };
        out[6] = self.pq_bits as u8;
        out[8..12].copy_from_slice(&(self.dims as u32).to_le_bytes());
        out[12..16].copy_from_slice(&(self.lists as u32).to_le_bytes());
        out[16..20].copy_from_slice(&(self.pq_m as u32).to_le_bytes());
        out[20..28].copy_from_slice(&self.seed.to_le_bytes());
        out[28..36].copy_from_slice(&self.build_id.to_le_bytes());
        out[36..40].copy_from_slice(&self.centroids_block.to_le_bytes());
        out[40..44].copy_from_slice(&self.codebooks_block.to_le_bytes());
        out[44..48].copy_from_slice(&self.directory_block.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IvfMeta> {
        if bytes.len() < META_SIZE {
            return Err(corrupt(format!("a metapage of {} bytes", bytes.len())));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        if u32_at(0) != MAGIC {
            return Err(corrupt("not an epiphany_ivfpq metapage".into()));
        }
        if bytes[4] != VERSION {
            return Err(corrupt(format!("unknown version {}", bytes[4])));
        }
        let metric = match bytes[5] {
            0 => Metric::L2,
            1 => Metric::InnerProduct,
            2 => Metric::Cosine,
            x => return Err(corrupt(format!("metric {x}"))),
        };
        let meta = IvfMeta {
            dims: u32_at(8) as usize,
            lists: u32_at(12) as usize,
            pq_m: u32_at(16) as usize,
            pq_bits: u32::from(bytes[6]),
            metric,
            seed: u64_at(20),
            build_id: u64_at(28),
            centroids_block: u32_at(36),
            codebooks_block: u32_at(40),
            directory_block: u32_at(44),
        };
        ProductQuantizer::check_shape(meta.dims, meta.pq_m, meta.pq_bits)
            .map_err(|e| corrupt(e.to_string()))?;
        if meta.lists == 0
            || meta.centroids_block == 0
            || meta.codebooks_block == 0
            || meta.directory_block == 0
        {
            return Err(corrupt(format!(
                "{} lists, blocks {}/{}/{}",
                meta.lists, meta.centroids_block, meta.codebooks_block, meta.directory_block
            )));
        }
        Ok(meta)
    }

    /// Bytes of one list entry: a row (6 bytes) and one byte per sub-quantizer.
    pub fn entry_size(&self) -> usize {
        6 + self.pq_m
    }
}

/// Where one list's pages are: its chain runs from `first_block` to `last_block` (where
/// inserts go); 0 while the list is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListHead {
    pub first_block: u32,
    pub last_block: u32,
    pub rows: u64,
}

impl ListHead {
    pub fn encode(&self) -> [u8; HEAD_SIZE] {
        let mut out = [0u8; HEAD_SIZE];
        out[0..4].copy_from_slice(&self.first_block.to_le_bytes());
        out[4..8].copy_from_slice(&self.last_block.to_le_bytes());
        out[8..16].copy_from_slice(&self.rows.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ListHead> {
        if bytes.len() != HEAD_SIZE {
            return Err(corrupt(format!("a list head of {} bytes", bytes.len())));
        }
        let head = ListHead {
            first_block: u32::from_le_bytes(bytes[0..4].try_into().expect("4")),
            last_block: u32::from_le_bytes(bytes[4..8].try_into().expect("4")),
            rows: u64::from_le_bytes(bytes[8..16].try_into().expect("8")),
        };
        if (head.first_block == 0) != (head.last_block == 0) {
            return Err(corrupt(format!(
                "list chain {}..{}",
                head.first_block, head.last_block
            )));
        }
        Ok(head)
    }
}

/// A list entry: a row and the code of its residual.
pub fn encode_entry(row: RowId, code: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&row.block.to_le_bytes());
    out.extend_from_slice(&row.item.to_le_bytes());
    out.extend_from_slice(code);
}

/// The row and code of an entry of `size` bytes.
pub fn decode_entry(bytes: &[u8], size: usize) -> Result<(RowId, &[u8])> {
    if bytes.len() != size || size < 6 {
        return Err(corrupt(format!(
            "an entry of {} bytes, expected {size}",
            bytes.len()
        )));
    }
    let row = RowId {
        block: u32::from_le_bytes(bytes[0..4].try_into().expect("4")),
        item: u16::from_le_bytes(bytes[4..6].try_into().expect("2")),
    };
    if row.item == 0 {
        return Err(corrupt("an entry without a row".into()));
    }
    Ok((row, &bytes[6..]))
}

/// `values` as little-endian chunks of at most `capacity` bytes (whole floats).
pub fn float_chunks(values: &[f32], capacity: usize) -> Vec<Vec<u8>> {
    let per = (capacity / 4).max(1);
    values
        .chunks(per)
        .map(|c| c.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect()
}

/// Reassembles `expected` floats from chunks written by [`float_chunks`].
pub fn floats_from_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    expected: usize,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(expected);
    for c in chunks {
        if !c.len().is_multiple_of(4) || out.len() + c.len() / 4 > expected {
            return Err(corrupt(format!("a float chunk of {} bytes", c.len())));
        }
        out.extend(
            c.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
        );
    }
    if out.len() != expected {
        return Err(corrupt(format!(
            "{} floats, expected {expected}",
            out.len()
        )));
    }
    if out.iter().any(|x| !x.is_finite()) {
        return Err(corrupt("a centroid or codeword that is not finite".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta() -> IvfMeta {
        IvfMeta {
            dims: 96,
            lists: 100,
            pq_m: 24,
            pq_bits: 8,
            metric: Metric::Cosine,
            seed: 42,
            build_id: 7,
            centroids_block: 1,
            codebooks_block: 6,
            directory_block: 9,
        }
    }

    #[test]
    fn metapages_round_trip_and_damage_is_an_error() {
        let m = meta();
        assert_eq!(IvfMeta::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.entry_size(), 30);
        for (at, value) in [(0, 0u8), (4, 9), (5, 3), (6, 0), (16, 7), (12, 0)] {
            let mut bad = m.encode();
            bad[at] = value;
            if at == 12 {
                bad[13] = 0;
            }
            assert!(IvfMeta::decode(&bad).is_err(), "byte {at}");
        }
        assert!(IvfMeta::decode(&m.encode()[..40]).is_err());
    }

    #[test]
    fn heads_entries_and_float_chunks_round_trip() {
        let h = ListHead {
            first_block: 3,
            last_block: 8,
            rows: 1234,
        };
        assert_eq!(ListHead::decode(&h.encode()).unwrap(), h);
        assert_eq!(
            ListHead::decode(&ListHead::default().encode()).unwrap(),
            ListHead::default()
        );
        let mut bad = h.encode();
        bad[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(ListHead::decode(&bad).is_err());

        let mut buf = Vec::new();
        let row = RowId { block: 77, item: 3 };
        encode_entry(row, &[1, 2, 3], &mut buf);
        assert_eq!(decode_entry(&buf, 9).unwrap(), (row, &[1u8, 2, 3][..]));
        assert!(decode_entry(&buf, 10).is_err());
        buf[4] = 0;
        buf[5] = 0;
        assert!(decode_entry(&buf, 9).is_err());

        let values: Vec<f32> = (0..5000).map(|i| i as f32 * 0.5).collect();
        let chunks = float_chunks(&values, 8000);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= 8000));
        let back = floats_from_chunks(chunks.iter().map(|c| c.as_slice()), 5000).unwrap();
        assert_eq!(back, values);
        assert!(floats_from_chunks(chunks.iter().map(|c| c.as_slice()), 4999).is_err());
        let mut nan = chunks.clone();
        nan[0][0..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(floats_from_chunks(nan.iter().map(|c| c.as_slice()), 5000).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(b in prop::collection::vec(any::<u8>(), 0..80)) {
            let _ = IvfMeta::decode(&b);
            let _ = decode_entry(&b, 10);
            if b.len() >= HEAD_SIZE {
                let _ = ListHead::decode(&b[..HEAD_SIZE]);
            }
            let _ = floats_from_chunks([b.as_slice()], b.len() / 4);
        }
    }
}
