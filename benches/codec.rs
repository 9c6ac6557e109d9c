//! Codec benchmarks: strata's request decoder against redis-protocol's
//! generic RESP2 decoder on the same pipelined input, and reply encoding.
//! This is the measurement behind writing the request decoder by hand.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use strata::protocol::{encode, DecodeLimits, Decoder, Reply, Version};

fn pipelined_sets(count: usize) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..count {
        let key = format!("key:{i:08}");
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxyz\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    input
}

fn decode(c: &mut Criterion) {
    let input = pipelined_sets(1000);
    let mut group = c.benchmark_group("decode_1000_sets");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("strata", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut decoder = Decoder::new();
            let mut n = 0;
            while let Ok(Some(args)) = decoder.decode(&mut buf, DecodeLimits::default()) {
                n += args.len();
            }
            black_box(n)
        })
    });
    group.bench_function("redis-protocol", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0;
            while let Ok(Some((frame, _, _))) =
                redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
            {
                black_box(&frame);
                n += 1;
            }
            black_box(n)
        })
    });
    group.finish();
}

fn encode_replies(c: &mut Criterion) {
    let value = Bytes::from_static(b"a value of moderate length, about forty");
    let array = Reply::Array((0..100).map(Reply::Int).collect());
    let mut group = c.benchmark_group("encode");
    group.bench_function("bulk_x1000", |b| {
        let mut out = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            for _ in 0..1000 {
                encode(&Reply::Bulk(value.clone()), Version::Resp2, &mut out);
            }
            black_box(out.len())
        })
    });
    group.bench_function("array100_resp3", |b| {
        let mut out = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            encode(&array, Version::Resp3, &mut out);
            black_box(out.len())
        })
    });
    // LRANGE_600's reply, as redis-benchmark fills the list: 600 elements
    // of 3 bytes. Built and encoded, as a connection does per command.
    let items: Vec<&[u8]> = vec![b"xxx"; 600];
    group.bench_function("lrange600_bulks_copied", |b| {
        let mut out = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            let reply = Reply::bulks_copied(items.iter().copied());
            encode(&reply, Version::Resp2, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("lrange600_bulk_array", |b| {
        let mut out = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            let reply = Reply::bulk_array(items.iter().copied());
            encode(&reply, Version::Resp2, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode_replies);
criterion_main!(benches);
