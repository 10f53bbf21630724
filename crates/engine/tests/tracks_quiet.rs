//! The quiet horizon (`TrackConfig::quiet_horizon_ms`) skips the pair
//! search of reports that keep to their entity's plan; this proves the
//! skipping exact: on seeded random fleets (most movers keeping their
//! course, some turning, speeding up, climbing, linking to a flight; some
//! reporting only every few seconds so that horizons pass without a
//! report; newcomers; entities falling silent and going stale; fences and
//! plans; a clock that steps back once), watches with a horizon, one by one and in batches on two
//! threads, give exactly the alerts, outcomes and tracks of a watch without
//! one (horizon 0), which searches on every report.
//!
//! A failure names its seed; `DECONFLICT_SEED=<seed>` replays it.

mod tracks_support;

use deconflict_engine::track::*;
use deconflict_engine::{ActivityId, PartyId, Timestamp};
use deconflict_geodesy::LonLat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracks_support::{assert_same_alerts, drain, fan_of_plans, offset, random_fences, seeds};

const S: i64 = 1_000;
const START_MS: i64 = 1_700_000_000_000;
const PARTIES: u64 = 5;
const SECONDS: i64 = 36;

const ORIGIN: LonLat = LonLat {
    lon_deg: 8.0,
    lat_deg: 47.0,
};

struct Mover {
    party: PartyId,
    uid: String,
    position: LonLat,
    speed_mps: f64,
    course_deg: f64,
    alt_m: Option<f64>,
    activity: Option<ActivityId>,
    /// Reports every this many seconds.
    every_s: i64,
    silent_from_ms: i64,
}

fn mover(rng: &mut ChaCha8Rng, i: usize, now_ms: i64, side_m: f64) -> Mover {
    let flies = rng.gen_bool(0.6);
    Mover {
        party: PartyId(rng.gen_range(0..PARTIES)),
        uid: format!("q{i}"),
        position: offset(ORIGIN, rng.gen_range(0.0..side_m), rng.gen_range(0.0..side_m)),
        speed_mps: if flies {
            rng.gen_range(60.0..250.0)
        } else if rng.gen_bool(0.2) {
            0.0
        } else {
            rng.gen_range(1.0..30.0)
        },
        course_deg: rng.gen_range(0.0..360.0),
        alt_m: if flies && rng.gen_bool(0.9) {
            Some(rng.gen_range(500.0..2_000.0))
        } else {
            None
        },
        activity: rng.gen_bool(0.05).then(|| ActivityId(rng.gen_range(0..4))),
        every_s: if rng.gen_bool(0.1) {
            rng.gen_range(2..15)
        } else {
            1
        },
        silent_from_ms: if rng.gen_bool(0.05) {
            now_ms + rng.gen_range(0..SECONDS * S)
        } else {
            i64::MAX
        },
    }
}

/// One second's reports, shuffled: the movers due this second, some with a
/// short stale time, some without a speed (estimated from the last report).
fn reports<'a>(rng: &mut ChaCha8Rng, movers: &'a [Mover], second: i64) -> Vec<PositionReport<'a>> {
    let now_ms = START_MS + second * S;
    let mut out = Vec::new();
    for m in movers {
        if now_ms >= m.silent_from_ms || second % m.every_s != 0 || rng.gen_bool(0.02) {
            continue;
        }
        let time_ms = now_ms - rng.gen_range(0..200);
        out.push(PositionReport {
            party: m.party,
            uid: &m.uid,
            time: Timestamp(time_ms),
            position: m.position,
            alt_m: m.alt_m,
            speed_mps: (!rng.gen_bool(0.03)).then_some(m.speed_mps),
            course_deg: Some(m.course_deg),
            stale: rng.gen_bool(0.05).then_some(Timestamp(time_ms + 4 * S)),
            activity: m.activity,
        });
    }
    for i in (1..out.len()).rev() {
        out.swap(i, rng.gen_range(0..=i));
    }
    out
}

/// The tracks, open alerts and counters (but the scans, which the horizon
/// changes by design).
fn state(watch: &TrackWatch) -> String {
    let tracks: Vec<String> = watch.tracks().map(|t| format!("{t:?}")).collect();
    let stats = TrackStats {
        scans: 0,
        quiet_reports: 0,
        ..watch.stats()
    };
    format!("{stats:?} {} {} {tracks:?}", watch.len(), watch.open_alerts())
}

/// Runs one seeded fleet through a watch without horizon (one by one) and
/// watches with `config`'s (one by one, and in batches on two threads);
/// panics at the first difference. Returns the alerts and the quiet
/// reports (of the one-by-one watch with a horizon).
fn compare(seed: u64, count: usize, side_m: f64, config: TrackConfig) -> (usize, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut movers: Vec<Mover> = (0..count).map(|i| mover(&mut rng, i, START_MS, side_m)).collect();
    let fences = random_fences(&mut rng, ORIGIN, side_m, 20, PARTIES);
    let new_watch = |config: TrackConfig| {
        let mut watch = TrackWatch::new(config).unwrap();
        watch.set_fences(Timestamp(START_MS), fences.clone()).unwrap();
        for (activity, plan) in fan_of_plans(ORIGIN, side_m, START_MS, 20 * S) {
            watch.set_plan(activity, plan).unwrap();
        }
        watch
    };
    let mut reference = new_watch(TrackConfig {
        quiet_horizon_ms: 0,
        batch_threads: 1,
        ..config.clone()
    });
    let mut one_by_one = new_watch(TrackConfig {
        batch_threads: 1,
        ..config.clone()
    });
    let mut batched = new_watch(TrackConfig {
        batch_threads: 2,
        ..config.clone()
    });
    let mut alerts = 0;
    for second in 1..=SECONDS {
        // Once, the clock steps back 2.5 s (plans say nothing then).
        let now_ms = START_MS + second * S - if second == 20 { 2_500 } else { 0 };
        let now = Timestamp(now_ms);
        for _ in 0..count / 100 {
            let i = movers.len();
            movers.push(mover(&mut rng, i, now_ms, side_m));
        }
        let batch = reports(&mut rng, &movers, second);
        let expected: Vec<_> = batch.iter().map(|r| reference.handle_report(now, r)).collect();
        reference.handle_tick(now);
        let expected_alerts = drain(&mut reference);
        alerts += expected_alerts.len();
        let got: Vec<_> = batch.iter().map(|r| one_by_one.handle_report(now, r)).collect();
        one_by_one.handle_tick(now);
        let got_batched = batched.handle_reports(now, &batch);
        batched.handle_tick(now);
        for (name, watch, outcomes) in [
            ("one by one", &mut one_by_one, got),
            ("batched", &mut batched, got_batched),
        ] {
            assert_eq!(
                outcomes, expected,
                "seed {seed}, second {second}, {name}: outcomes"
            );
            let got = drain(watch);
            assert_same_alerts(
                &got,
                &expected_alerts,
                &format!("seed {seed}, second {second}, {name}"),
            );
            assert_eq!(
                state(watch),
                state(&reference),
                "seed {seed}, second {second}, {name}: state"
            );
        }
        assert_eq!(
            one_by_one.stats(),
            batched.stats(),
            "seed {seed}, second {second}: the batch scans when reports in turn do"
        );
        for m in &mut movers {
            m.position = offset(
                m.position,
                m.speed_mps * m.course_deg.to_radians().sin(),
                m.speed_mps * m.course_deg.to_radians().cos(),
            );
            match rng.gen_range(0..400) {
                0..=5 => m.course_deg = rng.gen_range(0.0..360.0),
                6..=8 => m.course_deg = (m.course_deg + rng.gen_range(-3.0..3.0)).rem_euclid(360.0),
                9 => m.speed_mps *= 1.3,
                10 => m.alt_m = m.alt_m.map(|h| h + 200.0),
                11 => m.activity = Some(ActivityId(0)),
                _ => {}
            }
        }
    }
    assert_eq!(reference.stats().quiet_reports, 0, "no horizon, no quiet report");
    (alerts, one_by_one.stats().quiet_reports)
}

#[test]
fn a_quiet_horizon_gives_the_alerts_of_a_search_on_every_report() {
    for seed in seeds() {
        // 1,500 entities on 45 km: dense enough for thousands of alerts,
        // two threads' worth of reports per batch.
        let (alerts, quiet) = compare(seed, 1_500, 45_000.0, TrackConfig::default());
        assert!(
            alerts > 1_000,
            "seed {seed}: only {alerts} alerts, too sparse to compare"
        );
        assert!(
            quiet > 10_000,
            "seed {seed}: only {quiet} quiet reports, the horizon is hardly used"
        );
    }
}

#[test]
fn a_short_horizon_a_wide_tolerance_and_small_cells_give_the_same_alerts() {
    for seed in seeds() {
        // Cells of 2 km: a scan that looked up too few of them would miss
        // neighbours (coarse cells hold them anyway).
        let config = TrackConfig {
            quiet_horizon_ms: 3_000,
            quiet_tolerance_m: 2_000.0,
            grid_cell_m: 2_000.0,
            ..TrackConfig::default()
        };
        let (alerts, quiet) = compare(seed + 100, 1_500, 45_000.0, config);
        assert!(
            alerts > 1_000,
            "seed {seed}: only {alerts} alerts, too sparse to compare"
        );
        assert!(
            quiet > 5_000,
            "seed {seed}: only {quiet} quiet reports, the horizon is hardly used"
        );
    }
}

#[test]
fn a_horizon_beyond_the_refiling_or_a_tolerance_outside_its_range_is_refused() {
    let config = TrackConfig {
        quiet_horizon_ms: 10_001,
        ..TrackConfig::default()
    };
    assert_eq!(
        TrackWatch::new(config).unwrap_err(),
        TrackError::Config {
            field: "quiet_horizon_ms",
            problem: ConfigProblem::OutOfRange {
                min: 0.0,
                max: 10_000.0,
            },
        }
    );
    for tolerance in [0.5, 100_001.0, f64::NAN] {
        let config = TrackConfig {
            quiet_tolerance_m: tolerance,
            ..TrackConfig::default()
        };
        assert_eq!(
            TrackWatch::new(config).unwrap_err(),
            TrackError::Config {
                field: "quiet_tolerance_m",
                problem: ConfigProblem::OutOfRange {
                    min: 1.0,
                    max: 100_000.0,
                },
            }
        );
    }
}
