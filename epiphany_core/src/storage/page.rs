//! Layout of one data page of an extent, and its validation.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "EPX1"
//!      4     4  CRC32C of bytes 8..(HEADER_LEN + len)
//!      8     8  extent id (the part it belongs to)
//!     16     4  sequence number of this page within the extent
//!     20     4  payload length in this page
//!     24     8  reserved, zero
//!     32     …  payload
//! ```
//! Every page of an extent but the last is full, so a byte offset maps to a page by
//! division. Integers are little-endian.

use crate::error::{Error, Result};

pub const MAGIC: [u8; 4] = *b"EPX1";
pub const HEADER_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    pub extent_id: u64,
    pub seq: u32,
    pub len: u32,
}

/// Writes header and payload into `page` (whose length is the store's page size).
pub fn encode(page: &mut [u8], header: PageHeader, payload: &[u8]) {
    assert!(
        HEADER_LEN + payload.len() <= page.len(),
        "payload larger than a page"
    );
    assert_eq!(header.len as usize, payload.len());
    page[0..4].copy_from_slice(&MAGIC);
    page[8..16].copy_from_slice(&header.extent_id.to_le_bytes());
    page[16..20].copy_from_slice(&header.seq.to_le_bytes());
    page[20..24].copy_from_slice(&header.len.to_le_bytes());
    page[24..32].fill(0);
    page[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    page[HEADER_LEN + payload.len()..].fill(0);
    let crc = crc32c::crc32c(&page[8..HEADER_LEN + payload.len()]);
    page[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Validates `page` as page `seq` of extent `extent_id` and returns its payload.
pub fn decode(page: &[u8], extent_id: u64, seq: u32, block: u32) -> Result<&[u8]> {
    let corrupt = |what: String| Error::Corrupted(format!("block {block}: {what}"));
    if page.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "page of {} bytes is shorter than its header",
            page.len()
        )));
    }
    if page[0..4] != MAGIC {
        return Err(corrupt("not an extent page (bad magic)".into()));
    }
    let u32_at = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().unwrap());
    let len = u32_at(20) as usize;
    if HEADER_LEN + len > page.len() {
        return Err(corrupt(format!("payload length {len} exceeds the page")));
    }
    let stored_crc = u32_at(4);
    let crc = crc32c::crc32c(&page[8..HEADER_LEN + len]);
    if crc != stored_crc {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored_crc:08x}, computed {crc:08x})"
        )));
    }
    let found_id = u64::from_le_bytes(page[8..16].try_into().unwrap());
    let found_seq = u32_at(16);
    if found_id != extent_id || found_seq != seq {
        return Err(corrupt(format!(
            "page {found_seq} of extent {found_id} found where page {seq} of extent {extent_id} belongs"
        )));
    }
    Ok(&page[HEADER_LEN..HEADER_LEN + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_with(payload: &[u8]) -> Vec<u8> {
        let mut page = vec![0xAA; 256];
        encode(
            &mut page,
            PageHeader {
                extent_id: 7,
                seq: 3,
                len: payload.len() as u32,
            },
            payload,
        );
        page
    }

    #[test]
    fn round_trips_and_checks_identity() {
        let page = page_with(b"hello");
        assert_eq!(decode(&page, 7, 3, 0).unwrap(), b"hello");
        assert!(decode(&page, 8, 3, 0)
            .unwrap_err()
            .to_string()
            .contains("extent 7"));
        assert!(decode(&page, 7, 4, 0).is_err());
        assert_eq!(decode(&page_with(b""), 7, 3, 0).unwrap(), b"");
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let page = page_with(b"some payload bytes");
        for byte in 0..HEADER_LEN + 18 {
            for bit in 0..8 {
                let mut bad = page.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode(&bad, 7, 3, 9).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in [0, 4, 31, 32, 64, 256] {
            for fill in [0u8, 0xFF, 0x20] {
                let page = vec![fill; len];
                assert!(decode(&page, 0, 0, 1).is_err());
            }
        }
        let mut huge_len = page_with(b"x");
        huge_len[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge_len, 7, 3, 0).is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_decode_to_an_error_or_a_payload(bytes in proptest::collection::vec(any::<u8>(), 0..300), id: u64, seq: u32) {
                let _ = decode(&bytes, id, seq, 0);
            }

            #[test]
            fn any_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..200), id: u64, seq: u32) {
                let mut page = vec![0u8; 232];
                encode(&mut page, PageHeader { extent_id: id, seq, len: payload.len() as u32 }, &payload);
                prop_assert_eq!(decode(&page, id, seq, 0).unwrap(), &payload[..]);
            }
        }
    }
}
