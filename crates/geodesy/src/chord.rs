//! Cheap, proven bounds from straight chords in Earth-centred coordinates.
//!
//! Two facts make chords useful without giving up exactness:
//! 1. The straight line is the shortest path in space, so the Euclidean
//!    distance between two points on the ellipsoid never exceeds their
//!    geodesic distance.
//! 2. A geodesic's curvature in space equals the surface's normal curvature
//!    along it, at most `1 / M_min` (`M_min = a(1 − e²)`, the meridional
//!    radius at the equator). A curve of length `L` with curvature at most `κ`
//!    stays within `κ L² / 8` of its chord, and its chord `c` satisfies
//!    `c ≥ (2/κ) sin(κL/2)`, so `L ≤ 1.002 c` whenever `c ≤ 1,000 km`.
//!
//! Hence every point of a geodesic edge lies in the *capsule* of radius
//! `sagitta` around its chord, and the Euclidean distance between two capsules
//! is a lower bound of the geodesic distance between the edges. These bounds
//! only prune work or pick a fast path; decisions near a threshold still go
//! through the exact geodesic computation.

use crate::ellipsoid::{A_M, F, M_MIN_M};
use crate::LonLat;

pub(crate) type V3 = [f64; 3];

/// Chords longer than this get no capsule (their arcs may bulge too far for
/// the bound to be worth its proof); callers then take the exact path.
const MAX_CHORD_M: f64 = 1_000_000.0;

/// Earth-centred, Earth-fixed position of a surface point, in metres.
pub(crate) fn ecef(p: LonLat) -> V3 {
    let e2 = F * (2.0 - F);
    let (sin_lat, cos_lat) = p.lat_deg.to_radians().sin_cos();
    let (sin_lon, cos_lon) = p.lon_deg.to_radians().sin_cos();
    let n = A_M / (1.0 - e2 * sin_lat * sin_lat).sqrt();
    [
        n * cos_lat * cos_lon,
        n * cos_lat * sin_lon,
        n * (1.0 - e2) * sin_lat,
    ]
}

pub(crate) fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

/// How far a geodesic edge with chord `chord_m` can stray from its chord;
/// infinite beyond [`MAX_CHORD_M`].
pub(crate) fn sagitta_m(chord_m: f64) -> f64 {
    if chord_m > MAX_CHORD_M {
        return f64::INFINITY;
    }
    let length_m = 1.002 * chord_m;
    // Relative and absolute slack, far above floating-point rounding here.
    length_m * length_m / (8.0 * M_MIN_M) * 1.001 + 1e-6
}

/// An edge as its chord and the capsule radius around it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capsule {
    pub start: V3,
    pub end: V3,
    pub radius_m: f64,
}

impl Capsule {
    pub(crate) fn of_edge(a: LonLat, b: LonLat) -> Capsule {
        let (start, end) = (ecef(a), ecef(b));
        Capsule {
            start,
            end,
            radius_m: sagitta_m(norm(sub(end, start))),
        }
    }

    pub(crate) fn of_point(p: LonLat) -> Capsule {
        let at = ecef(p);
        Capsule {
            start: at,
            end: at,
            radius_m: 1e-6,
        }
    }

    /// A lower bound of the geodesic distance between what two capsules hold.
    pub(crate) fn lower_bound_m(&self, other: &Capsule) -> f64 {
        (segment_distance(self.start, self.end, other.start, other.end) - self.radius_m - other.radius_m)
            .max(0.0)
    }
}

/// Euclidean distance between segments `p0p1` and `q0q1` (the classic
/// clamped closest-points computation, robust for degenerate segments).
pub(crate) fn segment_distance(p0: V3, p1: V3, q0: V3, q1: V3) -> f64 {
    segment_closest(p0, p1, q0, q1).0
}

/// [`segment_distance`] and where it is reached: the distance and the
/// parameters `s`, `t` in `[0, 1]` of the closest points `p0 + s (p1 − p0)`
/// and `q0 + t (q1 − q0)`.
pub(crate) fn segment_closest(p0: V3, p1: V3, q0: V3, q1: V3) -> (f64, f64, f64) {
    let d1 = sub(p1, p0);
    let d2 = sub(q1, q0);
    let r = sub(p0, q0);
    let a = dot(d1, d1);
    let e = dot(d2, d2);
    let f = dot(d2, r);
    let (s, t);
    if a <= f64::EPSILON && e <= f64::EPSILON {
        return (norm(r), 0.0, 0.0);
    }
    if a <= f64::EPSILON {
        s = 0.0;
        t = (f / e).clamp(0.0, 1.0);
    } else {
        let c = dot(d1, r);
        if e <= f64::EPSILON {
            t = 0.0;
            s = (-c / a).clamp(0.0, 1.0);
        } else {
            let b = dot(d1, d2);
            let denom = a * e - b * b;
            let mut s0 = if denom > 0.0 {
                ((b * f - c * e) / denom).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let mut t0 = (b * s0 + f) / e;
            if t0 < 0.0 {
                t0 = 0.0;
                s0 = (-c / a).clamp(0.0, 1.0);
            } else if t0 > 1.0 {
                t0 = 1.0;
                s0 = ((b - c) / a).clamp(0.0, 1.0);
            }
            s = s0;
            t = t0;
        }
    }
    // r + s d1 − t d2 is the gap between the closest points; computing it
    // from differences keeps the rounding at the scale of the gap rather
    // than of the Earth's radius.
    let gap = [
        r[0] + d1[0] * s - d2[0] * t,
        r[1] + d1[1] * s - d2[1] * t,
        r[2] + d1[2] * s - d2[2] * t,
    ];
    (norm(gap), s, t)
}

/// The distance from `m` to the segment `q0`–`q1` (computed from
/// differences, as [`segment_closest`]).
pub(crate) fn point_segment_distance(m: V3, q0: V3, q1: V3) -> f64 {
    let d = sub(q1, q0);
    let r = sub(m, q0);
    let e = dot(d, d);
    let t = if e > f64::EPSILON {
        (dot(r, d) / e).clamp(0.0, 1.0)
    } else {
        0.0
    };
    norm([r[0] - d[0] * t, r[1] - d[1] * t, r[2] - d[2] * t])
}

/// The point `s` of the way from `p0` to `p1`.
pub(crate) fn lerp(p0: V3, p1: V3, s: f64) -> V3 {
    [
        p0[0] + (p1[0] - p0[0]) * s,
        p0[1] + (p1[1] - p0[1]) * s,
        p0[2] + (p1[2] - p0[2]) * s,
    ]
}

/// The surface point below or above an Earth-centred position (its geodetic
/// longitude and latitude; Bowring's formula, accurate to micrometres within
/// kilometres of the surface). Callers that rely on where it lands measure it
/// again with [`ecef`], so its accuracy is never assumed.
pub(crate) fn surface_point(x: V3) -> LonLat {
    let e2 = F * (2.0 - F);
    let b_m = A_M * (1.0 - F);
    let ep2 = e2 / (1.0 - e2);
    // No overflow or underflow to guard against near the Earth's surface,
    // so plain roots instead of `hypot`, and the parametric latitude's sine
    // and cosine from its tangent (`z a / p b`) rather than by `atan2` and
    // `sin_cos`: the three cost most of an overlap's location.
    let p = (x[0] * x[0] + x[1] * x[1]).sqrt();
    let (u, v) = (x[2] * A_M, p * b_m);
    let r = (u * u + v * v).sqrt();
    let (sin_t, cos_t) = if r > 0.0 { (u / r, v / r) } else { (0.0, 1.0) };
    let lat = (x[2] + ep2 * b_m * sin_t * sin_t * sin_t).atan2(p - e2 * A_M * cos_t * cos_t * cos_t);
    LonLat::new(x[1].atan2(x[0]).to_degrees(), lat.to_degrees())
}

/// An upper bound of the geodesic distance between two surface points whose
/// straight-line distance is at most `chord_m`.
///
/// A geodesic's curvature in space is at most `κ = 1 / M_min`, and a curve of
/// length `L ≤ π/κ` with curvature at most `κ` has a chord of at least
/// `(2/κ) sin(κL/2)` (Schur's comparison theorem), so `L ≤ (2/κ) asin(κc/2)`.
/// The slack covers the rounding of the arithmetic.
pub(crate) fn geodesic_upper_m(chord_m: f64) -> f64 {
    let half = chord_m / (2.0 * M_MIN_M);
    if half >= 1.0 {
        return f64::INFINITY;
    }
    2.0 * M_MIN_M * half.asin() * (1.0 + 1e-12) + 1e-6
}

/// The local east and north unit vectors at `p`, for projecting chords onto
/// the tangent plane.
#[cfg(test)]
pub(crate) fn east_north(p: LonLat) -> (V3, V3) {
    let (sin_lat, cos_lat) = p.lat_deg.to_radians().sin_cos();
    let (sin_lon, cos_lon) = p.lon_deg.to_radians().sin_cos();
    (
        [-sin_lon, cos_lon, 0.0],
        [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
    )
}

/// The tangent plane at a surface point: the point Earth-centred, and its
/// local east and north unit vectors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tangent {
    pub origin: V3,
    pub east: V3,
    pub north: V3,
}

impl Tangent {
    /// `ecef(p)` and `east_north(p)` to the bit, from one pair of sines and
    /// cosines (each computed them again: two of the four `sin_cos` of a
    /// point-in-ring test).
    pub(crate) fn at(p: LonLat) -> Tangent {
        let e2 = F * (2.0 - F);
        let (sin_lat, cos_lat) = p.lat_deg.to_radians().sin_cos();
        let (sin_lon, cos_lon) = p.lon_deg.to_radians().sin_cos();
        let n = A_M / (1.0 - e2 * sin_lat * sin_lat).sqrt();
        Tangent {
            origin: [
                n * cos_lat * cos_lon,
                n * cos_lat * sin_lon,
                n * (1.0 - e2) * sin_lat,
            ],
            east: [-sin_lon, cos_lon, 0.0],
            north: [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ellipsoid::distance_m;
    use crate::segment::point_segment;

    #[test]
    fn the_tangent_plane_is_ecef_and_east_north_to_the_bit() {
        for lat in [-89.9, -45.3, -0.001, 0.0, 12.34567, 37.0, 60.0, 89.99] {
            for lon in [-180.0, -179.9, -41.4, 0.0, 0.5, 41.40001, 120.0, 180.0] {
                let p = LonLat::new(lon, lat);
                let (east, north) = east_north(p);
                let plane = Tangent::at(p);
                assert_eq!(plane.origin.map(f64::to_bits), ecef(p).map(f64::to_bits), "{p:?}");
                assert_eq!(plane.east.map(f64::to_bits), east.map(f64::to_bits), "{p:?}");
                assert_eq!(plane.north.map(f64::to_bits), north.map(f64::to_bits), "{p:?}");
            }
        }
    }

    #[test]
    fn chords_never_exceed_geodesics() {
        let pairs = [
            (LonLat::new(0.0, 0.0), LonLat::new(1.0, 1.0)),
            (LonLat::new(179.9, 89.0), LonLat::new(-179.9, 88.0)),
            (LonLat::new(41.4, 37.0), LonLat::new(41.41, 37.0)),
        ];
        for (a, b) in pairs {
            assert!(norm(sub(ecef(a), ecef(b))) <= distance_m(a, b));
        }
    }

    #[test]
    fn the_capsule_bound_is_below_the_exact_distance() {
        let edge = Capsule::of_edge(LonLat::new(10.0, 60.0), LonLat::new(14.0, 60.0));
        for p in [
            LonLat::new(12.0, 60.05),
            LonLat::new(12.0, 59.0),
            LonLat::new(9.0, 60.0),
        ] {
            let exact = point_segment(p, LonLat::new(10.0, 60.0), LonLat::new(14.0, 60.0)).0;
            let bound = edge.lower_bound_m(&Capsule::of_point(p));
            assert!(bound <= exact, "{bound} > {exact}");
            assert!(exact - bound < 2_000.0, "the bound is useful: {bound} vs {exact}");
        }
    }
}
