//! `brook serve` settings. Each one is a command-line flag, an environment
//! variable (`BROOK_…`) and a key of the optional TOML file given with
//! `--config`; the first of those that is set wins, then the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use brook_storage::{FlushPolicy, OnOpenError, PartitionConfig};
use serde::Deserialize;

use crate::auth::{AuthConfig, AuthMode};
use crate::quota::Rates;

/// Flags of `brook serve`. Every value is optional here so that the config
/// file can fill what the command line and environment leave unset.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys in snake_case, e.g. `data_dir = "/var/lib/brook"`).
    #[arg(long, env = "BROOK_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log lines as text, or as one JSON object a line (for log collectors); `RUST_LOG` filters them [default: text]
    #[arg(long, env = "BROOK_LOG_FORMAT", value_enum)]
    #[serde(skip)]
    pub log_format: Option<crate::logging::LogFormat>,
    /// OTLP/gRPC collector the broker's spans are exported to (e.g. http://localhost:4317): produce, fetch, group operations, rule delivery, parented by the W3C traceparent of gRPC metadata and records [default: none, spans not exported]
    #[arg(long, env = "BROOK_OTLP_ENDPOINT", value_name = "URL")]
    #[serde(skip)]
    pub otlp_endpoint: Option<String>,
    /// Share of the traces the broker starts itself (an RPC without a traceparent, a Kafka request) that are exported; spans with a parent follow its sampled flag [default: 1.0]
    #[arg(long, env = "BROOK_OTLP_SAMPLE_RATIO", value_name = "0..1")]
    #[serde(skip)]
    pub otlp_sample_ratio: Option<f64>,
    /// Directory holding the topics [default: ./brook-data]
    #[arg(long, env = "BROOK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC address [default: 127.0.0.1:9292; port 0 picks a free port]
    #[arg(long, env = "BROOK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Prometheus /metrics address [default: 127.0.0.1:9293]
    #[arg(long, env = "BROOK_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Kafka-protocol address for Kafka clients and tools, or `off` [default: 127.0.0.1:9092]
    #[arg(long, env = "BROOK_KAFKA_LISTEN", value_name = "ADDR|off")]
    pub kafka_listen: Option<String>,
    /// HOST:PORT Kafka clients are told to connect to (Metadata) [default: the Kafka listen address]
    #[arg(long, env = "BROOK_KAFKA_ADVERTISED_ADDRESS", value_name = "HOST:PORT")]
    pub kafka_advertised_address: Option<String>,
    /// Create a topic when a Kafka client asks for metadata of one that does not exist (Kafka's auto.create.topics.enable) [default: false]
    #[arg(long, env = "BROOK_AUTO_CREATE_TOPICS", num_args = 0..=1, default_missing_value = "true")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of a topic created without a count (auto-created, or CreateTopics with -1) [default: 1]
    #[arg(long, env = "BROOK_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<u32>,
    /// Largest gRPC request accepted, in bytes; larger ones get RESOURCE_EXHAUSTED [default: 16777216]
    #[arg(long, env = "BROOK_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Most record-batch bytes one fetch or subscription message carries, whatever max_bytes asks (at least one whole batch); half of it with decoded records, which double a response [default: 4194304, gRPC clients' usual receive limit]
    #[arg(long, env = "BROOK_MAX_FETCH_BYTES")]
    pub max_fetch_bytes: Option<u32>,
    /// Threads one produce request's `full` schema validation may use (docs/schemas.md); 0: one per core, at most 8 [default: 0]
    #[arg(long, env = "BROOK_VALIDATION_THREADS")]
    pub validation_threads: Option<usize>,
    /// Most client connections open at once; more are closed on arrival (counted in brook_connections_refused_total) [default: 10000]
    #[arg(long, env = "BROOK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most requests and streams one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); a client waits for a free one [default: 1000]
    #[arg(long, env = "BROOK_MAX_STREAMS_PER_CONNECTION")]
    pub max_streams_per_connection: Option<u32>,
    /// How often the broker pings each connection (HTTP/2 PING), in ms; 0 never [default: 30000]
    #[arg(long, env = "BROOK_KEEPALIVE_INTERVAL_MS")]
    pub keepalive_interval_ms: Option<u64>,
    /// How long a ping may go unanswered before the connection is closed as dead, in ms [default: 20000]
    #[arg(long, env = "BROOK_KEEPALIVE_TIMEOUT_MS")]
    pub keepalive_timeout_ms: Option<u64>,
    /// Longest a request's handler may take to answer (a stream: to start), in ms; past it the request gets DEADLINE_EXCEEDED. Must exceed --max-fetch-wait-ms [default: 60000]
    #[arg(long, env = "BROOK_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Longest a fetch may long-poll, in ms [default: 30000]
    #[arg(long, env = "BROOK_MAX_FETCH_WAIT_MS")]
    pub max_fetch_wait_ms: Option<u64>,
    /// How often retention runs, in ms [default: 300000]
    #[arg(long, env = "BROOK_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish, in ms, before their connections are dropped and the log is closed; a second signal stops waiting at once [default: 20000]
    #[arg(long, env = "BROOK_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Most memory one cleaning pass's offset map takes (Kafka's log.cleaner.dedupe.buffer.size): the keys of a compacted partition's dirty log; more keys are cleaned over several passes [default: 134217728]
    #[arg(long, env = "BROOK_CLEANER_DEDUPE_BYTES")]
    pub cleaner_dedupe_bytes: Option<usize>,
    /// Most bytes per second the cleaner reads plus writes (Kafka's log.cleaner.io.max.bytes.per.second); 0 is unlimited [default: 0]
    #[arg(long, env = "BROOK_CLEANER_IO_BYTES_PER_SEC")]
    pub cleaner_io_bytes_per_sec: Option<u64>,
    /// How long the cleaner sleeps when no compacted partition is due, in ms (Kafka's log.cleaner.backoff.ms) [default: 15000]
    #[arg(long, env = "BROOK_CLEANER_BACKOFF_MS")]
    pub cleaner_backoff_ms: Option<u64>,
    /// Serve the web console (/ui) and its JSON API (/api/v1) on the HTTP port (docs/console.md) [default: true]
    #[arg(long, env = "BROOK_CONSOLE", num_args = 0..=1, default_missing_value = "true")]
    pub console: Option<bool>,
    /// Host names the console's API answers to besides IP addresses and localhost, comma-separated: the names people type in the browser to reach it (a request naming any other host is refused, which defeats DNS rebinding) [default: none]
    #[arg(long, env = "BROOK_CONSOLE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub console_allowed_hosts: Option<Vec<String>>,
    /// How often the web console's history (rates, group lag, queue depths) is sampled, in ms; the last hour is kept, at most 360 points [default: 10000]
    #[arg(long, env = "BROOK_CONSOLE_HISTORY_INTERVAL_MS")]
    pub console_history_interval_ms: Option<u64>,
    /// How long an idempotent producer may stay idle (its newest batch that old) before its state is forgotten, in ms; checked with retention [default: 86400000, 1 day]
    #[arg(long, env = "BROOK_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<u64>,
    /// Default retention of new topics, in ms; -1 keeps forever [default: 604800000, 7 days]
    #[arg(long, env = "BROOK_RETENTION_MS", allow_negative_numbers = true)]
    pub retention_ms: Option<i64>,
    /// Default size limit per partition of new topics; -1 is unlimited [default: -1]
    #[arg(long, env = "BROOK_RETENTION_BYTES", allow_negative_numbers = true)]
    pub retention_bytes: Option<i64>,
    /// Default segment size of new topics [default: 134217728]
    #[arg(long, env = "BROOK_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,
    /// Default segment age before a roll, in ms [default: 604800000]
    #[arg(long, env = "BROOK_SEGMENT_MS")]
    pub segment_ms: Option<u64>,
    /// Default largest record batch of new topics [default: 4194304]
    #[arg(long, env = "BROOK_MAX_BATCH_BYTES")]
    pub max_batch_bytes: Option<u32>,
    /// Default flush policy of new topics: always, never or interval:MS [default: interval:1000]
    #[arg(long, env = "BROOK_FLUSH", value_name = "POLICY", value_parser = check_flush)]
    pub flush: Option<String>,
    /// Shortest session timeout a group member may ask for, in ms [default: 1000]
    #[arg(long, env = "BROOK_GROUP_MIN_SESSION_TIMEOUT_MS")]
    pub group_min_session_timeout_ms: Option<u64>,
    /// Longest session timeout a group member may ask for, in ms [default: 300000]
    #[arg(long, env = "BROOK_GROUP_MAX_SESSION_TIMEOUT_MS")]
    pub group_max_session_timeout_ms: Option<u64>,
    /// PEM certificate (chain) of the broker: with --tls-key, gRPC is served over TLS only
    #[arg(long, env = "BROOK_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "BROOK_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA: clients must present a certificate it signed (mutual TLS)
    #[arg(long, env = "BROOK_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Whether calls must authenticate (a bearer token from --tokens-file, or a client certificate with --tls-client-ca); with `required`, ACLs decide what each principal may do [default: off]
    #[arg(long, env = "BROOK_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// TOML file of principals and their token hashes (`brook token create`); re-read on SIGHUP
    #[arg(long, env = "BROOK_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Principals that no ACL restricts, comma-separated (who manages the ACLs at first)
    #[arg(long, env = "BROOK_SUPER_USERS", value_delimiter = ',')]
    pub super_users: Option<Vec<String>>,
    /// Produce rate of each client (principal, or IP address without --auth), in bytes/s: past it, produce requests wait (Kafka's producer_byte_rate) [default: unlimited]
    #[arg(long, env = "BROOK_QUOTA_PRODUCE_BYTES_PER_SEC")]
    pub quota_produce_bytes_per_sec: Option<u64>,
    /// Fetch rate of each client, in bytes/s: past it, fetch responses and subscription messages wait (Kafka's consumer_byte_rate) [default: unlimited]
    #[arg(long, env = "BROOK_QUOTA_FETCH_BYTES_PER_SEC")]
    pub quota_fetch_bytes_per_sec: Option<u64>,
    /// Whether GET /metrics needs a bearer token from --tokens-file too [default: off]
    #[arg(long, env = "BROOK_METRICS_AUTH", value_enum)]
    pub metrics_auth: Option<AuthMode>,
    /// What to do with a partition that cannot be opened at start (an
    /// unreadable file, a directory where a segment should be) [default: offline]
    #[arg(long, env = "BROOK_ON_OPEN_ERROR", value_enum)]
    pub on_open_error: Option<OpenErrorPolicy>,
    /// Testing aid (a fail point): end every produce stream with UNAVAILABLE
    /// right after appending its Nth batch and before acknowledging it, as a
    /// dropped connection would.
    #[arg(long, env = "BROOK_DEBUG_DROP_STREAM_AFTER", hide = true)]
    #[serde(skip)]
    pub debug_drop_stream_after: Option<u64>,
    /// Testing aid (a fail point): answer the first N FetchCommitted calls
    /// with INTERNAL, as a transient failure would.
    #[arg(long, env = "BROOK_DEBUG_FAIL_FETCH_COMMITTED", hide = true)]
    #[serde(skip)]
    pub debug_fail_fetch_committed: Option<u64>,
    /// Testing aid: wait this long (ms) before recovering the log, to observe the UNAVAILABLE window.
    #[arg(long, env = "BROOK_DEBUG_DELAY_RECOVERY_MS", hide = true)]
    #[serde(skip)]
    pub debug_delay_recovery_ms: Option<u64>,
}

/// `--on-open-error` (and `on_open_error` in the file): storage's
/// [`OnOpenError`] as the words a user types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenErrorPolicy {
    /// Keep the partition offline (its requests get UNAVAILABLE with the
    /// reason) while every other partition serves.
    Offline,
    /// Stop the broker.
    Fail,
}

impl From<OpenErrorPolicy> for OnOpenError {
    fn from(p: OpenErrorPolicy) -> Self {
        match p {
            OpenErrorPolicy::Offline => OnOpenError::Offline,
            OpenErrorPolicy::Fail => OnOpenError::Fail,
        }
    }
}

/// The settings in force, after flags, environment, file and defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where topics live.
    pub data_dir: PathBuf,
    /// gRPC address.
    pub listen: SocketAddr,
    /// Metrics address.
    pub metrics_listen: SocketAddr,
    /// The Kafka-protocol listener's settings.
    pub kafka: KafkaConfig,
    /// gRPC decoding limit.
    pub max_request_bytes: usize,
    /// Long-poll cap.
    pub max_fetch_wait: Duration,
    /// Cap on a fetch's batch bytes.
    pub max_fetch_bytes: u32,
    /// Threads one request's `full` validation may use (0: one per core).
    pub validation_threads: usize,
    /// Cap on open client connections.
    pub max_connections: usize,
    /// Cap on a connection's concurrent streams.
    pub max_streams_per_connection: u32,
    /// Longest a request's handler may take to answer.
    pub request_timeout: Duration,
    /// HTTP/2 ping period (`None`: no pings) and how long a ping may go unanswered.
    pub keepalive: Option<(Duration, Duration)>,
    /// Retention period.
    pub retention_check_interval: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Idle time after which a producer's state is forgotten (ms).
    pub producer_id_expiration_ms: u64,
    /// The log cleaner's memory, I/O rate and backoff.
    pub cleaner: brook_storage::compaction::CleanerOptions,
    /// Whether the HTTP port serves the console and its API.
    pub console: bool,
    /// Host names (lowercase) the console's API answers to besides IP
    /// addresses and localhost.
    pub console_allowed_hosts: Vec<String>,
    /// How often the console's history is sampled.
    pub console_history_interval: Duration,
    /// Settings of new topics' partitions, unless a request overrides them.
    pub topic_defaults: PartitionConfig,
    /// Bounds on a group member's session timeout.
    pub group_min_session_timeout: Duration,
    /// See `group_min_session_timeout`.
    pub group_max_session_timeout: Duration,
    /// TLS certificate and key (PEM contents), and the CA for client certificates.
    pub tls: Option<TlsFiles>,
    /// Authentication and authorization settings.
    pub auth: AuthConfig,
    /// Byte rates of every client (the tokens file may set others per principal).
    pub quotas: Rates,
    /// See [`ServeArgs::on_open_error`].
    pub on_open_error: OnOpenError,
    /// See [`ServeArgs::debug_drop_stream_after`].
    pub debug_drop_stream_after: Option<u64>,
    /// See [`ServeArgs::debug_fail_fetch_committed`].
    pub debug_fail_fetch_committed: u64,
    /// See [`ServeArgs::debug_delay_recovery_ms`].
    pub debug_delay_recovery: Duration,
}

/// The Kafka-protocol listener's settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Where it listens; `None` when turned off.
    pub listen: Option<SocketAddr>,
    /// `host:port` clients are told to connect to; the bound address when unset.
    pub advertised: Option<(String, u16)>,
    /// Whether Metadata creates topics that do not exist.
    pub auto_create_topics: bool,
    /// Partitions of a topic created without a count.
    pub default_partitions: u32,
}

/// Parses `--kafka-listen`: an address, or `off`.
fn parse_kafka_listen(s: &str) -> anyhow::Result<Option<SocketAddr>> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .with_context(|| format!("kafka_listen {s:?} is not an address (IP:PORT) or off"))
}

/// Parses `--kafka-advertised-address` (`host:port`).
fn parse_advertised(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .filter(|(h, _)| !h.is_empty())
        .with_context(|| format!("kafka_advertised_address {s:?} is not HOST:PORT"))?;
    let port = port
        .parse()
        .with_context(|| format!("kafka_advertised_address {s:?}: bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The PEM files of the broker's TLS settings, read at start.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: Vec<u8>,
    /// Its private key.
    pub key: Vec<u8>,
    /// CA that client certificates must chain to (mutual TLS), if any.
    pub client_ca: Option<Vec<u8>>,
}

fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> anyhow::Result<Option<TlsFiles>> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    match (cert, key) {
        (None, None) if client_ca.is_none() => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: read(&cert)?,
            key: read(&key)?,
            client_ca: client_ca.as_deref().map(read).transpose()?,
        })),
        _ => anyhow::bail!("TLS needs both tls_cert and tls_key (tls_client_ca needs them too)"),
    }
}

/// Parses `always`, `never` or `interval:MS`.
pub fn parse_flush(s: &str) -> anyhow::Result<FlushPolicy> {
    match s {
        "always" => Ok(FlushPolicy::Always),
        "never" => Ok(FlushPolicy::Never),
        _ => {
            let ms = s
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .with_context(|| {
                    format!("flush policy {s:?} is not always, never or interval:MS (MS >= 1)")
                })?;
            Ok(FlushPolicy::Interval(Duration::from_millis(ms)))
        }
    }
}

/// Checks a `--flush` value as clap reads it, so that a typo is refused
/// with the accepted forms before the broker opens anything. The text is
/// kept: the file's value goes through [`parse_flush`] the same way.
fn check_flush(s: &str) -> Result<String, String> {
    parse_flush(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn limit(v: i64, what: &str) -> anyhow::Result<Option<u64>> {
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v as u64)),
        v => anyhow::bail!("{what} must be -1 (unlimited) or >= 0, got {v}"),
    }
}

impl ServeArgs {
    /// Fills unset values from the config file, then the defaults, and checks them.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => ServeArgs::default(),
        };
        macro_rules! pick {
            ($field:ident, $default:expr) => {
                self.$field.or(file.$field).unwrap_or($default)
            };
        }
        // Storage's defaults are the topic defaults: one place defines them.
        let storage = PartitionConfig::default();
        let flush = match self.flush.or(file.flush) {
            Some(text) => parse_flush(&text)?,
            None => storage.flush,
        };
        let unlimited = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let topic_defaults = PartitionConfig {
            segment_bytes: pick!(segment_bytes, storage.segment_bytes),
            segment_ms: pick!(segment_ms, storage.segment_ms),
            retention_ms: limit(
                pick!(retention_ms, unlimited(storage.retention_ms)),
                "retention_ms",
            )?,
            retention_bytes: limit(
                pick!(retention_bytes, unlimited(storage.retention_bytes)),
                "retention_bytes",
            )?,
            max_batch_bytes: pick!(max_batch_bytes, storage.max_batch_bytes),
            flush,
            ..PartitionConfig::default()
        };
        topic_defaults.validate().context("topic defaults")?;
        let config = ServeConfig {
            data_dir: pick!(data_dir, PathBuf::from("./brook-data")),
            listen: pick!(listen, SocketAddr::from(([127, 0, 0, 1], 9292))),
            metrics_listen: pick!(metrics_listen, SocketAddr::from(([127, 0, 0, 1], 9293))),
            kafka: KafkaConfig {
                listen: parse_kafka_listen(&pick!(kafka_listen, "127.0.0.1:9092".to_string()))?,
                advertised: self
                    .kafka_advertised_address
                    .or(file.kafka_advertised_address)
                    .as_deref()
                    .map(parse_advertised)
                    .transpose()?,
                auto_create_topics: pick!(auto_create_topics, false),
                default_partitions: pick!(default_partitions, 1),
            },
            max_request_bytes: pick!(max_request_bytes, 16 << 20),
            max_fetch_wait: Duration::from_millis(pick!(max_fetch_wait_ms, 30_000)),
            request_timeout: Duration::from_millis(pick!(request_timeout_ms, 60_000)),
            max_fetch_bytes: pick!(max_fetch_bytes, 4 << 20).max(1),
            validation_threads: pick!(validation_threads, 0),
            max_connections: pick!(max_connections, 10_000).max(1),
            max_streams_per_connection: pick!(max_streams_per_connection, 1000).max(1),
            keepalive: match pick!(keepalive_interval_ms, 30_000) {
                0 => None,
                every => Some((
                    Duration::from_millis(every),
                    Duration::from_millis(pick!(keepalive_timeout_ms, 20_000).max(1)),
                )),
            },
            retention_check_interval: Duration::from_millis(
                pick!(retention_check_interval_ms, 300_000).max(1),
            ),
            shutdown_timeout: Duration::from_millis(pick!(shutdown_timeout_ms, 20_000)),
            producer_id_expiration_ms: pick!(producer_id_expiration_ms, 86_400_000),
            console: pick!(console, true),
            console_allowed_hosts: self
                .console_allowed_hosts
                .or(file.console_allowed_hosts)
                .unwrap_or_default()
                .into_iter()
                // As the API compares them: no port, no trailing dot.
                .map(|s| crate::console::host_name(s.trim()).to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            console_history_interval: Duration::from_millis(
                pick!(console_history_interval_ms, 10_000).max(100),
            ),
            cleaner: brook_storage::compaction::CleanerOptions {
                map_bytes: pick!(cleaner_dedupe_bytes, 128 << 20).max(1 << 10),
                io_bytes_per_sec: pick!(cleaner_io_bytes_per_sec, 0),
                backoff: Duration::from_millis(pick!(cleaner_backoff_ms, 15_000).max(1)),
            },
            group_min_session_timeout: Duration::from_millis(pick!(
                group_min_session_timeout_ms,
                1000
            )),
            group_max_session_timeout: Duration::from_millis(pick!(
                group_max_session_timeout_ms,
                300_000
            )),
            tls: tls_files(
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
                self.tls_client_ca.or(file.tls_client_ca),
            )?,
            auth: AuthConfig {
                mode: pick!(auth, AuthMode::Off),
                tokens_file: self.tokens_file.or(file.tokens_file),
                super_users: self
                    .super_users
                    .or(file.super_users)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                metrics_auth: pick!(metrics_auth, AuthMode::Off),
            },
            quotas: Rates {
                produce_bytes_per_sec: self
                    .quota_produce_bytes_per_sec
                    .or(file.quota_produce_bytes_per_sec),
                fetch_bytes_per_sec: self
                    .quota_fetch_bytes_per_sec
                    .or(file.quota_fetch_bytes_per_sec),
            },
            on_open_error: pick!(on_open_error, OpenErrorPolicy::Offline).into(),
            debug_drop_stream_after: self.debug_drop_stream_after,
            debug_fail_fetch_committed: self.debug_fail_fetch_committed.unwrap_or(0),
            debug_delay_recovery: Duration::from_millis(self.debug_delay_recovery_ms.unwrap_or(0)),
            topic_defaults,
        };
        anyhow::ensure!(
            (1..=10_000).contains(&config.kafka.default_partitions),
            "default_partitions must be 1..=10000, got {}",
            config.kafka.default_partitions
        );
        anyhow::ensure!(
            config.group_min_session_timeout <= config.group_max_session_timeout,
            "group_min_session_timeout_ms must not exceed group_max_session_timeout_ms"
        );
        anyhow::ensure!(
            config.max_request_bytes > config.topic_defaults.max_batch_bytes as usize,
            "max_request_bytes ({}) must exceed max_batch_bytes ({})",
            config.max_request_bytes,
            config.topic_defaults.max_batch_bytes
        );
        anyhow::ensure!(
            config.request_timeout > config.max_fetch_wait,
            "request_timeout_ms ({}) must exceed max_fetch_wait_ms ({}): a long poll must end by its own wait",
            config.request_timeout.as_millis(),
            config.max_fetch_wait.as_millis()
        );
        config
            .quotas
            .check()
            .map_err(|e| anyhow::anyhow!("--quota-*-bytes-per-sec: {e}"))?;
        let auth = &config.auth;
        let client_certs = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        anyhow::ensure!(
            auth.mode == AuthMode::Off || auth.tokens_file.is_some() || client_certs,
            "--auth required needs a way to authenticate: --tokens-file, or --tls-client-ca for client certificates"
        );
        anyhow::ensure!(
            auth.metrics_auth == AuthMode::Off || auth.tokens_file.is_some(),
            "--metrics-auth required needs --tokens-file (scrapers send a bearer token)"
        );
        Ok(config)
    }
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The topic defaults are storage's, and `--help` states them.
    #[test]
    fn topic_defaults_are_storages_and_the_help_says_so() {
        let c = ServeArgs::default().resolve().unwrap();
        let storage = PartitionConfig::default();
        assert_eq!(c.topic_defaults, storage);
        let help = |id: &str| {
            let cmd = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_help().unwrap().to_string()
        };
        for (id, default) in [
            ("segment_bytes", storage.segment_bytes.to_string()),
            ("segment_ms", storage.segment_ms.to_string()),
            ("max_batch_bytes", storage.max_batch_bytes.to_string()),
            ("retention_ms", storage.retention_ms.unwrap().to_string()),
            ("retention_bytes", "-1".to_string()),
            ("flush", "interval:1000".to_string()),
        ] {
            assert!(
                help(id).contains(&format!("[default: {default}")),
                "--{id} help must state storage's default {default}: {}",
                help(id)
            );
        }
        assert_eq!(
            storage.flush,
            FlushPolicy::Interval(Duration::from_millis(1000))
        );
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brook.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nsegment_bytes = 1048576\nflush = \"always\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            data_dir: Some("/from/flag".into()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.topic_defaults.segment_bytes, 1 << 20);
        assert_eq!(c.topic_defaults.flush, FlushPolicy::Always);
        assert_eq!(c.listen.port(), 9292);
    }

    #[test]
    fn tls_files_may_come_from_flags_and_the_file_together() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("cert.pem", "CERT"), ("key.pem", "KEY"), ("ca.pem", "CA")] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let path = dir.path().join("brook.toml");
        let toml = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            dir.path().join("cert.pem"),
            dir.path().join("key.pem")
        );
        std::fs::write(&path, toml).unwrap();
        let c = ServeArgs {
            config: Some(path),
            tls_client_ca: Some(dir.path().join("ca.pem")),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let tls = c.tls.expect("TLS is on");
        assert_eq!((&tls.cert[..], &tls.key[..]), (&b"CERT"[..], &b"KEY"[..]));
        assert_eq!(tls.client_ca.as_deref(), Some(&b"CA"[..]));

        let half = ServeArgs {
            tls_cert: Some(dir.path().join("cert.pem")),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{half:#}").contains("tls_key"), "{half:#}");
        let missing = ServeArgs {
            tls_cert: Some(dir.path().join("nope.pem")),
            tls_key: Some(dir.path().join("key.pem")),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{missing:#}").contains("nope.pem"), "{missing:#}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = ServeArgs {
            flush: Some("sometimes".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("sometimes"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brook.toml");
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        let err = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("no_such_key"));
        std::fs::write(&path, "on_open_error = \"retry\"\n").unwrap();
        let err = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("retry"), "{err:#}");
        std::fs::write(&path, "on_open_error = \"fail\"\n").unwrap();
        let c = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.on_open_error, OnOpenError::Fail);
        assert_eq!(
            parse_flush("interval:250").unwrap(),
            FlushPolicy::Interval(Duration::from_millis(250))
        );
    }
}
