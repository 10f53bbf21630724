//! `deconflict serve`: the service on embedded SQLite, or on PostgreSQL
//! with `--database-url`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use deconflict_server::{AppState, ServerConfig};
use reqwest::header::HeaderValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every flag also reads `DECONFLICT_<FLAG>` from the environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory: `admin.token`, `log.key`, the TAK CA and (without
    /// --database-url) the SQLite database.
    #[arg(long, env = "DECONFLICT_DATA", default_value = "./deconflict-data")]
    data: PathBuf,
    /// Keep the service's rows in this PostgreSQL database instead of
    /// SQLite: `postgres://user[:password]@host[:port]/dbname` or
    /// `host=… dbname=…`. No TLS: the database must be on this host
    /// (loopback or a Unix socket). Migrated at start.
    #[arg(long, env = "DECONFLICT_DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, env = "DECONFLICT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, env = "DECONFLICT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The audit log's name (checkpoint origin and key name); fixed at first start.
    #[arg(long, env = "DECONFLICT_LOG_NAME", default_value = "deconflict.local/log")]
    log_name: String,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, env = "DECONFLICT_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Bytes of an oversized body read (and discarded) before answering
    /// 413, so that a client still sending reads the answer; a longer body's
    /// connection is closed with the rest unread.
    #[arg(long, env = "DECONFLICT_BODY_DRAIN_BYTES", default_value_t = 1 << 20)]
    body_drain_bytes: usize,
    /// How long reading an oversized body's rest may take at most.
    #[arg(long, env = "DECONFLICT_BODY_DRAIN_MS", default_value_t = 1_000)]
    body_drain_ms: u64,
    /// Largest message a `/v1/ws` client may send (larger: its stream ends).
    /// At least 125, the largest ping a WebSocket client may send.
    #[arg(long, env = "DECONFLICT_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(125..))]
    ws_max_message_bytes: usize,
    /// Positions in one footprint, all rings counted.
    #[arg(long, env = "DECONFLICT_MAX_VERTICES", default_value_t = 2_000)]
    max_vertices: usize,
    /// Live activities one party may hold.
    #[arg(long, env = "DECONFLICT_MAX_ACTIVITIES_PER_PARTY", default_value_t = 100_000)]
    max_activities_per_party: usize,
    /// Activities the service holds in all.
    #[arg(long, env = "DECONFLICT_MAX_ACTIVITIES", default_value_t = 2_000_000)]
    max_activities: usize,
    /// Sustained requests per second per token (beyond: 429).
    #[arg(long, env = "DECONFLICT_RATE_PER_S", default_value_t = 1_000.0)]
    rate_per_s: f64,
    /// Requests one token may send in a burst.
    #[arg(long, env = "DECONFLICT_RATE_BURST", default_value_t = 2_000.0)]
    rate_burst: f64,
    /// Concurrent `/v1/events` and `/v1/ws` streams, all parties (beyond: 503).
    #[arg(long, env = "DECONFLICT_MAX_SUBSCRIBERS", default_value_t = 10_000)]
    max_subscribers: usize,
    /// Concurrent event streams of one party (beyond: 429).
    #[arg(long, env = "DECONFLICT_MAX_SUBSCRIBERS_PER_PARTY", default_value_t = 1_000)]
    max_subscribers_per_party: usize,
    /// Open HTTP connections (beyond: 503 and closed); each event stream holds one.
    #[arg(long, env = "DECONFLICT_MAX_CONNECTIONS", default_value_t = 12_000)]
    max_connections: usize,
    /// Events queued for one slow subscriber before it lags.
    #[arg(long, env = "DECONFLICT_SUBSCRIBER_QUEUE", default_value_t = 4_096)]
    subscriber_queue: usize,
    /// Commands waiting for the driver (beyond: 503).
    #[arg(long, env = "DECONFLICT_MAX_PENDING_COMMANDS", default_value_t = 20_000)]
    max_pending_commands: usize,
    /// Commands committed together at most.
    #[arg(long, env = "DECONFLICT_MAX_BATCH", default_value_t = 1_024)]
    max_batch: usize,
    /// Writes waiting for the store's writer thread (beyond: the write is
    /// refused with 503 rather than queued without bound).
    #[arg(long, env = "DECONFLICT_STORE_MAX_PENDING_WRITES", default_value_t = 10_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    store_max_pending_writes: usize,
    /// Read connections the store keeps open (receipts, lists, gets).
    #[arg(long, env = "DECONFLICT_STORE_READERS", default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_024))]
    store_readers: usize,
    /// SQLite: how long a reader waits for a lock before giving up, ms.
    #[arg(long, env = "DECONFLICT_SQLITE_BUSY_TIMEOUT_MS", default_value_t = 5_000)]
    sqlite_busy_timeout_ms: u64,
    /// SQLite: the writer connection's page cache, KiB (grows up to it).
    #[arg(long, env = "DECONFLICT_SQLITE_CACHE_KIB", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(64..))]
    sqlite_cache_kib: u32,
    /// SQLite: WAL pages after which the checkpointer thread copies the WAL
    /// back into the database (every commit still syncs the WAL). Pages are
    /// 16 KiB in a database created since 16 KiB pages (4,096 = 64 MiB),
    /// 4 KiB in an older one (16 MiB).
    #[arg(long, env = "DECONFLICT_SQLITE_WAL_AUTOCHECKPOINT_PAGES", default_value_t = 4_096,
          value_parser = clap::value_parser!(u32).range(1..))]
    sqlite_wal_autocheckpoint_pages: u32,
    /// SQLite: WAL pages after which the writer checkpoints itself, the
    /// bound on the WAL's length when the checkpointer falls behind
    /// (16,384 pages: 256 MiB of 16 KiB pages, 64 MiB of 4 KiB ones).
    #[arg(long, env = "DECONFLICT_SQLITE_WAL_MAX_PAGES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(1..))]
    sqlite_wal_max_pages: u32,
    /// Several `serve` processes on one PostgreSQL database: how often each
    /// reads the log head to publish what the others appended to its event
    /// streams (10 ms to 60 s).
    #[arg(long, env = "DECONFLICT_POLL_INTERVAL_MS", default_value_t = deconflict_server::multinode::DEFAULT_POLL_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(
              deconflict_server::multinode::MIN_POLL_INTERVAL_MS..=deconflict_server::multinode::MAX_POLL_INTERVAL_MS))]
    poll_interval_ms: u64,
    /// Several `serve` processes on one PostgreSQL database: times in a row
    /// other nodes may commit first before this node refuses its waiting
    /// writes with 503 (each time it catches up and redoes them).
    #[arg(long, env = "DECONFLICT_MAX_REDOS", default_value_t = deconflict_server::multinode::DEFAULT_MAX_REDOS)]
    max_redos: u32,
    /// Features in one `GET /v1/activities` page.
    #[arg(long, env = "DECONFLICT_MAX_LIST", default_value_t = 10_000)]
    max_list: usize,
    /// Entries in one `GET /v1/log/entries` answer.
    #[arg(long, env = "DECONFLICT_MAX_LOG_ENTRIES", default_value_t = 1_000)]
    max_log_entries: u64,
    /// Default acknowledgement deadline of a flash message, seconds.
    #[arg(long, env = "DECONFLICT_HOTLINE_FLASH_ACK_S", default_value_t = 60)]
    hotline_flash_ack_s: u32,
    /// Default acknowledgement deadline of a priority message, seconds.
    #[arg(long, env = "DECONFLICT_HOTLINE_PRIORITY_ACK_S", default_value_t = 300)]
    hotline_priority_ack_s: u32,
    /// Default acknowledgement deadline of a routine message, seconds (0: none).
    #[arg(long, env = "DECONFLICT_HOTLINE_ROUTINE_ACK_S", default_value_t = 0)]
    hotline_routine_ack_s: u32,
    /// Deadline for every party to acknowledge a new conflict, seconds.
    #[arg(long, env = "DECONFLICT_HOTLINE_CONFLICT_ACK_S", default_value_t = 900)]
    hotline_conflict_ack_s: u32,
    /// Flash messages are repeated to TAK every this many seconds.
    #[arg(long, env = "DECONFLICT_HOTLINE_FLASH_REPEAT_S", default_value_t = 30)]
    hotline_flash_repeat_s: u32,
    /// First webhook retry wait, seconds (doubles each failure).
    #[arg(long, env = "DECONFLICT_HOTLINE_RETRY_BASE_S", default_value_t = 5)]
    hotline_retry_base_s: u32,
    /// Longest webhook retry wait, seconds.
    #[arg(long, env = "DECONFLICT_HOTLINE_RETRY_CAP_S", default_value_t = 300)]
    hotline_retry_cap_s: u32,
    /// Webhook attempts per ladder step, the first included.
    #[arg(long, env = "DECONFLICT_HOTLINE_RETRY_ATTEMPTS", default_value_t = 5)]
    hotline_retry_attempts: u32,
    /// A webhook call without an answer within this counts as failed, seconds.
    #[arg(long, env = "DECONFLICT_HOTLINE_WEBHOOK_TIMEOUT_S", default_value_t = 30)]
    hotline_webhook_timeout_s: u32,
    /// Longest hotline message body, bytes.
    #[arg(long, env = "DECONFLICT_HOTLINE_MAX_BODY_BYTES", default_value_t = 4_096)]
    hotline_max_body_bytes: usize,
    /// Committed batches of hotline actions waiting to be performed.
    #[arg(long, env = "DECONFLICT_HOTLINE_ACTION_QUEUE", default_value_t = 4_096)]
    hotline_action_queue: usize,
    /// Cursor-on-Target over TLS with client certificates from the CA in
    /// DIR/tak (the TAK convention: port 8089), e.g. 0.0.0.0:8089.
    #[arg(long, env = "DECONFLICT_COT_LISTEN")]
    cot_listen: Option<SocketAddr>,
    /// Names (DNS or IP) the TLS listener's certificate is valid for,
    /// besides localhost; repeat or separate with commas.
    #[arg(long, env = "DECONFLICT_COT_SERVER_NAME", value_delimiter = ',')]
    cot_server_name: Vec<String>,
    /// Plain-TCP CoT on a loopback address, for a gateway on this machine:
    /// everything received there is a report of --cot-plain-party.
    #[arg(long, env = "DECONFLICT_COT_PLAIN_LISTEN", requires = "cot_plain_party")]
    cot_plain_listen: Option<SocketAddr>,
    /// The party the plain-TCP listener speaks for.
    #[arg(long, env = "DECONFLICT_COT_PLAIN_PARTY", requires = "cot_plain_listen")]
    cot_plain_party: Option<u64>,
    /// Open CoT connections, all parties together (beyond: closed on accept).
    #[arg(long, env = "DECONFLICT_COT_MAX_CONNECTIONS", default_value_t = 1_024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    cot_max_connections: usize,
    /// Open CoT connections of one party (beyond: closed after the handshake).
    #[arg(long, env = "DECONFLICT_COT_MAX_CONNECTIONS_PER_PARTY", default_value_t = 64,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    cot_max_connections_per_party: usize,
    /// CoT alarms waiting to be written to one TAK connection; past it an
    /// episode's alarm replaces its queued one, any other is dropped and the
    /// client told how many it missed.
    #[arg(long, env = "DECONFLICT_COT_OUTBOUND_QUEUE", default_value_t = 4_096,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    cot_outbound_queue: usize,
    /// A CoT connection that sends nothing for this long is closed, s.
    #[arg(long, env = "DECONFLICT_COT_READ_IDLE_TIMEOUT_S", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    cot_read_idle_timeout_s: u64,
    /// The time a TAK client has to complete the TLS handshake, s.
    #[arg(long, env = "DECONFLICT_COT_HANDSHAKE_TIMEOUT_S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    cot_handshake_timeout_s: u64,
    /// Live entities one party may have at once.
    #[arg(long, env = "DECONFLICT_MAX_ENTITIES_PER_PARTY", default_value_t = 100_000)]
    max_entities_per_party: usize,
    /// Position reports in one `POST /v1/tracks` (beyond: 413).
    #[arg(long, env = "DECONFLICT_MAX_REPORTS_PER_REQUEST", default_value_t = 1_000)]
    max_reports_per_request: usize,
    /// A request's reports are taken in parts of this many, each part's
    /// alerts published before the next (1: one at a time; smaller parts
    /// cost the track thread more per report).
    #[arg(long, env = "DECONFLICT_PUBLISH_EVERY_REPORTS", default_value_t = deconflict_server::live::DEFAULT_PUBLISH_EVERY_REPORTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    publish_every_reports: usize,
    /// Reports of queued track commands (requests, CoT batches) taken
    /// together in one pass of the track thread at most: whole commands;
    /// 0 takes each command alone (more CPU per report under load).
    #[arg(long, env = "DECONFLICT_TRACK_GROUP_MAX_REPORTS", default_value_t = deconflict_server::live::task::MAX_COALESCED_REPORTS)]
    track_group_max_reports: usize,
    /// Track commands waiting for the track thread (beyond: 503).
    #[arg(long, env = "DECONFLICT_MAX_PENDING_TRACKS", default_value_t = 4_096)]
    max_pending_tracks: usize,
    /// CoT events per second one TAK connection may send (the excess is dropped and counted).
    #[arg(long, env = "DECONFLICT_COT_EVENTS_PER_S", default_value_t = 50.0)]
    cot_events_per_s: f64,
    /// Incident evidence: the track history kept from this many seconds
    /// before an incident's time to as many after it.
    #[arg(long, env = "DECONFLICT_INCIDENT_EVIDENCE_WINDOW_S", default_value_t = 600)]
    incident_evidence_window_s: u32,
    /// Incident evidence: units of the incident's parties that report within
    /// this many metres of its place in the window are involved.
    #[arg(
        long,
        env = "DECONFLICT_INCIDENT_EVIDENCE_RADIUS_M",
        default_value_t = 5_000.0
    )]
    incident_evidence_radius_m: f64,
    /// Incident evidence: positions one incident keeps at most (beyond: `truncated`).
    #[arg(
        long,
        env = "DECONFLICT_INCIDENT_EVIDENCE_MAX_POINTS",
        default_value_t = 200_000
    )]
    incident_evidence_max_points: usize,
    /// Recent track history (the source of incident evidence): seconds kept
    /// back from each unit's newest report. Keep it at least the evidence window.
    #[arg(long, env = "DECONFLICT_TRACK_HISTORY_AGE_S", default_value_t = 600)]
    track_history_age_s: u32,
    /// Recent track history: positions one unit keeps at most.
    #[arg(long, env = "DECONFLICT_TRACK_HISTORY_PER_ENTITY", default_value_t = 600)]
    track_history_per_entity: usize,
    /// Recent track history: positions all units keep together at most
    /// (beyond: the oldest of all go first).
    #[arg(long, env = "DECONFLICT_TRACK_HISTORY_TOTAL", default_value_t = 1_000_000)]
    track_history_total: usize,
    /// Serve HTTPS only, with this certificate chain (PEM, server
    /// certificate first); needs --tls-key. Answers then carry HSTS.
    #[arg(long, env = "DECONFLICT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "DECONFLICT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A browser origin (scheme://host[:port]) allowed to call the API from
    /// its pages (CORS); repeat or separate with commas. None: CORS off.
    #[arg(long, env = "DECONFLICT_CORS_ORIGIN", value_delimiter = ',',
          value_parser = deconflict_server::routes::security::parse_origin)]
    cors_origin: Vec<HeaderValue>,
}

impl ServeArgs {
    fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(&self.data);
        if let Some(url) = &self.database_url {
            config.database = deconflict_server::Database::Postgres(url.clone());
        }
        config.listen = self.listen;
        config.log_name.clone_from(&self.log_name);
        let limits = &mut config.limits;
        limits.max_body_bytes = self.max_body_bytes;
        limits.body_drain_bytes = self.body_drain_bytes;
        limits.body_drain_ms = self.body_drain_ms;
        limits.max_activities_per_party = self.max_activities_per_party;
        limits.rate_per_s = self.rate_per_s;
        limits.rate_burst = self.rate_burst;
        limits.max_subscribers = self.max_subscribers;
        limits.max_subscribers_per_party = self.max_subscribers_per_party;
        limits.max_connections = self.max_connections;
        limits.subscriber_queue = self.subscriber_queue;
        limits.ws_max_message_bytes = self.ws_max_message_bytes;
        limits.max_pending_commands = self.max_pending_commands;
        limits.max_batch = self.max_batch;
        let store = &mut config.store;
        store.max_pending_writes = self.store_max_pending_writes;
        store.readers = self.store_readers;
        store.busy_timeout_ms = self.sqlite_busy_timeout_ms;
        store.writer_cache_kib = self.sqlite_cache_kib;
        store.wal_autocheckpoint_pages = self.sqlite_wal_autocheckpoint_pages;
        store.wal_max_pages = self.sqlite_wal_max_pages;
        config.poll_interval_ms = self.poll_interval_ms;
        config.max_redos = self.max_redos;
        limits.max_list = self.max_list;
        limits.max_log_entries = self.max_log_entries;
        config.engine.limits.max_vertices = self.max_vertices;
        config.engine.max_activities = self.max_activities;
        let hotline = &mut config.hotline;
        hotline.ack_within.flash_s = Some(self.hotline_flash_ack_s);
        hotline.ack_within.priority_s = Some(self.hotline_priority_ack_s);
        hotline.ack_within.routine_s = (self.hotline_routine_ack_s > 0).then_some(self.hotline_routine_ack_s);
        hotline.conflict_ack_within_s = self.hotline_conflict_ack_s;
        hotline.flash_repeat_every_s = self.hotline_flash_repeat_s;
        hotline.retry.base_s = self.hotline_retry_base_s;
        hotline.retry.cap_s = self.hotline_retry_cap_s;
        hotline.retry.max_attempts = self.hotline_retry_attempts;
        hotline.webhook_timeout_s = self.hotline_webhook_timeout_s;
        hotline.limits.max_body_bytes = self.hotline_max_body_bytes;
        config.hotline_action_queue = self.hotline_action_queue;
        config.live.track.max_entities_per_party = self.max_entities_per_party;
        config.live.max_reports_per_request = self.max_reports_per_request;
        config.live.publish_every_reports = self.publish_every_reports;
        config.live.group_max_reports = self.track_group_max_reports;
        config.live.max_pending = self.max_pending_tracks;
        config.live.cot_events_per_s = self.cot_events_per_s;
        let tak = &mut config.live.tak;
        tak.max_connections = self.cot_max_connections;
        tak.max_connections_per_party = self.cot_max_connections_per_party;
        tak.outbound_queue_len = self.cot_outbound_queue;
        tak.read_idle_timeout = std::time::Duration::from_secs(self.cot_read_idle_timeout_s);
        tak.handshake_timeout = std::time::Duration::from_secs(self.cot_handshake_timeout_s);
        config.hotline.evidence_before_s = self.incident_evidence_window_s;
        config.hotline.evidence_after_s = self.incident_evidence_window_s;
        config.live.evidence.radius_m = self.incident_evidence_radius_m;
        config.live.evidence.max_points_per_incident = self.incident_evidence_max_points;
        config.live.history.retention_ms = i64::from(self.track_history_age_s) * 1000;
        config.live.history.max_points_per_entity = self.track_history_per_entity;
        config.live.history.max_points_total = self.track_history_total;
        config.tls = self
            .tls_cert
            .clone()
            .zip(self.tls_key.clone())
            .map(|(cert, key)| deconflict_server::tls::TlsFiles { cert, key });
        config.cors_origins.clone_from(&self.cors_origin);
        config
    }
}

/// Descriptors the service holds besides its HTTP connections: SQLite's
/// files per connection (database, WAL, shared memory), the listeners, the
/// TAK connections' own limit aside.
const OTHER_DESCRIPTORS: u64 = 512;

/// Each event stream holds a connection, and the usual soft limit on open
/// files (1,024) is far below `--max-connections`: raise it to the hard
/// limit, as any process may, and warn when even that is too low (then
/// `accept` fails with EMFILE before the limit answers 503).
fn raise_open_file_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "cannot raise the open-file limit to its hard limit");
        }
    }
    let needed = max_connections as u64 + OTHER_DESCRIPTORS;
    if let Some(open_files) = getrlimit(Resource::Nofile).current {
        if open_files < needed {
            tracing::warn!(
                open_files,
                needed,
                "the open-file limit is below --max-connections plus {OTHER_DESCRIPTORS}: lower --max-connections or raise the hard limit (ulimit -Hn)"
            );
        }
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DECONFLICT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let config = args.config();
    raise_open_file_limit(config.limits.max_connections);
    // Bad TLS files stop the start with the file named, before the data
    // directory is opened or the port taken.
    if let Some(files) = &config.tls {
        deconflict_server::tls::server_config(files)?;
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let cot_tls = args.cot_listen;
    let cot_plain = args.cot_plain_listen.zip(args.cot_plain_party);
    let cot_names = args.cot_server_name.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let data = config.data_dir.clone();
        let (state, opened) = tokio::task::spawn_blocking(move || AppState::open(config))
            .await?
            .with_context(|| format!("cannot open the data directory {}", data.display()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        if opened.created_admin_token {
            println!(
                "admin token created: {} (mode 0600)",
                opened.admin_token_path.display()
            );
        } else {
            println!("admin token: {}", opened.admin_token_path.display());
        }
        println!("listening on {scheme}://{address}");
        let mut cot_listeners = Vec::new();
        if let Some(addr) = cot_tls {
            let cot = state
                .live
                .listen_cot(addr, None, &cot_names)
                .await
                .with_context(|| format!("cannot start the CoT listener on {addr}"))?;
            println!("CoT over TLS (client certificates) on {}", cot.local_addr());
            cot_listeners.push(cot);
        }
        if let Some((addr, party)) = cot_plain {
            let cot = state
                .live
                .listen_cot(addr, Some(deconflict_engine::PartyId(party)), &[])
                .await
                .with_context(|| format!("cannot start the plain CoT listener on {addr}"))?;
            println!("CoT over plain TCP for party {party} on {}", cot.local_addr());
            cot_listeners.push(cot);
        }
        tracing::info!(%address, data = %data.display(), "serving");
        let stopping = state.clone();
        deconflict_server::serve(listener, state, async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("stopping: finishing accepted requests");
        })
        .await?;
        for cot in cot_listeners {
            cot.shutdown().await;
        }
        tokio::task::spawn_blocking(move || stopping.driver.stop()).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(args: &[&str]) -> ServerConfig {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap()
            .serve
            .config()
    }

    #[test]
    fn evidence_and_history_flags_reach_the_config() {
        let defaults = config(&[]);
        assert_eq!(defaults.hotline.evidence_before_s, 600);
        assert_eq!(defaults.hotline.evidence_after_s, 600);
        assert_eq!(
            defaults.live.history,
            deconflict_server::live::history::HistoryLimits::default()
        );
        assert_eq!(
            defaults.live.evidence,
            deconflict_server::live::evidence::EvidenceConfig::default()
        );
        let set = config(&[
            "--incident-evidence-window-s=90",
            "--incident-evidence-radius-m=250",
            "--incident-evidence-max-points=1000",
            "--track-history-age-s=120",
            "--track-history-per-entity=7",
            "--track-history-total=70",
        ]);
        assert_eq!(
            (set.hotline.evidence_before_s, set.hotline.evidence_after_s),
            (90, 90)
        );
        assert_eq!(set.live.evidence.radius_m, 250.0);
        assert_eq!(set.live.evidence.max_points_per_incident, 1000);
        assert_eq!(set.live.history.retention_ms, 120_000);
        assert_eq!(set.live.history.max_points_per_entity, 7);
        assert_eq!(set.live.history.max_points_total, 70);
    }

    #[test]
    fn the_track_grouping_flag_reaches_the_config_and_zero_turns_it_off() {
        let service = ServerConfig::new("unused").live;
        assert_eq!(config(&[]).live.group_max_reports, service.group_max_reports);
        assert_eq!(
            config(&["--track-group-max-reports=100"]).live.group_max_reports,
            100
        );
        assert_eq!(config(&["--track-group-max-reports=0"]).live.group_max_reports, 0);
        let error = Cli::try_parse_from(["serve", "--track-group-max-reports=-1"]).unwrap_err();
        assert!(error.to_string().contains("--track-group-max-reports"), "{error}");
    }

    #[test]
    fn cot_flags_reach_the_tak_limits_and_zero_is_refused_by_name() {
        // The flags' defaults are the listener's own.
        let defaults = config(&[]).live.tak;
        let tak = deconflict_tak::TakLimits::default();
        assert_eq!(
            (
                defaults.max_connections,
                defaults.max_connections_per_party,
                defaults.outbound_queue_len,
                defaults.read_idle_timeout,
                defaults.handshake_timeout
            ),
            (
                tak.max_connections,
                tak.max_connections_per_party,
                tak.outbound_queue_len,
                tak.read_idle_timeout,
                tak.handshake_timeout
            )
        );
        let set = config(&[
            "--cot-max-connections=9",
            "--cot-max-connections-per-party=3",
            "--cot-outbound-queue=17",
            "--cot-read-idle-timeout-s=30",
            "--cot-handshake-timeout-s=4",
        ])
        .live
        .tak;
        assert_eq!(
            (
                set.max_connections,
                set.max_connections_per_party,
                set.outbound_queue_len
            ),
            (9, 3, 17)
        );
        assert_eq!(
            (set.read_idle_timeout, set.handshake_timeout),
            (
                std::time::Duration::from_secs(30),
                std::time::Duration::from_secs(4)
            )
        );
        for flag in [
            "--cot-max-connections",
            "--cot-max-connections-per-party",
            "--cot-outbound-queue",
            "--cot-read-idle-timeout-s",
            "--cot-handshake-timeout-s",
        ] {
            let error = Cli::try_parse_from(["serve", &format!("{flag}=0")]).unwrap_err();
            assert!(error.to_string().contains(flag), "{flag}: {error}");
        }
    }

    #[test]
    fn the_subscriber_queue_default_is_the_services() {
        assert_eq!(
            config(&[]).limits.subscriber_queue,
            ServerConfig::new("unused").limits.subscriber_queue
        );
        assert_eq!(config(&["--subscriber-queue=64"]).limits.subscriber_queue, 64);
    }

    #[test]
    fn store_flags_reach_the_config_and_zero_is_refused_by_name() {
        // The flags' defaults are the service's own.
        assert_eq!(config(&[]).store, ServerConfig::new("unused").store);
        let set = config(&[
            "--store-max-pending-writes=7",
            "--store-readers=3",
            "--sqlite-busy-timeout-ms=250",
            "--sqlite-cache-kib=1024",
            "--sqlite-wal-autocheckpoint-pages=100",
            "--sqlite-wal-max-pages=400",
        ]);
        let store = &set.store;
        assert_eq!(
            (store.max_pending_writes, store.readers, store.busy_timeout_ms),
            (7, 3, 250)
        );
        assert_eq!(
            (
                store.writer_cache_kib,
                store.wal_autocheckpoint_pages,
                store.wal_max_pages
            ),
            (1024, 100, 400)
        );
        for flag in [
            "--store-max-pending-writes",
            "--store-readers",
            "--sqlite-wal-autocheckpoint-pages",
            "--sqlite-wal-max-pages",
        ] {
            let error = Cli::try_parse_from(["serve", &format!("{flag}=0")]).unwrap_err();
            assert!(error.to_string().contains(flag), "{flag}: {error}");
        }
    }
}
