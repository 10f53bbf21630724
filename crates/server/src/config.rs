//! Everything the service can be told, with explicit limits.

use std::net::SocketAddr;
use std::path::PathBuf;

use deconflict_engine::EngineConfig;
use deconflict_hotline::HotlineConfig;
use deconflict_store::{Database, StoreConfig};

/// Limits on what callers may ask, each explicit and configurable (the
/// command line exposes each as a flag). Exceeding one is a 4xx that says
/// which limit, never a 5xx.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLimits {
    /// Request bodies above this are refused with 413.
    pub max_body_bytes: usize,
    /// Bytes of an oversized body read and discarded before the 413 is
    /// sent (at most, and for at most `body_drain_ms`): a client still
    /// sending then reads the answer instead of a reset. A body that runs
    /// past `max_body_bytes + body_drain_bytes` is answered 413 at once
    /// and its connection closed with the rest unread.
    pub body_drain_bytes: usize,
    /// How long reading an oversized body's rest may take at most.
    pub body_drain_ms: u64,
    /// Activities one party may hold at once (live, not cancelled or ended).
    pub max_activities_per_party: usize,
    /// Sustained requests per second per token; bursts up to `rate_burst`.
    pub rate_per_s: f64,
    pub rate_burst: f64,
    /// Concurrent `/v1/events` and `/v1/ws` streams, all parties together
    /// (beyond: 503).
    pub max_subscribers: usize,
    /// Concurrent streams of one party (beyond: 429), so that one party
    /// cannot take every slot.
    pub max_subscribers_per_party: usize,
    /// Open HTTP connections (each event stream holds one); beyond it a new
    /// connection is answered 503 and closed. `deconflict serve` raises its
    /// open-file limit to the hard limit and warns when that is below it.
    pub max_connections: usize,
    /// Largest message (and frame) a `/v1/ws` client may send; a larger one
    /// ends its stream. Clients only send Close and pings, so this stays
    /// small: tungstenite's own default (64 MiB) would let any client make
    /// the server buffer that much.
    pub ws_max_message_bytes: usize,
    /// Events waiting for one slow subscriber; beyond it events are dropped
    /// and the subscriber is told with a `lagged` event. The default, 4,096,
    /// holds the bursts seen at 100,000 tracked entities (the latency bench:
    /// 1,024 lagged 0.4–18k events in 10 s, 4,096 none; crates/server/NOTES.md,
    /// live-s22); an entry is a shared encoding's pointer, ~160 KiB full.
    pub subscriber_queue: usize,
    /// Features in one `GET /v1/activities` page at most.
    pub max_list: usize,
    /// Entries in one `GET /v1/log/entries` answer at most.
    pub max_log_entries: u64,
    /// Commands waiting for the driver; beyond it the service answers 503.
    pub max_pending_commands: usize,
    /// Commands the driver folds into one batch (one transaction, one fsync).
    pub max_batch: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            body_drain_bytes: 1 << 20,
            body_drain_ms: 1_000,
            max_activities_per_party: 100_000,
            rate_per_s: 1_000.0,
            rate_burst: 2_000.0,
            max_subscribers: 10_000,
            max_subscribers_per_party: 1_000,
            max_connections: 12_000,
            ws_max_message_bytes: 64 * 1024,
            subscriber_queue: 4_096,
            max_list: 10_000,
            max_log_entries: 1_000,
            max_pending_commands: 20_000,
            max_batch: 1_024,
        }
    }
}

/// The service's configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `admin.token`, `log.key`, the TAK CA and (by default) the
    /// SQLite database.
    pub data_dir: PathBuf,
    /// Where the service's rows live: SQLite in the data directory by
    /// default, or a PostgreSQL server (`--database-url`).
    pub database: Database,
    pub listen: SocketAddr,
    /// The audit log's name: the checkpoint origin and the key name.
    pub log_name: String,
    pub limits: ServiceLimits,
    pub engine: EngineConfig,
    pub store: StoreConfig,
    /// How often ended activities are let go (and their conflicts resolved).
    pub tick_interval_ms: u64,
    /// How often each node reads the log head of a PostgreSQL database
    /// several `serve` processes share, to publish what the others
    /// appended to its streams (`--poll-interval-ms`, within
    /// [`crate::multinode::MIN_POLL_INTERVAL_MS`]..=
    /// [`crate::multinode::MAX_POLL_INTERVAL_MS`]).
    pub poll_interval_ms: u64,
    /// Catch-ups in a row (other nodes committing first) after which a
    /// node refuses its waiting commands with 503 (`--max-redos`).
    pub max_redos: u32,
    /// The hotline's deadlines, retries and limits (issue 5).
    pub hotline: HotlineConfig,
    /// Committed batches of hotline actions (deliveries, notifications,
    /// webhook calls) waiting to be performed; beyond it a batch is dropped
    /// and counted (webhook calls then time out and are retried).
    pub hotline_action_queue: usize,
    /// Live tracks: thresholds, limits, TAK listeners' limits.
    pub live: crate::live::LiveConfig,
    /// HTTPS instead of HTTP on the listening port (`--tls-cert`,
    /// `--tls-key`); with it every answer carries HSTS.
    pub tls: Option<crate::tls::TlsFiles>,
    pub tls_limits: crate::tls::TlsLimits,
    /// Browser origins allowed to call the API from another origin (CORS,
    /// `--cors-origin`), each `scheme://host[:port]` as
    /// [`crate::routes::security::parse_origin`] checks it. Empty: no CORS
    /// header is ever sent, so browsers keep other origins out.
    pub cors_origins: Vec<axum::http::HeaderValue>,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            database: Database::Sqlite(data_dir.join("deconflict.sqlite")),
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_name: "deconflict.local/log".to_owned(),
            limits: ServiceLimits::default(),
            engine: EngineConfig::default(),
            // Every answer builds its receipt on a read connection; keep
            // enough open that concurrent requests do not reopen SQLite.
            store: StoreConfig {
                readers: 32,
                ..StoreConfig::default()
            },
            tick_interval_ms: 1_000,
            poll_interval_ms: crate::multinode::DEFAULT_POLL_INTERVAL_MS,
            max_redos: crate::multinode::DEFAULT_MAX_REDOS,
            hotline: HotlineConfig::default(),
            hotline_action_queue: 4_096,
            live: crate::live::LiveConfig::default(),
            tls: None,
            tls_limits: crate::tls::TlsLimits::default(),
            cors_origins: Vec::new(),
        }
    }
}
