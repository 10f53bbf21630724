//! Regions bounded by rings of geodesic edges.

use geographiclib_rs::{PolygonArea, Winding};

use crate::bounds::edge_bounds;
use crate::ellipsoid::{inverse, wgs84};
use crate::segment::{point_segment, segments_intersection};
use crate::LonLat;

/// Closer than this to an edge counts as on it (and so inside). Five times
/// the nearest-point search's bracket, so that a point on an edge is found on it.
const ON_EDGE_M: f64 = 5e-3;

/// Whether a closed ring runs counter-clockwise around the smaller of the two
/// regions it bounds. GeographicLib's signed area is reduced to
/// (−A/2, A/2], so its sign tells the orientation relative to the smaller side.
fn runs_counter_clockwise(ring: &[LonLat]) -> bool {
    let mut area = PolygonArea::new(wgs84(), Winding::CounterClockwise);
    for p in &ring[..ring.len() - 1] {
        area.add_point(p.lat_deg, p.lon_deg);
    }
    area.compute(true).1 > 0.0
}

fn on_ring(p: LonLat, ring: &[LonLat]) -> bool {
    ring.windows(2)
        .any(|e| point_segment(p, e[0], e[1]).0 < ON_EDGE_M)
}

/// Inside the smaller region bounded by `ring`, edge included.
///
/// Seen from `p`, the azimuths to the ring's vertices turn by ±360° in total
/// when the ring separates `p` from its antipode, and by 0° otherwise
/// (each edge subtends less than 180° unless it passes through `p`, which the
/// edge test catches first). Azimuths grow clockwise, so a counter-clockwise
/// ring around `p` turns by −360°; if instead it turns by +360°, the ring runs
/// around the antipode and `p` is outside.
fn in_ring(p: LonLat, ring: &[LonLat]) -> bool {
    if on_ring(p, ring) {
        return true;
    }
    let azimuths: Vec<f64> = ring.iter().map(|&v| inverse(p, v).1).collect();
    let turning_deg: f64 = azimuths
        .windows(2)
        .map(|w| {
            let delta = (w[1] - w[0]).rem_euclid(360.0);
            if delta > 180.0 {
                delta - 360.0
            } else {
                delta
            }
        })
        .sum();
    turning_deg.abs() > 180.0 && ((turning_deg < 0.0) == runs_counter_clockwise(ring))
}

/// Inside the region of `rings` (exterior first, then holes), edges included.
pub fn point_in_region(p: LonLat, rings: &[Vec<LonLat>]) -> bool {
    let Some(exterior) = rings.first() else {
        return false;
    };
    if !in_ring(p, exterior) {
        return false;
    }
    // A hole's edge belongs to the region.
    !rings[1..]
        .iter()
        .any(|hole| !on_ring(p, hole) && in_ring(p, hole))
}

/// Two non-adjacent edges of a closed ring that cross, if any.
///
/// Edges are first paired by their boxes (cheap), and only pairs whose boxes
/// meet are tested exactly, so rings of thousands of vertices stay fast.
pub fn ring_self_intersection(ring: &[LonLat]) -> Option<(usize, usize)> {
    let edges = ring.len().saturating_sub(1);
    let boxes: Vec<_> = ring.windows(2).map(|e| edge_bounds(e[0], e[1])).collect();
    for i in 0..edges {
        for j in i + 2..edges {
            if i == 0 && j == edges - 1 {
                continue; // adjacent through the closing vertex
            }
            if boxes[i].intersects(&boxes[j])
                && segments_intersection(ring[i], ring[i + 1], ring[j], ring[j + 1]).is_some()
            {
                return Some((i, j));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(lon: f64, lat: f64, side: f64, counter_clockwise: bool) -> Vec<LonLat> {
        let mut ring = vec![
            LonLat::new(lon, lat),
            LonLat::new(lon + side, lat),
            LonLat::new(lon + side, lat + side),
            LonLat::new(lon, lat + side),
            LonLat::new(lon, lat),
        ];
        if !counter_clockwise {
            ring.reverse();
        }
        ring
    }

    #[test]
    fn orientation_does_not_matter() {
        for ccw in [true, false] {
            let rings = vec![square(41.0, 36.0, 1.0, ccw)];
            assert!(point_in_region(LonLat::new(41.5, 36.5), &rings));
            assert!(!point_in_region(LonLat::new(42.5, 36.5), &rings));
            // The antipode of the centre is outside.
            assert!(!point_in_region(LonLat::new(41.5 - 180.0, -36.5), &rings));
        }
    }

    #[test]
    fn edge_and_vertex_are_inside() {
        let rings = vec![square(41.0, 36.0, 1.0, true)];
        assert!(point_in_region(LonLat::new(41.0, 36.0), &rings));
        assert!(point_in_region(LonLat::new(41.0, 36.5), &rings));
    }

    #[test]
    fn holes_are_outside_but_their_edges_inside() {
        let rings = vec![square(41.0, 36.0, 1.0, true), square(41.25, 36.25, 0.5, false)];
        assert!(!point_in_region(LonLat::new(41.5, 36.5), &rings));
        assert!(point_in_region(LonLat::new(41.25, 36.5), &rings));
        assert!(point_in_region(LonLat::new(41.1, 36.1), &rings));
    }

    #[test]
    fn a_ring_around_the_north_pole() {
        let ring: Vec<LonLat> = (0..=8)
            .map(|k| LonLat::new(-180.0 + 45.0 * f64::from(k % 8), 85.0))
            .collect();
        let rings = vec![ring];
        assert!(point_in_region(LonLat::new(0.0, 90.0), &rings));
        assert!(point_in_region(LonLat::new(123.0, 88.0), &rings));
        assert!(!point_in_region(LonLat::new(0.0, -90.0), &rings));
        assert!(!point_in_region(LonLat::new(10.0, 80.0), &rings));
    }

    #[test]
    fn across_the_antimeridian() {
        let rings = vec![vec![
            LonLat::new(179.5, -1.0),
            LonLat::new(-179.5, -1.0),
            LonLat::new(-179.5, 1.0),
            LonLat::new(179.5, 1.0),
            LonLat::new(179.5, -1.0),
        ]];
        assert!(point_in_region(LonLat::new(180.0, 0.0), &rings));
        assert!(point_in_region(LonLat::new(-179.9, 0.5), &rings));
        assert!(!point_in_region(LonLat::new(0.0, 0.0), &rings));
    }

    #[test]
    fn bow_tie_crosses_itself() {
        let ring = vec![
            LonLat::new(41.0, 36.0),
            LonLat::new(41.1, 36.1),
            LonLat::new(41.1, 36.0),
            LonLat::new(41.0, 36.1),
            LonLat::new(41.0, 36.0),
        ];
        assert_eq!(ring_self_intersection(&ring), Some((0, 2)));
        assert_eq!(ring_self_intersection(&square(41.0, 36.0, 1.0, true)), None);
    }
}
