//! Known-answer vectors computed with GeographicLib's Python package
//! (`tests/fixtures/generate.py`): the accuracy bound is 1 m or 0.02 %,
//! whichever is larger.

use deconflict_geodesy::{closest, distance_m, LonLat, Shape};
use serde::Deserialize;

#[derive(Deserialize)]
struct PointPoint {
    a: (f64, f64),
    b: (f64, f64),
    distance_m: f64,
}

#[derive(Deserialize)]
struct PointSegment {
    p: (f64, f64),
    a: (f64, f64),
    b: (f64, f64),
    distance_m: f64,
}

fn ll((lon, lat): (f64, f64)) -> LonLat {
    LonLat::new(lon, lat)
}

fn allowed_m(reference_m: f64) -> f64 {
    (reference_m * 2e-4).max(1.0)
}

#[test]
fn point_to_point_distances_match_geographiclib() {
    let cases: Vec<PointPoint> = serde_json::from_str(include_str!("fixtures/point_point.json")).unwrap();
    let mut worst_m: f64 = 0.0;
    for case in &cases {
        let error_m = (distance_m(ll(case.a), ll(case.b)) - case.distance_m).abs();
        assert!(
            error_m <= allowed_m(case.distance_m),
            "{:?} → {:?}: off by {error_m} m",
            case.a,
            case.b
        );
        worst_m = worst_m.max(error_m);
    }
    println!("{} point-point vectors, worst error {worst_m:.2e} m", cases.len());
}

#[test]
fn point_to_segment_distances_match_geographiclib() {
    let cases: Vec<PointSegment> = serde_json::from_str(include_str!("fixtures/point_segment.json")).unwrap();
    let mut worst_m: f64 = 0.0;
    for case in &cases {
        let segment = [ll(case.a), ll(case.b)];
        let got = closest(&Shape::Point(ll(case.p)), &Shape::Path(&segment));
        let error_m = (got.distance_m - case.distance_m).abs();
        assert!(
            error_m <= allowed_m(case.distance_m),
            "{:?} to {:?}–{:?}: {} vs {} m",
            case.p,
            case.a,
            case.b,
            got.distance_m,
            case.distance_m
        );
        // The witness point is on the segment at the distance reported.
        assert!((distance_m(got.on_a, got.on_b) - got.distance_m).abs() < 1e-6);
        worst_m = worst_m.max(error_m);
    }
    println!(
        "{} point-segment vectors, worst error {worst_m:.2e} m",
        cases.len()
    );
}
