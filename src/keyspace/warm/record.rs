//! The byte layout of the warm tier: record keys inside a database's sled
//! tree, and the CRC32-checked envelope every key's record is stored in.
//!
//! Inside one database tree a one-byte prefix separates the record families:
//!
//! | prefix | sled key | sled value |
//! |---|---|---|
//! | `k` | `k` + hash (u32 BE) + key | envelope (below) |
//! | `x` | `x` + deadline (Unix ms, u64 BE) + key | empty: the expiry index |
//! | `e` | `e` + generation (u64 BE) + element sub-key | a collection element |
//! | `g` | `g` + generation (u64 BE) | empty: a generation to delete |
//!
//! Key records sort by hash, so a SCAN cursor is a hash and a key present for
//! a whole scan is returned exactly once. The envelope is
//! `crc32 (u32 LE) | tag (u8) | [deadline (u64 LE)] | version (LEB128) |
//! payload`, the tag holding the format (bits 5..8), whether a deadline
//! follows (bit 4) and the kind (bits 0..4). The CRC covers the user key and
//! everything after it, so a record read under the wrong key fails its check.
//!
//! Records are kept short on purpose: sled copies a leaf's keys and values
//! on every change, and keeps those of up to 22 bytes inline (no allocation,
//! no reference count), so a 16-byte key with a small value costs a plain
//! copy.

use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64;

/// A record key or envelope, on the stack when short (most are): sled copies
/// what it keeps, so a heap buffer here would be one more allocation per write.
pub type Buf = SmallVec<[u8; 64]>;

pub const KEY_PREFIX: u8 = b'k';
pub const EXPIRY_PREFIX: u8 = b'x';
/// Bytes a `k` record key adds to the user key: the prefix and the hash.
pub const KEY_OVERHEAD: usize = 5;

/// Envelope format written by this version (the tag's top three bits).
const FORMAT: u8 = 1;
const FORMAT_SHIFT: u32 = 5;
const HAS_DEADLINE: u8 = 1 << 4;
const KIND_MASK: u8 = 0x0f;
const CRC_LEN: usize = 4;

/// What a key record holds: a string's bytes, or a collection's metadata.
pub const KIND_STRING: u8 = 0;
pub const KIND_LIST: u8 = 1;
pub const KIND_HASH: u8 = 2;
pub const KIND_SET: u8 = 3;
pub const KIND_ZSET: u8 = 4;

/// Whether a record of `kind` holds a collection's metadata.
pub fn is_collection(kind: u8) -> bool {
    (KIND_LIST..=KIND_ZSET).contains(&kind)
}

/// A key's position in a database tree and in SCAN order.
pub fn key_hash(key: &[u8]) -> u32 {
    (xxh3_64(key) >> 32) as u32
}

/// `k` + hash + key.
pub fn record_key(key: &[u8]) -> Buf {
    let mut out = Buf::with_capacity(KEY_OVERHEAD + key.len());
    out.push(KEY_PREFIX);
    out.extend_from_slice(&key_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The first record key at or after scan position `position`.
pub fn record_key_from(position: u32) -> [u8; 5] {
    let mut out = [KEY_PREFIX; 5];
    out[1..].copy_from_slice(&position.to_be_bytes());
    out
}

/// Splits a `k` record key into (hash, user key).
pub fn parse_record_key(raw: &[u8]) -> Option<(u32, &[u8])> {
    let (&prefix, rest) = raw.split_first()?;
    if prefix != KEY_PREFIX || rest.len() < 4 {
        return None;
    }
    let (hash, key) = rest.split_at(4);
    Some((u32::from_be_bytes(hash.try_into().ok()?), key))
}

/// `x` + deadline + key.
pub fn expiry_key(deadline_ms: u64, key: &[u8]) -> Buf {
    let mut out = Buf::with_capacity(9 + key.len());
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
    /// Truncated, or a format this version does not know.
    Format,
    /// The CRC does not match: corrupt, torn or misplaced.
    Checksum,
}

pub fn encode(key: &[u8], header: Header, payload: &[u8]) -> Buf {
    let mut out = Buf::with_capacity(CRC_LEN + 1 + 8 + 10 + payload.len());
    out.extend_from_slice(&[0; CRC_LEN]);
    let mut tag = (FORMAT << FORMAT_SHIFT) | (header.kind & KIND_MASK);
    if header.expire_at.is_some() {
        tag |= HAS_DEADLINE;
    }
    out.push(tag);
    if let Some(at) = header.expire_at {
        out.extend_from_slice(&at.to_le_bytes());
    }
    let mut version = header.version;
    loop {
        let byte = (version & 0x7f) as u8;
        version >>= 7;
        if version == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(payload);
    let crc = checksum(key, &out[CRC_LEN..]);
    out[..CRC_LEN].copy_from_slice(&crc.to_le_bytes());
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
    let (header, payload_at) = parse_header(raw)?;
    let stored = raw
        .get(..CRC_LEN)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(RecordError::Format)?;
    let body = raw.get(CRC_LEN..).ok_or(RecordError::Format)?;
    if checksum(key, body) != stored {
        return Err(RecordError::Checksum);
    }
    Ok((header, raw.get(payload_at..).unwrap_or_default()))
}

/// The header without the CRC check: for bookkeeping on a record being
/// replaced or deleted, whose payload nobody will read.
pub fn peek_header(raw: &[u8]) -> Result<Header, RecordError> {
    parse_header(raw).map(|(header, _)| header)
}

/// The collection generation a stored envelope names, if it holds a
/// collection's metadata (read without the CRC check, for bookkeeping).
pub fn peek_generation(raw: &[u8]) -> Option<u64> {
    let (header, at) = parse_header(raw).ok()?;
    if !is_collection(header.kind) {
        return None;
    }
    super::collections::meta_generation(raw.get(at..)?)
}

/// The header and where the payload starts.
fn parse_header(raw: &[u8]) -> Result<(Header, usize), RecordError> {
    let tag = *raw.get(CRC_LEN).ok_or(RecordError::Format)?;
    if tag >> FORMAT_SHIFT != FORMAT {
        return Err(RecordError::Format);
    }
    let mut at = CRC_LEN + 1;
    let expire_at = if tag & HAS_DEADLINE != 0 {
        let bytes = raw.get(at..at + 8).ok_or(RecordError::Format)?;
        at += 8;
        let deadline = u64::from_le_bytes(bytes.try_into().map_err(|_| RecordError::Format)?);
        Some(deadline)
    } else {
        None
    };
    let mut version = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *raw.get(at).ok_or(RecordError::Format)?;
        at += 1;
        version |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let header = Header {
                kind: tag & KIND_MASK,
                expire_at,
                version,
            };
            return Ok((header, at));
        }
    }
    Err(RecordError::Format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_checks() {
        for (expire_at, version) in [
            (Some(1_700_000_000_123), 42),
            (None, 0),
            (None, u64::MAX),
            (Some(u64::MAX), 1 << 35),
        ] {
            let header = Header {
                kind: KIND_STRING,
                expire_at,
                version,
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
                // A cut inside the payload passes the header and fails the CRC.
                assert!(decode(b"key", &raw[..len]).is_err());
            }
        }
    }

    #[test]
    fn a_small_string_fits_sleds_inline_size() {
        let key = b"key:000000123456";
        let raw = encode(
            key,
            Header {
                kind: KIND_STRING,
                expire_at: None,
                version: 1 << 20,
            },
            b"xxx",
        );
        assert!(
            record_key(key).len() <= 22 && raw.len() <= 22,
            "{}",
            raw.len()
        );
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
        assert_eq!(parse_record_key(b"k12"), None);
        assert_eq!(parse_expiry_key(b""), None);
        // Garbage never panics.
        for len in 0..12 {
            let junk = vec![0xffu8; len];
            let _ = decode(b"k", &junk);
            let _ = peek_header(&junk);
        }
    }
}
