//! The `strata` binary: flags and config file → [`strata::app::App`] → serve
//! until SIGINT, SIGTERM or SHUTDOWN.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use strata::app::App;
use strata::config::Config;

// Redis's allocator, and ours for the same reason: many small, short-lived
// blocks from many threads (sled clones a leaf on every insert).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A cache server that speaks the Redis protocol. Flags use Redis's names
/// and override the config file.
#[derive(Parser, Debug)]
#[command(name = "strata", version)]
struct Cli {
    /// TOML config file (see strata.toml.example).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[arg(long)]
    port: Option<u16>,
    /// Addresses to listen on (several allowed; a leading '-' marks one that may be missing).
    #[arg(long, num_args = 1.., value_name = "ADDR")]
    bind: Option<Vec<String>>,
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    #[arg(long)]
    maxclients: Option<u64>,
    /// Bound of the in-memory tier in bytes or Redis units (100mb, 2gb; 0 = none).
    #[arg(long, value_name = "BYTES")]
    maxmemory: Option<String>,
    #[arg(long, value_name = "POLICY")]
    maxmemory_policy: Option<String>,
    /// Keys sampled per eviction (1-64).
    #[arg(long, value_name = "N")]
    maxmemory_samples: Option<u64>,
    /// Directory of the on-disk tier.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    #[arg(long)]
    databases: Option<usize>,
    /// yes | no
    #[arg(long, value_name = "yes|no")]
    protected_mode: Option<String>,
    /// debug | verbose | notice | warning
    #[arg(long)]
    loglevel: Option<String>,
    /// always | everysec | no
    #[arg(long)]
    appendfsync: Option<String>,
    /// yes | no (no = memory only, nothing survives a restart)
    #[arg(long, value_name = "yes|no")]
    warm_tier: Option<String>,
    /// sled's page cache (the hot tier holds the decoded values).
    #[arg(long, value_name = "BYTES")]
    warm_cache_size: Option<String>,
    /// Bound of the on-disk tier (0 = none).
    #[arg(long, value_name = "BYTES")]
    max_disk: Option<String>,
    /// Writes are refused with MISCONF when the disk has less free space.
    #[arg(long, value_name = "BYTES")]
    min_free_disk: Option<String>,
    #[command(flatten)]
    source: strata::config::SourceFlags,
}

impl Cli {
    fn into_config(self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        if let Some(port) = self.port {
            config.server.port = port;
        }
        if let Some(bind) = self.bind {
            config.server.bind = bind;
        }
        if let Some(dir) = self.dir {
            config.storage.dir = dir;
        }
        if let Some(databases) = self.databases {
            config.server.databases = databases;
        }
        if let Some(flag) = &self.warm_tier {
            config.storage.warm_tier = match flag.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => {
                    return Err(format!(
                        "--warm-tier {flag}: argument must be 'yes' or 'no'"
                    ))
                }
            };
        }
        if let Some(size) = &self.warm_cache_size {
            config.storage.warm_cache_size = strata::config::parse_memory(size)
                .map(strata::config::MemorySize)
                .ok_or_else(|| {
                    format!("--warm-cache-size {size}: argument must be a memory value")
                })?;
        }
        let settable = [
            ("requirepass", self.requirepass),
            ("maxclients", self.maxclients.map(|n| n.to_string())),
            ("maxmemory", self.maxmemory),
            ("maxmemory-policy", self.maxmemory_policy),
            (
                "maxmemory-samples",
                self.maxmemory_samples.map(|n| n.to_string()),
            ),
            ("max-disk", self.max_disk),
            ("min-free-disk", self.min_free_disk),
            ("protected-mode", self.protected_mode),
            ("loglevel", self.loglevel),
            ("appendfsync", self.appendfsync),
        ];
        for (name, value) in settable {
            if let Some(value) = value {
                config
                    .set(name, &value)
                    .map_err(|reason| format!("--{name} {value}: {reason}"))?;
            }
        }
        self.source.apply(&mut config.source)?;
        config.validate()?;
        Ok(config)
    }
}

fn log_filter(loglevel: &str) -> &'static str {
    match loglevel {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    }
}

fn main() -> ExitCode {
    // The version tikv-jemalloc-sys 0.6 builds.
    strata::metrics::declare_allocator("jemalloc-5.3.0");
    let config = match Cli::parse().into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("strata: {message}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| log_filter(&config.server.loglevel).into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("strata: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let app = match App::start(config).await {
            Ok(app) => app,
            Err(message) => {
                eprintln!("strata: {message}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            "strata {} ready to accept connections on {}",
            env!("CARGO_PKG_VERSION"),
            app.local_addr()
        );
        let state = app.state().clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("received a stop signal, shutting down");
            state.request_shutdown();
        });
        app.wait().await;
        tracing::info!("strata is now ready to exit, bye bye");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
