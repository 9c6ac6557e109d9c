//! The byte form of outbox records: how one write's records travel in the
//! warm tier's journal and wait in its outbox tree until they are shipped.
//!
//! `count (u32 LE)`, then per record: db (u32 LE), key, version (u64 LE),
//! an op tag and its fields; byte strings as `length (u32 LE) | bytes`, an
//! optional expiry as a flag byte and an i64 LE.
//!
//! | tag | op | fields |
//! |---|---|---|
//! | `s` | PutString | value, expiry |
//! | `d` | DeleteKey | |
//! | `x` | SetExpire | expiry |
//! | `e` | PutElement | kind, element, value |
//! | `r` | DeleteElement | kind, element |
//! | `F` | FlushDb | |
//! | `A` | FlushAll | |

use bytes::Bytes;

use super::{CollectionKind, Op, OutboxRecord};

/// Appends `records` to `out`.
pub fn encode(records: &[OutboxRecord], out: &mut Vec<u8>) {
    put_u32(out, records.len() as u32);
    for record in records {
        put_u32(out, record.db);
        put_bytes(out, &record.key);
        out.extend_from_slice(&record.version.to_le_bytes());
        match &record.op {
            Op::PutString {
                value,
                expire_at_ms,
            } => {
                out.push(b's');
                put_bytes(out, value);
                put_expiry(out, *expire_at_ms);
            }
            Op::DeleteKey => out.push(b'd'),
            Op::SetExpire { expire_at_ms } => {
                out.push(b'x');
                put_expiry(out, *expire_at_ms);
            }
            Op::PutElement {
                kind,
                element,
                value,
            } => {
                out.push(b'e');
                out.push(kind_code(*kind));
                put_bytes(out, element);
                put_bytes(out, value);
            }
            Op::DeleteElement { kind, element } => {
                out.push(b'r');
                out.push(kind_code(*kind));
                put_bytes(out, element);
            }
            Op::FlushDb => out.push(b'F'),
            Op::FlushAll => out.push(b'A'),
        }
    }
}

/// The records `raw` holds; `None` when it is not what [`encode`] writes
/// (a damaged entry is reported, never a panic).
pub fn decode(raw: &[u8]) -> Option<Vec<OutboxRecord>> {
    let mut reader = Reader { rest: raw };
    let count = reader.u32()?;
    // Each record takes at least 17 bytes: never trust a count for more.
    let mut records = Vec::with_capacity((count as usize).min(raw.len() / 17));
    for _ in 0..count {
        let db = reader.u32()?;
        let key = reader.bytes()?;
        let version = reader.u64()?;
        let op = match reader.u8()? {
            b's' => Op::PutString {
                value: reader.bytes()?,
                expire_at_ms: reader.expiry()?,
            },
            b'd' => Op::DeleteKey,
            b'x' => Op::SetExpire {
                expire_at_ms: reader.expiry()?,
            },
            b'e' => Op::PutElement {
                kind: kind_of(reader.u8()?)?,
                element: reader.bytes()?,
                value: reader.bytes()?,
            },
            b'r' => Op::DeleteElement {
                kind: kind_of(reader.u8()?)?,
                element: reader.bytes()?,
            },
            b'F' => Op::FlushDb,
            b'A' => Op::FlushAll,
            _ => return None,
        };
        records.push(OutboxRecord {
            db,
            key,
            version,
            op,
        });
    }
    reader.rest.is_empty().then_some(records)
}

/// Bytes a record takes in memory and on disk, for `outbox-max-bytes`.
pub fn record_cost(record: &OutboxRecord) -> usize {
    let payload = match &record.op {
        Op::PutString { value, .. } => value.len(),
        Op::PutElement { element, value, .. } => element.len() + value.len(),
        Op::DeleteElement { element, .. } => element.len(),
        _ => 0,
    };
    32 + record.key.len() + payload
}

fn kind_code(kind: CollectionKind) -> u8 {
    match kind {
        CollectionKind::List => b'l',
        CollectionKind::Hash => b'h',
        CollectionKind::Set => b's',
        CollectionKind::ZSet => b'z',
    }
}

fn kind_of(code: u8) -> Option<CollectionKind> {
    Some(match code {
        b'l' => CollectionKind::List,
        b'h' => CollectionKind::Hash,
        b's' => CollectionKind::Set,
        b'z' => CollectionKind::ZSet,
        _ => return None,
    })
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_expiry(out: &mut Vec<u8>, expire_at_ms: Option<i64>) {
    match expire_at_ms {
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&at.to_le_bytes());
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.u32()? as usize;
        self.take(len).map(Bytes::copy_from_slice)
    }

    fn expiry(&mut self) -> Option<Option<i64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<OutboxRecord> {
        let rec = |key: &str, version, op| OutboxRecord {
            db: 3,
            key: Bytes::copy_from_slice(key.as_bytes()),
            version,
            op,
        };
        vec![
            rec(
                "s",
                1,
                Op::PutString {
                    value: Bytes::from_static(b"v"),
                    expire_at_ms: Some(-5),
                },
            ),
            rec("d", 2, Op::DeleteKey),
            rec("x", 3, Op::SetExpire { expire_at_ms: None }),
            rec(
                "l",
                4,
                Op::PutElement {
                    kind: CollectionKind::List,
                    element: Bytes::from_static(&[0, 1, 2, 3, 4, 5, 6, 7]),
                    value: Bytes::from_static(b"item"),
                },
            ),
            rec(
                "z",
                5,
                Op::DeleteElement {
                    kind: CollectionKind::ZSet,
                    element: Bytes::from_static(b"m"),
                },
            ),
            rec("", 6, Op::FlushDb),
            rec("", u64::MAX, Op::FlushAll),
        ]
    }

    #[test]
    fn records_read_back_as_written() {
        let records = sample();
        let mut raw = Vec::new();
        encode(&records, &mut raw);
        assert_eq!(decode(&raw), Some(records));
    }

    #[test]
    fn damaged_bytes_are_refused_without_a_panic() {
        let mut raw = Vec::new();
        encode(&sample(), &mut raw);
        for cut in 0..raw.len() {
            assert_eq!(decode(&raw[..cut]), None, "cut at {cut}");
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), None);
    }
}
