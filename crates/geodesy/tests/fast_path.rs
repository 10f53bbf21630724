//! The prepared fast path against the exact path: random points, paths and
//! regions anywhere on Earth (poles and the antimeridian drawn on purpose),
//! with limits drawn both far from and within millimetres of the exact
//! distance. The decision must be identical, the gap within
//! `GAP_TOLERANCE_M`, zero exactly when the exact gap is zero, and the
//! location where the contract puts it.

use deconflict_geodesy::{
    bounds, closest, distance_m, point_at_distance, point_in_region, ring_self_intersection,
    ring_self_intersection_solved, ring_self_intersection_solving, separation_if_below,
    separation_if_below_exactly, Buffered, LonLat, Prepared, Shape, SolvedEdge, GAP_TOLERANCE_M,
};
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

/// The point `length_m` from `from` at `azimuth_deg`.
fn step(from: LonLat, azimuth_deg: f64, length_m: f64) -> LonLat {
    let far = LonLat::new(
        from.lon_deg + azimuth_deg.to_radians().sin(),
        (from.lat_deg + azimuth_deg.to_radians().cos()).clamp(-89.99, 89.99),
    );
    point_at_distance(from, far, length_m)
}

#[derive(Debug, Clone)]
enum Drawn {
    Point(LonLat, f64),
    Path(Vec<LonLat>, f64),
    /// A convex quadrilateral: corners at four increasing azimuths.
    Region(Vec<Vec<LonLat>>),
}

impl Drawn {
    fn shape(&self) -> Shape<'_> {
        match self {
            Drawn::Point(p, _) => Shape::Point(*p),
            Drawn::Path(v, _) => Shape::Path(v),
            Drawn::Region(r) => Shape::Region(r),
        }
    }

    fn buffer_m(&self) -> f64 {
        match self {
            Drawn::Point(_, b) | Drawn::Path(_, b) => *b,
            Drawn::Region(_) => 0.0,
        }
    }
}

fn drawn_near(centre: LonLat) -> impl Strategy<Value = Drawn> {
    prop_oneof![
        (0.0..3_000.0f64).prop_map(move |b| Drawn::Point(centre, b)),
        (
            prop::collection::vec((0.0..360.0f64, 300.0..12_000.0f64), 1..4),
            0.0..1_500.0f64
        )
            .prop_map(move |(steps, b)| {
                let mut path = vec![centre];
                for (azimuth_deg, length_m) in steps {
                    let last = *path.last().unwrap();
                    path.push(step(last, azimuth_deg, length_m));
                }
                Drawn::Path(path, b)
            }),
        (0.0..90.0f64, prop::collection::vec(800.0..9_000.0f64, 4)).prop_map(move |(turn_deg, radii)| {
            let mut ring: Vec<LonLat> = radii
                .iter()
                .enumerate()
                .map(|(k, &r)| step(centre, turn_deg + 90.0 * k as f64, r))
                .collect();
            ring.push(ring[0]);
            Drawn::Region(vec![ring])
        }),
    ]
}

fn pair() -> impl Strategy<Value = (Drawn, Drawn)> {
    (anchor(), 0.0..360.0f64, 0.0..15_000.0f64).prop_flat_map(|(a, azimuth_deg, offset_m)| {
        (drawn_near(a), drawn_near(step(a, azimuth_deg, offset_m)))
    })
}

/// The exact distance from a point to a footprint's base shape.
fn to_base_m(p: LonLat, shape: &Shape) -> f64 {
    closest(&Shape::Point(p), shape).distance_m
}

/// Both halves of `Prepared::with_bounds` equal what `Prepared::new` and
/// `bounds` give on their own, to the bit: the validation takes its index
/// box from it.
fn assert_with_bounds_is_new_and_bounds(shape: &Shape) {
    assert_solved_with_bounds_is_new_and_bounds(shape, &[]);
}

/// The same for `Prepared::with_bounds_solved` with edges solved beforehand
/// (right, wrong or missing: it must not matter). `Debug` is compared
/// too, which tells `-0.0` from `0.0` and NaN from NaN.
fn assert_solved_with_bounds_is_new_and_bounds(shape: &Shape, solved: &[SolvedEdge]) {
    let (prepared, shape_bounds) = Prepared::with_bounds_solved(shape, solved);
    assert_eq!(format!("{prepared:?}"), format!("{:?}", Prepared::new(shape)));
    assert_eq!(prepared, Prepared::new(shape));
    let alone = bounds(shape);
    for (got, want) in [
        (shape_bounds.south_deg, alone.south_deg),
        (shape_bounds.north_deg, alone.north_deg),
        (shape_bounds.west_deg, alone.west_deg),
        (shape_bounds.east_deg, alone.east_deg),
    ] {
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{shape_bounds:?} against {alone:?}"
        );
    }
}

#[test]
fn with_bounds_holds_for_edges_too_long_to_prepare_and_regions_around_a_pole() {
    // An edge past 1,000 km leaves the shape unprepared; the box must not care.
    let long = [
        LonLat::new(10.0, 10.0),
        LonLat::new(25.0, 20.0),
        LonLat::new(25.1, 20.1),
    ];
    assert_with_bounds_is_new_and_bounds(&Shape::Path(&long));
    let polar = [vec![
        LonLat::new(0.0, 80.0),
        LonLat::new(120.0, 80.0),
        LonLat::new(-120.0, 80.0),
        LonLat::new(0.0, 80.0),
    ]];
    assert_with_bounds_is_new_and_bounds(&Shape::Region(&polar));
    assert_with_bounds_is_new_and_bounds(&Shape::Point(LonLat::new(179.99, -89.0)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn with_bounds_is_prepared_and_bounds_to_the_bit(drawn in anchor().prop_flat_map(drawn_near)) {
        assert_with_bounds_is_new_and_bounds(&drawn.shape());
    }

    /// One walk for validation: the self-intersection test that solves
    /// each edge once answers as the one that solves its own (the same
    /// edge pair, or none), and the polygon prepared from those solutions
    /// is the one prepared from scratch, to the bit. Rings of random
    /// corners (most of them cross themselves), anywhere on Earth, with a
    /// second ring as a hole or not; the solutions also handed over
    /// stale (the other ring's first, or shifted by an edge), which must
    /// change nothing.
    #[test]
    fn one_walk_gives_the_same_crossing_prepared_shape_and_box(
        centre in anchor(),
        corners in prop::collection::vec((0.0..360.0f64, 10.0..40_000.0f64), 3..12),
        hole in prop::collection::vec((0.0..360.0f64, 10.0..40_000.0f64), 0..6),
    ) {
        let ring_of = |corners: &[(f64, f64)]| -> Vec<LonLat> {
            let mut ring: Vec<LonLat> = corners.iter().map(|&(azimuth_deg, r)| step(centre, azimuth_deg, r)).collect();
            ring.push(ring[0]);
            ring
        };
        let mut rings = vec![ring_of(&corners)];
        if hole.len() >= 3 {
            rings.push(ring_of(&hole));
        }
        let mut solved = Vec::new();
        for ring in &rings {
            let before = solved.len();
            prop_assert_eq!(ring_self_intersection_solving(ring, &mut solved), ring_self_intersection(ring));
            prop_assert_eq!(solved.len() - before, ring.len() - 1);
        }
        let shape = Shape::Region(&rings);
        assert_solved_with_bounds_is_new_and_bounds(&shape, &solved);
        assert_solved_with_bounds_is_new_and_bounds(&shape, &solved[1..]);
        // Boxes taken only for the edges a list names at their place.
        let exterior = &rings[0];
        prop_assert_eq!(ring_self_intersection_solved(exterior, &solved[1..]), ring_self_intersection(exterior));
        prop_assert_eq!(ring_self_intersection_solved(exterior, &[]), ring_self_intersection(exterior));
        let mut stale = Vec::new();
        ring_self_intersection_solving(rings.last().expect("a ring"), &mut stale);
        prop_assert_eq!(ring_self_intersection_solved(exterior, &stale), ring_self_intersection(exterior));
        stale.extend_from_slice(&solved);
        assert_solved_with_bounds_is_new_and_bounds(&shape, &stale);
        assert_solved_with_bounds_is_new_and_bounds(&Shape::Path(&rings[0]), &solved);
    }

    #[test]
    fn the_fast_path_agrees_with_the_exact_path(
        (a, b) in pair(),
        // Limits far from the distance, and within a millimetre of it.
        offset_m in prop_oneof![-3_000.0..3_000.0f64, -1e-3..1e-3f64, Just(0.0)],
        required_m in 0.0..2_000.0f64,
    ) {
        let (shape_a, shape_b) = (a.shape(), b.shape());
        let (prepared_a, prepared_b) = (Prepared::new(&shape_a), Prepared::new(&shape_b));
        let fa = Buffered { shape: shape_a, prepared: &prepared_a, buffer_m: a.buffer_m() };
        let fb = Buffered { shape: shape_b, prepared: &prepared_b, buffer_m: b.buffer_m() };
        let buffers_m = a.buffer_m() + b.buffer_m();
        let exact_m = closest(&shape_a, &shape_b).distance_m;
        for limit_m in [required_m + buffers_m, (exact_m + offset_m).max(1e-3)] {
            let fast = separation_if_below(&fa, &fb, limit_m);
            let exact = separation_if_below_exactly(&fa, &fb, limit_m);
            prop_assert_eq!(fast.is_some(), exact.is_some(), "limit {} exact {}", limit_m, exact_m);
            let (Some(fast), Some(exact)) = (fast, exact) else { continue };
            prop_assert!((fast.gap_m - exact.gap_m).abs() <= GAP_TOLERANCE_M + 1e-3,
                "gap {} vs exact {}", fast.gap_m, exact.gap_m);
            // Zero exactly when the footprints touch (up to the exact path's
            // own millimetre).
            if fast.gap_m == 0.0 {
                prop_assert!(exact.gap_m < 1e-3, "exact gap {}", exact.gap_m);
            } else {
                prop_assert!(exact.gap_m > 0.0);
            }
            // The location: inside both footprints when they touch, else
            // about halfway across the gap.
            for (side, shape) in [(&a, &shape_a), (&b, &shape_b)] {
                let from_base_m = to_base_m(fast.location, shape);
                if fast.gap_m == 0.0 {
                    let inside = match side {
                        Drawn::Region(rings) => point_in_region(fast.location, rings),
                        _ => from_base_m <= side.buffer_m() + 1e-3,
                    };
                    prop_assert!(inside, "{:?} not inside {:?} ({} m)", fast.location, side, from_base_m);
                } else {
                    let expected_m = side.buffer_m() + fast.gap_m / 2.0;
                    prop_assert!((from_base_m - expected_m).abs() < 1.0,
                        "{} m from the base, expected {}", from_base_m, expected_m);
                }
            }
        }
    }
}

#[test]
fn a_path_inside_a_region_without_touching_its_edge_is_at_zero() {
    let rings = vec![vec![
        LonLat::new(41.0, 36.0),
        LonLat::new(41.2, 36.0),
        LonLat::new(41.2, 36.2),
        LonLat::new(41.0, 36.2),
        LonLat::new(41.0, 36.0),
    ]];
    let path = [LonLat::new(41.05, 36.1), LonLat::new(41.15, 36.1)];
    let (region, route) = (Shape::Region(&rings), Shape::Path(&path));
    let (pr, pp) = (Prepared::new(&region), Prepared::new(&route));
    let fr = Buffered {
        shape: region,
        prepared: &pr,
        buffer_m: 0.0,
    };
    let fp = Buffered {
        shape: route,
        prepared: &pp,
        buffer_m: 100.0,
    };
    let s = separation_if_below(&fp, &fr, 500.0).expect("nested");
    assert_eq!(s.gap_m, 0.0);
    assert!(point_in_region(s.location, &rings));
    // Far outside: apart.
    let far = [LonLat::new(42.0, 36.1), LonLat::new(42.1, 36.1)];
    let (route, pf) = (Shape::Path(&far), Prepared::new(&Shape::Path(&far)));
    let ff = Buffered {
        shape: route,
        prepared: &pf,
        buffer_m: 100.0,
    };
    assert_eq!(separation_if_below(&ff, &fr, 500.0), None);
}

#[test]
fn two_disks_report_the_exact_gap_and_its_midpoint() {
    let (p, q) = (LonLat::new(41.22, 37.05), LonLat::new(41.26, 37.05));
    let d = distance_m(p, q);
    let (pp, pq) = (Prepared::new(&Shape::Point(p)), Prepared::new(&Shape::Point(q)));
    let fa = Buffered {
        shape: Shape::Point(p),
        prepared: &pp,
        buffer_m: 500.0,
    };
    let fb = Buffered {
        shape: Shape::Point(q),
        prepared: &pq,
        buffer_m: 300.0,
    };
    let s = separation_if_below(&fa, &fb, d + 10.0).expect("within the limit");
    assert!(
        (s.gap_m - (d - 800.0)).abs() < 1e-3,
        "{} vs {}",
        s.gap_m,
        d - 800.0
    );
    assert!((distance_m(p, s.location) - (500.0 + s.gap_m / 2.0)).abs() < 0.5);
    // At the limit itself the answer is the exact one: not below.
    assert_eq!(
        separation_if_below(&fa, &fb, d),
        separation_if_below_exactly(&fa, &fb, d)
    );
}

#[test]
fn a_shape_too_long_to_prepare_takes_the_exact_path() {
    // A 2,200 km edge: no capsule bounds it, so every answer is the exact one.
    let long = [LonLat::new(0.0, 10.0), LonLat::new(20.0, 10.0)];
    let near = LonLat::new(10.0, 10.5);
    let (pl, pn) = (
        Prepared::new(&Shape::Path(&long)),
        Prepared::new(&Shape::Point(near)),
    );
    let fl = Buffered {
        shape: Shape::Path(&long),
        prepared: &pl,
        buffer_m: 500.0,
    };
    let fnear = Buffered {
        shape: Shape::Point(near),
        prepared: &pn,
        buffer_m: 100.0,
    };
    for limit_m in [10_000.0, 60_000.0, 200_000.0] {
        assert_eq!(
            separation_if_below(&fl, &fnear, limit_m),
            separation_if_below_exactly(&fl, &fnear, limit_m)
        );
    }
    assert!(separation_if_below(&fl, &fnear, 200_000.0).is_some());
}
