//! Distances between base shapes: points, geodesic paths, regions.

use crate::chord::Capsule;
use crate::ellipsoid::distance_m;
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

/// A piece of a shape's boundary: an edge, or the shape's single point.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: LonLat,
    end: LonLat,
    capsule: Capsule,
}

fn pieces(shape: &Shape) -> Vec<Piece> {
    match shape {
        Shape::Point(p) => vec![Piece {
            start: *p,
            end: *p,
            capsule: Capsule::of_point(*p),
        }],
        _ => edges(shape)
            .map(|(start, end)| Piece {
                start,
                end,
                capsule: Capsule::of_edge(start, end),
            })
            .collect(),
    }
}

/// The exact distance between two pieces.
fn piece_distance(a: &Piece, b: &Piece) -> Closest {
    match (a.start == a.end, b.start == b.end) {
        (true, true) => Closest {
            distance_m: distance_m(a.start, b.start),
            on_a: a.start,
            on_b: b.start,
        },
        (true, false) => {
            let (d, foot) = point_segment(a.start, b.start, b.end);
            Closest {
                distance_m: d,
                on_a: a.start,
                on_b: foot,
            }
        }
        (false, true) => {
            let (d, foot) = point_segment(b.start, a.start, a.end);
            Closest {
                distance_m: d,
                on_a: foot,
                on_b: b.start,
            }
        }
        (false, false) => segment_segment(a.start, a.end, b.start, b.end),
    }
}

/// A vertex of one shape inside the other region: they overlap there. (A
/// path or region wholly inside a region has all its vertices inside, and
/// one that is partly inside crosses the boundary, which the edge search
/// finds.)
fn containment(a: &Shape, b: &Shape) -> Option<Closest> {
    for (inner, outer, flip) in [(a, b, false), (b, a, true)] {
        if let Shape::Region(rings) = outer {
            if let Some(v) = vertices(inner).find(|&v| point_in_region(v, rings)) {
                let c = Closest {
                    distance_m: 0.0,
                    on_a: v,
                    on_b: v,
                };
                return Some(if flip { swapped(c) } else { c });
            }
        }
    }
    None
}

/// The exact minimum distance between two shapes and where it is reached.
pub fn closest(a: &Shape, b: &Shape) -> Closest {
    search(a, b, f64::INFINITY).unwrap_or(Closest {
        distance_m: f64::INFINITY,
        on_a: first_vertex(a),
        on_b: first_vertex(b),
    })
}

/// `Some` exactly when the shapes are closer than `limit_m`, with the exact
/// distance and witnesses.
pub fn closest_if_below(a: &Shape, b: &Shape, limit_m: f64) -> Option<Closest> {
    search(a, b, limit_m)
}

/// Branch and bound over pairs of pieces: each pair's capsule bound is a
/// proven lower bound of its exact distance, so pairs are solved exactly in
/// increasing order of bound until the bound reaches the best distance found
/// (or the limit). The answer is exact; the bounds only skip work.
fn search(a: &Shape, b: &Shape, limit_m: f64) -> Option<Closest> {
    if let Some(c) = containment(a, b) {
        return (c.distance_m < limit_m).then_some(c);
    }
    let (pieces_a, pieces_b) = (pieces(a), pieces(b));
    let mut pairs: Vec<(f64, usize, usize)> = Vec::with_capacity(pieces_a.len() * pieces_b.len());
    for (i, pa) in pieces_a.iter().enumerate() {
        for (j, pb) in pieces_b.iter().enumerate() {
            let bound_m = pa.capsule.lower_bound_m(&pb.capsule);
            if bound_m < limit_m {
                pairs.push((bound_m, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut best: Option<Closest> = None;
    for (bound_m, i, j) in pairs {
        let beat_m = best.map_or(limit_m, |c| c.distance_m.min(limit_m));
        if bound_m >= beat_m {
            break;
        }
        let c = piece_distance(&pieces_a[i], &pieces_b[j]);
        if best.is_none_or(|b| c.distance_m < b.distance_m) {
            best = Some(c);
        }
        if c.distance_m == 0.0 {
            break;
        }
    }
    best.filter(|c| c.distance_m < limit_m)
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
