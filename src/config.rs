//! Configuration: one serde section per component with Redis's names and
//! defaults, loaded from TOML and overridden by command-line flags, plus the
//! run-time view that `CONFIG GET/SET` reads and changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::pubsub::OutputLimit;

pub const DEFAULT_PORT: u16 = 6379;
pub const DEFAULT_DATABASES: usize = 16;
pub const DEFAULT_MAXCLIENTS: u64 = 10_000;
pub const DEFAULT_PROTO_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
pub const DEFAULT_QUERY_BUFFER_LIMIT: u64 = 1024 * 1024 * 1024;
pub const DEFAULT_TCP_KEEPALIVE: u64 = 300;
pub const DEFAULT_SLOWLOG_SLOWER_THAN: i64 = 10_000;
pub const DEFAULT_SLOWLOG_MAX_LEN: u64 = 128;
pub const DEFAULT_MAXMEMORY_POLICY: &str = "allkeys-lru";
pub const DEFAULT_MAXMEMORY_SAMPLES: u64 = 5;
pub const DEFAULT_DIR: &str = "./data";
pub const DEFAULT_APPENDFSYNC: &str = "everysec";
/// sled's own page cache: small, because the hot tier holds decoded values.
pub const DEFAULT_WARM_CACHE_SIZE: u64 = 64 * 1024 * 1024;
/// Free disk space below which writes are refused with `-MISCONF`, so sled
/// never meets a full disk mid-write (it cannot recover from that without a
/// restart).
pub const DEFAULT_MIN_FREE_DISK: u64 = 64 * 1024 * 1024;
/// Redis's default, as CONFIG GET prints it: subscribers that fall 32 MB
/// behind, or 8 MB for a minute, are disconnected.
pub const DEFAULT_CLIENT_OUTPUT_BUFFER_LIMIT: &str =
    "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60";
pub const DEFAULT_SOURCE_POOL_SIZE: usize = 16;
pub const DEFAULT_SOURCE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_SOURCE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_SOURCE_SCHEMA: &str = "strata";
/// How long a key found absent in the source is remembered as absent.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Consecutive failed calls to the source that open the circuit breaker.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// How long the open breaker refuses calls before it lets one try.
pub const DEFAULT_BREAKER_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Bytes of not-yet-shipped writes kept on disk while the source is away.
pub const DEFAULT_OUTBOX_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// A collection with more elements is not loaded on a miss (the load fails
/// with a clear error instead of filling memory).
pub const DEFAULT_MAX_LOAD_ELEMENTS: u64 = 100_000;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub server: ServerConfig,
    pub memory: MemoryConfig,
    pub storage: StorageConfig,
    pub source: SourceConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    pub bind: Vec<String>,
    pub port: u16,
    pub protected_mode: bool,
    pub requirepass: String,
    pub maxclients: u64,
    pub databases: usize,
    pub timeout: u64,
    pub tcp_keepalive: u64,
    pub loglevel: String,
    pub proto_max_bulk_len: MemorySize,
    pub client_query_buffer_limit: MemorySize,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    /// Keyspace notification classes (Redis's flag letters, plus `T`).
    pub notify_keyspace_events: String,
    /// `<class> <hard> <soft> <soft seconds>` groups, Redis's syntax.
    pub client_output_buffer_limit: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            port: DEFAULT_PORT,
            protected_mode: true,
            requirepass: String::new(),
            maxclients: DEFAULT_MAXCLIENTS,
            databases: DEFAULT_DATABASES,
            timeout: 0,
            tcp_keepalive: DEFAULT_TCP_KEEPALIVE,
            loglevel: "notice".into(),
            proto_max_bulk_len: MemorySize(DEFAULT_PROTO_MAX_BULK_LEN),
            client_query_buffer_limit: MemorySize(DEFAULT_QUERY_BUFFER_LIMIT),
            slowlog_log_slower_than: DEFAULT_SLOWLOG_SLOWER_THAN,
            slowlog_max_len: DEFAULT_SLOWLOG_MAX_LEN,
            notify_keyspace_events: String::new(),
            client_output_buffer_limit: DEFAULT_CLIENT_OUTPUT_BUFFER_LIMIT.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MemoryConfig {
    pub maxmemory: MemorySize,
    pub maxmemory_policy: String,
    pub maxmemory_samples: u64,
}

impl MemoryConfig {
    /// Whether Redis would share small-integer objects: not when a memory
    /// bound with an LRU/LFU policy needs per-key access information.
    pub fn shares_integers(&self) -> bool {
        self.maxmemory.0 == 0
            || !(self.maxmemory_policy.ends_with("-lru") || self.maxmemory_policy.ends_with("-lfu"))
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            maxmemory: MemorySize(0),
            maxmemory_policy: DEFAULT_MAXMEMORY_POLICY.into(),
            maxmemory_samples: DEFAULT_MAXMEMORY_SAMPLES,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// `false` keeps everything in memory only, as Redis without persistence.
    pub warm_tier: bool,
    pub dir: PathBuf,
    pub appendfsync: String,
    pub warm_cache_size: MemorySize,
    /// Bound of the warm tier on disk (0 = none).
    pub max_disk: MemorySize,
    pub min_free_disk: MemorySize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            warm_tier: true,
            dir: PathBuf::from(DEFAULT_DIR),
            appendfsync: DEFAULT_APPENDFSYNC.into(),
            warm_cache_size: MemorySize(DEFAULT_WARM_CACHE_SIZE),
            max_disk: MemorySize(0),
            min_free_disk: MemorySize(DEFAULT_MIN_FREE_DISK),
        }
    }
}

/// The source of truth: a PostgreSQL (or Supabase) database behind the tiers.
/// No `url` = embedded mode, nothing leaves this machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceConfig {
    /// `postgres://user:password@host:port/db?sslmode=...`; "" = none.
    pub url: Secret,
    /// Where LISTEN connects: a direct or session-mode address, since LISTEN
    /// does not work through a transaction-mode pooler. "" = `url`.
    pub listen_url: Secret,
    pub pool_size: usize,
    pub connect_timeout: DurationValue,
    pub statement_timeout: DurationValue,
    pub write_mode: WriteMode,
    pub read_through: bool,
    /// TTL of a key loaded from the source (0 = none).
    pub ttl: DurationValue,
    pub negative_ttl: DurationValue,
    pub schema: String,
    pub sslmode: SslMode,
    /// CA certificates (PEM) for `verify-full`; "" = the Mozilla roots.
    pub sslrootcert: PathBuf,
    pub breaker_threshold: u32,
    pub breaker_retry_after: DurationValue,
    pub outbox_max_bytes: MemorySize,
    pub max_load_elements: u64,
    /// `[[source.rule]]` tables, the first whose pattern matches a key wins.
    pub rule: Vec<SourceRule>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            url: Secret::default(),
            listen_url: Secret::default(),
            pool_size: DEFAULT_SOURCE_POOL_SIZE,
            connect_timeout: DurationValue(DEFAULT_SOURCE_CONNECT_TIMEOUT),
            statement_timeout: DurationValue(DEFAULT_SOURCE_STATEMENT_TIMEOUT),
            write_mode: WriteMode::Behind,
            read_through: true,
            ttl: DurationValue(Duration::ZERO),
            negative_ttl: DurationValue(DEFAULT_NEGATIVE_TTL),
            schema: DEFAULT_SOURCE_SCHEMA.into(),
            sslmode: SslMode::Prefer,
            sslrootcert: PathBuf::new(),
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_retry_after: DurationValue(DEFAULT_BREAKER_RETRY_AFTER),
            outbox_max_bytes: MemorySize(DEFAULT_OUTBOX_MAX_BYTES),
            max_load_elements: DEFAULT_MAX_LOAD_ELEMENTS,
            rule: Vec::new(),
        }
    }
}

/// What a write waits for before its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Nothing ships to the source.
    None,
    /// The reply comes at local durability; the outbox ships later.
    Behind,
    /// The reply waits for the source's commit of the write.
    Through,
}

impl WriteMode {
    pub const NAMES: &'static [&'static str] = &["none", "behind", "through"];

    pub fn parse(text: &str) -> Option<WriteMode> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Some(WriteMode::None),
            "behind" => Some(WriteMode::Behind),
            "through" => Some(WriteMode::Through),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WriteMode::None => "none",
            WriteMode::Behind => "behind",
            WriteMode::Through => "through",
        }
    }
}

/// TLS to the source, with libpq's names and meanings: `require` encrypts
/// without checking the certificate, `verify-full` checks the chain against
/// `sslrootcert` and the host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static [&'static str] = &["disable", "prefer", "require", "verify-full"];

    pub fn parse(text: &str) -> Option<SslMode> {
        match text.to_ascii_lowercase().as_str() {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Overrides for the keys one glob pattern matches.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceRule {
    pub pattern: String,
    pub write_mode: Option<WriteMode>,
    pub ttl: Option<DurationValue>,
    pub negative_ttl: Option<DurationValue>,
}

/// The settings that apply to one key once the rules are consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    pub write_mode: WriteMode,
    /// `None`: a loaded key does not expire.
    pub ttl: Option<Duration>,
    pub negative_ttl: Duration,
}

impl SourceConfig {
    pub fn enabled(&self) -> bool {
        !self.url.expose().is_empty()
    }

    /// The URL LISTEN connects to.
    pub fn listen_url(&self) -> &str {
        if self.listen_url.expose().is_empty() {
            self.url.expose()
        } else {
            self.listen_url.expose()
        }
    }

    /// Mode, TTL and negative TTL for `key`: the first matching rule's
    /// values, the section's for what the rule leaves out. Without a source
    /// nothing ships, whatever the rules say.
    pub fn policy(&self, key: &[u8]) -> KeyPolicy {
        let rule = self
            .rule
            .iter()
            .find(|rule| crate::glob::matches(rule.pattern.as_bytes(), key, false));
        let write_mode = if self.enabled() {
            rule.and_then(|r| r.write_mode).unwrap_or(self.write_mode)
        } else {
            WriteMode::None
        };
        let ttl = rule.and_then(|r| r.ttl).unwrap_or(self.ttl).0;
        KeyPolicy {
            write_mode,
            ttl: (!ttl.is_zero()).then_some(ttl),
            negative_ttl: rule
                .and_then(|r| r.negative_ttl)
                .unwrap_or(self.negative_ttl)
                .0,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !valid_schema_name(&self.schema) {
            return Err(format!(
                "source.schema: '{}' must be a lower-case SQL identifier (a-z, 0-9, _; at most 48 bytes)",
                self.schema
            ));
        }
        if self.pool_size == 0 {
            return Err("source.pool-size: argument must be at least 1".into());
        }
        if self.breaker_threshold == 0 {
            return Err("source.breaker-threshold: argument must be at least 1".into());
        }
        if self.sslmode == SslMode::VerifyFull
            && !self.sslrootcert.as_os_str().is_empty()
            && !self.sslrootcert.is_file()
        {
            return Err(format!(
                "source.sslrootcert: cannot read {}",
                self.sslrootcert.display()
            ));
        }
        for rule in &self.rule {
            if rule.pattern.is_empty() {
                return Err("source.rule: pattern must not be empty".into());
            }
        }
        Ok(())
    }
}

/// The schema name goes into SQL text (DDL takes no parameters), so only
/// plain lower-case identifiers are accepted; its notification channel,
/// `<schema>_invalidate`, must stay within PostgreSQL's 63 bytes.
pub fn valid_schema_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 48
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// A string that may hold a password: `Debug` shows it redacted, so a
/// logged config never carries it; [`Secret::expose`] gives the real text.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The text with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// Replaces the password of a connection string with `***`, in both of
/// libpq's forms: the URL's `user:password@` and `password=` query
/// parameter, and the key/value form's `password=...` (quoted or not).
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    if let Some(scheme_end) = url.find("://") {
        let (scheme, after) = url.split_at(scheme_end + 3);
        out.push_str(scheme);
        // The user information ends at the last '@' before the query: an
        // unencoded '@' or '/' in a password must not leak its tail.
        let query_start = after.find('?').unwrap_or(after.len());
        let (authority_part, query) = after.split_at(query_start);
        match authority_part.rfind('@') {
            Some(at) => {
                let (userinfo, host) = authority_part.split_at(at);
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(host);
            }
            None => out.push_str(authority_part),
        }
        rest = query;
    }
    redact_password_parameters(rest, &mut out);
    out
}

fn redact_password_parameters(text: &str, out: &mut String) {
    let lower = text.to_ascii_lowercase();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("password") {
        let start = search + found;
        let mut cursor = start + "password".len();
        let bytes = text.as_bytes();
        // A parameter name only: preceded by a separator, followed by '='.
        let starts_name = start == 0 || matches!(bytes[start - 1], b'?' | b'&' | b' ' | b'\t');
        while cursor < bytes.len() && bytes[cursor] == b' ' {
            cursor += 1;
        }
        if !starts_name || cursor >= bytes.len() || bytes[cursor] != b'=' {
            search = start + 1;
            continue;
        }
        cursor += 1;
        while cursor < bytes.len() && bytes[cursor] == b' ' {
            cursor += 1;
        }
        let value_start = cursor;
        if cursor < bytes.len() && bytes[cursor] == b'\'' {
            cursor += 1;
            while cursor < bytes.len() && bytes[cursor] != b'\'' {
                cursor += if bytes[cursor] == b'\\' { 2 } else { 1 };
            }
            cursor = (cursor + 1).min(bytes.len());
        } else {
            while cursor < bytes.len() && !matches!(bytes[cursor], b'&' | b' ' | b'\t') {
                cursor += 1;
            }
        }
        out.push_str(&text[copied..value_start]);
        out.push_str("***");
        copied = cursor;
        search = cursor;
    }
    out.push_str(&text[copied..]);
}

/// A duration written as `500ms`, `5s`, `30m`, `2h`, `1d`, or a plain number
/// of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(DurationValue(Duration::from_secs(n))),
            Raw::Text(text) => parse_duration(&text)
                .map(DurationValue)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid duration '{text}'"))),
        }
    }
}

pub fn parse_duration(text: &str) -> Option<Duration> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(digits_end);
    let number: u64 = digits.parse().ok()?;
    let millis: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(millis).map(Duration::from_millis)
}

/// Prints a duration as `parse_duration` reads it back.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// The source's flags, flattened into the binary's command line.
#[derive(clap::Args, Debug, Default)]
pub struct SourceFlags {
    /// The source of truth, postgres://user:password@host:port/db (none = embedded mode).
    #[arg(
        long,
        env = "STRATA_SOURCE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub source_url: Option<String>,
    /// Where LISTEN connects (a direct or session-mode address; default --source-url).
    #[arg(long, value_name = "URL")]
    pub source_listen_url: Option<String>,
    /// Connections to the source.
    #[arg(long, value_name = "N")]
    pub source_pool_size: Option<usize>,
    /// Longest a call to the source may take (5s, 500ms).
    #[arg(long, value_name = "DURATION")]
    pub source_statement_timeout: Option<String>,
    /// none | behind | through
    #[arg(long, value_name = "MODE")]
    pub write_mode: Option<String>,
    /// yes | no: load keys missing from both tiers from the source.
    #[arg(long, value_name = "yes|no")]
    pub read_through: Option<String>,
    /// The PostgreSQL schema holding strata's tables.
    #[arg(long, value_name = "NAME")]
    pub source_schema: Option<String>,
    /// disable | prefer | require | verify-full
    #[arg(long, value_name = "MODE")]
    pub source_sslmode: Option<String>,
    /// CA certificates (PEM) for --source-sslmode verify-full.
    #[arg(long, value_name = "PATH")]
    pub source_sslrootcert: Option<PathBuf>,
    /// Consecutive failures that open the circuit breaker.
    #[arg(long, value_name = "N")]
    pub source_breaker_threshold: Option<u32>,
    /// How long the open breaker waits before trying the source again.
    #[arg(long, value_name = "DURATION")]
    pub source_breaker_retry_after: Option<String>,
    /// Bound of not-yet-shipped writes on disk.
    #[arg(long, value_name = "BYTES")]
    pub outbox_max_bytes: Option<String>,
}

impl SourceFlags {
    /// Applies the flags given over the file's values.
    pub fn apply(self, source: &mut SourceConfig) -> Result<(), String> {
        let duration = |flag: &str, text: &str| {
            parse_duration(text)
                .map(DurationValue)
                .ok_or_else(|| format!("--{flag} {text}: argument must be a duration (5s, 500ms)"))
        };
        if let Some(url) = self.source_url {
            source.url = Secret(url);
        }
        if let Some(url) = self.source_listen_url {
            source.listen_url = Secret(url);
        }
        if let Some(n) = self.source_pool_size {
            source.pool_size = n;
        }
        if let Some(text) = self.source_statement_timeout {
            source.statement_timeout = duration("source-statement-timeout", &text)?;
        }
        if let Some(text) = self.write_mode {
            source.write_mode = WriteMode::parse(&text).ok_or_else(|| {
                format!(
                    "--write-mode {text}: argument must be one of {}",
                    WriteMode::NAMES.join(", ")
                )
            })?;
        }
        if let Some(text) = self.read_through {
            source.read_through = parse_bool(&text)
                .ok_or_else(|| format!("--read-through {text}: argument must be 'yes' or 'no'"))?;
        }
        if let Some(schema) = self.source_schema {
            source.schema = schema;
        }
        if let Some(text) = self.source_sslmode {
            source.sslmode = SslMode::parse(&text).ok_or_else(|| {
                format!(
                    "--source-sslmode {text}: argument must be one of {}",
                    SslMode::NAMES.join(", ")
                )
            })?;
        }
        if let Some(path) = self.source_sslrootcert {
            source.sslrootcert = path;
        }
        if let Some(n) = self.source_breaker_threshold {
            source.breaker_threshold = n;
        }
        if let Some(text) = self.source_breaker_retry_after {
            source.breaker_retry_after = duration("source-breaker-retry-after", &text)?;
        }
        if let Some(text) = self.outbox_max_bytes {
            source.outbox_max_bytes = parse_memory(&text).map(MemorySize).ok_or_else(|| {
                format!("--outbox-max-bytes {text}: argument must be a memory value")
            })?;
        }
        Ok(())
    }
}

/// A byte count written as Redis does (`0`, `1024`, `100mb`, `2gb`, `1k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemorySize(pub u64);

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(MemorySize(n)),
            Raw::Text(text) => parse_memory(&text)
                .map(MemorySize)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid memory size '{text}'"))),
        }
    }
}

/// Redis's `memtoll`: `k`=1000, `kb`=1024, `m`, `mb`, `g`, `gb`, case-insensitive.
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(digits_end);
    let number: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

pub const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
pub const MAXMEMORY_POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
pub const APPENDFSYNC_MODES: &[&str] = &["always", "everysec", "no"];

impl Config {
    /// Reads a TOML file; errors name the file and the offending key.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values a TOML type cannot express; CONFIG SET applies the same rules.
    pub fn validate(&self) -> Result<(), String> {
        let mut probe = self.clone();
        for name in [
            "loglevel",
            "maxmemory-policy",
            "appendfsync",
            "notify-keyspace-events",
            "client-output-buffer-limit",
        ] {
            // These two print a parsed form: check what the file said.
            let value = match name {
                "notify-keyspace-events" => self.server.notify_keyspace_events.clone(),
                "client-output-buffer-limit" => self.server.client_output_buffer_limit.clone(),
                _ => probe.get(name).unwrap_or_default(),
            };
            probe
                .set(name, &value)
                .map_err(|e| format!("{name}: {e}"))?;
        }
        if self.server.databases == 0 {
            return Err("databases: argument must be between 1 and 2147483647".into());
        }
        if self.server.maxclients == 0 {
            return Err("maxclients: argument must be between 1 and 4294967295".into());
        }
        self.source.validate()
    }

    /// The value of one of strata's own parameters, as CONFIG GET prints it.
    pub fn get(&self, name: &str) -> Option<String> {
        let s = &self.server;
        Some(match name {
            "bind" => s.bind.join(" "),
            "port" => s.port.to_string(),
            "protected-mode" => yes_no(s.protected_mode),
            "requirepass" => s.requirepass.clone(),
            "maxclients" => s.maxclients.to_string(),
            "databases" => s.databases.to_string(),
            "timeout" => s.timeout.to_string(),
            "tcp-keepalive" => s.tcp_keepalive.to_string(),
            "loglevel" => s.loglevel.clone(),
            "proto-max-bulk-len" => s.proto_max_bulk_len.0.to_string(),
            "client-query-buffer-limit" => s.client_query_buffer_limit.0.to_string(),
            "slowlog-log-slower-than" => s.slowlog_log_slower_than.to_string(),
            "slowlog-max-len" => s.slowlog_max_len.to_string(),
            "notify-keyspace-events" => crate::pubsub::notify::to_string(self.notify_flags()),
            "client-output-buffer-limit" => {
                let limits = self.output_limits();
                let class = |name: &str, l: OutputLimit| {
                    format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds)
                };
                [
                    class("normal", limits.normal),
                    class("slave", limits.replica),
                    class("pubsub", limits.pubsub),
                ]
                .join(" ")
            }
            "maxmemory" => self.memory.maxmemory.0.to_string(),
            "maxmemory-policy" => self.memory.maxmemory_policy.clone(),
            "maxmemory-samples" => self.memory.maxmemory_samples.to_string(),
            "dir" => absolute(&self.storage.dir),
            "appendfsync" => self.storage.appendfsync.clone(),
            "warm-tier" => yes_no(self.storage.warm_tier),
            "warm-cache-size" => self.storage.warm_cache_size.0.to_string(),
            "max-disk" => self.storage.max_disk.0.to_string(),
            "min-free-disk" => self.storage.min_free_disk.0.to_string(),
            // Passwords never leave the process: CONFIG GET shows them redacted.
            "source-url" => self.source.url.redacted(),
            "source-listen-url" => self.source.listen_url.redacted(),
            "source-pool-size" => self.source.pool_size.to_string(),
            "source-statement-timeout" => format_duration(self.source.statement_timeout.0),
            "write-mode" => self.source.write_mode.name().to_string(),
            "read-through" => yes_no(self.source.read_through),
            "source-schema" => self.source.schema.clone(),
            "source-sslmode" => self.source.sslmode.name().to_string(),
            "source-sslrootcert" => self.source.sslrootcert.display().to_string(),
            "source-breaker-threshold" => self.source.breaker_threshold.to_string(),
            "source-breaker-retry-after" => format_duration(self.source.breaker_retry_after.0),
            "outbox-max-bytes" => self.source.outbox_max_bytes.0.to_string(),
            _ => return None,
        })
    }

    /// A parameter fixed at startup: setting the value it has changes
    /// nothing; any other value is refused.
    fn keep(&self, name: &str, value: &str) -> Result<(), String> {
        if self.get(name).as_deref() == Some(value) {
            Ok(())
        } else {
            Err(IMMUTABLE.into())
        }
    }

    /// Changes a parameter at run time; the error is the reason Redis would give.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let memory = || parse_memory(value).ok_or("argument must be a memory value");
        let number = || -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())
        };
        let one_of = |choices: &[&str]| -> Result<String, String> {
            let lower = value.to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err("argument(s) must be one of the following: ".to_string() + &choices.join(", "))
            }
        };
        match name {
            "protected-mode" => {
                self.server.protected_mode =
                    parse_bool(value).ok_or("argument must be 'yes' or 'no'")?
            }
            "requirepass" => self.server.requirepass = value.to_string(),
            "maxclients" => {
                let n = number()?;
                if n == 0 {
                    return Err("argument must be between 1 and 4294967295 inclusive".into());
                }
                self.server.maxclients = n;
            }
            "timeout" => self.server.timeout = number()?,
            "tcp-keepalive" => self.server.tcp_keepalive = number()?,
            "loglevel" => self.server.loglevel = one_of(LOGLEVELS)?,
            "proto-max-bulk-len" => {
                let n = memory()?;
                if n < 1024 * 1024 {
                    return Err(
                        "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                    );
                }
                self.server.proto_max_bulk_len = MemorySize(n)
            }
            "client-query-buffer-limit" => {
                let n = memory()?;
                if n < 1024 * 1024 {
                    return Err(
                        "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                    );
                }
                self.server.client_query_buffer_limit = MemorySize(n)
            }
            "slowlog-log-slower-than" => {
                self.server.slowlog_log_slower_than = value
                    .parse()
                    .map_err(|_| "argument couldn't be parsed into an integer".to_string())?
            }
            "slowlog-max-len" => self.server.slowlog_max_len = number()?,
            "notify-keyspace-events" => {
                crate::pubsub::notify::parse(value)
                    .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?;
                self.server.notify_keyspace_events = value.to_string();
            }
            "client-output-buffer-limit" => {
                let limits = parse_output_limits(value, self.output_limits())?;
                self.server.client_output_buffer_limit = limits.to_string();
            }
            "maxmemory" => self.memory.maxmemory = MemorySize(memory()?),
            "maxmemory-policy" => self.memory.maxmemory_policy = one_of(MAXMEMORY_POLICIES)?,
            "maxmemory-samples" => {
                let n = number()?;
                if !(1..=64).contains(&n) {
                    return Err("argument must be between 1 and 64 inclusive".into());
                }
                self.memory.maxmemory_samples = n
            }
            "appendfsync" => self.storage.appendfsync = one_of(APPENDFSYNC_MODES)?,
            "max-disk" => self.storage.max_disk = MemorySize(memory()?),
            "min-free-disk" => self.storage.min_free_disk = MemorySize(memory()?),
            "databases" | "dir" => return Err(IMMUTABLE.into()),
            // Fixed at startup here, so only the value they have is
            // accepted: Redis can change `bind` and `port` at run time and
            // skips a value that is already set, and a client that sets
            // every CONFIG GET pair back (Redis's "CONFIG sanity") must
            // not fail on strata's own.
            "bind" | "port" | "warm-tier" | "warm-cache-size" => {
                return self.keep(name, value);
            }
            name if SOURCE_PARAMETERS.contains(&name) => return self.keep(name, value),
            _ => return Err("unknown".into()),
        }
        Ok(())
    }
}

/// `client-output-buffer-limit` per client class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    pub normal: OutputLimit,
    pub replica: OutputLimit,
    pub pubsub: OutputLimit,
}

impl std::fmt::Display for OutputLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let classes = [
            ("normal", self.normal),
            ("slave", self.replica),
            ("pubsub", self.pubsub),
        ];
        for (i, (name, l)) in classes.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name} {} {} {}", l.hard, l.soft, l.soft_seconds)?;
        }
        Ok(())
    }
}

/// Redis's `updateClientOutputBufferLimit`: groups of four; the classes
/// named change, the others keep their values from `current`.
pub fn parse_output_limits(value: &str, current: OutputLimits) -> Result<OutputLimits, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut next = current;
    for group in words.chunks_exact(4) {
        let [class, hard, soft, seconds] = group else {
            continue;
        };
        let slot = match class.to_ascii_lowercase().as_str() {
            "normal" => &mut next.normal,
            "slave" | "replica" => &mut next.replica,
            "pubsub" => &mut next.pubsub,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let seconds: i64 = seconds.parse().map_err(|_| bad())?;
        *slot = OutputLimit {
            hard: parse_memory(hard).ok_or_else(bad)?,
            soft: parse_memory(soft).ok_or_else(bad)?,
            soft_seconds: u64::try_from(seconds).map_err(|_| bad())?,
        };
    }
    Ok(next)
}

impl Config {
    /// The parsed `notify-keyspace-events` (validated when set).
    pub fn notify_flags(&self) -> u32 {
        crate::pubsub::notify::parse(&self.server.notify_keyspace_events).unwrap_or(0)
    }

    /// The parsed `client-output-buffer-limit` (validated when set).
    pub fn output_limits(&self) -> OutputLimits {
        let none = OutputLimits {
            normal: OutputLimit::default(),
            replica: OutputLimit::default(),
            pubsub: OutputLimit::default(),
        };
        // Classes the setting leaves out keep Redis's defaults.
        let defaults =
            parse_output_limits(DEFAULT_CLIENT_OUTPUT_BUFFER_LIMIT, none).unwrap_or(none);
        parse_output_limits(&self.server.client_output_buffer_limit, defaults).unwrap_or(defaults)
    }
}

/// strata's own parameters, in CONFIG GET order.
pub const OWN_PARAMETERS: &[&str] = &[
    "bind",
    "port",
    "protected-mode",
    "requirepass",
    "maxclients",
    "databases",
    "timeout",
    "tcp-keepalive",
    "loglevel",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "notify-keyspace-events",
    "client-output-buffer-limit",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "dir",
    "appendfsync",
    "warm-tier",
    "warm-cache-size",
    "max-disk",
    "min-free-disk",
    "source-url",
    "source-listen-url",
    "source-pool-size",
    "source-statement-timeout",
    "write-mode",
    "read-through",
    "source-schema",
    "source-sslmode",
    "source-sslrootcert",
    "source-breaker-threshold",
    "source-breaker-retry-after",
    "outbox-max-bytes",
];

/// The source's parameters: fixed at start (the pool and the listener are
/// built from them).
const SOURCE_PARAMETERS: &[&str] = &[
    "source-url",
    "source-listen-url",
    "source-pool-size",
    "source-statement-timeout",
    "write-mode",
    "read-through",
    "source-schema",
    "source-sslmode",
    "source-sslrootcert",
    "source-breaker-threshold",
    "source-breaker-retry-after",
    "outbox-max-bytes",
];

/// Redis parameters that clients and tools read (and some set) but whose
/// behaviour strata does not have or fixes itself: answered with the values
/// Redis 7 uses, accepted by CONFIG SET and remembered.
pub const COMPATIBILITY_DEFAULTS: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("appendfilename", "appendonly.aof"),
    ("appenddirname", "appendonlydir"),
    ("dbfilename", "dump.rdb"),
    ("daemonize", "no"),
    ("pidfile", ""),
    ("logfile", ""),
    ("hz", "10"),
    ("dynamic-hz", "yes"),
    ("activerehashing", "yes"),
    ("active-expire-effort", "1"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("lfu-log-factor", "10"),
    ("lfu-decay-time", "1"),
    // Redis 7.0's built-in defaults (its sample redis.conf says 128 for
    // hashes; a server started without a file uses 512), which the
    // encodings OBJECT ENCODING reports follow.
    ("hash-max-listpack-entries", "512"),
    ("hash-max-listpack-value", "64"),
    ("hash-max-ziplist-entries", "512"),
    ("hash-max-ziplist-value", "64"),
    ("set-max-intset-entries", "512"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("zset-max-ziplist-entries", "128"),
    ("zset-max-ziplist-value", "64"),
    ("list-max-listpack-size", "-2"),
    ("list-max-ziplist-size", "-2"),
    ("list-compress-depth", "0"),
    ("stream-node-max-bytes", "4096"),
    ("stream-node-max-entries", "100"),
    ("hll-sparse-max-bytes", "3000"),
    ("lua-time-limit", "5000"),
    ("busy-reply-threshold", "5000"),
    ("latency-tracking", "yes"),
    ("latency-monitor-threshold", "0"),
    ("maxmemory-clients", "0"),
    ("io-threads", "1"),
    ("tcp-backlog", "511"),
    ("unixsocket", ""),
    ("cluster-enabled", "no"),
    ("replica-read-only", "yes"),
    ("slave-read-only", "yes"),
    ("replica-serve-stale-data", "yes"),
    ("min-replicas-to-write", "0"),
    ("repl-backlog-size", "1048576"),
    ("stop-writes-on-bgsave-error", "yes"),
    ("rdbcompression", "yes"),
    ("rdbchecksum", "yes"),
    ("enable-debug-command", "yes"),
    ("supervised", "no"),
    ("syslog-enabled", "no"),
    ("always-show-logo", "no"),
    ("set-proc-title", "yes"),
    ("lfu-decay-time", "1"),
    ("oom-score-adj", "no"),
    ("jemalloc-bg-thread", "yes"),
    ("activedefrag", "no"),
    ("tracking-table-max-keys", "1000000"),
    ("acllog-max-len", "128"),
    ("replicaof", ""),
    ("slaveof", ""),
    ("key-load-delay", "0"),
    ("rdb-key-save-delay", "0"),
    ("loading-process-events-interval-bytes", "2097152"),
];

/// Redis's reply to CONFIG SET of a parameter fixed at startup.
const IMMUTABLE: &str = "can't set immutable config";

/// Of those, the ones Redis fixes at startup: CONFIG SET refuses them, as
/// Redis's does, whatever the value.
const COMPATIBILITY_IMMUTABLE: &[&str] = &[
    "appendfilename",
    "appenddirname",
    "daemonize",
    "pidfile",
    "logfile",
    "io-threads",
    "tcp-backlog",
    "unixsocket",
    "cluster-enabled",
    "rdbchecksum",
    "enable-debug-command",
    "supervised",
    "syslog-enabled",
    "always-show-logo",
    "set-proc-title",
    "replicaof",
    "slaveof",
];

/// Of those, the ones Redis hides from a CONFIG GET pattern: only their
/// exact name finds them (testing knobs).
const COMPATIBILITY_HIDDEN: &[&str] = &[
    "key-load-delay",
    "rdb-key-save-delay",
    "loading-process-events-interval-bytes",
];

/// What CONFIG GET and CONFIG SET see while the server runs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub config: Config,
    compatibility: BTreeMap<&'static str, String>,
}

impl RuntimeConfig {
    pub fn new(config: Config) -> Self {
        let compatibility = COMPATIBILITY_DEFAULTS
            .iter()
            .map(|(name, value)| (*name, value.to_string()))
            .collect();
        RuntimeConfig {
            config,
            compatibility,
        }
    }

    /// Every parameter name with its current value.
    pub fn all(&self) -> Vec<(&'static str, String)> {
        let own = OWN_PARAMETERS
            .iter()
            .map(|name| (*name, self.config.get(name).unwrap_or_default()));
        let compat = self
            .compatibility
            .iter()
            .map(|(name, value)| (*name, value.clone()));
        own.chain(compat).collect()
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.config
            .get(name)
            .or_else(|| self.compatibility.get(name).cloned())
    }

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        if OWN_PARAMETERS.contains(&name) {
            return self.config.set(name, value);
        }
        if !self.compatibility.contains_key(name) {
            return Err("unknown".into());
        }
        if COMPATIBILITY_IMMUTABLE.contains(&name) {
            return Err(IMMUTABLE.into());
        }
        if name == "maxmemory-clients" {
            check_maxmemory_clients(value)?;
        }
        if let Some(alias) = encoding_alias(name) {
            let limit = value
                .parse::<usize>()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            crate::keyspace::types::limits::set(name, limit);
            if let Some(slot) = self.compatibility.get_mut(alias) {
                *slot = value.to_string();
            }
        }
        if let Some(slot) = self.compatibility.get_mut(name) {
            *slot = value.to_string();
        }
        Ok(())
    }

    /// Found by its exact name only, never by a CONFIG GET pattern.
    pub fn is_hidden(name: &str) -> bool {
        COMPATIBILITY_HIDDEN.contains(&name)
    }

    pub fn is_known(&self, name: &str) -> bool {
        OWN_PARAMETERS.contains(&name) || self.compatibility.contains_key(name)
    }
}

/// `maxmemory-clients`: a memory value, or a percentage of `maxmemory` up
/// to 100%, with Redis's error texts.
fn check_maxmemory_clients(value: &str) -> Result<(), String> {
    match value.strip_suffix('%') {
        Some(percent) => match percent.parse::<u64>() {
            Ok(p) if p <= 100 => Ok(()),
            Ok(_) => Err("percentage argument must be less or equal to 100".into()),
            Err(_) => Err("argument must be a memory or percent value".into()),
        },
        None => parse_memory(value)
            .map(|_| ())
            .ok_or_else(|| "argument must be a memory or percent value".into()),
    }
}

/// The other name of an encoding threshold (Redis 7 renamed `ziplist` to
/// `listpack` and kept both); `Some(name)` itself for one with no alias.
fn encoding_alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "hash-max-listpack-entries" => "hash-max-ziplist-entries",
        "hash-max-ziplist-entries" => "hash-max-listpack-entries",
        "hash-max-listpack-value" => "hash-max-ziplist-value",
        "hash-max-ziplist-value" => "hash-max-listpack-value",
        "zset-max-listpack-entries" => "zset-max-ziplist-entries",
        "zset-max-ziplist-entries" => "zset-max-listpack-entries",
        "zset-max-listpack-value" => "zset-max-ziplist-value",
        "zset-max-ziplist-value" => "zset-max-listpack-value",
        "set-max-intset-entries" => "set-max-intset-entries",
        _ => return None,
    })
}

fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_like_redis() {
        assert_eq!(parse_memory("0"), Some(0));
        assert_eq!(parse_memory("100mb"), Some(100 * 1024 * 1024));
        assert_eq!(parse_memory("2GB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("12xb"), None);
        assert_eq!(parse_memory(""), None);
    }

    #[test]
    fn toml_sections_and_unknown_keys() {
        let config = Config::from_toml(
            "[server]\nport = 7000\nproto-max-bulk-len = \"1mb\"\n[memory]\nmaxmemory = \"100mb\"\n",
        )
        .unwrap();
        assert_eq!(config.server.port, 7000);
        assert_eq!(config.server.proto_max_bulk_len, MemorySize(1024 * 1024));
        assert_eq!(config.memory.maxmemory, MemorySize(100 * 1024 * 1024));
        assert_eq!(config.server.databases, DEFAULT_DATABASES);
        assert!(Config::from_toml("[server]\nportt = 1\n").is_err());
        assert!(Config::from_toml("[memory]\nmaxmemory-policy = \"bogus\"\n").is_err());
        assert!(Config::from_toml("[server]\nnotify-keyspace-events = \"KQ\"\n").is_err());
        assert!(
            Config::from_toml("[server]\nclient-output-buffer-limit = \"pubsub 1\"\n").is_err()
        );
        let config = Config::from_toml(
            "[server]\nnotify-keyspace-events = \"KEA\"\nclient-output-buffer-limit = \"pubsub 1mb 0 0\"\n",
        )
        .unwrap();
        assert_eq!(config.get("notify-keyspace-events").unwrap(), "AKE");
        assert_eq!(config.output_limits().pubsub.hard, 1024 * 1024);
        assert_eq!(config.output_limits().replica.hard, 256 * 1024 * 1024);
    }

    #[test]
    fn runtime_set_validates() {
        let mut runtime = RuntimeConfig::new(Config::default());
        assert!(runtime.set("maxmemory", "10mb").is_ok());
        assert_eq!(runtime.get("maxmemory").unwrap(), "10485760");
        assert!(runtime.set("maxmemory", "lots").is_err());
        assert_eq!(
            runtime.set("port", "1").unwrap_err(),
            "can't set immutable config"
        );
        // The value a startup parameter has is accepted, and changes nothing.
        let port = runtime.get("port").unwrap();
        assert!(runtime.set("port", &port).is_ok());
        let mode = runtime.get("write-mode").unwrap();
        assert!(runtime.set("write-mode", &mode).is_ok());
        let other = if mode == "through" {
            "behind"
        } else {
            "through"
        };
        assert!(runtime.set("write-mode", other).is_err());
        let databases = runtime.get("databases").unwrap();
        assert_eq!(
            runtime.set("databases", &databases).unwrap_err(),
            "can't set immutable config"
        );
        assert!(runtime.set("save", "").is_ok());
        assert_eq!(runtime.set("no-such", "1").unwrap_err(), "unknown");
    }

    #[test]
    fn passwords_are_redacted_in_every_form() {
        let cases = [
            (
                "postgres://app:s3cret@db.example.com:5432/app",
                "postgres://app:***@db.example.com:5432/app",
            ),
            // An unencoded '@' or '/' in the password leaks nothing.
            (
                "postgresql://app:pa@ss/w0rd@host/db?sslmode=require",
                "postgresql://app:***@host/db?sslmode=require",
            ),
            ("postgres://app@host/db", "postgres://app@host/db"),
            ("postgres://host/db", "postgres://host/db"),
            (
                "postgres://host/db?user=app&password=s3cret&sslmode=require",
                "postgres://host/db?user=app&password=***&sslmode=require",
            ),
            (
                "host=db user=app password=s3cret dbname=app",
                "host=db user=app password=*** dbname=app",
            ),
            (
                "host=db password = 'it\\'s s3cret' dbname=app",
                "host=db password = *** dbname=app",
            ),
            ("", ""),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
            assert!(!redact_url(url).contains("s3cret"));
        }
    }

    #[test]
    fn source_passwords_stay_out_of_debug_and_config_get() {
        let mut config = Config::default();
        config.source.url = Secret::new("postgres://app:s3cret@host/db");
        config.source.listen_url = Secret::new("postgres://app:0ther@host:5432/db");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(!format!("{config:?}").contains("0ther"));
        let runtime = RuntimeConfig::new(config);
        for (name, value) in runtime.all() {
            assert!(!value.contains("s3cret"), "{name} = {value}");
            assert!(!value.contains("0ther"), "{name} = {value}");
        }
        assert_eq!(
            runtime.get("source-url").unwrap(),
            "postgres://app:***@host/db"
        );
        assert_eq!(
            runtime.config.source.url.expose(),
            "postgres://app:s3cret@host/db"
        );
    }

    #[test]
    fn source_section_rules_and_defaults() {
        let config = Config::from_toml(
            r#"
[source]
url = "postgres://app:pw@127.0.0.1/app"
statement-timeout = "2s"
negative-ttl = "5s"
breaker-retry-after = 30
sslmode = "verify-full"

[[source.rule]]
pattern = "conv:*"
write-mode = "through"
ttl = "30m"
negative-ttl = "500ms"

[[source.rule]]
pattern = "tmp:*"
write-mode = "none"
"#,
        )
        .unwrap();
        let source = &config.source;
        assert!(source.enabled());
        assert_eq!(source.listen_url(), "postgres://app:pw@127.0.0.1/app");
        assert_eq!(source.statement_timeout.0, Duration::from_secs(2));
        assert_eq!(source.breaker_retry_after.0, Duration::from_secs(30));
        assert_eq!(source.breaker_threshold, DEFAULT_BREAKER_THRESHOLD);
        assert_eq!(source.sslmode, SslMode::VerifyFull);
        assert_eq!(source.schema, "strata");
        assert!(source.read_through);
        assert_eq!(
            source.policy(b"conv:42"),
            KeyPolicy {
                write_mode: WriteMode::Through,
                ttl: Some(Duration::from_secs(1800)),
                negative_ttl: Duration::from_millis(500),
            }
        );
        assert_eq!(
            source.policy(b"tmp:1"),
            KeyPolicy {
                write_mode: WriteMode::None,
                ttl: None,
                negative_ttl: Duration::from_secs(5),
            }
        );
        assert_eq!(source.policy(b"user:1").write_mode, WriteMode::Behind);

        // No source: nothing ships, whatever the rules say.
        let mut embedded = source.clone();
        embedded.url = Secret::default();
        assert_eq!(embedded.policy(b"conv:1").write_mode, WriteMode::None);

        assert!(Config::from_toml("[source]\nwrite-mode = \"sideways\"\n").is_err());
        assert!(Config::from_toml("[source]\nschema = \"Bad; DROP\"\n").is_err());
        assert!(Config::from_toml("[source]\nttl = \"5 weeks\"\n").is_err());
        assert!(Config::from_toml("[[source.rule]]\npattern = \"a*\"\nttl2 = 1\n").is_err());
    }

    #[test]
    fn source_flags_override_the_file() {
        let mut source = SourceConfig::default();
        let flags = SourceFlags {
            source_url: Some("postgres://h/db".into()),
            write_mode: Some("THROUGH".into()),
            read_through: Some("no".into()),
            source_breaker_retry_after: Some("250ms".into()),
            outbox_max_bytes: Some("64mb".into()),
            ..SourceFlags::default()
        };
        flags.apply(&mut source).unwrap();
        assert_eq!(source.url.expose(), "postgres://h/db");
        assert_eq!(source.write_mode, WriteMode::Through);
        assert!(!source.read_through);
        assert_eq!(source.breaker_retry_after.0, Duration::from_millis(250));
        assert_eq!(source.outbox_max_bytes, MemorySize(64 * 1024 * 1024));
        let bad = SourceFlags {
            source_sslmode: Some("verify-ca".into()),
            ..SourceFlags::default()
        };
        assert!(bad.apply(&mut source).unwrap_err().contains("verify-full"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("ms"), None);
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
    }
}

#[cfg(test)]
mod example_file {
    #[test]
    fn the_shipped_example_parses_to_the_defaults() {
        let example = super::Config::from_toml(include_str!("../strata.toml.example")).unwrap();
        let defaults = super::Config::default();
        assert_eq!(example.server.bind, defaults.server.bind);
        assert_eq!(example.server.port, defaults.server.port);
        assert_eq!(
            example.memory.maxmemory_policy,
            defaults.memory.maxmemory_policy
        );
        assert_eq!(example.storage.appendfsync, defaults.storage.appendfsync);
        assert_eq!(example.storage.warm_tier, defaults.storage.warm_tier);
        assert_eq!(
            example.storage.warm_cache_size,
            defaults.storage.warm_cache_size
        );
        assert_eq!(example.storage.max_disk, defaults.storage.max_disk);
        assert_eq!(
            example.storage.min_free_disk,
            defaults.storage.min_free_disk
        );
        let (source, default_source) = (&example.source, &defaults.source);
        assert!(!source.enabled(), "the example runs in embedded mode");
        assert_eq!(source.pool_size, default_source.pool_size);
        assert_eq!(source.statement_timeout, default_source.statement_timeout);
        assert_eq!(source.write_mode, default_source.write_mode);
        assert_eq!(source.read_through, default_source.read_through);
        assert_eq!(source.negative_ttl, default_source.negative_ttl);
        assert_eq!(source.schema, default_source.schema);
        assert_eq!(source.sslmode, default_source.sslmode);
        assert_eq!(source.breaker_threshold, default_source.breaker_threshold);
        assert_eq!(
            source.breaker_retry_after,
            default_source.breaker_retry_after
        );
        assert_eq!(source.outbox_max_bytes, default_source.outbox_max_bytes);
        assert_eq!(source.max_load_elements, default_source.max_load_elements);
    }
}
