//! The warm tier's journal: an append-only log of changes, the point at
//! which a write is durable. sled is brought up to date from it by one
//! applier thread, off the path of the command (see `mod.rs`), and the
//! journal files are deleted once a sled flush covers them.
//!
//! A file `journal/<first sequence, 20 digits>.log` holds records
//! `body length (u32 LE) | crc32 of body (u32 LE) | body`; record `i` of a
//! file has sequence number `first + i`. A body is an operation code and its
//! fields, byte strings as `length (u32 LE) | bytes`:
//!
//! | code | operation | fields |
//! |---|---|---|
//! | `P` | store a key's record | db (u32), key, envelope |
//! | `D` | delete a key's record | db, key |
//! | `B` | several changes to one db, atomically | db, count (u32), then per change a flag (0 delete, 1 store), key, [envelope] |
//! | `E` | `B` with collection elements | `B`'s fields, then count (u32) and per element a flag, element record key, [element record] |
//! | `O` | `E` with the write's outbox records for the source | `E`'s fields, then outbox sequence (u64 LE), the records' bytes |
//! | `U` | drop an expiry index entry | db, deadline (u64 LE), key |
//! | `F` | FLUSHDB: the db gets a new tree | db, new tree name, background (u8) |
//! | `S` | SWAPDB | db a, db b |
//!
//! Stores and deletes write whole values, so replaying them onto a sled that
//! already has them changes nothing. FLUSHDB and SWAPDB do not have that
//! property: they store their sequence number with the database map in one
//! sled batch, and replay skips every record up to the stored number.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const HEADER_LEN: usize = 8;
/// A body longer than this is damage, not a record (a value is at most
/// `proto-max-bulk-len`, 512 MiB, and a batch holds few of them).
const MAX_BODY: usize = 1 << 31;
const DIR: &str = "journal";

/// A key and its new envelope (`None`: deleted), in a batch.
pub type Change<'a> = (&'a [u8], Option<&'a [u8]>);

/// One change, as the applier and the replay see it (borrowed from the
/// journal bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum Op<'a> {
    Put {
        db: u32,
        key: &'a [u8],
        raw: &'a [u8],
    },
    Delete {
        db: u32,
        key: &'a [u8],
    },
    Batch {
        db: u32,
        changes: Vec<Change<'a>>,
        /// Collection element records (sled keys and records, `None`:
        /// deleted) changed with the keys.
        elements: Vec<Change<'a>>,
        /// The write's records for the source (outbox sequence, records as
        /// `source::outbox` encodes them), in the same journal record as
        /// the change, so after a crash both are there or neither.
        outbox: Option<(u64, &'a [u8])>,
    },
    Unindex {
        db: u32,
        deadline: u64,
        key: &'a [u8],
    },
    FlushDb {
        db: u32,
        name: &'a [u8],
        background: bool,
    },
    SwapDb {
        a: u32,
        b: u32,
    },
}

impl Op<'_> {
    /// The (db, key) pairs whose latest state this record gives.
    pub fn keys(&self) -> impl Iterator<Item = (u32, &[u8])> {
        let (db, single, many): (u32, Option<&[u8]>, &[Change<'_>]) = match self {
            Op::Put { db, key, .. } | Op::Delete { db, key } => (*db, Some(key), &[]),
            Op::Batch { db, changes, .. } => (*db, None, changes.as_slice()),
            _ => (0, None, &[]),
        };
        single
            .into_iter()
            .chain(many.iter().map(|(key, _)| *key))
            .map(move |key| (db, key))
    }

    /// The sled writes applying this record takes (keys, elements, the
    /// outbox entry, index entries): the applier's work, which bounds how
    /// far it may trail the journal.
    pub fn sled_writes(&self) -> u64 {
        match self {
            Op::Batch {
                changes,
                elements,
                outbox,
                ..
            } => (changes.len() + elements.len() + usize::from(outbox.is_some())).max(1) as u64,
            _ => 1,
        }
    }

    /// Appends this operation as one record.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        match self {
            Op::Put { db, key, raw } => {
                out.push(b'P');
                put_u32(out, *db);
                put_bytes(out, key);
                put_bytes(out, raw);
            }
            Op::Delete { db, key } => {
                out.push(b'D');
                put_u32(out, *db);
                put_bytes(out, key);
            }
            Op::Batch {
                db,
                changes,
                elements,
                outbox,
            } => {
                out.push(match (outbox, elements.is_empty()) {
                    (Some(_), _) => b'O',
                    (None, true) => b'B',
                    (None, false) => b'E',
                });
                put_u32(out, *db);
                put_changes(out, changes);
                if outbox.is_some() || !elements.is_empty() {
                    put_changes(out, elements);
                }
                if let Some((seq, records)) = outbox {
                    out.extend_from_slice(&seq.to_le_bytes());
                    put_bytes(out, records);
                }
            }
            Op::Unindex { db, deadline, key } => {
                out.push(b'U');
                put_u32(out, *db);
                out.extend_from_slice(&deadline.to_le_bytes());
                put_bytes(out, key);
            }
            Op::FlushDb {
                db,
                name,
                background,
            } => {
                out.push(b'F');
                put_u32(out, *db);
                put_bytes(out, name);
                out.push(u8::from(*background));
            }
            Op::SwapDb { a, b } => {
                out.push(b'S');
                put_u32(out, *a);
                put_u32(out, *b);
            }
        }
        let body_len = (out.len() - start - HEADER_LEN) as u32;
        let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
        out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
        out[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    }
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_changes(out: &mut Vec<u8>, changes: &[Change<'_>]) {
    put_u32(out, changes.len() as u32);
    for (key, raw) in changes {
        out.push(u8::from(raw.is_some()));
        put_bytes(out, key);
        if let Some(raw) = raw {
            put_bytes(out, raw);
        }
    }
}

/// Why reading stopped before the end of a journal buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The buffer ends inside a record: a write cut short by a crash.
    Torn,
    /// A record fails its CRC or cannot be parsed.
    Corrupt,
}

/// Reads the records of a journal buffer in order. After `None`, `damage`
/// says whether the buffer ended cleanly.
pub struct Records<'a> {
    rest: &'a [u8],
    pub damage: Option<Damage>,
}

impl<'a> Records<'a> {
    pub fn new(buf: &'a [u8]) -> Records<'a> {
        Records {
            rest: buf,
            damage: None,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        if self.rest.is_empty() || self.damage.is_some() {
            return None;
        }
        let Some((header, rest)) = self.rest.split_first_chunk::<HEADER_LEN>() else {
            self.damage = Some(Damage::Torn);
            return None;
        };
        let (len, crc) = header.split_at(4);
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(crc.try_into().unwrap_or_default());
        if len > MAX_BODY {
            self.damage = Some(Damage::Corrupt);
            return None;
        }
        let Some(body) = rest.get(..len) else {
            self.damage = Some(Damage::Torn);
            return None;
        };
        if crc32fast::hash(body) != crc {
            self.damage = Some(Damage::Corrupt);
            return None;
        }
        match parse(body) {
            Some(op) => {
                self.rest = &rest[len..];
                Some(op)
            }
            None => {
                self.damage = Some(Damage::Corrupt);
                None
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_le_bytes(*head))
    }

    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*head))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let bytes = self.0.get(..len)?;
        self.0 = self.0.get(len..)?;
        Some(bytes)
    }

    fn changes(&mut self) -> Option<Vec<Change<'a>>> {
        let count = self.u32()? as usize;
        // Each change takes at least 5 bytes: the count cannot ask for
        // more room than the body could fill.
        let mut changes = Vec::with_capacity(count.min(self.0.len() / 5));
        for _ in 0..count {
            let store = self.u8()? == 1;
            let key = self.bytes()?;
            let raw = if store { Some(self.bytes()?) } else { None };
            changes.push((key, raw));
        }
        Some(changes)
    }
}

fn parse(body: &[u8]) -> Option<Op<'_>> {
    let mut r = Reader(body);
    let op = match r.u8()? {
        b'P' => Op::Put {
            db: r.u32()?,
            key: r.bytes()?,
            raw: r.bytes()?,
        },
        b'D' => Op::Delete {
            db: r.u32()?,
            key: r.bytes()?,
        },
        b'B' => Op::Batch {
            db: r.u32()?,
            changes: r.changes()?,
            elements: Vec::new(),
            outbox: None,
        },
        b'E' => Op::Batch {
            db: r.u32()?,
            changes: r.changes()?,
            elements: r.changes()?,
            outbox: None,
        },
        b'O' => Op::Batch {
            db: r.u32()?,
            changes: r.changes()?,
            elements: r.changes()?,
            outbox: Some((r.u64()?, r.bytes()?)),
        },
        b'U' => Op::Unindex {
            db: r.u32()?,
            deadline: r.u64()?,
            key: r.bytes()?,
        },
        b'F' => Op::FlushDb {
            db: r.u32()?,
            name: r.bytes()?,
            background: r.u8()? == 1,
        },
        b'S' => Op::SwapDb {
            a: r.u32()?,
            b: r.u32()?,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(op)
}

/// The journal's directory under the warm tier's.
pub fn dir(warm_dir: &Path) -> PathBuf {
    warm_dir.join(DIR)
}

fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

/// The journal files in sequence order: (first sequence number, path).
pub fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".log"))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

/// A whole journal file. Files are bounded by `SEGMENT_BYTES` when written;
/// a larger one is read in full all the same (it is ours, not a client's).
pub fn read_segment(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

/// The file being appended to.
pub struct Segment {
    pub path: PathBuf,
    file: File,
    pub len: u64,
}

impl Segment {
    pub fn create(dir: &Path, first_seq: u64) -> std::io::Result<Segment> {
        let path = dir.join(file_name(first_seq));
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        // The new name must survive a crash before the first fsync of data.
        File::open(dir)?.sync_all()?;
        Ok(Segment { path, file, len: 0 })
    }

    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Op<'static>> {
        vec![
            Op::Put {
                db: 3,
                key: b"k",
                raw: b"envelope",
            },
            Op::Delete { db: 0, key: b"" },
            Op::Batch {
                db: 1,
                changes: vec![(b"a", Some(b"1")), (b"b", None)],
                elements: Vec::new(),
                outbox: None,
            },
            Op::Batch {
                db: 1,
                changes: vec![(b"l", Some(b"meta"))],
                elements: vec![(b"e1", Some(b"x")), (b"e2", None)],
                outbox: None,
            },
            Op::Batch {
                db: 0,
                changes: vec![(b"s", Some(b"v"))],
                elements: Vec::new(),
                outbox: Some((1 << 50, b"records")),
            },
            Op::Unindex {
                db: 2,
                deadline: 1 << 40,
                key: b"x",
            },
            Op::FlushDb {
                db: 5,
                name: b"db:5:9",
                background: true,
            },
            Op::SwapDb { a: 1, b: 2 },
        ]
    }

    #[test]
    fn records_read_back_as_written() {
        let mut buf = Vec::new();
        for op in sample() {
            op.encode(&mut buf);
        }
        let mut records = Records::new(&buf);
        let read: Vec<Op<'_>> = records.by_ref().collect();
        assert_eq!(read, sample());
        assert_eq!(records.damage, None);
    }

    #[test]
    fn a_cut_or_damaged_tail_stops_the_reading_without_a_panic() {
        let mut buf = Vec::new();
        let mut boundaries = vec![0];
        for op in sample() {
            op.encode(&mut buf);
            boundaries.push(buf.len());
        }
        for cut in 0..buf.len() {
            let mut records = Records::new(&buf[..cut]);
            let count = records.by_ref().count();
            assert_eq!(
                count,
                boundaries.iter().filter(|&&b| b > 0 && b <= cut).count()
            );
            assert_eq!(records.damage.is_some(), !boundaries.contains(&cut));
        }
        for at in 0..buf.len() {
            let mut damaged = buf.clone();
            damaged[at] ^= 0x40;
            let mut records = Records::new(&damaged);
            let read: Vec<Op<'_>> = records.by_ref().collect();
            assert!(read.len() < sample().len(), "flip at {at} went unseen");
            assert_eq!(read[..], sample()[..read.len()]);
        }
    }

    #[test]
    fn segments_are_listed_in_sequence_order() {
        let dir = tempfile::tempdir().unwrap();
        for first in [10, 2, 300] {
            let mut segment = Segment::create(dir.path(), first).unwrap();
            segment.append(b"x").unwrap();
        }
        fs::write(dir.path().join("other.txt"), b"").unwrap();
        let found: Vec<u64> = segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(first, _)| first)
            .collect();
        assert_eq!(found, vec![2, 10, 300]);
    }
}
