//! Latitude/longitude boxes that contain a shape, for the spatial index.

use crate::chord::{ecef, geodesic_upper_m, norm, sub};
use crate::ellipsoid::{inverse, wrap_lon_deg, A_M, F, M_MIN_M};
use crate::region::point_in_region;
use crate::{GeoBounds, LonLat, Shape};

const EVERY_LONGITUDE: (f64, f64) = (-180.0, 180.0);

/// A relative and an absolute margin on every conversion, far above the
/// rounding of the arithmetic, so that the boxes are never too small.
fn generous(deg: f64) -> f64 {
    deg * (1.0 + 1e-9) + 1e-9
}

/// The box of one geodesic edge, including its poleward bulge.
///
/// Longitude is monotonic along a geodesic, so the edge spans exactly the
/// longitudes between its ends (the short way). Latitude is not: by
/// Clairaut's relation `cos β · sin α` is constant along the geodesic (β the
/// reduced latitude, α the azimuth), so where the azimuth passes through
/// ±90° — at ends heading north and then south, or south then north — the
/// edge reaches `cos β_max = |cos β₁ sin α₁|` between its ends.
pub(crate) fn edge_bounds(a: LonLat, b: LonLat) -> GeoBounds {
    let (_, azi1, azi2) = inverse(a, b);
    edge_bounds_given(a, b, azi1, azi2)
}

/// [`edge_bounds`] from the edge's azimuths at both ends, as the geodesic
/// inverse gives them (for a caller that has solved it already).
pub(crate) fn edge_bounds_given(a: LonLat, b: LonLat, azi1: f64, azi2: f64) -> GeoBounds {
    let mut south = a.lat_deg.min(b.lat_deg);
    let mut north = a.lat_deg.max(b.lat_deg);
    let (cos1, cos2) = (azi1.to_radians().cos(), azi2.to_radians().cos());
    if (cos1 > 0.0 && cos2 < 0.0) || (cos1 < 0.0 && cos2 > 0.0) {
        let beta1 = ((1.0 - F) * a.lat_deg.to_radians().tan()).atan();
        let beta_max = (beta1.cos() * azi1.to_radians().sin()).abs().min(1.0).acos();
        let lat_max = generous((beta_max.tan() / (1.0 - F)).atan().to_degrees()).min(90.0);
        if cos1 > 0.0 {
            north = north.max(lat_max);
        } else {
            south = south.min(-lat_max);
        }
    }
    let mut east_of_a = b.lon_deg - a.lon_deg;
    east_of_a = (east_of_a + 180.0).rem_euclid(360.0) - 180.0;
    let (west, east) = if east_of_a >= 0.0 {
        (a.lon_deg, a.lon_deg + east_of_a)
    } else {
        (a.lon_deg + east_of_a, a.lon_deg)
    };
    boxed(south, north, west, east)
}

/// Padding on every side of a box, ~0.1 mm: positions recomputed through
/// the direct problem differ from the notified ones in the last bits.
const PAD_DEG: f64 = 1e-9;

/// A box from unwrapped longitudes (`west ≤ east`, possibly beyond ±180),
/// padded by [`PAD_DEG`].
fn boxed(south: f64, north: f64, west: f64, east: f64) -> GeoBounds {
    let (west, east) = (west - PAD_DEG, east + PAD_DEG);
    let (west, east) = if east - west >= 360.0 {
        EVERY_LONGITUDE
    } else {
        (wrap_lon_deg(west), wrap_lon_deg(east))
    };
    GeoBounds {
        south_deg: (south - PAD_DEG).max(-90.0),
        north_deg: (north + PAD_DEG).min(90.0),
        west_deg: west,
        east_deg: east,
    }
}

/// A box that contains every point of the shape.
pub fn bounds(shape: &Shape) -> GeoBounds {
    bounds_given(shape, edge_bounds)
}

/// [`bounds`] with each edge's box from `edge_box(a, b)`, called once per
/// edge of a path or of a region's outer ring, in order. With
/// [`edge_bounds`] (or [`edge_bounds_given`] and the geodesic inverse's
/// azimuths) it is [`bounds`], to the bit; [`crate::Prepared::with_bounds`]
/// passes boxes from the azimuths it solved for its own edges, or the
/// boxes the self-intersection test made, so that a shape's edges are
/// solved and boxed once, not twice.
pub(crate) fn bounds_given(
    shape: &Shape,
    mut edge_box: impl FnMut(LonLat, LonLat) -> GeoBounds,
) -> GeoBounds {
    let mut edge = |e: &[LonLat]| (e[0], e[1], edge_box(e[0], e[1]));
    match shape {
        Shape::Point(p) => boxed(p.lat_deg, p.lat_deg, p.lon_deg, p.lon_deg),
        Shape::Path(vertices) => union_of_edges(vertices.windows(2).map(&mut edge)),
        Shape::Region(rings) => {
            let mut b = union_of_edges(rings[0].windows(2).map(&mut edge));
            let [north_clear, south_clear] = [true, false].map(|north| pole_outside_region(&b, north));
            // A region around a pole holds every longitude up to the pole.
            if !north_clear && point_in_region(LonLat::new(0.0, 90.0), rings) {
                b = GeoBounds {
                    north_deg: 90.0,
                    west_deg: -180.0,
                    east_deg: 180.0,
                    ..b
                };
            }
            if !south_clear && point_in_region(LonLat::new(0.0, -90.0), rings) {
                b = GeoBounds {
                    south_deg: -90.0,
                    west_deg: -180.0,
                    east_deg: 180.0,
                    ..b
                };
            }
            b
        }
    }
}

/// Beyond this latitude (either way) a ring's box is not taken as clear of
/// the pole: 1° of latitude (~111 km) keeps the pole far from every edge
/// (`point_in_region` counts a point within 5 mm of an edge as inside).
const CLEAR_OF_POLE_LAT_DEG: f64 = 89.0;
/// The widest box (in longitude) taken as clear of the pole: a quarter of
/// the longitudes, so the box is less than a quarter of the Earth's area.
const CLEAR_OF_POLE_WIDTH_DEG: f64 = 90.0;

/// Whether the region an exterior ring bounds provably leaves out the north
/// (`north`) or south pole, given `ring_box`, a box holding every point of
/// that ring's edges: what `point_in_region(pole, rings)` answers then,
/// without its geodesic inverse per vertex (two walks of the ring for
/// every polygon validated, the poles being far from nearly all of them).
///
/// When the box stays a degree short of the pole and spans at most 90° of
/// longitude, the ring lies in the box, and what is outside the box (both
/// poles among it) is connected, so it lies on one side of the ring. The
/// other side is then inside the box, less than a quarter of the Earth, so
/// it is the smaller region, which `point_in_region` takes as the ring's
/// inside: the pole is on the larger side, outside. (Seen from the pole,
/// the azimuths to the ring's vertices turn by nothing, and no edge comes
/// within 5 mm of it.) `false` says nothing: the caller asks
/// `point_in_region`. A property test holds the box of every region to the
/// one computed with both questions asked.
fn pole_outside_region(ring_box: &GeoBounds, north: bool) -> bool {
    let every = ring_box.west_deg == -180.0 && ring_box.east_deg == 180.0;
    let width_deg = (ring_box.east_deg - ring_box.west_deg).rem_euclid(360.0);
    let clear = if north {
        ring_box.north_deg < CLEAR_OF_POLE_LAT_DEG
    } else {
        ring_box.south_deg > -CLEAR_OF_POLE_LAT_DEG
    };
    clear && !every && width_deg <= CLEAR_OF_POLE_WIDTH_DEG
}

/// Whether the geodesic between `a` and `b` is provably at most `limit_m`
/// long, from the straight line between them alone (no geodesic problem
/// solved): a chord `c` bounds its geodesic by `2 M_min asin(c / 2 M_min)`
/// (see `chord::geodesic_upper_m`). `false` says nothing: the caller
/// solves the geodesic ([`crate::distance_m`]). Validation checks every
/// edge against its length limit (5,000 km by default) this way, and solves
/// only the edges that may exceed it.
pub fn geodesic_at_most_m(a: LonLat, b: LonLat, limit_m: f64) -> bool {
    geodesic_upper_m(norm(sub(ecef(b), ecef(a)))) <= limit_m
}

/// The union of the edges' boxes along a connected chain, unwrapping
/// longitude as the chain goes so that crossing the antimeridian widens the
/// box the short way.
fn union_of_edges(chain: impl Iterator<Item = (LonLat, LonLat, GeoBounds)>) -> GeoBounds {
    let (mut south, mut north) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut west, mut east) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut lon = f64::NAN;
    for (a, b, e) in chain {
        south = south.min(e.south_deg);
        north = north.max(e.north_deg);
        if lon.is_nan() {
            lon = a.lon_deg;
            west = lon;
            east = lon;
        }
        let step = ((b.lon_deg - a.lon_deg) + 180.0).rem_euclid(360.0) - 180.0;
        lon += step;
        west = west.min(lon);
        east = east.max(lon);
        if e.west_deg == -180.0 && e.east_deg == 180.0 {
            (west, east) = EVERY_LONGITUDE;
        }
    }
    boxed(south, north, west, east)
}

impl GeoBounds {
    /// A box holding every point within `margin_m` of this box.
    ///
    /// Travelling `s` metres changes latitude by at most `s / M_min` radians
    /// (`M_min = a(1 − e²)`, the smallest meridional radius of curvature) and
    /// longitude by at most `s / (N cos φ)` with `N ≥ a` and `φ` the
    /// poleward-most latitude reached; a box that reaches a pole holds every
    /// longitude.
    pub fn expanded_m(&self, margin_m: f64) -> GeoBounds {
        let dlat = generous((margin_m / M_MIN_M).to_degrees());
        let (south, north) = (self.south_deg - dlat, self.north_deg + dlat);
        let every = self.west_deg == -180.0 && self.east_deg == 180.0;
        if south <= -90.0 || north >= 90.0 || every {
            return GeoBounds {
                south_deg: south.max(-90.0),
                north_deg: north.min(90.0),
                west_deg: -180.0,
                east_deg: 180.0,
            };
        }
        let poleward_deg = south.abs().max(north.abs());
        let dlon = generous((margin_m / (A_M * poleward_deg.to_radians().cos())).to_degrees());
        let width = (self.east_deg - self.west_deg).rem_euclid(360.0);
        boxed(south, north, self.west_deg - dlon, self.west_deg + width + dlon)
    }

    /// Whether two boxes share a point.
    pub fn intersects(&self, other: &GeoBounds) -> bool {
        let lat = self.south_deg <= other.north_deg && other.south_deg <= self.north_deg;
        lat && self
            .lon_intervals()
            .any(|(w1, e1)| other.lon_intervals().any(|(w2, e2)| w1 <= e2 && w2 <= e1))
    }

    /// The box's longitudes as one or two intervals that do not wrap.
    pub fn lon_intervals(&self) -> impl Iterator<Item = (f64, f64)> {
        let wraps = self.west_deg > self.east_deg;
        let first = if wraps {
            (self.west_deg, 180.0)
        } else {
            (self.west_deg, self.east_deg)
        };
        let second = wraps.then_some((-180.0, self.east_deg));
        std::iter::once(first).chain(second)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ellipsoid::direct;

    /// A region's box as it was computed before the pole shortcut: both
    /// poles always asked of `point_in_region`.
    fn region_bounds_asking_both_poles(rings: &[Vec<LonLat>]) -> GeoBounds {
        let mut b = union_of_edges(rings[0].windows(2).map(|e| (e[0], e[1], edge_bounds(e[0], e[1]))));
        if point_in_region(LonLat::new(0.0, 90.0), rings) {
            b = GeoBounds {
                north_deg: 90.0,
                west_deg: -180.0,
                east_deg: 180.0,
                ..b
            };
        }
        if point_in_region(LonLat::new(0.0, -90.0), rings) {
            b = GeoBounds {
                south_deg: -90.0,
                west_deg: -180.0,
                east_deg: 180.0,
                ..b
            };
        }
        b
    }

    /// A closed star-shaped ring around `centre`: vertices at increasing
    /// azimuths (reversed when `clockwise`), each `radius_m` times a factor
    /// in [0.6, 1] away, so it never crosses itself.
    fn star(centre: LonLat, radius_m: f64, factors: &[f64], clockwise: bool) -> Vec<LonLat> {
        let n = factors.len() as f64;
        let mut ring: Vec<LonLat> = factors
            .iter()
            .enumerate()
            .map(|(i, f)| direct(centre, 360.0 * i as f64 / n, radius_m * f).0)
            .collect();
        if clockwise {
            ring.reverse();
        }
        ring.push(ring[0]);
        ring
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The shortcut changes no region's box: rings small and large
        /// (up to 4,000 km across), anywhere from the equator to around
        /// either pole, either orientation, with or without a hole.
        #[test]
        fn region_bounds_equal_those_with_both_poles_asked(
            lon in -180.0f64..180.0,
            lat in prop_oneof![-90.0f64..90.0, 80.0f64..=90.0, -90.0f64..=-80.0, 86.0f64..89.5],
            radius_m in prop_oneof![100.0f64..50_000.0, 50_000.0f64..2_000_000.0],
            factors in proptest::collection::vec(0.6f64..1.0, 3..24),
            clockwise in any::<bool>(),
            hole in any::<bool>(),
        ) {
            let centre = LonLat::new(lon, lat);
            let mut rings = vec![star(centre, radius_m, &factors, clockwise)];
            if hole {
                rings.push(star(centre, radius_m * 0.3, &[1.0, 1.0, 1.0, 1.0], !clockwise));
            }
            let expected = region_bounds_asking_both_poles(&rings);
            prop_assert_eq!(bounds(&Shape::Region(&rings)), expected);
        }
    }

    /// Both sides of the shortcut are reached by rings like the property
    /// test's: a small ring far from the poles skips both questions, a ring
    /// around the north pole (which holds it) asks both.
    #[test]
    fn the_pole_shortcut_applies_only_clear_of_the_poles() {
        let factors = [1.0, 0.8, 0.9, 0.7, 1.0, 0.95];
        let small = [star(LonLat::new(30.0, 45.0), 20_000.0, &factors, false)];
        let b = union_of_edges(small[0].windows(2).map(|e| (e[0], e[1], edge_bounds(e[0], e[1]))));
        assert!(pole_outside_region(&b, true) && pole_outside_region(&b, false));
        let polar = vec![star(LonLat::new(30.0, 89.0), 300_000.0, &factors, true)];
        let b = union_of_edges(polar[0].windows(2).map(|e| (e[0], e[1], edge_bounds(e[0], e[1]))));
        // Its box spans every longitude: neither pole is taken as clear.
        assert!(!pole_outside_region(&b, true) && !pole_outside_region(&b, false));
        assert_eq!(bounds(&Shape::Region(&polar)).north_deg, 90.0);
        assert!(bounds(&Shape::Region(&polar)).south_deg > 80.0);
        assert_eq!(
            bounds(&Shape::Region(&polar)),
            region_bounds_asking_both_poles(&polar)
        );
        // Wide but clear of the pole in latitude: not taken as clear.
        let wide = GeoBounds {
            south_deg: 10.0,
            north_deg: 20.0,
            west_deg: -60.0,
            east_deg: 40.0,
        };
        assert!(!pole_outside_region(&wide, true));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The chord's bound never passes an edge longer than the limit:
        /// at the edge's own length it may pass, a hair below it never.
        #[test]
        fn geodesic_at_most_never_passes_a_longer_edge(
            a_lon in -180.0f64..180.0,
            a_lat in -90.0f64..90.0,
            azimuth in -180.0f64..180.0,
            length_m in prop_oneof![0.0f64..1_000.0, 1_000.0f64..6_000_000.0, 6_000_000.0f64..19_000_000.0],
        ) {
            let a = LonLat::new(a_lon, a_lat);
            let (b, _) = direct(a, azimuth, length_m);
            let exact_m = inverse(a, b).0;
            let below = exact_m * (1.0 - 1e-15) - 1e-9;
            prop_assert!(!geodesic_at_most_m(a, b, below), "{exact_m} passed at {below}");
            // Well above the length it passes (edges within the default limit).
            if exact_m < 5_000_000.0 {
                prop_assert!(geodesic_at_most_m(a, b, exact_m * 1.01 + 1.0));
            }
        }
    }

    #[test]
    fn an_edge_bulges_poleward() {
        // 60°N, 0° to 60°N, 90°E: the geodesic rises above 60°.
        let b = edge_bounds(LonLat::new(0.0, 60.0), LonLat::new(90.0, 60.0));
        assert!(b.north_deg > 65.0, "{b:?}");
        assert!(
            b.west_deg.abs() < 1e-8 && (b.east_deg - 90.0).abs() < 1e-8,
            "{b:?}"
        );
    }

    #[test]
    fn across_the_antimeridian_the_box_wraps() {
        let path = [LonLat::new(179.5, 0.0), LonLat::new(-179.5, 0.0)];
        let b = bounds(&Shape::Path(&path));
        assert!(
            (b.west_deg - 179.5).abs() < 1e-8 && (b.east_deg + 179.5).abs() < 1e-8,
            "{b:?}"
        );
        let e = b.expanded_m(10_000.0);
        assert!(e.west_deg < 179.5 && e.east_deg > -179.5 && e.west_deg > e.east_deg);
    }

    #[test]
    fn expanding_to_a_pole_takes_every_longitude() {
        let b = bounds(&Shape::Point(LonLat::new(10.0, 89.99))).expanded_m(5_000.0);
        assert_eq!((b.west_deg, b.east_deg, b.north_deg), (-180.0, 180.0, 90.0));
    }
}
