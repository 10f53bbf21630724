//! `handle_reports` (a batch) against `handle_report` on each report in
//! turn: on seeded random fleets, dense enough for hundreds of open pairs,
//! with fences, plans, entities that appear, fall silent and go stale, and
//! batches that hold an entity twice, reports out of order or duplicated,
//! invalid reports and reports beyond the entity limits, the two watches
//! give the same outcomes, the same alerts in the same order and the same
//! state, whatever the number of threads.
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
const PARTIES: u64 = 6;

struct Mover {
    party: PartyId,
    uid: String,
    position: LonLat,
    speed_mps: f64,
    course_deg: f64,
    alt_m: Option<f64>,
    activity: Option<ActivityId>,
    silent_from_ms: i64,
}

const ORIGIN: LonLat = LonLat {
    lon_deg: 41.0,
    lat_deg: 36.0,
};

fn mover(rng: &mut ChaCha8Rng, i: usize, now_ms: i64, side_m: f64) -> Mover {
    let flies = rng.gen_bool(0.6);
    Mover {
        party: PartyId(rng.gen_range(0..PARTIES)),
        uid: format!("u{i}"),
        position: offset(ORIGIN, rng.gen_range(0.0..side_m), rng.gen_range(0.0..side_m)),
        speed_mps: if flies {
            rng.gen_range(60.0..250.0)
        } else {
            rng.gen_range(0.0..30.0)
        },
        course_deg: rng.gen_range(0.0..360.0),
        // A narrow band, so that vertical separation decides many pairs;
        // some aircraft without a height.
        alt_m: if flies && rng.gen_bool(0.9) {
            Some(rng.gen_range(500.0..2_500.0))
        } else {
            None
        },
        activity: rng.gen_bool(0.05).then(|| ActivityId(rng.gen_range(0..4))),
        silent_from_ms: if rng.gen_bool(0.05) {
            now_ms + rng.gen_range(0..8 * S)
        } else {
            i64::MAX
        },
    }
}

/// One second's reports: most entities once, in shuffled order, some with
/// odd times, some twice, a few invalid.
fn reports<'a>(rng: &mut ChaCha8Rng, movers: &'a [Mover], now_ms: i64) -> Vec<PositionReport<'a>> {
    let mut out = Vec::new();
    for m in movers {
        if now_ms >= m.silent_from_ms || rng.gen_bool(0.05) {
            continue;
        }
        let time_ms = match rng.gen_range(0..40) {
            0 => now_ms - 3 * S, // out of order or a duplicate of an earlier second
            1 => now_ms - S,
            _ => now_ms - rng.gen_range(0..200),
        };
        let report = PositionReport {
            party: m.party,
            uid: &m.uid,
            time: Timestamp(time_ms),
            position: m.position,
            alt_m: m.alt_m,
            speed_mps: (!rng.gen_bool(0.05)).then_some(m.speed_mps),
            course_deg: Some(m.course_deg),
            stale: rng.gen_bool(0.1).then_some(Timestamp(time_ms + 4 * S)),
            activity: m.activity,
        };
        out.push(report);
        if rng.gen_bool(0.01) {
            // The same entity again within the batch, a little later.
            out.push(PositionReport {
                time: Timestamp(time_ms + 300),
                position: offset(m.position, 50.0, 20.0),
                ..report
            });
        }
        if rng.gen_bool(0.003) {
            out.push(PositionReport {
                position: LonLat::new(m.position.lon_deg, 91.0),
                ..report
            });
        }
    }
    // Fisher–Yates with the test's generator.
    for i in (1..out.len()).rev() {
        out.swap(i, rng.gen_range(0..=i));
    }
    out
}

fn state(watch: &TrackWatch) -> String {
    let tracks: Vec<String> = watch.tracks().map(|t| format!("{t:?}")).collect();
    format!(
        "{:?} {} {} {tracks:?}",
        watch.stats(),
        watch.len(),
        watch.open_alerts()
    )
}

/// Runs one seeded fleet through a watch taking reports one by one and
/// watches taking them as batches; panics at the first difference.
/// Returns the alerts and the refused reports it saw.
fn compare(seed: u64, count: usize, side_m: f64, config: TrackConfig) -> (usize, usize) {
    compare_in_calls(seed, count, side_m, config, usize::MAX)
}

/// [`compare`], the batched watches taking each second's reports in calls
/// of at most `call` reports.
fn compare_in_calls(
    seed: u64,
    count: usize,
    side_m: f64,
    config: TrackConfig,
    call: usize,
) -> (usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut movers: Vec<Mover> = (0..count).map(|i| mover(&mut rng, i, START_MS, side_m)).collect();
    let fences = random_fences(&mut rng, ORIGIN, side_m, 30, PARTIES);
    let new_watch = |threads: usize| {
        let mut watch = TrackWatch::new(TrackConfig {
            batch_threads: threads,
            ..config.clone()
        })
        .unwrap();
        watch.set_fences(Timestamp(START_MS), fences.clone()).unwrap();
        for (activity, plan) in fan_of_plans(ORIGIN, side_m, START_MS, 8 * S) {
            watch.set_plan(activity, plan).unwrap();
        }
        watch
    };
    let mut one_by_one = new_watch(1);
    let mut batched: Vec<TrackWatch> = [1, 2].into_iter().map(new_watch).collect();
    let (mut alerts, mut refused) = (0, 0);
    for second in 1..=8i64 {
        let now_ms = START_MS + second * S;
        // Newcomers, some in the slots of entities gone stale.
        for _ in 0..count / 50 {
            let i = movers.len();
            movers.push(mover(&mut rng, i, now_ms, side_m));
        }
        let batch = reports(&mut rng, &movers, now_ms);
        let now = Timestamp(now_ms);
        let expected: Vec<_> = batch.iter().map(|r| one_by_one.handle_report(now, r)).collect();
        let expected_alerts = drain(&mut one_by_one);
        alerts += expected_alerts.len();
        refused += expected.iter().filter(|o| o.is_err()).count();
        for watch in &mut batched {
            let threads = watch.config().batch_threads;
            let outcomes: Vec<_> = batch
                .chunks(call.min(batch.len()).max(1))
                .flat_map(|reports| watch.handle_reports(now, reports))
                .collect();
            assert_eq!(
                outcomes, expected,
                "seed {seed}, second {second}, {threads} threads: outcomes"
            );
            let got = drain(watch);
            assert_same_alerts(
                &got,
                &expected_alerts,
                &format!("seed {seed}, second {second}, {threads} threads"),
            );
            assert_eq!(
                state(watch),
                state(&one_by_one),
                "seed {seed}, second {second}: state"
            );
        }
        for m in &mut movers {
            m.position = offset(
                m.position,
                m.speed_mps * m.course_deg.to_radians().sin(),
                m.speed_mps * m.course_deg.to_radians().cos(),
            );
            m.course_deg = (m.course_deg + rng.gen_range(-3.0..3.0)).rem_euclid(360.0);
        }
    }
    (alerts, refused)
}

#[test]
fn batches_give_the_alerts_of_reports_in_turn() {
    for seed in seeds() {
        // 2,600 entities: batches large enough for two threads.
        let (alerts, _) = compare(seed, 2_600, 70_000.0, TrackConfig::default());
        assert!(
            alerts > 1_000,
            "seed {seed}: only {alerts} alerts, too sparse to compare"
        );
    }
}

#[test]
fn batches_at_the_entity_limits_refuse_what_reports_in_turn_refuse() {
    for seed in seeds() {
        let config = TrackConfig {
            max_entities: 2_200,
            max_entities_per_party: 380,
            ..TrackConfig::default()
        };
        let (_, refused) = compare(seed + 100, 2_400, 70_000.0, config);
        // Invalid reports are some 0.3 %; the rest are the limits.
        assert!(refused > 200, "seed {seed}: only {refused} reports refused");
    }
}

#[test]
fn batches_in_bounded_runs_give_the_alerts_of_reports_in_turn() {
    for seed in seeds() {
        // Runs of 2,100 reports (two threads): each second's batch of
        // 2,600 to 3,000 goes in two runs, the second on one thread.
        let config = TrackConfig {
            batch_run_reports: 2_100,
            ..TrackConfig::default()
        };
        let (alerts, _) = compare(seed + 200, 2_600, 70_000.0, config);
        assert!(
            alerts > 1_000,
            "seed {seed}: only {alerts} alerts, too sparse to compare"
        );
    }
}

#[test]
fn small_calls_give_the_alerts_of_reports_in_turn() {
    for seed in seeds() {
        // Calls of 97 reports, as a server's small requests come: each
        // call's index is the previous call's copy patched for the cells
        // that changed (`PackedGrid::refresh`), copied afresh now and then.
        let (alerts, _) = compare_in_calls(seed + 300, 2_600, 70_000.0, TrackConfig::default(), 97);
        assert!(
            alerts > 1_000,
            "seed {seed}: only {alerts} alerts, too sparse to compare"
        );
    }
}

#[test]
fn a_run_length_outside_its_range_is_refused() {
    for run in [0, 1_000_001] {
        let config = TrackConfig {
            batch_run_reports: run,
            ..TrackConfig::default()
        };
        assert_eq!(
            TrackWatch::new(config).unwrap_err(),
            TrackError::Config {
                field: "batch_run_reports",
                problem: ConfigProblem::OutOfRange {
                    min: 1.0,
                    max: 1_000_000.0,
                },
            }
        );
    }
}

#[test]
fn a_batch_thread_count_outside_its_range_is_refused() {
    for threads in [0, 65] {
        let config = TrackConfig {
            batch_threads: threads,
            ..TrackConfig::default()
        };
        assert_eq!(
            TrackWatch::new(config).unwrap_err(),
            TrackError::Config {
                field: "batch_threads",
                problem: ConfigProblem::OutOfRange { min: 1.0, max: 64.0 },
            }
        );
    }
}
