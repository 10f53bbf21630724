//! Report → event latency over the server (issue 4, W3: "report→event p99
//! ≤ 20 ms over the server"), measured as a client sees it.
//!
//! The real service runs in a child process (this test binary again,
//! running only [`latency_child_server`]) on 127.0.0.1 port 0 over a
//! temporary directory, so that its CPU time is its own. The parent is the
//! clients: a W3-like fleet (`deconflict_sim::fleet`: random headings,
//! 5–250 m/s, aircraft above 60 m/s) of N entities of several parties,
//! each reporting once a second through `POST /v1/tracks`, and every
//! party's event streams, one SSE (`/v1/events`) and one WebSocket
//! (`/v1/ws`).
//!
//! The fleet is split into `SLOTS` slots sent 1000 / `SLOTS` ms apart, as
//! gateways that each forward their units' reports would (one request per
//! party and slot, at most `max_reports_per_request` reports each); every
//! entity reports once a second. The box the fleet moves in is scaled with
//! N so that the density, and so the alerts per entity, is W3's (100,000
//! in 10° × 10°).
//!
//! **How a latency is measured.** The client remembers, for each slot and
//! party, when it sent each request (wall-clock milliseconds and a
//! monotonic instant). An alert event carries its `at`: the server's clock
//! when it processed the report that raised it, so the report that caused
//! it is the latest report of one of the alert's entities sent at or before
//! `at`. The latency is the monotonic time from sending that request to
//! reading the event from the stream. Alerts not raised by a report (a
//! `stale` clearing comes from the thread's tick) are not counted.
//!
//! Not a test of the service's correctness: `#[ignore]`d, run by hand,
//! prints figures (`-- --nocapture`). Bounded in count and in time: every
//! phase fails rather than hangs.
//!
//! `cargo test -p deconflict-server --test latency -- --ignored --nocapture report_to_event`
//! runs 1,000 and 10,000 entities; `DECONFLICT_LATENCY_ENTITIES=1000,10000,100000`
//! picks the sizes, `DECONFLICT_LATENCY_SECONDS` the measured seconds (10),
//! `DECONFLICT_LATENCY_PARTIES` the parties (2).

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::child::ChildProcess;
use common::sse::Events;
use deconflict_engine::Timestamp;
use deconflict_formats::{format_rfc3339, parse_rfc3339};
use deconflict_sim::fleet::{Fleet, FleetShape};
use futures_util::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const CHILD_DIR: &str = "DECONFLICT_LATENCY_CHILD_DIR";
const CHILD_READY: &str = "latency-child-server listening";

/// Request slots per second: a slot's reports leave together.
const SLOTS: usize = 20;
/// Reports in one request at most (the server's default limit).
const MAX_REPORTS_PER_REQUEST: usize = 1_000;
/// Seconds sent before measuring: the first reports make every entity new
/// and open every alert of the starting positions at once.
const WARM_UP_S: u64 = 3;
/// How long the streams are read after the last report.
const DRAIN: Duration = Duration::from_secs(2);
/// Sends remembered per slot and party (a few seconds' worth).
const SENDS_KEPT: usize = 8;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}")))
        .unwrap_or(default)
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut samples: Vec<Duration>) -> String {
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

/// Not a test: the server, in its own process (see the module comment). It
/// runs until its standard input closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the latency test's server process: the test starts it"]
async fn latency_child_server() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        println!("not started by the latency test ({CHILD_DIR} is not set): nothing to serve");
        return;
    };
    common::child::serve_until_stdin_closes(&dir, CHILD_READY, |config| {
        if let Ok(reports) = std::env::var("DECONFLICT_LATENCY_PUBLISH_EVERY") {
            config.live.publish_every_reports = reports
                .parse()
                .expect("DECONFLICT_LATENCY_PUBLISH_EVERY: a count");
        }
    })
    .await;
}

/// A request's departure: wall-clock milliseconds (to compare with an
/// alert's `at`) and the monotonic instant (to measure from).
type Sent = (i64, Instant);

/// When each slot's requests left, per `(slot, server party id)`.
#[derive(Default)]
struct SendLog {
    sends: Mutex<HashMap<(usize, u64), VecDeque<Sent>>>,
}

impl SendLog {
    fn record(&self, slot: usize, party: u64, wall: i64, at: Instant) {
        let mut sends = self.sends.lock().unwrap();
        let kept = sends.entry((slot, party)).or_default();
        kept.push_back((wall, at));
        if kept.len() > SENDS_KEPT {
            kept.pop_front();
        }
    }

    /// The instant the report of `entity` processed at `at_ms` left: its
    /// slot's latest send at or before `at_ms`.
    fn sent(&self, entity: &Value, at_ms: i64) -> Option<Instant> {
        let party = entity["party"].as_u64()?;
        let index: usize = entity["uid"].as_str()?.rsplit_once('-')?.1.parse().ok()?;
        let sends = self.sends.lock().unwrap();
        sends
            .get(&(index % SLOTS, party))?
            .iter()
            .rev()
            .find(|(wall, _)| *wall <= at_ms)
            .map(|(_, at)| *at)
    }

    /// The send of the report that raised `alert`: the latest one of its
    /// entities' reports sent by the time the server took it.
    fn cause(&self, alert: &Value) -> Option<Instant> {
        if alert["reason"] == "stale" {
            return None;
        }
        let at_ms = parse_rfc3339(alert["at"].as_str()?).ok()?.unix_ms();
        let entities: Vec<&Value> = match alert.get("tracks") {
            Some(Value::Array(pair)) => pair.iter().collect(),
            _ => vec![alert.get("track")?],
        };
        entities.iter().filter_map(|e| self.sent(e, at_ms)).max()
    }
}

/// What the streams read: latencies counted from `measure_from` on.
#[derive(Default)]
struct Received {
    sse: Mutex<Vec<Duration>>,
    ws: Mutex<Vec<Duration>>,
    unmatched: AtomicU64,
    lagged: AtomicU64,
    before_window: AtomicU64,
}

impl Received {
    fn take(&self, websocket: bool, kind: &str, data: &Value, log: &SendLog, measure_from: Instant) {
        let now = Instant::now();
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
        let Some(sent) = log.cause(data) else {
            if data["reason"] != "stale" {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        if sent < measure_from {
            self.before_window.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let samples = if websocket { &self.ws } else { &self.sse };
        samples.lock().unwrap().push(now - sent);
    }
}

/// One run: `entities` of `parties` parties for `seconds` measured seconds.
async fn run(entities: usize, parties: u64, seconds: u64) {
    let server = ChildProcess::start("latency_child_server", CHILD_DIR, CHILD_READY, &[]);
    let client = Client::builder()
        .pool_max_idle_per_host(4 * SLOTS)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for p in 0..parties {
        let answer = client
            .post(format!("{}/v1/parties", server.url))
            .bearer_auth(&server.admin)
            .json(&json!({"name": format!("party {p}"), "kind": "military"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        let body: Value = answer.json().await.unwrap();
        ids.push(body["id"].as_u64().unwrap());
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    let sends = Arc::new(SendLog::default());
    let received_all = Arc::new(Received::default());
    let stopping = Arc::new(AtomicBool::new(false));
    // Measured from the end of the warm-up (set before any send: the
    // senders start after it is known).
    let start = Instant::now() + Duration::from_millis(500);
    let measure_from = start + Duration::from_secs(WARM_UP_S);

    // Every party's streams: one SSE, one WebSocket, each with its own
    // handles on the tallies, the send log and the stop flag.
    let reader_handles = || {
        (
            Arc::clone(&received_all),
            Arc::clone(&sends),
            Arc::clone(&stopping),
        )
    };
    let mut readers = Vec::new();
    for token in &tokens {
        let mut events = Events::open_at(&client, &server.url, token).await;
        let (received, log, stop) = reader_handles();
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(next) = tokio::time::timeout(Duration::from_millis(200), events.try_next()).await
                else {
                    continue;
                };
                let Ok(Some(event)) = next else { return };
                received.take(false, &event.kind, &event.data, &log, measure_from);
            }
        }));
        let mut socket = common::websocket_at(&server.url, token).await;
        let (received, log, stop) = reader_handles();
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
                received.take(true, &kind, &message["data"], &log, measure_from);
            }
        }));
    }

    // The fleet, and one sender per slot fed each second by the generator.
    let box_size_deg = 10.0 * (entities as f64 / 100_000.0).sqrt();
    let shape = FleetShape {
        parties,
        box_size_deg,
        ..FleetShape::default()
    };
    let mut fleet = Fleet::new(4, shape, entities);
    let total_seconds = WARM_UP_S + seconds;
    let slot_gap = Duration::from_millis(1_000 / SLOTS as u64);
    let mut slot_inboxes = Vec::new();
    let refused = Arc::new(AtomicU64::new(0));
    let post_times = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut senders = Vec::new();
    for slot in 0..SLOTS {
        let (inbox, mut bodies) = tokio::sync::mpsc::channel::<(Instant, Vec<(usize, Vec<u8>)>)>(4);
        slot_inboxes.push(inbox);
        let (client, url, tokens, ids) = (client.clone(), server.url.clone(), tokens.clone(), ids.clone());
        let (log, refused, post_times) = (Arc::clone(&sends), Arc::clone(&refused), Arc::clone(&post_times));
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
                    log.record(slot, ids[party], wall, sent);
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
    let wall_at_start = wall_ms() + 500;
    let mut cpu_at_window = None;
    for second in 0..total_seconds {
        let second_start = start + Duration::from_secs(second);
        if second == WARM_UP_S {
            tokio::time::sleep_until(second_start.into()).await;
            cpu_at_window = Some((server.cpu(), Instant::now()));
        }
        if second > 0 {
            fleet.step(1_000);
        }
        // Written by hand rather than through `serde_json::Value`: at
        // 100,000 reports a second the client's own JSON would compete
        // with the server for the cores.
        let mut by_slot: Vec<Vec<Vec<String>>> = vec![vec![Vec::new(); parties as usize]; SLOTS];
        for (i, mover) in fleet.movers.iter().enumerate() {
            let slot = i % SLOTS;
            let time = Timestamp(
                wall_at_start + (second * 1_000 + slot as u64 * slot_gap.as_millis() as u64) as i64,
            );
            let alt = mover.alt_m.map_or("null".to_owned(), |a| format!("{a:.1}"));
            by_slot[slot][mover.party.0 as usize].push(format!(
                r#"{{"uid":"{}","time":"{}","lon":{:.6},"lat":{:.6},"alt_m":{alt},"speed_mps":{:.1},"course_deg":{:.1}}}"#,
                mover.uid,
                format_rfc3339(time),
                mover.position.lon_deg,
                mover.position.lat_deg,
                mover.speed_mps,
                mover.course_deg,
            ));
        }
        for (slot, per_party) in by_slot.into_iter().enumerate() {
            let mut requests = Vec::new();
            for (party, reports) in per_party.into_iter().enumerate() {
                for chunk in reports.chunks(MAX_REPORTS_PER_REQUEST) {
                    requests.push((
                        party,
                        format!(r#"{{"reports":[{}]}}"#, chunk.join(",")).into_bytes(),
                    ));
                }
            }
            let due = second_start + slot_gap * slot as u32;
            tokio::time::timeout(Duration::from_secs(30), slot_inboxes[slot].send((due, requests)))
                .await
                .expect("a slot's sender keeps up within 30 s")
                .unwrap();
        }
    }
    drop(slot_inboxes);
    let limit = Duration::from_secs(total_seconds + 60);
    for sender in senders {
        tokio::time::timeout(limit, sender)
            .await
            .expect("the senders finish")
            .unwrap();
    }
    let (cpu_before, window_start) = cpu_at_window.expect("the window started");
    let window = window_start.elapsed();
    let server_cpu = server.cpu() - cpu_before;
    let rss_at_window = server.rss_kib() as f64 / 1024.0;
    tokio::time::sleep(DRAIN).await;
    stopping.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    let sse = std::mem::take(&mut *received_all.sse.lock().unwrap());
    let ws = std::mem::take(&mut *received_all.ws.lock().unwrap());
    let posts = std::mem::take(&mut *post_times.lock().unwrap());
    let mut all = sse.clone();
    all.extend_from_slice(&ws);
    println!(
        "latency {entities} entities, {parties} parties, {SLOTS} slots/s, {seconds} s measured after {WARM_UP_S} s: \
         report→event all streams {}; SSE {}; WebSocket {}; POST /v1/tracks answered {}; \
         server CPU {:.2} s over {:.1} s ({:.0} % of one core), RSS {:.0} MiB; \
         {} batches refused, {} events lagged (dropped), {} events not matched to a report, {} caused before the window",
        summary(all),
        summary(sse),
        summary(ws),
        summary(posts),
        server_cpu.as_secs_f64(),
        window.as_secs_f64(),
        100.0 * server_cpu.as_secs_f64() / window.as_secs_f64(),
        rss_at_window,
        refused.load(Ordering::Relaxed),
        received_all.lagged.load(Ordering::Relaxed),
        received_all.unmatched.load(Ordering::Relaxed),
        received_all.before_window.load(Ordering::Relaxed),
    );
    assert_eq!(refused.load(Ordering::Relaxed), 0, "every batch is taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (prints figures), run by hand: see the module comment"]
async fn report_to_event_latency() {
    let sizes: Vec<usize> = std::env::var("DECONFLICT_LATENCY_ENTITIES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("DECONFLICT_LATENCY_ENTITIES: counts"))
        .collect();
    let seconds = env_or("DECONFLICT_LATENCY_SECONDS", 10u64);
    let parties = env_or("DECONFLICT_LATENCY_PARTIES", 2u64);
    assert!((2..=100).contains(&parties), "2 to 100 parties");
    assert!((1..=600).contains(&seconds), "1 to 600 s");
    for entities in sizes {
        assert!((1..=200_000).contains(&entities), "1 to 200,000 entities");
        tokio::time::timeout(
            Duration::from_secs(WARM_UP_S + seconds + 180),
            run(entities, parties, seconds),
        )
        .await
        .expect("one run ends within its bound");
    }
}
