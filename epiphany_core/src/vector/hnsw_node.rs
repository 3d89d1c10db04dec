//! The on-page form of an HNSW node: what the index access method stores per graph node.
//!
//! A node holds the table rows with its vector (equal vectors share a node, so ties never
//! crowd a newcomer out of every neighbour list), the vector, and a fixed number of
//! neighbour slots per level. Its size depends only on its level and the index's
//! parameters, so an insert rewrites neighbour lists in place. Neighbours are node
//! addresses (block, item): 6 bytes, like a TID. Decoding checks every length, so a
//! damaged page is an error, never a panic.

use crate::error::{Error, Result};
use crate::vector::hnsw::{Metric, NodeId};

/// A node's address in the index: block and item number (1-based, as in a TID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    pub block: u32,
    pub item: u16,
}

impl NodeAddr {
    /// The address as a graph node id.
    pub fn pack(self) -> NodeId {
        (u64::from(self.block) << 16) | u64::from(self.item)
    }

    pub fn unpack(id: NodeId) -> NodeAddr {
        NodeAddr {
            block: (id >> 16) as u32,
            item: id as u16,
        }
    }
}

/// A table row: its TID.
pub type RowId = NodeAddr;

/// Rows one node can hold.
pub const MAX_ROWS: usize = 10;
const VERSION: u8 = 1;
const HEADER: usize = 8;
const ADDR: usize = 6;

/// The shape every node of one index shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub dims: usize,
    pub m: usize,
}

impl Shape {
    fn slots(&self, level: usize) -> usize {
        2 * self.m + level * self.m
    }

    /// Bytes of a node of `level`.
    pub fn node_size(&self, level: usize) -> usize {
        HEADER + MAX_ROWS * ADDR + 4 * self.dims + (level + 1) * 2 + self.slots(level) * ADDR
    }

    /// The highest level whose node fits in `capacity` bytes (at most 16), or `None` when
    /// even a level-2 node does not fit: too many dimensions for one page.
    pub fn max_level(&self, capacity: usize) -> Option<usize> {
        let top = (0..=16).rev().find(|&l| self.node_size(l) <= capacity)?;
        (top >= 2).then_some(top)
    }

    /// Offset of the vector inside a node's bytes (a multiple of 4).
    pub const VECTOR_OFFSET: usize = HEADER + MAX_ROWS * ADDR;
}

/// A node's bytes, checked once, read in place: what a search reads per visited node.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    bytes: &'a [u8],
    shape: Shape,
}

impl<'a> NodeRef<'a> {
    /// Checks the header and the length (what every read needs); neighbour counts are
    /// checked by [`neighbors`](Self::neighbors), so reading a vector touches no more of
    /// the node than the vector.
    pub fn parse(bytes: &'a [u8], shape: Shape) -> Result<Self> {
        if bytes.len() < HEADER {
            return Err(corrupt("shorter than its header"));
        }
        if bytes[0] != VERSION {
            return Err(corrupt(&format!("unknown version {}", bytes[0])));
        }
        let level = bytes[1] as usize;
        if bytes[2] > 1 {
            return Err(corrupt(&format!("flag {}", bytes[2])));
        }
        let nrows = bytes[3] as usize;
        let dims = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        if dims != shape.dims || nrows > MAX_ROWS {
            return Err(corrupt(&format!("{dims} dimensions, {nrows} rows")));
        }
        if bytes.len() != shape.node_size(level) {
            return Err(corrupt(&format!(
                "{} bytes for level {level}, expected {}",
                bytes.len(),
                shape.node_size(level)
            )));
        }
        Ok(NodeRef { bytes, shape })
    }

    pub fn level(&self) -> usize {
        self.bytes[1] as usize
    }

    pub fn deleted(&self) -> bool {
        self.bytes[2] == 1
    }

    pub fn rows(&self) -> impl Iterator<Item = RowId> + '_ {
        (0..self.bytes[3] as usize).map(move |i| addr_at(self.bytes, HEADER + i * ADDR))
    }

    /// The vector's little-endian bytes.
    pub fn vector_bytes(&self) -> &'a [u8] {
        &self.bytes[Shape::VECTOR_OFFSET..Shape::VECTOR_OFFSET + 4 * self.shape.dims]
    }

    pub fn vector(&self) -> Vec<f32> {
        self.vector_bytes()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    }

    fn counts_at(&self) -> usize {
        Shape::VECTOR_OFFSET + 4 * self.shape.dims
    }

    fn count(&self, level: usize) -> usize {
        let at = self.counts_at() + 2 * level;
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]) as usize
    }

    /// Replaces `out` with the neighbours on `level` (none above the node's level).
    pub fn neighbors(&self, level: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        if level > self.level() {
            return Ok(());
        }
        let n = self.count(level);
        if n > room(self.shape, level) {
            return Err(corrupt(&format!(
                "{n} neighbours on level {level}, room for {}",
                room(self.shape, level)
            )));
        }
        let mut at = self.counts_at() + 2 * (self.level() + 1);
        for l in 0..level {
            at += room(self.shape, l) * ADDR;
        }
        out.extend((0..n).map(|i| addr_at(self.bytes, at + i * ADDR).pack()));
        Ok(())
    }

    pub fn to_node(&self) -> Result<Node> {
        let mut list = Vec::new();
        let mut neighbors = Vec::with_capacity(self.level() + 1);
        for l in 0..=self.level() {
            self.neighbors(l, &mut list)?;
            neighbors.push(list.iter().map(|&n| NodeAddr::unpack(n)).collect());
        }
        Ok(Node {
            level: self.level(),
            deleted: self.deleted(),
            rows: self.rows().collect(),
            vector: self.vector(),
            neighbors,
        })
    }
}

fn room(shape: Shape, level: usize) -> usize {
    if level == 0 {
        2 * shape.m
    } else {
        shape.m
    }
}

fn addr_at(bytes: &[u8], at: usize) -> NodeAddr {
    NodeAddr {
        block: u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")),
        item: u16::from_le_bytes(bytes[at + 4..at + 6].try_into().expect("2 bytes")),
    }
}

/// What an HNSW index's metapage holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meta {
    pub shape: Shape,
    pub ef_construction: usize,
    pub metric: Metric,
    pub max_level: usize,
    /// The top node and its level; `None` while the index is empty.
    pub entry: Option<(NodeAddr, usize)>,
    /// The page new nodes go to first.
    pub insert_block: u32,
    /// Chosen at random when the index is (re)built: a node address names the same node
    /// (and vector) only within one build, so caches key on it.
    pub build_id: u64,
}

const META_MAGIC: u32 = 0x4550_4857; // "EPHW"
const META_SIZE: usize = 40;

impl Meta {
    pub fn encode(&self) -> [u8; META_SIZE] {
        let mut out = [0u8; META_SIZE];
        out[0..4].copy_from_slice(&META_MAGIC.to_le_bytes());
        out[4] = VERSION;
        out[5] = match self.metric {
            Metric::L2 => 0,
            Metric::InnerProduct => 1,
            Metric::Cosine => 2,
        };
        out[6] = self.max_level as u8;
        out[7] = u8::from(self.entry.is_some());
        out[8..12].copy_from_slice(&(self.shape.dims as u32).to_le_bytes());
        out[12..14].copy_from_slice(&(self.shape.m as u16).to_le_bytes());
        out[14..16].copy_from_slice(&(self.ef_construction as u16).to_le_bytes());
        let (entry, level) = self.entry.unwrap_or((NodeAddr { block: 0, item: 0 }, 0));
        out[16..20].copy_from_slice(&entry.block.to_le_bytes());
        out[20..22].copy_from_slice(&entry.item.to_le_bytes());
        out[22] = level as u8;
        out[24..28].copy_from_slice(&self.insert_block.to_le_bytes());
        out[32..40].copy_from_slice(&self.build_id.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Meta> {
        let bad = |what: String| Error::Corrupted(format!("HNSW metapage: {what}"));
        if bytes.len() < META_SIZE {
            return Err(bad(format!("{} bytes", bytes.len())));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2"));
        if u32_at(0) != META_MAGIC {
            return Err(bad("not an epiphany_hnsw index".into()));
        }
        if bytes[4] != VERSION {
            return Err(bad(format!("unknown version {}", bytes[4])));
        }
        let metric = match bytes[5] {
            0 => Metric::L2,
            1 => Metric::InnerProduct,
            2 => Metric::Cosine,
            x => return Err(bad(format!("metric {x}"))),
        };
        let shape = Shape {
            dims: u32_at(8) as usize,
            m: u16_at(12) as usize,
        };
        let max_level = bytes[6] as usize;
        if shape.m < 2 || max_level > 16 || bytes[7] > 1 || bytes[22] as usize > max_level {
            return Err(bad(format!(
                "m {}, max level {max_level}, entry flag {}",
                shape.m, bytes[7]
            )));
        }
        let entry = (bytes[7] == 1).then(|| {
            (
                NodeAddr {
                    block: u32_at(16),
                    item: u16_at(20),
                },
                bytes[22] as usize,
            )
        });
        Ok(Meta {
            shape,
            ef_construction: u16_at(14) as usize,
            metric,
            max_level,
            entry,
            insert_block: u32_at(24),
            build_id: u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub level: usize,
    /// Every row is gone (VACUUM): the node still routes searches but returns nothing.
    pub deleted: bool,
    pub rows: Vec<RowId>,
    pub vector: Vec<f32>,
    /// Per level (0 first), the neighbours.
    pub neighbors: Vec<Vec<NodeAddr>>,
}

fn put_addr(out: &mut Vec<u8>, a: NodeAddr) {
    out.extend_from_slice(&a.block.to_le_bytes());
    out.extend_from_slice(&a.item.to_le_bytes());
}

fn corrupt(what: &str) -> Error {
    Error::Corrupted(format!("HNSW node: {what}"))
}

impl Node {
    pub fn encode(&self, shape: Shape) -> Result<Vec<u8>> {
        if self.vector.len() != shape.dims
            || self.rows.len() > MAX_ROWS
            || self.neighbors.len() != self.level + 1
            || self.level > 255
        {
            return Err(Error::Internal(format!(
                "an HNSW node of level {} with {} rows, {} dimensions, {} neighbour lists",
                self.level,
                self.rows.len(),
                self.vector.len(),
                self.neighbors.len()
            )));
        }
        let mut out = Vec::with_capacity(shape.node_size(self.level));
        out.push(VERSION);
        out.push(self.level as u8);
        out.push(u8::from(self.deleted));
        out.push(self.rows.len() as u8);
        out.extend_from_slice(&(shape.dims as u32).to_le_bytes());
        for i in 0..MAX_ROWS {
            put_addr(
                &mut out,
                self.rows
                    .get(i)
                    .copied()
                    .unwrap_or(NodeAddr { block: 0, item: 0 }),
            );
        }
        for x in &self.vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for (l, list) in self.neighbors.iter().enumerate() {
            let room = if l == 0 { 2 * shape.m } else { shape.m };
            if list.len() > room {
                return Err(Error::Internal(format!(
                    "{} neighbours on level {l}, room for {room}",
                    list.len()
                )));
            }
            out.extend_from_slice(&(list.len() as u16).to_le_bytes());
        }
        for (l, list) in self.neighbors.iter().enumerate() {
            let room = if l == 0 { 2 * shape.m } else { shape.m };
            for i in 0..room {
                put_addr(
                    &mut out,
                    list.get(i)
                        .copied()
                        .unwrap_or(NodeAddr { block: 0, item: 0 }),
                );
            }
        }
        debug_assert_eq!(out.len(), shape.node_size(self.level));
        Ok(out)
    }

    pub fn decode(bytes: &[u8], shape: Shape) -> Result<Node> {
        NodeRef::parse(bytes, shape)?.to_node()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(block: u32, item: u16) -> NodeAddr {
        NodeAddr { block, item }
    }

    #[test]
    fn nodes_round_trip_at_their_fixed_size() {
        let shape = Shape { dims: 3, m: 4 };
        let node = Node {
            level: 2,
            deleted: false,
            rows: vec![a(7, 1), a(7, 2)],
            vector: vec![1.0, -2.5, 3.25],
            neighbors: vec![vec![a(1, 1), a(2, 3)], vec![a(9, 9)], vec![]],
        };
        let bytes = node.encode(shape).unwrap();
        assert_eq!(bytes.len(), shape.node_size(2));
        assert_eq!(Node::decode(&bytes, shape).unwrap(), node);
        let view = NodeRef::parse(&bytes, shape).unwrap();
        let mut list = Vec::new();
        view.neighbors(1, &mut list).unwrap();
        assert_eq!(list, vec![a(9, 9).pack()]);
        view.neighbors(5, &mut list).unwrap();
        assert!(list.is_empty());
        assert_eq!(view.vector(), node.vector);
        assert_eq!(Shape::VECTOR_OFFSET % 4, 0);
        // More neighbours than room, or rows, are refused.
        let mut too_many = node.clone();
        too_many.neighbors[1] = (0..5).map(|i| a(i, 1)).collect();
        assert!(too_many.encode(shape).is_err());
        let mut crowded = node.clone();
        crowded.rows = (0..11).map(|i| a(i, 1)).collect();
        assert!(crowded.encode(shape).is_err());
    }

    #[test]
    fn damage_is_an_error() {
        let shape = Shape { dims: 2, m: 2 };
        let node = Node {
            level: 0,
            deleted: true,
            rows: vec![a(1, 1)],
            vector: vec![0.5, 0.5],
            neighbors: vec![vec![a(3, 4)]],
        };
        let bytes = node.encode(shape).unwrap();
        assert!(Node::decode(&bytes[..bytes.len() - 1], shape).is_err());
        assert!(Node::decode(&bytes, Shape { dims: 3, m: 2 }).is_err());
        let mut bad = bytes.clone();
        bad[1] = 3; // a level the bytes do not have room for
        assert!(Node::decode(&bad, shape).is_err());
        let mut bad = bytes.clone();
        bad[2] = 7;
        assert!(Node::decode(&bad, shape).is_err());
        // A neighbour count past the room: reading the vector still works, the list not.
        let mut bad = bytes.clone();
        let counts = Shape::VECTOR_OFFSET + 4 * shape.dims;
        bad[counts..counts + 2].copy_from_slice(&9u16.to_le_bytes());
        let view = NodeRef::parse(&bad, shape).unwrap();
        assert_eq!(view.vector(), vec![0.5, 0.5]);
        assert!(view.neighbors(0, &mut Vec::new()).is_err());
        assert!(Node::decode(&bad, shape).is_err());
    }

    #[test]
    fn metapages_round_trip_and_damage_is_an_error() {
        let meta = Meta {
            shape: Shape { dims: 100, m: 16 },
            ef_construction: 64,
            metric: Metric::Cosine,
            max_level: 9,
            entry: Some((a(3, 7), 4)),
            insert_block: 12,
            build_id: 0xdead_beef_1234,
        };
        assert_eq!(Meta::decode(&meta.encode()).unwrap(), meta);
        let empty = Meta {
            entry: None,
            ..meta
        };
        assert_eq!(Meta::decode(&empty.encode()).unwrap(), empty);
        let mut bad = meta.encode();
        bad[0] ^= 1;
        assert!(Meta::decode(&bad).is_err());
        let mut bad = meta.encode();
        bad[5] = 9;
        assert!(Meta::decode(&bad).is_err());
        assert!(Meta::decode(&bad[..10]).is_err());
    }

    #[test]
    fn addresses_pack_into_ids_and_big_vectors_cap_levels() {
        let x = a(u32::MAX, 407);
        assert_eq!(NodeAddr::unpack(x.pack()), x);
        let small = Shape { dims: 128, m: 16 };
        assert_eq!(small.max_level(8164), Some(16));
        let big = Shape { dims: 1900, m: 16 };
        let top = big.max_level(8164).unwrap();
        assert!(big.node_size(top) <= 8164 && big.node_size(top + 1) > 8164);
        assert_eq!(Shape { dims: 2100, m: 16 }.max_level(8164), None);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Node::decode(&b, Shape { dims: 2, m: 2 });
        }
    }
}
