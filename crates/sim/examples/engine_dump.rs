//! Every conflict of the benchmark workload, one line each, so that two
//! builds of the engine can be compared decision for decision: the sweep's
//! conflicts, then each probe's `Engine::check` findings.
//!
//! `cargo run --release -p deconflict-sim --example engine_dump -- 100000 > new.txt`
//! (activities; a second argument `verify` also checks, with Karney's exact
//! distances, that the location of every overlap lies in both footprints).
//!
//! A line is `low high min_distance_m required_m window location`, floats
//! printed in full (`{:?}`), so equal lines mean bit-identical findings.

use deconflict_engine::{Activity, ActivityId, Engine, EngineConfig, Finding, Footprint, Timestamp};
use deconflict_geodesy::{closest, point_in_region, LonLat, Shape};
use deconflict_sim::workload::{Workload, WorkloadShape};

fn line(low: u64, high: u64, f: &Finding) -> String {
    format!(
        "{low} {high} {:?} {:?} {:?}..{:?} {:?},{:?}",
        f.min_distance_m,
        f.required_m,
        f.window.start.unix_ms(),
        f.window.end.map(|t| t.unix_ms()),
        f.location.lon_deg,
        f.location.lat_deg
    )
}

/// Whether `p` lies in the footprint, by the exact path (a millimetre of
/// slack, the exact path's own).
fn inside(p: LonLat, activity: &Activity) -> bool {
    match &activity.footprint {
        Footprint::Polygon { rings } => point_in_region(p, rings),
        footprint => {
            closest(&Shape::Point(p), &footprint.base_shape()).distance_m <= footprint.buffer_m() + 1e-3
        }
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |s| s.parse().expect("the first argument is a count"));
    let verify = std::env::args().nth(2).as_deref() == Some("verify");
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
    let engine = Engine::from_activities(
        config,
        held.into_iter()
            .enumerate()
            .map(|(i, a)| (ActivityId(i as u64), a)),
    )
    .expect("fits");
    let mut outside = 0usize;
    let mut check = |f: &Finding, a: &Activity, b: &Activity| {
        if verify && f.min_distance_m == 0.0 && !(inside(f.location, a) && inside(f.location, b)) {
            outside += 1;
        }
    };
    for conflict in engine.conflicts() {
        let [low, high] = conflict.key.activities();
        println!("{}", line(low.0, high.0, &conflict.finding));
        check(
            &conflict.finding,
            engine.activity(low).expect("held"),
            engine.activity(high).expect("held"),
        );
    }
    for (p, probe) in probes.iter().enumerate() {
        for (other, finding) in engine.check(Timestamp(0), probe, None) {
            println!("probe{p} {}", line(other.0, u64::MAX, &finding));
            check(&finding, probe, engine.activity(other).expect("held"));
        }
    }
    if verify {
        eprintln!("overlap locations outside a footprint: {outside}");
        assert_eq!(outside, 0, "every overlap's location lies in both footprints");
    }
}
