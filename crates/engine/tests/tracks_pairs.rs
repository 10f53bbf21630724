//! Pairs of entities on a virtual clock: converging, crossing, parallel,
//! diverging and stationary; the ground and air rules; hysteresis;
//! staleness.

mod tracks_support;

use deconflict_engine::track::*;
use deconflict_engine::{PartyId, Timestamp};
use deconflict_geodesy::distance_m;
use tracks_support::*;

const S: i64 = 1_000;

#[test]
fn converging_head_on_warns_ahead_then_alerts_then_clears_once() {
    let (a0, b0) = (at(0.0, 0.0), at(5_000.0, 0.0));
    let d0 = distance_m(a0, b0);
    let alerts = run_pair((a0, 10.0, 90.0), (b0, 10.0, 270.0), 400 * S, S);
    // Closing at 20 m/s: within 1 km of each other 120 s ahead from
    // t = (d0 − 1000)/20 − 120, within 1 km at (d0 − 1000)/20, apart by
    // 1.2 km again at (d0 + 1200)/20.
    let cpa_opens = (d0 - 1_000.0) / 20.0 - 120.0;
    let proximity_opens = (d0 - 1_000.0) / 20.0;
    let both_clear = (d0 + 1_200.0) / 20.0;
    let cpa = timeline(&alerts, AlertKind::Cpa);
    let proximity = timeline(&alerts, AlertKind::Proximity);
    assert_eq!(cpa.len(), 2, "{cpa:?}");
    assert_eq!(proximity.len(), 2, "{proximity:?}");
    let near = |got: i64, want_s: f64| (got as f64 / 1e3 - want_s).abs() <= 1.5;
    assert!(cpa[0].0 && near(cpa[0].1, cpa_opens), "{cpa:?} want {cpa_opens}");
    assert!(
        proximity[0].0 && near(proximity[0].1, proximity_opens),
        "{proximity:?}"
    );
    assert!(
        !cpa[1].0 && near(cpa[1].1, both_clear),
        "{cpa:?} want {both_clear}"
    );
    assert!(
        !proximity[1].0 && near(proximity[1].1, both_clear),
        "{proximity:?}"
    );
    let [AlertDetail::Cpa {
        time,
        distance_m,
        limit_m,
        ..
    }] = opened(&alerts, AlertKind::Cpa)[..]
    else {
        panic!()
    };
    // Still closing at the end of the look-ahead: the CPA is its end.
    assert_eq!(time.unix_ms(), cpa[0].1 + 120 * S);
    assert!(*distance_m < *limit_m && *limit_m == 1_000.0);
    assert_eq!(cleared(&alerts, AlertKind::Cpa), vec![&ClearReason::Separated]);
}

#[test]
fn crossing_paths_meet_at_the_crossing() {
    let alerts = run_pair(
        (at(0.0, -3_000.0), 10.0, 0.0),
        (at(-3_000.0, 0.0), 10.0, 90.0),
        600 * S,
        S,
    );
    let [AlertDetail::Cpa {
        time,
        distance_m,
        positions,
        ..
    }] = opened(&alerts, AlertKind::Cpa)[..]
    else {
        panic!("{alerts:?}")
    };
    assert!(time.unix_ms() > 200 * S && time.unix_ms() <= 300 * S, "{time}");
    assert!(*distance_m < 1_000.0);
    assert!(distance_m_between(positions) - distance_m < 1e-6);
    assert_eq!(opened(&alerts, AlertKind::Proximity).len(), 1);
    assert_eq!(cleared(&alerts, AlertKind::Proximity).len(), 1);
    assert_eq!(cleared(&alerts, AlertKind::Cpa).len(), 1);
}

fn distance_m_between(positions: &[deconflict_geodesy::LonLat; 2]) -> f64 {
    distance_m(positions[0], positions[1])
}

#[test]
fn crossing_apart_in_time_is_no_conflict() {
    // A passes the crossing at 300 s, B at 500 s: they come no closer than
    // √2 km.
    let alerts = run_pair(
        (at(0.0, -3_000.0), 10.0, 0.0),
        (at(-5_000.0, 0.0), 10.0, 90.0),
        700 * S,
        S,
    );
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn parallel_pairs_alert_only_when_close_and_never_predict() {
    let alerts = run_pair((at(0.0, 0.0), 10.0, 0.0), (at(500.0, 0.0), 10.0, 0.0), 300 * S, S);
    assert_eq!(timeline(&alerts, AlertKind::Proximity), vec![(true, 0)]);
    assert!(
        opened(&alerts, AlertKind::Cpa).is_empty(),
        "no approach ahead: {alerts:?}"
    );
    let apart = run_pair(
        (at(0.0, 0.0), 10.0, 0.0),
        (at(1_500.0, 0.0), 10.0, 0.0),
        300 * S,
        S,
    );
    assert!(apart.is_empty(), "{apart:?}");
}

#[test]
fn diverging_pair_clears_beyond_the_hysteresis() {
    let (a0, b0) = (at(0.0, 0.0), at(500.0, 0.0));
    let d0 = distance_m(a0, b0);
    let alerts = run_pair((a0, 10.0, 270.0), (b0, 10.0, 90.0), 100 * S, S);
    let proximity = timeline(&alerts, AlertKind::Proximity);
    let clears_s = (1_200.0 - d0) / 20.0;
    assert_eq!(proximity.len(), 2, "{proximity:?}");
    assert_eq!(proximity[0], (true, 0));
    assert!(
        !proximity[1].0 && (proximity[1].1 as f64 / 1e3 - clears_s).abs() <= 1.5,
        "{proximity:?}"
    );
    assert!(opened(&alerts, AlertKind::Cpa).is_empty());
}

#[test]
fn stationary_pair_alerts_once_and_clears_when_one_goes_stale() {
    let mut watch = watch();
    let mut alerts = Vec::new();
    for t in (0..=300).step_by(10) {
        watch
            .handle_report(Timestamp(t * S), &still(1, "a", t * S, at(0.0, 0.0)))
            .unwrap();
        if t <= 200 {
            watch
                .handle_report(Timestamp(t * S), &still(2, "b", t * S, at(800.0, 0.0)))
                .unwrap();
        }
        alerts.extend(drain(&mut watch));
    }
    assert_eq!(timeline(&alerts, AlertKind::Proximity), vec![(true, 0)]);
    // b's last report (200 s) goes stale after the default 120 s.
    watch.handle_tick(Timestamp(319 * S));
    assert!(watch.poll_alert().is_none());
    watch.handle_tick(Timestamp(320 * S));
    let cleared = drain(&mut watch);
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    let Alert::Cleared {
        reason: ClearReason::Stale(key),
        at,
        ..
    } = &cleared[0]
    else {
        panic!("{cleared:?}")
    };
    assert_eq!((key.party, &*key.uid, at.unix_ms()), (PartyId(2), "b", 320 * S));
    assert!(watch.track(PartyId(2), "b").is_none());
    assert_eq!(watch.stats().expired, 1);
    assert_eq!(watch.open_alerts(), 0);
}

#[test]
fn a_cot_stale_time_is_honoured() {
    let mut watch = watch();
    let report = PositionReport {
        stale: Some(Timestamp(30 * S)),
        ..still(1, "a", 0, at(0.0, 0.0))
    };
    watch.handle_report(Timestamp(0), &report).unwrap();
    watch
        .handle_report(Timestamp(0), &still(2, "b", 0, at(100.0, 0.0)))
        .unwrap();
    assert_eq!(drain(&mut watch).len(), 1);
    watch.handle_tick(Timestamp(30 * S));
    assert_eq!(cleared(&drain(&mut watch), AlertKind::Proximity).len(), 1);
}

#[test]
fn one_party_never_alerts_against_itself() {
    let mut watch = watch();
    watch
        .handle_report(Timestamp(0), &still(1, "a", 0, at(0.0, 0.0)))
        .unwrap();
    watch
        .handle_report(Timestamp(0), &still(1, "b", 0, at(10.0, 0.0)))
        .unwrap();
    assert!(watch.poll_alert().is_none());
}

fn aloft<'a>(party: u64, uid: &'a str, east_m: f64, alt_m: Option<f64>) -> PositionReport<'a> {
    PositionReport {
        alt_m,
        ..still(party, uid, 0, at(east_m, 0.0))
    }
}

fn proximity_between(a: PositionReport, b: PositionReport) -> Option<AlertDetail> {
    let mut watch = watch();
    watch.handle_report(Timestamp(0), &a).unwrap();
    watch.handle_report(Timestamp(0), &b).unwrap();
    drain(&mut watch).into_iter().find_map(|alert| match alert {
        Alert::Opened { detail, .. } if detail.kind() == AlertKind::Proximity => Some(detail),
        _ => None,
    })
}

#[test]
fn the_air_rule_takes_five_kilometres_and_three_hundred_metres() {
    let close = proximity_between(
        aloft(1, "a", 0.0, Some(3_000.0)),
        aloft(2, "b", 4_000.0, Some(3_200.0)),
    );
    let Some(AlertDetail::Proximity {
        limit_m,
        vertical_limit_m,
        vertical_gap_m,
        ..
    }) = close
    else {
        panic!("{close:?}")
    };
    assert_eq!((limit_m, vertical_limit_m), (5_000.0, Some(300.0)));
    assert!((vertical_gap_m - 200.0).abs() < 1e-3);
    // 400 m apart vertically: separated.
    assert!(proximity_between(
        aloft(1, "a", 0.0, Some(3_000.0)),
        aloft(2, "b", 4_000.0, Some(3_400.0))
    )
    .is_none());
    // A ground unit of unknown height is below the ground ceiling.
    assert!(proximity_between(aloft(1, "a", 0.0, Some(3_000.0)), aloft(2, "b", 100.0, None)).is_none());
    // A low aircraft over a ground unit that gives its height.
    assert!(proximity_between(
        aloft(1, "a", 0.0, Some(350.0)),
        aloft(2, "b", 4_000.0, Some(100.0))
    )
    .is_some());
    // On the ground the limit is a kilometre.
    assert!(proximity_between(aloft(1, "a", 0.0, None), aloft(2, "b", 1_100.0, None)).is_none());
    assert!(proximity_between(aloft(1, "a", 0.0, None), aloft(2, "b", 900.0, None)).is_some());
    // An aircraft of unknown height linked to nothing and below the ceiling
    // is taken for a ground unit; above it with a height, it flies.
    assert!(proximity_between(
        aloft(1, "a", 0.0, Some(2_000.0)),
        aloft(2, "b", 4_500.0, Some(2_100.0))
    )
    .is_some());
}

#[test]
fn jitter_around_the_threshold_makes_one_alert_and_one_clear() {
    let mut watch = watch();
    let mut alerts = Vec::new();
    let mut t = 0;
    let mut report = |watch: &mut TrackWatch, east_m: f64, alerts: &mut Vec<Alert>| {
        t += S;
        watch
            .handle_report(Timestamp(t), &still(1, "a", t, at(0.0, 0.0)))
            .unwrap();
        watch
            .handle_report(Timestamp(t), &still(2, "b", t, at(east_m, 0.0)))
            .unwrap();
        alerts.extend(drain(watch));
    };
    for k in 0..100 {
        report(&mut watch, [990.0, 1_010.0, 1_100.0, 1_150.0][k % 4], &mut alerts);
    }
    assert_eq!(timeline(&alerts, AlertKind::Proximity).len(), 1, "{alerts:?}");
    report(&mut watch, 1_300.0, &mut alerts);
    for k in 0..100 {
        report(&mut watch, [1_150.0, 1_250.0, 1_010.0][k % 3], &mut alerts);
    }
    let proximity = timeline(&alerts, AlertKind::Proximity);
    assert_eq!(
        proximity.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![true, false],
        "{proximity:?}"
    );
    report(&mut watch, 900.0, &mut alerts);
    assert_eq!(timeline(&alerts, AlertKind::Proximity).len(), 3);
    // Every alert names both entities, lower slot first, and ids pair up.
    let ids: Vec<AlertId> = alerts.iter().map(Alert::id).collect();
    assert_eq!(ids, vec![AlertId(0), AlertId(0), AlertId(1)]);
    assert_eq!(alerts[0].parties(), vec![PartyId(1), PartyId(2)]);
    assert_eq!(AlertKind::Proximity.as_str(), "proximity");
}

#[test]
fn a_report_between_two_reports_of_the_other_uses_its_extrapolated_position() {
    // b reported 30 s ago, 1,400 m east, heading west at 10 m/s: it is now
    // 1,100 m away by dead reckoning, then 900 m ten seconds later.
    let mut watch = watch();
    watch
        .handle_report(Timestamp(0), &moving(2, "b", 0, at(1_400.0, 0.0), 10.0, 270.0))
        .unwrap();
    watch
        .handle_report(Timestamp(30 * S), &still(1, "a", 30 * S, at(0.0, 0.0)))
        .unwrap();
    assert!(opened(&drain(&mut watch), AlertKind::Proximity).is_empty());
    watch
        .handle_report(Timestamp(50 * S), &still(1, "a", 50 * S, at(0.0, 0.0)))
        .unwrap();
    let alerts = drain(&mut watch);
    let [AlertDetail::Proximity { distance_m, .. }] = opened(&alerts, AlertKind::Proximity)[..] else {
        panic!("{alerts:?}")
    };
    assert!((distance_m - 900.0).abs() < 5.0, "{distance_m}");
}

#[test]
fn the_index_finds_neighbours_at_the_limit_across_small_cells() {
    // Cells of 100 m: the neighbours are many cells away in every direction.
    let config = TrackConfig {
        grid_cell_m: 100.0,
        ..TrackConfig::default()
    };
    for (bearing, limit_m, alt_m) in [
        (0.0, 1_000.0, None),
        (135.0, 1_000.0, None),
        (250.0, 5_000.0, Some(2_000.0)),
    ] {
        let mut watch = TrackWatch::new(config.clone()).unwrap();
        let centre = at(0.0, 0.0);
        let near = Model::new(centre, limit_m - 10.0, bearing).at(1_000);
        let far = Model::new(centre, limit_m + 10.0, bearing + 90.0).at(1_000);
        let report = |party, uid, t, position| PositionReport {
            alt_m,
            ..still(party, uid, t, position)
        };
        watch
            .handle_report(Timestamp(0), &report(1, "c", 0, centre))
            .unwrap();
        watch
            .handle_report(Timestamp(0), &report(2, "near", 0, near))
            .unwrap();
        watch
            .handle_report(Timestamp(0), &report(3, "far", 0, far))
            .unwrap();
        let alerts = drain(&mut watch);
        assert_eq!(
            opened(&alerts, AlertKind::Proximity).len(),
            1,
            "{bearing}: {alerts:?}"
        );
        // Within the clearing distance a proximity is kept, just beyond it
        // clears: the index must reach that far.
        let moved = Model::new(centre, limit_m * 1.19, bearing).at(1_000);
        assert_eq!(
            watch.handle_report(Timestamp(S), &report(2, "near", S, moved)),
            Ok(ReportOutcome::Applied)
        );
        let kept = drain(&mut watch);
        assert!(kept.is_empty(), "{bearing}: kept within limit × 1.2: {kept:?}");
        let gone = Model::new(centre, limit_m * 1.21, bearing).at(1_000);
        watch
            .handle_report(Timestamp(2 * S), &report(2, "near", 2 * S, gone))
            .unwrap();
        assert_eq!(
            cleared(&drain(&mut watch), AlertKind::Proximity).len(),
            1,
            "{bearing}"
        );
    }
}

#[test]
fn moving_onto_another_party_alerts() {
    let mut watch = TrackWatch::new(TrackConfig {
        grid_cell_m: 100.0,
        ..TrackConfig::default()
    })
    .unwrap();
    watch
        .handle_report(Timestamp(0), &still(3, "far", 0, at(2_000.0, 0.0)))
        .unwrap();
    watch
        .handle_report(Timestamp(0), &still(2, "near", 0, at(0.0, 0.0)))
        .unwrap();
    assert!(drain(&mut watch).is_empty());
    watch
        .handle_report(Timestamp(S), &still(2, "near", S, at(2_000.0, 0.0)))
        .unwrap();
    assert_eq!(opened(&drain(&mut watch), AlertKind::Proximity).len(), 1);
}

#[test]
fn a_pair_in_the_hysteresis_band_that_closes_again_is_warned_ahead() {
    // Within 1 km: proximity opens. Then b is 1,100 m away (beyond the
    // limit, within the 1,200 m clearing distance: the episode stays open)
    // and heading back at 10 m/s: not within the limits now, so `cpa`
    // warns of the proximity to come. (A pair within the limits now by the
    // bounds alone gets no `cpa`; this one is not.)
    let mut watch = watch();
    let a = at(0.0, 0.0);
    for (t, report) in [
        (S, still(1, "a", S, a)),
        (S, still(2, "b", S, at(900.0, 0.0))),
        (2 * S, still(1, "a", 2 * S, a)),
        (2 * S, moving(2, "b", 2 * S, at(1_100.0, 0.0), 10.0, 270.0)),
    ] {
        watch.handle_report(Timestamp(t), &report).unwrap();
    }
    let alerts = drain(&mut watch);
    assert_eq!(
        timeline(&alerts, AlertKind::Proximity),
        vec![(true, S)],
        "{alerts:?}"
    );
    assert_eq!(
        timeline(&alerts, AlertKind::Cpa),
        vec![(true, 2 * S)],
        "{alerts:?}"
    );
}
