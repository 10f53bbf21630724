//! Report → event over the server, as clients see it: the harness shared by
//! `benches/latency.rs` (the measurement, issue 4's W3 "report→event p99
//! ≤ 20 ms over the server") and `tests/latency.rs` (every alert delivered,
//! not timed). Both include this file by path next to `common`; it is not
//! declared in `common/mod.rs`, which every test binary compiles.
//!
//! **The clients.** A W3-like fleet (`deconflict_sim::fleet`: random
//! headings, 5–250 m/s, aircraft above 60 m/s) of N entities of several
//! parties, each reporting once a second, and every party's event streams:
//! one SSE (`/v1/events`), one WebSocket (`/v1/ws`) and, when some
//! entities report over CoT, the party's TAK connection, which receives the
//! party's alerts as CoT alarms. The box the fleet moves in is scaled with
//! N so that the density, and so the alerts per entity, is W3's (100,000
//! in 10° × 10°).
//!
//! **Two ways in.** Most entities report through `POST /v1/tracks`; one in
//! `cot_one_in` (by index: every entity of one row of `SLOTS`) reports as
//! CoT over TLS, on one connection per party authenticated by the party's
//! certificate from `POST /v1/parties/{id}/tak-certificate`, as a TAK
//! gateway forwarding its units would.
//!
//! **Slots.** The fleet is split into `SLOTS` slots sent 1000 / `SLOTS` ms
//! apart, as gateways that each forward their units' reports would: per
//! slot and party one HTTP request (at most `MAX_REPORTS_PER_REQUEST`
//! reports) and one write of CoT documents.
//!
//! **How a latency is measured.** The client remembers, for each slot,
//! party and way in, when it sent (wall-clock milliseconds and a monotonic
//! instant). An alert event carries its `at`: the server's clock when it
//! processed the report that raised it, so the report that caused it is
//! the latest report of one of the alert's entities sent at or before `at`.
//! The latency is the monotonic time from that send to reading the event.
//! A CoT alarm names its alert (`uid` `deconflict-alert-{id}`, a cancel
//! for a clearing), so it is timed from the same send. Alerts not raised
//! by a report (a `stale` clearing comes from the track thread's tick) are
//! not timed.
//!
//! **What is checked** ([`Outcome::problems`]): every alert the server
//! published (its `deconflict_track_alerts_total`) reached every stream of
//! every party it concerns, once, the same on SSE and WebSocket, as a CoT
//! alarm with the same time on the party's TAK connection; each
//! report-raised alert matched to a report; no batch refused, no CoT
//! report dropped, no stream lagged.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deconflict_engine::Timestamp;
use deconflict_formats::{
    format_rfc3339, parse_cot, parse_rfc3339, write_cot_event, CotEvent, CotFramer, CotMessage,
};
use deconflict_server::ServerConfig;
use deconflict_sim::fleet::{Fleet, FleetShape};
use futures_util::StreamExt;
use reqwest::{Client, StatusCode};
use rustls_pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::child::ChildProcess;
use crate::common::sse::Events;

/// Request slots per second: a slot's reports leave together.
pub const SLOTS: usize = 20;
/// Reports in one request at most (the server's default limit).
pub const MAX_REPORTS_PER_REQUEST: usize = 1_000;
/// Sends remembered per slot, party and way in (a few seconds' worth).
const SENDS_KEPT: usize = 8;
/// A CoT report's validity: the engine's default staleness for reports
/// without one, so that no entity goes stale during a run.
const COT_STALE_MS: i64 = 120_000;
/// The drain ends when no alert arrived on any stream for this long...
const QUIET: Duration = Duration::from_millis(500);
/// ... or after this long at most.
const MAX_DRAIN: Duration = Duration::from_secs(60);
/// A CoT ping, answered by the listener once the connection is registered
/// (and so receives its party's alarms).
const PING: &str = r#"<event version="2.0" uid="latency-ping" type="t-x-c-t" how="h-g-i-g-o" time="2026-03-01T10:00:00Z" start="2026-03-01T10:00:00Z" stale="2026-03-01T10:00:10Z"><point lat="0.0" lon="0.0" hae="0.0" ce="9999999" le="9999999"/><detail/></event>"#;

/// The server under measurement's side of the configuration: one CoT
/// connection per party stands for a gateway forwarding all of that
/// party's CoT units, so the per-device default rate (50 events/s per
/// connection) is lifted; everything else stays the default.
pub fn configure(config: &mut ServerConfig) {
    config.live.cot_events_per_s = 1e9;
    config.live.cot_burst = 1e9;
}

/// What a run sends.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub entities: usize,
    pub parties: u64,
    /// Seconds sent before measuring: the first reports make every entity
    /// new and open every alert of the starting positions at once.
    pub warm_up_s: u64,
    pub seconds: u64,
    /// One entity in this many reports over CoT (0: none, and no TAK
    /// connection).
    pub cot_one_in: usize,
}

/// The server a run talks to.
pub struct Target<'a> {
    pub url: String,
    pub admin: String,
    /// The TAK listener (TLS); needed when `cot_one_in > 0`.
    pub cot_address: Option<SocketAddr>,
    /// The server's own process, when it has one: its CPU time and memory
    /// are reported.
    pub process: Option<&'a ChildProcess>,
}

/// How a report went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    Http,
    Cot,
}

/// Which stream an alert came out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Out {
    Sse,
    WebSocket,
    Tak,
}

impl Via {
    fn of(index: usize, cot_one_in: usize) -> Via {
        if cot_one_in > 0 && (index / SLOTS).is_multiple_of(cot_one_in) {
            Via::Cot
        } else {
            Via::Http
        }
    }

    fn name(self) -> &'static str {
        match self {
            Via::Http => "HTTP",
            Via::Cot => "CoT/TLS",
        }
    }
}

impl Out {
    fn name(self) -> &'static str {
        match self {
            Out::Sse => "SSE",
            Out::WebSocket => "WebSocket",
            Out::Tak => "CoT/TLS",
        }
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "n {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default())
    )
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A send: wall-clock milliseconds (to compare with an alert's `at`) and
/// the monotonic instant (to measure from).
type Sent = (i64, Instant);

/// When each slot's reports left, per `(slot, server party id, way in)`.
struct SendLog {
    sends: Mutex<HashMap<(usize, u64, Via), VecDeque<Sent>>>,
    cot_one_in: usize,
}

impl SendLog {
    fn record(&self, slot: usize, party: u64, via: Via, wall: i64, at: Instant) {
        let mut sends = self.sends.lock().unwrap();
        let kept = sends.entry((slot, party, via)).or_default();
        kept.push_back((wall, at));
        if kept.len() > SENDS_KEPT {
            kept.pop_front();
        }
    }

    /// When the report of `entity` processed at `at_ms` left: its slot's
    /// latest send at or before `at_ms`.
    fn sent(&self, entity: &Value, at_ms: i64) -> Option<(Instant, Via)> {
        let party = entity["party"].as_u64()?;
        let index: usize = entity["uid"].as_str()?.rsplit_once('-')?.1.parse().ok()?;
        let via = Via::of(index, self.cot_one_in);
        let sends = self.sends.lock().unwrap();
        sends
            .get(&(index % SLOTS, party, via))?
            .iter()
            .rev()
            .find(|(wall, _)| *wall <= at_ms)
            .map(|(_, at)| (*at, via))
    }

    /// The send of the report that raised `alert`: the latest one of its
    /// entities' reports sent by the time the server took it.
    fn cause(&self, alert: &Value, at_ms: i64) -> Option<(Instant, Via)> {
        let entities: Vec<&Value> = match alert.get("tracks") {
            Some(Value::Array(pair)) => pair.iter().collect(),
            _ => vec![alert.get("track")?],
        };
        entities
            .iter()
            .filter_map(|e| self.sent(e, at_ms))
            .max_by_key(|(at, _)| *at)
    }
}

/// An alert episode's event: its id, and whether it opens (or clears).
type AlertKey = (u64, bool);

/// What the JSON events say about one alert.
struct AlertSeen {
    /// The parties it concerns.
    parties: Vec<u64>,
    at_ms: i64,
    /// Hash of its `data`, to compare streams.
    data_hash: u64,
    /// The send of the report that raised it; `None` when none did.
    cause: Option<(Instant, Via)>,
    stale: bool,
}

/// One alert read from one stream.
struct Arrival {
    party: u64,
    out: Out,
    key: AlertKey,
    at_ms: i64,
    data_hash: u64,
    read: Instant,
}

#[derive(Default)]
struct Received {
    arrivals: Mutex<Vec<Arrival>>,
    alerts: Mutex<HashMap<AlertKey, AlertSeen>>,
    count: AtomicU64,
    lagged: AtomicU64,
}

fn hash_of(value: &Value) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

impl Received {
    /// An event read from `party`'s SSE or WebSocket stream.
    fn take_json(&self, party: u64, out: Out, kind: &str, data: &Value, log: &SendLog) {
        let read = Instant::now();
        if kind == "lagged" {
            self.lagged
                .fetch_add(data["dropped"].as_u64().unwrap_or(1), Ordering::Relaxed);
            return;
        }
        if !matches!(
            kind,
            "proximity" | "cpa" | "zone.entered" | "zone.crossed" | "deviation"
        ) {
            return;
        }
        let (Some(id), Some(at_ms)) = (
            data["id"].as_u64(),
            data["at"].as_str().and_then(|at| parse_rfc3339(at).ok()),
        ) else {
            panic!("an alert without id or at: {data}");
        };
        let at_ms = at_ms.unix_ms();
        let key = (id, data["state"] == "open");
        let data_hash = hash_of(data);
        self.alerts.lock().unwrap().entry(key).or_insert_with(|| {
            let stale = data["reason"] == "stale";
            let mut parties: Vec<u64> = match data.get("tracks") {
                Some(Value::Array(pair)) => pair.iter().filter_map(|t| t["party"].as_u64()).collect(),
                _ => data["track"]["party"].as_u64().into_iter().collect(),
            };
            parties.extend(data["zone_owner"].as_u64());
            parties.sort_unstable();
            parties.dedup();
            AlertSeen {
                parties,
                at_ms,
                data_hash,
                cause: if stale { None } else { log.cause(data, at_ms) },
                stale,
            }
        });
        self.arrive(Arrival {
            party,
            out,
            key,
            at_ms,
            data_hash,
            read,
        });
    }

    /// A CoT alarm read from `party`'s TAK connection.
    fn take_cot(&self, party: u64, event: &CotEvent) {
        let read = Instant::now();
        let Some(id) = event
            .uid
            .strip_prefix("deconflict-alert-")
            .and_then(|id| id.parse().ok())
        else {
            return;
        };
        self.arrive(Arrival {
            party,
            out: Out::Tak,
            key: (id, event.event_type != "b-a-o-can"),
            at_ms: event.time.unix_ms(),
            data_hash: 0,
            read,
        });
    }

    fn arrive(&self, arrival: Arrival) {
        self.arrivals.lock().unwrap().push(arrival);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a run measured and found.
pub struct Outcome {
    /// The figures, one line each.
    pub report: Vec<String>,
    /// Delivery problems (see the module documentation); empty when every
    /// alert reached every stream it should.
    pub problems: Vec<String>,
    pub refused_batches: u64,
    /// Alerts the streams carried (opening and clearing events).
    pub alerts: usize,
    /// Alerts matched to a report, by the way that report went in.
    pub caused_by: BTreeMap<Via, usize>,
}

/// One party's client side: its token, server id, and TAK connection.
struct PartyClient {
    id: u64,
    token: String,
}

type TakStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Connects to the TAK listener with `party`'s certificate (issued by the
/// admin, as `deconflict party add --tak-dir` hands it out), and waits for
/// the answer to a ping: then the listener has registered the connection.
async fn tak_connect(client: &Client, target: &Target<'_>, party: u64) -> TakStream {
    let answer = client
        .post(format!("{}/v1/parties/{party}/tak-certificate", target.url))
        .bearer_auth(&target.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let credentials: Value = answer.json().await.unwrap();
    let config = crate::common::tak_client_config(&credentials);
    let address = target.cot_address.expect("a TAK listener for the CoT reports");
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake");
    stream.write_all(PING.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !String::from_utf8_lossy(&seen).contains("t-x-c-t-r") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the TAK listener closed the connection");
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the TAK listener answers the ping within 10 s");
    stream
}

/// Sums the Prometheus counter `name` over its labels.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One run of `shape` against `target`. Bounded: every phase fails rather
/// than hangs (the caller bounds the whole).
pub async fn run(target: &Target<'_>, shape: Shape) -> Outcome {
    let Shape {
        entities,
        parties,
        warm_up_s,
        seconds,
        cot_one_in,
    } = shape;
    let client = Client::builder()
        .pool_max_idle_per_host(4 * SLOTS)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut party_clients = Vec::new();
    for p in 0..parties {
        let answer = client
            .post(format!("{}/v1/parties", target.url))
            .bearer_auth(&target.admin)
            .json(&json!({"name": format!("party {p}"), "kind": "military"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        let body: Value = answer.json().await.unwrap();
        party_clients.push(PartyClient {
            id: body["id"].as_u64().unwrap(),
            token: body["token"].as_str().unwrap().to_owned(),
        });
    }
    let log = Arc::new(SendLog {
        sends: Mutex::default(),
        cot_one_in,
    });
    let received = Arc::new(Received::default());
    let stopping = Arc::new(AtomicBool::new(false));

    // Every party's streams, each reader with its own handles.
    let handles = || (Arc::clone(&received), Arc::clone(&log), Arc::clone(&stopping));
    let mut readers = Vec::new();
    let mut tak_writers = Vec::new();
    for party in &party_clients {
        let id = party.id;
        let mut events = Events::open_at(&client, &target.url, &party.token).await;
        let (received, log, stop) = handles();
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(next) = tokio::time::timeout(Duration::from_millis(200), events.try_next()).await
                else {
                    continue;
                };
                let Ok(Some(event)) = next else { return };
                received.take_json(id, Out::Sse, &event.kind, &event.data, &log);
            }
        }));
        let mut socket = crate::common::websocket_at(&target.url, &party.token).await;
        let (received, log, stop) = handles();
        readers.push(tokio::spawn(async move {
            use tokio_tungstenite::tungstenite::Message;
            while !stop.load(Ordering::Relaxed) {
                let Ok(next) = tokio::time::timeout(Duration::from_millis(200), socket.next()).await else {
                    continue;
                };
                let Some(Ok(Message::Text(text))) = next else {
                    if next.is_none() {
                        return;
                    }
                    continue;
                };
                let message: Value = serde_json::from_str(&text).unwrap();
                let kind = message["type"].as_str().unwrap_or("").to_owned();
                received.take_json(id, Out::WebSocket, &kind, &message["data"], &log);
            }
        }));
        if cot_one_in > 0 {
            let (mut reader, writer) = tokio::io::split(tak_connect(&client, target, id).await);
            tak_writers.push(writer);
            let (received, _, stop) = handles();
            readers.push(tokio::spawn(async move {
                let mut framer = CotFramer::new(1 << 20);
                let mut chunk = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(read) =
                        tokio::time::timeout(Duration::from_millis(200), reader.read(&mut chunk)).await
                    else {
                        continue;
                    };
                    let n = match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    framer.push(&chunk[..n]);
                    while let Ok(Some(frame)) = framer.next_frame() {
                        if let Ok(CotMessage::Event(event)) = parse_cot(frame) {
                            received.take_cot(id, &event);
                        }
                    }
                }
            }));
        }
    }

    // Measured from the end of the warm-up (set before any send: the
    // senders start after it is known).
    let start = Instant::now() + Duration::from_millis(500);
    let wall_at_start = wall_ms() + 500;
    let measure_from = start + Duration::from_secs(warm_up_s);
    let slot_gap = Duration::from_millis(1_000 / SLOTS as u64);

    // One HTTP sender per slot and one CoT writer per party, fed each
    // second by the generator below.
    let ids: Vec<u64> = party_clients.iter().map(|p| p.id).collect();
    let tokens: Vec<String> = party_clients.iter().map(|p| p.token.clone()).collect();
    let refused = Arc::new(AtomicU64::new(0));
    let post_times = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut slot_inboxes = Vec::new();
    let mut senders = Vec::new();
    for slot in 0..SLOTS {
        let (inbox, mut bodies) = tokio::sync::mpsc::channel::<(Instant, Vec<(usize, Vec<u8>)>)>(4);
        slot_inboxes.push(inbox);
        let (client, url, tokens, ids) = (client.clone(), target.url.clone(), tokens.clone(), ids.clone());
        let (log, refused, post_times) = (Arc::clone(&log), Arc::clone(&refused), Arc::clone(&post_times));
        senders.push(tokio::spawn(async move {
            while let Some((due, requests)) = bodies.recv().await {
                tokio::time::sleep_until(due.into()).await;
                let mut in_flight = Vec::new();
                for (party, body) in requests {
                    let request = client
                        .post(format!("{url}/v1/tracks"))
                        .bearer_auth(&tokens[party])
                        .header("content-type", "application/json")
                        .body(body);
                    let (wall, sent) = (wall_ms(), Instant::now());
                    log.record(slot, ids[party], Via::Http, wall, sent);
                    let (refused, post_times) = (Arc::clone(&refused), Arc::clone(&post_times));
                    in_flight.push(tokio::spawn(async move {
                        let answer = request.send().await;
                        let took = sent.elapsed();
                        match answer {
                            Ok(a) if a.status() == StatusCode::ACCEPTED => {
                                let _ = a.bytes().await;
                                if sent >= measure_from {
                                    post_times.lock().unwrap().push(took);
                                }
                            }
                            Ok(a) => {
                                let status = a.status();
                                let text = a.text().await.unwrap_or_default();
                                if refused.fetch_add(1, Ordering::Relaxed) < 3 {
                                    eprintln!("a batch was refused: {status} {text}");
                                }
                            }
                            Err(error) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                eprintln!("a batch failed: {error}");
                            }
                        }
                    }));
                }
                for request in in_flight {
                    let _ = request.await;
                }
            }
        }));
    }
    let mut tak_inboxes = Vec::new();
    for (party, mut writer) in tak_writers.into_iter().enumerate() {
        let (inbox, mut writes) = tokio::sync::mpsc::channel::<(Instant, usize, Vec<u8>)>(4 * SLOTS);
        tak_inboxes.push(inbox);
        let (log, id) = (Arc::clone(&log), ids[party]);
        senders.push(tokio::spawn(async move {
            while let Some((due, slot, documents)) = writes.recv().await {
                tokio::time::sleep_until(due.into()).await;
                log.record(slot, id, Via::Cot, wall_ms(), Instant::now());
                writer
                    .write_all(&documents)
                    .await
                    .expect("the TAK connection takes CoT");
                writer.flush().await.expect("the TAK connection takes CoT");
            }
        }));
    }

    let box_size_deg = 10.0 * (entities as f64 / 100_000.0).sqrt();
    let fleet_shape = FleetShape {
        parties,
        box_size_deg,
        ..FleetShape::default()
    };
    let mut fleet = Fleet::new(4, fleet_shape, entities);
    let total_seconds = warm_up_s + seconds;
    let mut cpu_at_window = None;
    for second in 0..total_seconds {
        let second_start = start + Duration::from_secs(second);
        if second == warm_up_s {
            tokio::time::sleep_until(second_start.into()).await;
            cpu_at_window = Some((target.process.map(ChildProcess::cpu), Instant::now()));
        }
        if second > 0 {
            fleet.step(1_000);
        }
        // Written by hand rather than through `serde_json::Value`: at
        // 100,000 reports a second the client's own JSON would compete
        // with the server for the cores.
        let mut by_slot: Vec<Vec<Vec<String>>> = vec![vec![Vec::new(); parties as usize]; SLOTS];
        let mut cot_by_slot: Vec<Vec<Vec<u8>>> = vec![vec![Vec::new(); parties as usize]; SLOTS];
        for (i, mover) in fleet.movers.iter().enumerate() {
            let slot = i % SLOTS;
            let time = Timestamp(
                wall_at_start + (second * 1_000 + slot as u64 * slot_gap.as_millis() as u64) as i64,
            );
            let party = mover.party.0 as usize;
            match Via::of(i, cot_one_in) {
                Via::Cot => {
                    let event = CotEvent {
                        uid: mover.uid.clone(),
                        event_type: if mover.alt_m.is_some() {
                            "a-f-A"
                        } else {
                            "a-f-G-U-C"
                        }
                        .to_owned(),
                        how: Some("m-g".to_owned()),
                        time,
                        start: time,
                        stale: Timestamp(time.unix_ms() + COT_STALE_MS),
                        lat_deg: mover.position.lat_deg,
                        lon_deg: mover.position.lon_deg,
                        hae_m: mover.alt_m,
                        ce_m: None,
                        le_m: None,
                        speed_mps: Some(mover.speed_mps),
                        course_deg: Some(mover.course_deg),
                        callsign: None,
                        group: None,
                        remarks: None,
                    };
                    cot_by_slot[slot][party].extend_from_slice(write_cot_event(&event).as_bytes());
                }
                Via::Http => {
                    let alt = mover.alt_m.map_or("null".to_owned(), |a| format!("{a:.1}"));
                    by_slot[slot][party].push(format!(
                        r#"{{"uid":"{}","time":"{}","lon":{:.6},"lat":{:.6},"alt_m":{alt},"speed_mps":{:.1},"course_deg":{:.1}}}"#,
                        mover.uid,
                        format_rfc3339(time),
                        mover.position.lon_deg,
                        mover.position.lat_deg,
                        mover.speed_mps,
                        mover.course_deg,
                    ));
                }
            }
        }
        for (slot, (per_party, cot_per_party)) in by_slot.into_iter().zip(cot_by_slot).enumerate() {
            let due = second_start + slot_gap * slot as u32;
            let mut requests = Vec::new();
            for (party, reports) in per_party.into_iter().enumerate() {
                for chunk in reports.chunks(MAX_REPORTS_PER_REQUEST) {
                    requests.push((
                        party,
                        format!(r#"{{"reports":[{}]}}"#, chunk.join(",")).into_bytes(),
                    ));
                }
            }
            tokio::time::timeout(Duration::from_secs(30), slot_inboxes[slot].send((due, requests)))
                .await
                .expect("a slot's sender keeps up within 30 s")
                .unwrap();
            for (party, documents) in cot_per_party.into_iter().enumerate() {
                if documents.is_empty() {
                    continue;
                }
                tokio::time::timeout(
                    Duration::from_secs(30),
                    tak_inboxes[party].send((due, slot, documents)),
                )
                .await
                .expect("a TAK writer keeps up within 30 s")
                .unwrap();
            }
        }
    }
    drop((slot_inboxes, tak_inboxes));
    let limit = Duration::from_secs(total_seconds + 60);
    for sender in senders {
        tokio::time::timeout(limit, sender)
            .await
            .expect("the senders finish")
            .unwrap();
    }
    let (cpu_before, window_start) = cpu_at_window.expect("the window started");
    let window = window_start.elapsed();
    let server_use = target.process.map(|process| {
        let cpu = process.cpu() - cpu_before.unwrap_or_default();
        (cpu, process.rss_kib() as f64 / 1024.0)
    });

    // Drain: until no alert arrived for `QUIET` (the server caught up).
    let drain_start = Instant::now();
    let mut last = received.count.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < QUIET && drain_start.elapsed() < MAX_DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = received.count.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    stopping.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    let metrics = client
        .get(format!("{}/metrics", target.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let arrivals = std::mem::take(&mut *received.arrivals.lock().unwrap());
    let alerts = std::mem::take(&mut *received.alerts.lock().unwrap());
    let mut problems = Vec::new();

    // Latencies per way in and stream out, from the measured window.
    let mut latencies: BTreeMap<(Via, Out), Vec<Duration>> = BTreeMap::new();
    let mut before_window = 0u64;
    for arrival in &arrivals {
        let Some(alert) = alerts.get(&arrival.key) else {
            continue;
        };
        let Some((sent, via)) = alert.cause else { continue };
        if sent < measure_from {
            before_window += 1;
            continue;
        }
        latencies
            .entry((via, arrival.out))
            .or_default()
            .push(arrival.read.saturating_duration_since(sent));
    }

    // Delivery: each stream of each party has every alert concerning the
    // party exactly once, as the JSON events describe it.
    let outs: &[Out] = if cot_one_in > 0 {
        &[Out::Sse, Out::WebSocket, Out::Tak]
    } else {
        &[Out::Sse, Out::WebSocket]
    };
    let mut seen: HashMap<(u64, Out), HashSet<AlertKey>> = HashMap::new();
    let mut duplicates = 0u64;
    let mut differing = 0u64;
    let mut cot_time_differs = 0u64;
    let mut foreign = 0u64;
    for arrival in &arrivals {
        if !seen
            .entry((arrival.party, arrival.out))
            .or_default()
            .insert(arrival.key)
        {
            duplicates += 1;
        }
        match alerts.get(&arrival.key) {
            Some(alert) => {
                if !alert.parties.contains(&arrival.party) {
                    foreign += 1;
                }
                if arrival.out == Out::Tak {
                    if arrival.at_ms != alert.at_ms {
                        cot_time_differs += 1;
                    }
                } else if arrival.data_hash != alert.data_hash {
                    differing += 1;
                }
            }
            None => problems.push(format!(
                "a CoT alarm for alert {:?} no SSE or WebSocket stream carried",
                arrival.key
            )),
        }
    }
    let mut missing: BTreeMap<(u64, Out), u64> = BTreeMap::new();
    for (key, alert) in &alerts {
        for &party in &alert.parties {
            for &out in outs {
                if !seen.get(&(party, out)).is_some_and(|keys| keys.contains(key)) {
                    *missing.entry((party, out)).or_default() += 1;
                }
            }
        }
    }
    for ((party, out), count) in &missing {
        problems.push(format!(
            "party {party}'s {} stream missed {count} of its alerts",
            out.name()
        ));
    }
    let published = counter(&metrics, "deconflict_track_alerts_total");
    if published != alerts.len() as u64 {
        problems.push(format!(
            "the server published {published} alerts, the streams carried {}",
            alerts.len()
        ));
    }
    let unmatched = alerts.values().filter(|a| !a.stale && a.cause.is_none()).count();
    let refused_batches = refused.load(Ordering::Relaxed);
    let cot_dropped = counter(&metrics, "deconflict_cot_rate_dropped_total");
    let cot_refused = counter(&metrics, "deconflict_track_reports_refused_total");
    let lagged = received.lagged.load(Ordering::Relaxed);
    for (count, what) in [
        (duplicates, "alerts read twice on one stream"),
        (differing, "alerts whose SSE and WebSocket events differ"),
        (cot_time_differs, "CoT alarms whose time is not the alert's"),
        (foreign, "alerts sent to a party they do not concern"),
        (unmatched as u64, "report-raised alerts not matched to a report"),
        (refused_batches, "batches refused"),
        (cot_dropped, "CoT reports dropped by the rate limit"),
        (cot_refused, "reports refused"),
        (lagged, "events lagged (dropped for a slow stream)"),
    ] {
        if count > 0 {
            problems.push(format!("{count} {what}"));
        }
    }

    let mut report = vec![format!(
        "report→event, {entities} entities ({} over CoT/TLS), {parties} parties, {SLOTS} slots/s, \
         {seconds} s measured after {warm_up_s} s: {} alerts published, {} timed events, {before_window} caused before the window",
        (0..entities).filter(|&i| Via::of(i, cot_one_in) == Via::Cot).count(),
        alerts.len(),
        latencies.values().map(Vec::len).sum::<usize>(),
    )];
    let mut all = Vec::new();
    for ((via, out), samples) in &latencies {
        report.push(format!(
            "  {:>7} in → {:<9} out: {}",
            via.name(),
            out.name(),
            summary(samples.clone())
        ));
        all.extend_from_slice(samples);
    }
    report.push(format!("  every way in and out: {}", summary(all)));
    report.push(format!(
        "  POST /v1/tracks answered: {}",
        summary(std::mem::take(&mut *post_times.lock().unwrap()))
    ));
    if let Some((cpu, rss_mib)) = server_use {
        report.push(format!(
            "  server CPU {:.2} s over {:.1} s ({:.0} % of one core), RSS {rss_mib:.0} MiB",
            cpu.as_secs_f64(),
            window.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / window.as_secs_f64(),
        ));
    }
    let mut caused_by = BTreeMap::new();
    for (_, via) in alerts.values().filter_map(|a| a.cause) {
        *caused_by.entry(via).or_default() += 1;
    }
    Outcome {
        report,
        problems,
        refused_batches,
        alerts: alerts.len(),
        caused_by,
    }
}
