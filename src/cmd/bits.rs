//! Bitmap family: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
//! BITFIELD_RO, on string values.

use bytes::Bytes;

use super::args::{parse_int, Args, CmdResult};
use super::context::Ctx;
use super::pubsub::{keymiss_nth, notify, notify_write};
use super::strings::{edit_string, fail, keyword, len_reply, txn_str, with_string};
use crate::error;
use crate::keyspace::Value;
use crate::protocol::{parse_i64, Reply};
use crate::pubsub::notify::{GENERIC, NEW, STRING};

/// A bit offset argument: a non-negative integer whose byte lies below
/// `proto-max-bulk-len` (2^32 bits by default). With `field_bits`, BITFIELD's
/// `#N` form means N times the field width.
fn bit_offset(raw: &[u8], field_bits: Option<u32>, max_len: u64) -> Result<u64, Reply> {
    let invalid = || fail(error::BIT_OFFSET);
    let (digits, scale) = match (raw.split_first(), field_bits) {
        (Some((b'#', rest)), Some(bits)) => (rest, i64::from(bits)),
        _ => (raw, 1),
    };
    let offset = parse_i64(digits)
        .and_then(|n| n.checked_mul(scale))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(invalid)?;
    if offset >> 3 >= max_len {
        return Err(invalid());
    }
    Ok(offset)
}

fn bit_at(data: &[u8], offset: u64) -> bool {
    usize::try_from(offset >> 3)
        .ok()
        .and_then(|byte| data.get(byte))
        .is_some_and(|byte| byte & (0x80 >> (offset & 7)) != 0)
}

/// # Format
/// `SETBIT key offset value`
pub fn setbit(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let offset = bit_offset(args.next_bytes()?, None, ctx.max_string_len())?;
    let on = parse_i64(args.next_bytes()?)
        .filter(|value| value & !1 == 0)
        .ok_or(fail(error::BIT_VALUE))?
        == 1;
    let byte = usize::try_from(offset >> 3).map_err(|_| fail(error::BIT_OFFSET))?;
    let mask = 0x80u8 >> (offset & 7);
    ctx.ks().write(ctx.db(), key, |txn| {
        let old_len = txn_str(txn, 0)?.map(<[u8]>::len);
        let (old, new_len) = edit_string(txn, 0, byte + 1, |buf| {
            let slot = buf.get_mut(byte)?;
            let old = *slot & mask != 0;
            if on {
                *slot |= mask;
            } else {
                *slot &= !mask;
            }
            Some(old)
        })?;
        // As Redis: a key created or grown, or a bit that flipped, is a
        // change; setting a bit to what it was is not (no event, no WATCH).
        if old_len == Some(new_len) && old == Some(on) {
            txn.left_unchanged(0);
        } else {
            notify_write(ctx, old_len.is_none(), STRING, "setbit", key);
        }
        Ok(Reply::Int(i64::from(old == Some(true))))
    })
}

/// # Format
/// `GETBIT key offset`
pub fn getbit(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let offset = bit_offset(args.next_bytes()?, None, ctx.max_string_len())?;
    let bit = with_string(ctx, key, |data| bit_at(data, offset))?;
    Ok(Reply::Int(i64::from(bit == Some(true))))
}

/// The optional `start end [BYTE | BIT]` range of BITCOUNT and BITPOS.
struct BitRange {
    start: i64,
    end: Option<i64>,
    in_bits: bool,
}

fn parse_unit(arg: Option<&Bytes>) -> Result<bool, Reply> {
    match arg.map(|arg| keyword(arg)).as_deref() {
        None | Some(b"BYTE") => Ok(false),
        Some(b"BIT") => Ok(true),
        Some(_) => Err(fail(error::SYNTAX)),
    }
}

impl BitRange {
    /// Redis's normalisation: negative indexes count from the end, then both
    /// ends are clamped into the string. The inclusive bit positions, or
    /// `None` for an empty range.
    fn resolve(&self, byte_len: usize) -> Option<(u64, u64)> {
        let unit_len =
            i64::try_from(byte_len)
                .ok()?
                .checked_mul(if self.in_bits { 8 } else { 1 })?;
        let end = self.end.unwrap_or(unit_len - 1);
        let start = if self.start < 0 {
            unit_len + self.start
        } else {
            self.start
        }
        .max(0);
        let end = if end < 0 { unit_len + end } else { end }
            .max(0)
            .min(unit_len - 1);
        if start > end {
            return None;
        }
        let (start, end) = (start as u64, end as u64);
        Some(if self.in_bits {
            (start, end)
        } else {
            (start * 8, end * 8 + 7)
        })
    }
}

fn popcount(bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let tail: u64 = words
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    let mut word = [0u8; 8];
    words.fold(tail, |count, chunk| {
        word.copy_from_slice(chunk);
        count + u64::from(u64::from_ne_bytes(word).count_ones())
    })
}

/// Set bits among bit positions `first..=last`.
fn count_bits(data: &[u8], first: u64, last: u64) -> u64 {
    let (Ok(first_byte), Ok(last_byte)) = (usize::try_from(first >> 3), usize::try_from(last >> 3))
    else {
        return 0;
    };
    let Some(bytes) = data.get(first_byte..=last_byte) else {
        return 0;
    };
    // Bits of the edge bytes that lie outside the range.
    let head = bytes.first().map_or(0, |b| b & !(0xFFu8 >> (first & 7)));
    let tail = bytes.last().map_or(0, |b| b & (0x7Fu8 >> (last & 7)));
    popcount(bytes) - u64::from(head.count_ones()) - u64::from(tail.count_ones())
}

/// The first bit equal to `want` among positions `first..=last`.
fn find_bit(data: &[u8], want: bool, first: u64, last: u64) -> Option<u64> {
    let skip = if want { 0x00 } else { 0xFF };
    let mut pos = first;
    while pos <= last {
        let byte_index = usize::try_from(pos >> 3).ok()?;
        let byte = *data.get(byte_index)?;
        if pos & 7 == 0 && pos + 7 <= last && byte == skip {
            // Jump over a run of whole bytes that cannot hold the bit.
            let run_end = usize::try_from((last + 1) >> 3).ok()?;
            let run = data.get(byte_index..run_end)?;
            let found = run.iter().position(|&b| b != skip).unwrap_or(run.len());
            pos = (byte_index + found) as u64 * 8;
            continue;
        }
        if bit_at(data, pos) == want {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// # Format
/// `BITCOUNT key [start end [BYTE | BIT]]`
pub fn bitcount(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let range = match args.remaining() {
        0 => None,
        2 | 3 => {
            let start = args.next_i64()?;
            let end = args.next_i64()?;
            let in_bits = parse_unit(args.next())?;
            Some((start, end, in_bits))
        }
        _ => return Err(fail(error::SYNTAX)),
    };
    let range = match range {
        None => BitRange {
            start: 0,
            end: None,
            in_bits: false,
        },
        // Both ends negative and crossed: empty whatever the length.
        Some((start, end, _)) if start < 0 && end < 0 && start > end => {
            // Still a read: WRONGTYPE, and a hit or miss.
            with_string(ctx, key, |_| ())?;
            return Ok(Reply::Int(0));
        }
        Some((start, end, in_bits)) => BitRange {
            start,
            end: Some(end),
            in_bits,
        },
    };
    // Counted in place, under the shard lock, as Redis counts without a copy.
    let count = with_string(ctx, key, |data| {
        range
            .resolve(data.len())
            .map_or(0, |(first, last)| count_bits(data, first, last))
    })?;
    Ok(Reply::Int(
        i64::try_from(count.unwrap_or(0)).unwrap_or(i64::MAX),
    ))
}

/// # Format
/// `BITPOS key bit [start [end [BYTE | BIT]]]`
pub fn bitpos(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let key = args.next_bytes()?;
    let want = match args.next_i64()? {
        0 => false,
        1 => true,
        _ => return Err(fail(error::BIT_ARG_NOT_BINARY)),
    };
    let range = match args.remaining() {
        0 => BitRange {
            start: 0,
            end: None,
            in_bits: false,
        },
        1..=3 => {
            let start = args.next_i64()?;
            let end = args.next();
            // Redis checks the unit word before the end index.
            let in_bits = parse_unit(args.next())?;
            let end = end.map(|raw| parse_int(raw)).transpose()?;
            BitRange {
                start,
                end,
                in_bits,
            }
        }
        _ => return Err(fail(error::SYNTAX)),
    };
    let position = with_string(ctx, key, |data| {
        let (first, last) = range.resolve(data.len())?;
        match find_bit(data, want, first, last) {
            Some(position) => i64::try_from(position).ok(),
            // Without an explicit end the string counts as padded with zeros.
            None if !want && range.end.is_none() => i64::try_from(last + 1).ok(),
            None => None,
        }
    })?;
    Ok(Reply::Int(match position {
        Some(found) => found.unwrap_or(-1),
        // A missing key is an endless run of zeros.
        None if want => -1,
        None => 0,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// # Format
/// `BITOP <AND | OR | XOR | NOT> destkey key [key ...]`
pub fn bitop(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let op = match keyword(args.next_bytes()?).as_slice() {
        b"AND" => BitOp::And,
        b"OR" => BitOp::Or,
        b"XOR" => BitOp::Xor,
        b"NOT" => BitOp::Not,
        _ => return Err(fail(error::SYNTAX)),
    };
    let dest = args.next_bytes()?;
    let sources = args.rest();
    if op == BitOp::Not && sources.len() != 1 {
        return Err(fail(error::BITOP_NOT_SINGLE_SOURCE));
    }
    let db = ctx.db();
    // Sources are looked up as reads in Redis: count them.
    ctx.ks()
        .read_many(db, sources, ctx.read_options(), |i, entry| {
            if entry.is_none() {
                keymiss_nth(ctx, sources, i);
            }
        });
    let keys = std::iter::once(dest)
        .chain(sources)
        .map(|key| (db, key.as_ref()));
    ctx.ks().write_many(keys, |txn| {
        let mut inputs = Vec::with_capacity(sources.len());
        for i in 1..=sources.len() {
            inputs.push(txn_str(txn, i)?.unwrap_or_default());
        }
        let result = bit_operation(op, &inputs);
        if result.is_empty() {
            if txn.remove(0).is_some() {
                notify(ctx, GENERIC, "del", dest);
            }
            return Ok(Reply::Int(0));
        }
        let len = result.len();
        let created = txn
            .insert(0, Value::Str(Bytes::from(result)), None)
            .is_none();
        notify_write(ctx, created, STRING, "set", dest);
        // Redis stores BITOP's result unencoded: OBJECT ENCODING says raw.
        if let Some(entry) = txn.entry_mut(0) {
            entry.make_raw();
        }
        Ok(len_reply(len))
    })
}

/// Combines the inputs byte by byte; shorter inputs count as zero-padded.
fn bit_operation(op: BitOp, inputs: &[&[u8]]) -> Vec<u8> {
    let len = inputs.iter().map(|input| input.len()).max().unwrap_or(0);
    let mut out = vec![0u8; len];
    let Some((first, rest)) = inputs.split_first() else {
        return out;
    };
    for (o, &b) in out.iter_mut().zip(first.iter()) {
        *o = b;
    }
    if op == BitOp::Not {
        out.iter_mut().for_each(|o| *o = !*o);
    }
    for input in rest {
        let padded = input.iter().copied().chain(std::iter::repeat(0));
        for (o, b) in out.iter_mut().zip(padded) {
            match op {
                BitOp::And => *o &= b,
                BitOp::Or => *o |= b,
                BitOp::Xor => *o ^= b,
                BitOp::Not => {}
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldAction {
    Get,
    Set,
    IncrBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Debug, Clone, Copy)]
struct FieldOp {
    action: FieldAction,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

/// A field type: `i1`..`i64` or `u1`..`u63`.
fn field_type(raw: &[u8]) -> Result<(bool, u32), Reply> {
    let invalid = || fail(error::BITFIELD_BAD_TYPE);
    let (signed, digits) = match raw.split_first() {
        Some((b'i' | b'I', digits)) => (true, digits),
        Some((b'u' | b'U', digits)) => (false, digits),
        _ => return Err(invalid()),
    };
    let bits = parse_i64(digits).ok_or_else(invalid)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&bits) {
        return Err(invalid());
    }
    u32::try_from(bits)
        .map(|bits| (signed, bits))
        .map_err(|_| invalid())
}

fn parse_field_ops(args: &mut Args<'_>, max_len: u64) -> Result<Vec<FieldOp>, Reply> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    while let Some(arg) = args.next() {
        let remaining = args.remaining();
        let action = match keyword(arg).as_slice() {
            b"GET" if remaining >= 2 => FieldAction::Get,
            b"SET" if remaining >= 3 => FieldAction::Set,
            b"INCRBY" if remaining >= 3 => FieldAction::IncrBy,
            b"OVERFLOW" if remaining >= 1 => {
                overflow = match keyword(args.next_bytes()?).as_slice() {
                    b"WRAP" => Overflow::Wrap,
                    b"SAT" => Overflow::Sat,
                    b"FAIL" => Overflow::Fail,
                    _ => return Err(fail(error::BITFIELD_BAD_OVERFLOW)),
                };
                continue;
            }
            _ => return Err(fail(error::SYNTAX)),
        };
        let (signed, bits) = field_type(args.next_bytes()?)?;
        let offset = bit_offset(args.next_bytes()?, Some(bits), max_len)?;
        let value = match action {
            FieldAction::Get => 0,
            FieldAction::Set | FieldAction::IncrBy => args.next_i64()?,
        };
        ops.push(FieldOp {
            action,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
    }
    Ok(ops)
}

/// Reads a `bits`-wide field at bit `offset`, most significant bit first;
/// bits past the end of `data` read as zero.
fn read_field(data: &[u8], offset: u64, bits: u32, signed: bool) -> i64 {
    let raw = (0..u64::from(bits)).fold(0u64, |acc, i| {
        (acc << 1) | u64::from(bit_at(data, offset + i))
    });
    if signed && bits < 64 && raw & (1 << (bits - 1)) != 0 {
        (raw | (u64::MAX << bits)) as i64
    } else {
        raw as i64
    }
}

fn write_field(data: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..u64::from(bits) {
        let position = offset + i;
        let Some(byte) = usize::try_from(position >> 3)
            .ok()
            .and_then(|b| data.get_mut(b))
        else {
            continue;
        };
        let mask = 0x80u8 >> (position & 7);
        if value >> (u64::from(bits) - 1 - i) & 1 == 1 {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Runs one SET or INCRBY: the reply (old value for SET, new for INCRBY, nil
/// when OVERFLOW FAIL refused it).
fn apply_field(data: &mut [u8], op: &FieldOp) -> Reply {
    let old = read_field(data, op.offset, op.bits, op.signed);
    let (min, max): (i128, i128) = if op.signed {
        (-(1i128 << (op.bits - 1)), (1i128 << (op.bits - 1)) - 1)
    } else {
        (0, (1i128 << op.bits) - 1)
    };
    let target = match op.action {
        FieldAction::IncrBy => i128::from(old) + i128::from(op.value),
        // An unsigned field takes the value's two's-complement bits, as Redis's uint64_t cast.
        _ if !op.signed => i128::from(op.value as u64),
        _ => i128::from(op.value),
    };
    let new = if (min..=max).contains(&target) {
        target
    } else {
        match op.overflow {
            Overflow::Fail => return Reply::Nil,
            Overflow::Sat => target.clamp(min, max),
            Overflow::Wrap => {
                let low = (target as u64) & (u64::MAX >> (64 - op.bits));
                if op.signed && op.bits < 64 && low & (1 << (op.bits - 1)) != 0 {
                    i128::from((low | (u64::MAX << op.bits)) as i64)
                } else {
                    i128::from(low)
                }
            }
        }
    };
    write_field(data, op.offset, op.bits, new as u64);
    match op.action {
        FieldAction::IncrBy => Reply::Int(new as i64),
        _ => Reply::Int(old),
    }
}

fn bitfield_generic(ctx: &Ctx<'_>, args: &mut Args<'_>, read_only: bool) -> CmdResult {
    let key = args.next_bytes()?;
    let ops = parse_field_ops(args, ctx.max_string_len())?;
    let highest = ops
        .iter()
        .filter(|op| op.action != FieldAction::Get)
        .map(|op| op.offset + u64::from(op.bits) - 1)
        .max();
    let Some(highest) = highest else {
        let read = |data: &[u8]| -> Vec<Reply> {
            ops.iter()
                .map(|op| Reply::Int(read_field(data, op.offset, op.bits, op.signed)))
                .collect()
        };
        let replies = with_string(ctx, key, read)?.unwrap_or_else(|| read(&[]));
        return Ok(Reply::Array(replies));
    };
    if read_only {
        return Err(fail(error::BITFIELD_RO_GET_ONLY));
    }
    // Bounded: offsets stay below proto-max-bulk-len bytes, fields are <= 64 bits.
    let min_len = usize::try_from(highest >> 3).map_err(|_| fail(error::BIT_OFFSET))? + 1;
    ctx.ks().write(ctx.db(), key, |txn| {
        let old_len = txn_str(txn, 0)?.map(<[u8]>::len);
        let mut writes = 0u64;
        let mut flips = 0u64;
        let (replies, new_len) = edit_string(txn, 0, min_len, |buf| {
            ops.iter()
                .map(|op| match op.action {
                    FieldAction::Get => Reply::Int(read_field(buf, op.offset, op.bits, op.signed)),
                    FieldAction::Set | FieldAction::IncrBy => {
                        let before = read_field(buf, op.offset, op.bits, op.signed);
                        let reply = apply_field(buf, op);
                        // OVERFLOW FAIL leaves the field alone and replies nil.
                        if reply != Reply::Nil {
                            writes += 1;
                            if read_field(buf, op.offset, op.bits, op.signed) != before {
                                flips += 1;
                            }
                        }
                        reply
                    }
                })
                .collect()
        })?;
        if old_len.is_none() {
            notify(ctx, NEW, "new", key);
        }
        // As Redis: with the key created or grown every write counts as a
        // change, otherwise each that changed its field does.
        let changes = if old_len == Some(new_len) {
            flips
        } else {
            writes
        };
        if changes == 0 {
            txn.left_unchanged(0);
        } else {
            txn.count_changes(0, changes - 1);
            notify(ctx, STRING, "setbit", key);
        }
        Ok(Reply::Array(replies))
    })
}

/// # Format
/// `BITFIELD key [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>]
/// <SET encoding offset value | INCRBY encoding offset increment> ...]`
pub fn bitfield(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

/// # Format
/// `BITFIELD_RO key [GET encoding offset ...]`
pub fn bitfield_ro(ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_counting_respects_edges() {
        let data = [0b1111_0000u8, 0xFF, 0b0000_1111];
        assert_eq!(count_bits(&data, 0, 23), 16);
        assert_eq!(count_bits(&data, 2, 5), 2);
        assert_eq!(count_bits(&data, 4, 19), 8);
        assert_eq!(count_bits(&data, 20, 23), 4);
        assert_eq!(popcount(&[0xFF; 19]), 152);
    }

    #[test]
    fn bit_search() {
        let data = [0xFF, 0xFF, 0xF0];
        assert_eq!(find_bit(&data, false, 0, 23), Some(20));
        assert_eq!(find_bit(&data, true, 20, 23), None);
        assert_eq!(find_bit(&data, false, 0, 19), None);
        assert_eq!(find_bit(&[0, 0, 1], true, 0, 23), Some(23));
        assert_eq!(find_bit(&[0, 0, 1], true, 3, 22), None);
    }

    #[test]
    fn fields_round_trip() {
        let mut data = [0u8; 9];
        write_field(&mut data, 3, 64, u64::MAX - 5);
        assert_eq!(read_field(&data, 3, 64, true), -6);
        write_field(&mut data, 0, 5, 0b10110);
        assert_eq!(read_field(&data, 0, 5, false), 0b10110);
        assert_eq!(read_field(&data, 0, 5, true), -10);
    }
}
