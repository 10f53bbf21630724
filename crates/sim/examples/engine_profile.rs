//! Where a check's time goes, in CPU time of this thread (on a shared machine
//! wall time mostly measures the neighbours): candidates per query, how many
//! conflict and how many overlap, then the CPU cost of the index query alone,
//! of a whole `Engine::check` and of a sweep, on the benchmark workload; last,
//! the CPU cost of validating a notification.
//!
//! `cargo run --release -p deconflict-sim --example engine_profile -- 100000 20`
//! (activities, repetitions of the 1,000 probes). Run it under `perf record`
//! to see the functions.

use deconflict_engine::index::SpatioTemporalIndex;
use deconflict_engine::{evaluate, Activity, ActivityId, Engine, EngineConfig, FootprintSpec, Timestamp};
use deconflict_sim::workload::{Workload, WorkloadShape};

/// CPU time of this thread in seconds (Linux; `NaN` elsewhere).
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// A polygon's validation in a function of its own, so that callgrind
/// counts polygons alone:
/// `valgrind --tool=callgrind --toggle-collect='engine_profile::validate_polygon' engine_profile 5000 1`.
#[inline(never)]
fn validate_polygon(validator: &Engine, spec: &deconflict_engine::ActivitySpec) -> bool {
    validator.validate(spec).is_ok()
}

fn argument(position: usize, default: usize) -> usize {
    std::env::args()
        .nth(position)
        .map_or(default, |s| s.parse().expect("arguments are counts"))
}

fn main() {
    let (n, repetitions) = (argument(1, 100_000), argument(2, 20).max(1));
    let config = EngineConfig::default();
    let validator = Engine::new(config.clone());
    let mut workload = Workload::new(2022, WorkloadShape::default());
    let mut valid = |count| -> Vec<Activity> {
        workload
            .activities(count)
            .iter()
            .map(|spec| validator.validate(spec).expect("valid workload"))
            .collect()
    };
    let (held, probes) = (valid(n), valid(1_000));
    let per_probe = (repetitions * probes.len()) as f64;

    let index = SpatioTemporalIndex::bulk_load(
        held.iter()
            .enumerate()
            .map(|(i, a)| (ActivityId(i as u64), a.reach(), &a.window)),
    );
    let (mut candidates, mut conflicts, mut overlaps) = (0usize, 0usize, 0usize);
    let mut counts = Vec::with_capacity(probes.len());
    let mut out = Vec::new();
    for probe in &probes {
        index.candidates(probe.reach(), &probe.window, &mut out);
        candidates += out.len();
        counts.push(out.len());
        for finding in out.iter().filter_map(|id| evaluate(&held[id.0 as usize], probe)) {
            conflicts += 1;
            overlaps += usize::from(finding.min_distance_m == 0.0);
        }
    }
    let k = probes.len() as f64;
    println!(
        "per probe: {:.1} candidates, {:.2} conflicts, {:.2} of them overlapping",
        candidates as f64 / k,
        conflicts as f64 / k,
        overlaps as f64 / k
    );
    counts.sort_unstable();
    let quantile = |q: f64| counts[((counts.len() - 1) as f64 * q).round() as usize];
    println!(
        "candidates per probe: median {}, 90 % {}, 99 % {}, most {}",
        quantile(0.5),
        quantile(0.9),
        quantile(0.99),
        quantile(1.0)
    );

    let started = cpu_s();
    for _ in 0..repetitions {
        for probe in &probes {
            index.candidates(probe.reach(), &probe.window, &mut out);
        }
    }
    println!("index query: {:.2} us CPU", (cpu_s() - started) / per_probe * 1e6);

    let started = cpu_s();
    let engine = Engine::from_activities(
        config,
        held.into_iter()
            .enumerate()
            .map(|(i, a)| (ActivityId(i as u64), a)),
    )
    .expect("fits");
    println!("from_activities: {:.2} s CPU", cpu_s() - started);
    let started = cpu_s();
    let swept = engine.sweep().len();
    println!("sweep: {:.3} s CPU ({swept} conflicts)", cpu_s() - started);
    let started = cpu_s();
    let mut found = 0;
    for _ in 0..repetitions {
        for probe in &probes {
            found += engine.check(Timestamp(0), probe, None).len();
        }
    }
    println!(
        "check: {:.2} us CPU ({} conflicts per probe)",
        (cpu_s() - started) / per_probe * 1e6,
        found as f64 / per_probe
    );
    drop(engine);

    // What a notification costs before the engine sees it (the HTTP
    // workers validate every activity they receive): the same workload
    // again, a thousand at a time, so that it adds nothing to the peak
    // memory above.
    let mut workload = Workload::new(2022, WorkloadShape::default());
    let (mut all_s, mut polygons_s, mut polygons) = (0.0, 0.0, 0usize);
    for _ in 0..n.div_ceil(1_000) {
        let specs = workload.activities(1_000);
        let started = cpu_s();
        for spec in &specs {
            std::hint::black_box(validator.validate(spec).is_ok());
        }
        all_s += cpu_s() - started;
        let started = cpu_s();
        for spec in specs
            .iter()
            .filter(|spec| matches!(spec.footprint, FootprintSpec::Polygon { .. }))
        {
            std::hint::black_box(validate_polygon(&validator, spec));
            polygons += 1;
        }
        polygons_s += cpu_s() - started;
    }
    println!(
        "validate: {:.2} us CPU per activity, {:.2} us per polygon ({polygons} of them)",
        all_s / (n.div_ceil(1_000) * 1_000) as f64 * 1e6,
        polygons_s / polygons as f64 * 1e6,
    );
}
