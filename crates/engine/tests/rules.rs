//! The conflict rule, case by case: time, altitude, separation, parties.

use deconflict_engine::*;
use deconflict_geodesy::{distance_m, LonLat};

const HOUR_MS: i64 = 3_600_000;

fn spec(
    party: u64,
    kind: ActivityKind,
    footprint: FootprintSpec,
    start_h: i64,
    end_h: Option<i64>,
) -> ActivitySpec {
    ActivitySpec {
        party: PartyId(party),
        kind,
        window: TimeWindow::new(
            Timestamp(start_h * HOUR_MS),
            end_h.map(|h| Timestamp(h * HOUR_MS)),
        ),
        footprint,
        alt_min_m: None,
        alt_max_m: None,
        separation_m: None,
        vertical_separation_m: None,
    }
}

fn site(party: u64, lon: f64, lat: f64, radius_m: f64) -> ActivitySpec {
    spec(
        party,
        ActivityKind::Site,
        FootprintSpec::Point {
            center: LonLat::new(lon, lat),
            radius_m,
        },
        0,
        None,
    )
}

fn route(party: u64, points: &[(f64, f64)], corridor_m: f64, start_h: i64, end_h: i64) -> ActivitySpec {
    let route = points.iter().map(|&(lon, lat)| LonLat::new(lon, lat)).collect();
    spec(
        party,
        ActivityKind::Patrol,
        FootprintSpec::LineString {
            route,
            corridor_m,
            waypoint_times: None,
        },
        start_h,
        Some(end_h),
    )
}

fn valid(spec: &ActivitySpec) -> Activity {
    Activity::validate(spec, &Limits::default(), &SeparationDefaults::default()).expect("valid")
}

fn finding(a: &ActivitySpec, b: &ActivitySpec) -> Option<Finding> {
    let (a, b) = (valid(a), valid(b));
    let forward = evaluate(&a, &b);
    let backward = evaluate(&b, &a);
    assert_eq!(forward.is_some(), backward.is_some(), "the rule is symmetric");
    if let (Some(f), Some(g)) = (forward, backward) {
        assert_eq!(f.window, g.window);
        assert!((f.min_distance_m - g.min_distance_m).abs() < 0.01);
    }
    forward
}

#[test]
fn a_party_never_conflicts_with_itself() {
    let a = route(1, &[(41.40, 37.0), (41.40, 37.1)], 500.0, 0, 2);
    let b = route(1, &[(41.40, 37.0), (41.40, 37.1)], 500.0, 0, 2);
    assert_eq!(finding(&a, &b), None);
}

#[test]
fn crossing_routes_in_overlapping_windows_conflict_at_the_crossing() {
    let a = route(1, &[(41.35, 37.03), (41.47, 37.03)], 500.0, 0, 2);
    let b = route(2, &[(41.41, 36.98), (41.41, 37.08)], 500.0, 1, 3);
    let f = finding(&a, &b).expect("conflict");
    assert_eq!(f.min_distance_m, 0.0);
    assert_eq!(f.required_m, 1_000.0);
    assert_eq!(
        f.window,
        TimeWindow::new(Timestamp(HOUR_MS), Some(Timestamp(2 * HOUR_MS)))
    );
    assert!(
        distance_m(f.location, LonLat::new(41.41, 37.03)) < 300.0,
        "{:?}",
        f.location
    );
}

#[test]
fn windows_that_only_touch_do_not_conflict() {
    let a = route(1, &[(41.35, 37.03), (41.47, 37.03)], 500.0, 0, 2);
    let b = route(2, &[(41.41, 36.98), (41.41, 37.08)], 500.0, 2, 3);
    assert_eq!(finding(&a, &b), None);
}

#[test]
fn separation_is_the_larger_of_the_two_and_measured_between_footprint_edges() {
    // Two sites 3 km apart (centre to centre) with 500 m radii: 2 km apart at the edges.
    let a = site(1, 41.2200, 37.05, 500.0);
    let centre_b = LonLat::new(41.2200 + 3_000.0 / 88_900.0, 37.05);
    let gap_m = distance_m(LonLat::new(41.22, 37.05), centre_b) - 1_000.0;
    let mut b = site(2, centre_b.lon_deg, centre_b.lat_deg, 500.0);
    assert_eq!(finding(&a, &b), None, "site default 500 m < {gap_m} m");
    b.separation_m = Some(gap_m + 10.0);
    let f = finding(&a, &b).expect("the larger separation applies");
    assert!(
        (f.min_distance_m - gap_m).abs() < 0.01,
        "{} vs {gap_m}",
        f.min_distance_m
    );
    assert_eq!(f.required_m, gap_m + 10.0);
    // The location is halfway across the gap: 500 + gap/2 from each centre.
    let from_a = distance_m(LonLat::new(41.22, 37.05), f.location);
    assert!((from_a - (500.0 + gap_m / 2.0)).abs() < 0.5, "{from_a}");
    b.separation_m = Some(gap_m - 10.0);
    assert_eq!(finding(&a, &b), None);
}

#[test]
fn zero_separation_still_conflicts_when_footprints_touch() {
    let mut a = site(1, 41.0, 37.0, 1_000.0);
    let mut b = site(2, 41.0, 37.0, 10.0);
    a.separation_m = Some(0.0);
    b.separation_m = Some(0.0);
    assert!(finding(&a, &b).is_some());
    b.footprint = FootprintSpec::Point {
        center: LonLat::new(41.1, 37.0),
        radius_m: 10.0,
    };
    assert_eq!(finding(&a, &b), None);
}

#[test]
fn altitude_bands_apart_by_more_than_the_vertical_separation_do_not_conflict() {
    let mut helicopter = route(1, &[(41.35, 37.03), (41.47, 37.03)], 2_000.0, 0, 2);
    helicopter.kind = ActivityKind::Flight;
    helicopter.alt_min_m = Some(150.0);
    helicopter.alt_max_m = Some(600.0);
    let mut drone = route(2, &[(41.41, 36.98), (41.41, 37.08)], 500.0, 0, 2);
    drone.kind = ActivityKind::Flight;
    drone.alt_min_m = Some(1_000.0);
    drone.alt_max_m = Some(3_000.0);
    assert_eq!(
        finding(&helicopter, &drone),
        None,
        "400 m apart, no vertical separation required"
    );
    drone.vertical_separation_m = Some(400.0);
    assert_eq!(
        finding(&helicopter, &drone),
        None,
        "exactly the required gap is enough"
    );
    drone.vertical_separation_m = Some(500.0);
    assert!(finding(&helicopter, &drone).is_some());
    // A ground patrol with no band is at all altitudes.
    let patrol = route(2, &[(41.41, 36.98), (41.41, 37.08)], 500.0, 0, 2);
    assert!(finding(&helicopter, &patrol).is_some());
}

#[test]
fn a_route_inside_an_area_conflicts_at_distance_zero() {
    let ring = vec![
        LonLat::new(41.0, 36.9),
        LonLat::new(41.6, 36.9),
        LonLat::new(41.6, 37.2),
        LonLat::new(41.0, 37.2),
        LonLat::new(41.0, 36.9),
    ];
    let area = spec(
        1,
        ActivityKind::Exercise,
        FootprintSpec::Polygon { rings: vec![ring] },
        0,
        Some(10),
    );
    let patrol = route(2, &[(41.2, 37.0), (41.3, 37.1)], 200.0, 1, 2);
    let f = finding(&area, &patrol).expect("inside");
    assert_eq!(f.min_distance_m, 0.0);
}

#[test]
fn routes_across_the_antimeridian_meet() {
    let a = route(1, &[(179.99, -17.0), (-179.99, -17.0)], 200.0, 0, 2);
    let b = route(2, &[(180.0, -17.01), (180.0, -16.99)], 200.0, 0, 2);
    let f = finding(&a, &b).expect("they cross at 180°");
    assert_eq!(f.min_distance_m, 0.0);
}

#[test]
fn timed_routes_conflict_only_when_both_are_near_at_the_same_time() {
    let times = |hours: &[f64]| {
        Some(
            hours
                .iter()
                .map(|&h| Timestamp((h * HOUR_MS as f64) as i64))
                .collect(),
        )
    };
    // A drives west→east over the crossing at 41.41° around 00:30.
    let mut a = route(1, &[(41.35, 37.03), (41.47, 37.03)], 200.0, 0, 2);
    a.footprint = FootprintSpec::LineString {
        route: vec![LonLat::new(41.35, 37.03), LonLat::new(41.47, 37.03)],
        corridor_m: 200.0,
        waypoint_times: times(&[0.0, 1.0]),
    };
    // B drives south→north over the same crossing around 01:30: no conflict.
    let mut b = route(2, &[(41.41, 36.98), (41.41, 37.08)], 200.0, 0, 2);
    b.footprint = FootprintSpec::LineString {
        route: vec![LonLat::new(41.41, 36.98), LonLat::new(41.41, 37.08)],
        corridor_m: 200.0,
        waypoint_times: times(&[1.0, 2.0]),
    };
    assert_eq!(finding(&a, &b), None, "an hour apart at the crossing");
    // Untimed, the same routes conflict.
    let untimed_b = route(2, &[(41.41, 36.98), (41.41, 37.08)], 200.0, 0, 2);
    assert!(finding(&a, &untimed_b).is_some());
    // B an hour earlier reaches the crossing at 00:30 too.
    b.footprint = FootprintSpec::LineString {
        route: vec![LonLat::new(41.41, 36.98), LonLat::new(41.41, 37.08)],
        corridor_m: 200.0,
        waypoint_times: times(&[0.0, 1.0]),
    };
    let f = finding(&a, &b).expect("both at the crossing at 00:30");
    let half_hour = Timestamp(HOUR_MS / 2);
    assert!(
        f.window.start < half_hour && half_hour < f.window.end.unwrap(),
        "{:?}",
        f.window
    );
    assert!(distance_m(f.location, LonLat::new(41.41, 37.03)) < 500.0);
}
