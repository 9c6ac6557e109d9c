//! Typed Redis values and the per-key entry (value, expiry, access info).

use bytes::Bytes;

use crate::protocol::parse_i64;

/// A stored value. Collections arrive with the data-type work; every command
/// matches on this type, so a new variant is a compile error where it matters.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Bytes),
}

/// The type names `TYPE` and `SCAN ... TYPE` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
        }
    }

    /// The type of a warm-tier record of `kind`.
    pub fn from_kind(kind: u8) -> Option<ValueType> {
        match kind {
            super::warm::KIND_STRING => Some(ValueType::String),
            _ => None,
        }
    }

    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        match name.to_ascii_lowercase().as_slice() {
            b"string" => Some(ValueType::String),
            _ => None,
        }
    }
}

/// A hot-tier key's fixed cost beside its key and value bytes: the 96-byte
/// slot in the shard's dense vector (entry, key handle, hash and link),
/// about 6 bytes of bucket array, and the allocator's headers and rounding
/// of the key's and the value's allocations.
pub const ENTRY_OVERHEAD: usize = 128;
/// Extra cost of a key with a deadline in a memory-only shard: its
/// (deadline, position) pair in the B-tree that the active sweep pops from.
pub const EXPIRY_OVERHEAD: usize = 24;
/// Redis keeps strings up to this length in one allocation with their header.
const EMBSTR_MAX: usize = 44;

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Str(_) => ValueType::String,
        }
    }

    /// Bytes this value occupies in memory.
    pub fn mem_size(&self) -> usize {
        match self {
            Value::Str(data) => data.len(),
        }
    }
}

/// One key's record in the hot tier.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds.
    pub expire_at: Option<u64>,
    /// Seconds clock of the last access (LRU and OBJECT IDLETIME).
    pub access: u32,
    /// Logarithmic access counter (LFU and OBJECT FREQ).
    pub freq: u8,
    /// The string was changed in place (APPEND, SETRANGE, SETBIT): Redis then
    /// reports the `raw` encoding whatever its length.
    pub mutated: bool,
}

/// Redis shares the objects of the integers `0..OBJ_SHARED_INTEGERS`.
const SHARED_INTEGERS: i64 = 10_000;
/// Redis's `OBJ_SHARED_REFCOUNT`: the refcount it prints for a shared object.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// Redis's initial LFU counter for a new key.
pub const LFU_INIT: u8 = 5;

impl Entry {
    pub fn new(value: Value, expire_at: Option<u64>, now_secs: u32) -> Entry {
        Entry {
            value,
            expire_at,
            access: now_secs,
            freq: LFU_INIT,
            mutated: false,
        }
    }

    pub fn mem_size(&self, key_len: usize) -> usize {
        ENTRY_OVERHEAD + key_len + self.value.mem_size()
    }

    /// What `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match &self.value {
            Value::Str(data) => {
                if self.mutated {
                    "raw"
                } else if data.len() <= 20 && parse_i64(data).is_some() {
                    "int"
                } else if data.len() <= EMBSTR_MAX {
                    "embstr"
                } else {
                    "raw"
                }
            }
        }
    }

    /// What OBJECT REFCOUNT and DEBUG OBJECT report. Redis shares one object
    /// per small integer (0..10000) unless `shared_integers` is off (an
    /// LRU/LFU policy with a memory bound tracks each key's own object).
    pub fn refcount(&self, shared_integers: bool) -> i64 {
        match &self.value {
            Value::Str(data) => {
                let small = parse_i64(data).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n));
                if shared_integers && small && self.encoding() == "int" {
                    SHARED_REFCOUNT
                } else {
                    1
                }
            }
        }
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at.is_some_and(|at| at <= now_ms)
    }

    /// Records an access: LRU clock and Redis's probabilistic LFU increment.
    pub fn touch(&mut self, now_secs: u32, lfu_log_factor: u32) {
        self.access = now_secs;
        if self.freq < 255 {
            let base = f64::from(self.freq.saturating_sub(LFU_INIT));
            let probability = 1.0 / (base * f64::from(lfu_log_factor) + 1.0);
            if rand::random::<f64>() < probability {
                self.freq += 1;
            }
        }
    }
}
