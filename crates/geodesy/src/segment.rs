//! A point and a geodesic segment; two geodesic segments.
//!
//! `geographiclib-rs` solves the direct and inverse problems but not the
//! nearest point on a geodesic (the "interception" problem) nor the
//! intersection of two geodesics, so these are built here on top of it.

use crate::ellipsoid::{direct, distance_m, inverse};
use crate::{Closest, LonLat};

/// Segments longer than this are searched piecewise, so that the distance
/// from a point to one piece has at most one interior minimum (on a sphere a
/// piece shorter than half a great circle has at most one; 500 km leaves a
/// wide margin for the ellipsoid).
const PIECE_M: f64 = 500_000.0;

/// The search for the nearest point stops when it is bracketed this tightly;
/// the distance is flat at its minimum, so its error is far smaller.
const BRACKET_M: f64 = 1e-3;

/// The nearest point of geodesic segment `a`–`b` to `p`: (distance, point).
///
/// Moving along the segment by arc length `s`, the distance from `p` changes
/// at the rate `cos(α_segment − α_p→x)`, the azimuths at the moving point of
/// the segment and of the geodesic from `p` (first variation of arc length).
/// A sign change from − to + brackets the minimum, which the Illinois variant
/// of regula falsi finds with a guaranteed shrinking bracket.
pub(crate) fn point_segment(p: LonLat, a: LonLat, b: LonLat) -> (f64, LonLat) {
    let (length_m, azi_a, _) = inverse(a, b);
    let (to_a_m, to_b_m) = (distance_m(p, a), distance_m(p, b));
    let mut best = if to_a_m <= to_b_m {
        (to_a_m, a)
    } else {
        (to_b_m, b)
    };
    if length_m == 0.0 || best.0 == 0.0 {
        return best;
    }
    // (rate of change of the distance, distance, point) at arc length s.
    let probe = |s: f64| -> (f64, f64, LonLat) {
        let (x, azi_segment) = direct(a, azi_a, s);
        let (d, _, azi_px) = inverse(p, x);
        if d == 0.0 {
            return (0.0, 0.0, x);
        }
        ((azi_segment - azi_px).to_radians().cos(), d, x)
    };
    let pieces = (length_m / PIECE_M).ceil().max(1.0) as usize;
    let piece_m = length_m / pieces as f64;
    let mut start = probe(0.0);
    for k in 0..pieces {
        let (s0, s1) = (k as f64 * piece_m, (k + 1) as f64 * piece_m);
        let end = probe(s1);
        if start.0 < 0.0 && end.0 > 0.0 {
            let found = falling_to_rising_root(&probe, (s0, start.0), (s1, end.0));
            if found.0 < best.0 {
                best = found;
            }
        }
        start = end;
    }
    best
}

/// Illinois regula falsi on a bracket where the rate goes from − to +.
/// Returns the (distance, point) of the best probe.
fn falling_to_rising_root(
    probe: &impl Fn(f64) -> (f64, f64, LonLat),
    (mut lo_s, mut lo_g): (f64, f64),
    (mut hi_s, mut hi_g): (f64, f64),
) -> (f64, LonLat) {
    let mut best = (f64::INFINITY, LonLat::new(0.0, 0.0));
    let mut kept_side = 0i8;
    for _ in 0..100 {
        let s = if hi_g - lo_g > 0.0 {
            lo_s - lo_g * (hi_s - lo_s) / (hi_g - lo_g)
        } else {
            0.5 * (lo_s + hi_s)
        };
        let s = s.clamp(lo_s, hi_s);
        let (g, d, x) = probe(s);
        if d < best.0 {
            best = (d, x);
        }
        if g == 0.0 {
            break;
        }
        if g < 0.0 {
            (lo_s, lo_g) = (s, g);
            // The other end stayed twice: halve its weight (Illinois).
            if kept_side == -1 {
                hi_g *= 0.5;
            }
            kept_side = -1;
        } else {
            (hi_s, hi_g) = (s, g);
            if kept_side == 1 {
                lo_g *= 0.5;
            }
            kept_side = 1;
        }
        if hi_s - lo_s < BRACKET_M {
            break;
        }
    }
    best
}

/// Which side of the geodesic leaving `c` at azimuth `azi_cd` the point `x`
/// lies on: the sine of the azimuth difference at `c` (> 0: to the right).
fn side(c: LonLat, azi_cd: f64, x: LonLat) -> f64 {
    let (d, azi_cx, _) = inverse(c, x);
    if d == 0.0 {
        return 0.0;
    }
    (azi_cx - azi_cd).to_radians().sin()
}

/// Where two geodesic segments cross or touch, if they do.
///
/// Each segment's ends must not lie strictly on one side of the other's
/// geodesic; the crossing along `a` is then bisected and confirmed to lie on
/// segment `b` (within 1 cm).
pub fn segments_intersection(a0: LonLat, a1: LonLat, b0: LonLat, b1: LonLat) -> Option<LonLat> {
    let (length_a_m, azi_a, _) = inverse(a0, a1);
    let (_, azi_b, _) = inverse(b0, b1);
    let strictly_one_side = |u: f64, v: f64| (u > 0.0 && v > 0.0) || (u < 0.0 && v < 0.0);
    if strictly_one_side(side(a0, azi_a, b0), side(a0, azi_a, b1)) {
        return None;
    }
    let start_side = side(b0, azi_b, a0);
    if strictly_one_side(start_side, side(b0, azi_b, a1)) {
        return None;
    }
    let (mut lo_m, mut hi_m) = (0.0, length_a_m);
    let mut x = a0;
    if start_side != 0.0 {
        for _ in 0..80 {
            let mid_m = 0.5 * (lo_m + hi_m);
            x = direct(a0, azi_a, mid_m).0;
            let g = side(b0, azi_b, x);
            if g == 0.0 {
                break;
            }
            if (g > 0.0) == (start_side > 0.0) {
                lo_m = mid_m;
            } else {
                hi_m = mid_m;
            }
            if hi_m - lo_m < 1e-4 {
                break;
            }
        }
    }
    let (d, on_b) = point_segment(x, b0, b1);
    (d < 0.01).then_some(on_b)
}

/// The nearest points of two geodesic segments. When they do not cross, the
/// minimum is reached at an end of one of them.
pub(crate) fn segment_segment(a0: LonLat, a1: LonLat, b0: LonLat, b1: LonLat) -> Closest {
    if let Some(x) = segments_intersection(a0, a1, b0, b1) {
        return Closest {
            distance_m: 0.0,
            on_a: x,
            on_b: x,
        };
    }
    let mut best = Closest {
        distance_m: f64::INFINITY,
        on_a: a0,
        on_b: b0,
    };
    for end in [a0, a1] {
        let (d, foot) = point_segment(end, b0, b1);
        if d < best.distance_m {
            best = Closest {
                distance_m: d,
                on_a: end,
                on_b: foot,
            };
        }
    }
    for end in [b0, b1] {
        let (d, foot) = point_segment(end, a0, a1);
        if d < best.distance_m {
            best = Closest {
                distance_m: d,
                on_a: foot,
                on_b: end,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foot_of_the_perpendicular_on_the_equator() {
        // The equator is a geodesic: the nearest point to (10.5, 0.1) is
        // (10.5, 0), 0.1° of meridian arc away.
        let (d, foot) = point_segment(
            LonLat::new(10.5, 0.1),
            LonLat::new(10.0, 0.0),
            LonLat::new(11.0, 0.0),
        );
        assert!(
            (d - distance_m(LonLat::new(10.5, 0.1), LonLat::new(10.5, 0.0))).abs() < 1e-3,
            "{d}"
        );
        assert!(
            (foot.lon_deg - 10.5).abs() < 1e-7 && foot.lat_deg.abs() < 1e-9,
            "{foot:?}"
        );
    }

    #[test]
    fn a_point_beyond_the_end_is_nearest_to_the_end() {
        let (d, foot) = point_segment(
            LonLat::new(12.0, 0.0),
            LonLat::new(10.0, 0.0),
            LonLat::new(11.0, 0.0),
        );
        assert_eq!(foot, LonLat::new(11.0, 0.0));
        assert!((d - distance_m(LonLat::new(12.0, 0.0), LonLat::new(11.0, 0.0))).abs() < 1e-6);
    }

    #[test]
    fn crossing_across_the_antimeridian() {
        let x = segments_intersection(
            LonLat::new(179.9, -17.0),
            LonLat::new(-179.9, -17.0),
            LonLat::new(180.0, -17.1),
            LonLat::new(-180.0, -16.9),
        )
        .expect("they cross at 180°");
        assert!((x.lon_deg.abs() - 180.0).abs() < 1e-6, "{x:?}");
    }

    #[test]
    fn parallel_and_disjoint_segments_do_not_cross() {
        assert_eq!(
            segments_intersection(
                LonLat::new(10.0, 0.0),
                LonLat::new(11.0, 0.0),
                LonLat::new(10.0, 0.1),
                LonLat::new(11.0, 0.1)
            ),
            None
        );
        assert_eq!(
            segments_intersection(
                LonLat::new(10.0, 0.0),
                LonLat::new(11.0, 0.0),
                LonLat::new(12.0, -1.0),
                LonLat::new(12.0, 1.0)
            ),
            None
        );
    }

    #[test]
    fn a_segment_over_the_pole() {
        // From 80°N 0° to 80°N 180° the geodesic runs over the pole.
        let (d, foot) = point_segment(
            LonLat::new(90.0, 90.0),
            LonLat::new(0.0, 80.0),
            LonLat::new(180.0, 80.0),
        );
        assert!(d < 1e-3, "{d} {foot:?}");
    }
}
