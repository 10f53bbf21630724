//! The incremental conflict set always equals a brute-force evaluation of
//! every pair, whatever sequence of notifications, updates, cancellations and
//! ticks produced it: the index never misses a candidate.

use deconflict_engine::*;
use deconflict_geodesy::LonLat;
use proptest::prelude::*;

const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone)]
enum Command {
    Notify {
        party: u64,
        spec: ActivitySpec,
    },
    Update {
        pick: prop::sample::Index,
        spec: ActivitySpec,
    },
    Cancel {
        pick: prop::sample::Index,
    },
    Tick {
        advance_min: i64,
    },
}

/// Footprints near one of a few meeting points so that conflicts are common,
/// one of them on the antimeridian and one near the north pole.
fn footprint() -> impl Strategy<Value = FootprintSpec> {
    let centre = prop::sample::select(vec![(41.41, 37.03), (180.0, -16.0), (10.0, 89.6)]);
    let offset = || -0.05..0.05f64;
    let position = move |(lon, lat): (f64, f64), dx: f64, dy: f64| {
        let mut lon = lon + dx;
        if lon > 180.0 {
            lon -= 360.0;
        }
        LonLat::new(lon, (lat + dy).min(90.0))
    };
    (
        centre,
        offset(),
        offset(),
        offset(),
        offset(),
        0..3u8,
        50.0..3_000.0f64,
    )
        .prop_map(move |(c, dx1, dy1, dx2, dy2, kind, size_m)| match kind {
            0 => FootprintSpec::Point {
                center: position(c, dx1, dy1),
                radius_m: size_m,
            },
            1 => FootprintSpec::LineString {
                // The second end is kept at least ~1 km from the first.
                route: vec![
                    position(c, dx1, dy1),
                    position(c, dx2 + 0.01_f64.copysign(dx2 - dx1), dy2),
                ],
                corridor_m: size_m,
                waypoint_times: None,
            },
            _ => {
                let (w, s) = (dx1.min(dx2), dy1.min(dy2));
                let (e, n) = (dx1.max(dx2) + 0.01, dy1.max(dy2) + 0.01);
                let ring = vec![
                    position(c, w, s),
                    position(c, e, s),
                    position(c, e, n),
                    position(c, w, n),
                    position(c, w, s),
                ];
                FootprintSpec::Polygon { rings: vec![ring] }
            }
        })
}

fn activity_spec() -> impl Strategy<Value = ActivitySpec> {
    (
        footprint(),
        0..600i64,
        1..240i64,
        prop::option::of(0.0..5_000.0f64),
        prop::option::of((0.0..3_000.0f64, 0.0..3_000.0f64)),
    )
        .prop_map(
            |(footprint, start_min, length_min, separation_m, band)| ActivitySpec {
                party: PartyId(0),
                kind: match footprint {
                    FootprintSpec::Point { .. } => ActivityKind::Site,
                    FootprintSpec::LineString { .. } => ActivityKind::Patrol,
                    FootprintSpec::Polygon { .. } => ActivityKind::Area,
                },
                window: TimeWindow::new(
                    Timestamp(start_min * MINUTE_MS),
                    Some(Timestamp((start_min + length_min) * MINUTE_MS)),
                ),
                footprint,
                alt_min_m: band.map(|(a, b)| a.min(b)),
                alt_max_m: band.map(|(a, b)| a.max(b)),
                separation_m,
                vertical_separation_m: None,
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (1..4u64, activity_spec()).prop_map(|(party, spec)| Command::Notify { party, spec }),
        1 => (any::<prop::sample::Index>(), activity_spec()).prop_map(|(pick, spec)| Command::Update { pick, spec }),
        1 => any::<prop::sample::Index>().prop_map(|pick| Command::Cancel { pick }),
        1 => (1..120i64).prop_map(|advance_min| Command::Tick { advance_min }),
    ]
}

/// Every pair, the slow way, among what has not ended by `now`.
fn brute_force(engine: &Engine, now: Timestamp) -> Vec<(ConflictKey, Finding)> {
    let mut held: Vec<(ActivityId, &Activity)> = engine
        .activities()
        .filter(|(_, a)| !a.window.ended_by(now))
        .collect();
    held.sort_by_key(|(id, _)| *id);
    let mut out = Vec::new();
    for (i, (a_id, a)) in held.iter().enumerate() {
        for (b_id, b) in &held[i + 1..] {
            if let Some(finding) = evaluate(a, b) {
                out.push((ConflictKey::new(*a_id, *b_id), finding));
            }
        }
    }
    out
}

fn keyed(conflicts: impl IntoIterator<Item = Conflict>) -> Vec<(ConflictKey, Finding)> {
    conflicts.into_iter().map(|c| (c.key, c.finding)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn incremental_set_equals_sweep_equals_brute_force(commands in prop::collection::vec(command(), 1..60)) {
        let mut engine = Engine::new(EngineConfig::default());
        let mut now = Timestamp(0);
        let mut next_id = 0u64;
        let mut live: Vec<ActivityId> = Vec::new();
        for command in commands {
            match command {
                Command::Notify { party, mut spec } => {
                    spec.party = PartyId(party);
                    let activity = engine.validate(&spec).expect("generated specs are valid");
                    next_id += 1;
                    engine.handle_notify(now, ActivityId(next_id), activity).unwrap();
                    live.push(ActivityId(next_id));
                }
                Command::Update { pick, mut spec } if !live.is_empty() => {
                    let id = live[pick.index(live.len())];
                    let Some(old) = engine.activity(id) else { continue };
                    spec.party = old.party;
                    let activity = engine.validate(&spec).unwrap();
                    // An activity that ended by `now` expires instead.
                    match engine.handle_update(now, id, activity) {
                        Ok(()) | Err(EngineError::UnknownActivity(_)) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
                Command::Cancel { pick } if !live.is_empty() => {
                    let id = live.remove(pick.index(live.len()));
                    let _ = engine.handle_cancel(now, id);
                }
                Command::Tick { advance_min } => {
                    now = now.plus_ms(advance_min * MINUTE_MS);
                    engine.handle_tick(now);
                    live.retain(|&id| engine.activity(id).is_some());
                }
                _ => {}
            }
            while engine.poll_event().is_some() {}
        }
        // After a tick at `now`, nothing ended is held, so all three agree.
        engine.handle_tick(now);
        let incremental = keyed(engine.conflicts().copied());
        prop_assert_eq!(&incremental, &keyed(engine.sweep()));
        prop_assert_eq!(&incremental, &brute_force(&engine, now));
    }
}

#[test]
fn events_tell_the_story_of_one_conflict() {
    let hour = 3_600_000;
    let mut engine = Engine::new(EngineConfig::default());
    let patrol = |party, lon: f64, start_h: i64| ActivitySpec {
        party: PartyId(party),
        kind: ActivityKind::Patrol,
        window: TimeWindow::new(Timestamp(start_h * hour), Some(Timestamp((start_h + 2) * hour))),
        footprint: FootprintSpec::LineString {
            route: vec![LonLat::new(lon, 37.0), LonLat::new(lon, 37.1)],
            corridor_m: 500.0,
            waypoint_times: None,
        },
        alt_min_m: None,
        alt_max_m: None,
        separation_m: None,
        vertical_separation_m: None,
    };
    let us = engine.validate(&patrol(1, 41.40, 0)).unwrap();
    let ru = engine.validate(&patrol(2, 41.401, 1)).unwrap();
    engine.handle_notify(Timestamp(0), ActivityId(1), us).unwrap();
    assert_eq!(engine.poll_event(), None, "alone, no conflict");
    engine.handle_notify(Timestamp(0), ActivityId(2), ru).unwrap();
    let Some(Event::ConflictOpened(opened)) = engine.poll_event() else {
        panic!("opened")
    };
    assert_eq!(opened.key.activities(), [ActivityId(1), ActivityId(2)]);
    assert_eq!(opened.parties, [PartyId(1), PartyId(2)]);

    // Russia delays its start to 02:00: [2, 4) no longer overlaps [0, 2).
    let delayed = engine.validate(&patrol(2, 41.401, 2)).unwrap();
    engine
        .handle_update(Timestamp(0), ActivityId(2), delayed)
        .unwrap();
    let Some(Event::ConflictResolved { conflict, resolution }) = engine.poll_event() else {
        panic!("resolved")
    };
    assert_eq!(conflict.key, opened.key);
    assert_eq!(resolution, Resolution::NoLongerConflicting);
    assert_eq!(engine.conflicts().count(), 0);

    // Back to overlapping by half an hour: opened again, then an update that
    // only moves the route a little is an update, not a new conflict.
    let back = engine.validate(&patrol(2, 41.401, 1)).unwrap();
    engine.handle_update(Timestamp(0), ActivityId(2), back).unwrap();
    assert!(matches!(engine.poll_event(), Some(Event::ConflictOpened(_))));
    let nudged = engine.validate(&patrol(2, 41.4015, 1)).unwrap();
    engine.handle_update(Timestamp(0), ActivityId(2), nudged).unwrap();
    assert!(matches!(engine.poll_event(), Some(Event::ConflictUpdated(_))));

    // Time passes: the US patrol ends at 02:00 and takes the conflict with it.
    engine.handle_tick(Timestamp(2 * hour));
    assert!(matches!(
        engine.poll_event(),
        Some(Event::ConflictResolved {
            resolution: Resolution::Expired {
                activity: ActivityId(1)
            },
            ..
        })
    ));
    assert_eq!(
        engine.poll_event(),
        Some(Event::ActivityExpired {
            activity: ActivityId(1),
            at: Timestamp(2 * hour)
        })
    );
    assert_eq!(engine.poll_event(), None);

    // Cancelling resolves too; unknown ids are refused without change.
    assert_eq!(
        engine.handle_cancel(Timestamp(0), ActivityId(1)),
        Err(EngineError::UnknownActivity(ActivityId(1)))
    );
    engine.handle_cancel(Timestamp(0), ActivityId(2)).unwrap();
    assert!(engine.is_empty());
}

#[test]
fn refusals_change_nothing() {
    let mut engine = Engine::new(EngineConfig {
        max_activities: 1,
        ..EngineConfig::default()
    });
    let spec = ActivitySpec {
        party: PartyId(1),
        kind: ActivityKind::Site,
        window: TimeWindow::new(Timestamp(0), None),
        footprint: FootprintSpec::Point {
            center: LonLat::new(41.22, 37.05),
            radius_m: 100.0,
        },
        alt_min_m: None,
        alt_max_m: None,
        separation_m: None,
        vertical_separation_m: None,
    };
    let a = engine.validate(&spec).unwrap();
    engine
        .handle_notify(Timestamp(0), ActivityId(1), a.clone())
        .unwrap();
    assert_eq!(
        engine.handle_notify(Timestamp(0), ActivityId(1), a.clone()),
        Err(EngineError::DuplicateActivity(ActivityId(1)))
    );
    assert_eq!(
        engine.handle_notify(Timestamp(0), ActivityId(2), a.clone()),
        Err(EngineError::Capacity { limit: 1 })
    );
    let other_party = engine
        .validate(&ActivitySpec {
            party: PartyId(2),
            ..spec
        })
        .unwrap();
    assert_eq!(
        engine.handle_update(Timestamp(0), ActivityId(1), other_party),
        Err(EngineError::PartyChanged(ActivityId(1)))
    );
    assert_eq!(engine.len(), 1);
    assert_eq!(engine.activity(ActivityId(1)), Some(&a));
}
