//! W3: live tracks. N entities report once a second (random headings,
//! 5–250 m/s, 1,000 parties, the engine workload's 10° × 10° box) against
//! N/10 fences; one *tick* is every entity's report for one second plus
//! `handle_tick`, with every alert drained. Sizes come from
//! `DECONFLICT_TRACK_SIZES` (comma-separated entity counts, default
//! `100000`). Under `cargo test` it runs once on 1,000 entities, so that
//! the harness cannot rot.
//!
//! Besides criterion's figures it prints the tick's p50/p99/max over
//! `DECONFLICT_TRACK_TICKS` seconds (default 60) and the resident memory
//! per live entity, after the first tick and after the timed ones.
//!
//! `DECONFLICT_TRACK_CELL_M` overrides the index's cell size,
//! `DECONFLICT_TRACK_QUIET_MS` the quiet horizon (0: a full search on every
//! report) and `DECONFLICT_TRACK_REFILE_MS` the refiling period (tuning).
//! A tick hands the second's reports to `handle_reports` as one batch on
//! `DECONFLICT_TRACK_THREADS` threads (default 2); `DECONFLICT_TRACK_BATCH=0`
//! calls `handle_report` on each report instead (the path before batches);
//! `DECONFLICT_TRACK_RUN` sets `batch_run_reports` (reports per run).
//! `DECONFLICT_TRACK_CALL=K` hands the second's reports to
//! `handle_reports` in calls of K reports each instead (the server's many
//! small calls a second); the line then also gives the CPU per report.
//!
//! `cargo bench -p deconflict-sim --bench tracks`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deconflict_engine::track::{PositionReport, TrackConfig, TrackWatch};
use deconflict_engine::Timestamp;
use deconflict_sim::fleet::{Fleet, FleetShape};

fn benching() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn sizes() -> Vec<usize> {
    if !benching() {
        return vec![1_000];
    }
    std::env::var("DECONFLICT_TRACK_SIZES")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("DECONFLICT_TRACK_SIZES holds numbers"))
        .collect()
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Time this thread has spent on a CPU (Linux schedstat, nanoseconds): on
/// a machine shared with other work, wall-clock time also counts waiting
/// for a core.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|ns| ns.parse().ok()))
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Time all of this process's threads have spent on a CPU (a batch's
/// worker threads have ended by the time it is read).
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn batched() -> bool {
    std::env::var("DECONFLICT_TRACK_BATCH").map_or(true, |v| v != "0")
}

/// Reports per `handle_reports` call (`DECONFLICT_TRACK_CALL`); the whole
/// second in one call by default.
fn call_reports() -> usize {
    std::env::var("DECONFLICT_TRACK_CALL").map_or(usize::MAX, |k| {
        k.parse::<usize>()
            .ok()
            .filter(|&k| k > 0)
            .expect("DECONFLICT_TRACK_CALL is a positive number")
    })
}

/// 2022-10-08T00:00:00Z, as in the engine workload.
const START_MS: i64 = 1_665_187_200_000;

struct Run {
    watch: TrackWatch,
    fleet: Fleet,
    now: Timestamp,
    alerts: u64,
    /// Resident memory with the fences set, before any entity.
    fences_mib: f64,
}

impl Run {
    /// One second: the fleet moves (not timed), then every entity reports
    /// and the watch ticks (timed), then the alerts are drained (timed).
    /// Returns the wall-clock time, this thread's CPU time and the
    /// process's (all threads) CPU time.
    fn tick(&mut self) -> (Duration, Duration, Duration) {
        self.fleet.step(1_000);
        self.now = self.now.plus_ms(1_000);
        let now = self.now;
        let reports: Vec<PositionReport> = self.fleet.reports(now).collect();
        let (started, cpu_started, process_started) = (Instant::now(), thread_cpu(), process_cpu());
        if batched() {
            for call in reports.chunks(call_reports().min(reports.len()).max(1)) {
                for outcome in self.watch.handle_reports(now, call) {
                    outcome.expect("valid report");
                }
            }
        } else {
            for report in &reports {
                self.watch.handle_report(now, report).expect("valid report");
            }
        }
        self.watch.handle_tick(now);
        while self.watch.poll_alert().is_some() {
            self.alerts += 1;
        }
        (
            started.elapsed(),
            thread_cpu().saturating_sub(cpu_started),
            process_cpu().saturating_sub(process_started),
        )
    }
}

fn build(n: usize) -> Run {
    let mut fleet = Fleet::new(2026, FleetShape::default(), n);
    let fences = fleet.fences(n / 10);
    let before_mib = resident_mib();
    let mut config = TrackConfig::default();
    if let Ok(threads) = std::env::var("DECONFLICT_TRACK_THREADS") {
        config.batch_threads = threads.parse().expect("DECONFLICT_TRACK_THREADS is a number");
    }
    if let Ok(run) = std::env::var("DECONFLICT_TRACK_RUN") {
        config.batch_run_reports = run.parse().expect("DECONFLICT_TRACK_RUN is a number");
    }
    if let Ok(cell_m) = std::env::var("DECONFLICT_TRACK_CELL_M") {
        config.grid_cell_m = cell_m.parse().expect("DECONFLICT_TRACK_CELL_M is a number");
    }
    if let Ok(refile_ms) = std::env::var("DECONFLICT_TRACK_REFILE_MS") {
        config.refile_every_ms = refile_ms.parse().expect("DECONFLICT_TRACK_REFILE_MS is a number");
    }
    if let Ok(horizon_ms) = std::env::var("DECONFLICT_TRACK_QUIET_MS") {
        config.quiet_horizon_ms = horizon_ms.parse().expect("DECONFLICT_TRACK_QUIET_MS is a number");
    }
    let mut watch = TrackWatch::new(config).expect("valid config");
    let now = Timestamp(START_MS);
    watch.set_fences(now, fences).expect("valid fences");
    let fences_mib = resident_mib();
    let mut run = Run {
        watch,
        fleet,
        now,
        alerts: 0,
        fences_mib,
    };
    let started = Instant::now();
    run.tick();
    eprintln!(
        "W3 {n} entities, {} fences: first tick (every entity new) {:.0} ms; resident +{:.1} MiB for fences, +{:.1} MiB for entities = {:.0} bytes per entity (structure estimate {:.0} bytes per entity, uids excluded)",
        n / 10,
        started.elapsed().as_secs_f64() * 1e3,
        fences_mib - before_mib,
        resident_mib() - fences_mib,
        (resident_mib() - fences_mib) * 1024.0 * 1024.0 / n as f64,
        run.watch.entity_bytes() as f64 / n as f64,
    );
    // Let the alerts reach their steady state (CPA looks two minutes ahead).
    for _ in 0..if benching() { 10 } else { 1 } {
        run.tick();
    }
    run
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k].as_secs_f64() * 1e3
}

fn tracks_benches(c: &mut Criterion) {
    for n in sizes() {
        let mut run = build(n);
        let ticks: usize = if benching() {
            std::env::var("DECONFLICT_TRACK_TICKS").map_or(60, |t| t.parse().expect("a number"))
        } else {
            2
        };
        let alerts_before = run.alerts;
        let (mut wall, mut cpu, mut all_cpu) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ticks {
            let (w, c, a) = run.tick();
            wall.push(w);
            cpu.push(c);
            all_cpu.push(a);
        }
        wall.sort_unstable();
        cpu.sort_unstable();
        all_cpu.sort_unstable();
        eprintln!(
            "W3 {n} entities ({}{}): tick wall p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU of the calling thread p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU of all threads p50 {:.1} ms, p99 {:.1} ms; over {ticks} ticks; {:.0} alerts/s; {} open alerts; structure estimate {:.0} bytes per entity; resident after the ticks {:.0} bytes per entity; {:?}",
            if batched() {
                format!("batches on up to {} threads", run.watch.config().batch_threads)
            } else {
                "report by report".to_owned()
            },
            match call_reports() {
                usize::MAX => String::new(),
                k => format!(
                    ", calls of {k} reports; calling thread CPU p50 {:.2} µs per report",
                    percentile(&cpu, 0.5) * 1e3 / n as f64
                ),
            },
            percentile(&wall, 0.5),
            percentile(&wall, 0.99),
            percentile(&wall, 1.0),
            percentile(&cpu, 0.5),
            percentile(&cpu, 0.99),
            percentile(&cpu, 1.0),
            percentile(&all_cpu, 0.5),
            percentile(&all_cpu, 0.99),
            (run.alerts - alerts_before) as f64 / ticks as f64,
            run.watch.open_alerts(),
            run.watch.entity_bytes() as f64 / n as f64,
            (resident_mib() - run.fences_mib) * 1024.0 * 1024.0 / n as f64,
            run.watch.stats(),
        );

        let mut group = c.benchmark_group("w3_tick");
        group.sample_size(10);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run.tick().0).sum())
        });
        group.finish();
    }
}

criterion_group!(benches, tracks_benches);
criterion_main!(benches);
