//! Reply encoding: the only place that knows whether a connection speaks RESP2
//! or RESP3. RESP3-only types degrade to their RESP2 shapes as Redis does.

use bytes::{BufMut, BytesMut};

use super::reply::Reply;

/// Protocol version negotiated with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    Resp2,
    Resp3,
}

impl Version {
    pub fn number(self) -> i64 {
        match self {
            Version::Resp2 => 2,
            Version::Resp3 => 3,
        }
    }
}

/// Appends `reply` to `out` in the wire format of `version`.
pub fn encode(reply: &Reply, version: Version, out: &mut BytesMut) {
    match reply {
        Reply::Simple(text) => line(out, b'+', text.as_bytes()),
        Reply::Status(text) => line(out, b'+', text.as_bytes()),
        Reply::Error(text) => line(out, b'-', text.as_bytes()),
        Reply::StaticError(text) => line(out, b'-', text.as_bytes()),
        Reply::Int(value) => {
            out.put_u8(b':');
            put_int(out, *value);
            out.put_slice(b"\r\n");
        }
        Reply::Bulk(data) => bulk(out, data),
        Reply::Nil => match version {
            Version::Resp2 => out.put_slice(b"$-1\r\n"),
            Version::Resp3 => out.put_slice(b"_\r\n"),
        },
        Reply::NilArray => match version {
            Version::Resp2 => out.put_slice(b"*-1\r\n"),
            Version::Resp3 => out.put_slice(b"_\r\n"),
        },
        Reply::Array(items) => aggregate(out, b'*', items, version),
        Reply::Set(items) => {
            let marker = if version == Version::Resp3 {
                b'~'
            } else {
                b'*'
            };
            aggregate(out, marker, items, version);
        }
        Reply::Push(items) => {
            let marker = if version == Version::Resp3 {
                b'>'
            } else {
                b'*'
            };
            aggregate(out, marker, items, version);
        }
        Reply::Map(pairs) => {
            match version {
                Version::Resp3 => header(out, b'%', pairs.len()),
                Version::Resp2 => header(out, b'*', pairs.len() * 2),
            }
            for (key, value) in pairs {
                encode(key, version, out);
                encode(value, version, out);
            }
        }
        Reply::Double(value) => {
            let text = format_double(*value);
            match version {
                Version::Resp3 => line(out, b',', text.as_bytes()),
                Version::Resp2 => bulk(out, text.as_bytes()),
            }
        }
        Reply::Bool(value) => match version {
            Version::Resp3 => out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" }),
            Version::Resp2 => out.put_slice(if *value { b":1\r\n" } else { b":0\r\n" }),
        },
        Reply::Verbatim(format, data) => match version {
            Version::Resp3 => {
                header(out, b'=', data.len() + 4);
                out.put_slice(format.as_bytes());
                out.put_u8(b':');
                out.put_slice(data);
                out.put_slice(b"\r\n");
            }
            Version::Resp2 => bulk(out, data),
        },
        Reply::NoReply => {}
        Reply::Encoded(wire) => out.put_slice(wire),
    }
}

/// `*<len>\r\n`: the start of an array (the same in RESP2 and RESP3).
pub(super) fn array_header(out: &mut BytesMut, len: usize) {
    header(out, b'*', len);
}

/// One bulk string.
pub(super) fn bulk_bytes(out: &mut BytesMut, data: &[u8]) {
    header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, marker: u8, items: &[Reply], version: Version) {
    header(out, marker, items.len());
    for item in items {
        encode(item, version, out);
    }
}

fn line(out: &mut BytesMut, marker: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(marker);
    // A status or error line cannot carry a newline; Redis replaces them with spaces.
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, marker: u8, len: usize) {
    out.put_u8(marker);
    put_int(out, len as i64);
    out.put_slice(b"\r\n");
}

fn put_int(out: &mut BytesMut, value: i64) {
    let mut digits = itoa_buf::Buffer::new();
    out.put_slice(digits.format(value));
}

/// The decimal text of an integer as stored bytes, with one allocation
/// (INCR and friends run this on every call).
pub fn int_text(value: i64) -> bytes::Bytes {
    let mut digits = itoa_buf::Buffer::new();
    bytes::Bytes::copy_from_slice(digits.format(value))
}

/// Formats a double as Redis does with `%.17g`, with `inf`/`-inf`/`nan` spelled out.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    format_g(value, 17)
}

/// C's `%.{precision}g` for finite values.
pub fn format_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let precision = precision.max(1);
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let mantissa = trim_fraction_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_fraction_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn trim_fraction_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// A tiny integer formatter: avoids `format!` on the hot path of every reply.
mod itoa_buf {
    pub struct Buffer {
        bytes: [u8; 20],
    }

    impl Buffer {
        pub fn new() -> Self {
            Buffer { bytes: [0; 20] }
        }

        pub fn format(&mut self, value: i64) -> &[u8] {
            let negative = value < 0;
            let mut magnitude = value.unsigned_abs();
            let mut pos = self.bytes.len();
            loop {
                pos -= 1;
                self.bytes[pos] = b'0' + (magnitude % 10) as u8;
                magnitude /= 10;
                if magnitude == 0 {
                    break;
                }
            }
            if negative {
                pos -= 1;
                self.bytes[pos] = b'-';
            }
            &self.bytes[pos..]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn wire(reply: &Reply, version: Version) -> String {
        let mut out = BytesMut::new();
        encode(reply, version, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        let map = Reply::Map(vec![(Reply::bulk_str("a"), Reply::Int(1))]);
        assert_eq!(wire(&map, Version::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(wire(&map, Version::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(wire(&Reply::Nil, Version::Resp2), "$-1\r\n");
        assert_eq!(wire(&Reply::NilArray, Version::Resp2), "*-1\r\n");
        assert_eq!(wire(&Reply::Nil, Version::Resp3), "_\r\n");
        assert_eq!(wire(&Reply::Bool(true), Version::Resp2), ":1\r\n");
        assert_eq!(wire(&Reply::Double(1.5), Version::Resp3), ",1.5\r\n");
        assert_eq!(wire(&Reply::Double(1.5), Version::Resp2), "$3\r\n1.5\r\n");
        assert_eq!(
            wire(&Reply::Verbatim("txt", Bytes::from("hi")), Version::Resp3),
            "=6\r\ntxt:hi\r\n"
        );
        assert_eq!(
            wire(&Reply::Int(i64::MIN), Version::Resp2),
            ":-9223372036854775808\r\n"
        );
    }

    #[test]
    fn doubles_like_printf_g17() {
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_double(123456.0), "123456");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
    }
}
