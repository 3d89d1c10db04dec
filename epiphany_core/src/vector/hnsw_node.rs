//! The on-page form of an HNSW node: what the index access method stores per graph node.
//!
//! A node holds the table rows with its vector (equal vectors share a node, so ties never
//! crowd a newcomer out of every neighbour list), the vector, and a fixed number of
//! neighbour slots per level. Its size depends only on its level and the index's
//! parameters, so an insert rewrites neighbour lists in place. Neighbours are node
//! addresses (block, item): 6 bytes, like a TID. Decoding checks every length, so a
//! damaged page is an error, never a panic.

use crate::error::{Error, Result};

/// A node's address in the index: block and item number (1-based, as in a TID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    pub block: u32,
    pub item: u16,
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
        if bytes.len() < HEADER {
            return Err(corrupt("shorter than its header"));
        }
        if bytes[0] != VERSION {
            return Err(corrupt(&format!("unknown version {}", bytes[0])));
        }
        let level = bytes[1] as usize;
        let deleted = match bytes[2] {
            0 => false,
            1 => true,
            x => return Err(corrupt(&format!("flag {x}"))),
        };
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
        let addr = |at: usize| NodeAddr {
            block: u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")),
            item: u16::from_le_bytes(bytes[at + 4..at + 6].try_into().expect("2 bytes")),
        };
        let mut at = HEADER;
        let rows = (0..nrows).map(|i| addr(at + i * ADDR)).collect();
        at += MAX_ROWS * ADDR;
        let vector: Vec<f32> = bytes[at..at + 4 * dims]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        at += 4 * dims;
        let mut counts = Vec::with_capacity(level + 1);
        for l in 0..=level {
            let n = u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes")) as usize;
            let room = if l == 0 { 2 * shape.m } else { shape.m };
            if n > room {
                return Err(corrupt(&format!(
                    "{n} neighbours on level {l}, room for {room}"
                )));
            }
            counts.push(n);
            at += 2;
        }
        let mut neighbors = Vec::with_capacity(level + 1);
        for (l, &n) in counts.iter().enumerate() {
            let room = if l == 0 { 2 * shape.m } else { shape.m };
            neighbors.push((0..n).map(|i| addr(at + i * ADDR)).collect());
            at += room * ADDR;
        }
        Ok(Node {
            level,
            deleted,
            rows,
            vector,
            neighbors,
        })
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
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Node::decode(&b, Shape { dims: 2, m: 2 });
        }
    }
}
