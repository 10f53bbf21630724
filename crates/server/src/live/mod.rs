//! Live tracks in the running service: position reports in (HTTP and
//! Cursor-on-Target), track alerts out (the hub's event streams and CoT).
//!
//! - [`task`]: the track thread that owns the engine's `TrackWatch` and
//!   keeps its fences and plans in line with the driver's zones and
//!   activities.
//! - [`alerts`]: alerts as the contract's JSON events and as TAK alarms.
//! - [`fences`]: zones as fences.
//! - [`history`], [`evidence`], [`evidence_store`]: the recent-history ring
//!   and the incident evidence captured from it (and kept on disk).
//! - [`hotline`]: the hotline's messages, flash repeats and ladder alerts
//!   to TAK clients as GeoChat (the `HotlineHook` the service installs).
//! - this module: the configuration, the handle the handlers use, the TAK
//!   CA and listeners.
//!
//! **Architecture invariant:** only the track thread touches the watch, and
//! it passes the clock's `now`; the watch never reads a clock. Every queue
//! is bounded: a full track queue answers 503 over HTTP and stops reading a
//! TAK connection (TCP back-pressure) for CoT.

pub mod alerts;
pub mod evidence;
pub mod evidence_store;
pub mod fences;
pub mod history;
pub mod hotline;
pub mod task;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use deconflict_engine::track::{TrackConfig, TrackWatch};
use deconflict_engine::PartyId;
use deconflict_store::Store;
use deconflict_tak::{
    CaError, CertificateAuthority, ConnectionId, Revocations, TakConfig, TakError, TakInbound, TakLimits,
    TakListener, TakOutbound, TakTransport,
};

use crate::driver::World;
use crate::hub::Hub;
use crate::problem::ApiError;
use evidence::{Captures, EvidenceConfig};
use history::{HistoryLimits, TrackHistory};

pub use hotline::TakHotlineHook;
pub use task::{Accepted, LiveCommand, OwnedReport};

/// The live-track limits and thresholds; each is a flag of `deconflict serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// Thresholds, hysteresis, staleness and entity limits of the watch
    /// (`max_entities_per_party` among them).
    pub track: TrackConfig,
    /// Reports in one `POST /v1/tracks` at most (beyond: 413 naming the limit).
    pub max_reports_per_request: usize,
    /// Commands waiting for the track thread (beyond: 503 over HTTP,
    /// back-pressure on TAK connections).
    pub max_pending: usize,
    /// How often the thread ticks: staleness, zone and plan sync.
    pub tick_interval_ms: u64,
    /// A request's reports are taken in parts of this many, and each
    /// part's alerts are published before the next part is taken: an
    /// alert waits for its part, not for the whole request. Smaller parts
    /// cost the watch more per report (less batching); from 1 (one report
    /// at a time) to `max_reports_per_request` (whole requests).
    pub publish_every_reports: usize,
    /// Reports of queued report commands (HTTP requests, CoT batches) the
    /// thread takes together in one call of the watch at most: whole
    /// commands, the first other command ends the group; 0 takes each
    /// command alone. Each call re-indexes what the watch holds, so at
    /// 100,000 entities one call per request cost the thread three times
    /// the CPU (crates/server/NOTES.md, live-s21). Publishing in parts
    /// smaller than whole requests turns the grouping off.
    pub group_max_reports: usize,
    /// CoT events per second one TAK connection may send, in bursts of
    /// `cot_burst`; the excess is dropped and counted
    /// (`deconflict_cot_rate_dropped_total`).
    pub cot_events_per_s: f64,
    pub cot_burst: f64,
    /// Features in one `GET /v1/tracks` answer at most (`truncated: true`
    /// beyond).
    pub max_tracks_listed: usize,
    /// Limits of each TAK listener.
    pub tak: TakLimits,
    /// The recent-history ring incident evidence is copied from.
    pub history: HistoryLimits,
    /// Incident evidence: radius, points per incident.
    pub evidence: EvidenceConfig,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            track: TrackConfig::default(),
            max_reports_per_request: 1_000,
            max_pending: 4_096,
            tick_interval_ms: 1_000,
            publish_every_reports: DEFAULT_PUBLISH_EVERY_REPORTS,
            group_max_reports: task::MAX_COALESCED_REPORTS,
            cot_events_per_s: 50.0,
            cot_burst: 200.0,
            max_tracks_listed: 10_000,
            tak: TakLimits::default(),
            history: HistoryLimits::default(),
            evidence: EvidenceConfig::default(),
        }
    }
}

/// See [`LiveConfig::publish_every_reports`]. Whole requests (up to the
/// default `max_reports_per_request`): parts of 64 cut the median latency
/// at 10k entities a little (4.7 → 4.2 ms) but cost 15–20 % more CPU at
/// 100k, where CPU is what the latency waits for (`benches/latency.rs`).
pub const DEFAULT_PUBLISH_EVERY_REPORTS: usize = 1_000;

/// Why live tracks could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("track configuration: {0}")]
    Config(#[from] deconflict_engine::TrackError),
    #[error("TAK certificate authority: {0}")]
    Ca(#[from] CaError),
    #[error("cannot start the track thread: {0}")]
    Thread(std::io::Error),
}

/// What handlers and the command line hold: the track queue, the CA and
/// the TAK outbound handles.
#[derive(Debug, Clone)]
pub struct LiveHandle {
    inbox: SyncSender<LiveCommand>,
    tak: Arc<Mutex<Vec<TakOutbound>>>,
    /// The party of every TAK client that connects, to any listener.
    connected: tokio::sync::broadcast::Sender<PartyId>,
    ca: Arc<CertificateAuthority>,
    /// Parties whose TAK certificates issued before their revocation are
    /// refused, shared by every listener.
    revocations: Revocations,
    pub config: LiveConfig,
}

/// Starts the track thread; the CA lives in `data_dir/tak` (created on
/// first start).
pub fn start(
    config: LiveConfig,
    data_dir: &Path,
    world: Arc<RwLock<World>>,
    hub: Arc<Hub>,
    store: Arc<Store>,
) -> Result<LiveHandle, LiveError> {
    let watch = TrackWatch::new(config.track.clone())?;
    let ca = Arc::new(CertificateAuthority::load_or_create(&data_dir.join("tak"))?);
    let (inbox, commands) = mpsc::sync_channel(config.max_pending.max(1));
    let tak = Arc::new(Mutex::new(Vec::new()));
    let task = task::TrackTask::new(
        watch,
        world,
        hub,
        store,
        Arc::clone(&tak),
        Duration::from_millis(config.tick_interval_ms.max(1)),
    )
    .with_evidence(TrackHistory::new(config.history), Captures::new(config.evidence))
    .with_coalesce(config.group_max_reports)
    .with_publish_every(config.publish_every_reports);
    std::thread::Builder::new()
        .name("deconflict-tracks".into())
        .spawn(move || task.run(commands))
        .map_err(LiveError::Thread)?;
    Ok(LiveHandle {
        inbox,
        tak,
        connected: tokio::sync::broadcast::channel(256).0,
        ca,
        revocations: Revocations::new(),
        config,
    })
}

impl LiveHandle {
    /// Queues a command for the track thread; a full queue is a 503.
    pub fn submit(&self, command: LiveCommand) -> Result<(), ApiError> {
        match self.inbox.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "{} track commands are waiting (--max-pending-tracks); try again shortly",
                    self.config.max_pending
                ),
            )
            .with_retry_after(1)),
            Err(TrySendError::Disconnected(_)) => Err(ApiError::unavailable(&"the track thread stopped")),
        }
    }

    /// The hook zone creation calls: fences follow at once. If the queue is
    /// full the next tick resynchronises all the same.
    pub fn zones_changed(&self) {
        let _ = self.inbox.try_send(LiveCommand::ZonesChanged);
    }

    /// Asks the track thread to capture an incident's evidence (the
    /// incident is committed). Never lost while the service runs: when the
    /// queue is full the command waits for room on a blocking thread; if
    /// the service stops first, the next start finds the incident without
    /// a capture and starts it.
    pub fn capture_evidence(&self, incident: deconflict_hotline::IncidentId) {
        match self.inbox.try_send(LiveCommand::CaptureEvidence { incident }) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(command)) => {
                let inbox = self.inbox.clone();
                std::thread::spawn(move || {
                    let _ = inbox.send(command);
                });
            }
        }
    }

    /// The party of every TAK client that connects from now on (to any
    /// listener started with [`Self::listen_cot`]).
    pub fn tak_connected(&self) -> tokio::sync::broadcast::Receiver<PartyId> {
        self.connected.subscribe()
    }

    /// A party's token was revoked at `at_unix_ms`: its TAK certificates
    /// issued until then are refused from now on, by every listener, and
    /// its open TAK connections are closed. Returns how many were closed.
    pub fn revoke_party(&self, party: PartyId, at_unix_ms: i64) -> usize {
        // Record first: a connection registering meanwhile checks the
        // record after registering, so it is either closed here or refused.
        self.revocations.revoke(party, at_unix_ms);
        self.tak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|outbound| outbound.close_party(party))
            .sum()
    }

    /// Who is revoked since when (loaded from the store at start).
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The server's TAK certificate authority (in the data directory).
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// Starts a CoT listener whose events become position reports, and
    /// whose clients receive their party's alerts. TLS (client certificates
    /// from [`Self::ca`]) unless `plain_party` is given, which binds a
    /// loopback plain-TCP listener to that party.
    pub async fn listen_cot(
        &self,
        listen_addr: SocketAddr,
        plain_party: Option<PartyId>,
        server_names: &[String],
    ) -> Result<TakListener, LiveListenError> {
        let transport = match plain_party {
            Some(party) => TakTransport::PlainLoopback { party },
            None => {
                let server = self.ca.issue_server(server_names)?;
                TakTransport::Tls(self.ca.tls_server_config(&server)?)
            }
        };
        let (events, mut received) = tokio::sync::mpsc::channel::<TakInbound>(1_024);
        let listener = TakListener::bind(
            TakConfig {
                listen_addr,
                transport,
                limits: self.config.tak,
                revocations: self.revocations.clone(),
            },
            events,
        )
        .await?;
        self.tak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener.outbound());
        let mut connected = listener.outbound().connected();
        let relay = self.connected.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match connected.recv().await {
                    Ok(party) => {
                        let _ = relay.send(party);
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "TAK connection notices missed");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        // A blocking forwarder: a full track queue blocks it, which fills
        // the listener's channel, which stops the connections reading.
        // It hands the track thread what is queued as one command (at most
        // `publish_every_reports` events): one event per command filled the
        // track queue at 10,000 CoT events a second and turned HTTP batches
        // away with 503 (the latency bench at 100k entities).
        let inbox = self.inbox.clone();
        let mut rate = ConnectionRate::new(self.config.cot_events_per_s, self.config.cot_burst);
        let batch_max = self.config.publish_every_reports.max(1);
        tokio::task::spawn_blocking(move || {
            while let Some(first) = received.blocking_recv() {
                let mut batch = Vec::with_capacity(batch_max.min(64));
                let mut next = Some(first);
                while let Some(inbound) = next.take() {
                    if rate.allow(inbound.connection, Instant::now()) {
                        batch.push(inbound);
                    } else {
                        metrics::counter!("deconflict_cot_rate_dropped_total").increment(1);
                    }
                    if batch.len() < batch_max {
                        next = received.try_recv().ok();
                    }
                }
                if !batch.is_empty() && inbox.send(LiveCommand::Cot(batch)).is_err() {
                    return;
                }
            }
        });
        Ok(listener)
    }
}

/// Why a CoT listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveListenError {
    #[error("{0}")]
    Ca(#[from] CaError),
    #[error("{0}")]
    Tak(#[from] TakError),
}

/// A token bucket per TAK connection.
#[derive(Debug)]
struct ConnectionRate {
    per_s: f64,
    burst: f64,
    buckets: HashMap<ConnectionId, (f64, Instant)>,
}

/// Buckets idle this long are forgotten (a full bucket is the same as none).
const IDLE_BUCKET: Duration = Duration::from_secs(60);

impl ConnectionRate {
    fn new(per_s: f64, burst: f64) -> Self {
        Self {
            per_s: per_s.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            buckets: HashMap::new(),
        }
    }

    fn allow(&mut self, connection: ConnectionId, now: Instant) -> bool {
        if self.buckets.len() > 4_096 {
            self.buckets
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < IDLE_BUCKET);
        }
        let (tokens, at) = self.buckets.entry(connection).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_s).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_gets_its_burst_then_its_rate() {
        let mut rate = ConnectionRate::new(10.0, 3.0);
        let t0 = Instant::now();
        let a = ConnectionId(1);
        assert!((0..3).all(|_| rate.allow(a, t0)));
        assert!(!rate.allow(a, t0), "the burst is spent");
        assert!(rate.allow(ConnectionId(2), t0), "another connection has its own");
        assert!(
            rate.allow(a, t0 + Duration::from_millis(100)),
            "0.1 s at 10/s refills one"
        );
        assert!(!rate.allow(a, t0 + Duration::from_millis(100)));
    }
}
