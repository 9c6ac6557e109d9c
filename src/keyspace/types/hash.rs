//! A hash: fields and values in insertion order with O(1) lookup and O(1)
//! access by position (HRANDFIELD picks positions).

use indexmap::IndexMap;

use super::{alloc_size, limits, Collection, Common, Hasher, Member};

/// Redis 7.0's built-in `hash-max-listpack-entries`: 512, where its sample
/// `redis.conf` says 128 (a server started without a file, as `redis-server`
/// is, uses 512; sorted sets keep 128).
pub const MAX_LISTPACK_ENTRIES: usize = 512;

/// A field's fixed cost: its entry (hash, field, value) and its share of
/// the index table.
const SLOT: usize = 8 + 2 * std::mem::size_of::<Member>() + 12;

#[derive(Debug, Clone, Default)]
pub struct Hash {
    fields: IndexMap<Member, Member, Hasher>,
    /// Outgrew Redis's listpack thresholds once: it stays `hashtable`.
    big: bool,
    common: Common,
}

impl Collection for Hash {
    fn common(&self) -> &Common {
        &self.common
    }
    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
    fn len(&self) -> usize {
        self.fields.len()
    }
}

fn cost(field: &[u8], value: &[u8]) -> usize {
    SLOT + alloc_size(field.len()) + alloc_size(value.len())
}

impl Hash {
    pub fn restore(pairs: Vec<(Member, Member)>, generation: u64) -> Hash {
        let mut hash = Hash::default();
        for (field, value) in pairs {
            hash.common.bytes += cost(&field, &value);
            hash.big |= field.len() > limits::hash_value() || value.len() > limits::hash_value();
            hash.fields.insert(field, value);
        }
        hash.big |= hash.fields.len() > limits::hash_entries();
        hash.common.generation = generation;
        hash.common.track = true;
        hash
    }

    /// Redis converts a listpack when a field or value it is given is too
    /// long, or once it holds more than the entry limit.
    fn note_size(&mut self, field: &[u8], value: &[u8]) {
        let max_value = limits::hash_value();
        if field.len() > max_value
            || value.len() > max_value
            || self.fields.len() > limits::hash_entries()
        {
            self.big = true;
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.fields.get(field).map(|v| &**v)
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.fields.contains_key(field)
    }

    /// Stores `value` under `field`; true when the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.common.mark_member(field);
        self.common.bytes += cost(field, value);
        let new = match self.fields.get_mut(field) {
            Some(slot) => {
                self.common.bytes -= cost(field, slot);
                *slot = value.into();
                false
            }
            None => {
                self.fields.insert(field.into(), value.into());
                true
            }
        };
        self.note_size(field, value);
        new
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        // A listpack deletes in place, so Redis's small hashes keep their
        // order (HGETALL answers as it does); a big one may reorder, which
        // is what a hash table does anyway, and costs O(1).
        let removed = if self.big {
            self.fields.swap_remove(field)
        } else {
            self.fields.shift_remove(field)
        };
        match removed {
            Some(value) => {
                self.common.bytes -= cost(field, &value);
                self.common.mark_member(field);
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(f, v)| (&**f, &**v))
    }

    /// The field and value at `index` (0..len), for random picks.
    pub fn get_index(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.fields.get_index(index).map(|(f, v)| (&**f, &**v))
    }

    pub fn encoding(&self) -> &'static str {
        if self.big {
            "hashtable"
        } else {
            "listpack"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_bytes() {
        let mut hash = Hash::default();
        hash.common.adopt(3, true);
        hash.common.take_dirty();
        assert!(hash.insert(b"f", b"v"));
        assert!(!hash.insert(b"f", b"longer value"));
        assert!(hash.insert(b"g", b"w"));
        assert_eq!(hash.get(b"f"), Some(&b"longer value"[..]));
        assert_eq!(
            hash.common.bytes,
            cost(b"f", b"longer value") + cost(b"g", b"w")
        );
        assert!(hash.remove(b"f"));
        assert!(!hash.remove(b"f"));
        assert_eq!(hash.common.bytes, cost(b"g", b"w"));
        let dirty = hash.common.take_dirty().unwrap();
        assert_eq!(dirty.members.len(), 4);
        assert_eq!(hash.encoding(), "listpack");
        hash.insert(&[b'x'; 65], b"v");
        assert_eq!(hash.encoding(), "hashtable");
    }

    #[test]
    fn listpack_until_more_than_the_limit_and_order_kept() {
        let mut hash = Hash::default();
        for i in 0..MAX_LISTPACK_ENTRIES {
            hash.insert(format!("f{i}").as_bytes(), b"v");
        }
        // Updating a field of a full listpack does not convert it.
        hash.insert(b"f0", b"w");
        assert_eq!(hash.encoding(), "listpack");
        assert!(hash.remove(b"f1"));
        let order: Vec<&[u8]> = hash.iter().take(3).map(|(f, _)| f).collect();
        assert_eq!(order, vec![&b"f0"[..], b"f2", b"f3"]);
        hash.insert(b"f1", b"v");
        hash.insert(b"one more", b"v");
        assert_eq!(hash.encoding(), "hashtable");
        let bytes: usize = hash.iter().map(|(f, v)| cost(f, v)).sum();
        assert_eq!(hash.common.bytes, bytes);
    }
}
