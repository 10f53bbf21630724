//! Property tests against brute force: random shapes anywhere on Earth
//! (poles and the antimeridian drawn on purpose), exact answers compared with
//! dense sampling.

use deconflict_geodesy::{bounds, closest, closest_if_below, distance_m, point_at_distance, LonLat, Shape};
use proptest::prelude::*;

/// A place, a third of the time near a pole or on the antimeridian.
fn anchor() -> impl Strategy<Value = LonLat> {
    prop_oneof![
        (-180.0..180.0f64, -80.0..80.0f64).prop_map(|(lon, lat)| LonLat::new(lon, lat)),
        (-180.0..180.0f64, 86.0..89.9f64, any::<bool>())
            .prop_map(|(lon, lat, north)| LonLat::new(lon, if north { lat } else { -lat })),
        (179.5..180.0f64, -60.0..60.0f64, any::<bool>())
            .prop_map(|(lon, lat, east)| LonLat::new(if east { lon } else { -lon }, lat)),
    ]
}

/// A path of 2–4 vertices within ~50 km of `start`, each step by the direct problem.
fn path_near(start: LonLat) -> impl Strategy<Value = Vec<LonLat>> {
    prop::collection::vec((0.0..360.0f64, 500.0..30_000.0f64), 1..4).prop_map(move |steps| {
        let mut path = vec![start];
        for (azimuth_deg, length_m) in steps {
            let last = *path.last().unwrap();
            // A point `length_m` away at `azimuth_deg`: go towards a far point
            // in that direction.
            let far = LonLat::new(
                last.lon_deg + azimuth_deg.to_radians().sin(),
                (last.lat_deg + azimuth_deg.to_radians().cos()).clamp(-89.99, 89.99),
            );
            path.push(point_at_distance(last, far, length_m));
        }
        path
    })
}

fn pair() -> impl Strategy<Value = (Vec<LonLat>, Vec<LonLat>)> {
    anchor().prop_flat_map(|a| {
        (path_near(a), (0.0..360.0f64, 0.0..40_000.0f64)).prop_flat_map(
            move |(path_a, (azimuth_deg, offset_m))| {
                let far = LonLat::new(
                    a.lon_deg + azimuth_deg.to_radians().sin(),
                    (a.lat_deg + azimuth_deg.to_radians().cos()).clamp(-89.99, 89.99),
                );
                path_near(point_at_distance(a, far, offset_m))
                    .prop_map(move |path_b| (path_a.clone(), path_b))
            },
        )
    })
}

/// Points every `step_m` along each geodesic edge, ends included.
fn sample(path: &[LonLat], step_m: f64) -> Vec<LonLat> {
    let mut points = vec![path[0]];
    for edge in path.windows(2) {
        let length_m = distance_m(edge[0], edge[1]);
        let n = (length_m / step_m).ceil().max(1.0) as usize;
        for k in 1..=n {
            points.push(point_at_distance(
                edge[0],
                edge[1],
                length_m * k as f64 / n as f64,
            ));
        }
    }
    points
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn path_to_path_distance_agrees_with_sampling((a, b) in pair()) {
        let exact = closest(&Shape::Path(&a), &Shape::Path(&b));
        let step_m = 200.0;
        let (samples_a, samples_b) = (sample(&a, step_m), sample(&b, step_m));
        let brute_m = samples_a.iter().flat_map(|p| samples_b.iter().map(move |q| distance_m(*p, *q))).fold(f64::INFINITY, f64::min);
        // Nothing sampled is closer than the exact minimum…
        prop_assert!(exact.distance_m <= brute_m + 1e-3, "exact {} > sampled {}", exact.distance_m, brute_m);
        // …and sampling gets within a step of it (half a step on each side).
        prop_assert!(brute_m - exact.distance_m <= step_m, "exact {} ≪ sampled {}", exact.distance_m, brute_m);
        // The witnesses are on the shapes at the distance reported.
        prop_assert!((distance_m(exact.on_a, exact.on_b) - exact.distance_m).abs() < 1e-3);
    }

    #[test]
    fn the_fast_decision_agrees_with_the_exact_distance((a, b) in pair(), limit_m in 0.0..60_000.0f64) {
        let exact = closest(&Shape::Path(&a), &Shape::Path(&b)).distance_m;
        let decided = closest_if_below(&Shape::Path(&a), &Shape::Path(&b), limit_m);
        prop_assert_eq!(decided.is_some(), exact < limit_m);
    }

    #[test]
    fn bounds_hold_the_whole_shape_and_its_margin((a, _) in pair(), margin_m in 0.0..20_000.0f64, azimuth_deg in 0.0..360.0f64) {
        let b = bounds(&Shape::Path(&a));
        let grown = b.expanded_m(margin_m);
        for p in sample(&a, 500.0) {
            let inside = |g: &deconflict_geodesy::GeoBounds, q: LonLat| {
                q.lat_deg >= g.south_deg && q.lat_deg <= g.north_deg
                    && g.lon_intervals().any(|(w, e)| q.lon_deg >= w && q.lon_deg <= e)
            };
            prop_assert!(inside(&b, p), "{p:?} outside {b:?}");
            let far = LonLat::new(p.lon_deg + azimuth_deg.to_radians().sin(), (p.lat_deg + azimuth_deg.to_radians().cos()).clamp(-89.99, 89.99));
            let q = point_at_distance(p, far, margin_m);
            prop_assert!(inside(&grown, q), "{q:?} ({margin_m} m from {p:?}) outside {grown:?}");
        }
    }
}
