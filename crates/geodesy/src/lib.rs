//! Exact geodesy on the WGS84 ellipsoid.
//!
//! Every edge between two vertices is a geodesic (the shortest path on the
//! ellipsoid), never a rhumb line or a straight line in some projection.
//! Distances are metres along geodesics, computed with Karney's algorithms
//! (`geographiclib-rs`). Accuracy target: within 1 m or 0.02 % of
//! GeographicLib, whichever is larger.
//!
//! Modules: `ellipsoid` (Karney's direct and inverse problems), `segment`
//! (point to geodesic segment, segment intersection), `region` (point in
//! polygon with geodesic edges), `shape` (distances between shapes),
//! `bounds` (boxes for indexing), `moving` (timed routes), `chord` (proven
//! bounds from straight chords), `prepared` (shapes prepared once, and the
//! fast path that settles most pairs with those bounds and leaves the rest,
//! and every decision near a threshold, to the exact computation).
//!
//! Shapes here are *base shapes* (a point, a path, a region); buffers such as
//! a disk's radius or a corridor's half-width are applied by the caller, since
//! the distance between buffered shapes is `max(0, d(base_a, base_b) - r_a - r_b)`.

/// A position on the WGS84 ellipsoid, longitude first as in RFC 7946.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LonLat {
    pub lon_deg: f64,
    pub lat_deg: f64,
}

impl LonLat {
    pub const fn new(lon_deg: f64, lat_deg: f64) -> Self {
        Self { lon_deg, lat_deg }
    }
}

/// A base shape.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    Point(LonLat),
    /// Geodesic edges between consecutive vertices; at least 2 vertices,
    /// consecutive vertices distinct.
    Path(&'a [LonLat]),
    /// `rings[0]` is the exterior ring, the rest are holes. Each ring is closed
    /// (first vertex == last vertex) with geodesic edges. The inside is the
    /// smaller of the two regions the exterior ring bounds (ring orientation
    /// does not matter), minus the holes. The edge belongs to the region.
    Region(&'a [Vec<LonLat>]),
}

/// The minimum geodesic distance between two shapes and where it is attained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closest {
    /// 0 when the shapes touch, cross or one contains the other.
    pub distance_m: f64,
    /// The point of shape `a` nearest to `b` (a common point when the distance is 0).
    pub on_a: LonLat,
    /// The point of shape `b` nearest to `a` (equal to `on_a` when the distance is 0).
    pub on_b: LonLat,
}

/// A latitude/longitude box. `west_deg > east_deg` means the box crosses the
/// antimeridian; `west_deg == -180 && east_deg == 180` is every longitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBounds {
    pub south_deg: f64,
    pub north_deg: f64,
    pub west_deg: f64,
    pub east_deg: f64,
}

mod bounds;
mod chord;
mod ellipsoid;
mod moving;
mod prepared;
mod region;
mod segment;
mod shape;

pub use bounds::{bounds, geodesic_at_most_m};
pub use ellipsoid::{distance_m, point_at_distance, SolvedEdge};
pub use moving::{closest_approach, time_span_below, MovingApproach, TimedPath};
pub use prepared::{
    gap_midpoint, separation_if_below, separation_if_below_exactly, Buffered, Prepared, Separation,
    GAP_TOLERANCE_M, MAX_PIECE_M, MAX_PREPARED_POINTS,
};
pub use region::{
    point_in_region, ring_self_intersection, ring_self_intersection_solved, ring_self_intersection_solving,
};
pub use segment::segments_intersection;
pub use shape::{closest, closest_if_below};
