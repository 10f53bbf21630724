//! Helpers shared by the `tracks*` tests: reports on a virtual clock and
//! alert bookkeeping.
#![allow(dead_code)] // each test file uses its own subset

use deconflict_engine::track::*;
use deconflict_engine::{ActivityId, ActivityKind, PartyId, TimeWindow, Timestamp};
use deconflict_geodesy::LonLat;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub const LON: f64 = 41.0;
pub const LAT: f64 = 36.0;
const METRES_PER_DEG_LAT: f64 = 110_950.0;

/// A point `east_m` east and `north_m` north of (LON, LAT), on a local flat
/// approximation (tests measure exact distances with geodesy).
pub fn at(east_m: f64, north_m: f64) -> LonLat {
    let lat = LAT + north_m / METRES_PER_DEG_LAT;
    LonLat::new(LON + east_m / (111_320.0 * LAT.to_radians().cos()), lat)
}

/// The point `east_m` east and `north_m` north of `p` (the same flat
/// approximation as [`at`], about any point).
pub fn offset(p: LonLat, east_m: f64, north_m: f64) -> LonLat {
    LonLat::new(
        p.lon_deg + east_m / (111_320.0 * p.lat_deg.to_radians().cos()),
        p.lat_deg + north_m / METRES_PER_DEG_LAT,
    )
}

/// A closed square ring `half_m` metres each way around `centre`.
pub fn square_around(centre: LonLat, half_m: f64) -> Vec<Vec<LonLat>> {
    let corners = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0)];
    vec![corners
        .iter()
        .map(|&(e, n)| offset(centre, e * half_m, n * half_m))
        .collect()]
}

/// The rule of seeded fence number `id` around `centre`, cycling through
/// the three kinds: an exclusion square (half-side drawn from
/// `exclusion_half_m`) binding `bound_parties` drawn parties, a protected
/// square (half-side 300–2,000 m), a bent demarcation line reaching
/// `line_reach_m` north and south. Draws from `rng` in a fixed order so a
/// seed replays.
pub fn random_fence_rule(
    rng: &mut ChaCha8Rng,
    id: u64,
    centre: LonLat,
    exclusion_half_m: std::ops::Range<f64>,
    line_reach_m: f64,
    bound_parties: (u64, u64),
) -> FenceRule {
    let (count, parties) = bound_parties;
    let bound = |rng: &mut ChaCha8Rng| -> std::collections::BTreeSet<PartyId> {
        (0..count).map(|_| PartyId(rng.gen_range(0..parties))).collect()
    };
    match id % 3 {
        0 => FenceRule::Exclusion {
            region: square_around(centre, rng.gen_range(exclusion_half_m)),
            bound: bound(rng),
        },
        1 => FenceRule::Protected {
            region: square_around(centre, rng.gen_range(300.0..2_000.0)),
        },
        _ => FenceRule::Demarcation {
            line: vec![
                offset(centre, 0.0, -line_reach_m),
                centre,
                offset(centre, 3_000.0, line_reach_m),
            ],
            bound: bound(rng),
        },
    }
}

pub fn watch() -> TrackWatch {
    TrackWatch::new(TrackConfig::default()).unwrap()
}

pub fn still<'a>(party: u64, uid: &'a str, t_ms: i64, position: LonLat) -> PositionReport<'a> {
    PositionReport {
        party: PartyId(party),
        uid,
        time: Timestamp(t_ms),
        position,
        alt_m: None,
        speed_mps: Some(0.0),
        course_deg: None,
        stale: None,
        activity: None,
    }
}

pub fn moving<'a>(
    party: u64,
    uid: &'a str,
    t_ms: i64,
    position: LonLat,
    speed_mps: f64,
    course_deg: f64,
) -> PositionReport<'a> {
    PositionReport {
        speed_mps: Some(speed_mps),
        course_deg: Some(course_deg),
        ..still(party, uid, t_ms, position)
    }
}

pub fn drain(watch: &mut TrackWatch) -> Vec<Alert> {
    std::iter::from_fn(|| watch.poll_alert()).collect()
}

pub fn opened(alerts: &[Alert], kind: AlertKind) -> Vec<&AlertDetail> {
    alerts
        .iter()
        .filter_map(|a| match a {
            Alert::Opened { detail, .. } if detail.kind() == kind => Some(detail),
            _ => None,
        })
        .collect()
}

pub fn cleared(alerts: &[Alert], kind: AlertKind) -> Vec<&ClearReason> {
    alerts
        .iter()
        .filter_map(|a| match a {
            Alert::Cleared { kind: k, reason, .. } if *k == kind => Some(reason),
            _ => None,
        })
        .collect()
}

/// The instant (ms) of every opening and clearing of `kind`, in order.
pub fn timeline(alerts: &[Alert], kind: AlertKind) -> Vec<(bool, i64)> {
    alerts
        .iter()
        .filter(|a| a.kind() == kind)
        .map(|a| (matches!(a, Alert::Opened { .. }), a.at().unix_ms()))
        .collect()
}

/// Where a mover that left `origin` at time 0 on `course_deg` at
/// `speed_mps` is at `t_ms`: the watch's own kinematic model, read through
/// a one-entity watch.
pub struct Model {
    watch: TrackWatch,
}

impl Model {
    pub fn new(origin: LonLat, speed_mps: f64, course_deg: f64) -> Self {
        let mut watch = TrackWatch::new(TrackConfig {
            default_stale_ms: 86_400_000,
            max_speed_mps: 1e7,
            ..TrackConfig::default()
        })
        .unwrap();
        watch
            .handle_report(Timestamp(0), &moving(1, "m", 0, origin, speed_mps, course_deg))
            .unwrap();
        Self { watch }
    }

    pub fn at(&self, t_ms: i64) -> LonLat {
        self.watch
            .track(PartyId(1), "m")
            .unwrap()
            .position_at(Timestamp(t_ms))
    }
}

/// Drives two movers of parties 1 and 2 on a virtual clock: both report the
/// model's position (with their initial velocity: over a few kilometres a
/// geodesic's course turns by hundredths of a degree) every `every_ms` for
/// `duration_ms`, and returns every alert.
pub fn run_pair(a: (LonLat, f64, f64), b: (LonLat, f64, f64), duration_ms: i64, every_ms: i64) -> Vec<Alert> {
    let mut watch = watch();
    let models = [Model::new(a.0, a.1, a.2), Model::new(b.0, b.1, b.2)];
    let velocity = [(a.1, a.2), (b.1, b.2)];
    let mut alerts = Vec::new();
    let mut t = 0;
    while t <= duration_ms {
        for k in 0..2 {
            let report = moving(
                k as u64 + 1,
                ["a", "b"][k],
                t,
                models[k].at(t),
                velocity[k].0,
                velocity[k].1,
            );
            watch.handle_report(Timestamp(t), &report).unwrap();
        }
        alerts.extend(drain(&mut watch));
        t += every_ms;
    }
    alerts
}

/// `count` random fences (ids 0, 1, …) of random owners among `parties`,
/// centred within a `side_m` square north-east of `origin`: keep-out
/// zones and demarcation lines of [`random_fence_rule`].
pub fn random_fences(
    rng: &mut ChaCha8Rng,
    origin: LonLat,
    side_m: f64,
    count: u64,
    parties: u64,
) -> Vec<Fence> {
    (0..count)
        .map(|id| {
            let centre = offset(origin, rng.gen_range(0.0..side_m), rng.gen_range(0.0..side_m));
            let rule = random_fence_rule(rng, id, centre, 500.0..4_000.0, 9_000.0, (3, parties));
            Fence {
                id: FenceId(id),
                owner: PartyId(rng.gen_range(0..parties)),
                rule,
            }
        })
        .collect()
}

/// Four plans (activities 0–3 of parties 0–3, flights and patrols in
/// turn) along routes fanning out from `origin` across the `side_m`
/// square, in force over `[start_ms, start_ms + window_ms)`, 3 km wide.
pub fn fan_of_plans(origin: LonLat, side_m: f64, start_ms: i64, window_ms: i64) -> Vec<(ActivityId, Plan)> {
    (0..4u64)
        .map(|a| {
            let kind = if a % 2 == 0 {
                ActivityKind::Flight
            } else {
                ActivityKind::Patrol
            };
            let route = vec![origin, offset(origin, side_m, side_m * (a as f64) / 4.0)];
            let plan = Plan {
                party: PartyId(a),
                kind,
                window: TimeWindow::new(Timestamp(start_ms), Some(Timestamp(start_ms + window_ms))),
                base: PlanShape::Path(route),
                buffer_m: 3_000.0,
            };
            (ActivityId(a), plan)
        })
        .collect()
}

/// The seeds of a seeded comparison: `DECONFLICT_SEED` alone when set (to
/// replay a failure), else 0 and 1.
pub fn seeds() -> Vec<u64> {
    match std::env::var("DECONFLICT_SEED") {
        Ok(seed) => vec![seed.parse().expect("DECONFLICT_SEED is a number")],
        Err(_) => (0..2).collect(),
    }
}

/// Panics unless `got` is `expected`, naming `context` (seed, second,
/// watch), both counts and the first alert that differs.
pub fn assert_same_alerts(got: &[Alert], expected: &[Alert], context: &str) {
    if got != expected {
        let at = got.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{context}: {} alerts against {}, first difference at {at:?}: {:?} against {:?}",
            got.len(),
            expected.len(),
            at.map(|k| &got[k]),
            at.map(|k| &expected[k]),
        );
    }
}
