//! Fuzzes the request decoder: arbitrary bytes, split at arbitrary points,
//! must never panic; every request decoded re-encodes to a frame that decodes
//! to the same arguments.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use strata::protocol::{encode, DecodeLimits, Decoder, Reply, Version};

fuzz_target!(|data: &[u8]| {
    let Some((&split_seed, input)) = data.split_first() else {
        return;
    };
    let limits = DecodeLimits {
        max_bulk_len: 1 << 20,
        authenticated: split_seed & 1 == 0,
    };
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let chunk = usize::from(split_seed).max(1);
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf, limits) {
                Ok(Some(args)) => round_trip(&args),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

fn round_trip(args: &[bytes::Bytes]) {
    // Inline requests have no argument-count limit, so re-decode as an authenticated client.
    let limits = DecodeLimits::default();
    let mut frame = BytesMut::new();
    frame.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        frame.put_slice(format!("${}\r\n", arg.len()).as_bytes());
        frame.put_slice(arg);
        frame.put_slice(b"\r\n");
    }
    let again = Decoder::new().decode(&mut frame, limits);
    assert_eq!(again, Ok(Some(args.to_vec())));
    // The encoder must accept any argument as a reply in both protocols.
    let reply = Reply::Array(args.iter().cloned().map(Reply::Bulk).collect());
    let mut out = BytesMut::new();
    encode(&reply, Version::Resp2, &mut out);
    encode(&reply, Version::Resp3, &mut out);
}
