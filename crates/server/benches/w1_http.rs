//! W1 over HTTP with the durable store: the service on 127.0.0.1 over a
//! temporary directory (SQLite WAL, synchronous=FULL, group commit), the
//! engine issue's workload (`deconflict_sim::workload`, 1,000 parties),
//! and concurrent clients as integrators would run them.
//!
//! The service runs in its own tokio runtime (workers named
//! `tokio-runtime-worker`, as in `deconflict serve`) and the clients in
//! another (threads named `bench-client`), as integrators are other
//! processes: the clients' work (building requests, reading every answer
//! into a `serde_json::Value`) is not counted as the service's.
//!
//! Five phases, each reported in requests (features) per second, with the
//! process's CPU time per request (`/proc/self/stat`: the service and the
//! bench's own clients, which share the process; the figure earlier
//! versions printed) and the server's (the process's minus the client
//! runtime's threads and the bench's main thread):
//! 1. preload N activities with `POST /v1/activities` (notify-and-commit,
//!    growing from 0 to N);
//! 2. `POST /v1/activities/check` of new activities among N (no storage);
//! 3. notify-and-commit of new activities among N;
//! 4. the same with each party's features sent as FeatureCollections of at
//!    most `DECONFLICT_BENCH_PER_REQUEST` (100) per request, as an
//!    integrator notifying many at once would (the preload is batched that
//!    way too unless `DECONFLICT_BENCH_PRELOAD_SINGLE=1`). The workload
//!    spreads features over 1,000 parties, so 5,000 probes make ~1,000
//!    collections of ~5: with one request in flight per connection, this
//!    phase measures commit latency more than throughput;
//! 5. throughput: `DECONFLICT_BENCH_THROUGHPUT` (20,000) more features of
//!    the workload in full collections of `DECONFLICT_BENCH_THROUGHPUT_PER_REQUEST`
//!    (200), each collection sent by one party (round robin over the
//!    parties: the workload's party is a uniform draw, so owning a
//!    collection's features changes no geometry or time), over
//!    `DECONFLICT_BENCH_THROUGHPUT_CLIENTS` (16) connections: enough
//!    features in flight to keep the driver's group commit full, as
//!    integrators notifying their plans in bulk would. Reported as
//!    notifies committed per second.
//!
//! `cargo bench -p deconflict-server --bench w1_http` runs N = 100,000
//! (`DECONFLICT_BENCH_ACTIVITIES`, `DECONFLICT_BENCH_CLIENTS` to change);
//! under `cargo test` it runs on 300 activities so the harness cannot rot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deconflict_engine::{ActivitySpec, FootprintSpec, Timestamp};
use deconflict_formats::format_rfc3339;
use deconflict_server::{AppState, ServerConfig};
use deconflict_sim::workload::{Workload, WorkloadShape};
use serde_json::{json, Value};

/// The allocator the `deconflict` binary uses (crates/cli/src/main.rs), so
/// the bench measures the service as it runs; with its settings
/// (`deconflict_server::allocator::settle` at the start of `main`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn feature(spec: &ActivitySpec) -> Value {
    let position = |p: &deconflict_geodesy::LonLat| json!([p.lon_deg, p.lat_deg]);
    let (geometry, extra) = match &spec.footprint {
        FootprintSpec::Point { center, radius_m } => (
            json!({"type": "Point", "coordinates": position(center)}),
            json!({"radius_m": radius_m}),
        ),
        FootprintSpec::LineString {
            route, corridor_m, ..
        } => (
            json!({"type": "LineString", "coordinates": route.iter().map(position).collect::<Vec<_>>()}),
            json!({"corridor_m": corridor_m}),
        ),
        FootprintSpec::Polygon { rings } => (
            json!({"type": "Polygon", "coordinates": rings.iter().map(|r| r.iter().map(position).collect::<Vec<_>>()).collect::<Vec<_>>()}),
            json!({}),
        ),
    };
    let mut properties = json!({
        "kind": spec.kind.as_str(),
        "start": format_rfc3339(spec.window.start),
        "end": spec.window.end.map(format_rfc3339),
        "sharing": "need_to_know",
    });
    for (k, v) in extra.as_object().unwrap() {
        properties[k] = v.clone();
    }
    json!({"type": "Feature", "geometry": geometry, "properties": properties})
}

/// The client runtime's thread name.
const CLIENT_THREAD: &str = "bench-client";

struct Phase {
    requests: usize,
    elapsed: Duration,
    conflicts: usize,
    /// Process CPU (user + system, every thread) during the phase.
    cpu: Duration,
    /// The clients' part of `cpu`: the client runtime's threads and the
    /// bench's main thread (which waits for them).
    client_cpu: Duration,
    /// CPU per thread name during the phase (threads that exited within it
    /// are missing): what runs in series shows as a thread near one core.
    threads: Vec<(String, Duration)>,
}

/// CPU so far of each live thread, by thread id: (name, user + system).
/// The main thread (its id is the process's) is named [`MAIN_THREAD`].
fn thread_cpu() -> std::collections::BTreeMap<u64, (String, Duration)> {
    let mut threads = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = stat_ticks(&stat) {
            let name = if u64::from(std::process::id()) == tid {
                MAIN_THREAD.to_owned()
            } else {
                name
            };
            threads.insert(tid, (name, Duration::from_millis(ticks * 10)));
        }
    }
    threads
}

/// The name and the user + system ticks of a `/proc/.../stat` line: the
/// name (field 2) is in parentheses and may hold spaces, so the fields
/// are counted from its closing one. Ticks are USER_HZ, 100 per second on
/// Linux whatever the kernel's own tick.
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    Some((name, fields.get(11)? + fields.get(12)?))
}

/// The name the bench's main thread is reported under (its own is the
/// binary's, which changes with every build).
const MAIN_THREAD: &str = "bench-main";

/// What each thread name used between two [`thread_cpu`] readings, most first.
fn thread_delta(
    before: &std::collections::BTreeMap<u64, (String, Duration)>,
    after: &std::collections::BTreeMap<u64, (String, Duration)>,
) -> Vec<(String, Duration)> {
    let mut by_name: std::collections::BTreeMap<String, Duration> = Default::default();
    for (tid, (name, cpu)) in after {
        let earlier = before.get(tid).map_or(Duration::ZERO, |(_, cpu)| *cpu);
        *by_name.entry(name.clone()).or_default() += cpu.saturating_sub(earlier);
    }
    let mut threads: Vec<_> = by_name.into_iter().filter(|(_, cpu)| !cpu.is_zero()).collect();
    threads.sort_by_key(|thread| std::cmp::Reverse(thread.1));
    threads
}

/// The process's CPU time so far (user + system, all threads, those that
/// exited included), from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    Duration::from_millis(stat_ticks(&stat).map_or(0, |(_, ticks)| ticks) * 10)
}

/// Posts every `(token, body)` of `work` to `path` with `clients`
/// concurrent connections; `tally` checks each answer (status, body) and
/// says how many conflicts it returned. The time excludes encoding.
async fn post_all(
    url: &str,
    path: &str,
    work: Vec<(String, Value)>,
    clients: usize,
    tally: impl Fn(u16, &Value) -> usize + Copy + Send + 'static,
) -> Measured {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let queue = Arc::new(std::sync::Mutex::new(
        work.into_iter()
            .map(|(t, f)| (t, f.to_string()))
            .collect::<Vec<_>>(),
    ));
    let started = Instant::now();
    let cpu_before = process_cpu();
    let threads_before = thread_cpu();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, queue, url) = (client.clone(), Arc::clone(&queue), format!("{url}{path}"));
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            loop {
                let Some((token, body)) = queue.lock().unwrap().pop() else {
                    return conflicts;
                };
                let response = client
                    .post(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap();
                conflicts += tally(status, &answer);
            }
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let threads = thread_delta(&threads_before, &thread_cpu());
    let client_cpu = threads
        .iter()
        .filter(|(name, _)| name == CLIENT_THREAD || name == MAIN_THREAD)
        .map(|(_, cpu)| *cpu)
        .sum();
    Measured {
        elapsed: started.elapsed(),
        conflicts,
        cpu: process_cpu().saturating_sub(cpu_before),
        client_cpu,
        threads,
    }
}

/// What [`post_all`] measured (see [`Phase`]).
struct Measured {
    elapsed: Duration,
    conflicts: usize,
    cpu: Duration,
    client_cpu: Duration,
    threads: Vec<(String, Duration)>,
}

/// Sends `features` (each with its party's token) with `clients`
/// concurrent connections; every answer must be `expect`.
async fn drive(url: &str, path: &str, work: Vec<(String, Value)>, clients: usize, expect: u16) -> Phase {
    let requests = work.len();
    let measured = post_all(url, path, work, clients, move |status, answer| {
        assert_eq!(status, expect, "{answer}");
        answer["conflicts"].as_array().map_or(0, Vec::len)
    })
    .await;
    Phase::of(requests, measured)
}

/// Sends `work` as FeatureCollections of at most `per_request` features of
/// one party each (as an integrator notifying its own activities would),
/// with `clients` concurrent connections; every feature must commit (201).
/// Counts features, not requests.
async fn drive_collections(
    url: &str,
    work: Vec<(String, Value)>,
    per_request: usize,
    clients: usize,
) -> Phase {
    let mut by_party: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for (token, feature) in work {
        by_party.entry(token).or_default().push(feature);
    }
    let requests: Vec<(String, Value)> = by_party
        .into_iter()
        .flat_map(|(token, features)| {
            features
                .chunks(per_request.max(1))
                .map(|chunk| {
                    (
                        token.clone(),
                        json!({"type": "FeatureCollection", "features": chunk}),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    post_collections(url, requests, clients).await
}

/// Sends `features` as full collections of `per_request`, collection `i`
/// by party `i mod tokens` (the throughput phase, see the module comment).
async fn drive_full_collections(
    url: &str,
    features: Vec<Value>,
    tokens: &[String],
    per_request: usize,
    clients: usize,
) -> Phase {
    let requests: Vec<(String, Value)> = features
        .chunks(per_request.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            (
                tokens[i % tokens.len()].clone(),
                json!({"type": "FeatureCollection", "features": chunk}),
            )
        })
        .collect();
    post_collections(url, requests, clients).await
}

/// Posts FeatureCollections; every feature must commit (201).
async fn post_collections(url: &str, requests: Vec<(String, Value)>, clients: usize) -> Phase {
    let features: usize = requests
        .iter()
        .map(|(_, c)| c["features"].as_array().map_or(0, Vec::len))
        .sum();
    let measured = post_all(url, "/v1/activities", requests, clients, |status, answer| {
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().unwrap();
        for result in results {
            assert_eq!(result["status"], 201, "{result}");
        }
        results
            .iter()
            .map(|result| result["conflicts"].as_array().map_or(0, Vec::len))
            .sum()
    })
    .await;
    Phase::of(features, measured)
}

impl Phase {
    fn of(requests: usize, measured: Measured) -> Phase {
        Phase {
            requests,
            elapsed: measured.elapsed,
            conflicts: measured.conflicts,
            cpu: measured.cpu,
            client_cpu: measured.client_cpu,
            threads: measured.threads,
        }
    }
}

fn report(name: &str, phase: &Phase) {
    println!(
        "{name:<44} {:>7} requests in {:>7.2} s = {:>8.0} /s ({} conflicts returned) cpu {:.0} µs/request, server {:.0} µs/request",
        phase.requests,
        phase.elapsed.as_secs_f64(),
        phase.requests as f64 / phase.elapsed.as_secs_f64(),
        phase.conflicts,
        phase.cpu.as_secs_f64() * 1e6 / phase.requests.max(1) as f64,
        phase.cpu.saturating_sub(phase.client_cpu).as_secs_f64() * 1e6 / phase.requests.max(1) as f64,
    );
    // Each thread as a share of one core, and per request from its own CPU
    // time (10 ms ticks): finer than a whole percent of a short phase.
    let (shares, per_request): (Vec<String>, Vec<String>) = phase
        .threads
        .iter()
        .map(|(name, cpu)| {
            let cpu = cpu.as_secs_f64();
            (
                format!("{name} {:.0} %", 100.0 * cpu / phase.elapsed.as_secs_f64()),
                format!("{name} {:.1}", cpu * 1e6 / phase.requests.max(1) as f64),
            )
        })
        .unzip();
    println!("    threads (% of one core): {}", shares.join(", "));
    println!("    threads (µs per request): {}", per_request.join(", "));
}

fn main() {
    deconflict_server::allocator::settle();
    let benching = std::env::args().any(|arg| arg == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env(
        "DECONFLICT_BENCH_ACTIVITIES",
        if benching { 100_000 } else { 300 },
    );
    let clients = env("DECONFLICT_BENCH_CLIENTS", 64);
    let probes = env("DECONFLICT_BENCH_PROBES", if benching { 20_000 } else { 100 });
    // Features per FeatureCollection in the batched phases; the preload is
    // batched too unless DECONFLICT_BENCH_PRELOAD_SINGLE=1 (one request per
    // activity, as before the batch endpoint).
    let per_request = env("DECONFLICT_BENCH_PER_REQUEST", 100);
    let preload_single = env("DECONFLICT_BENCH_PRELOAD_SINGLE", 0) == 1;
    let throughput = env("DECONFLICT_BENCH_THROUGHPUT", if benching { 20_000 } else { 400 });
    let throughput_per_request = env("DECONFLICT_BENCH_THROUGHPUT_PER_REQUEST", 200);
    let throughput_clients = env("DECONFLICT_BENCH_THROUGHPUT_CLIENTS", 16);
    // The service's runtime as `deconflict serve` builds it; the clients
    // get their own (as other processes would be), so that the threads'
    // CPU tells the two apart.
    let server = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (state, admin, url) = server.block_on(async {
        let mut config = ServerConfig::new(dir.path());
        config.limits.rate_per_s = 1e9;
        config.limits.rate_burst = 1e9;
        let (state, opened) = tokio::task::block_in_place(|| AppState::open(config)).unwrap();
        let admin = std::fs::read_to_string(opened.admin_token_path)
            .unwrap()
            .trim()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(deconflict_server::serve(
            listener,
            state.clone(),
            std::future::pending(),
        ));
        (state, admin, url)
    });
    client_runtime.block_on(async move {
        // The workload starts tomorrow so that nothing ends during the run.
        let now_ms = deconflict_server::driver::now_ms();
        let shape = WorkloadShape {
            start: Timestamp(now_ms + 86_400_000),
            ..WorkloadShape::default()
        };
        let parties = shape.parties as usize;
        let client = reqwest::Client::new();
        let mut tokens = Vec::with_capacity(parties);
        for p in 0..parties {
            let party: Value = client
                .post(format!("{url}/v1/parties"))
                .bearer_auth(&admin)
                .json(&json!({"name": format!("party-{p}"), "kind": "military"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tokens.push(party["token"].as_str().unwrap().to_owned());
        }
        let mut workload = Workload::new(2026, shape);
        let mut batch = |count: usize| -> Vec<(String, Value)> {
            workload
                .activities(count)
                .iter()
                .map(|spec| (tokens[spec.party.0 as usize].clone(), feature(spec)))
                .collect()
        };
        println!("W1 over HTTP, {n} activities, {clients} concurrent clients, durable store");
        if preload_single {
            let preload = drive(&url, "/v1/activities", batch(n), clients, 201).await;
            report(&format!("notify-and-commit, 0 → {n}"), &preload);
        } else {
            let preload = drive_collections(&url, batch(n), per_request, clients).await;
            report(
                &format!("notify-and-commit, 0 → {n}, ≤{per_request}/request"),
                &preload,
            );
        }
        let checks = drive(&url, "/v1/activities/check", batch(probes), clients, 200).await;
        report(&format!("check among {n}"), &checks);
        let notifies = drive(&url, "/v1/activities", batch(probes), clients, 201).await;
        report(&format!("notify-and-commit among {n}"), &notifies);
        let collected = drive_collections(&url, batch(probes), per_request, clients).await;
        report(
            &format!("notify-and-commit among {n}, ≤{per_request}/request"),
            &collected,
        );
        let full = workload.activities(throughput).iter().map(feature).collect();
        let bulk =
            drive_full_collections(&url, full, &tokens, throughput_per_request, throughput_clients).await;
        report(
            &format!("throughput among {n}, {throughput_per_request}/request × {throughput_clients}"),
            &bulk,
        );
    });
    state.driver.stop();
}
