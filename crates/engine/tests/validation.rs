//! Every rejected notification names its field; nothing panics.

use deconflict_engine::*;
use deconflict_geodesy::LonLat;

const HOUR_MS: i64 = 3_600_000;

fn patrol() -> ActivitySpec {
    ActivitySpec {
        party: PartyId(1),
        kind: ActivityKind::Patrol,
        window: TimeWindow::new(Timestamp(0), Some(Timestamp(HOUR_MS))),
        footprint: FootprintSpec::LineString {
            route: vec![LonLat::new(41.40, 37.00), LonLat::new(41.45, 37.05)],
            corridor_m: 500.0,
            waypoint_times: None,
        },
        alt_min_m: None,
        alt_max_m: None,
        separation_m: None,
        vertical_separation_m: None,
    }
}

fn square(lon: f64, lat: f64, side_deg: f64) -> Vec<LonLat> {
    vec![
        LonLat::new(lon, lat),
        LonLat::new(lon + side_deg, lat),
        LonLat::new(lon + side_deg, lat + side_deg),
        LonLat::new(lon, lat + side_deg),
        LonLat::new(lon, lat),
    ]
}

fn area(rings: Vec<Vec<LonLat>>) -> ActivitySpec {
    ActivitySpec {
        kind: ActivityKind::Area,
        footprint: FootprintSpec::Polygon { rings },
        ..patrol()
    }
}

/// Validates `spec` under default rules and compares the rendered errors
/// (`field: problem`) with `expected`; an empty `expected` means valid.
#[track_caller]
fn check(spec: ActivitySpec, expected: &[&str]) {
    check_with(spec, &Limits::default(), expected)
}

#[track_caller]
fn check_with(spec: ActivitySpec, limits: &Limits, expected: &[&str]) {
    let got: Vec<String> = match Activity::validate(&spec, limits, &SeparationDefaults::default()) {
        Ok(_) => vec![],
        Err(error) => {
            assert!(!error.errors.is_empty(), "a rejection names at least one field");
            error.errors.iter().map(ToString::to_string).collect()
        }
    };
    assert_eq!(got, expected);
}

#[test]
fn a_well_formed_patrol_is_accepted() {
    check(patrol(), &[]);
}

#[test]
fn time_window() {
    let mut spec = patrol();
    spec.window.end = Some(Timestamp(0));
    check(spec.clone(), &["end: end must be after start"]);
    spec.window.end = None;
    check(spec.clone(), &["end: end is required except for a site"]);
    spec.kind = ActivityKind::Site;
    spec.footprint = FootprintSpec::Point {
        center: LonLat::new(41.2, 37.05),
        radius_m: 200.0,
    };
    check(spec, &[]);
}

#[test]
fn positions_out_of_range_or_not_finite() {
    let mut spec = patrol();
    spec.footprint = FootprintSpec::LineString {
        route: vec![
            LonLat::new(181.0, 37.0),
            LonLat::new(41.0, -91.0),
            LonLat::new(f64::NAN, f64::INFINITY),
        ],
        corridor_m: 500.0,
        waypoint_times: None,
    };
    check(
        spec,
        &[
            "coordinates[0] longitude: longitude 181 is outside [-180, 180]",
            "coordinates[1] latitude: latitude -91 is outside [-90, 90]",
            "coordinates[2] longitude: must be a finite number",
            "coordinates[2] latitude: must be a finite number",
        ],
    );
}

#[test]
fn disk_radius_and_corridor_width_must_be_positive_and_bounded() {
    let mut spec = patrol();
    spec.footprint = FootprintSpec::Point {
        center: LonLat::new(41.2, 37.05),
        radius_m: 0.0,
    };
    check(spec.clone(), &["radius_m: must be greater than 0, got 0"]);
    spec.footprint = FootprintSpec::Point {
        center: LonLat::new(41.2, 37.05),
        radius_m: f64::NAN,
    };
    check(spec.clone(), &["radius_m: must be a finite number"]);
    spec.footprint = FootprintSpec::Point {
        center: LonLat::new(41.2, 37.05),
        radius_m: 2e6,
    };
    check(spec, &["radius_m: 2000000 is above the limit of 1000000"]);
    let mut spec = patrol();
    if let FootprintSpec::LineString { corridor_m, .. } = &mut spec.footprint {
        *corridor_m = -5.0;
    }
    check(spec, &["corridor_m: must be greater than 0, got -5"]);
}

#[test]
fn corridor_of_zero_length_or_one_position() {
    let mut spec = patrol();
    let p = LonLat::new(41.4, 37.0);
    spec.footprint = FootprintSpec::LineString {
        route: vec![p, p, p],
        corridor_m: 100.0,
        waypoint_times: None,
    };
    check(
        spec.clone(),
        &["coordinates: route has zero length: all positions are equal"],
    );
    spec.footprint = FootprintSpec::LineString {
        route: vec![p],
        corridor_m: 100.0,
        waypoint_times: None,
    };
    check(spec, &["coordinates: needs at least 2 distinct positions, got 1"]);
}

#[test]
fn repeated_positions_are_folded_not_rejected() {
    let mut spec = patrol();
    let (a, b) = (LonLat::new(41.4, 37.0), LonLat::new(41.5, 37.0));
    spec.footprint = FootprintSpec::LineString {
        route: vec![a, a, b, b],
        corridor_m: 100.0,
        waypoint_times: None,
    };
    let activity = Activity::validate(&spec, &Limits::default(), &SeparationDefaults::default()).unwrap();
    assert_eq!(
        activity.footprint,
        Footprint::Corridor {
            route: vec![a, b],
            width_m: 100.0,
            schedule: None
        }
    );
}

#[test]
fn polygon_rings() {
    check(area(vec![square(41.0, 36.0, 0.1)]), &[]);
    let mut open = square(41.0, 36.0, 0.1);
    open.pop();
    check(
        area(vec![open]),
        &["coordinates[0]: ring is not closed: its last position must equal its first"],
    );
    let line = vec![
        LonLat::new(41.0, 36.0),
        LonLat::new(41.1, 36.0),
        LonLat::new(41.0, 36.0),
    ];
    check(
        area(vec![line]),
        &["coordinates[0]: needs at least 3 distinct positions, got 2"],
    );
    // A bow tie: edges 0 (SW→SE) … crossing edge 2 (NE→NW) swapped.
    let bow_tie = vec![
        LonLat::new(41.0, 36.0),
        LonLat::new(41.1, 36.1),
        LonLat::new(41.1, 36.0),
        LonLat::new(41.0, 36.1),
        LonLat::new(41.0, 36.0),
    ];
    check(
        area(vec![bow_tie]),
        &["coordinates[0]: ring intersects itself: edges 0 and 2 cross"],
    );
    check(
        area(vec![]),
        &["coordinates: needs at least 3 distinct positions, got 0"],
    );
}

#[test]
fn holes_must_be_inside() {
    check(area(vec![square(41.0, 36.0, 1.0), square(41.2, 36.2, 0.1)]), &[]);
    check(
        area(vec![square(41.0, 36.0, 1.0), square(45.0, 36.2, 0.1)]),
        &["coordinates[1]: hole is not inside the exterior ring"],
    );
}

#[test]
fn vertex_and_ring_limits_are_explicit() {
    let limits = Limits {
        max_vertices: 4,
        ..Limits::default()
    };
    check_with(
        area(vec![square(41.0, 36.0, 0.1)]),
        &limits,
        &["geometry: has 5 positions, more than the limit of 4"],
    );
    let limits = Limits {
        max_rings: 1,
        ..Limits::default()
    };
    check_with(
        area(vec![square(41.0, 36.0, 1.0), square(41.2, 36.2, 0.1)]),
        &limits,
        &["geometry: has 2 rings, more than the limit of 1"],
    );
    let limits = Limits {
        max_edge_m: 1_000.0,
        ..Limits::default()
    };
    let mut spec = patrol();
    spec.footprint = FootprintSpec::LineString {
        route: vec![
            LonLat::new(41.0, 37.0),
            LonLat::new(41.0, 37.005),
            LonLat::new(41.0, 37.1),
        ],
        corridor_m: 100.0,
        waypoint_times: None,
    };
    let errors = Activity::validate(&spec, &limits, &SeparationDefaults::default())
        .unwrap_err()
        .errors;
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].field,
        Field::Position {
            ring: None,
            vertex: Some(2),
            axis: None
        }
    );
    assert!(matches!(errors[0].problem, Problem::EdgeTooLong { .. }));
}

#[test]
fn altitude_band_and_separations() {
    let mut spec = patrol();
    spec.alt_min_m = Some(500.0);
    spec.alt_max_m = Some(100.0);
    spec.separation_m = Some(-1.0);
    spec.vertical_separation_m = Some(f64::INFINITY);
    check(
        spec,
        &[
            "alt_min_m: alt_min_m must not be above alt_max_m",
            "separation_m: must not be negative, got -1",
            "vertical_separation_m: must be a finite number",
        ],
    );
}

#[test]
fn waypoint_times() {
    let mut spec = patrol();
    let route = vec![
        LonLat::new(41.40, 37.00),
        LonLat::new(41.45, 37.05),
        LonLat::new(41.50, 37.05),
    ];
    let times = |ms: &[i64]| Some(ms.iter().map(|&t| Timestamp(t)).collect());
    spec.footprint = FootprintSpec::LineString {
        route: route.clone(),
        corridor_m: 500.0,
        waypoint_times: times(&[0, 10, 10]),
    };
    check(
        spec.clone(),
        &["waypoint_times[2]: must be strictly after the previous time"],
    );
    spec.footprint = FootprintSpec::LineString {
        route: route.clone(),
        corridor_m: 500.0,
        waypoint_times: times(&[0, 10]),
    };
    check(
        spec.clone(),
        &["waypoint_times: has 2 entries, expected one per position (3)"],
    );
    spec.footprint = FootprintSpec::LineString {
        route: route.clone(),
        corridor_m: 500.0,
        waypoint_times: times(&[0, 10, HOUR_MS + 1]),
    };
    check(spec.clone(), &["waypoint_times[2]: must lie within [start, end]"]);
    spec.footprint = FootprintSpec::LineString {
        route,
        corridor_m: 500.0,
        waypoint_times: times(&[0, 10, HOUR_MS]),
    };
    check(spec, &[]);
}

#[test]
fn defaults_fill_absent_values() {
    let activity = Activity::validate(&patrol(), &Limits::default(), &SeparationDefaults::default()).unwrap();
    assert_eq!(activity.separation_m, 1_000.0);
    assert_eq!(activity.vertical_separation_m, 0.0);
    assert_eq!(activity.altitude, AltitudeBand::ALL);
    let custom = SeparationDefaults {
        patrol_m: 3_000.0,
        ..SeparationDefaults::default()
    };
    assert_eq!(
        Activity::validate(&patrol(), &Limits::default(), &custom)
            .unwrap()
            .separation_m,
        3_000.0
    );
}

/// The box a store files an activity under is the base shape's box grown
/// by the buffer, exactly as computing it from the footprint would give
/// (the validation keeps the base box so that nobody walks the edges twice).
#[test]
fn footprint_bounds_are_the_base_box_grown_by_the_buffer() {
    let defaults = SeparationDefaults::default();
    let validate =
        |spec: &ActivitySpec| Activity::validate(spec, &Limits::default(), &defaults).expect("valid");

    let patrol = validate(&patrol());
    let bounds = patrol.footprint_bounds();
    let base = deconflict_geodesy::bounds(&patrol.footprint.base_shape());
    // A 500 m wide corridor: 250 m either side of its centreline.
    assert_eq!(patrol.footprint.buffer_m(), 250.0);
    assert_eq!(bounds, base.expanded_m(250.0));
    // It reaches beyond the centreline's ends (~0.0023° of latitude).
    assert!(
        bounds.south_deg < 37.00 - 0.002 && bounds.north_deg > 37.05 + 0.002,
        "{bounds:?}"
    );

    let area = validate(&area(vec![square(41.0, 36.5, 0.2)]));
    let bounds = area.footprint_bounds();
    assert_eq!(area.footprint.buffer_m(), 0.0);
    let base = deconflict_geodesy::bounds(&area.footprint.base_shape());
    assert_eq!(bounds, base.expanded_m(0.0));
    // No buffer: the ring's box (padded for rounding; the geodesic edges
    // bulge poleward by a few metres on a 0.2° square).
    assert!(
        (bounds.south_deg - 36.5).abs() < 1e-8 && (bounds.west_deg - 41.0).abs() < 1e-8,
        "{bounds:?}"
    );
    assert!(
        (bounds.north_deg - 36.7).abs() < 1e-4 && (bounds.east_deg - 41.2).abs() < 1e-8,
        "{bounds:?}"
    );
}
