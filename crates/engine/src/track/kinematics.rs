//! Constant-velocity motion on the ellipsoid, and cheap proven bounds on it.
//!
//! A track moves from its reported position along the geodesic of its
//! course, at its speed, forever (dead reckoning); its height stays as
//! reported. That is the *kinematic model* every alert is defined on, and
//! [`Motion::position_at`] computes it exactly (Karney's direct problem).
//!
//! Exact geodesics cost about a microsecond each, and a report is checked
//! against tens of neighbours, so a cheap filter decides almost every pair:
//! the straight line in Earth-centred coordinates that leaves the reported
//! position along the course (the tangent). Two facts bound its error:
//!
//! 1. A geodesic's curvature in space is the surface's normal curvature
//!    along it, at most `κ = 1 / M_min` (`M_min = a(1 − e²)`, the smallest
//!    radius of curvature of WGS84). By Taylor's theorem with the integral
//!    remainder, after arc length `s` the mover is within `κ s² / 2` of the
//!    tangent point `P + s·U`.
//! 2. The chord between two surface points never exceeds their geodesic
//!    distance, and by Schur's comparison theorem a curve of curvature at most
//!    `κ` and length `L ≤ π/κ` spans a chord of at least `(2/κ) sin(κL/2)`, so
//!    `L ≤ (2/κ) asin(κc/2)` for chord `c`.
//!
//! Together they give, for any instant, a lower and an upper bound of the
//! geodesic distance between two movers from a handful of flops. Only pairs
//! whose bounds straddle a threshold take the exact path.

use std::sync::OnceLock;

use deconflict_geodesy::{bounds, GeoBounds, LonLat, Shape};
use geographiclib_rs::{capability as caps, DirectGeodesic, Geodesic, GeodesicLine, InverseGeodesic};

const A_M: f64 = 6_378_137.0;
const F: f64 = 1.0 / 298.257_223_563;
const E2: f64 = F * (2.0 - F);
/// The smallest radius of curvature of WGS84: the meridional radius at the
/// equator, `a(1 − e²)`. Every geodesic's curvature in space is at most its
/// inverse.
pub(crate) const M_MIN_M: f64 = A_M * (1.0 - E2);
/// Absolute slack on every bound: far above floating-point rounding on
/// Earth-sized coordinates (~1e-9 m per operation) and the f32 velocities.
const SLACK_M: f64 = 0.05;
/// Paths longer than this get the plain disk around their start as a box:
/// Schur's bound and the midpoint construction need short arcs.
const LONG_PATH_M: f64 = 500_000.0;

pub(crate) type V3 = [f64; 3];

fn wgs84() -> &'static Geodesic {
    static WGS84: OnceLock<Geodesic> = OnceLock::new();
    WGS84.get_or_init(Geodesic::wgs84)
}

/// The point `s_m` along the geodesic leaving `from` at `azimuth_deg`.
pub(crate) fn direct(from: LonLat, azimuth_deg: f64, s_m: f64) -> LonLat {
    let (lat, lon): (f64, f64) = wgs84().direct(from.lat_deg, from.lon_deg, azimuth_deg, s_m);
    LonLat::new(lon, lat)
}

/// Distance, azimuth at `a` and forward azimuth at `b` (degrees).
pub(crate) fn inverse(a: LonLat, b: LonLat) -> (f64, f64, f64) {
    let (s12, azi1, azi2, _a12): (f64, f64, f64, f64) =
        wgs84().inverse(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg);
    (s12, azi1, azi2)
}

/// The geodesic distance alone: the same `s12` as [`inverse`] (Karney's
/// solution computes the azimuths after it, from the same iteration), without
/// the two arctangents of the azimuths. The closest-approach search calls it
/// some thirty times per pair.
pub(crate) fn distance_m(a: LonLat, b: LonLat) -> f64 {
    wgs84().inverse(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)
}

/// Earth-centred position of a surface point and its local east and north
/// unit vectors.
fn frame(p: LonLat) -> (V3, V3, V3) {
    let (sin_lat, cos_lat) = p.lat_deg.to_radians().sin_cos();
    let (sin_lon, cos_lon) = p.lon_deg.to_radians().sin_cos();
    let n = A_M / (1.0 - E2 * sin_lat * sin_lat).sqrt();
    let position = [
        n * cos_lat * cos_lon,
        n * cos_lat * sin_lon,
        n * (1.0 - E2) * sin_lat,
    ];
    let east = [-sin_lon, cos_lon, 0.0];
    let north = [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat];
    (position, east, north)
}

/// Geodetic longitude and latitude of an Earth-centred point near the
/// surface (Bowring's formula: millimetres for heights of kilometres).
fn geodetic(q: V3) -> LonLat {
    let b = A_M * (1.0 - F);
    let ep2 = E2 / (1.0 - E2);
    let p = q[0].hypot(q[1]);
    let theta = (q[2] * A_M).atan2(p * b);
    let (sin_t, cos_t) = theta.sin_cos();
    let lat = (q[2] + ep2 * b * sin_t.powi(3)).atan2(p - E2 * A_M * cos_t.powi(3));
    LonLat::new(q[1].atan2(q[0]).to_degrees(), lat.to_degrees())
}

fn norm(v: V3) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// How far a mover can be from its tangent point after arc length `s_m`.
fn tangent_error_m(s_m: f64) -> f64 {
    s_m * s_m / (2.0 * M_MIN_M) + SLACK_M
}

/// The longest geodesic a chord of `chord_m` can stand for (Schur), infinite
/// when the chord is too long for the bound.
pub(crate) fn geodesic_at_most_m(chord_m: f64) -> f64 {
    let x = chord_m / (2.0 * M_MIN_M);
    if x >= 0.5 {
        return f64::INFINITY;
    }
    2.0 * M_MIN_M * x.asin() * (1.0 + 1e-12) + SLACK_M
}

/// The chord between two Earth-centred points.
pub(crate) fn chord_m(a: V3, b: V3) -> f64 {
    norm([a[0] - b[0], a[1] - b[1], a[2] - b[2]])
}

/// The straight model of a track: its tangent line in Earth-centred
/// coordinates, which is all the pair filter reads (kept apart so that a
/// candidate costs one cache line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tangent {
    /// Earth-centred reported position, metres.
    pub ecef: V3,
    /// Earth-centred velocity along the tangent, m/s.
    pub velocity: [f32; 3],
    /// 0 when the velocity is unknown: the entity is taken to stay put.
    pub speed_mps: f32,
    pub time_ms: i64,
}

impl Tangent {
    /// Arc length travelled from the report to `time_ms` (negative before it).
    fn arc_m(&self, time_ms: i64) -> f64 {
        f64::from(self.speed_mps) * (time_ms - self.time_ms) as f64 / 1000.0
    }

    /// The tangent point at `time_ms`.
    pub(crate) fn at(&self, time_ms: i64) -> V3 {
        let dt = (time_ms - self.time_ms) as f64 / 1000.0;
        [
            self.ecef[0] + f64::from(self.velocity[0]) * dt,
            self.ecef[1] + f64::from(self.velocity[1]) * dt,
            self.ecef[2] + f64::from(self.velocity[2]) * dt,
        ]
    }
}

/// A track's last report as the model extrapolates it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Motion {
    pub origin: LonLat,
    pub course_deg: f32,
    pub tangent: Tangent,
}

impl Motion {
    pub(crate) fn new(origin: LonLat, time_ms: i64, speed_mps: f64, course_deg: f64) -> Self {
        // The model is defined on the stored (f32) values, so the tangent
        // velocity is derived from them too.
        let (speed_mps, course_deg) = (f64::from(speed_mps as f32), f64::from(course_deg as f32));
        let (ecef, east, north) = frame(origin);
        let (sin_c, cos_c) = course_deg.to_radians().sin_cos();
        let v = |k: usize| (speed_mps * (sin_c * east[k] + cos_c * north[k])) as f32;
        Self {
            origin,
            course_deg: course_deg as f32,
            tangent: Tangent {
                ecef,
                velocity: [v(0), v(1), v(2)],
                speed_mps: speed_mps as f32,
                time_ms,
            },
        }
    }

    pub(crate) fn time_ms(&self) -> i64 {
        self.tangent.time_ms
    }

    pub(crate) fn speed_mps(&self) -> f32 {
        self.tangent.speed_mps
    }

    fn arc_m(&self, time_ms: i64) -> f64 {
        self.tangent.arc_m(time_ms)
    }

    fn tangent_at(&self, time_ms: i64) -> V3 {
        self.tangent.at(time_ms)
    }

    /// Where the model puts the entity at `time_ms`, exactly.
    pub(crate) fn position_at(&self, time_ms: i64) -> LonLat {
        let s = self.arc_m(time_ms);
        if s == 0.0 {
            return self.origin;
        }
        direct(self.origin, f64::from(self.course_deg), s)
    }

    /// A box holding every position of the model during `[from_ms, to_ms]`.
    ///
    /// The positions lie within half the path's length of its midpoint; the
    /// midpoint is within `δ = κ s_mid²/2` of its tangent point `Q`, which lies
    /// outside the (convex) ellipsoid, so the surface point under `Q` (its
    /// nearest) is within `2δ` of the midpoint. The box is that point's,
    /// grown by half the length plus `2δ` and slack.
    pub(crate) fn swept_bounds(&self, from_ms: i64, to_ms: i64) -> GeoBounds {
        let (s0, s1) = (self.arc_m(from_ms), self.arc_m(to_ms));
        if s0 == 0.0 && s1 == 0.0 {
            return bounds(&Shape::Point(self.origin));
        }
        let mid = 0.5 * (s0 + s1);
        if s0.abs().max(s1.abs()) > LONG_PATH_M {
            return bounds(&Shape::Point(self.origin)).expanded_m(s0.abs().max(s1.abs()) + 1.0);
        }
        let q = self.tangent_at(from_ms + (to_ms - from_ms) / 2);
        let under = geodetic(q);
        let radius = 0.5 * (s1 - s0).abs()
            + 2.0 * tangent_error_m(mid)
            + 1.0
            // integer halving of the window: the middle instant is off by ≤ 1 ms
            + f64::from(self.speed_mps()) / 1000.0;
        bounds(&Shape::Point(under)).expanded_m(radius)
    }
}

/// The vertical interval an entity may be in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Band {
    pub min_m: f64,
    pub max_m: f64,
}

impl Band {
    pub(crate) fn gap_m(&self, other: &Band) -> f64 {
        (self.min_m.max(other.min_m) - self.max_m.min(other.max_m)).max(0.0)
    }
}

/// Bounds of the distance between two movers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PairBounds {
    /// Every geodesic distance over the interval is at least this.
    pub lower_m: f64,
    /// Some geodesic distance over the interval is at most this.
    pub upper_m: f64,
    /// The instant where the straight models are closest.
    pub straight_time_ms: i64,
}

/// The straight models' closest approach over `[from_ms, to_ms]`: the
/// distance between the tangent points and the time from `from_ms`, seconds.
#[inline]
pub(crate) fn straight_closest(a: &Tangent, b: &Tangent, from_ms: i64, to_ms: i64) -> (f64, f64) {
    let (pa, pb) = (a.at(from_ms), b.at(from_ms));
    let d0 = [pa[0] - pb[0], pa[1] - pb[1], pa[2] - pb[2]];
    let w = [
        f64::from(a.velocity[0]) - f64::from(b.velocity[0]),
        f64::from(a.velocity[1]) - f64::from(b.velocity[1]),
        f64::from(a.velocity[2]) - f64::from(b.velocity[2]),
    ];
    let span_s = (to_ms - from_ms) as f64 / 1000.0;
    let ww = w[0] * w[0] + w[1] * w[1] + w[2] * w[2];
    let tau = if ww > 0.0 {
        (-(d0[0] * w[0] + d0[1] * w[1] + d0[2] * w[2]) / ww).clamp(0.0, span_s)
    } else {
        0.0
    };
    let straight_m = norm([d0[0] + w[0] * tau, d0[1] + w[1] * tau, d0[2] + w[2] * tau]);
    (straight_m, tau)
}

/// The largest tangent error of a mover over `[from_ms, to_ms]`: it grows
/// with |arc|, so it is at one of the ends.
#[inline]
pub(crate) fn worst_tangent_error_m(m: &Tangent, from_ms: i64, to_ms: i64) -> f64 {
    tangent_error_m(m.arc_m(from_ms).abs().max(m.arc_m(to_ms).abs()))
}

/// [`pair_bounds`]`.lower_m` alone, computed by the same operations (so
/// equal to the last bit), without the upper bound's arcsine: the pair
/// filter of a batch needs only this.
pub(crate) fn pair_lower_bound_m(a: &Tangent, b: &Tangent, from_ms: i64, to_ms: i64) -> f64 {
    let (straight_m, _) = straight_closest(a, b, from_ms, to_ms);
    (straight_m - worst_tangent_error_m(a, from_ms, to_ms) - worst_tangent_error_m(b, from_ms, to_ms))
        .max(0.0)
}

/// Bounds of the minimum geodesic distance between two movers over
/// `[from_ms, to_ms]` (see the module documentation).
pub(crate) fn pair_bounds(a: &Tangent, b: &Tangent, from_ms: i64, to_ms: i64) -> PairBounds {
    let (straight_m, tau) = straight_closest(a, b, from_ms, to_ms);
    let straight_time_ms = from_ms + (tau * 1000.0).round() as i64;
    let at_tau =
        |m: &Tangent| tangent_error_m(m.arc_m(straight_time_ms).abs()) + f64::from(m.speed_mps) / 1000.0;
    PairBounds {
        lower_m: (straight_m
            - worst_tangent_error_m(a, from_ms, to_ms)
            - worst_tangent_error_m(b, from_ms, to_ms))
        .max(0.0),
        upper_m: geodesic_at_most_m(straight_m + at_tau(a) + at_tau(b)),
        straight_time_ms,
    }
}

/// The closest approach of two movers, exactly on the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Approach {
    pub time_ms: i64,
    pub distance_m: f64,
    pub at_a: LonLat,
    pub at_b: LonLat,
}

fn approach_at(a: &Motion, b: &Motion, time_ms: i64) -> Approach {
    let (at_a, at_b) = (a.position_at(time_ms), b.position_at(time_ms));
    Approach {
        time_ms,
        distance_m: distance_m(at_a, at_b),
        at_a,
        at_b,
    }
}

/// A mover's geodesic, set up once for many positions along it (Karney's
/// direct problem builds this line on every call).
struct Track<'a> {
    motion: &'a Motion,
    line: Option<GeodesicLine>,
}

impl<'a> Track<'a> {
    fn new(motion: &'a Motion) -> Self {
        let line = (motion.speed_mps() > 0.0).then(|| {
            GeodesicLine::new(
                wgs84(),
                motion.origin.lat_deg,
                motion.origin.lon_deg,
                f64::from(motion.course_deg),
                None,
                None,
                None,
            )
        });
        Self { motion, line }
    }

    fn at(&self, time_ms: i64) -> LonLat {
        let s = self.motion.arc_m(time_ms);
        match &self.line {
            Some(line) if s != 0.0 => {
                let (_, lat, lon, ..) = line._gen_position(false, s, caps::LATITUDE | caps::LONGITUDE);
                LonLat::new((lon + 180.0).rem_euclid(360.0) - 180.0, lat)
            }
            _ => self.motion.origin,
        }
    }

    fn approach(a: &Track, b: &Track, time_ms: i64) -> Approach {
        let (at_a, at_b) = (a.at(time_ms), b.at(time_ms));
        Approach {
            time_ms,
            distance_m: distance_m(at_a, at_b),
            at_a,
            at_b,
        }
    }
}

/// Evenly spread probes of the exact distance before the search narrows.
const PROBES: i64 = 8;
/// `(√5 − 1) / 2`, the golden section.
const GOLDEN: f64 = 0.618_033_988_749_894_8;

/// Parabolic steps `closest_approach` takes at most before it hands the
/// pair to the golden-section search.
const PARABOLIC_STEPS: usize = 8;
/// Millisecond steps the final walk takes at most (likewise).
const WALK_STEPS: i64 = 16;
/// Below this relative speed (m/s) the distance is too flat over a
/// millisecond for the parabola to be trusted: golden section.
const FLAT_MPS: f64 = 1.0;

/// The closest approach over `[from_ms, to_ms]`, to the millisecond.
///
/// The squared distance between two movers over minutes is within metres
/// of a convex parabola (exactly one for their straight models, whose
/// closest instant is `hint_ms`), so parabolic interpolation through three
/// exact distances near the hint lands within a millisecond or so of the
/// exact minimum in two or three steps; a walk over whole milliseconds
/// then finds the instant whose exact distance is the smallest (its
/// neighbours both farther). Some six to ten exact distances, where the
/// golden-section search (`closest_approach_golden`) takes some thirty.
/// When the parabola is not convex enough to trust (nearly parallel
/// movers: the distance hardly changes over a millisecond), or the steps
/// do not settle, it falls back to the golden section. Both find the same
/// instant for a unimodal distance; the unit test
/// `parabolic_steps_agree_with_the_golden_section` checks them against
/// each other (instant within 1 ms, distance within 0.01 m) and the
/// property test `tests/tracks_cpa.rs` against a time-stepped brute force.
pub(crate) fn closest_approach(a: &Motion, b: &Motion, from_ms: i64, to_ms: i64, hint_ms: i64) -> Approach {
    parabolic_closest_approach(a, b, from_ms, to_ms, hint_ms)
        .unwrap_or_else(|| closest_approach_golden(a, b, from_ms, to_ms, hint_ms))
}

fn parabolic_closest_approach(
    a: &Motion,
    b: &Motion,
    from_ms: i64,
    to_ms: i64,
    hint_ms: i64,
) -> Option<Approach> {
    const STEP_MS: i64 = 1_000;
    if to_ms - from_ms < 4 * STEP_MS {
        return None;
    }
    let (ta, tb) = (Track::new(a), Track::new(b));
    let at = |t: i64| Track::approach(&ta, &tb, t);
    let middle = hint_ms.clamp(from_ms + STEP_MS, to_ms - STEP_MS);
    // Three points (instant, squared distance), kept around the minimum.
    let mut points = [middle - STEP_MS, middle, middle + STEP_MS].map(|t| {
        let approach = at(t);
        (t, approach.distance_m * approach.distance_m, approach)
    });
    let mut best = points[1].2;
    for p in &points {
        if p.2.distance_m < best.distance_m {
            best = p.2;
        }
    }
    let (mut vertex_ms, mut settled) = (None, false);
    for _ in 0..PARABOLIC_STEPS {
        let [(t0, d0, _), (t1, d1, _), (t2, d2, _)] = points;
        let (x0, x1, x2) = (t0 as f64, t1 as f64, t2 as f64);
        // The parabola's second divided difference: half its curvature, in
        // m²/ms² (the relative speed squared for straight movers).
        let s01 = (d1 - d0) / (x1 - x0);
        let s12 = (d2 - d1) / (x2 - x1);
        let half_curvature = (s12 - s01) / (x2 - x0);
        // NaN (coincident instants cannot happen, but a NaN distance
        // could) falls back too.
        let convex_enough = half_curvature * 1e6 >= FLAT_MPS * FLAT_MPS;
        if !convex_enough {
            return None;
        }
        let vertex = 0.5 * (x0 + x1) - s01 / (2.0 * half_curvature);
        let t = (vertex.round() as i64).clamp(from_ms, to_ms);
        if vertex_ms == Some(t) || points.iter().any(|p| p.0 == t) {
            settled = true;
            break;
        }
        vertex_ms = Some(t);
        let approach = at(t);
        if approach.distance_m < best.distance_m {
            best = approach;
        }
        // Keep the three points nearest the new one, in order.
        let mut all = [
            points[0],
            points[1],
            points[2],
            (t, approach.distance_m * approach.distance_m, approach),
        ];
        all.sort_unstable_by_key(|p| p.0);
        let drop = if (t - all[0].0).abs() > (all[3].0 - t).abs() {
            0
        } else {
            3
        };
        let mut k = 0;
        for (i, p) in all.into_iter().enumerate() {
            if i != drop {
                points[k] = p;
                k += 1;
            }
        }
    }
    if !settled {
        return None;
    }
    // Walk whole milliseconds from the best instant while the distance
    // falls; the minimum's neighbours must both be farther.
    let mut steps = 0;
    for direction in [-1i64, 1] {
        loop {
            let t = best.time_ms + direction;
            if t < from_ms || t > to_ms {
                break;
            }
            let next = at(t);
            if next.distance_m >= best.distance_m {
                break;
            }
            best = next;
            steps += 1;
            if steps > WALK_STEPS {
                return None;
            }
        }
    }
    Some(best)
}

/// The closest approach over `[from_ms, to_ms]`, to the millisecond, by
/// golden-section search.
///
/// Over a look-ahead of minutes the distance between two geodesic movers is
/// within metres of the distance between their straight models, which is
/// the square root of a convex quadratic: unimodal. The exact distance is
/// probed at evenly spread instants and at the straight models' closest
/// instant (`hint_ms`), then a golden-section search narrows the bracket
/// around the best probe to a few milliseconds, which are scanned. The
/// property test `tests/tracks_cpa.rs` checks the result against a
/// time-stepped brute force.
fn closest_approach_golden(a: &Motion, b: &Motion, from_ms: i64, to_ms: i64, hint_ms: i64) -> Approach {
    let (a, b) = (Track::new(a), Track::new(b));
    let span = (to_ms - from_ms).max(0);
    let mut times: Vec<i64> = (0..=PROBES).map(|k| from_ms + span * k / PROBES).collect();
    times.push(hint_ms.clamp(from_ms, to_ms));
    times.sort_unstable();
    times.dedup();
    let probes: Vec<Approach> = times.iter().map(|&t| Track::approach(&a, &b, t)).collect();
    let k = (0..probes.len())
        .min_by(|&i, &j| probes[i].distance_m.total_cmp(&probes[j].distance_m))
        .unwrap_or(0);
    let mut best = probes[k];
    let (mut lo, mut hi) = (
        times[k.saturating_sub(1)] as f64,
        times[(k + 1).min(times.len() - 1)] as f64,
    );
    let keep = |candidate: Approach, best: &mut Approach| {
        if candidate.distance_m < best.distance_m {
            *best = candidate;
        }
        candidate.distance_m
    };
    // Every instant evaluated so far: the last scan skips them (their
    // distance is already no smaller than `best`'s, so `keep` would change
    // nothing), a few of its handful of instants per search.
    let mut evaluated = times.clone();
    let mut at = |t: f64| {
        let t = t.round() as i64;
        evaluated.push(t);
        Track::approach(&a, &b, t)
    };
    let (mut x1, mut x2) = (hi - GOLDEN * (hi - lo), lo + GOLDEN * (hi - lo));
    let (mut d1, mut d2) = (keep(at(x1), &mut best), keep(at(x2), &mut best));
    while hi - lo > 4.0 {
        if d1 <= d2 {
            (hi, x2, d2) = (x2, x1, d1);
            x1 = hi - GOLDEN * (hi - lo);
            d1 = keep(at(x1), &mut best);
        } else {
            (lo, x1, d1) = (x1, x2, d2);
            x2 = lo + GOLDEN * (hi - lo);
            d2 = keep(at(x2), &mut best);
        }
    }
    for t in (lo.floor() as i64).max(from_ms)..=(hi.ceil() as i64).min(to_ms) {
        if evaluated.contains(&t) {
            continue;
        }
        keep(Track::approach(&a, &b, t), &mut best);
    }
    best
}

/// The exact distance at one instant, with both positions.
pub(crate) fn exact_at(a: &Motion, b: &Motion, time_ms: i64) -> Approach {
    approach_at(a, b, time_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mover(lon: f64, lat: f64, speed: f64, course: f64) -> Motion {
        Motion::new(LonLat::new(lon, lat), 0, speed, course)
    }

    #[test]
    fn the_distance_alone_is_the_inverse_distance_to_the_last_bit() {
        // Pairs from metres to thousands of kilometres apart, near the
        // equator, the poles and across the antimeridian.
        let mut checked = 0;
        for i in 0..40 {
            let a = LonLat::new(-179.9 + 9.1 * f64::from(i), -89.0 + 4.4 * f64::from(i));
            for (dlon, dlat) in [(1e-5, 0.0), (0.01, 0.02), (0.3, -0.2), (5.0, 7.0), (179.0, 1.0)] {
                let lon = (a.lon_deg + dlon + 180.0).rem_euclid(360.0) - 180.0;
                let b = LonLat::new(lon, (a.lat_deg + dlat).clamp(-90.0, 90.0));
                assert_eq!(
                    distance_m(a, b).to_bits(),
                    inverse(a, b).0.to_bits(),
                    "{a:?} {b:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 200);
    }

    #[test]
    fn the_model_runs_along_the_equator_and_meridians() {
        let east = mover(10.0, 0.0, 100.0, 90.0);
        let p = east.position_at(1_000_000);
        assert!(p.lat_deg.abs() < 1e-9 && p.lon_deg > 10.0, "{p:?}");
        assert!((distance_m(east.origin, p) - 100_000.0).abs() < 1e-6);
        let north = mover(10.0, 0.0, 10.0, 0.0);
        assert!((north.position_at(-1_000).lat_deg + 10.0 / 110_574.0).abs() < 1e-6);
    }

    /// A seeded stream of uniform numbers in [0, 1) from a 64-bit LCG (kept
    /// rather than `rand` so the sampled cases stay the ones checked so far).
    fn uniform(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn bounds_hold_around_the_exact_distance() {
        // Pairs at every latitude, course and speed: the exact minimum over
        // sampled instants lies between the bounds' promises.
        let mut next = uniform(7u64);
        for _ in 0..300 {
            let lat = -89.0 + 178.0 * next();
            let lon = -180.0 + 360.0 * next();
            let a = mover(lon, lat, 300.0 * next(), 360.0 * next());
            let b_origin = direct(a.origin, 360.0 * next(), 60_000.0 * next());
            let b = Motion::new(b_origin, -3_000, 300.0 * next(), 360.0 * next());
            let bound = pair_bounds(&a.tangent, &b.tangent, 0, 120_000);
            let mut exact_min = f64::INFINITY;
            for t in (0..=120_000).step_by(500) {
                exact_min = exact_min.min(exact_at(&a, &b, t).distance_m);
            }
            assert!(bound.lower_m <= exact_min + 1e-6, "{bound:?} {exact_min}");
            let at_straight = exact_at(&a, &b, bound.straight_time_ms).distance_m;
            assert!(at_straight <= bound.upper_m, "{bound:?} {at_straight}");
            assert!(bound.upper_m - bound.lower_m < 1_000.0, "{bound:?}");
        }
    }

    #[test]
    fn the_lower_bound_alone_is_the_bounds_lower_bound_to_the_bit() {
        let mut next = uniform(11u64);
        for _ in 0..2_000 {
            let a = mover(
                -180.0 + 360.0 * next(),
                -80.0 + 160.0 * next(),
                300.0 * next(),
                360.0 * next(),
            );
            let b_origin = direct(a.origin, 360.0 * next(), 80_000.0 * next());
            let b = Motion::new(b_origin, -2_000, 300.0 * next(), 360.0 * next());
            for (from, to) in [(0, 120_000), (5_000, 5_000)] {
                let full = pair_bounds(&a.tangent, &b.tangent, from, to).lower_m;
                let alone = pair_lower_bound_m(&a.tangent, &b.tangent, from, to);
                assert_eq!(full.to_bits(), alone.to_bits());
            }
        }
    }

    #[test]
    fn the_swept_box_holds_the_path() {
        for (lon, lat, course) in [
            (179.99, 10.0, 90.0),
            (0.0, 89.8, 0.0),
            (41.0, 36.0, 225.0),
            (-179.99, -60.0, 270.0),
        ] {
            let m = Motion::new(LonLat::new(lon, lat), 1_000, 250.0, course);
            let b = m.swept_bounds(5_000, 135_000);
            for t in (5_000..=135_000).step_by(1_000) {
                let p = m.position_at(t);
                let point = bounds(&Shape::Point(p));
                assert!(b.intersects(&point), "{p:?} outside {b:?}");
            }
        }
    }

    /// The parabolic steps find the golden section's closest approach:
    /// the instant within 1 ms, the distance within 0.01 m (the tolerance
    /// the alerts allow), on pairs at every latitude, course and speed.
    #[test]
    fn parabolic_steps_agree_with_the_golden_section() {
        let mut next = uniform(11u64);
        let (mut parabolic, mut same_bits) = (0, 0);
        for _ in 0..2_000 {
            let lat = -85.0 + 170.0 * next();
            let lon = -180.0 + 360.0 * next();
            let a = mover(lon, lat, 300.0 * next(), 360.0 * next());
            let b_origin = direct(a.origin, 360.0 * next(), 40_000.0 * next());
            let b = Motion::new(b_origin, -700, 300.0 * next(), 360.0 * next());
            let (from, to) = (1_000, 121_000);
            let hint = pair_bounds(&a.tangent, &b.tangent, from, to).straight_time_ms;
            let golden = closest_approach_golden(&a, &b, from, to, hint);
            let fast = closest_approach(&a, &b, from, to, hint);
            assert!(
                (fast.time_ms - golden.time_ms).abs() <= 1
                    && (fast.distance_m - golden.distance_m).abs() <= 0.01,
                "{a:?} {b:?}: {fast:?} against {golden:?}"
            );
            parabolic += usize::from(parabolic_closest_approach(&a, &b, from, to, hint).is_some());
            same_bits += usize::from(fast.distance_m.to_bits() == golden.distance_m.to_bits());
        }
        // Most pairs take the parabolic path, and most land on the very
        // same instant.
        assert!(parabolic > 1_800, "{parabolic} of 2,000 parabolic");
        assert!(same_bits > 1_800, "{same_bits} of 2,000 the same to the bit");
    }

    #[test]
    fn head_on_movers_meet_where_brute_force_says() {
        let a = mover(10.0, 0.0, 100.0, 90.0);
        let b = mover(10.1, 0.0, 100.0, 270.0);
        let hint = pair_bounds(&a.tangent, &b.tangent, 0, 120_000).straight_time_ms;
        let cpa = closest_approach(&a, &b, 0, 120_000, hint);
        // 0.1° of equator is 11,132 m, closed at 200 m/s.
        assert!((cpa.time_ms - 55_660).abs() <= 2, "{cpa:?}");
        assert!(cpa.distance_m < 0.5, "{cpa:?}");
    }
}
