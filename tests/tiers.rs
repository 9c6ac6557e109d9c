//! The tiers through real clients: figures in INFO and CACHE.STATS, keys
//! that live only on disk, restart, `maxmemory` and `max-disk` eviction,
//! `-OOM` and `-MISCONF`.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use redis::Value;
use strata::config::MemorySize;

async fn tier(con: &mut Conn, name: &str) -> i64 {
    info_field(con, "tiers", name).await
}

fn value_for(i: usize, len: usize) -> String {
    let seed = format!("value-{i}-");
    seed.repeat(len / seed.len() + 1)[..len].to_string()
}

/// SETs `count` keys of `len` bytes, 100 per pipeline.
async fn fill(con: &mut Conn, prefix: &str, count: usize, len: usize) {
    for start in (0..count).step_by(100) {
        let mut pipe = redis::pipe();
        for i in start..(start + 100).min(count) {
            pipe.cmd("SET")
                .arg(format!("{prefix}{i}"))
                .arg(value_for(i, len))
                .ignore();
        }
        let () = pipe.query_async(con).await.expect("pipelined SETs");
    }
}

async fn tiers_section_and_cache_stats(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    set(&mut con, "a", "1").await;
    assert_eq!(text(&mut con, &["GET", "a"]).await.as_deref(), Some("1"));
    assert_eq!(text(&mut con, &["GET", "missing"]).await, None);
    assert_eq!(tier(&mut con, "warm_tier").await, 1);
    assert_eq!(tier(&mut con, "hot_keys").await, 1);
    assert_eq!(tier(&mut con, "warm_keys").await, 1);
    assert_eq!(tier(&mut con, "hot_hits").await, 1);
    assert_eq!(tier(&mut con, "misses").await, 1);
    // Redis's own figures count a hit in either tier.
    assert_eq!(info_stat(&mut con, "keyspace_hits").await, 1);
    assert_eq!(info_stat(&mut con, "keyspace_misses").await, 1);

    let pairs: Vec<(String, i64)> = match q(&mut con, &["CACHE.STATS"]).await {
        Value::Map(items) if resp3 => items
            .iter()
            .map(|(name, value)| (as_text(name), redis::from_redis_value(value).unwrap()))
            .collect(),
        Value::Array(items) if !resp3 => items
            .chunks(2)
            .map(|pair| {
                (
                    as_text(&pair[0]),
                    redis::from_redis_value(&pair[1]).unwrap(),
                )
            })
            .collect(),
        other => panic!("CACHE.STATS answered {other:?}"),
    };
    let info = as_text(&q(&mut con, &["INFO", "tiers"]).await);
    let names: Vec<&str> = info
        .lines()
        .skip(1)
        .filter_map(|line| line.split(':').next())
        .filter(|name| !name.is_empty())
        .collect();
    assert_eq!(
        pairs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        names
    );
    assert!(pairs.contains(&("hot_hits".to_string(), 1)));
    for name in [
        "hot_bytes",
        "warm_disk_bytes",
        "warm_hits",
        "promotions",
        "hot_evictions",
        "warm_evictions",
        "crc_errors",
        "last_flush_ms",
        "flush_lag_ms",
    ] {
        assert!(names.contains(&name), "no {name} in {names:?}");
    }

    q(&mut con, &["CACHE.STATS", "RESET"]).await;
    assert_eq!(tier(&mut con, "hot_hits").await, 0);
    assert_eq!(tier(&mut con, "misses").await, 0);
    assert_eq!(
        err(&mut con, &["CACHE.STATS", "NOW"]).await,
        "ERR syntax error"
    );
}

async fn keys_only_on_disk_read_back(resp3: bool) {
    let server = start_with(|config| {
        config.memory.maxmemory = MemorySize(256 * 1024);
    })
    .await;
    let mut con = server.client(resp3).await;
    fill(&mut con, "k:", 2000, 1000).await;
    assert!(tier(&mut con, "hot_evictions").await > 0);
    assert!(tier(&mut con, "hot_bytes").await <= 256 * 1024 + 4096);
    assert_eq!(int(&mut con, &["DBSIZE"]).await, 2000);
    assert_eq!(tier(&mut con, "warm_keys").await, 2000);

    // Reads of cold keys that only inspect them do not promote.
    let hot_before = tier(&mut con, "hot_keys").await;
    let cold = (0..2000)
        .map(|i| format!("k:{i}"))
        .find(|_| true)
        .expect("a key");
    assert_eq!(int(&mut con, &["EXISTS", &cold]).await, 1);
    assert_eq!(as_text(&q(&mut con, &["TYPE", &cold]).await), "string");
    assert_eq!(int(&mut con, &["TTL", &cold]).await, -1);
    assert!(tier(&mut con, "hot_keys").await <= hot_before + 1);

    q(&mut con, &["CACHE.STATS", "RESET"]).await;
    for i in 0..2000 {
        let key = format!("k:{i}");
        assert_eq!(
            text(&mut con, &["GET", &key]).await,
            Some(value_for(i, 1000)),
            "{key}"
        );
    }
    let warm_hits = tier(&mut con, "warm_hits").await;
    assert!(warm_hits > 1000, "warm_hits {warm_hits}");
    assert_eq!(tier(&mut con, "promotions").await, warm_hits);
    assert_eq!(info_stat(&mut con, "keyspace_hits").await, 2000);

    // SCAN covers keys on disk and in memory, each once.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let reply = q(&mut con, &["SCAN", &cursor, "COUNT", "97"]).await;
        let Value::Array(parts) = reply else {
            panic!("SCAN answered {reply:?}")
        };
        cursor = as_text(&parts[0]);
        let Value::Array(keys) = &parts[1] else {
            panic!("SCAN keys {parts:?}")
        };
        for key in keys {
            assert!(seen.insert(as_text(key)), "duplicate {key:?}");
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 2000);
    let random = text(&mut con, &["RANDOMKEY"]).await.expect("a key");
    assert!(seen.contains(&random));
    let keys = q(&mut con, &["KEYS", "k:1*"]).await;
    let Value::Array(keys) = keys else {
        panic!("KEYS answered {keys:?}")
    };
    assert_eq!(keys.len(), 1111);
}

/// Starts strata on `dir`; the previous instance's sled jobs may hold the
/// directory's lock for a moment after it stopped, so this retries.
async fn restart_keeps_every_database(resp3: bool) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), resp3).await;
    for db in ["0", "5", "15"] {
        ok(&mut con, &["SELECT", db]).await;
        for i in 0..50 {
            set(&mut con, &format!("key:{db}:{i}"), &format!("v{i}")).await;
        }
        ok(&mut con, &["SET", &format!("ttl:{db}"), "t", "EX", "100"]).await;
        ok(&mut con, &["SET", &format!("short:{db}"), "s", "PX", "300"]).await;
    }
    drop(con);
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let app = start_on(dir.path(), |_| {}).await;
    let mut con = connect(app.local_addr(), resp3).await;
    // Nothing was loaded: memory is empty and answers come from disk.
    assert_eq!(tier(&mut con, "hot_keys").await, 0);
    let keyspace = as_text(&q(&mut con, &["INFO", "keyspace"]).await);
    for db in ["0", "5", "15"] {
        // The short-TTL key is expired but not yet swept: Redis counts it too.
        let line = keyspace
            .lines()
            .find(|line| line.starts_with(&format!("db{db}:")))
            .unwrap_or_else(|| panic!("no db{db} in {keyspace}"));
        assert!(line.starts_with(&format!("db{db}:keys=")), "{line}");
        ok(&mut con, &["SELECT", db]).await;
        for i in 0..50 {
            assert_eq!(
                text(&mut con, &["GET", &format!("key:{db}:{i}")]).await,
                Some(format!("v{i}"))
            );
        }
        let ttl = int(&mut con, &["TTL", &format!("ttl:{db}")]).await;
        assert!((90..=100).contains(&ttl), "ttl {ttl}");
        assert_eq!(text(&mut con, &["GET", &format!("short:{db}")]).await, None);
        assert_eq!(int(&mut con, &["DBSIZE"]).await, 51);
    }
    assert!(tier(&mut con, "warm_hits").await >= 150);
    app.shutdown().await;
}

async fn misconf_while_the_disk_is_short(resp3: bool) {
    let (_server, mut con) = start_client(resp3).await;
    set(&mut con, "kept", "1").await;
    ok(&mut con, &["CONFIG", "SET", "min-free-disk", "1000000gb"]).await;
    let refused = err(&mut con, &["SET", "new", "1"]).await;
    assert!(refused.starts_with("MISCONF "), "{refused}");
    assert!(err(&mut con, &["DEL", "kept"])
        .await
        .starts_with("MISCONF "));
    assert_eq!(text(&mut con, &["GET", "kept"]).await.as_deref(), Some("1"));
    assert_eq!(
        as_text(&q(&mut con, &["INFO", "persistence"]).await)
            .lines()
            .find(|l| l.starts_with("aof_last_write_status:")),
        Some("aof_last_write_status:err")
    );
    ok(&mut con, &["CONFIG", "SET", "min-free-disk", "0"]).await;
    set(&mut con, "new", "2").await;
    assert_eq!(text(&mut con, &["GET", "new"]).await.as_deref(), Some("2"));
}

async fn oom_in_memory_only_mode(resp3: bool) {
    let server = start_with(|config| {
        config.storage.warm_tier = false;
        config.memory.maxmemory = MemorySize(512 * 1024);
        config.memory.maxmemory_policy = "noeviction".into();
    })
    .await;
    let mut con = server.client(resp3).await;
    assert_eq!(tier(&mut con, "warm_tier").await, 0);
    let big = "x".repeat(10_000);
    let mut refused = None;
    for i in 0..200 {
        match redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(&big)
            .query_async::<Value>(&mut con)
            .await
        {
            Ok(_) => {}
            Err(error) => {
                refused = Some(format!(
                    "{} {}",
                    error.code().unwrap_or("?"),
                    error.detail().unwrap_or("")
                ));
                break;
            }
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("OOM command not allowed when used memory > 'maxmemory'.")
    );
    assert_eq!(text(&mut con, &["GET", "k0"]).await, Some(big));
    assert_eq!(int(&mut con, &["DEL", "k0", "k1"]).await, 2);

    // A policy that may evict makes room, losing keys as Redis does.
    ok(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    )
    .await;
    for i in 0..200 {
        set(&mut con, &format!("more{i}"), &"y".repeat(10_000)).await;
    }
    assert!(info_stat(&mut con, "evicted_keys").await > 0);
    assert!(int(&mut con, &["DBSIZE"]).await < 200);
}

async fn max_disk_evicts_or_refuses(resp3: bool) {
    let server = start_with(|config| {
        config.storage.max_disk = MemorySize(200 * 1024);
    })
    .await;
    let mut con = server.client(resp3).await;
    fill(&mut con, "d:", 1000, 1000).await;
    assert!(tier(&mut con, "warm_evictions").await > 0);
    let stored = tier(&mut con, "warm_bytes").await;
    assert!(stored <= 200 * 1024 + 2048, "warm_bytes {stored}");
    let kept = int(&mut con, &["DBSIZE"]).await;
    assert!((100..300).contains(&kept), "dbsize {kept}");

    ok(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    )
    .await;
    let mut refused = None;
    for i in 0..100 {
        if let Err(error) = redis::cmd("SET")
            .arg(format!("more{i}"))
            .arg("z".repeat(1000))
            .query_async::<Value>(&mut con)
            .await
        {
            refused = Some(error.detail().unwrap_or("").to_string());
            break;
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("command not allowed when used disk > 'max-disk'.")
    );
    // Removing data is still allowed.
    let victim = text(&mut con, &["RANDOMKEY"]).await.expect("a key");
    assert_eq!(int(&mut con, &["DEL", &victim]).await, 1);
}

both_protocols!(
    tiers_section_and_cache_stats,
    keys_only_on_disk_read_back,
    restart_keeps_every_database,
    misconf_while_the_disk_is_short,
    oom_in_memory_only_mode,
    max_disk_evicts_or_refuses,
);
