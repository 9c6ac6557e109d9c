//! The command table: one line per command with its Redis arity, flags and
//! key positions. The dispatcher applies arity, auth and stats from here, and
//! COMMAND INFO/COUNT/LIST/GETKEYS/DOCS answer from it.

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;

use super::args::{Args, CmdResult};
use super::context::Ctx;
use super::{
    bits, cache, connection, hashes, keys, lists, pubsub, scripting, server, sets, strings, zsets,
};

pub type Handler = fn(&mut Ctx<'_>, &mut Args<'_>) -> CmdResult;

pub const WRITE: u32 = 1 << 0;
pub const READONLY: u32 = 1 << 1;
pub const DENYOOM: u32 = 1 << 2;
pub const ADMIN: u32 = 1 << 3;
pub const PUBSUB: u32 = 1 << 4;
pub const NOSCRIPT: u32 = 1 << 5;
pub const BLOCKING: u32 = 1 << 6;
pub const LOADING: u32 = 1 << 7;
pub const STALE: u32 = 1 << 8;
pub const SKIP_MONITOR: u32 = 1 << 9;
pub const SKIP_SLOWLOG: u32 = 1 << 10;
pub const FAST: u32 = 1 << 11;
pub const NOAUTH: u32 = 1 << 12;
pub const MAY_REPLICATE: u32 = 1 << 13;
pub const NO_MULTI: u32 = 1 << 14;
pub const ALLOW_BUSY: u32 = 1 << 15;
/// The keys are found by parsing the arguments (a numkeys argument).
pub const MOVABLEKEYS: u32 = 1 << 16;

/// Flag names as COMMAND INFO prints them, in Redis's order.
pub const FLAG_NAMES: &[(u32, &str)] = &[
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (PUBSUB, "pubsub"),
    (NOSCRIPT, "noscript"),
    (BLOCKING, "blocking"),
    (LOADING, "loading"),
    (STALE, "stale"),
    (SKIP_MONITOR, "skip_monitor"),
    (SKIP_SLOWLOG, "skip_slowlog"),
    (FAST, "fast"),
    (NOAUTH, "no_auth"),
    (MAY_REPLICATE, "may_replicate"),
    (NO_MULTI, "no_multi"),
    (ALLOW_BUSY, "allow_busy"),
    (MOVABLEKEYS, "movablekeys"),
];

pub struct CommandSpec {
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments including the name, -N at least N.
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// The COMMAND DOCS group, also the source of its ACL category.
    pub group: &'static str,
    pub handler: Handler,
    pub subcommands: &'static [CommandSpec],
}

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $group:literal, $handler:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            group: $group,
            handler: $handler,
            subcommands: &[],
        }
    };
}

macro_rules! container {
    ($name:literal, $arity:expr, $flags:expr, $group:literal, $handler:expr, $subs:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: 0,
            last_key: 0,
            step: 0,
            group: $group,
            handler: $handler,
            subcommands: $subs,
        }
    };
}

const R: u32 = READONLY;
const W: u32 = WRITE;
const F: u32 = FAST;
const M: u32 = DENYOOM;
const LS: u32 = LOADING | STALE;
const PS: u32 = PUBSUB | LOADING | STALE;

pub static COMMANDS: &[CommandSpec] = &[
    // connection
    cmd!("ping", -1, F, 0, 0, 0, "connection", connection::ping),
    cmd!("echo", 2, F | LS, 0, 0, 0, "connection", connection::echo),
    cmd!(
        "hello",
        -1,
        NOAUTH | F | LS | NOSCRIPT | ALLOW_BUSY,
        0,
        0,
        0,
        "connection",
        connection::hello
    ),
    cmd!(
        "auth",
        -2,
        NOAUTH | F | LS | NOSCRIPT | ALLOW_BUSY | SKIP_MONITOR | SKIP_SLOWLOG,
        0,
        0,
        0,
        "connection",
        connection::auth
    ),
    cmd!(
        "select",
        2,
        F | LS,
        0,
        0,
        0,
        "connection",
        connection::select
    ),
    cmd!(
        "quit",
        -1,
        NOAUTH | F | LS | NOSCRIPT | ALLOW_BUSY,
        0,
        0,
        0,
        "connection",
        connection::quit
    ),
    cmd!(
        "reset",
        1,
        NOAUTH | F | LS | NOSCRIPT,
        0,
        0,
        0,
        "connection",
        connection::reset
    ),
    container!(
        "client",
        -2,
        0,
        "connection",
        connection::client_container,
        CLIENT
    ),
    // lists
    cmd!("lpush", -3, W | M | F, 1, 1, 1, "list", lists::lpush),
    cmd!("rpush", -3, W | M | F, 1, 1, 1, "list", lists::rpush),
    cmd!("lpushx", -3, W | M | F, 1, 1, 1, "list", lists::lpushx),
    cmd!("rpushx", -3, W | M | F, 1, 1, 1, "list", lists::rpushx),
    cmd!("lpop", -2, W | F, 1, 1, 1, "list", lists::lpop),
    cmd!("rpop", -2, W | F, 1, 1, 1, "list", lists::rpop),
    cmd!("llen", 2, R | F, 1, 1, 1, "list", lists::llen),
    cmd!("lrange", 4, R, 1, 1, 1, "list", lists::lrange),
    cmd!("lindex", 3, R, 1, 1, 1, "list", lists::lindex),
    cmd!("lset", 4, W | M, 1, 1, 1, "list", lists::lset),
    cmd!("linsert", 5, W | M, 1, 1, 1, "list", lists::linsert),
    cmd!("lrem", 4, W, 1, 1, 1, "list", lists::lrem),
    cmd!("ltrim", 4, W, 1, 1, 1, "list", lists::ltrim),
    cmd!("lpos", -3, R, 1, 1, 1, "list", lists::lpos),
    cmd!("lmove", 5, W | M, 1, 2, 1, "list", lists::lmove),
    cmd!("rpoplpush", 3, W | M, 1, 2, 1, "list", lists::rpoplpush),
    cmd!("lmpop", -4, W | MOVABLEKEYS, 0, 0, 0, "list", lists::lmpop),
    cmd!(
        "blpop",
        -3,
        W | NOSCRIPT | BLOCKING,
        1,
        -2,
        1,
        "list",
        lists::blpop
    ),
    cmd!(
        "brpop",
        -3,
        W | NOSCRIPT | BLOCKING,
        1,
        -2,
        1,
        "list",
        lists::brpop
    ),
    cmd!(
        "blmove",
        6,
        W | M | NOSCRIPT | BLOCKING,
        1,
        2,
        1,
        "list",
        lists::blmove
    ),
    cmd!(
        "brpoplpush",
        4,
        W | M | NOSCRIPT | BLOCKING,
        1,
        2,
        1,
        "list",
        lists::brpoplpush
    ),
    cmd!(
        "blmpop",
        -5,
        W | BLOCKING | MOVABLEKEYS,
        0,
        0,
        0,
        "list",
        lists::blmpop
    ),
    // transactions
    cmd!(
        "multi",
        1,
        NOSCRIPT | LS | F | ALLOW_BUSY,
        0,
        0,
        0,
        "transactions",
        super::multi::multi
    ),
    cmd!(
        "exec",
        1,
        NOSCRIPT | LS | SKIP_SLOWLOG,
        0,
        0,
        0,
        "transactions",
        super::multi::exec
    ),
    cmd!(
        "discard",
        1,
        NOSCRIPT | LS | F | ALLOW_BUSY,
        0,
        0,
        0,
        "transactions",
        super::multi::discard
    ),
    cmd!(
        "watch",
        -2,
        NOSCRIPT | LS | F | ALLOW_BUSY,
        1,
        -1,
        1,
        "transactions",
        super::multi::watch
    ),
    cmd!(
        "unwatch",
        1,
        NOSCRIPT | LS | F | ALLOW_BUSY,
        0,
        0,
        0,
        "transactions",
        super::multi::unwatch
    ),
    // strings
    cmd!("get", 2, R | F, 1, 1, 1, "string", strings::get),
    cmd!("set", -3, W | M, 1, 1, 1, "string", strings::set),
    cmd!("setnx", 3, W | M | F, 1, 1, 1, "string", strings::setnx),
    cmd!("setex", 4, W | M, 1, 1, 1, "string", strings::setex),
    cmd!("psetex", 4, W | M, 1, 1, 1, "string", strings::psetex),
    cmd!("getset", 3, W | M | F, 1, 1, 1, "string", strings::getset),
    cmd!("getdel", 2, W | F, 1, 1, 1, "string", strings::getdel),
    cmd!("getex", -2, W | F, 1, 1, 1, "string", strings::getex),
    cmd!("mget", -2, R | F, 1, -1, 1, "string", strings::mget),
    cmd!("mset", -3, W | M, 1, -1, 2, "string", strings::mset),
    cmd!("msetnx", -3, W | M, 1, -1, 2, "string", strings::msetnx),
    cmd!("append", 3, W | M | F, 1, 1, 1, "string", strings::append),
    cmd!("strlen", 2, R | F, 1, 1, 1, "string", strings::strlen),
    cmd!("getrange", 4, R, 1, 1, 1, "string", strings::getrange),
    cmd!("substr", 4, R, 1, 1, 1, "string", strings::getrange),
    cmd!("setrange", 4, W | M, 1, 1, 1, "string", strings::setrange),
    cmd!("incr", 2, W | M | F, 1, 1, 1, "string", strings::incr),
    cmd!("decr", 2, W | M | F, 1, 1, 1, "string", strings::decr),
    cmd!("incrby", 3, W | M | F, 1, 1, 1, "string", strings::incrby),
    cmd!("decrby", 3, W | M | F, 1, 1, 1, "string", strings::decrby),
    cmd!(
        "incrbyfloat",
        3,
        W | M | F,
        1,
        1,
        1,
        "string",
        strings::incrbyfloat
    ),
    cmd!("lcs", -3, R, 1, 2, 1, "string", strings::lcs),
    cmd!("setbit", 4, W | M, 1, 1, 1, "bitmap", bits::setbit),
    cmd!("getbit", 3, R | F, 1, 1, 1, "bitmap", bits::getbit),
    cmd!("bitcount", -2, R, 1, 1, 1, "bitmap", bits::bitcount),
    cmd!("bitpos", -3, R, 1, 1, 1, "bitmap", bits::bitpos),
    cmd!("bitop", -4, W | M, 2, -1, 1, "bitmap", bits::bitop),
    cmd!("bitfield", -2, W | M, 1, 1, 1, "bitmap", bits::bitfield),
    cmd!(
        "bitfield_ro",
        -2,
        R | F,
        1,
        1,
        1,
        "bitmap",
        bits::bitfield_ro
    ),
    // sorted sets (ZRANK/ZREVRANK take Redis 7.2's WITHSCORE, so arity -3;
    // ZMPOP and the set algebra have movable keys: 0 0 0 or the destination only)
    cmd!("zadd", -4, W | M | F, 1, 1, 1, "sorted-set", zsets::zadd),
    cmd!(
        "zincrby",
        4,
        W | M | F,
        1,
        1,
        1,
        "sorted-set",
        zsets::zincrby
    ),
    cmd!("zrem", -3, W | F, 1, 1, 1, "sorted-set", zsets::zrem),
    cmd!("zcard", 2, R | F, 1, 1, 1, "sorted-set", zsets::zcard),
    cmd!("zscore", 3, R | F, 1, 1, 1, "sorted-set", zsets::zscore),
    cmd!("zmscore", -3, R | F, 1, 1, 1, "sorted-set", zsets::zmscore),
    cmd!("zrank", -3, R | F, 1, 1, 1, "sorted-set", zsets::zrank),
    cmd!(
        "zrevrank",
        -3,
        R | F,
        1,
        1,
        1,
        "sorted-set",
        zsets::zrevrank
    ),
    cmd!("zrange", -4, R, 1, 1, 1, "sorted-set", zsets::zrange),
    cmd!(
        "zrangestore",
        -5,
        W | M,
        1,
        2,
        1,
        "sorted-set",
        zsets::zrangestore
    ),
    cmd!("zrevrange", -4, R, 1, 1, 1, "sorted-set", zsets::zrevrange),
    cmd!(
        "zrangebyscore",
        -4,
        R,
        1,
        1,
        1,
        "sorted-set",
        zsets::zrangebyscore
    ),
    cmd!(
        "zrevrangebyscore",
        -4,
        R,
        1,
        1,
        1,
        "sorted-set",
        zsets::zrevrangebyscore
    ),
    cmd!(
        "zrangebylex",
        -4,
        R,
        1,
        1,
        1,
        "sorted-set",
        zsets::zrangebylex
    ),
    cmd!(
        "zrevrangebylex",
        -4,
        R,
        1,
        1,
        1,
        "sorted-set",
        zsets::zrevrangebylex
    ),
    cmd!("zcount", 4, R | F, 1, 1, 1, "sorted-set", zsets::zcount),
    cmd!(
        "zlexcount",
        4,
        R | F,
        1,
        1,
        1,
        "sorted-set",
        zsets::zlexcount
    ),
    cmd!(
        "zremrangebyrank",
        4,
        W,
        1,
        1,
        1,
        "sorted-set",
        zsets::zremrangebyrank
    ),
    cmd!(
        "zremrangebyscore",
        4,
        W,
        1,
        1,
        1,
        "sorted-set",
        zsets::zremrangebyscore
    ),
    cmd!(
        "zremrangebylex",
        4,
        W,
        1,
        1,
        1,
        "sorted-set",
        zsets::zremrangebylex
    ),
    cmd!("zpopmin", -2, W | F, 1, 1, 1, "sorted-set", zsets::zpopmin),
    cmd!("zpopmax", -2, W | F, 1, 1, 1, "sorted-set", zsets::zpopmax),
    cmd!(
        "zmpop",
        -4,
        W | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted-set",
        zsets::zmpop
    ),
    cmd!(
        "bzpopmin",
        -3,
        W | NOSCRIPT | BLOCKING | F,
        1,
        -2,
        1,
        "sorted-set",
        zsets::bzpopmin
    ),
    cmd!(
        "bzpopmax",
        -3,
        W | NOSCRIPT | BLOCKING | F,
        1,
        -2,
        1,
        "sorted-set",
        zsets::bzpopmax
    ),
    cmd!(
        "bzmpop",
        -5,
        W | BLOCKING | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted-set",
        zsets::bzmpop
    ),
    cmd!(
        "zunion",
        -3,
        R | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted-set",
        zsets::zunion
    ),
    cmd!(
        "zinter",
        -3,
        R | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted-set",
        zsets::zinter
    ),
    cmd!(
        "zdiff",
        -3,
        R | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted-set",
        zsets::zdiff
    ),
    cmd!(
        "zunionstore",
        -4,
        W | M | MOVABLEKEYS,
        1,
        1,
        1,
        "sorted-set",
        zsets::zunionstore
    ),
    cmd!(
        "zinterstore",
        -4,
        W | M | MOVABLEKEYS,
        1,
        1,
        1,
        "sorted-set",
        zsets::zinterstore
    ),
    cmd!(
        "zdiffstore",
        -4,
        W | M | MOVABLEKEYS,
        1,
        1,
        1,
        "sorted-set",
        zsets::zdiffstore
    ),
    cmd!(
        "zintercard",
        -3,
        R | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted-set",
        zsets::zintercard
    ),
    cmd!(
        "zrandmember",
        -2,
        R,
        1,
        1,
        1,
        "sorted-set",
        zsets::zrandmember
    ),
    cmd!("zscan", -3, R, 1, 1, 1, "sorted-set", zsets::zscan),
    // keys
    cmd!("del", -2, W, 1, -1, 1, "generic", keys::del),
    cmd!("unlink", -2, W | F, 1, -1, 1, "generic", keys::del),
    cmd!("exists", -2, R | F, 1, -1, 1, "generic", keys::exists),
    cmd!("type", 2, R | F, 1, 1, 1, "generic", keys::type_of),
    cmd!("expire", -3, W | F, 1, 1, 1, "generic", keys::expire),
    cmd!("pexpire", -3, W | F, 1, 1, 1, "generic", keys::pexpire),
    cmd!("expireat", -3, W | F, 1, 1, 1, "generic", keys::expireat),
    cmd!("pexpireat", -3, W | F, 1, 1, 1, "generic", keys::pexpireat),
    cmd!("ttl", 2, R | F, 1, 1, 1, "generic", keys::ttl),
    cmd!("pttl", 2, R | F, 1, 1, 1, "generic", keys::pttl),
    cmd!("expiretime", 2, R | F, 1, 1, 1, "generic", keys::expiretime),
    cmd!(
        "pexpiretime",
        2,
        R | F,
        1,
        1,
        1,
        "generic",
        keys::pexpiretime
    ),
    cmd!("persist", 2, W | F, 1, 1, 1, "generic", keys::persist),
    cmd!("rename", 3, W, 1, 2, 1, "generic", keys::rename),
    cmd!("renamenx", 3, W | F, 1, 2, 1, "generic", keys::renamenx),
    cmd!("copy", -3, W | M, 1, 2, 1, "generic", keys::copy),
    cmd!("move", 3, W | F, 1, 1, 1, "generic", keys::move_key),
    cmd!(
        "sort",
        -2,
        W | M | MOVABLEKEYS,
        1,
        1,
        1,
        "generic",
        super::sort::sort
    ),
    cmd!(
        "sort_ro",
        -2,
        R | MOVABLEKEYS,
        1,
        1,
        1,
        "generic",
        super::sort::sort_ro
    ),
    cmd!("keys", 2, R, 0, 0, 0, "generic", keys::keys),
    cmd!("scan", -2, R, 0, 0, 0, "generic", keys::scan),
    cmd!("randomkey", 1, R, 0, 0, 0, "generic", keys::randomkey),
    cmd!("touch", -2, R | F, 1, -1, 1, "generic", keys::touch),
    container!(
        "object",
        -2,
        0,
        "generic",
        server::container_needs_subcommand,
        OBJECT
    ),
    container!(
        "memory",
        -2,
        0,
        "server",
        server::container_needs_subcommand,
        MEMORY
    ),
    container!(
        "function",
        -2,
        0,
        "scripting",
        server::container_needs_subcommand,
        FUNCTION
    ),
    // hashes
    cmd!("hset", -4, W | M | F, 1, 1, 1, "hash", hashes::hset),
    cmd!("hsetnx", 4, W | M | F, 1, 1, 1, "hash", hashes::hsetnx),
    cmd!("hget", 3, R | F, 1, 1, 1, "hash", hashes::hget),
    cmd!("hmget", -3, R | F, 1, 1, 1, "hash", hashes::hmget),
    cmd!("hmset", -4, W | M | F, 1, 1, 1, "hash", hashes::hmset),
    cmd!("hdel", -3, W | F, 1, 1, 1, "hash", hashes::hdel),
    cmd!("hexists", 3, R | F, 1, 1, 1, "hash", hashes::hexists),
    cmd!("hlen", 2, R | F, 1, 1, 1, "hash", hashes::hlen),
    cmd!("hkeys", 2, R, 1, 1, 1, "hash", hashes::hkeys),
    cmd!("hvals", 2, R, 1, 1, 1, "hash", hashes::hvals),
    cmd!("hgetall", 2, R, 1, 1, 1, "hash", hashes::hgetall),
    cmd!("hincrby", 4, W | M | F, 1, 1, 1, "hash", hashes::hincrby),
    cmd!(
        "hincrbyfloat",
        4,
        W | M | F,
        1,
        1,
        1,
        "hash",
        hashes::hincrbyfloat
    ),
    cmd!("hstrlen", 3, R | F, 1, 1, 1, "hash", hashes::hstrlen),
    cmd!("hrandfield", -2, R, 1, 1, 1, "hash", hashes::hrandfield),
    cmd!("hscan", -3, R, 1, 1, 1, "hash", hashes::hscan),
    // sets
    cmd!("sadd", -3, W | M | F, 1, 1, 1, "set", sets::sadd),
    cmd!("srem", -3, W | F, 1, 1, 1, "set", sets::srem),
    cmd!("smembers", 2, R, 1, 1, 1, "set", sets::smembers),
    cmd!("sismember", 3, R | F, 1, 1, 1, "set", sets::sismember),
    cmd!("smismember", -3, R | F, 1, 1, 1, "set", sets::smismember),
    cmd!("scard", 2, R | F, 1, 1, 1, "set", sets::scard),
    cmd!("spop", -2, W | F, 1, 1, 1, "set", sets::spop),
    cmd!("srandmember", -2, R, 1, 1, 1, "set", sets::srandmember),
    cmd!("smove", 4, W | F, 1, 2, 1, "set", sets::smove),
    cmd!("sinter", -2, R, 1, -1, 1, "set", sets::sinter),
    cmd!(
        "sintercard",
        -3,
        R | MOVABLEKEYS,
        0,
        0,
        0,
        "set",
        sets::sintercard
    ),
    cmd!("sinterstore", -3, W | M, 1, -1, 1, "set", sets::sinterstore),
    cmd!("sunion", -2, R, 1, -1, 1, "set", sets::sunion),
    cmd!("sunionstore", -3, W | M, 1, -1, 1, "set", sets::sunionstore),
    cmd!("sdiff", -2, R, 1, -1, 1, "set", sets::sdiff),
    cmd!("sdiffstore", -3, W | M, 1, -1, 1, "set", sets::sdiffstore),
    cmd!("sscan", -3, R, 1, 1, 1, "set", sets::sscan),
    // server
    cmd!("dbsize", 1, R | F, 0, 0, 0, "server", server::dbsize),
    cmd!("flushdb", -1, W, 0, 0, 0, "server", server::flushdb),
    cmd!("flushall", -1, W, 0, 0, 0, "server", server::flushall),
    cmd!("swapdb", 3, W | F, 0, 0, 0, "server", server::swapdb),
    cmd!("info", -1, LS, 0, 0, 0, "server", server::info),
    cmd!("cache.stats", -1, LS, 0, 0, 0, "server", cache::stats),
    cmd!(
        "cache.invalidate",
        -2,
        W,
        0,
        0,
        0,
        "server",
        cache::invalidate
    ),
    cmd!("cache.outbox", -1, LS, 0, 0, 0, "server", cache::outbox),
    cmd!("time", 1, F | LS, 0, 0, 0, "server", server::time),
    cmd!("lastsave", 1, F | LS, 0, 0, 0, "server", server::lastsave),
    cmd!(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        0,
        0,
        0,
        "server",
        server::save
    ),
    cmd!(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT,
        0,
        0,
        0,
        "server",
        server::bgsave
    ),
    cmd!("wait", 3, NOSCRIPT, 0, 0, 0, "generic", server::wait),
    cmd!(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LS | NO_MULTI | ALLOW_BUSY,
        0,
        0,
        0,
        "server",
        server::shutdown
    ),
    cmd!(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "server",
        server::monitor
    ),
    cmd!(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "server",
        server::debug
    ),
    container!(
        "config",
        -2,
        0,
        "server",
        server::container_needs_subcommand,
        CONFIG
    ),
    container!(
        "slowlog",
        -2,
        0,
        "server",
        server::container_needs_subcommand,
        SLOWLOG
    ),
    container!("command", -1, LS, "server", server::command_all, COMMAND),
    // pubsub
    cmd!(
        "subscribe",
        -2,
        PS | NOSCRIPT,
        0,
        0,
        0,
        "pubsub",
        pubsub::subscribe
    ),
    cmd!(
        "unsubscribe",
        -1,
        PS | NOSCRIPT,
        0,
        0,
        0,
        "pubsub",
        pubsub::unsubscribe
    ),
    cmd!(
        "psubscribe",
        -2,
        PS | NOSCRIPT,
        0,
        0,
        0,
        "pubsub",
        pubsub::psubscribe
    ),
    cmd!(
        "punsubscribe",
        -1,
        PS | NOSCRIPT,
        0,
        0,
        0,
        "pubsub",
        pubsub::punsubscribe
    ),
    cmd!(
        "ssubscribe",
        -2,
        PS | NOSCRIPT,
        1,
        -1,
        1,
        "pubsub",
        pubsub::ssubscribe
    ),
    cmd!(
        "sunsubscribe",
        -1,
        PS | NOSCRIPT,
        1,
        -1,
        1,
        "pubsub",
        pubsub::sunsubscribe
    ),
    cmd!("publish", 3, PS | F, 0, 0, 0, "pubsub", pubsub::publish),
    cmd!("spublish", 3, PS | F, 1, 1, 1, "pubsub", pubsub::spublish),
    container!(
        "pubsub",
        -2,
        0,
        "pubsub",
        server::container_needs_subcommand,
        PUBSUB_SUBS
    ),
];

static PUBSUB_SUBS: &[CommandSpec] = &[
    cmd!(
        "channels",
        -2,
        PS,
        0,
        0,
        0,
        "pubsub",
        pubsub::pubsub_channels
    ),
    cmd!("numpat", 2, PS, 0, 0, 0, "pubsub", pubsub::pubsub_numpat),
    cmd!("numsub", -2, PS, 0, 0, 0, "pubsub", pubsub::pubsub_numsub),
    cmd!(
        "shardchannels",
        -2,
        PS,
        0,
        0,
        0,
        "pubsub",
        pubsub::pubsub_shardchannels
    ),
    cmd!(
        "shardnumsub",
        -2,
        PS,
        0,
        0,
        0,
        "pubsub",
        pubsub::pubsub_shardnumsub
    ),
    cmd!("help", 2, LS, 0, 0, 0, "pubsub", pubsub::pubsub_help),
];

static CLIENT: &[CommandSpec] = &[
    cmd!(
        "unblock",
        -3,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_unblock
    ),
    cmd!(
        "id",
        2,
        NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_id
    ),
    cmd!(
        "setname",
        3,
        NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_setname
    ),
    cmd!(
        "getname",
        2,
        NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_getname
    ),
    cmd!(
        "list",
        -2,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_list
    ),
    cmd!(
        "info",
        2,
        NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_info
    ),
    cmd!(
        "kill",
        -3,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_kill
    ),
    cmd!(
        "setinfo",
        4,
        NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_setinfo
    ),
    cmd!(
        "reply",
        3,
        NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_reply
    ),
    cmd!(
        "no-evict",
        3,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_no_evict
    ),
    cmd!(
        "no-touch",
        3,
        NOSCRIPT | LS,
        0,
        0,
        0,
        "connection",
        connection::client_no_touch
    ),
    cmd!(
        "help",
        2,
        LS,
        0,
        0,
        0,
        "connection",
        connection::client_help
    ),
];

static OBJECT: &[CommandSpec] = &[
    cmd!("encoding", 3, R, 2, 2, 1, "generic", keys::object_encoding),
    cmd!("freq", 3, R, 2, 2, 1, "generic", keys::object_freq),
    cmd!("idletime", 3, R, 2, 2, 1, "generic", keys::object_idletime),
    cmd!("refcount", 3, R, 2, 2, 1, "generic", keys::object_refcount),
    cmd!("help", 2, LS, 0, 0, 0, "generic", keys::object_help),
];

static MEMORY: &[CommandSpec] = &[
    cmd!("usage", -3, R, 2, 2, 1, "server", keys::memory_usage),
    cmd!(
        "malloc-stats",
        2,
        0,
        0,
        0,
        0,
        "server",
        keys::memory_malloc_stats
    ),
    cmd!("purge", 2, 0, 0, 0, 0, "server", keys::memory_purge),
    cmd!("help", 2, LS, 0, 0, 0, "server", keys::memory_help),
];

static FUNCTION: &[CommandSpec] = &[
    cmd!(
        "flush",
        -2,
        W | NOSCRIPT | MAY_REPLICATE,
        0,
        0,
        0,
        "scripting",
        scripting::function_flush
    ),
    cmd!(
        "list",
        -2,
        NOSCRIPT,
        0,
        0,
        0,
        "scripting",
        scripting::function_list
    ),
    cmd!(
        "help",
        2,
        LS,
        0,
        0,
        0,
        "scripting",
        scripting::function_help
    ),
];

static CONFIG: &[CommandSpec] = &[
    cmd!(
        "get",
        -3,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "server",
        server::config_get
    ),
    cmd!(
        "set",
        -4,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "server",
        server::config_set
    ),
    cmd!(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "server",
        server::config_resetstat
    ),
    cmd!(
        "rewrite",
        2,
        ADMIN | NOSCRIPT | LS,
        0,
        0,
        0,
        "server",
        server::config_rewrite
    ),
    cmd!("help", 2, LS, 0, 0, 0, "server", server::config_help),
];

static SLOWLOG: &[CommandSpec] = &[
    cmd!(
        "get",
        -2,
        ADMIN | LS,
        0,
        0,
        0,
        "server",
        server::slowlog_get
    ),
    cmd!("len", 2, ADMIN | LS, 0, 0, 0, "server", server::slowlog_len),
    cmd!(
        "reset",
        2,
        ADMIN | LS,
        0,
        0,
        0,
        "server",
        server::slowlog_reset
    ),
    cmd!("help", 2, LS, 0, 0, 0, "server", server::slowlog_help),
];

static COMMAND: &[CommandSpec] = &[
    cmd!("count", 2, LS, 0, 0, 0, "server", server::command_count),
    cmd!("info", -2, LS, 0, 0, 0, "server", server::command_info),
    cmd!("docs", -2, LS, 0, 0, 0, "server", server::command_docs),
    cmd!("list", -2, LS, 0, 0, 0, "server", server::command_list),
    cmd!(
        "getkeys",
        -4,
        LS,
        0,
        0,
        0,
        "server",
        server::command_getkeys
    ),
    cmd!("help", 2, LS, 0, 0, 0, "server", server::command_help),
];

/// Every command and subcommand with a dense id (the commandstats slot).
/// Command names are not attacker-chosen keys: a fast fixed hasher is enough.
type NameMap<K> = HashMap<K, usize, foldhash::fast::FixedState>;

pub struct Registry {
    pub entries: Vec<Registered>,
    top: NameMap<&'static str>,
    sub: NameMap<(usize, &'static str)>,
}

pub struct Registered {
    pub spec: &'static CommandSpec,
    /// `get`, or `client|list` for a subcommand.
    pub full_name: String,
    pub parent: Option<usize>,
}

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry {
        entries: Vec::new(),
        top: NameMap::default(),
        sub: NameMap::default(),
    };
    for spec in COMMANDS {
        let id = registry.entries.len();
        registry.entries.push(Registered {
            spec,
            full_name: spec.name.to_string(),
            parent: None,
        });
        registry.top.insert(spec.name, id);
        for sub in spec.subcommands {
            let sub_id = registry.entries.len();
            registry.entries.push(Registered {
                spec: sub,
                full_name: format!("{}|{}", spec.name, sub.name),
                parent: Some(id),
            });
            registry.sub.insert((id, sub.name), sub_id);
        }
    }
    registry
});

/// Longest command name we look up; anything longer is unknown.
const MAX_NAME: usize = 32;

fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME]) -> Option<&'b str> {
    if name.len() > MAX_NAME {
        return None;
    }
    let out = &mut buf[..name.len()];
    for (dst, src) in out.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

impl Registry {
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; MAX_NAME];
        self.top.get(lowercase(name, &mut buf)?).copied()
    }

    pub fn lookup_sub(&self, parent: usize, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; MAX_NAME];
        self.sub.get(&(parent, lowercase(name, &mut buf)?)).copied()
    }

    /// Resolves `client|list` style names too (COMMAND INFO/DOCS accept them).
    pub fn lookup_full(&self, name: &[u8]) -> Option<usize> {
        match name.iter().position(|&b| b == b'|') {
            Some(bar) => self.lookup_sub(self.lookup(&name[..bar])?, &name[bar + 1..]),
            None => self.lookup(name),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn top_level(&self) -> impl Iterator<Item = (usize, &Registered)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.parent.is_none())
    }

    pub fn children(&self, parent: usize) -> impl Iterator<Item = (usize, &Registered)> {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, entry)| entry.parent == Some(parent))
    }
}

/// Positions of the keys in an argument vector of `argc` items (the command name included).
pub fn key_positions(first: i32, last: i32, step: i32, argc: usize) -> Vec<usize> {
    let argc = argc as i64;
    let first = i64::from(first);
    let last = match i64::from(last) {
        last if last < 0 => argc + last,
        last => last.min(argc - 1),
    };
    let step = i64::from(step).max(1);
    let mut positions = Vec::new();
    let mut i = first;
    while first > 0 && i <= last {
        positions.push(i as usize);
        i += step;
    }
    positions
}

/// The keys a call names, for the commands whose keys move with their
/// arguments (a numkeys argument, SORT's STORE) as well as the fixed ones.
/// Malformed calls give what can be read; the handler reports the error.
pub fn keys_of(spec: &CommandSpec, argv: &[Bytes]) -> Vec<Bytes> {
    let numkeys_at = |at: usize, first: usize| -> Vec<Bytes> {
        let count = argv
            .get(at)
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        // More keys than arguments left names none (Redis: invalid).
        if count > argv.len().saturating_sub(first) {
            return Vec::new();
        }
        argv.iter().skip(first).take(count).cloned().collect()
    };
    if spec.flags & MOVABLEKEYS == 0 {
        return key_positions(spec.first_key, spec.last_key, spec.step, argv.len())
            .into_iter()
            .filter_map(|i| argv.get(i).cloned())
            .collect();
    }
    match spec.name {
        "blmpop" | "bzmpop" => numkeys_at(2, 3),
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let sources = numkeys_at(2, 3);
            if sources.is_empty() {
                return sources;
            }
            let mut keys: Vec<Bytes> = argv.get(1).cloned().into_iter().collect();
            keys.extend(sources);
            keys
        }
        "sort" | "sort_ro" => {
            // Redis's sortGetKeys: LIMIT, GET and BY take their arguments
            // along, and the last STORE is the one SORT writes.
            let mut keys: Vec<Bytes> = argv.get(1).cloned().into_iter().collect();
            let mut store = None;
            let mut i = 2;
            while let Some(word) = argv.get(i) {
                if word.eq_ignore_ascii_case(b"limit") {
                    i += 2;
                } else if word.eq_ignore_ascii_case(b"get") || word.eq_ignore_ascii_case(b"by") {
                    i += 1;
                } else if word.eq_ignore_ascii_case(b"store") && i + 1 < argv.len() {
                    store = argv.get(i + 1);
                }
                i += 1;
            }
            keys.extend(store.cloned());
            keys
        }
        _ => numkeys_at(1, 2),
    }
}
