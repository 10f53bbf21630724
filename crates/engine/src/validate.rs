//! Validation of notified activities: every rejected value is named by its
//! field, and every limit is explicit and configurable.
//!
//! Validation collects every problem it can find rather than stopping at the
//! first, so that a liaison officer fixes a file in one pass.

use std::fmt;

use deconflict_geodesy::{self as geodesy, LonLat, SolvedEdge};

use crate::activity::{
    Activity, ActivityKind, ActivitySpec, AltitudeBand, Footprint, FootprintSpec, Schedule,
    SeparationDefaults,
};

/// Explicit limits on what one activity may be. Each protects the engine's
/// time or memory from a single notification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Positions in one footprint, all rings counted (the closing position too).
    pub max_vertices: usize,
    /// Rings in one polygon, the exterior included.
    pub max_rings: usize,
    /// Longest edge between two consecutive positions. Edges near half the
    /// Earth's circumference have no unique geodesic, so a bound is needed.
    pub max_edge_m: f64,
    pub max_radius_m: f64,
    pub max_corridor_m: f64,
    pub max_separation_m: f64,
    pub max_vertical_separation_m: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_vertices: 2_000,
            max_rings: 16,
            max_edge_m: 5_000_000.0,
            max_radius_m: 1_000_000.0,
            max_corridor_m: 200_000.0,
            max_separation_m: 500_000.0,
            max_vertical_separation_m: 100_000.0,
        }
    }
}

/// Longitude or latitude within a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Axis {
    Longitude,
    Latitude,
}

/// The field of an [`ActivitySpec`] that a problem is about, named as in the
/// contract so that drivers can turn it into a JSON pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Kind,
    Start,
    End,
    RadiusM,
    CorridorM,
    AltMinM,
    AltMaxM,
    SeparationM,
    VerticalSeparationM,
    /// The whole schedule (`index: None`) or one of its times.
    WaypointTimes {
        index: Option<usize>,
    },
    /// The geometry as a whole.
    Geometry,
    /// A position, a coordinate of it, or a whole ring/route (`vertex: None`
    /// with `ring: Some` for a ring; all `None` for a route). `ring` is `None`
    /// outside polygons; `vertex` is `None` for a Point's single position.
    Position {
        ring: Option<usize>,
        vertex: Option<usize>,
        axis: Option<Axis>,
    },
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Kind => f.write_str("kind"),
            Field::Start => f.write_str("start"),
            Field::End => f.write_str("end"),
            Field::RadiusM => f.write_str("radius_m"),
            Field::CorridorM => f.write_str("corridor_m"),
            Field::AltMinM => f.write_str("alt_min_m"),
            Field::AltMaxM => f.write_str("alt_max_m"),
            Field::SeparationM => f.write_str("separation_m"),
            Field::VerticalSeparationM => f.write_str("vertical_separation_m"),
            Field::WaypointTimes { index: None } => f.write_str("waypoint_times"),
            Field::WaypointTimes { index: Some(i) } => write!(f, "waypoint_times[{i}]"),
            Field::Geometry => f.write_str("geometry"),
            Field::Position { ring, vertex, axis } => {
                f.write_str("coordinates")?;
                if let Some(ring) = ring {
                    write!(f, "[{ring}]")?;
                }
                if let Some(vertex) = vertex {
                    write!(f, "[{vertex}]")?;
                }
                match axis {
                    Some(Axis::Longitude) => f.write_str(" longitude"),
                    Some(Axis::Latitude) => f.write_str(" latitude"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Problem {
    NotFinite,
    LatitudeOutOfRange { value_deg: f64 },
    LongitudeOutOfRange { value_deg: f64 },
    NotPositive { value: f64 },
    Negative { value: f64 },
    AboveLimit { value: f64, limit: f64 },
    TooManyVertices { count: usize, limit: usize },
    TooManyRings { count: usize, limit: usize },
    TooFewPositions { count: usize, min: usize },
    RingNotClosed,
    SelfIntersecting { edge_a: usize, edge_b: usize },
    HoleOutsideExterior,
    ZeroLength,
    EdgeTooLong { length_m: f64, limit_m: f64 },
    EndNotAfterStart,
    MissingEnd,
    MinAboveMax,
    WrongCount { count: usize, expected: usize },
    NotIncreasing,
    OutsideWindow,
    NotAllowedForGeometry,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotFinite => f.write_str("must be a finite number"),
            Problem::LatitudeOutOfRange { value_deg } => {
                write!(f, "latitude {value_deg} is outside [-90, 90]")
            }
            Problem::LongitudeOutOfRange { value_deg } => {
                write!(f, "longitude {value_deg} is outside [-180, 180]")
            }
            Problem::NotPositive { value } => write!(f, "must be greater than 0, got {value}"),
            Problem::Negative { value } => write!(f, "must not be negative, got {value}"),
            Problem::AboveLimit { value, limit } => {
                write!(f, "{value} is above the limit of {limit}")
            }
            Problem::TooManyVertices { count, limit } => {
                write!(f, "has {count} positions, more than the limit of {limit}")
            }
            Problem::TooManyRings { count, limit } => {
                write!(f, "has {count} rings, more than the limit of {limit}")
            }
            Problem::TooFewPositions { count, min } => {
                write!(f, "needs at least {min} distinct positions, got {count}")
            }
            Problem::RingNotClosed => {
                f.write_str("ring is not closed: its last position must equal its first")
            }
            Problem::SelfIntersecting { edge_a, edge_b } => {
                write!(f, "ring intersects itself: edges {edge_a} and {edge_b} cross")
            }
            Problem::HoleOutsideExterior => f.write_str("hole is not inside the exterior ring"),
            Problem::ZeroLength => f.write_str("route has zero length: all positions are equal"),
            Problem::EdgeTooLong { length_m, limit_m } => write!(
                f,
                "edge is {:.0} m long, more than the limit of {limit_m:.0} m",
                length_m
            ),
            Problem::EndNotAfterStart => f.write_str("end must be after start"),
            Problem::MissingEnd => f.write_str("end is required except for a site"),
            Problem::MinAboveMax => f.write_str("alt_min_m must not be above alt_max_m"),
            Problem::WrongCount { count, expected } => {
                write!(f, "has {count} entries, expected one per position ({expected})")
            }
            Problem::NotIncreasing => f.write_str("must be strictly after the previous time"),
            Problem::OutsideWindow => f.write_str("must lie within [start, end]"),
            Problem::NotAllowedForGeometry => f.write_str("not allowed for this geometry"),
        }
    }
}

/// One rejected field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: Field,
    pub problem: Problem,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Why an activity was rejected: every field found wrong, never empty.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid activity: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ValidationError {
    pub errors: Vec<FieldError>,
}

/// Collects problems as validation proceeds.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: Field, problem: Problem) {
        self.0.push(FieldError { field, problem });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A non-negative finite number within a limit.
    fn bounded(&mut self, field: Field, value: f64, limit: f64, positive: bool) {
        if !value.is_finite() {
            self.add(field, Problem::NotFinite);
        } else if positive && value <= 0.0 {
            self.add(field, Problem::NotPositive { value });
        } else if value < 0.0 {
            self.add(field, Problem::Negative { value });
        } else if value > limit {
            self.add(field, Problem::AboveLimit { value, limit });
        }
    }
}

fn position_field(ring: Option<usize>, vertex: Option<usize>, axis: Option<Axis>) -> Field {
    Field::Position { ring, vertex, axis }
}

/// Checks one position; returns whether it is usable for geometry.
fn check_position(problems: &mut Problems, p: LonLat, ring: Option<usize>, vertex: Option<usize>) -> bool {
    let mut ok = true;
    if !p.lon_deg.is_finite() {
        problems.add(
            position_field(ring, vertex, Some(Axis::Longitude)),
            Problem::NotFinite,
        );
        ok = false;
    } else if !(-180.0..=180.0).contains(&p.lon_deg) {
        problems.add(
            position_field(ring, vertex, Some(Axis::Longitude)),
            Problem::LongitudeOutOfRange { value_deg: p.lon_deg },
        );
        ok = false;
    }
    if !p.lat_deg.is_finite() {
        problems.add(
            position_field(ring, vertex, Some(Axis::Latitude)),
            Problem::NotFinite,
        );
        ok = false;
    } else if !(-90.0..=90.0).contains(&p.lat_deg) {
        problems.add(
            position_field(ring, vertex, Some(Axis::Latitude)),
            Problem::LatitudeOutOfRange { value_deg: p.lat_deg },
        );
        ok = false;
    }
    ok
}

/// The same place, whatever longitude a pole is written with.
fn same_place(a: LonLat, b: LonLat) -> bool {
    if a.lat_deg == b.lat_deg && a.lat_deg.abs() == 90.0 {
        return true;
    }
    a.lat_deg == b.lat_deg
        && (a.lon_deg == b.lon_deg || (a.lon_deg.abs() == 180.0 && a.lon_deg == -b.lon_deg))
}

/// Drops consecutive repeats, which carry no geometry and would make
/// zero-length geodesic edges. Also returns, for each kept position, its
/// index as notified, so that errors name what the user wrote.
fn fold_repeats(positions: &[LonLat]) -> (Vec<LonLat>, Vec<usize>) {
    let mut folded: Vec<LonLat> = Vec::with_capacity(positions.len());
    let mut notified_index = Vec::with_capacity(positions.len());
    for (i, &p) in positions.iter().enumerate() {
        if folded.last().is_none_or(|&last| !same_place(last, p)) {
            folded.push(p);
            notified_index.push(i);
        }
    }
    (folded, notified_index)
}

/// The edge's geodesic length when it is above the edge limit.
fn edge_beyond_limit_m(a: LonLat, b: LonLat, limits: &Limits) -> Option<f64> {
    // Nearly every edge is far below the limit: the bound from its chord
    // settles it without a geodesic problem. Only an edge that may exceed
    // the limit is solved here, and its problem names the exact length.
    if geodesy::geodesic_at_most_m(a, b, limits.max_edge_m) {
        return None;
    }
    Some(geodesy::distance_m(a, b)).filter(|&length_m| length_m > limits.max_edge_m)
}

fn check_edges(problems: &mut Problems, positions: &[LonLat], ring: Option<usize>, limits: &Limits) {
    for (i, pair) in positions.windows(2).enumerate() {
        if let Some(length_m) = edge_beyond_limit_m(pair[0], pair[1], limits) {
            problems.add(
                position_field(ring, Some(i + 1), None),
                Problem::EdgeTooLong {
                    length_m,
                    limit_m: limits.max_edge_m,
                },
            );
        }
    }
}

/// [`check_edges`] of a notified ring, with the length of each edge that
/// is an edge of the folded ring taken from `solved` (the folded ring's
/// edges solved in order; `notified_index` as [`fold_repeats`] gives it).
/// An edge between a position and its repeat is not in the folded ring, nor
/// is the edge that ends a run of repeats whose last position is not
/// written as the run's first, to the bit (a pole's longitude, ±180): those
/// take [`check_edges`]' path. The same problems as [`check_edges`] (tested).
/// Returns how many edges their solution settled.
fn check_ring_edges(
    problems: &mut Problems,
    ring: &[LonLat],
    notified_index: &[usize],
    solved: &[SolvedEdge],
    r: usize,
    limits: &Limits,
) -> usize {
    // The folded edge `j` ends at notified position `notified_index[j + 1]`.
    let (mut j, mut settled) = (0, 0);
    for (i, pair) in ring.windows(2).enumerate() {
        let folded_edge = if notified_index.get(j + 1) == Some(&(i + 1)) {
            j += 1;
            solved.get(j - 1).filter(|edge| edge.is_of(pair[0], pair[1]))
        } else {
            None
        };
        let too_long_m = match folded_edge {
            Some(edge) => {
                settled += 1;
                Some(edge.length_m()).filter(|&length_m| length_m > limits.max_edge_m)
            }
            None => edge_beyond_limit_m(pair[0], pair[1], limits),
        };
        if let Some(length_m) = too_long_m {
            problems.add(
                position_field(Some(r), Some(i + 1), None),
                Problem::EdgeTooLong {
                    length_m,
                    limit_m: limits.max_edge_m,
                },
            );
        }
    }
    settled
}

fn validate_route(problems: &mut Problems, route: &[LonLat], limits: &Limits) -> Option<Vec<LonLat>> {
    let mut ok = true;
    for (i, &p) in route.iter().enumerate() {
        ok &= check_position(problems, p, None, Some(i));
    }
    if !ok {
        return None;
    }
    let (folded, _) = fold_repeats(route);
    if folded.len() < 2 {
        let problem = if route.len() < 2 {
            Problem::TooFewPositions {
                count: route.len(),
                min: 2,
            }
        } else {
            Problem::ZeroLength
        };
        problems.add(position_field(None, None, None), problem);
        return None;
    }
    let before = problems.0.len();
    check_edges(problems, route, None, limits);
    (problems.0.len() == before).then_some(folded)
}

/// The rings folded, and each of their edges' geodesic inverse (solved for
/// the self-intersection test, in the order a prepared shape walks them).
fn validate_rings(
    problems: &mut Problems,
    rings: &[Vec<LonLat>],
    limits: &Limits,
) -> Option<(Vec<Vec<LonLat>>, Vec<SolvedEdge>)> {
    if rings.is_empty() {
        problems.add(
            position_field(None, None, None),
            Problem::TooFewPositions { count: 0, min: 3 },
        );
        return None;
    }
    if rings.len() > limits.max_rings {
        problems.add(
            Field::Geometry,
            Problem::TooManyRings {
                count: rings.len(),
                limit: limits.max_rings,
            },
        );
        return None;
    }
    let mut folded_rings = Vec::with_capacity(rings.len());
    // Room for every ring's edges (one fewer than its positions, repeats
    // folded or not), so that the list is not grown edge by edge.
    let mut solved = Vec::with_capacity(rings.iter().map(Vec::len).sum());
    for (r, ring) in rings.iter().enumerate() {
        let mut ok = true;
        for (i, &p) in ring.iter().enumerate() {
            ok &= check_position(problems, p, Some(r), Some(i));
        }
        if !ok {
            continue;
        }
        if ring.len() >= 2 && !same_place(ring[0], ring[ring.len() - 1]) {
            problems.add(position_field(Some(r), None, None), Problem::RingNotClosed);
            continue;
        }
        let (folded, notified_index) = fold_repeats(ring);
        // A closed ring of three distinct corners is four positions.
        if folded.len() < 4 {
            problems.add(
                position_field(Some(r), None, None),
                Problem::TooFewPositions {
                    count: folded.len().saturating_sub(1),
                    min: 3,
                },
            );
            continue;
        }
        // The folded ring's edges are solved first (the self-intersection
        // test needs their boxes, the prepared shape their inverses), so
        // their lengths settle the edge limit without the chord bound.
        let first = solved.len();
        solved.extend(folded.windows(2).map(|e| SolvedEdge::solve(e[0], e[1])));
        let before = problems.0.len();
        check_ring_edges(problems, ring, &notified_index, &solved[first..], r, limits);
        if problems.0.len() != before {
            continue;
        }
        if let Some((a, b)) = geodesy::ring_self_intersection_solved(&folded, &solved[first..]) {
            problems.add(
                position_field(Some(r), None, None),
                Problem::SelfIntersecting {
                    edge_a: notified_index[a],
                    edge_b: notified_index[b],
                },
            );
            continue;
        }
        folded_rings.push(folded);
    }
    if !problems.is_empty() {
        return None;
    }
    // Checking one position per hole keeps validation linear; holes are rare
    // in notifications and a hole partly outside only removes area.
    let exterior = std::slice::from_ref(&folded_rings[0]);
    for (r, hole) in folded_rings.iter().enumerate().skip(1) {
        if !geodesy::point_in_region(hole[0], exterior) {
            problems.add(position_field(Some(r), None, None), Problem::HoleOutsideExterior);
        }
    }
    problems.is_empty().then_some((folded_rings, solved))
}

/// The footprint, and the geodesic inverses of its edges solved on the way
/// (a polygon's; none for the others).
fn validate_footprint(
    problems: &mut Problems,
    spec: &ActivitySpec,
    limits: &Limits,
) -> Option<(Footprint, Vec<SolvedEdge>)> {
    let vertex_count = match &spec.footprint {
        FootprintSpec::Point { .. } => 1,
        FootprintSpec::LineString { route, .. } => route.len(),
        FootprintSpec::Polygon { rings } => rings.iter().map(Vec::len).sum(),
    };
    if vertex_count > limits.max_vertices {
        problems.add(
            Field::Geometry,
            Problem::TooManyVertices {
                count: vertex_count,
                limit: limits.max_vertices,
            },
        );
        return None;
    }
    match &spec.footprint {
        FootprintSpec::Point { center, radius_m } => {
            problems.bounded(Field::RadiusM, *radius_m, limits.max_radius_m, true);
            let ok = check_position(problems, *center, None, None);
            ok.then_some((
                Footprint::Disk {
                    center: *center,
                    radius_m: *radius_m,
                },
                Vec::new(),
            ))
        }
        FootprintSpec::LineString {
            route,
            corridor_m,
            waypoint_times,
        } => {
            problems.bounded(Field::CorridorM, *corridor_m, limits.max_corridor_m, true);
            let folded = validate_route(problems, route, limits);
            let schedule = match waypoint_times {
                None => None,
                Some(times) => validate_schedule(problems, spec, route, times),
            };
            if waypoint_times.is_some() && schedule.is_none() {
                return None;
            }
            folded.map(|route| {
                let corridor = Footprint::Corridor {
                    route,
                    width_m: *corridor_m,
                    schedule,
                };
                (corridor, Vec::new())
            })
        }
        FootprintSpec::Polygon { rings } => validate_rings(problems, rings, limits)
            .map(|(rings, solved)| (Footprint::Polygon { rings }, solved)),
    }
}

fn validate_schedule(
    problems: &mut Problems,
    spec: &ActivitySpec,
    route: &[LonLat],
    times: &[crate::time::Timestamp],
) -> Option<Schedule> {
    if times.len() != route.len() {
        problems.add(
            Field::WaypointTimes { index: None },
            Problem::WrongCount {
                count: times.len(),
                expected: route.len(),
            },
        );
        return None;
    }
    let before = problems.0.len();
    for (i, t) in times.iter().enumerate() {
        if i > 0 && *t <= times[i - 1] {
            problems.add(Field::WaypointTimes { index: Some(i) }, Problem::NotIncreasing);
        } else if *t < spec.window.start || spec.window.end.is_some_and(|end| *t > end) {
            problems.add(Field::WaypointTimes { index: Some(i) }, Problem::OutsideWindow);
        }
    }
    (problems.0.len() == before).then(|| Schedule {
        vertices: route.to_vec(),
        times_ms: times.iter().map(|t| t.unix_ms()).collect(),
    })
}

impl Activity {
    /// Checks a notified activity and builds the engine's form of it.
    ///
    /// Never panics; every problem found is returned with the field it is
    /// about.
    pub fn validate(
        spec: &ActivitySpec,
        limits: &Limits,
        defaults: &SeparationDefaults,
    ) -> Result<Activity, ValidationError> {
        let mut problems = Problems::default();

        match spec.window.end {
            None if spec.kind != ActivityKind::Site => problems.add(Field::End, Problem::MissingEnd),
            Some(end) if end <= spec.window.start => problems.add(Field::End, Problem::EndNotAfterStart),
            _ => {}
        }

        let altitude = validate_altitude(&mut problems, spec);
        let separation_m = spec.separation_m.unwrap_or_else(|| defaults.for_kind(spec.kind));
        problems.bounded(Field::SeparationM, separation_m, limits.max_separation_m, false);
        let vertical_separation_m = spec.vertical_separation_m.unwrap_or(0.0);
        problems.bounded(
            Field::VerticalSeparationM,
            vertical_separation_m,
            limits.max_vertical_separation_m,
            false,
        );

        let footprint = validate_footprint(&mut problems, spec, limits);
        match (footprint, problems.is_empty()) {
            (Some((footprint, solved)), true) => {
                // A polygon's edges were solved for its self-intersection
                // test: the same inverses, not solved again (the HTTP
                // workers spent ~23 % of their CPU validating).
                let (prepared, base_bounds) =
                    geodesy::Prepared::with_bounds_solved(&footprint.base_shape(), &solved);
                let reach = base_bounds.expanded_m(footprint.buffer_m() + separation_m);
                Ok(Activity {
                    party: spec.party,
                    kind: spec.kind,
                    window: spec.window,
                    footprint,
                    altitude,
                    separation_m,
                    vertical_separation_m,
                    reach,
                    prepared,
                    base_bounds,
                })
            }
            _ => {
                debug_assert!(!problems.is_empty(), "a rejected footprint names its problem");
                Err(ValidationError { errors: problems.0 })
            }
        }
    }
}

fn validate_altitude(problems: &mut Problems, spec: &ActivitySpec) -> AltitudeBand {
    let mut band = AltitudeBand::ALL;
    if let Some(min_m) = spec.alt_min_m {
        if min_m.is_finite() {
            band.min_m = min_m;
        } else {
            problems.add(Field::AltMinM, Problem::NotFinite);
        }
    }
    if let Some(max_m) = spec.alt_max_m {
        if max_m.is_finite() {
            band.max_m = max_m;
        } else {
            problems.add(Field::AltMaxM, Problem::NotFinite);
        }
    }
    if band.min_m > band.max_m {
        problems.add(Field::AltMinM, Problem::MinAboveMax);
    }
    band
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The edge check as it was: every edge's geodesic solved.
    fn edge_problems_solving_every_edge(positions: &[LonLat], limits: &Limits) -> Vec<FieldError> {
        let mut problems = Problems::default();
        for (i, pair) in positions.windows(2).enumerate() {
            let length_m = geodesy::distance_m(pair[0], pair[1]);
            if length_m > limits.max_edge_m {
                problems.add(
                    position_field(Some(0), Some(i + 1), None),
                    Problem::EdgeTooLong {
                        length_m,
                        limit_m: limits.max_edge_m,
                    },
                );
            }
        }
        problems.0
    }

    /// A xorshift stream of numbers in `[0, 1)`.
    fn uniform(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A step of up to `scale_deg` each way from `last`.
    fn step(last: LonLat, scale_deg: f64, next: &mut impl FnMut() -> f64) -> LonLat {
        LonLat::new(
            (last.lon_deg + (next() - 0.5) * scale_deg + 540.0).rem_euclid(360.0) - 180.0,
            (last.lat_deg + (next() - 0.5) * scale_deg).clamp(-90.0, 90.0),
        )
    }

    /// The edge limit at the default, at, just below and just above an
    /// edge's exact length, and at a metre.
    fn limits_around(edge_m: f64) -> [Limits; 5] {
        [
            Limits::default().max_edge_m,
            edge_m,
            edge_m * (1.0 - 1e-12),
            edge_m.next_up(),
            1.0,
        ]
        .map(|max_edge_m| Limits {
            max_edge_m,
            ..Limits::default()
        })
    }

    /// The chord's shortcut names the same edges with the same lengths as
    /// solving every edge, with the limit at, just below and just above
    /// edges' exact lengths and at the default, on routes of short and long
    /// edges (some beyond the default limit) and repeated positions.
    #[test]
    fn edge_check_equals_solving_every_edge() {
        let mut next = uniform(0x9e37_79b9_7f4a_7c15);
        let mut flagged = 0;
        for round in 0..300 {
            let scale_deg = [0.01, 1.0, 30.0, 60.0][round % 4];
            let mut route = vec![LonLat::new(next() * 360.0 - 180.0, next() * 170.0 - 85.0)];
            for _ in 0..8 {
                let last = *route.last().unwrap();
                let next_point = if next() < 0.1 {
                    last
                } else {
                    step(last, scale_deg, &mut next)
                };
                route.push(next_point);
            }
            let some_edge_m = geodesy::distance_m(route[0], route[1]);
            for limits in limits_around(some_edge_m) {
                let max_edge_m = limits.max_edge_m;
                let mut problems = Problems::default();
                check_edges(&mut problems, &route, Some(0), &limits);
                let expected = edge_problems_solving_every_edge(&route, &limits);
                flagged += expected.len();
                assert_eq!(problems.0, expected, "route {route:?} limit {max_edge_m}");
            }
        }
        assert!(flagged > 300, "too few edges beyond a limit: {flagged}");
    }

    /// A ring's edge check from its folded edges' solutions names the same
    /// edges with the same lengths as the chord path ([`check_edges`]) and
    /// as solving every notified edge: on rings of short and long edges
    /// with repeated positions, some written differently from the
    /// position they repeat (a pole at another longitude, 180 for -180),
    /// the limit at the default, at, just below and just above edges'
    /// exact lengths.
    #[test]
    fn ring_edge_check_from_solved_edges_equals_the_chord_path() {
        let mut next = uniform(0x2545_f491_4f6c_dd1d);
        let (mut flagged, mut rewritten, mut exact_rings) = (0, 0, 0);
        for round in 0..400 {
            let scale_deg = [0.01, 1.0, 30.0, 60.0][round % 4];
            let mut ring = vec![LonLat::new(next() * 360.0 - 180.0, next() * 170.0 - 85.0)];
            for _ in 0..8 {
                let last = *ring.last().unwrap();
                let roll = next();
                let next_point = if roll < 0.1 {
                    last
                } else if roll < 0.15 && last.lat_deg.abs() == 90.0 {
                    rewritten += 1;
                    LonLat::new(next() * 360.0 - 180.0, last.lat_deg)
                } else if roll < 0.2 && last.lon_deg.abs() == 180.0 {
                    rewritten += 1;
                    LonLat::new(-last.lon_deg, last.lat_deg)
                } else if roll < 0.25 {
                    LonLat::new(next() * 360.0 - 180.0, if next() < 0.5 { 90.0 } else { -90.0 })
                } else if roll < 0.3 {
                    LonLat::new(if next() < 0.5 { 180.0 } else { -180.0 }, last.lat_deg)
                } else {
                    step(last, scale_deg, &mut next)
                };
                ring.push(next_point);
            }
            ring.push(ring[0]);
            let (folded, notified_index) = fold_repeats(&ring);
            let repeats_written_alike = ring.windows(2).all(|e| {
                let bits = |p: LonLat| (p.lon_deg.to_bits(), p.lat_deg.to_bits());
                !same_place(e[0], e[1]) || bits(e[0]) == bits(e[1])
            });
            exact_rings += usize::from(repeats_written_alike);
            let solved: Vec<SolvedEdge> = folded.windows(2).map(|e| SolvedEdge::solve(e[0], e[1])).collect();
            let some_edge_m = geodesy::distance_m(folded[0], folded[folded.len().min(2) - 1]);
            for limits in limits_around(some_edge_m) {
                let max_edge_m = limits.max_edge_m;
                let mut from_solved = Problems::default();
                let settled = check_ring_edges(&mut from_solved, &ring, &notified_index, &solved, 0, &limits);
                // Every folded edge is settled by its solution when every
                // repeat is written as the position it repeats.
                if repeats_written_alike {
                    assert_eq!(settled, solved.len(), "ring {ring:?}");
                }
                let mut chord_path = Problems::default();
                check_edges(&mut chord_path, &ring, Some(0), &limits);
                let expected = edge_problems_solving_every_edge(&ring, &limits);
                flagged += expected.len();
                assert_eq!(from_solved.0, chord_path.0, "ring {ring:?} limit {max_edge_m}");
                assert_eq!(from_solved.0, expected, "ring {ring:?} limit {max_edge_m}");
            }
        }
        assert!(flagged > 400, "too few edges beyond a limit: {flagged}");
        assert!(rewritten > 20, "too few repeats written otherwise: {rewritten}");
        assert!(exact_rings > 100, "too few rings of exact repeats: {exact_rings}");
    }

    mod one_walk {
        use super::*;
        use crate::activity::{ActivityKind, PartyId};
        use crate::time::{TimeWindow, Timestamp};
        use proptest::prelude::*;

        /// A ring of corners at increasing bearings around `centre` (in
        /// degrees of the plate carrée, so simple there and nearly so as
        /// geodesics), a corner repeated where `repeat` says (folded by the
        /// validation, so the notified and the folded indices differ).
        fn ring(centre: LonLat, corners: &[(f64, f64)], repeat: usize) -> Vec<LonLat> {
            let mut bearings: Vec<(f64, f64)> = corners.to_vec();
            bearings.sort_by(|x, y| x.0.total_cmp(&y.0));
            let mut ring: Vec<LonLat> = bearings
                .iter()
                .map(|&(bearing_deg, r_deg)| {
                    let (sin, cos) = bearing_deg.to_radians().sin_cos();
                    let lat = (centre.lat_deg + r_deg * cos).clamp(-90.0, 90.0);
                    let lon = centre.lon_deg + r_deg * sin / centre.lat_deg.to_radians().cos();
                    LonLat::new((lon + 540.0).rem_euclid(360.0) - 180.0, lat)
                })
                .collect();
            let at = repeat % ring.len();
            ring.insert(at, ring[at]);
            ring.push(ring[0]);
            ring
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// A polygon's prepared shape and box, built from the edges its
            /// self-intersection test solved, are those prepared from its
            /// rings alone (`Prepared::with_bounds`), to the bit: on
            /// polygons anywhere (the antimeridian and the poles' reach
            /// included), with a hole or not, some of them crossing
            /// themselves or their hole outside (rejected: then only the
            /// errors, which name the notified indices, are checked to
            /// exist).
            #[test]
            fn a_polygon_is_prepared_as_from_its_rings_alone(
                lon in -180.0..180.0f64,
                lat in -85.0..85.0f64,
                corners in prop::collection::vec((0.0..360.0f64, 0.01..0.3f64), 3..14),
                hole in prop::collection::vec((0.0..360.0f64, 0.001..0.01f64), 0..6),
                repeat in 0usize..20,
                cross in any::<bool>(),
            ) {
                let centre = LonLat::new(lon, lat);
                let mut exterior = ring(centre, &corners, repeat);
                if cross && exterior.len() > 5 {
                    exterior.swap(1, 3);
                }
                let mut rings = vec![exterior];
                if hole.len() >= 3 {
                    rings.push(ring(centre, &hole, repeat / 2));
                }
                let spec = ActivitySpec {
                    party: PartyId(1),
                    kind: ActivityKind::Area,
                    window: TimeWindow::new(Timestamp(0), Some(Timestamp(3_600_000))),
                    footprint: FootprintSpec::Polygon { rings },
                    alt_min_m: None,
                    alt_max_m: None,
                    separation_m: None,
                    vertical_separation_m: None,
                };
                match Activity::validate(&spec, &Limits::default(), &SeparationDefaults::default()) {
                    Ok(activity) => {
                        let (prepared, base_bounds) = geodesy::Prepared::with_bounds(&activity.footprint.base_shape());
                        prop_assert_eq!(format!("{:?}", activity.prepared), format!("{prepared:?}"));
                        prop_assert_eq!(format!("{:?}", activity.base_bounds), format!("{base_bounds:?}"));
                    }
                    Err(error) => prop_assert!(!error.errors.is_empty()),
                }
            }
        }
    }
}
