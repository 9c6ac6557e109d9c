//! The byte layout of the warm tier: record keys inside a database's sled
//! tree, and the CRC32-checked envelope every key's record is stored in.
//!
//! Inside one database tree a one-byte prefix separates the record families:
//!
//! | prefix | sled key | sled value |
//! |---|---|---|
//! | `k` | `k` + xxh3(key) (u64 BE) + key | envelope (below) |
//! | `x` | `x` + deadline (Unix ms, u64 BE) + key | empty: the expiry index |
//! | `e` | `e` + generation (u64 BE) + element sub-key | a collection element |
//! | `g` | `g` + generation (u64 BE) | empty: a generation to delete |
//!
//! Key records sort by hash, so a SCAN cursor is a hash and a key present for
//! a whole scan is returned exactly once. The envelope is
//! `crc32 (u32 LE) | format (u8) | kind (u8) | deadline (u64 LE, 0 = none) |
//! version (u64 LE) | payload`, the CRC covering the user key and everything
//! after it, so a record read under the wrong key fails its check too.

use xxhash_rust::xxh3::xxh3_64;

pub const KEY_PREFIX: u8 = b'k';
pub const EXPIRY_PREFIX: u8 = b'x';

/// Envelope format written by this version.
const FORMAT: u8 = 1;
pub const HEADER_LEN: usize = 4 + 1 + 1 + 8 + 8;

/// What a key record holds: a string's bytes, or a collection's metadata.
pub const KIND_STRING: u8 = 0;

/// A key's position in a database tree and in SCAN order.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// `k` + hash + key.
pub fn record_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.push(KEY_PREFIX);
    out.extend_from_slice(&key_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The first record key at or after scan position `position`.
pub fn record_key_from(position: u64) -> [u8; 9] {
    let mut out = [KEY_PREFIX; 9];
    out[1..].copy_from_slice(&position.to_be_bytes());
    out
}

/// Splits a `k` record key into (hash, user key).
pub fn parse_record_key(raw: &[u8]) -> Option<(u64, &[u8])> {
    let (&prefix, rest) = raw.split_first()?;
    if prefix != KEY_PREFIX || rest.len() < 8 {
        return None;
    }
    let (hash, key) = rest.split_at(8);
    Some((u64::from_be_bytes(hash.try_into().ok()?), key))
}

/// `x` + deadline + key.
pub fn expiry_key(deadline_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.push(EXPIRY_PREFIX);
    out.extend_from_slice(&deadline_ms.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits an `x` record key into (deadline, user key).
pub fn parse_expiry_key(raw: &[u8]) -> Option<(u64, &[u8])> {
    let (&prefix, rest) = raw.split_first()?;
    if prefix != EXPIRY_PREFIX || rest.len() < 8 {
        return None;
    }
    let (deadline, key) = rest.split_at(8);
    Some((u64::from_be_bytes(deadline.try_into().ok()?), key))
}

/// The fixed fields of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub expire_at: Option<u64>,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Shorter than a header, or a format this version does not know.
    Format,
    /// The CRC does not match: corrupt, torn or misplaced.
    Checksum,
}

pub fn encode(key: &[u8], header: Header, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0; 4]);
    out.push(FORMAT);
    out.push(header.kind);
    out.extend_from_slice(&header.expire_at.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&header.version.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = checksum(key, &out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

fn checksum(key: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(body);
    hasher.finalize()
}

/// Checks and splits an envelope into its header and payload.
pub fn decode<'a>(key: &[u8], raw: &'a [u8]) -> Result<(Header, &'a [u8]), RecordError> {
    let header = peek_header(raw)?;
    let stored = raw
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(RecordError::Format)?;
    let body = raw.get(4..).ok_or(RecordError::Format)?;
    if checksum(key, body) != stored {
        return Err(RecordError::Checksum);
    }
    Ok((header, raw.get(HEADER_LEN..).unwrap_or_default()))
}

/// The header without the CRC check: for bookkeeping on a record being
/// replaced or deleted, whose payload nobody will read.
pub fn peek_header(raw: &[u8]) -> Result<Header, RecordError> {
    let fixed = raw.get(..HEADER_LEN).ok_or(RecordError::Format)?;
    if fixed[4] != FORMAT {
        return Err(RecordError::Format);
    }
    let word = |at: usize| {
        fixed
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    };
    let deadline = word(6);
    Ok(Header {
        kind: fixed[5],
        expire_at: (deadline != 0).then_some(deadline),
        version: word(14),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_checks() {
        let header = Header {
            kind: KIND_STRING,
            expire_at: Some(1_700_000_000_123),
            version: 42,
        };
        let raw = encode(b"key", header, b"payload");
        assert_eq!(decode(b"key", &raw), Ok((header, &b"payload"[..])));
        assert_eq!(decode(b"other", &raw), Err(RecordError::Checksum));
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x40;
            assert!(decode(b"key", &bad).is_err(), "flip at {i} went unseen");
        }
        for len in 0..raw.len() {
            assert!(decode(b"key", &raw[..len]).is_err());
        }
    }

    #[test]
    fn keys_parse_back_and_sort_by_hash() {
        let raw = record_key(b"user:1");
        assert_eq!(
            parse_record_key(&raw),
            Some((key_hash(b"user:1"), &b"user:1"[..]))
        );
        assert!(record_key_from(key_hash(b"user:1")).as_slice() <= raw.as_slice());
        let expiry = expiry_key(99, b"k");
        assert_eq!(parse_expiry_key(&expiry), Some((99, &b"k"[..])));
        assert!(expiry_key(1, b"zzz") < expiry_key(2, b"a"));
        assert_eq!(parse_record_key(b"k1234"), None);
        assert_eq!(parse_expiry_key(b""), None);
    }
}
