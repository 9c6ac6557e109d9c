//! Request decoding: RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! commands (`PING\r\n`), with Redis's limits and exact error texts.
//!
//! The decoder is incremental: it consumes what it has parsed from the read
//! buffer and remembers where it stopped, so a 512 MB argument arriving in
//! 16 KB reads is scanned once, not once per read. Nothing is allocated from a
//! length the client announced; the buffer only grows with bytes that arrived.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline command or length line Redis accepts without a newline.
pub const INLINE_MAX_SIZE: usize = 64 * 1024;
/// Redis's bounds for clients that have not authenticated yet.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;
const UNAUTHENTICATED_MAX_BULK: i64 = 16 * 1024;

/// A malformed request. The connection replies `-ERR Protocol error: <text>` and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(text: impl Into<String>) -> Self {
        ProtocolError(text.into())
    }

    /// The full error line Redis sends (without the leading `-`).
    pub fn reply_text(&self) -> String {
        format!("ERR Protocol error: {}", self.0)
    }
}

/// Limits applied while decoding; read from the config for each batch.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_bulk_len: i64,
    pub authenticated: bool,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// Incremental request decoder for one connection.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Arguments still expected in the multibulk being read (0 = between requests).
    remaining: usize,
    /// Length of the bulk whose header was read and whose data has not arrived.
    bulk_len: Option<usize>,
    args: Vec<Bytes>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a request is partly read (used to tell an idle connection from a stalled one).
    pub fn in_request(&self) -> bool {
        self.remaining > 0
    }

    /// Decodes the next complete request from `buf`, consuming its bytes.
    /// `Ok(None)` means more bytes are needed. Empty requests (a blank line,
    /// `*0`) are skipped, as Redis does.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: DecodeLimits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.remaining == 0 {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first == b'*' {
                    match self.start_multibulk(buf, limits)? {
                        Start::NeedMore => return Ok(None),
                        Start::Empty => continue,
                        Start::Begun => {}
                    }
                } else {
                    match decode_inline(buf)? {
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                        None => return Ok(None),
                    }
                }
            }
            if !self.read_bulks(buf, limits)? {
                return Ok(None);
            }
            self.remaining = 0;
            return Ok(Some(std::mem::take(&mut self.args)));
        }
    }

    fn start_multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: DecodeLimits,
    ) -> Result<Start, ProtocolError> {
        let Some(line_end) = find_cr(buf) else {
            if buf.len() > INLINE_MAX_SIZE {
                return Err(ProtocolError::new("too big mbulk count string"));
            }
            return Ok(Start::NeedMore);
        };
        if line_end + 2 > buf.len() {
            return Ok(Start::NeedMore);
        }
        let count = parse_i64(&buf[1..line_end])
            .filter(|n| *n <= i32::MAX as i64)
            .ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
        if !limits.authenticated && count > UNAUTHENTICATED_MAX_ARGS {
            return Err(ProtocolError::new("unauthenticated multibulk length"));
        }
        buf.advance(line_end + 2);
        if count <= 0 {
            return Ok(Start::Empty);
        }
        self.remaining = count as usize;
        self.bulk_len = None;
        // Capacity follows arrived data: never trust the announced count for more than a little.
        self.args = Vec::with_capacity(self.remaining.min(16));
        Ok(Start::Begun)
    }

    /// Reads as many bulks as the buffer holds; true when the request is complete.
    fn read_bulks(
        &mut self,
        buf: &mut BytesMut,
        limits: DecodeLimits,
    ) -> Result<bool, ProtocolError> {
        while self.args.len() < self.remaining {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let Some(len) = read_bulk_header(buf, limits)? else {
                        return Ok(false);
                    };
                    self.bulk_len = Some(len);
                    len
                }
            };
            if buf.len() < len + 2 {
                return Ok(false);
            }
            // Redis does not check the two bytes after the data either; it skips them.
            let data = buf.split_to(len).freeze();
            buf.advance(2);
            self.args.push(data);
            self.bulk_len = None;
        }
        Ok(true)
    }
}

enum Start {
    NeedMore,
    Empty,
    Begun,
}

fn read_bulk_header(
    buf: &mut BytesMut,
    limits: DecodeLimits,
) -> Result<Option<usize>, ProtocolError> {
    let Some(line_end) = find_cr(buf) else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::new("too big bulk count string"));
        }
        return Ok(None);
    };
    if line_end + 2 > buf.len() {
        return Ok(None);
    }
    let Some(&marker) = buf.first() else {
        return Ok(None);
    };
    if marker != b'$' {
        return Err(ProtocolError::new(format!(
            "expected '$', got '{}'",
            char::from(marker)
        )));
    }
    let len = parse_i64(&buf[1..line_end])
        .filter(|n| *n >= 0 && *n <= limits.max_bulk_len)
        .ok_or_else(|| ProtocolError::new("invalid bulk length"))?;
    if !limits.authenticated && len > UNAUTHENTICATED_MAX_BULK {
        return Err(ProtocolError::new("unauthenticated bulk length"));
    }
    buf.advance(line_end + 2);
    Ok(Some(len as usize))
}

/// An inline command line; `Some(vec![])` for a blank line.
fn decode_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(newline + 1);
    let mut text = &line[..newline];
    if let Some(stripped) = text.strip_suffix(b"\r") {
        text = stripped;
    }
    let args =
        split_args(text).ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
    Ok(Some(args.into_iter().map(Bytes::from).collect()))
}

fn find_cr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\r')
}

/// Parses a decimal integer the way Redis's `string2ll` does: no sign on zero
/// padding, no spaces, no `+`, no leading zeros.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        if value == 0 {
            return None;
        }
        if value > i64::MAX as u64 + 1 {
            return None;
        }
        Some((value as i64).wrapping_neg())
    } else {
        i64::try_from(value).ok()
    }
}

/// Splits a line into arguments like Redis's `sdssplitargs`: spaces separate,
/// `"..."` understands `\n \r \t \b \a \\ \"` and `\xHH`, `'...'` understands
/// `\'`, and a closing quote must be followed by a space or the end.
/// `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while pos < line.len() && line[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let Some(&byte) = line.get(pos) else {
                if in_double || in_single {
                    return None;
                }
                break;
            };
            if in_double {
                if byte == b'\\' && pos + 3 < line.len() && line[pos + 1] == b'x' {
                    if let (Some(high), Some(low)) =
                        (hex_value(line[pos + 2]), hex_value(line[pos + 3]))
                    {
                        current.push(high * 16 + low);
                        pos += 4;
                        continue;
                    }
                }
                if byte == b'\\' && pos + 1 < line.len() {
                    pos += 1;
                    current.push(match line[pos] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if byte == b'"' {
                    // The closing quote must be followed by a space or nothing.
                    if line
                        .get(pos + 1)
                        .is_some_and(|next| !next.is_ascii_whitespace())
                    {
                        return None;
                    }
                    pos += 1;
                    break;
                } else {
                    current.push(byte);
                }
            } else if in_single {
                if byte == b'\\' && line.get(pos + 1) == Some(&b'\'') {
                    pos += 1;
                    current.push(b'\'');
                } else if byte == b'\'' {
                    if line
                        .get(pos + 1)
                        .is_some_and(|next| !next.is_ascii_whitespace())
                    {
                        return None;
                    }
                    pos += 1;
                    break;
                } else {
                    current.push(byte);
                }
            } else {
                match byte {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        pos += 1;
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => current.push(byte),
                }
            }
            pos += 1;
        }
        args.push(current);
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = decoder.decode(&mut buf, DecodeLimits::default())? {
            out.push(args);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline_mix() {
        let got = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\n*0\r\nECHO \"a b\"\r\n")
            .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(got[1], vec![Bytes::from("PING")]);
        assert_eq!(got[2], vec![Bytes::from("ECHO"), Bytes::from("a b")]);
    }

    #[test]
    fn partial_input_resumes_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut result = None;
        for &byte in input.iter() {
            buf.extend_from_slice(&[byte]);
            if let Some(args) = decoder.decode(&mut buf, DecodeLimits::default()).unwrap() {
                result = Some(args);
            }
        }
        assert_eq!(result.unwrap().len(), 3);
        assert!(buf.is_empty());
    }

    #[test]
    fn redis_error_texts() {
        let err = |input: &[u8]| decode_all(input).unwrap_err().0;
        assert_eq!(err(b"*abc\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*1\r\n$-5\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$600000000\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\nx3\r\n"), "expected '$', got 'x'");
        assert_eq!(err(b"SET \"abc\r\n"), "unbalanced quotes in request");
        assert_eq!(
            err(&vec![b'a'; INLINE_MAX_SIZE + 1]),
            "too big inline request"
        );
    }

    #[test]
    fn unauthenticated_limits() {
        let limits = DecodeLimits {
            authenticated: false,
            ..DecodeLimits::default()
        };
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        let err = Decoder::new().decode(&mut buf, limits).unwrap_err();
        assert_eq!(err.0, "unauthenticated multibulk length");
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        let err = Decoder::new().decode(&mut buf, limits).unwrap_err();
        assert_eq!(err.0, "unauthenticated bulk length");
    }

    #[test]
    fn split_args_like_sdssplitargs() {
        let split = |s: &[u8]| split_args(s);
        assert_eq!(
            split(b"  set  a  b ").unwrap(),
            vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            split(b"\"\\x41\\n\" 'it\\'s'").unwrap(),
            vec![b"A\n".to_vec(), b"it's".to_vec()]
        );
        assert_eq!(split(b"\"\"").unwrap(), vec![Vec::<u8>::new()]);
        assert!(split(b"\"a\"b").is_none());
        assert!(split(b"'a").is_none());
        assert_eq!(split(b"").unwrap().len(), 0);
    }

    #[test]
    fn parse_i64_matches_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b""), None);
    }
}
