//! The CoT listener: accepts TAK clients, frames and parses what they send,
//! hands events to the driver tagged with the party, and writes the
//! driver's CoT back to them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deconflict_engine::{PartyId, Timestamp};
use deconflict_formats::{
    parse_cot_with, write_pong, ControlKind, CotChat, CotEvent, CotFramer, CotLimits, CotMessage,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::ca::{certificate_issued_at, party_of_certificate, PartyCertError};
use crate::outbound::{ConnectionId, CotBytes, OutQueue, Registry, TakOutbound};
use crate::revocation::Revocations;

/// How clients authenticate.
#[derive(Debug, Clone)]
pub enum TakTransport {
    /// TLS with a mandatory client certificate; the party is the one its
    /// certificate names (see [`crate::CertificateAuthority`]). Build the
    /// configuration with [`crate::CertificateAuthority::tls_server_config`].
    Tls(Arc<rustls::ServerConfig>),
    /// Plain TCP, for a gateway on the same machine: everything received is
    /// attributed to `party`. Only allowed on a loopback address, since
    /// anyone who can connect speaks for the party.
    PlainLoopback { party: PartyId },
}

/// Every limit of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakLimits {
    /// Open connections, all parties together. Connections past it are
    /// closed as soon as they are accepted.
    pub max_connections: usize,
    /// Open connections of one party (a unit's devices, a gateway). A
    /// connection past it is closed after its handshake.
    pub max_connections_per_party: usize,
    /// Event and text sizes; an oversize event is skipped, the connection
    /// stays open.
    pub cot: CotLimits,
    /// A connection that sends nothing for this long is closed. TAK clients
    /// ping (`t-x-c-t`) well within it.
    pub read_idle_timeout: Duration,
    /// The time a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// CoT documents waiting to be written to one connection; past it an
    /// episode's document takes the place of its queued one, any other is
    /// dropped and the client told how many it missed (see
    /// [`TakOutbound`]). The default, 4,096, holds the bursts of alarms
    /// seen at 100,000 entities (the latency bench: 256 lost 5–13k alarms
    /// a party in 10 s, 2,048 and 4,096 none; crates/server/NOTES.md,
    /// live-s22); a queued document costs its entry (32 bytes) and its
    /// text (shared by the party's connections), so a full queue is
    /// about 128 KiB of entries.
    pub outbound_queue_len: usize,
}

impl Default for TakLimits {
    fn default() -> Self {
        TakLimits {
            max_connections: 1024,
            max_connections_per_party: 64,
            cot: CotLimits::default(),
            read_idle_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(10),
            outbound_queue_len: 4_096,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TakConfig {
    /// The TAK convention is port 8089 for TLS.
    pub listen_addr: SocketAddr,
    pub transport: TakTransport,
    pub limits: TakLimits,
    /// Parties whose certificates issued before their revocation are
    /// refused (TLS only: the plain listener has no certificate). Shared:
    /// a revocation recorded after the listener started applies at once.
    pub revocations: Revocations,
}

/// One event from a TAK client, with who sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct TakInbound {
    pub party: PartyId,
    pub connection: ConnectionId,
    pub event: CotEvent,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TakError {
    #[error("plain TCP is only allowed on a loopback address, not {0}; use TLS with client certificates")]
    PlainTcpNotLoopback(SocketAddr),
    #[error("a limit is zero: {0}")]
    ZeroLimit(&'static str),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Counters since the listener started.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) handshakes_failed: AtomicU64,
    pub(crate) certificates_revoked: AtomicU64,
    pub(crate) connections_closed_revoked: AtomicU64,
    pub(crate) events_received: AtomicU64,
    pub(crate) events_rejected: AtomicU64,
    pub(crate) frames_skipped: AtomicU64,
    pub(crate) outbound_queued: AtomicU64,
    pub(crate) outbound_dropped: AtomicU64,
    pub(crate) outbound_coalesced: AtomicU64,
    pub(crate) outbound_lagged_notices: AtomicU64,
}

/// A snapshot of the listener's counters (for `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TakStats {
    /// Connections that got past the limits and the handshake.
    pub connections_accepted: u64,
    /// Connections closed by `max_connections` or
    /// `max_connections_per_party`.
    pub connections_refused: u64,
    /// TLS handshakes that failed or timed out, and certificates that name
    /// no party.
    pub handshakes_failed: u64,
    /// Connections refused because their certificate's party was revoked
    /// after it was issued.
    pub certificates_revoked: u64,
    /// Open connections closed by [`TakOutbound::close_party`].
    pub connections_closed_revoked: u64,
    /// Events handed to the driver.
    pub events_received: u64,
    /// Framed documents that did not parse as CoT.
    pub events_rejected: u64,
    /// Oversize events and garbage skipped by the framer.
    pub frames_skipped: u64,
    pub outbound_queued: u64,
    pub outbound_dropped: u64,
    /// Documents that took the place of their episode's in a full queue
    /// (counted in `outbound_queued` too).
    pub outbound_coalesced: u64,
    /// GeoChat notices telling a client how many documents it missed.
    pub outbound_lagged_notices: u64,
}

impl Stats {
    fn snapshot(&self) -> TakStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TakStats {
            connections_accepted: get(&self.connections_accepted),
            connections_refused: get(&self.connections_refused),
            handshakes_failed: get(&self.handshakes_failed),
            certificates_revoked: get(&self.certificates_revoked),
            connections_closed_revoked: get(&self.connections_closed_revoked),
            events_received: get(&self.events_received),
            events_rejected: get(&self.events_rejected),
            frames_skipped: get(&self.frames_skipped),
            outbound_queued: get(&self.outbound_queued),
            outbound_dropped: get(&self.outbound_dropped),
            outbound_coalesced: get(&self.outbound_coalesced),
            outbound_lagged_notices: get(&self.outbound_lagged_notices),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every connection task shares.
#[derive(Debug)]
struct Shared {
    limits: TakLimits,
    inbound: mpsc::Sender<TakInbound>,
    registry: Arc<Registry>,
    stats: Arc<Stats>,
    revocations: Revocations,
}

/// A running listener. Dropping it stops accepting and closes every
/// connection; [`TakListener::shutdown`] does the same and waits.
#[derive(Debug)]
pub struct TakListener {
    local_addr: SocketAddr,
    outbound: TakOutbound,
    stats: Arc<Stats>,
    shutdown: watch::Sender<bool>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
}

/// How long shutdown waits for connections to flush and close before it
/// aborts them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a pong stays valid.
const PONG_STALE_MS: i64 = 20_000;
const READ_CHUNK_BYTES: usize = 16 * 1024;

impl TakListener {
    /// Binds and starts accepting on the current tokio runtime. Events go
    /// to `inbound`; when it is full, connections stop reading (TCP
    /// back-pressure to the clients) rather than dropping events.
    pub async fn bind(config: TakConfig, inbound: mpsc::Sender<TakInbound>) -> Result<TakListener, TakError> {
        let limits = config.limits;
        if let TakTransport::PlainLoopback { .. } = config.transport {
            if !config.listen_addr.ip().is_loopback() {
                return Err(TakError::PlainTcpNotLoopback(config.listen_addr));
            }
        }
        for (value, name) in [
            (limits.max_connections, "max_connections"),
            (limits.max_connections_per_party, "max_connections_per_party"),
            (limits.outbound_queue_len, "outbound_queue_len"),
            (limits.cot.max_event_bytes, "cot.max_event_bytes"),
        ] {
            if value == 0 {
                return Err(TakError::ZeroLimit(name));
            }
        }
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| TakError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| TakError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            limits,
            inbound,
            registry: Arc::new(Registry::new(limits.max_connections_per_party)),
            stats: Arc::clone(&stats),
            revocations: config.revocations,
        });
        let outbound = TakOutbound {
            registry: Arc::clone(&shared.registry),
            stats: Arc::clone(&stats),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(listener, config.transport, shared, shutdown_rx));
        tracing::info!(%local_addr, "CoT listener started");
        Ok(TakListener {
            local_addr,
            outbound,
            stats,
            shutdown,
            accept_task: Some(accept_task),
        })
    }

    /// The bound address (with the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The handle that sends CoT to a party's connected clients.
    pub fn outbound(&self) -> TakOutbound {
        self.outbound.clone()
    }

    pub fn stats(&self) -> TakStats {
        self.stats.snapshot()
    }

    /// Stops accepting, closes every connection (TLS close_notify after
    /// what is queued for it is written), and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TakListener {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    transport: TakTransport,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    let acceptor = match &transport {
        TakTransport::Tls(config) => Some(TlsAcceptor::from(Arc::clone(config))),
        TakTransport::PlainLoopback { .. } => None,
    };
    let mut connections = JoinSet::new();
    let mut next_id = 0u64;
    loop {
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment
                // instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            Stats::bump(&shared.stats.connections_refused);
            tracing::warn!(%peer, "CoT connection refused: max_connections reached");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        next_id += 1;
        let connection = ConnectionId(next_id);
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        match (&acceptor, &transport) {
            (Some(acceptor), _) => {
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    if let Some((stream, party, issued_at)) = handshake(acceptor, tcp, peer, &shared).await {
                        serve(
                            stream,
                            party,
                            Some(issued_at),
                            connection,
                            shared,
                            shutdown,
                            permit,
                        )
                        .await;
                    }
                });
            }
            (None, TakTransport::PlainLoopback { party }) => {
                let party = *party;
                connections.spawn(serve(tcp, party, None, connection, shared, shutdown, permit));
            }
            (None, TakTransport::Tls(_)) => unreachable!("a TLS transport always has an acceptor"),
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

/// The TLS handshake: the stream, the party its certificate names, and
/// when that certificate was issued (Unix seconds).
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, PartyId, i64)> {
    let stream = match tokio::time::timeout(shared.limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            Stats::bump(&shared.stats.handshakes_failed);
            tracing::info!(%peer, %error, "CoT TLS handshake failed");
            return None;
        }
        Err(_) => {
            Stats::bump(&shared.stats.handshakes_failed);
            tracing::info!(%peer, "CoT TLS handshake timed out");
            return None;
        }
    };
    // The verifier has checked the chain to our CA; the party is in it.
    let party = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(PartyCertError::NoPartyUri)
        .and_then(|cert| Ok((party_of_certificate(cert)?, certificate_issued_at(cert)?)));
    match party {
        Ok((party, issued_at)) => {
            if !shared.revocations.admits(party, issued_at) {
                Stats::bump(&shared.stats.certificates_revoked);
                tracing::info!(%peer, ?party, "CoT client certificate refused: the party was revoked after it was issued");
                return None;
            }
            Some((stream, party, issued_at))
        }
        Err(error) => {
            Stats::bump(&shared.stats.handshakes_failed);
            tracing::info!(%peer, %error, "CoT client certificate names no party");
            None
        }
    }
}

/// Runs one connection until the client leaves, goes idle, or the listener
/// shuts down.
async fn serve<S>(
    stream: S,
    party: PartyId,
    issued_at: Option<i64>,
    connection: ConnectionId,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let limits = shared.limits;
    let queue = OutQueue::new(limits.outbound_queue_len);
    let close = Arc::new(Notify::new());
    let Some(registration) =
        shared
            .registry
            .register(party, connection, Arc::clone(&queue), Arc::clone(&close))
    else {
        Stats::bump(&shared.stats.connections_refused);
        tracing::warn!(
            ?party,
            "CoT connection refused: max_connections_per_party reached"
        );
        return;
    };
    // Checked again once registered: a revocation between the handshake
    // and the registration closed the party's connections without this
    // one, so it must see the revocation here.
    if let Some(issued_at) = issued_at {
        if !shared.revocations.admits(party, issued_at) {
            Stats::bump(&shared.stats.certificates_revoked);
            return;
        }
    }
    Stats::bump(&shared.stats.connections_accepted);
    tracing::debug!(?party, ?connection, "CoT client connected");
    let (mut reader, writer) = tokio::io::split(stream);
    let mut writer_task = tokio::spawn(write_loop(
        writer,
        Arc::clone(&queue),
        party,
        connection,
        Arc::clone(&shared.stats),
    ));

    let mut framer = CotFramer::new(limits.cot.max_event_bytes);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    'connection: loop {
        let read = tokio::select! {
            _ = shutdown.changed() => break,
            () = close.notified() => {
                Stats::bump(&shared.stats.connections_closed_revoked);
                tracing::info!(?party, ?connection, "CoT connection closed: the party was revoked");
                break;
            }
            read = tokio::time::timeout(limits.read_idle_timeout, reader.read(&mut chunk)) => read,
        };
        let n = match read {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(error)) => {
                tracing::debug!(?connection, %error, "CoT read failed");
                break;
            }
            Err(_) => {
                tracing::info!(?party, ?connection, "CoT connection idle, closing");
                break;
            }
        };
        framer.push(&chunk[..n]);
        loop {
            let message = match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => parse_cot_with(frame, &limits.cot),
                Err(error) => {
                    Stats::bump(&shared.stats.frames_skipped);
                    tracing::debug!(?connection, %error, "CoT bytes skipped");
                    continue;
                }
            };
            match message {
                Ok(CotMessage::Event(event)) => {
                    let inbound = TakInbound {
                        party,
                        connection,
                        event,
                    };
                    let sent = tokio::select! {
                        _ = shutdown.changed() => break 'connection,
                        () = close.notified() => {
                            Stats::bump(&shared.stats.connections_closed_revoked);
                            tracing::info!(?party, ?connection, "CoT connection closed: the party was revoked");
                            break 'connection;
                        }
                        sent = shared.inbound.send(inbound) => sent,
                    };
                    if sent.is_err() {
                        // The driver is gone: nothing left to serve.
                        break 'connection;
                    }
                    Stats::bump(&shared.stats.events_received);
                }
                Ok(CotMessage::Control(control)) => {
                    if control.kind == ControlKind::Ping {
                        let pong: CotBytes = Arc::from(write_pong(now(), PONG_STALE_MS).into_bytes());
                        // A full queue already proves the link is alive.
                        let _ = queue.push(None, pong, false);
                    }
                }
                Err(error) => {
                    Stats::bump(&shared.stats.events_rejected);
                    tracing::debug!(?party, ?connection, %error, "CoT event rejected");
                }
            }
        }
    }
    // Unregister, then let the writer flush what is queued and close.
    drop(registration);
    queue.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut writer_task)
        .await
        .is_err()
    {
        // A client that stopped reading must not keep the task alive.
        writer_task.abort();
    }
    tracing::debug!(?party, ?connection, "CoT client disconnected");
}

async fn write_loop<W: AsyncWrite>(
    writer: tokio::io::WriteHalf<W>,
    queue: Arc<OutQueue>,
    party: PartyId,
    connection: ConnectionId,
    stats: Arc<Stats>,
) {
    let mut writer = writer;
    let mut notices = 0u64;
    // Whatever is queued is gathered and written at once, then flushed: one
    // write (over TLS, records of up to 16 KiB and one system call each)
    // per wake-up, not one small record and one call per document.
    let mut gathered: Vec<u8> = Vec::new();
    while let Some(taken) = queue.take().await {
        gathered.clear();
        for document in &taken.documents {
            gathered.extend_from_slice(document);
        }
        if taken.lagged > 0 {
            notices += 1;
            Stats::bump(&stats.outbound_lagged_notices);
            tracing::debug!(?party, ?connection, missed = taken.lagged, "CoT client lagged");
            let notice = lagged_notice(party, connection, notices, taken.lagged, now());
            gathered.extend_from_slice(notice.as_bytes());
        }
        if writer.write_all(&gathered).await.is_err() {
            return;
        }
        if writer.flush().await.is_err() {
            return;
        }
        // A burst's buffer is not kept for the connection's life.
        if gathered.capacity() > GATHER_KEEP_BYTES {
            gathered = Vec::new();
        }
    }
    // Sends TLS close_notify (or a TCP FIN).
    let _ = writer.shutdown().await;
}

/// The writer's gathering buffer is kept between wake-ups up to this size.
const GATHER_KEEP_BYTES: usize = 64 * 1024;

/// The GeoChat sender of the lagged notices.
pub const LAGGED_SENDER_UID: &str = "deconflict";

/// A GeoChat line telling a connection's user that `missed` documents
/// (alarms) were not sent to it: the client fell behind and its queue was
/// full. One line per notice (`message_uid` new each time).
pub(crate) fn lagged_notice(
    party: PartyId,
    connection: ConnectionId,
    number: u64,
    missed: u64,
    time: Timestamp,
) -> String {
    CotChat {
        sender_uid: LAGGED_SENDER_UID.to_owned(),
        sender_callsign: "deconflict".to_owned(),
        chatroom: format!("party-{}", party.0),
        message_uid: format!("lagged-{}-{number}", connection.0),
        text: format!(
            "{missed} deconflict alarm(s) were not sent to this device: it fell behind. \
             Open alarms: the deconflict web view or GET /v1/tracks."
        ),
        time,
        stale: Timestamp(time.0.saturating_add(LAGGED_NOTICE_STALE_MS)),
    }
    .to_xml()
}

/// How long a lagged notice stays current for the client.
const LAGGED_NOTICE_STALE_MS: i64 = 10 * 60 * 1_000;

/// The wall clock as a timestamp: the listener is a driver, the one place
/// allowed to read it.
fn now() -> Timestamp {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    Timestamp(unix_ms)
}

#[cfg(test)]
mod tests {
    use deconflict_formats::{parse_cot, CotMessage};
    use tokio::io::AsyncReadExt;

    use super::*;

    /// The writer writes what was queued, then a GeoChat line saying how
    /// many documents the full queue dropped, then the next documents; and
    /// once the queue is closed and written, it closes the stream.
    #[tokio::test]
    async fn the_writer_tells_a_lagging_client_how_many_it_missed() {
        let queue = OutQueue::new(2);
        let doc = |text: &str| -> CotBytes { Arc::from(text.as_bytes()) };
        for (i, text) in ["<a/>", "<b/>", "<c/>", "<d/>", "<e/>"].into_iter().enumerate() {
            queue.push(Some(i as u64), doc(text), true);
        }
        // A pong dropped by a full queue is not an alarm missed.
        queue.push(None, doc("<pong/>"), false);
        let (client, server) = tokio::io::duplex(1 << 16);
        let (_, writer) = tokio::io::split(server);
        let stats = Arc::new(Stats::default());
        let writing = tokio::spawn(write_loop(
            writer,
            Arc::clone(&queue),
            PartyId(3),
            ConnectionId(9),
            Arc::clone(&stats),
        ));
        let (mut reader, _keep) = tokio::io::split(client);
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("</event>") {
            let mut chunk = [0u8; 4096];
            let n = reader.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the stream ended early");
            got.extend_from_slice(&chunk[..n]);
        }
        queue.push(Some(9), doc("<f/>"), true);
        queue.close();
        reader.read_to_end(&mut got).await.unwrap();
        writing.await.unwrap();
        let text = String::from_utf8(got).unwrap();
        let notice_at = text.find("<event").expect("a notice");
        assert_eq!(&text[..notice_at], "<a/><b/>");
        let notice_end = text.find("</event>").unwrap() + "</event>".len();
        assert_eq!(&text[notice_end..], "<f/>");
        let CotMessage::Event(notice) = parse_cot(&text.as_bytes()[notice_at..notice_end]).unwrap() else {
            panic!("the notice is a CoT event");
        };
        assert_eq!(notice.event_type, CotChat::EVENT_TYPE);
        assert_eq!(notice.uid, "GeoChat.deconflict.party-3.lagged-9-1");
        let remarks = notice.remarks.expect("the notice's text");
        assert!(
            remarks.starts_with("3 deconflict alarm(s) were not sent"),
            "{remarks}"
        );
        assert_eq!(stats.outbound_lagged_notices.load(Ordering::Relaxed), 1);
    }
}
