//! A typed cursor over a command's arguments, so handlers read
//! `args.next_key()?`, `args.next_i64()?` instead of indexing.

use bytes::Bytes;

use crate::error;
use crate::protocol::{parse_i64, Reply};

pub type CmdResult = Result<Reply, Reply>;

pub struct Args<'a> {
    items: &'a [Bytes],
    pos: usize,
}

impl<'a> Args<'a> {
    /// `items` excludes the command name (and subcommand name).
    pub fn new(items: &'a [Bytes]) -> Args<'a> {
        Args { items, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.items.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn rest(&self) -> &'a [Bytes] {
        &self.items[self.pos..]
    }

    pub fn all(&self) -> &'a [Bytes] {
        self.items
    }

    /// The next argument; a syntax error when there is none.
    pub fn next_bytes(&mut self) -> Result<&'a Bytes, Reply> {
        self.next().ok_or(Reply::StaticError(error::SYNTAX))
    }

    pub fn next_i64(&mut self) -> Result<i64, Reply> {
        parse_int(self.next_bytes()?)
    }

    pub fn next_f64(&mut self) -> Result<f64, Reply> {
        parse_float(self.next_bytes()?)
    }

    /// True (and consumed) when the next argument is `word`, any case.
    pub fn eat(&mut self, word: &str) -> bool {
        match self.items.get(self.pos) {
            Some(item) if item.eq_ignore_ascii_case(word.as_bytes()) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Errors with `ERR syntax error` unless every argument was consumed.
    pub fn finish(&self) -> Result<(), Reply> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Reply::StaticError(error::SYNTAX))
        }
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a Bytes;

    fn next(&mut self) -> Option<&'a Bytes> {
        let item = self.items.get(self.pos)?;
        self.pos += 1;
        Some(item)
    }
}

pub fn parse_int(bytes: &[u8]) -> Result<i64, Reply> {
    parse_i64(bytes).ok_or(Reply::StaticError(error::NOT_INTEGER))
}

/// Parses a float as Redis's `string2d`/`strtold` accept: no spaces, no NaN;
/// `inf`, `+inf`, `-inf` allowed.
pub fn parse_float(bytes: &[u8]) -> Result<f64, Reply> {
    let invalid = Reply::StaticError(error::NOT_FLOAT);
    let text = std::str::from_utf8(bytes).map_err(|_| invalid.clone())?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return Err(invalid);
    }
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Ok(f64::INFINITY),
        "-inf" | "-infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    if lower.contains("nan") || lower.contains("inf") {
        return Err(invalid);
    }
    let value: f64 = text.parse().map_err(|_| invalid.clone())?;
    if value.is_nan() {
        return Err(invalid);
    }
    Ok(value)
}
