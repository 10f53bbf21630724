//! Regions bounded by rings of geodesic edges.

use geographiclib_rs::{PolygonArea, Winding};

use crate::bounds::edge_bounds;
use crate::chord::{dot, ecef, norm, sagitta_m, sub, Capsule, Tangent, V3};
use crate::ellipsoid::{inverse, wgs84, SolvedEdge, M_MIN_M};
use crate::segment::{point_segment, segments_intersection};
use crate::{GeoBounds, LonLat};

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

pub(crate) fn on_ring(p: LonLat, ring: &[LonLat]) -> bool {
    let at = Capsule::of_point(p);
    ring.windows(2).any(|e| {
        // The exact nearest point is sought only where the bound allows it.
        Capsule::of_edge(e[0], e[1]).lower_bound_m(&at) < ON_EDGE_M
            && point_segment(p, e[0], e[1]).0 < ON_EDGE_M
    })
}

/// Rings reaching farther than this from the point take the exact test.
const LOCAL_M: f64 = 1_000_000.0;

/// Inside or outside a ring, decided on the tangent plane at `p`, or `None`
/// when that cannot be trusted.
///
/// The orthographic projection onto the tangent plane at `p` is a contraction
/// and, within [`LOCAL_M`], one-to-one, so it keeps the winding of the ring
/// around `p`. Each projected geodesic edge stays within `2 (sagitta + L − c)`
/// of its projected chord (`L − c ≤ κ²L³/24`), so if the origin is farther
/// than that from every projected chord, the chord polygon winds around it
/// exactly as the geodesic ring does, and the plain crossing test on chords
/// answers. Near an edge, or for a large ring, it answers `None`.
fn in_ring_on_tangent_plane(p: LonLat, ring: &[LonLat]) -> Option<bool> {
    let at: Vec<V3> = ring.iter().map(|&v| ecef(v)).collect();
    let margins: Vec<f64> = at
        .windows(2)
        .map(|e| tangent_plane_margin_m(e[0], e[1]))
        .collect();
    in_ring_on_tangent_plane_cached(&Tangent::at(p), &at, &margins)
}

/// How far an edge's projection onto a tangent plane (within [`LOCAL_M`])
/// can stray from its projected chord: `2 (sagitta + L − c)`, see
/// [`in_ring_on_tangent_plane`].
pub(crate) fn tangent_plane_margin_m(start: V3, end: V3) -> f64 {
    let chord_m = norm(sub(end, start));
    let length_m = 1.002 * chord_m;
    let excess_m = length_m.powi(3) / (24.0 * M_MIN_M * M_MIN_M);
    2.0 * (sagitta_m(chord_m) + excess_m) + 1e-6
}

/// [`in_ring_on_tangent_plane`] with the ring's Earth-centred vertices and
/// edge margins ([`tangent_plane_margin_m`]) computed beforehand, and the
/// tangent plane at the point (one for all the rings of a region).
pub(crate) fn in_ring_on_tangent_plane_cached(
    plane: &Tangent,
    ring_at: &[V3],
    margins_m: &[f64],
) -> Option<bool> {
    let Tangent { origin, east, north } = *plane;
    let project = |at: V3| -> Option<(f64, f64)> {
        let w = sub(at, origin);
        (dot(w, w) <= LOCAL_M * LOCAL_M).then(|| (dot(east, w), dot(north, w)))
    };
    let mut inside = false;
    let mut q0 = project(*ring_at.first()?)?;
    for (k, &margin_m) in margins_m.iter().enumerate() {
        let q1 = project(ring_at[k + 1])?;
        if planar_distance_to_origin(q0, q1) <= margin_m {
            return None;
        }
        // Crossing test with the ray along +x (half-open in y).
        if (q0.1 > 0.0) != (q1.1 > 0.0) {
            let x = q0.0 - q0.1 * (q1.0 - q0.0) / (q1.1 - q0.1);
            if x > 0.0 {
                inside = !inside;
            }
        }
        q0 = q1;
    }
    Some(inside)
}

fn planar_distance_to_origin(q0: (f64, f64), q1: (f64, f64)) -> f64 {
    let (dx, dy) = (q1.0 - q0.0, q1.1 - q0.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (-(q0.0 * dx + q0.1 * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (q0.0 + t * dx, q0.1 + t * dy);
    (x * x + y * y).sqrt()
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
    if let Some(inside) = in_ring_on_tangent_plane(p, ring) {
        return inside;
    }
    in_ring_exactly(p, ring)
}

/// The exact test behind [`in_ring`], with one geodesic inverse per vertex.
pub(crate) fn in_ring_exactly(p: LonLat, ring: &[LonLat]) -> bool {
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
    let boxes: Vec<_> = ring.windows(2).map(|e| edge_bounds(e[0], e[1])).collect();
    first_crossing(ring, &boxes)
}

/// [`ring_self_intersection`], with each edge's geodesic inverse (which its
/// box needs) appended to `solved`, in order: a validation then prepares
/// the polygon from them ([`crate::Prepared::with_bounds_solved`]) instead
/// of solving every edge a second time. The same boxes to the bit, so the
/// same answer (tested against [`ring_self_intersection`]).
pub fn ring_self_intersection_solving(
    ring: &[LonLat],
    solved: &mut Vec<SolvedEdge>,
) -> Option<(usize, usize)> {
    let first = solved.len();
    solved.extend(ring.windows(2).map(|e| SolvedEdge::solve(e[0], e[1])));
    ring_self_intersection_solved(ring, &solved[first..])
}

/// [`ring_self_intersection`], taking each edge's box from `solved` (the
/// ring's edges' solutions, in order, as [`SolvedEdge::solve`] gives them)
/// where it names that edge; an edge it does not name at its place is
/// boxed here, so the answer is [`ring_self_intersection`]'s whatever
/// `solved` holds. A validation solves a ring's edges first, checks their
/// lengths with them, then asks this.
pub fn ring_self_intersection_solved(ring: &[LonLat], solved: &[SolvedEdge]) -> Option<(usize, usize)> {
    let boxes: Vec<GeoBounds> = ring
        .windows(2)
        .enumerate()
        .map(|(i, e)| match solved.get(i) {
            Some(edge) if edge.is_of(e[0], e[1]) => edge.bounds,
            _ => edge_bounds(e[0], e[1]),
        })
        .collect();
    first_crossing(ring, &boxes)
}

/// The first pair of non-adjacent edges of `ring` that cross, given each
/// edge's box.
fn first_crossing(ring: &[LonLat], boxes: &[GeoBounds]) -> Option<(usize, usize)> {
    let edges = ring.len().saturating_sub(1);
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
    fn the_tangent_plane_agrees_with_the_exact_test_or_abstains() {
        let ring = square(41.0, 36.0, 0.3, true);
        for k in 0..400 {
            let p = LonLat::new(
                40.9 + 0.5 * f64::from(k % 20) / 19.0,
                35.9 + 0.5 * f64::from(k / 20) / 19.0,
            );
            let exact = in_ring_exactly(p, &ring);
            if let Some(fast) = in_ring_on_tangent_plane(p, &ring) {
                assert_eq!(fast, exact, "{p:?}");
            }
        }
        assert_eq!(
            in_ring_on_tangent_plane(LonLat::new(41.0, 36.1), &ring),
            None,
            "on an edge: abstains"
        );
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
