//! W1 (check one new activity among N) and W2 (sweep all N) on the workload
//! of the engine issue. Sizes come from `DECONFLICT_BENCH_SIZES`
//! (comma-separated, default `10000,100000`; add `1000000` for the full
//! figure). Under `cargo test` each benchmark runs once on 1,000 activities,
//! so that the harness cannot rot.
//!
//! `cargo bench -p deconflict-sim --bench engine`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deconflict_engine::{Activity, ActivityId, Engine, EngineConfig, Timestamp};
use deconflict_sim::workload::{Workload, WorkloadShape};

fn sizes() -> Vec<usize> {
    if !std::env::args().any(|arg| arg == "--bench") {
        return vec![1_000];
    }
    std::env::var("DECONFLICT_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("DECONFLICT_BENCH_SIZES holds numbers"))
        .collect()
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn build(n: usize) -> (Engine, Vec<Activity>) {
    let engine_for_validation = Engine::new(EngineConfig::default());
    let mut workload = Workload::new(2022, WorkloadShape::default());
    let activities: Vec<(ActivityId, Activity)> = workload
        .activities(n)
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            (
                ActivityId(i as u64),
                engine_for_validation.validate(spec).expect("valid workload"),
            )
        })
        .collect();
    let probes = workload
        .activities(1_000)
        .iter()
        .map(|spec| engine_for_validation.validate(spec).unwrap())
        .collect();
    let before_mib = resident_mib();
    let started = Instant::now();
    let engine = Engine::from_activities(EngineConfig::default(), activities).expect("fits");
    eprintln!(
        "built {n} activities ({} conflicts) in {:.2} s; resident memory {:.0} MiB (+{:.0} MiB for index and conflicts)",
        engine.conflicts().count(),
        started.elapsed().as_secs_f64(),
        resident_mib(),
        resident_mib() - before_mib,
    );
    (engine, probes)
}

fn engine_benches(c: &mut Criterion) {
    for n in sizes() {
        let (engine, probes) = build(n);
        let now = Timestamp(0);

        let mut w1 = c.benchmark_group("w1_check_one");
        w1.throughput(Throughput::Elements(1));
        w1.bench_with_input(BenchmarkId::from_parameter(n), &probes, |b, probes| {
            let mut next = 0;
            b.iter(|| {
                next = (next + 1) % probes.len();
                black_box(engine.check(now, &probes[next], None))
            });
        });
        w1.finish();

        let mut w2 = c.benchmark_group("w2_sweep");
        w2.sample_size(10);
        w2.throughput(Throughput::Elements(n as u64));
        w2.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(engine.sweep()))
        });
        w2.finish();
    }
}

criterion_group!(benches, engine_benches);
criterion_main!(benches);
