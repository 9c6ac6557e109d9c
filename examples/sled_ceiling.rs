//! sled's raw insert rate for redis-benchmark's keys and values: the
//! ceiling durable SETs at `-P 16` can reach, printed by `tools/bench.sh`.
//!
//! `cargo run --release --example sled_ceiling -- [requests] [keyspace] [value bytes] [threads]`
//! inserts `requests` keys `key:%012d` drawn at random from `keyspace`, like
//! `redis-benchmark -t set -r keyspace -d bytes`, into a fresh sled
//! database configured as strata's warm tier, and prints inserts per second.

use std::time::Instant;

// The allocator strata's binary runs on, so the ceiling is sled's under the
// same conditions.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|_| panic!("not a number: {a}")))
        .collect();
    let requests = args.first().copied().unwrap_or(1_000_000);
    let keyspace = args.get(1).copied().unwrap_or(1_000_000).max(1);
    let value_len = args.get(2).copied().unwrap_or(3) as usize;
    let threads = args.get(3).copied().unwrap_or(1).max(1);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 * 1024 * 1024)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()
        .expect("sled opens");
    let tree = db.open_tree("db:0").expect("a tree");
    let value = vec![b'x'; value_len];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tree = &tree;
            let value = &value;
            scope.spawn(move || {
                for _ in 0..requests / threads {
                    let key = format!("key:{:012}", rand::random::<u64>() % keyspace);
                    tree.insert(key.as_bytes(), value.as_slice())
                        .expect("insert");
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    db.flush().expect("flush");
    println!(
        "sled raw inserts: {:.0} per second ({requests} keys of {keyspace}, {value_len}-byte values, {threads} thread(s))",
        requests as f64 / elapsed
    );
}
