//! Distances between base shapes: points, geodesic paths, regions.

use crate::ellipsoid::{distance_m, inverse};
use crate::region::point_in_region;
use crate::segment::{point_segment, segment_segment};
use crate::{Closest, LonLat, Shape};

fn edges<'a>(shape: &'a Shape<'a>) -> impl Iterator<Item = (LonLat, LonLat)> + 'a {
    let rings: &[Vec<LonLat>] = match shape {
        Shape::Region(rings) => rings,
        _ => &[],
    };
    let path: &[LonLat] = match shape {
        Shape::Path(vertices) => vertices,
        _ => &[],
    };
    path.windows(2)
        .chain(rings.iter().flat_map(|ring| ring.windows(2)))
        .map(|e| (e[0], e[1]))
}

fn vertices<'a>(shape: &'a Shape<'a>) -> impl Iterator<Item = LonLat> + 'a {
    let (point, path, rings): (Option<LonLat>, &[LonLat], &[Vec<LonLat>]) = match shape {
        Shape::Point(p) => (Some(*p), &[], &[]),
        Shape::Path(v) => (None, v, &[]),
        Shape::Region(r) => (None, &[], r),
    };
    point
        .into_iter()
        .chain(path.iter().copied())
        .chain(rings.iter().flatten().copied())
}

fn first_vertex(shape: &Shape) -> LonLat {
    vertices(shape).next().unwrap_or(LonLat::new(0.0, 0.0))
}

fn swapped(c: Closest) -> Closest {
    Closest {
        distance_m: c.distance_m,
        on_a: c.on_b,
        on_b: c.on_a,
    }
}

/// The exact minimum distance between two shapes and where it is reached.
pub fn closest(a: &Shape, b: &Shape) -> Closest {
    // A vertex of one inside the other region: they overlap there. (A path
    // or region wholly inside a region has all its vertices inside.)
    for (inner, outer, flip) in [(a, b, false), (b, a, true)] {
        if let Shape::Region(rings) = outer {
            if let Some(v) = vertices(inner).find(|&v| point_in_region(v, rings)) {
                let c = Closest {
                    distance_m: 0.0,
                    on_a: v,
                    on_b: v,
                };
                return if flip { swapped(c) } else { c };
            }
        }
    }
    match (a, b) {
        (Shape::Point(p), Shape::Point(q)) => Closest {
            distance_m: distance_m(*p, *q),
            on_a: *p,
            on_b: *q,
        },
        (Shape::Point(p), other) => point_to_edges(*p, other),
        (other, Shape::Point(p)) => swapped(point_to_edges(*p, other)),
        _ => {
            // Boundaries that cross meet at distance 0; otherwise the
            // minimum between two segments is at an end of one of them.
            let mut best = Closest {
                distance_m: f64::INFINITY,
                on_a: first_vertex(a),
                on_b: first_vertex(b),
            };
            for (a0, a1) in edges(a) {
                for (b0, b1) in edges(b) {
                    let c = segment_segment(a0, a1, b0, b1);
                    if c.distance_m < best.distance_m {
                        best = c;
                        if best.distance_m == 0.0 {
                            return best;
                        }
                    }
                }
            }
            best
        }
    }
}

fn point_to_edges(p: LonLat, shape: &Shape) -> Closest {
    let mut best = Closest {
        distance_m: f64::INFINITY,
        on_a: p,
        on_b: first_vertex(shape),
    };
    for (e0, e1) in edges(shape) {
        let (d, foot) = point_segment(p, e0, e1);
        if d < best.distance_m {
            best = Closest {
                distance_m: d,
                on_a: p,
                on_b: foot,
            };
        }
    }
    best
}

/// A disk around the shape's first vertex that holds all of the shape:
/// every point of a geodesic edge is within half the edge's length of one of
/// its ends, and a region's farthest point from an inside point is on its
/// boundary. Returns (centre, radius).
fn enclosing_disk(shape: &Shape) -> (LonLat, f64) {
    let centre = first_vertex(shape);
    let mut radius_m: f64 = 0.0;
    for (e0, e1) in edges(shape) {
        let (length_m, _, _) = inverse(e0, e1);
        let farther_end_m = distance_m(centre, e0).max(distance_m(centre, e1));
        radius_m = radius_m.max(farther_end_m + length_m / 2.0);
    }
    (centre, radius_m)
}

/// `Some` exactly when the shapes are closer than `limit_m`.
///
/// A cheap lower bound rejects shapes that are clearly far apart: by the
/// triangle inequality `d(a, b) ≥ d(centre_a, centre_b) − r_a − r_b` for
/// enclosing disks. Only when the bound does not settle it is the exact
/// distance computed, so the decision itself is always exact.
pub fn closest_if_below(a: &Shape, b: &Shape, limit_m: f64) -> Option<Closest> {
    let (centre_a, radius_a_m) = enclosing_disk(a);
    let (centre_b, radius_b_m) = enclosing_disk(b);
    if distance_m(centre_a, centre_b) - radius_a_m - radius_b_m >= limit_m {
        return None;
    }
    let c = closest(a, b);
    (c.distance_m < limit_m).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_inside_region_is_at_zero() {
        let rings = vec![vec![
            LonLat::new(41.0, 36.0),
            LonLat::new(42.0, 36.0),
            LonLat::new(42.0, 37.0),
            LonLat::new(41.0, 37.0),
            LonLat::new(41.0, 36.0),
        ]];
        let path = [LonLat::new(41.2, 36.2), LonLat::new(41.8, 36.8)];
        let c = closest(&Shape::Path(&path), &Shape::Region(&rings));
        assert_eq!(c.distance_m, 0.0);
        let c = closest(&Shape::Region(&rings), &Shape::Point(LonLat::new(43.0, 36.5)));
        assert!((c.distance_m - distance_m(LonLat::new(43.0, 36.5), c.on_a)).abs() < 1e-6);
        assert!((c.on_a.lon_deg - 42.0).abs() < 1e-6, "{c:?}");
    }

    #[test]
    fn crossing_paths_meet() {
        let a = [LonLat::new(41.35, 37.03), LonLat::new(41.47, 37.03)];
        let b = [LonLat::new(41.41, 36.98), LonLat::new(41.41, 37.08)];
        let c = closest(&Shape::Path(&a), &Shape::Path(&b));
        assert_eq!(c.distance_m, 0.0);
        assert!((c.on_a.lon_deg - 41.41).abs() < 1e-6);
    }

    #[test]
    fn the_decision_is_exact_around_the_limit() {
        let p = Shape::Point(LonLat::new(10.0, 0.0));
        let q = Shape::Point(LonLat::new(10.01, 0.0));
        let d = distance_m(LonLat::new(10.0, 0.0), LonLat::new(10.01, 0.0));
        assert!(closest_if_below(&p, &q, d).is_none());
        assert!(closest_if_below(&p, &q, d.next_up()).is_some());
    }
}
