//! The key-value store's on-disk encoding: region headers and log records (see the module
//! docs of [`crate::kv`] for the layout). Pure functions over byte slices.
#![allow(
    clippy::cast_possible_truncation,
    reason = "key and value lengths are checked against MAX_KEY and MAX_VALUE (and fit u16/u32) before any record is encoded"
)]

use alloc::vec::Vec;

use crate::device::SECTOR;

/// Magic at the start of a region header.
pub const MAGIC: [u8; 8] = *b"PVKVLOG1";
/// Format version in the region header.
pub const VERSION: u32 = 1;
/// Bytes of a record's fixed header.
pub const RECORD_HEADER: usize = 24;
/// Bytes of a region header that carry data (the rest of its sector is zero).
pub const REGION_HEADER: usize = 44;

/// Longest key in bytes.
pub const MAX_KEY: usize = 128;
/// Longest value in bytes.
pub const MAX_VALUE: usize = 16 * 1024;
/// The largest record (a put with the longest key and value).
pub const MAX_RECORD: usize = RECORD_HEADER + MAX_KEY + MAX_VALUE;

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sets a key to a value.
    Put = 1,
    /// Removes a key.
    Delete = 2,
    /// Commits the group of records since the previous commit.
    Commit = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Put),
            2 => Some(Self::Delete),
            3 => Some(Self::Commit),
            _ => None,
        }
    }
}

/// A region header's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionHeader {
    /// Which region (0 or 1).
    pub region: u32,
    /// Compaction generation: the valid header with the highest epoch names the live region.
    pub epoch: u64,
    /// Byte offset of the region's body on the disk.
    pub body_offset: u64,
    /// Bytes in the region's body.
    pub body_len: u64,
}

/// Why a region header sector is not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    /// Not a header at all (magic or checksum wrong): a blank, torn or foreign sector.
    Absent,
    /// A checksummed header of this store with another version or layout.
    Foreign,
}

impl RegionHeader {
    /// The header's sector.
    pub fn encode(&self) -> [u8; SECTOR] {
        let mut s = [0u8; SECTOR];
        s[0..8].copy_from_slice(&MAGIC);
        s[8..12].copy_from_slice(&VERSION.to_le_bytes());
        s[12..16].copy_from_slice(&self.region.to_le_bytes());
        s[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        s[24..32].copy_from_slice(&self.body_offset.to_le_bytes());
        s[32..40].copy_from_slice(&self.body_len.to_le_bytes());
        let crc = crc32fast::hash(&s[0..40]);
        s[40..44].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// The checksum that seeds the region's record chain.
    pub fn seed(&self) -> u32 {
        let s = self.encode();
        le32(&s[40..44])
    }

    /// Decodes a header sector.
    pub fn decode(s: &[u8; SECTOR]) -> Result<Self, HeaderCheck> {
        if s[0..8] != MAGIC || crc32fast::hash(&s[0..40]) != le32(&s[40..44]) {
            return Err(HeaderCheck::Absent);
        }
        if le32(&s[8..12]) != VERSION || s[44..].iter().any(|&b| b != 0) {
            return Err(HeaderCheck::Foreign);
        }
        Ok(Self {
            region: le32(&s[12..16]),
            epoch: le64(&s[16..24]),
            body_offset: le64(&s[24..32]),
            body_len: le64(&s[32..40]),
        })
    }
}

/// Where the log's chain stands: the next record's `prev` and `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Checksum of the last record (the region's seed before the first).
    pub prev: u32,
    /// Sequence number of the next record.
    pub seq: u64,
}

/// A record's fixed header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Checksum of everything after this field (header rest, key, value).
    pub crc: u32,
    /// Checksum of the previous record.
    pub prev: u32,
    /// Position in the region's chain.
    pub seq: u64,
    /// What it is.
    pub kind: Kind,
    /// Key bytes that follow.
    pub key_len: usize,
    /// Value bytes that follow (for a commit: the records it commits, carried as a count).
    pub value_len: usize,
}

impl RecordHeader {
    /// Bytes of the whole record.
    pub fn record_len(&self) -> usize {
        RECORD_HEADER
            + self.key_len
            + if self.kind == Kind::Commit {
                0
            } else {
                self.value_len
            }
    }
}

/// Why a record is not taken (recovery ends the log there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordCheck {
    /// Unknown kind or lengths outside the limits for its kind.
    Malformed,
    /// It does not continue the chain (`prev` or `seq` differ): stale or foreign bytes.
    NotNext,
    /// Its checksum does not match: a torn or damaged write.
    BadChecksum,
}

/// Decodes a record's fixed header and checks its place in the chain and its lengths.
pub fn decode_header(h: &[u8; RECORD_HEADER], chain: Chain) -> Result<RecordHeader, RecordCheck> {
    let kind = Kind::from_byte(h[16]).ok_or(RecordCheck::Malformed)?;
    let key_len = usize::from(u16::from_le_bytes([h[18], h[19]]));
    let value_len = le32(&h[20..24]) as usize;
    let ok = h[17] == 0
        && match kind {
            Kind::Put => (1..=MAX_KEY).contains(&key_len) && value_len <= MAX_VALUE,
            Kind::Delete => (1..=MAX_KEY).contains(&key_len) && value_len == 0,
            Kind::Commit => key_len == 0 && value_len >= 1,
        };
    if !ok {
        return Err(RecordCheck::Malformed);
    }
    let header = RecordHeader {
        crc: le32(&h[0..4]),
        prev: le32(&h[4..8]),
        seq: le64(&h[8..16]),
        kind,
        key_len,
        value_len,
    };
    if header.prev != chain.prev || header.seq != chain.seq {
        return Err(RecordCheck::NotNext);
    }
    Ok(header)
}

/// Decodes a record's fixed header at rest (read back through the index), taking its place
/// in the chain from its own fields: the checksum still covers everything.
pub fn decode_self_chained(h: &[u8; RECORD_HEADER]) -> Option<RecordHeader> {
    let chain = Chain {
        prev: le32(&h[4..8]),
        seq: le64(&h[8..16]),
    };
    decode_header(h, chain).ok()
}

/// Checks a whole record (`bytes` is exactly [`RecordHeader::record_len`] long) against its checksum.
pub fn verify(header: &RecordHeader, bytes: &[u8]) -> Result<(), RecordCheck> {
    if crc32fast::hash(&bytes[4..]) == header.crc {
        Ok(())
    } else {
        Err(RecordCheck::BadChecksum)
    }
}

/// Appends a record to `out` and advances `chain`; returns the record's length.
pub fn encode(out: &mut Vec<u8>, chain: &mut Chain, kind: Kind, key: &[u8], value: &[u8]) -> usize {
    let start = out.len();
    let value_field = match kind {
        Kind::Commit => 0,
        _ => value.len(),
    };
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&chain.prev.to_le_bytes());
    out.extend_from_slice(&chain.seq.to_le_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(&(value_field as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    chain.prev = crc;
    chain.seq += 1;
    out.len() - start
}

/// Appends a commit record for `count` records to `out` and advances `chain`.
pub fn encode_commit(out: &mut Vec<u8>, chain: &mut Chain, count: u32) -> usize {
    let start = out.len();
    encode(out, chain, Kind::Commit, &[], &[]);
    // The count travels in the value-length field (a commit has no value bytes).
    out[start + 20..start + 24].copy_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    chain.prev = crc;
    out.len() - start
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header_of(bytes: &[u8]) -> [u8; RECORD_HEADER] {
        let mut h = [0u8; RECORD_HEADER];
        h.copy_from_slice(&bytes[..RECORD_HEADER]);
        h
    }

    #[test]
    fn region_header_round_trips_and_rejects_damage() {
        let h = RegionHeader {
            region: 1,
            epoch: 7,
            body_offset: 1024,
            body_len: 4096,
        };
        let mut s = h.encode();
        assert_eq!(RegionHeader::decode(&s), Ok(h));
        s[20] ^= 1;
        assert_eq!(RegionHeader::decode(&s), Err(HeaderCheck::Absent));
        assert_eq!(RegionHeader::decode(&[0; SECTOR]), Err(HeaderCheck::Absent));
    }

    #[test]
    fn records_chain_and_verify() {
        let mut out = Vec::new();
        let start = Chain { prev: 99, seq: 0 };
        let mut chain = start;
        let n = encode(&mut out, &mut chain, Kind::Put, b"key", b"value");
        let c = encode_commit(&mut out, &mut chain, 1);
        let h = decode_header(&header_of(&out), start).expect("first");
        assert_eq!((h.kind, h.record_len()), (Kind::Put, n));
        assert_eq!(verify(&h, &out[..n]), Ok(()));
        let next = Chain {
            prev: h.crc,
            seq: 1,
        };
        let ch = decode_header(&header_of(&out[n..]), next).expect("commit");
        assert_eq!(
            (ch.kind, ch.value_len, ch.record_len()),
            (Kind::Commit, 1, c)
        );
        assert_eq!(verify(&ch, &out[n..n + c]), Ok(()));
        assert_eq!(
            chain,
            Chain {
                prev: ch.crc,
                seq: 2
            }
        );
        // Out of place in the chain.
        assert_eq!(
            decode_header(&header_of(&out[n..]), start),
            Err(RecordCheck::NotNext)
        );
    }

    proptest! {
        /// Any single corrupted byte of a record is caught by the header checks or the
        /// checksum.
        #[test]
        fn any_corruption_is_caught(
            key in proptest::collection::vec(any::<u8>(), 1..=MAX_KEY),
            value in proptest::collection::vec(any::<u8>(), 0..300),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut out = Vec::new();
            let start = Chain { prev: 5, seq: 3 };
            let mut chain = start;
            let n = encode(&mut out, &mut chain, Kind::Put, &key, &value);
            let at = at.index(n);
            out[at] ^= flip;
            let caught = match decode_header(&header_of(&out), start) {
                Err(_) => true,
                Ok(h) => h.record_len() != n || verify(&h, &out[..n]).is_err(),
            };
            prop_assert!(caught);
        }

        /// Arbitrary header bytes decode or are refused, never panic; accepted lengths are in
        /// the limits.
        #[test]
        fn hostile_headers(bytes in proptest::collection::vec(any::<u8>(), RECORD_HEADER), prev in any::<u32>(), seq in any::<u64>()) {
            if let Ok(h) = decode_header(&header_of(&bytes), Chain { prev, seq }) {
                prop_assert!(h.record_len() <= MAX_RECORD);
            }
        }
    }
}
