//! The string and bitmap commands (GET/SET and variants, counters, ranges,
//! LCS, SETBIT/GETBIT/BITCOUNT/BITPOS/BITOP/BITFIELD) against Redis 7's
//! replies, error texts and edge cases, each under RESP2 and RESP3.

#[macro_use]
mod common;

use common::*;

use redis::Value;

both_protocols!(
    get_and_set,
    set_nx_xx_get,
    set_expiry_options,
    set_expiry_errors,
    setnx_setex_psetex,
    getset_and_getdel,
    getex_options,
    mget_mset_msetnx,
    append_and_strlen,
    getrange_and_substr,
    setrange,
    size_limits_follow_proto_max_bulk_len,
    incr_decr,
    incr_errors_and_overflow,
    incrbyfloat,
    lcs_string_and_len,
    lcs_idx,
    lcs_errors,
    setbit_getbit,
    bitcount,
    bitpos,
    bitop,
    bitfield_get_set_incrby,
    bitfield_overflow,
    bitfield_offsets_and_errors,
    bitfield_ro,
    encodings,
    keyspace_hits_and_misses,
    bit_writes_count_only_real_changes,
);

fn ints(values: &[i64]) -> Value {
    Value::Array(values.iter().map(|&n| Value::Int(n)).collect())
}

async fn set_bytes(con: &mut Conn, key: &str, value: &[u8]) {
    let reply = raw(con, &[b"SET", key.as_bytes(), value]).await;
    assert_eq!(reply.ok(), Some(Value::Okay));
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const SYNTAX: &str = "ERR syntax error";
const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const BAD_FIELD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

// ---------------------------------------------------------------------------
// GET / SET

async fn get_and_set(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(q(&mut c, &["GET", "missing"]).await, Value::Nil);
    set(&mut c, "k", "v").await;
    assert_eq!(q(&mut c, &["GET", "k"]).await, bulk("v"));
    set(&mut c, "k", "").await;
    assert_eq!(q(&mut c, &["GET", "k"]).await, bulk(""));
    let binary = b"a\0b\r\nc\xff".to_vec();
    set_bytes(&mut c, "bin", &binary).await;
    assert_eq!(bytes(&mut c, &["GET", "bin"]).await, binary);
    let big = "x".repeat(100_000);
    set(&mut c, "big", &big).await;
    assert_eq!(text(&mut c, &["GET", "big"]).await, Some(big));
    assert_eq!(
        err(&mut c, &["GET"]).await,
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err(&mut c, &["SET", "k"]).await,
        "ERR wrong number of arguments for 'set' command"
    );
}

async fn set_nx_xx_get(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    ok(&mut c, &["SET", "k", "v1", "NX"]).await;
    assert_eq!(q(&mut c, &["SET", "k", "v2", "NX"]).await, Value::Nil);
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("v1"));
    ok(&mut c, &["SET", "k", "v3", "xx"]).await;
    assert_eq!(q(&mut c, &["SET", "absent", "v", "XX"]).await, Value::Nil);
    assert_eq!(int(&mut c, &["EXISTS", "absent"]).await, 0);

    // GET answers the old value whether or not the write happened.
    assert_eq!(q(&mut c, &["SET", "k", "v4", "GET"]).await, bulk("v3"));
    assert_eq!(
        q(&mut c, &["SET", "k", "v5", "NX", "GET"]).await,
        bulk("v4")
    );
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("v4"));
    assert_eq!(
        q(&mut c, &["SET", "new", "v", "GET", "NX"]).await,
        Value::Nil
    );
    assert_eq!(text(&mut c, &["GET", "new"]).await.as_deref(), Some("v"));
    assert_eq!(
        q(&mut c, &["SET", "new2", "v", "XX", "GET"]).await,
        Value::Nil
    );
    assert_eq!(int(&mut c, &["EXISTS", "new2"]).await, 0);

    // Repeating an option is accepted, conflicting ones are not.
    ok(&mut c, &["SET", "k", "v", "XX", "XX"]).await;
    assert_eq!(q(&mut c, &["SET", "k", "w", "GET", "GET"]).await, bulk("v"));
    assert_eq!(err(&mut c, &["SET", "k", "v", "NX", "XX"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["SET", "k", "v", "XX", "NX"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["SET", "k", "v", "BOGUS"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["SET", "k", "v", "PERSIST"]).await, SYNTAX);
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("w"));
}

async fn set_expiry_options(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    ok(&mut c, &["SET", "k", "v", "EX", "100"]).await;
    let ttl = int(&mut c, &["PTTL", "k"]).await;
    assert!(ttl > 98_000 && ttl <= 100_000, "{ttl}");
    ok(&mut c, &["SET", "k", "v", "PX", "5000"]).await;
    let ttl = int(&mut c, &["PTTL", "k"]).await;
    assert!(ttl > 4_000 && ttl <= 5_000, "{ttl}");
    ok(&mut c, &["SET", "k", "v", "EXAT", "9999999999"]).await;
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 9_999_999_999_000);
    ok(&mut c, &["SET", "k", "v", "PXAT", "99999999999999"]).await;
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 99_999_999_999_999);
    // A repeated expiry option: the last one wins.
    ok(
        &mut c,
        &["SET", "k", "v", "EXAT", "9999999998", "EXAT", "9999999999"],
    )
    .await;
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 9_999_999_999_000);

    // KEEPTTL keeps it, a plain SET (or GET KEEPTTL on another value) clears it.
    ok(&mut c, &["SET", "k", "v2", "KEEPTTL"]).await;
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 9_999_999_999_000);
    assert_eq!(
        q(&mut c, &["SET", "k", "v3", "GET", "KEEPTTL"]).await,
        bulk("v2")
    );
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 9_999_999_999_000);
    set(&mut c, "k", "v").await;
    assert_eq!(int(&mut c, &["TTL", "k"]).await, -1);
    ok(&mut c, &["SET", "fresh", "v", "KEEPTTL"]).await;
    assert_eq!(int(&mut c, &["TTL", "fresh"]).await, -1);

    // A deadline already past: accepted, and the key is gone.
    ok(&mut c, &["SET", "k", "v", "EXAT", "1"]).await;
    assert_eq!(q(&mut c, &["GET", "k"]).await, Value::Nil);
    ok(&mut c, &["SET", "k", "v", "PXAT", "1"]).await;
    assert_eq!(int(&mut c, &["EXISTS", "k"]).await, 0);

    // Expiry still works with NX/XX/GET.
    ok(&mut c, &["SET", "n", "v", "NX", "PX", "100000"]).await;
    assert!(int(&mut c, &["PTTL", "n"]).await > 0);
    assert_eq!(
        q(&mut c, &["SET", "n", "w", "XX", "GET", "EX", "50"]).await,
        bulk("v")
    );
    let ttl = int(&mut c, &["TTL", "n"]).await;
    assert!(ttl > 40 && ttl <= 50, "{ttl}");
}

async fn set_expiry_errors(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    let invalid = "ERR invalid expire time in 'set' command";
    for (option, amount) in [
        ("EX", "0"),
        ("EX", "-5"),
        ("PX", "0"),
        ("PX", "-1"),
        ("EXAT", "0"),
        ("PXAT", "-1"),
    ] {
        assert_eq!(
            err(&mut c, &["SET", "k", "v", option, amount]).await,
            invalid,
            "{option} {amount}"
        );
    }
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "abc"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "PX", "1.5"]).await,
        NOT_INTEGER
    );
    // Seconds that overflow once turned into milliseconds, or once the clock is added.
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "9223372036854776"]).await,
        invalid
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "9223372036854775"]).await,
        invalid
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "PX", "9223372036854775807"]).await,
        invalid
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EXAT", "9223372036854776"]).await,
        invalid
    );
    // Absolute deadlines that fit are fine.
    ok(&mut c, &["SET", "k", "v", "EXAT", "9223372036854775"]).await;
    ok(&mut c, &["SET", "k", "v", "PXAT", "9223372036854775807"]).await;
    // Conflicts and a missing amount.
    for args in [
        &["EX", "10", "PX", "10"][..],
        &["PX", "10", "EXAT", "10"],
        &["EXAT", "10", "PXAT", "10"],
        &["KEEPTTL", "EX", "10"],
        &["EX", "10", "KEEPTTL"],
        &["EX"],
        &["NX", "PX"],
    ] {
        let mut full = vec!["SET", "k", "v"];
        full.extend_from_slice(args);
        assert_eq!(err(&mut c, &full).await, SYNTAX, "{args:?}");
    }
    // Nothing was written by a failed SET.
    set(&mut c, "keep", "old").await;
    assert_eq!(
        err(&mut c, &["SET", "keep", "new", "EX", "0"]).await,
        invalid
    );
    assert_eq!(text(&mut c, &["GET", "keep"]).await.as_deref(), Some("old"));
}

async fn setnx_setex_psetex(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(int(&mut c, &["SETNX", "k", "a"]).await, 1);
    assert_eq!(int(&mut c, &["SETNX", "k", "b"]).await, 0);
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("a"));

    ok(&mut c, &["SETEX", "se", "100", "v"]).await;
    let ttl = int(&mut c, &["TTL", "se"]).await;
    assert!(ttl > 98 && ttl <= 100, "{ttl}");
    assert_eq!(text(&mut c, &["GET", "se"]).await.as_deref(), Some("v"));
    ok(&mut c, &["PSETEX", "pse", "100000", "w"]).await;
    let ttl = int(&mut c, &["PTTL", "pse"]).await;
    assert!(ttl > 98_000 && ttl <= 100_000, "{ttl}");
    // SETEX overwrites an existing key and its TTL.
    ok(&mut c, &["SETEX", "k", "50", "z"]).await;
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("z"));

    assert_eq!(
        err(&mut c, &["SETEX", "se", "0", "v"]).await,
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        err(&mut c, &["SETEX", "se", "9223372036854776", "v"]).await,
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        err(&mut c, &["PSETEX", "se", "-1", "v"]).await,
        "ERR invalid expire time in 'psetex' command"
    );
    assert_eq!(err(&mut c, &["SETEX", "se", "abc", "v"]).await, NOT_INTEGER);
    assert_eq!(
        err(&mut c, &["SETEX", "se", "10"]).await,
        "ERR wrong number of arguments for 'setex' command"
    );
}

async fn getset_and_getdel(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(q(&mut c, &["GETSET", "k", "a"]).await, Value::Nil);
    assert_eq!(q(&mut c, &["GETSET", "k", "b"]).await, bulk("a"));
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("b"));
    // GETSET drops the TTL.
    ok(&mut c, &["SET", "t", "v", "EX", "100"]).await;
    assert_eq!(q(&mut c, &["GETSET", "t", "w"]).await, bulk("v"));
    assert_eq!(int(&mut c, &["TTL", "t"]).await, -1);

    assert_eq!(q(&mut c, &["GETDEL", "k"]).await, bulk("b"));
    assert_eq!(q(&mut c, &["GETDEL", "k"]).await, Value::Nil);
    assert_eq!(int(&mut c, &["EXISTS", "k"]).await, 0);
}

async fn getex_options(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(q(&mut c, &["GETEX", "missing"]).await, Value::Nil);
    // A missing key answers nil before the expiry is even checked.
    assert_eq!(
        q(&mut c, &["GETEX", "missing", "EX", "-1"]).await,
        Value::Nil
    );
    set(&mut c, "k", "v").await;
    assert_eq!(q(&mut c, &["GETEX", "k"]).await, bulk("v"));
    assert_eq!(int(&mut c, &["TTL", "k"]).await, -1);
    assert_eq!(q(&mut c, &["GETEX", "k", "EX", "100"]).await, bulk("v"));
    let ttl = int(&mut c, &["TTL", "k"]).await;
    assert!(ttl > 98 && ttl <= 100, "{ttl}");
    assert_eq!(q(&mut c, &["GETEX", "k", "PX", "50000"]).await, bulk("v"));
    let ttl = int(&mut c, &["PTTL", "k"]).await;
    assert!(ttl > 48_000 && ttl <= 50_000, "{ttl}");
    assert_eq!(
        q(&mut c, &["GETEX", "k", "EXAT", "9999999999"]).await,
        bulk("v")
    );
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 9_999_999_999_000);
    assert_eq!(
        q(&mut c, &["GETEX", "k", "PXAT", "99999999999999"]).await,
        bulk("v")
    );
    assert_eq!(int(&mut c, &["PEXPIRETIME", "k"]).await, 99_999_999_999_999);
    assert_eq!(q(&mut c, &["GETEX", "k", "PERSIST"]).await, bulk("v"));
    assert_eq!(int(&mut c, &["TTL", "k"]).await, -1);
    // A past absolute deadline deletes the key after answering it.
    assert_eq!(q(&mut c, &["GETEX", "k", "PXAT", "1"]).await, bulk("v"));
    assert_eq!(int(&mut c, &["EXISTS", "k"]).await, 0);

    set(&mut c, "k", "v").await;
    let invalid = "ERR invalid expire time in 'getex' command";
    assert_eq!(err(&mut c, &["GETEX", "k", "EX", "-1"]).await, invalid);
    assert_eq!(err(&mut c, &["GETEX", "k", "PX", "0"]).await, invalid);
    assert_eq!(
        err(&mut c, &["GETEX", "k", "EX", "9223372036854776"]).await,
        invalid
    );
    assert_eq!(err(&mut c, &["GETEX", "k", "EX", "ten"]).await, NOT_INTEGER);
    for args in [
        &["PERSIST", "EX", "10"][..],
        &["EX", "10", "PERSIST"],
        &["EX", "10", "PX", "10"],
        &["NX"],
        &["XX"],
        &["GET"],
        &["KEEPTTL"],
        &["EX"],
    ] {
        let mut full = vec!["GETEX", "k"];
        full.extend_from_slice(args);
        assert_eq!(err(&mut c, &full).await, SYNTAX, "{args:?}");
    }
    assert_eq!(int(&mut c, &["TTL", "k"]).await, -1);
}

async fn mget_mset_msetnx(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    ok(&mut c, &["MSET", "a", "1", "b", "2", "a", "3"]).await;
    assert_eq!(
        q(&mut c, &["MGET", "a", "b", "missing", "a"]).await,
        Value::Array(vec![bulk("3"), bulk("2"), Value::Nil, bulk("3")])
    );
    // MSET drops TTLs like SET.
    ok(&mut c, &["SET", "t", "v", "EX", "100"]).await;
    ok(&mut c, &["MSET", "t", "w"]).await;
    assert_eq!(int(&mut c, &["TTL", "t"]).await, -1);
    assert_eq!(
        err(&mut c, &["MSET", "a", "1", "b"]).await,
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        err(&mut c, &["MSET", "a"]).await,
        "ERR wrong number of arguments for 'mset' command"
    );

    assert_eq!(int(&mut c, &["MSETNX", "a", "x", "new", "y"]).await, 0);
    assert_eq!(int(&mut c, &["EXISTS", "new"]).await, 0);
    assert_eq!(int(&mut c, &["MSETNX", "x", "1", "y", "2"]).await, 1);
    assert_eq!(
        q(&mut c, &["MGET", "x", "y"]).await,
        Value::Array(vec![bulk("1"), bulk("2")])
    );
    assert_eq!(int(&mut c, &["MSETNX", "z", "1", "z", "2"]).await, 1);
    assert_eq!(text(&mut c, &["GET", "z"]).await.as_deref(), Some("2"));
    assert_eq!(
        err(&mut c, &["MSETNX", "q", "1", "r"]).await,
        "ERR wrong number of arguments for 'msetnx' command"
    );
}

async fn append_and_strlen(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(int(&mut c, &["APPEND", "k", "hello"]).await, 5);
    assert_eq!(int(&mut c, &["APPEND", "k", " world"]).await, 11);
    assert_eq!(int(&mut c, &["APPEND", "k", ""]).await, 11);
    assert_eq!(
        text(&mut c, &["GET", "k"]).await.as_deref(),
        Some("hello world")
    );
    assert_eq!(int(&mut c, &["STRLEN", "k"]).await, 11);
    assert_eq!(int(&mut c, &["STRLEN", "missing"]).await, 0);
    assert_eq!(int(&mut c, &["APPEND", "empty", ""]).await, 0);
    assert_eq!(int(&mut c, &["EXISTS", "empty"]).await, 1);
    // In place: the TTL stays.
    ok(&mut c, &["SET", "t", "a", "EX", "100"]).await;
    assert_eq!(int(&mut c, &["APPEND", "t", "b"]).await, 2);
    assert!(int(&mut c, &["TTL", "t"]).await > 0);
    // Many small appends (amortised growth) keep every byte in order.
    let mut expected = String::new();
    for i in 0..500 {
        let piece = format!("{i},");
        expected.push_str(&piece);
        assert_eq!(
            int(&mut c, &["APPEND", "log", &piece]).await,
            expected.len() as i64
        );
    }
    assert_eq!(text(&mut c, &["GET", "log"]).await, Some(expected));
    // A value being read while appended to stays intact.
    set(&mut c, "n", "12").await;
    assert_eq!(int(&mut c, &["APPEND", "n", "34"]).await, 4);
    assert_eq!(int(&mut c, &["INCR", "n"]).await, 1235);
}

async fn getrange_and_substr(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "s", "This is a string").await;
    for (start, end, expected) in [
        ("0", "3", "This"),
        ("-3", "-1", "ing"),
        ("0", "-1", "This is a string"),
        ("10", "100", "string"),
        ("5", "3", ""),
        ("-1", "-5", ""),
        ("100", "200", ""),
        ("-100", "-50", "T"),
        // Redis 7 clamps a too-negative end to the first byte.
        ("0", "-100", "T"),
        (
            "-9223372036854775808",
            "9223372036854775807",
            "This is a string",
        ),
    ] {
        assert_eq!(
            q(&mut c, &["GETRANGE", "s", start, end]).await,
            bulk(expected),
            "{start} {end}"
        );
    }
    assert_eq!(q(&mut c, &["SUBSTR", "s", "0", "3"]).await, bulk("This"));
    assert_eq!(
        q(&mut c, &["GETRANGE", "missing", "0", "-1"]).await,
        bulk("")
    );
    set(&mut c, "empty", "").await;
    assert_eq!(q(&mut c, &["GETRANGE", "empty", "0", "-1"]).await, bulk(""));
    assert_eq!(q(&mut c, &["GETRANGE", "empty", "0", "0"]).await, bulk(""));
    set(&mut c, "n", "1234").await;
    assert_eq!(q(&mut c, &["GETRANGE", "n", "1", "2"]).await, bulk("23"));
    assert_eq!(err(&mut c, &["GETRANGE", "s", "a", "1"]).await, NOT_INTEGER);
    assert_eq!(
        err(&mut c, &["GETRANGE", "s", "0", "1.0"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        err(&mut c, &["GETRANGE", "missing", "x", "1"]).await,
        NOT_INTEGER
    );
}

async fn setrange(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(int(&mut c, &["SETRANGE", "k", "5", "hello"]).await, 10);
    assert_eq!(bytes(&mut c, &["GET", "k"]).await, b"\0\0\0\0\0hello");
    assert_eq!(int(&mut c, &["SETRANGE", "k", "0", "ab"]).await, 10);
    assert_eq!(int(&mut c, &["SETRANGE", "k", "8", "LOWORLD"]).await, 15);
    assert_eq!(bytes(&mut c, &["GET", "k"]).await, b"ab\0\0\0helLOWORLD");
    // An empty value writes nothing: the length, and no key created.
    assert_eq!(int(&mut c, &["SETRANGE", "k", "100", ""]).await, 15);
    assert_eq!(int(&mut c, &["SETRANGE", "missing", "5", ""]).await, 0);
    assert_eq!(
        int(&mut c, &["SETRANGE", "missing", "536870912", ""]).await,
        0
    );
    assert_eq!(int(&mut c, &["EXISTS", "missing"]).await, 0);
    // In place on an integer value, TTL kept.
    ok(&mut c, &["SET", "n", "1234", "EX", "100"]).await;
    assert_eq!(int(&mut c, &["SETRANGE", "n", "1", "x"]).await, 4);
    assert_eq!(text(&mut c, &["GET", "n"]).await.as_deref(), Some("1x34"));
    assert!(int(&mut c, &["TTL", "n"]).await > 0);

    assert_eq!(
        err(&mut c, &["SETRANGE", "k", "-1", "x"]).await,
        "ERR offset is out of range"
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "k", "abc", "x"]).await,
        NOT_INTEGER
    );
    // offset + length past 512MB (the default proto-max-bulk-len).
    assert_eq!(
        err(&mut c, &["SETRANGE", "k", "536870912", "x"]).await,
        TOO_LONG
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "k", "536870911", "xy"]).await,
        TOO_LONG
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "k", "9223372036854775807", "x"]).await,
        TOO_LONG
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "new", "536870912", "x"]).await,
        TOO_LONG
    );
    assert_eq!(int(&mut c, &["EXISTS", "new"]).await, 0);
}

async fn size_limits_follow_proto_max_bulk_len(resp3: bool) {
    let server = common::start_with(|config| {
        config.server.proto_max_bulk_len = strata::config::MemorySize(1024 * 1024);
    })
    .await;
    let mut c = server.client(resp3).await;
    let mb = 1024 * 1024;
    assert_eq!(
        int(&mut c, &["SETRANGE", "big", &(mb - 1).to_string(), "x"]).await,
        mb
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "big", &mb.to_string(), "x"]).await,
        TOO_LONG
    );
    assert_eq!(err(&mut c, &["APPEND", "big", "x"]).await, TOO_LONG);
    assert_eq!(int(&mut c, &["APPEND", "big", ""]).await, mb);
    assert_eq!(
        int(&mut c, &["SETBIT", "big", &(mb * 8 - 1).to_string(), "1"]).await,
        0
    );
    assert_eq!(
        err(&mut c, &["SETBIT", "big", &(mb * 8).to_string(), "1"]).await,
        BIT_OFFSET
    );
    assert_eq!(
        err(&mut c, &["GETBIT", "big", &(mb * 8).to_string()]).await,
        BIT_OFFSET
    );
    assert_eq!(
        err(&mut c, &["BITFIELD", "big", "GET", "u8", "#1048576"]).await,
        BIT_OFFSET
    );
    // A field may start in the last byte and reach a little past it.
    assert_eq!(
        q(
            &mut c,
            &[
                "BITFIELD",
                "big",
                "SET",
                "i64",
                &(mb * 8 - 1).to_string(),
                "-1"
            ]
        )
        .await,
        ints(&[i64::MIN])
    );
    assert_eq!(int(&mut c, &["STRLEN", "big"]).await, mb + 8);
}

// ---------------------------------------------------------------------------
// Counters

async fn incr_decr(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(int(&mut c, &["INCR", "n"]).await, 1);
    assert_eq!(int(&mut c, &["INCR", "n"]).await, 2);
    assert_eq!(int(&mut c, &["INCRBY", "n", "10"]).await, 12);
    assert_eq!(int(&mut c, &["INCRBY", "n", "-20"]).await, -8);
    assert_eq!(int(&mut c, &["DECR", "n"]).await, -9);
    assert_eq!(int(&mut c, &["DECRBY", "n", "-9"]).await, 0);
    assert_eq!(int(&mut c, &["DECRBY", "fresh", "5"]).await, -5);
    assert_eq!(text(&mut c, &["GET", "n"]).await.as_deref(), Some("0"));
    set(&mut c, "big", "9223372036854775806").await;
    assert_eq!(int(&mut c, &["INCR", "big"]).await, i64::MAX);
    set(&mut c, "small", "-9223372036854775807").await;
    assert_eq!(int(&mut c, &["DECR", "small"]).await, i64::MIN);
    // The TTL survives.
    ok(&mut c, &["SET", "t", "10", "EX", "100"]).await;
    assert_eq!(int(&mut c, &["INCR", "t"]).await, 11);
    assert!(int(&mut c, &["TTL", "t"]).await > 0);
}

async fn incr_errors_and_overflow(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    for value in [
        " 1",
        "1 ",
        "01",
        "-0",
        "1.0",
        "",
        "abc",
        "+1",
        "99999999999999999999",
    ] {
        set(&mut c, "k", value).await;
        assert_eq!(err(&mut c, &["INCR", "k"]).await, NOT_INTEGER, "{value:?}");
    }
    set(&mut c, "k", "5").await;
    assert_eq!(err(&mut c, &["INCRBY", "k", "abc"]).await, NOT_INTEGER);
    assert_eq!(err(&mut c, &["INCRBY", "k", "1.5"]).await, NOT_INTEGER);
    assert_eq!(err(&mut c, &["DECRBY", "k", ""]).await, NOT_INTEGER);
    let overflow = "ERR increment or decrement would overflow";
    set(&mut c, "max", "9223372036854775807").await;
    assert_eq!(err(&mut c, &["INCR", "max"]).await, overflow);
    assert_eq!(err(&mut c, &["INCRBY", "max", "1"]).await, overflow);
    assert_eq!(err(&mut c, &["DECRBY", "max", "-1"]).await, overflow);
    set(&mut c, "min", "-9223372036854775808").await;
    assert_eq!(err(&mut c, &["DECR", "min"]).await, overflow);
    assert_eq!(err(&mut c, &["INCRBY", "min", "-1"]).await, overflow);
    assert_eq!(
        err(&mut c, &["DECRBY", "k", "-9223372036854775808"]).await,
        "ERR decrement would overflow"
    );
    assert_eq!(
        int(&mut c, &["DECRBY", "k", "9223372036854775807"]).await,
        5 - i64::MAX
    );
    assert_eq!(
        int(&mut c, &["INCRBY", "min", "9223372036854775807"]).await,
        -1
    );
    // Failed commands change nothing.
    assert_eq!(
        text(&mut c, &["GET", "max"]).await.as_deref(),
        Some("9223372036854775807")
    );
}

async fn incrbyfloat(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    let run = |key: &'static str, increments: &'static [&'static str]| {
        let mut c = c.clone();
        async move {
            let mut last = None;
            for increment in increments {
                last = text(&mut c, &["INCRBYFLOAT", key, increment]).await;
            }
            last.unwrap_or_default()
        }
    };
    assert_eq!(run("a", &["10.5", "0.1"]).await, "10.6");
    assert_eq!(run("b", &["3.0e2"]).await, "300");
    assert_eq!(run("c", &["1.5", "-1.5"]).await, "0");
    assert_eq!(run("d", &["-0.0"]).await, "0");
    assert_eq!(run("e", &["1e20"]).await, "100000000000000000000");
    assert_eq!(run("g", &["1e-20"]).await, "0");
    assert_eq!(run("h", &["-2.5", "1"]).await, "-1.5");
    assert_eq!(run("i", &["5000000000"]).await, "5000000000");
    assert_eq!(text(&mut c, &["GET", "a"]).await.as_deref(), Some("10.6"));
    // Integers are floats too, and the TTL survives.
    ok(&mut c, &["SET", "n", "10", "EX", "100"]).await;
    assert_eq!(
        text(&mut c, &["INCRBYFLOAT", "n", "1.5"]).await.as_deref(),
        Some("11.5")
    );
    assert!(int(&mut c, &["TTL", "n"]).await > 0);
    set(&mut c, "max", "9223372036854775807").await;
    assert_eq!(
        text(&mut c, &["INCRBYFLOAT", "max", "1.5"])
            .await
            .as_deref(),
        Some("9223372036854775808")
    );

    for increment in ["abc", "", " 1", "1 ", "nan", "1e", "0x"] {
        assert_eq!(
            err(&mut c, &["INCRBYFLOAT", "a", increment]).await,
            NOT_FLOAT,
            "{increment:?}"
        );
    }
    set(&mut c, "text", "abc").await;
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "text", "1"]).await, NOT_FLOAT);
    let nan_inf = "ERR increment would produce NaN or Infinity";
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "a", "inf"]).await, nan_inf);
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "a", "-inf"]).await, nan_inf);
    // Redis adds in 80-bit long double: 1e308 + 1e308 is finite there, the
    // top of the long double range is not.
    set(&mut c, "huge", "1e308").await;
    let sum = text(&mut c, &["INCRBYFLOAT", "huge", "1e308"])
        .await
        .unwrap_or_default();
    assert_eq!(sum.len(), 309, "{sum}");
    assert!(
        sum.starts_with("1999999999999999999933717593116912913211"),
        "{sum}"
    );
    set(&mut c, "huge", "1.18973149535723176502e4932").await;
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "huge", "1e4913"]).await,
        nan_inf
    );
    assert_eq!(text(&mut c, &["GET", "a"]).await.as_deref(), Some("10.6"));
}

// ---------------------------------------------------------------------------
// LCS

/// The IDX reply as `(matches, len)`, whichever protocol shape it came in.
fn lcs_idx_parts(reply: Value, resp3: bool) -> (Vec<Value>, i64) {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Map(pairs) => {
            assert!(resp3, "a map in RESP2");
            pairs
        }
        Value::Array(flat) => {
            assert!(!resp3, "a flat array in RESP3");
            let mut items = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        other => panic!("unexpected LCS IDX reply {other:?}"),
    };
    match pairs.as_slice() {
        [(k1, Value::Array(matches)), (k2, Value::Int(len))] => {
            assert_eq!((k1, k2), (&bulk("matches"), &bulk("len")));
            (matches.clone(), *len)
        }
        other => panic!("unexpected LCS IDX fields {other:?}"),
    }
}

fn lcs_match(a: (i64, i64), b: (i64, i64), len: Option<i64>) -> Value {
    let mut item = vec![ints(&[a.0, a.1]), ints(&[b.0, b.1])];
    item.extend(len.map(Value::Int));
    Value::Array(item)
}

async fn lcs_string_and_len(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    ok(&mut c, &["MSET", "a", "ohmytext", "b", "mynewtext"]).await;
    assert_eq!(q(&mut c, &["LCS", "a", "b"]).await, bulk("mytext"));
    assert_eq!(int(&mut c, &["LCS", "a", "b", "LEN"]).await, 6);
    assert_eq!(q(&mut c, &["LCS", "a", "missing"]).await, bulk(""));
    assert_eq!(int(&mut c, &["LCS", "missing", "other", "len"]).await, 0);
    assert_eq!(q(&mut c, &["LCS", "a", "a"]).await, bulk("ohmytext"));
    ok(&mut c, &["MSET", "x", "ABCBDAB", "y", "BDCABA"]).await;
    assert_eq!(q(&mut c, &["LCS", "x", "y"]).await, bulk("BDAB"));
    assert_eq!(int(&mut c, &["LCS", "y", "x", "LEN"]).await, 4);
    // Integers compare as their text.
    ok(&mut c, &["MSET", "n1", "12345", "n2", "2345"]).await;
    assert_eq!(q(&mut c, &["LCS", "n1", "n2"]).await, bulk("2345"));
}

async fn lcs_idx(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    ok(&mut c, &["MSET", "a", "ohmytext", "b", "mynewtext"]).await;
    let (matches, len) = lcs_idx_parts(q(&mut c, &["LCS", "a", "b", "IDX"]).await, resp3);
    assert_eq!(len, 6);
    assert_eq!(
        matches,
        vec![
            lcs_match((4, 7), (5, 8), None),
            lcs_match((2, 3), (0, 1), None)
        ]
    );
    let (matches, _) = lcs_idx_parts(
        q(
            &mut c,
            &["LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
        )
        .await,
        resp3,
    );
    assert_eq!(matches, vec![lcs_match((4, 7), (5, 8), Some(4))]);
    let (matches, _) = lcs_idx_parts(
        q(&mut c, &["LCS", "a", "b", "WITHMATCHLEN", "IDX"]).await,
        resp3,
    );
    assert_eq!(
        matches,
        vec![
            lcs_match((4, 7), (5, 8), Some(4)),
            lcs_match((2, 3), (0, 1), Some(2))
        ]
    );
    // A negative minimum means no minimum.
    let (matches, _) = lcs_idx_parts(
        q(&mut c, &["LCS", "a", "b", "IDX", "MINMATCHLEN", "-5"]).await,
        resp3,
    );
    assert_eq!(matches.len(), 2);
    let (matches, len) = lcs_idx_parts(q(&mut c, &["LCS", "a", "nothing", "IDX"]).await, resp3);
    assert_eq!((matches, len), (vec![], 0));
    ok(&mut c, &["MSET", "x", "aaaaa", "y", "aa"]).await;
    let (matches, len) = lcs_idx_parts(q(&mut c, &["LCS", "x", "y", "IDX"]).await, resp3);
    assert_eq!(len, 2);
    assert_eq!(matches, vec![lcs_match((3, 4), (0, 1), None)]);
}

async fn lcs_errors(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    ok(&mut c, &["MSET", "a", "ohmytext", "b", "mynewtext"]).await;
    assert_eq!(
        err(&mut c, &["LCS", "a", "b", "LEN", "IDX"]).await,
        "ERR If you want both the length and indexes, please just use IDX."
    );
    assert_eq!(err(&mut c, &["LCS", "a", "b", "BOGUS"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["LCS", "a", "b", "MINMATCHLEN"]).await, SYNTAX);
    assert_eq!(
        err(&mut c, &["LCS", "a", "b", "MINMATCHLEN", "x"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        err(&mut c, &["LCS", "a"]).await,
        "ERR wrong number of arguments for 'lcs' command"
    );
}

// ---------------------------------------------------------------------------
// Bits

/// SETBIT and BITFIELD count a change (INFO's `rdb_changes_since_last_save`)
/// only when the key is created or grown or a value flips, BITFIELD one per
/// changed field, and a write that changes nothing leaves a WATCH alone:
/// Redis 7.0's tests/unit/bitops.tcl.
async fn bit_writes_count_only_real_changes(resp3: bool) {
    let (server, mut c) = start_client(resp3).await;
    let mut changes = 0;
    let mut step = async |c: &mut Conn, args: &[&str], want: i64| {
        q(c, args).await;
        let now = info_field(c, "persistence", "rdb_changes_since_last_save").await;
        assert_eq!(now - changes, want, "{args:?}");
        changes = now;
    };
    step(&mut c, &["PING"], 0).await;
    step(&mut c, &["SETBIT", "foo", "0", "0"], 1).await;
    step(&mut c, &["BITFIELD", "foo2", "SET", "i5", "0", "0"], 1).await;
    step(&mut c, &["SETBIT", "foo", "0", "0"], 0).await;
    step(&mut c, &["BITFIELD", "foo2", "SET", "i5", "0", "0"], 0).await;
    step(&mut c, &["SETBIT", "foo", "0", "1"], 1).await;
    step(&mut c, &["SETBIT", "foo", "0", "1"], 0).await;
    step(&mut c, &["BITFIELD", "foo2", "SET", "i5", "0", "1"], 1).await;
    step(&mut c, &["BITFIELD", "foo2", "SET", "i5", "0", "1"], 0).await;
    let two_fields = [
        "BITFIELD", "foo2", "SET", "u8", "8", "1", "SET", "u8", "16", "2",
    ];
    step(&mut c, &two_fields, 2).await;
    step(&mut c, &two_fields, 0).await;
    step(&mut c, &["BITFIELD", "foo3", "INCRBY", "i5", "0", "1"], 1).await;
    step(&mut c, &["BITFIELD", "foo3", "INCRBY", "i5", "0", "1"], 1).await;
    // Growing the string is a change even when the bit stays 0.
    step(&mut c, &["SETBIT", "foo", "90", "0"], 1).await;
    step(&mut c, &["BITFIELD", "foo2", "SET", "i5", "90", "0"], 1).await;
    assert_eq!(int(&mut c, &["GETBIT", "foo", "0"]).await, 1);

    // A WATCH survives a bit write that changes nothing.
    let mut other = server.client(resp3).await;
    q(&mut c, &["WATCH", "foo"]).await;
    assert_eq!(int(&mut other, &["SETBIT", "foo", "0", "1"]).await, 1);
    q(&mut c, &["MULTI"]).await;
    q(&mut c, &["PING"]).await;
    assert_ne!(
        q(&mut c, &["EXEC"]).await,
        Value::Nil,
        "a no-op SETBIT aborted EXEC"
    );
    q(&mut c, &["WATCH", "foo"]).await;
    assert_eq!(int(&mut other, &["SETBIT", "foo", "0", "0"]).await, 1);
    q(&mut c, &["MULTI"]).await;
    q(&mut c, &["PING"]).await;
    assert_eq!(
        q(&mut c, &["EXEC"]).await,
        Value::Nil,
        "a flipped bit must abort EXEC"
    );
}

async fn setbit_getbit(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(int(&mut c, &["SETBIT", "b", "7", "1"]).await, 0);
    assert_eq!(int(&mut c, &["SETBIT", "b", "7", "1"]).await, 1);
    assert_eq!(bytes(&mut c, &["GET", "b"]).await, b"\x01");
    assert_eq!(int(&mut c, &["SETBIT", "b", "0", "1"]).await, 0);
    assert_eq!(bytes(&mut c, &["GET", "b"]).await, b"\x81");
    assert_eq!(int(&mut c, &["SETBIT", "b", "7", "0"]).await, 1);
    assert_eq!(int(&mut c, &["SETBIT", "b", "100", "1"]).await, 0);
    assert_eq!(int(&mut c, &["STRLEN", "b"]).await, 13);
    assert_eq!(int(&mut c, &["GETBIT", "b", "100"]).await, 1);
    assert_eq!(int(&mut c, &["GETBIT", "b", "101"]).await, 0);
    assert_eq!(int(&mut c, &["GETBIT", "b", "0"]).await, 1);
    assert_eq!(int(&mut c, &["GETBIT", "b", "4294967295"]).await, 0);
    assert_eq!(int(&mut c, &["GETBIT", "missing", "5"]).await, 0);
    // Clearing a bit past the end still grows the string.
    assert_eq!(int(&mut c, &["SETBIT", "z", "15", "0"]).await, 0);
    assert_eq!(bytes(&mut c, &["GET", "z"]).await, b"\0\0");
    // On an existing string, with its TTL kept.
    ok(&mut c, &["SET", "s", "@", "EX", "100"]).await;
    assert_eq!(int(&mut c, &["SETBIT", "s", "7", "1"]).await, 0);
    assert_eq!(text(&mut c, &["GET", "s"]).await.as_deref(), Some("A"));
    assert!(int(&mut c, &["TTL", "s"]).await > 0);
    // The largest offset the default 512MB limit allows.
    assert_eq!(int(&mut c, &["SETBIT", "huge", "4294967295", "1"]).await, 0);
    assert_eq!(int(&mut c, &["STRLEN", "huge"]).await, 536_870_912);
    assert_eq!(int(&mut c, &["GETBIT", "huge", "4294967295"]).await, 1);
    assert_eq!(int(&mut c, &["DEL", "huge"]).await, 1);

    for offset in ["4294967296", "-1", "abc", "#1", "1.5"] {
        assert_eq!(
            err(&mut c, &["SETBIT", "b", offset, "1"]).await,
            BIT_OFFSET,
            "{offset}"
        );
        assert_eq!(
            err(&mut c, &["GETBIT", "b", offset]).await,
            BIT_OFFSET,
            "{offset}"
        );
    }
    for value in ["2", "-1", "abc", ""] {
        assert_eq!(
            err(&mut c, &["SETBIT", "b", "1", value]).await,
            "ERR bit is not an integer or out of range",
            "{value:?}"
        );
    }
    assert_eq!(int(&mut c, &["EXISTS", "never"]).await, 0);
}

async fn bitcount(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "s", "foobar").await;
    for (args, expected) in [
        (&[][..], 26),
        (&["0", "0"][..], 4),
        (&["1", "1"], 6),
        (&["1", "1", "BYTE"], 6),
        (&["5", "30", "BIT"], 17),
        (&["5", "30", "bit"], 17),
        (&["0", "-1", "BIT"], 26),
        (&["-2", "-1"], 7),
        (&["-1", "-2"], 0),
        (&["-100", "100"], 26),
        (&["100", "200"], 0),
        (&["3", "-3", "BIT"], 23),
        (&["-9223372036854775808", "9223372036854775807"], 26),
        (&["-9223372036854775808", "9223372036854775807", "BIT"], 26),
    ] {
        let mut full = vec!["BITCOUNT", "s"];
        full.extend_from_slice(args);
        assert_eq!(int(&mut c, &full).await, expected, "{args:?}");
    }
    assert_eq!(int(&mut c, &["BITCOUNT", "missing"]).await, 0);
    assert_eq!(int(&mut c, &["BITCOUNT", "missing", "0", "-1"]).await, 0);
    set(&mut c, "empty", "").await;
    assert_eq!(int(&mut c, &["BITCOUNT", "empty"]).await, 0);
    assert_eq!(
        int(&mut c, &["BITCOUNT", "empty", "0", "-1", "BIT"]).await,
        0
    );
    // A long string crosses the word-at-a-time path.
    set(&mut c, "long", &"\u{7f}".repeat(1001)).await;
    assert_eq!(int(&mut c, &["BITCOUNT", "long"]).await, 7007);
    assert_eq!(int(&mut c, &["BITCOUNT", "long", "1", "999"]).await, 6993);

    // Arguments are checked before the key is looked up (Redis 7.2).
    assert_eq!(err(&mut c, &["BITCOUNT", "s", "0"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["BITCOUNT", "missing", "0"]).await, SYNTAX);
    assert_eq!(err(&mut c, &["BITCOUNT", "s", "a", "b"]).await, NOT_INTEGER);
    assert_eq!(
        err(&mut c, &["BITCOUNT", "missing", "0", "x"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        err(&mut c, &["BITCOUNT", "s", "0", "1", "BAD"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["BITCOUNT", "s", "0", "1", "BIT", "x"]).await,
        SYNTAX
    );
}

async fn bitpos(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set_bytes(&mut c, "b", b"\xff\xf0\x00").await;
    for (args, expected) in [
        (&["0"][..], 12),
        (&["1"][..], 0),
        (&["0", "1"], 12),
        (&["0", "2"], 16),
        (&["1", "2"], -1),
        (&["1", "-1"], -1),
        (&["1", "1"], 8),
        (&["0", "0", "-1"], 12),
        (&["0", "5", "20", "BIT"], 12),
        (&["1", "5", "20", "BIT"], 5),
        (&["1", "13", "20", "bit"], -1),
        (&["0", "0", "11", "BIT"], -1),
        (&["0", "0", "12", "BIT"], 12),
        (&["1", "12", "12", "BIT"], -1),
        (&["1", "5", "2"], -1),
        (&["0", "-1", "-2"], -1),
        (&["0", "-100", "100"], 12),
        (&["1", "0", "-1", "BYTE"], 0),
    ] {
        let mut full = vec!["BITPOS", "b"];
        full.extend_from_slice(args);
        assert_eq!(int(&mut c, &full).await, expected, "{args:?}");
    }
    // All ones: looking for a 0 answers the first bit past the string unless
    // an explicit end bounds the range.
    set_bytes(&mut c, "ones", b"\xff\xff\xff").await;
    assert_eq!(int(&mut c, &["BITPOS", "ones", "0"]).await, 24);
    assert_eq!(int(&mut c, &["BITPOS", "ones", "0", "1"]).await, 24);
    assert_eq!(int(&mut c, &["BITPOS", "ones", "0", "3"]).await, -1);
    assert_eq!(int(&mut c, &["BITPOS", "ones", "0", "0", "-1"]).await, -1);
    assert_eq!(
        int(&mut c, &["BITPOS", "ones", "0", "0", "-1", "BYTE"]).await,
        -1
    );
    assert_eq!(
        int(&mut c, &["BITPOS", "ones", "0", "0", "23", "BIT"]).await,
        -1
    );
    set_bytes(&mut c, "zeros", b"\0\0\0").await;
    assert_eq!(int(&mut c, &["BITPOS", "zeros", "1"]).await, -1);
    assert_eq!(int(&mut c, &["BITPOS", "zeros", "0"]).await, 0);
    // A missing key is an endless run of zeros; an empty string holds no bit.
    assert_eq!(int(&mut c, &["BITPOS", "missing", "0"]).await, 0);
    assert_eq!(int(&mut c, &["BITPOS", "missing", "1"]).await, -1);
    assert_eq!(int(&mut c, &["BITPOS", "missing", "0", "1", "2"]).await, 0);
    set(&mut c, "empty", "").await;
    assert_eq!(int(&mut c, &["BITPOS", "empty", "0"]).await, -1);
    // A long run is skipped a byte at a time.
    let mut long = vec![0u8; 5000];
    long.push(0x08);
    set_bytes(&mut c, "long", &long).await;
    assert_eq!(int(&mut c, &["BITPOS", "long", "1"]).await, 40_004);
    assert_eq!(int(&mut c, &["BITPOS", "long", "1", "10", "-2"]).await, -1);

    let not_binary = "ERR The bit argument must be 1 or 0.";
    assert_eq!(err(&mut c, &["BITPOS", "b", "2"]).await, not_binary);
    assert_eq!(err(&mut c, &["BITPOS", "missing", "-1"]).await, not_binary);
    assert_eq!(err(&mut c, &["BITPOS", "b", "abc"]).await, NOT_INTEGER);
    assert_eq!(err(&mut c, &["BITPOS", "b", "1", "a"]).await, NOT_INTEGER);
    assert_eq!(
        err(&mut c, &["BITPOS", "b", "1", "0", "a"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        err(&mut c, &["BITPOS", "b", "1", "0", "1", "BAD"]).await,
        SYNTAX
    );
    // The unit word is checked before the end index.
    assert_eq!(
        err(&mut c, &["BITPOS", "b", "1", "0", "a", "BAD"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["BITPOS", "b", "1", "0", "1", "BIT", "x"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["BITPOS", "missing", "1", "x"]).await,
        NOT_INTEGER
    );
}

async fn bitop(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    ok(
        &mut c,
        &["MSET", "a", "foobar", "b", "abcdef", "short", "a"],
    )
    .await;
    assert_eq!(int(&mut c, &["BITOP", "AND", "and", "a", "b"]).await, 6);
    assert_eq!(
        text(&mut c, &["GET", "and"]).await.as_deref(),
        Some("`bc`ab")
    );
    assert_eq!(int(&mut c, &["BITOP", "or", "or", "a", "b"]).await, 6);
    assert_eq!(
        text(&mut c, &["GET", "or"]).await.as_deref(),
        Some("goofev")
    );
    assert_eq!(int(&mut c, &["BITOP", "XOR", "xor", "a", "b"]).await, 6);
    assert_eq!(
        bytes(&mut c, &["GET", "xor"]).await,
        b"\x07\x0d\x0c\x06\x04\x14"
    );
    assert_eq!(int(&mut c, &["BITOP", "NOT", "not", "short"]).await, 1);
    assert_eq!(bytes(&mut c, &["GET", "not"]).await, b"\x9e");
    // Shorter and missing inputs count as zero bytes.
    assert_eq!(int(&mut c, &["BITOP", "AND", "d", "a", "short"]).await, 6);
    assert_eq!(bytes(&mut c, &["GET", "d"]).await, b"`\0\0\0\0\0");
    assert_eq!(int(&mut c, &["BITOP", "XOR", "d", "short", "b"]).await, 6);
    assert_eq!(bytes(&mut c, &["GET", "d"]).await, b"\0bcdef");
    assert_eq!(int(&mut c, &["BITOP", "OR", "d", "missing", "a"]).await, 6);
    assert_eq!(text(&mut c, &["GET", "d"]).await.as_deref(), Some("foobar"));
    assert_eq!(int(&mut c, &["BITOP", "AND", "d", "a", "missing"]).await, 6);
    assert_eq!(bytes(&mut c, &["GET", "d"]).await, vec![0u8; 6]);
    // A destination that is also a source.
    assert_eq!(int(&mut c, &["BITOP", "AND", "a", "a", "b"]).await, 6);
    assert_eq!(text(&mut c, &["GET", "a"]).await.as_deref(), Some("`bc`ab"));
    // An empty result deletes the destination; the result drops its TTL.
    set(&mut c, "gone", "x").await;
    assert_eq!(
        int(&mut c, &["BITOP", "OR", "gone", "missing", "other"]).await,
        0
    );
    assert_eq!(int(&mut c, &["EXISTS", "gone"]).await, 0);
    set(&mut c, "empty", "").await;
    assert_eq!(int(&mut c, &["BITOP", "NOT", "gone", "empty"]).await, 0);
    assert_eq!(int(&mut c, &["EXISTS", "gone"]).await, 0);
    ok(&mut c, &["SET", "t", "v", "EX", "100"]).await;
    assert_eq!(int(&mut c, &["BITOP", "OR", "t", "b"]).await, 6);
    assert_eq!(int(&mut c, &["TTL", "t"]).await, -1);
    // Long inputs.
    set(&mut c, "l1", &"\u{55}".repeat(1000)).await;
    set(&mut c, "l2", &"\u{2a}".repeat(999)).await;
    assert_eq!(int(&mut c, &["BITOP", "XOR", "l", "l1", "l2"]).await, 1000);
    let mut expected = vec![0x7fu8; 999];
    expected.push(0x55);
    assert_eq!(bytes(&mut c, &["GET", "l"]).await, expected);

    let single = "ERR BITOP NOT must be called with a single source key.";
    assert_eq!(err(&mut c, &["BITOP", "NOT", "d", "a", "b"]).await, single);
    assert_eq!(err(&mut c, &["BITOP", "BAD", "d", "a"]).await, SYNTAX);
    assert_eq!(
        err(&mut c, &["BITOP", "AND", "d"]).await,
        "ERR wrong number of arguments for 'bitop' command"
    );
}

async fn bitfield_get_set_incrby(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    assert_eq!(
        q(&mut c, &["BITFIELD", "k", "SET", "u8", "0", "255"]).await,
        ints(&[0])
    );
    assert_eq!(
        q(
            &mut c,
            &["BITFIELD", "k", "GET", "u8", "0", "GET", "i8", "0", "GET", "u4", "4"]
        )
        .await,
        ints(&[255, -1, 15])
    );
    assert_eq!(
        q(&mut c, &["BITFIELD", "k", "INCRBY", "u8", "0", "10"]).await,
        ints(&[9])
    );
    assert_eq!(
        q(
            &mut c,
            &["bitfield", "k", "set", "i5", "#1", "-7", "get", "i5", "#1", "get", "u5", "#1"]
        )
        .await,
        ints(&[4, -7, 25])
    );
    assert_eq!(bytes(&mut c, &["GET", "k"]).await, b"\x0e\x40");
    // Fields straddle bytes, read past the end as zeros, and grow the string
    // only when written.
    assert_eq!(
        q(
            &mut c,
            &["BITFIELD", "k", "GET", "i16", "4", "GET", "u32", "100"]
        )
        .await,
        ints(&[-7168, 0])
    );
    assert_eq!(int(&mut c, &["STRLEN", "k"]).await, 2);
    assert_eq!(
        q(
            &mut c,
            &["BITFIELD", "k", "SET", "u63", "1", "-1", "GET", "u63", "1"]
        )
        .await,
        ints(&[1026820715040473088, i64::MAX])
    );
    assert_eq!(int(&mut c, &["STRLEN", "k"]).await, 8);
    assert_eq!(
        q(
            &mut c,
            &[
                "BITFIELD",
                "k",
                "SET",
                "i64",
                "0",
                "-9223372036854775808",
                "GET",
                "i64",
                "0"
            ]
        )
        .await,
        ints(&[i64::MAX, i64::MIN])
    );
    // No subcommands: an empty array, and nothing created.
    assert_eq!(
        q(&mut c, &["BITFIELD", "missing"]).await,
        Value::Array(vec![])
    );
    assert_eq!(
        q(
            &mut c,
            &["BITFIELD", "missing", "GET", "u8", "0", "GET", "i64", "100"]
        )
        .await,
        ints(&[0, 0])
    );
    assert_eq!(int(&mut c, &["EXISTS", "missing"]).await, 0);
    // Writes happen in place: the TTL stays.
    ok(&mut c, &["SET", "t", "\u{1}", "EX", "100"]).await;
    assert_eq!(
        q(&mut c, &["BITFIELD", "t", "INCRBY", "u8", "0", "1"]).await,
        ints(&[2])
    );
    assert!(int(&mut c, &["TTL", "t"]).await > 0);
}

async fn bitfield_overflow(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    // WRAP (the default), SAT and FAIL, for signed and unsigned fields.
    for (args, expected) in [
        (
            &["SET", "u8", "0", "250", "INCRBY", "u8", "0", "10"][..],
            vec![Value::Int(0), Value::Int(4)],
        ),
        (
            &["OVERFLOW", "SAT", "INCRBY", "u8", "0", "1000"],
            vec![Value::Int(255)],
        ),
        (
            &["OVERFLOW", "SAT", "INCRBY", "u8", "0", "-1000"],
            vec![Value::Int(0)],
        ),
        (
            &["OVERFLOW", "FAIL", "INCRBY", "u8", "0", "-1"],
            vec![Value::Nil],
        ),
        (
            &["OVERFLOW", "WRAP", "INCRBY", "u8", "0", "-1"],
            vec![Value::Int(255)],
        ),
        (
            &[
                "OVERFLOW", "SAT", "SET", "i8", "0", "200", "SET", "i8", "8", "-200", "GET", "i8",
                "0", "GET", "i8", "8",
            ],
            vec![
                Value::Int(-1),
                Value::Int(0),
                Value::Int(127),
                Value::Int(-128),
            ],
        ),
        (
            &[
                "SET", "i8", "0", "200", "SET", "i8", "8", "-200", "GET", "i8", "0", "GET", "i8",
                "8",
            ],
            vec![
                Value::Int(127),
                Value::Int(-128),
                Value::Int(-56),
                Value::Int(56),
            ],
        ),
        (
            &[
                "OVERFLOW", "FAIL", "SET", "i8", "0", "200", "SET", "i8", "16", "100", "GET", "i8",
                "0",
            ],
            vec![Value::Nil, Value::Int(0), Value::Int(-56)],
        ),
        // A negative value into an unsigned field: its two's-complement bits.
        (
            &["OVERFLOW", "SAT", "SET", "u8", "0", "-1", "GET", "u8", "0"],
            vec![Value::Int(200), Value::Int(255)],
        ),
        (
            &["OVERFLOW", "WRAP", "SET", "u8", "0", "-2", "GET", "u8", "0"],
            vec![Value::Int(255), Value::Int(254)],
        ),
        (
            &[
                "OVERFLOW", "FAIL", "SET", "u8", "0", "256", "GET", "u8", "0",
            ],
            vec![Value::Nil, Value::Int(254)],
        ),
        // The OVERFLOW mode applies to the operations after it only.
        (
            &[
                "INCRBY", "u2", "100", "5", "OVERFLOW", "SAT", "INCRBY", "u2", "102", "5",
                "OVERFLOW", "FAIL", "INCRBY", "u2", "104", "5",
            ],
            vec![Value::Int(1), Value::Int(3), Value::Nil],
        ),
        (
            &[
                "OVERFLOW", "SAT", "INCRBY", "u1", "120", "-5", "INCRBY", "u1", "120", "5",
                "INCRBY", "i1", "121", "1", "INCRBY", "i1", "121", "-3",
            ],
            vec![Value::Int(0), Value::Int(1), Value::Int(0), Value::Int(-1)],
        ),
    ] {
        let mut full = vec!["BITFIELD", "k"];
        full.extend_from_slice(args);
        assert_eq!(q(&mut c, &full).await, Value::Array(expected), "{args:?}");
    }
    // 64-bit signed and 63-bit unsigned edges.
    for (args, expected) in [
        (
            &[
                "SET",
                "i64",
                "0",
                "-9223372036854775808",
                "INCRBY",
                "i64",
                "0",
                "-1",
            ][..],
            vec![Value::Int(0), Value::Int(i64::MAX)],
        ),
        (
            &["OVERFLOW", "SAT", "INCRBY", "i64", "0", "1"],
            vec![Value::Int(i64::MAX)],
        ),
        (
            &[
                "OVERFLOW",
                "WRAP",
                "INCRBY",
                "i64",
                "0",
                "9223372036854775807",
            ],
            vec![Value::Int(-2)],
        ),
        (
            &[
                "OVERFLOW",
                "SAT",
                "INCRBY",
                "i64",
                "0",
                "-9223372036854775808",
            ],
            vec![Value::Int(i64::MIN)],
        ),
        (
            &["OVERFLOW", "FAIL", "INCRBY", "i64", "0", "-1"],
            vec![Value::Nil],
        ),
        (
            &["SET", "u63", "64", "-1", "GET", "u63", "64"],
            vec![Value::Int(0), Value::Int(i64::MAX)],
        ),
        (
            &[
                "OVERFLOW",
                "SAT",
                "INCRBY",
                "u63",
                "64",
                "9223372036854775807",
            ],
            vec![Value::Int(i64::MAX)],
        ),
        (
            &["OVERFLOW", "WRAP", "INCRBY", "u63", "64", "1"],
            vec![Value::Int(0)],
        ),
        (
            &[
                "OVERFLOW",
                "WRAP",
                "INCRBY",
                "u63",
                "64",
                "-9223372036854775808",
            ],
            vec![Value::Int(0)],
        ),
        (
            &[
                "OVERFLOW",
                "SAT",
                "INCRBY",
                "u63",
                "64",
                "-9223372036854775808",
            ],
            vec![Value::Int(0)],
        ),
    ] {
        let mut full = vec!["BITFIELD", "w"];
        full.extend_from_slice(args);
        assert_eq!(q(&mut c, &full).await, Value::Array(expected), "{args:?}");
    }
    // A refused write on a missing key still creates it, zero-filled.
    assert_eq!(
        q(
            &mut c,
            &["BITFIELD", "new", "OVERFLOW", "FAIL", "SET", "u2", "0", "10"]
        )
        .await,
        Value::Array(vec![Value::Nil])
    );
    assert_eq!(bytes(&mut c, &["GET", "new"]).await, b"\0");
}

async fn bitfield_offsets_and_errors(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "k", "\u{7f}").await;
    assert_eq!(
        q(&mut c, &["BITFIELD", "k", "GET", "i8", "4294967288"]).await,
        ints(&[0])
    );
    assert_eq!(
        q(&mut c, &["BITFIELD", "k", "GET", "u8", "#536870911"]).await,
        ints(&[0])
    );
    assert_eq!(
        q(&mut c, &["BITFIELD", "k", "GET", "i64", "#67108863"]).await,
        ints(&[0])
    );
    for offset in [
        "4294967296",
        "#536870912",
        "#67108864",
        "-1",
        "#-1",
        "#999999999999999999",
        "x",
        "#",
        "##1",
    ] {
        let width = if offset.starts_with("#67") {
            "i64"
        } else {
            "u8"
        };
        assert_eq!(
            err(&mut c, &["BITFIELD", "k", "GET", width, offset]).await,
            BIT_OFFSET,
            "{offset}"
        );
    }
    for field in ["u64", "i65", "i0", "u0", "x8", "u", "i", "u-1", "i8.0", ""] {
        assert_eq!(
            err(&mut c, &["BITFIELD", "k", "GET", field, "0"]).await,
            BAD_FIELD_TYPE,
            "{field:?}"
        );
    }
    assert_eq!(
        err(
            &mut c,
            &["BITFIELD", "k", "OVERFLOW", "bad", "GET", "i8", "0"]
        )
        .await,
        "ERR Invalid OVERFLOW type specified"
    );
    for args in [
        &["GET"][..],
        &["GET", "i8"],
        &["SET", "i8", "0"],
        &["INCRBY", "i8", "0"],
        &["OVERFLOW"],
        &["BAD"],
        &["GET", "i8", "0", "EXTRA"],
    ] {
        let mut full = vec!["BITFIELD", "k"];
        full.extend_from_slice(args);
        assert_eq!(err(&mut c, &full).await, SYNTAX, "{args:?}");
    }
    assert_eq!(
        err(&mut c, &["BITFIELD", "k", "SET", "i8", "0", "abc"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        err(&mut c, &["BITFIELD", "k", "INCRBY", "i8", "0", "1.5"]).await,
        NOT_INTEGER
    );
    // An error anywhere means nothing ran.
    assert_eq!(
        err(
            &mut c,
            &["BITFIELD", "k", "SET", "u8", "0", "1", "GET", "u64", "0"]
        )
        .await,
        BAD_FIELD_TYPE
    );
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("\u{7f}"));
}

async fn bitfield_ro(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "k", "\u{7f}").await;
    assert_eq!(
        q(
            &mut c,
            &["BITFIELD_RO", "k", "GET", "u8", "0", "GET", "i4", "4"]
        )
        .await,
        ints(&[127, -1])
    );
    assert_eq!(
        q(
            &mut c,
            &["BITFIELD_RO", "k", "OVERFLOW", "SAT", "GET", "u8", "0"]
        )
        .await,
        ints(&[127])
    );
    assert_eq!(q(&mut c, &["BITFIELD_RO", "k"]).await, Value::Array(vec![]));
    assert_eq!(
        q(&mut c, &["BITFIELD_RO", "missing", "GET", "u8", "0"]).await,
        ints(&[0])
    );
    let get_only = "ERR BITFIELD_RO only supports the GET subcommand";
    assert_eq!(
        err(&mut c, &["BITFIELD_RO", "k", "SET", "u8", "0", "1"]).await,
        get_only
    );
    assert_eq!(
        err(&mut c, &["BITFIELD_RO", "k", "INCRBY", "u8", "0", "1"]).await,
        get_only
    );
    // Parsing comes first: a bad type wins over the read-only check.
    assert_eq!(
        err(
            &mut c,
            &["BITFIELD_RO", "k", "SET", "u8", "0", "1", "GET", "bad", "0"]
        )
        .await,
        BAD_FIELD_TYPE
    );
    assert_eq!(err(&mut c, &["BITFIELD_RO", "k", "OVERFLOW"]).await, SYNTAX);
    assert_eq!(text(&mut c, &["GET", "k"]).await.as_deref(), Some("\u{7f}"));
}

// ---------------------------------------------------------------------------
// Encodings and statistics

async fn encodings(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    let probe = c.clone();
    let encoding = move |key: &'static str| {
        let mut c = probe.clone();
        async move {
            text(&mut c, &["OBJECT", "ENCODING", key])
                .await
                .unwrap_or_default()
        }
    };
    set(&mut c, "int", "12345").await;
    assert_eq!(encoding("int").await, "int");
    set(&mut c, "short", "hello").await;
    assert_eq!(encoding("short").await, "embstr");
    set(&mut c, "long", &"x".repeat(45)).await;
    assert_eq!(encoding("long").await, "raw");
    // Changed in place: raw, as in Redis.
    assert_eq!(int(&mut c, &["APPEND", "short", "!"]).await, 6);
    assert_eq!(encoding("short").await, "raw");
    assert_eq!(int(&mut c, &["SETRANGE", "int", "0", "9"]).await, 5);
    assert_eq!(encoding("int").await, "raw");
    assert_eq!(int(&mut c, &["SETBIT", "bits", "1", "1"]).await, 0);
    assert_eq!(encoding("bits").await, "raw");
    assert_eq!(int(&mut c, &["BITOP", "NOT", "not", "bits"]).await, 1);
    assert_eq!(encoding("not").await, "raw");
    // A new value from APPEND, and counters, are encoded afresh.
    assert_eq!(int(&mut c, &["APPEND", "fresh", "42"]).await, 2);
    assert_eq!(encoding("fresh").await, "int");
    assert_eq!(int(&mut c, &["INCR", "int"]).await, 92346);
    assert_eq!(encoding("int").await, "int");
    set(&mut c, "float", "1.5").await;
    assert_eq!(
        text(&mut c, &["INCRBYFLOAT", "float", "1"])
            .await
            .as_deref(),
        Some("2.5")
    );
    assert_eq!(encoding("float").await, "embstr");
}

/// Reads count a hit or miss; writes do not, as in Redis 7.
async fn keyspace_hits_and_misses(resp3: bool) {
    let (_server, mut c) = start_client(resp3).await;
    set(&mut c, "a", "1").await;
    let expect = |hits: i64, misses: i64, args: &'static [&'static str]| {
        let mut c = c.clone();
        async move {
            let before = (
                info_stat(&mut c, "keyspace_hits").await,
                info_stat(&mut c, "keyspace_misses").await,
            );
            let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let _ = raw(&mut c, &bytes).await;
            let after = (
                info_stat(&mut c, "keyspace_hits").await,
                info_stat(&mut c, "keyspace_misses").await,
            );
            assert_eq!(
                (after.0 - before.0, after.1 - before.1),
                (hits, misses),
                "{args:?}"
            );
        }
    };
    expect(1, 0, &["GET", "a"]).await;
    expect(0, 1, &["GET", "nope"]).await;
    expect(1, 2, &["MGET", "a", "x", "y"]).await;
    expect(1, 0, &["STRLEN", "a"]).await;
    expect(1, 0, &["GETRANGE", "a", "0", "1"]).await;
    expect(0, 1, &["GETBIT", "nope", "1"]).await;
    expect(1, 0, &["BITCOUNT", "a"]).await;
    expect(0, 1, &["BITPOS", "nope", "1"]).await;
    expect(1, 1, &["LCS", "a", "nope"]).await;
    expect(1, 0, &["BITFIELD", "a", "GET", "u8", "0"]).await;
    expect(1, 0, &["BITFIELD_RO", "a", "GET", "u8", "0"]).await;
    expect(1, 1, &["BITOP", "OR", "dest", "a", "nope"]).await;
    expect(1, 0, &["SET", "a", "2", "GET"]).await;
    expect(1, 0, &["GETSET", "a", "3"]).await;
    expect(1, 0, &["GETEX", "a"]).await;
    expect(0, 1, &["GETDEL", "nope"]).await;
    // Writes look keys up without counting.
    expect(0, 0, &["SET", "a", "4"]).await;
    expect(0, 0, &["INCR", "a"]).await;
    expect(0, 0, &["APPEND", "a", "x"]).await;
    expect(0, 0, &["SETRANGE", "a", "0", "y"]).await;
    expect(0, 0, &["SETBIT", "b", "0", "1"]).await;
    expect(0, 0, &["BITFIELD", "b", "SET", "u8", "0", "1"]).await;
    expect(0, 0, &["MSET", "a", "1", "c", "2"]).await;
    expect(0, 0, &["SETNX", "a", "1"]).await;
    // A syntax error stops before the lookup.
    expect(0, 0, &["BITCOUNT", "a", "x", "y"]).await;
    expect(0, 0, &["GETEX", "a", "NX"]).await;
}
