//! The two geodesic problems on WGS84, through `geographiclib-rs` (Karney's
//! algorithms, accurate to nanometres).

use std::sync::OnceLock;

use geographiclib_rs::{capability as caps, DirectGeodesic, Geodesic, GeodesicLine, InverseGeodesic};

use crate::bounds::edge_bounds_given;
use crate::{GeoBounds, LonLat};

/// WGS84 semi-major axis.
pub(crate) const A_M: f64 = 6_378_137.0;
/// WGS84 flattening.
pub(crate) const F: f64 = 1.0 / 298.257_223_563;
/// The smallest meridional radius of curvature, `a(1 - e²)` at the equator:
/// latitude changes by at most `1 / M_MIN` radians per metre travelled.
pub(crate) const M_MIN_M: f64 = A_M * (1.0 - F) * (1.0 - F);

pub(crate) fn wgs84() -> &'static Geodesic {
    static WGS84: OnceLock<Geodesic> = OnceLock::new();
    WGS84.get_or_init(Geodesic::wgs84)
}

/// Distance, azimuth at `a`, and forward azimuth at `b` (degrees).
pub(crate) fn inverse(a: LonLat, b: LonLat) -> (f64, f64, f64) {
    let (s12, azi1, azi2, _a12) = wgs84().inverse(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg);
    (s12, azi1, azi2)
}

/// One edge's geodesic inverse, solved once for everything a validation
/// needs of a polygon (its edges' boxes for the self-intersection test,
/// then its prepared shape and box): [`crate::ring_self_intersection_solving`]
/// gives them, [`crate::Prepared::with_bounds_solved`] takes them. The
/// edge's ends are kept so that a solution is only ever used for the edge
/// it was solved for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolvedEdge {
    a: LonLat,
    b: LonLat,
    /// [`inverse`]'s distance and azimuths at `a` and `b`.
    pub(crate) inverse: (f64, f64, f64),
    /// The edge's box ([`crate::bounds::edge_bounds`]), from those azimuths.
    pub(crate) bounds: GeoBounds,
}

impl SolvedEdge {
    /// The edge from `a` to `b` solved.
    pub fn solve(a: LonLat, b: LonLat) -> SolvedEdge {
        let inverse = inverse(a, b);
        let (_, azi1, azi2) = inverse;
        SolvedEdge {
            a,
            b,
            inverse,
            bounds: edge_bounds_given(a, b, azi1, azi2),
        }
    }

    /// The edge's geodesic length: [`distance_m`] of its ends, to the bit.
    pub fn length_m(&self) -> f64 {
        self.inverse.0
    }

    /// Whether this is the solution of the edge from `a` to `b` (to the
    /// bit: `-0.0` and `0.0` are different inputs).
    pub fn is_of(&self, a: LonLat, b: LonLat) -> bool {
        let bits = |p: LonLat| (p.lon_deg.to_bits(), p.lat_deg.to_bits());
        bits(self.a) == bits(a) && bits(self.b) == bits(b)
    }
}

/// The point `s_m` along the geodesic leaving `from` at `azi_deg`, and the
/// forward azimuth there.
pub(crate) fn direct(from: LonLat, azi_deg: f64, s_m: f64) -> (LonLat, f64) {
    let (lat, lon, azi2) = wgs84().direct(from.lat_deg, from.lon_deg, azi_deg, s_m);
    (LonLat::new(lon, lat), azi2)
}

/// The geodesic leaving one point at one azimuth, set up once for points at
/// several distances along it: [`direct`] sets up the same line for each
/// point (`geographiclib-rs` solves a direct problem as a line, then a
/// position on it), so a polygon's cut points along one edge paid that
/// set-up once per point (~9 % of a polygon's validation with the cut
/// points' positions). [`DirectLine::at`] is [`direct`]'s point to the bit
/// (tested): the same line, built with the same capabilities, and the
/// same position asked of it.
pub(crate) struct DirectLine(GeodesicLine);

/// The capabilities [`direct`] asks for (latitude, longitude and azimuth,
/// through `DirectGeodesic<(f64, f64, f64)>`), with the distance input its
/// `_gen_direct` adds.
const DIRECT_CAPS: u64 = caps::LATITUDE | caps::LONGITUDE | caps::AZIMUTH | caps::DISTANCE_IN;

impl DirectLine {
    pub(crate) fn new(from: LonLat, azi_deg: f64) -> DirectLine {
        DirectLine(GeodesicLine::new(
            wgs84(),
            from.lat_deg,
            from.lon_deg,
            azi_deg,
            Some(DIRECT_CAPS),
            None,
            None,
        ))
    }

    /// `direct(from, azi_deg, s_m).0`.
    pub(crate) fn at(&self, s_m: f64) -> LonLat {
        let (_a12, lat, lon, ..) = self.0._gen_position(false, s_m, DIRECT_CAPS);
        LonLat::new(lon, lat)
    }
}

/// The geodesic distance between two points, in metres.
pub fn distance_m(a: LonLat, b: LonLat) -> f64 {
    inverse(a, b).0
}

/// The point `distance_m` along the geodesic from `from` towards `towards`.
pub fn point_at_distance(from: LonLat, towards: LonLat, distance_m: f64) -> LonLat {
    let (_, azi, _) = inverse(from, towards);
    direct(from, azi, distance_m).0
}

/// Longitude folded into [-180, 180].
pub(crate) fn wrap_lon_deg(lon_deg: f64) -> f64 {
    let folded = (lon_deg + 180.0).rem_euclid(360.0) - 180.0;
    if folded == -180.0 && lon_deg > 0.0 {
        180.0
    } else {
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// A line's points are `direct`'s to the bit: anywhere (the poles,
        /// the antimeridian and azimuths beyond ±180 included), at offsets
        /// from 0 to beyond half the Earth's circumference.
        #[test]
        fn a_line_gives_directs_points_to_the_bit(
            lon in -180.0..=180.0f64,
            lat in -90.0..=90.0f64,
            azi in -540.0..540.0f64,
            offsets in prop::collection::vec(0.0..25_000_000.0f64, 1..12),
            pole in 0usize..4,
        ) {
            let lat = [lat, 90.0, -90.0, lat][pole];
            let from = LonLat::new(lon, lat);
            let line = DirectLine::new(from, azi);
            for s_m in offsets.into_iter().chain([0.0, 1e-9, 2_000.0]) {
                let expected = direct(from, azi, s_m).0;
                let got = line.at(s_m);
                prop_assert_eq!(got.lon_deg.to_bits(), expected.lon_deg.to_bits(), "{:?} {} {}", from, azi, s_m);
                prop_assert_eq!(got.lat_deg.to_bits(), expected.lat_deg.to_bits(), "{:?} {} {}", from, azi, s_m);
            }
        }
    }
}
