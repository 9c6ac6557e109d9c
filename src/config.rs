//! Configuration: one serde section per component with Redis's names and
//! defaults, loaded from TOML and overridden by command-line flags, plus the
//! run-time view that `CONFIG GET/SET` reads and changes.

use std::collections::BTreeMap;
use std::path::PathBuf;

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

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub server: ServerConfig,
    pub memory: MemoryConfig,
    pub storage: StorageConfig,
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
        Ok(())
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
            _ => return None,
        })
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
            "bind" | "port" | "databases" | "dir" | "warm-tier" | "warm-cache-size" => {
                return Err("can't set immutable config".into())
            }
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
    ("hash-max-listpack-entries", "128"),
    ("hash-max-listpack-value", "64"),
    ("hash-max-ziplist-entries", "128"),
    ("hash-max-ziplist-value", "64"),
    ("set-max-intset-entries", "512"),
    ("set-max-listpack-entries", "128"),
    ("set-max-listpack-value", "64"),
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
        match self.compatibility.get_mut(name) {
            Some(slot) => {
                *slot = value.to_string();
                Ok(())
            }
            None => Err("unknown".into()),
        }
    }

    pub fn is_known(&self, name: &str) -> bool {
        OWN_PARAMETERS.contains(&name) || self.compatibility.contains_key(name)
    }
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
        assert!(runtime.set("save", "").is_ok());
        assert_eq!(runtime.set("no-such", "1").unwrap_err(), "unknown");
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
    }
}
