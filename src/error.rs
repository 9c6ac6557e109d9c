//! Every error text a client can see, in one place, as Redis words them.
//!
//! Reply errors (`Reply::Error`) keep the connection open; only protocol errors
//! (see `protocol::ProtocolError`) close it.

use crate::protocol::Reply;

pub const SYNTAX: &str = "ERR syntax error";
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NAN_OR_INFINITY: &str = "ERR increment would produce NaN or Infinity";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
pub const NX_XX_GT_LT: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";
pub const DENIED_PROTECTED_MODE: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";

// Lists and blocking commands.
pub const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
pub const LPOS_RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
pub const LPOS_RANK_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
pub const LPOS_COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
pub const LPOS_MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
pub const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
pub const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";

// Strings and bitmaps.
pub const DECREMENT_OVERFLOW: &str = "ERR decrement would overflow";
pub const BIT_ARG_NOT_BINARY: &str = "ERR The bit argument must be 1 or 0.";
pub const BITOP_NOT_SINGLE_SOURCE: &str = "ERR BITOP NOT must be called with a single source key.";
pub const BITFIELD_BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
pub const BITFIELD_BAD_OVERFLOW: &str = "ERR Invalid OVERFLOW type specified";
pub const BITFIELD_RO_GET_ONLY: &str = "ERR BITFIELD_RO only supports the GET subcommand";
pub const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
pub const LCS_LEN_AND_IDX: &str =
    "ERR If you want both the length and indexes, please just use IDX.";
pub const LCS_TOO_LONG: &str = "ERR String too long for LCS";
pub const LCS_NO_MEMORY: &str =
    "ERR Insufficient memory, failed allocating transient memory for LCS";

// Sorted sets.
pub const ZADD_XX_AND_NX: &str = "ERR XX and NX options at the same time are not compatible";
pub const ZADD_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
pub const ZADD_INCR_PAIR: &str = "ERR INCR option supports a single increment-element pair";
pub const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
pub const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
pub const MIN_MAX_NOT_LEX: &str = "ERR min or max not valid string range item";
pub const LIMIT_NEEDS_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
pub const WITHSCORES_WITH_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
pub const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";
pub const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
/// `getPositiveLongFromObjectOrReply` without a message of its own: a
/// non-integer gets this text too.
pub const OUT_OF_RANGE: &str = "ERR value is out of range";

pub fn at_least_one_input_key(command: &str) -> Reply {
    Reply::Error(format!(
        "ERR at least 1 input key is needed for '{command}' command"
    ))
}

// Keys.
pub const GT_AND_LT: &str = "ERR GT and LT options at the same time are not compatible";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
/// Redis's `getIntFromObjectOrReply` for a valid 64-bit integer outside `int`.
pub const INT_OUT_OF_RANGE: &str =
    "ERR value is out of range, value must between -2147483648 and 2147483647";
pub const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
pub const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

// Hashes and sets.
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
pub const VALUE_NAN_OR_INFINITY: &str = "ERR value is NaN or Infinity";
/// Redis's `getRangeLongFromObjectOrReply(.., -LONG_MAX, LONG_MAX, ..)`.
pub const COUNT_OUT_OF_LONG_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// HRANDFIELD WITHVALUES: a count whose reply length would overflow.
pub const VALUE_OUT_OF_RANGE: &str = "ERR value is out of range";
pub const NUMKEYS_OVER_ARGS: &str = "ERR Number of keys can't be greater than number of args";
/// Redis would build a reply of any length for a negative SRANDMEMBER or
/// HRANDFIELD count; strata refuses one past `cmd::sets::MAX_RANDOM_REPLY`.
pub const RANDOM_COUNT_TOO_LARGE: &str =
    "ERR count is too large: strata answers at most 1048576 random elements";

// SORT.
pub const SORT_SCORES_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

pub fn unsupported_option(option: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR Unsupported option {}",
        String::from_utf8_lossy(option)
    ))
}

// Server.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const OOM_DISK: &str = "OOM command not allowed when used disk > 'max-disk'.";

/// `-MISCONF`: the warm tier cannot take writes now (the reason says why).
pub fn misconf(reason: &str) -> Reply {
    Reply::Error(format!(
        "MISCONF strata is unable to persist to disk: {reason}. Commands that may modify the data set are disabled until it can."
    ))
}

// Transactions.
pub const MULTI_NESTED: &str = "ERR MULTI calls can not be nested";
pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
pub const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
pub const NOT_IN_MULTI: &str = "ERR Command not allowed inside a transaction";
pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
pub const MONITOR_IN_EXEC: &str = "ERR MONITOR isn't allowed for DENY BLOCKING client";

/// EXEC refused before it ran (as Redis's `execCommandAbort`): the refusal's
/// text follows, without a generic `ERR ` prefix.
pub fn exec_abort(refusal: &str) -> Reply {
    let reason = refusal.strip_prefix("ERR ").unwrap_or(refusal);
    Reply::Error(format!(
        "EXECABORT Transaction discarded because of: {reason}"
    ))
}

pub const INVALID_FIRST_DB: &str = "ERR invalid first DB index";
pub const INVALID_SECOND_DB: &str = "ERR invalid second DB index";
pub const TIMEOUT_NOT_INTEGER: &str = "ERR timeout is not an integer or out of range";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const NO_SHUTDOWN_IN_PROGRESS: &str = "ERR No shutdown in progress.";
pub const NO_CONFIG_FILE: &str = "ERR The server is running without a config file";
pub const SLOWLOG_COUNT: &str = "ERR count should be greater than or equal to -1";
pub const INVALID_COMMAND: &str = "ERR Invalid command specified";
pub const INVALID_ARG_COUNT: &str = "ERR Invalid number of arguments specified for command";
pub const NO_KEY_ARGUMENTS: &str = "ERR The command has no key arguments";
pub const INVALID_ARGUMENTS: &str = "ERR Invalid arguments specified for command";

pub fn config_set_unknown(name: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
        String::from_utf8_lossy(name)
    ))
}

pub fn config_set_failed(name: &[u8], reason: &str) -> Reply {
    Reply::Error(format!(
        "ERR CONFIG SET failed (possibly related to argument '{}') - {reason}",
        String::from_utf8_lossy(name)
    ))
}

pub fn debug_unsupported(subcommand: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR DEBUG subcommand '{}' is not supported by strata",
        String::from_utf8_lossy(subcommand)
    ))
}

pub fn wrong_arity(command: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{command}' command"
    ))
}

/// Redis quotes at most 128 bytes of the name and of the arguments.
pub fn unknown_command(name: &[u8], args: &[bytes::Bytes]) -> Reply {
    let mut listed = String::new();
    for arg in args {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(arg);
        listed.push('\'');
        listed.extend(text.chars().take(room));
        listed.push_str("' ");
    }
    Reply::Error(format!(
        "ERR unknown command '{}', with args beginning with: {listed}",
        truncate(name, 128)
    ))
}

pub fn unknown_subcommand(command: &str, subcommand: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        truncate(subcommand, 128),
        command.to_ascii_uppercase()
    ))
}

pub fn subcommand_syntax(command: &str, subcommand: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        truncate(subcommand, 128),
        command.to_ascii_uppercase()
    ))
}

/// A RESP2 client with subscriptions ran something else.
pub fn subscribed_context(command: &str) -> Reply {
    Reply::Error(format!(
        "ERR Can't execute '{command}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

pub fn invalid_expire(command: &str) -> Reply {
    Reply::Error(format!("ERR invalid expire time in '{command}' command"))
}

fn truncate(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// The errorstats bucket of an error reply: its first word (`ERR`, `WRONGTYPE`, ...).
pub fn error_code(text: &str) -> &str {
    text.split(' ').next().unwrap_or("ERR")
}

// The source of truth.
/// `-SOURCEDOWN`: a call needs the source (a key in neither tier, a
/// `through` write) and the source cannot answer; cached keys are still served.
pub fn source_down(reason: &str) -> Reply {
    Reply::Error(format!(
        "SOURCEDOWN the source of truth is unavailable: {reason}"
    ))
}

/// `-SOURCEDOWN` for a `behind` write when the outbox holds `outbox-max-bytes`.
pub const OUTBOX_FULL: &str = "SOURCEDOWN the outbox of writes waiting for the source is full (outbox-max-bytes); try again once the source is back";

/// A `through` write applied here whose commit in the source was not seen.
pub fn source_unconfirmed(reason: &str) -> Reply {
    Reply::Error(format!(
        "SOURCEDOWN the write is applied here but the source did not confirm it ({reason}); it stays queued and ships when the source is back"
    ))
}

pub const NO_SOURCE: &str = "ERR no source of truth is configured (--source-url)";

pub const SWAPDB_WITH_SOURCE: &str =
    "ERR SWAPDB is not supported with a source of truth (--source-url)";

/// A `through` write the source refused for good (a constraint): applied
/// here, parked as a dead letter.
pub fn source_refused(reason: &str) -> Reply {
    Reply::Error(format!(
        "ERR the source refused the write ({reason}); it is applied here and parked as a dead letter (CACHE.OUTBOX DEADLETTERS)"
    ))
}
