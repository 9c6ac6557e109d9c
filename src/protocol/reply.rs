//! The reply a command returns: a protocol-neutral value that the encoder turns
//! into RESP2 or RESP3 bytes for the connection that asked.

use bytes::Bytes;

/// A command's answer. Commands build these and never see the protocol
/// version; `protocol::encode` decides how each variant looks on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status line.
    Simple(&'static str),
    /// A status line built at run time (e.g. `TYPE`'s answer).
    Status(String),
    /// `-ERR ...`: the full text including its prefix (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// A static error text including its prefix.
    StaticError(&'static str),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string in RESP2 (`$-1`), `_` in RESP3.
    Nil,
    /// Null array in RESP2 (`*-1`), `_` in RESP3.
    NilArray,
    Array(Vec<Reply>),
    /// Ordered map: RESP3 `%`, a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~`, an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 `,`, a bulk string in RESP2 (formatted like Redis's `%.17g`).
    Double(f64),
    /// RESP3 `#`, the integer 1/0 in RESP2.
    Bool(bool),
    /// RESP3 `=` with a three-letter format, a bulk string in RESP2.
    Verbatim(&'static str, Bytes),
    /// RESP3 `>` out-of-band message, an array in RESP2.
    Push(Vec<Reply>),
    /// Nothing is written (e.g. `CLIENT REPLY OFF`, `QUIT` is handled by the session).
    NoReply,
    /// A reply already in wire form, the same in RESP2 and RESP3 (an array
    /// of bulk strings, see [`Reply::bulk_array`]).
    Encoded(Bytes),
}

impl Reply {
    pub const OK: Reply = Reply::Simple("OK");

    pub fn bulk(data: impl Into<Bytes>) -> Reply {
        Reply::Bulk(data.into())
    }

    pub fn bulk_str(text: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// The error text (with its prefix) when this is an error reply.
    pub fn error_text(&self) -> Option<&str> {
        match self {
            Reply::Error(text) => Some(text),
            Reply::StaticError(text) => Some(text),
            _ => None,
        }
    }

    /// Optional bulk: `Nil` for `None`.
    pub fn opt_bulk(value: Option<Bytes>) -> Reply {
        value.map_or(Reply::Nil, Reply::Bulk)
    }

    pub fn from_bulks(items: impl IntoIterator<Item = Bytes>) -> Reply {
        Reply::Array(items.into_iter().map(Reply::Bulk).collect())
    }

    /// An array of bulk strings copied from borrowed slices (LRANGE,
    /// SMEMBERS, ...): one buffer holds them all and each element is a
    /// view of it, so a long reply costs one copy and one allocation, not
    /// one per element.
    pub fn bulks_copied<'a>(items: impl Iterator<Item = &'a [u8]> + Clone) -> Reply {
        let total: usize = items.clone().map(<[u8]>::len).sum();
        let mut buffer = bytes::BytesMut::with_capacity(total);
        let mut ends = Vec::new();
        for item in items {
            buffer.extend_from_slice(item);
            ends.push(buffer.len());
        }
        let buffer = buffer.freeze();
        let mut start = 0;
        Reply::Array(
            ends.into_iter()
                .map(|end| {
                    let item = buffer.slice(start..end);
                    start = end;
                    Reply::Bulk(item)
                })
                .collect(),
        )
    }
}

impl Reply {
    /// An array of bulk strings copied from borrowed slices (LRANGE),
    /// encoded at once: one buffer, no reply per element, and the same
    /// bytes in RESP2 and RESP3.
    pub fn bulk_array<'a>(items: impl Iterator<Item = &'a [u8]> + Clone) -> Reply {
        // "$<len>\r\n" + "\r\n": at most 16 bytes around an element.
        let (count, total) = items.clone().fold((0, 0), |(count, total), item| {
            (count + 1, total + item.len() + 16)
        });
        let mut out = bytes::BytesMut::with_capacity(total + 16);
        super::encode::array_header(&mut out, count);
        for item in items {
            super::encode::bulk_bytes(&mut out, item);
        }
        Reply::Encoded(out.freeze())
    }
}

impl From<Result<Reply, Reply>> for Reply {
    fn from(result: Result<Reply, Reply>) -> Reply {
        match result {
            Ok(reply) | Err(reply) => reply,
        }
    }
}
