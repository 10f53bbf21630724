//! The typed reading of a body (`Body::parse`, `FeatureDoc::activity`)
//! against the tree reading (`activity_from_feature`): whatever the typed
//! one takes, the tree takes as the same activity; whatever the tree
//! refuses, the typed one does not take (so every problem is the tree's,
//! with its pointers); and the plain Features the service receives are
//! taken.

use deconflict_engine::PartyId;
use deconflict_formats::{activity_from_feature, Body, FeatureDoc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// A number as a body may write it: integers, fractions, exponents, `-0`,
/// integers beyond 2^53, out-of-range degrees.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-180.0f64..180.0).prop_map(|x| json!(x)),
        2 => (-90i64..90).prop_map(|x| json!(x)),
        1 => Just(json!(-0.0)),
        1 => Just(json!(1e21)),
        1 => Just(json!(9_007_199_254_740_993u64)),
        1 => Just(json!(200.5)),
        1 => (0u64..5).prop_map(|x| json!(x)),
    ]
}

/// A position near (10, 40) (so that most make valid shapes), sometimes
/// with an altitude, sometimes malformed.
fn position() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (9.0f64..11.0, 39.0f64..41.0).prop_map(|(lon, lat)| json!([lon, lat])),
        2 => (9i64..11, 39i64..41).prop_map(|(lon, lat)| json!([lon, lat])),
        2 => (9.0f64..11.0, 39.0f64..41.0, number()).prop_map(|(lon, lat, alt)| json!([lon, lat, alt])),
        1 => (number(), number()).prop_map(|(lon, lat)| json!([lon, lat])),
        1 => number().prop_map(|x| json!([x])),
        1 => Just(json!([10.0, 40.0, 1.0, 2.0])),
        1 => Just(json!(["10", 40.0])),
        1 => Just(json!([])),
        1 => Just(json!(null)),
    ]
}

fn ring() -> impl Strategy<Value = Value> {
    prop_oneof![
        // A closed triangle or square around (10, 40): valid.
        6 => (0.01f64..0.5, any::<bool>()).prop_map(|(d, square)| {
            if square {
                json!([[10.0, 40.0], [10.0 + d, 40.0], [10.0 + d, 40.0 + d], [10.0, 40.0 + d], [10.0, 40.0]])
            } else {
                json!([[10, 40], [10.0 + d, 40.0], [10.0, 40.0 + d], [10, 40]])
            }
        }),
        2 => prop::collection::vec(position(), 0..6).prop_map(Value::Array),
        1 => Just(json!([])),
        1 => Just(json!("ring")),
    ]
}

fn geometry() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => position().prop_map(|p| json!({"type": "Point", "coordinates": p})),
        4 => prop::collection::vec(position(), 0..8)
            .prop_map(|route| json!({"type": "LineString", "coordinates": route})),
        4 => prop::collection::vec(ring(), 0..3)
            .prop_map(|rings| json!({"type": "Polygon", "coordinates": rings})),
        // Nesting that does not match the type, or another type.
        1 => prop::collection::vec(position(), 2..4)
            .prop_map(|route| json!({"type": "Point", "coordinates": route})),
        1 => position().prop_map(|p| json!({"type": "Polygon", "coordinates": p})),
        1 => position().prop_map(|p| json!({"type": "MultiPoint", "coordinates": [p]})),
        1 => position().prop_map(|p| json!({"type": "Point", "coordinates": p, "bbox": [1, 2, 3, 4]})),
        1 => Just(json!({"type": "Point"})),
        1 => Just(json!(null)),
        1 => Just(json!("Point")),
    ]
}

fn time() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u32..28).prop_map(|d| json!(format!("2031-02-{:02}T06:00:00Z", d + 1))),
        1 => Just(json!("yesterday")),
        1 => Just(json!(17)),
        1 => Just(json!(null)),
    ]
}

/// An optional value for a property: absent (`None`), or one of `values`.
fn maybe(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![2 => Just(None), 3 => values.prop_map(Some)]
}

fn properties() -> impl Strategy<Value = Value> {
    let kinds = prop_oneof![
        6 => prop::sample::select(vec!["patrol", "convoy", "flight", "site", "area", "exercise"]).prop_map(|k| json!(k)),
        1 => Just(json!("parade")),
        1 => Just(json!(3)),
    ];
    let width = prop_oneof![
        4 => (1.0f64..2_000.0).prop_map(|x| json!(x)),
        2 => (1u64..2_000).prop_map(|x| json!(x)),
        1 => Just(json!("wide")),
        1 => Just(json!(null)),
        1 => Just(json!(-5)),
    ];
    let extra = prop_oneof![
        Just(json!({"note": "é \u{1F600} \"q\" \\ \n", "n": [1, 2.5, -0.0, 1e21, null, true]})),
        Just(json!({"\u{e000}key": 1, "\u{1F600}key": 2, "zkey": {"b": 1, "a": [2]}})),
        Just(json!({"version": 7, "party": 3, "client_id": "mine"})),
        Just(json!({})),
    ];
    (
        (
            maybe(kinds),
            maybe(time()),
            maybe(time()),
            maybe(width.clone()),
            maybe(width),
        ),
        (
            maybe(prop_oneof![
                Just(json!("need_to_know")),
                Just(json!("full")),
                Just(json!("all"))
            ]),
            maybe(prop_oneof![Just(json!("a name")), Just(json!(5))]),
            maybe(number()),
            maybe(prop::collection::vec(time(), 0..4).prop_map(Value::Array)),
            extra,
        ),
    )
        .prop_map(
            |((kind, start, end, radius, corridor), (sharing, name, separation, times, extra))| {
                let mut p = extra.as_object().cloned().unwrap_or_default();
                for (key, value) in [
                    ("kind", kind),
                    ("start", start),
                    ("end", end),
                    ("radius_m", radius),
                    ("corridor_m", corridor),
                    ("sharing", sharing),
                    ("name", name),
                    ("separation_m", separation),
                    ("waypoint_times", times),
                ] {
                    if let Some(value) = value {
                        p.insert(key.into(), value);
                    }
                }
                Value::Object(p)
            },
        )
}

/// Usually present.
fn usually(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![1 => Just(None), 12 => values.prop_map(Some)]
}

fn feature() -> impl Strategy<Value = Value> {
    (any_feature(), 0u8..4).prop_map(|(mut feature, fix)| {
        // Mostly with the width its geometry needs and no other, so that
        // many are activities.
        let geometry = feature
            .pointer("/geometry/type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (Some(properties), Some(geometry), true) = (
            feature.get_mut("properties").and_then(Value::as_object_mut),
            geometry,
            fix > 0,
        ) {
            for key in ["radius_m", "corridor_m", "waypoint_times"] {
                properties.remove(key);
            }
            match geometry.as_str() {
                "Point" => properties.insert("radius_m".into(), json!(150.5)),
                "LineString" => properties.insert("corridor_m".into(), json!(300)),
                _ => None,
            };
            if fix > 1 {
                properties.insert("kind".into(), json!("area"));
                properties.insert("start".into(), json!("2031-02-01T06:00:00Z"));
                properties.insert("end".into(), json!("2031-02-02T06:00:00Z"));
            }
        }
        feature
    })
}

fn any_feature() -> impl Strategy<Value = Value> {
    (
        usually(prop_oneof![12 => Just(json!("Feature")), 1 => Just(json!("feature"))]),
        maybe(prop_oneof![
            Just(json!("us-1")),
            Just(json!(42)),
            Just(json!(null)),
            Just(json!({"a": 1}))
        ]),
        usually(geometry()),
        usually(prop_oneof![12 => properties(), 1 => Just(json!([1])), 1 => Just(json!(null))]),
        maybe(prop_oneof![
            Just(json!({"bbox": [9, 39, 11, 41]})),
            Just(json!({"\u{e000}": "private use", "é": 1})),
            Just(json!({"features": []})),
        ]),
    )
        .prop_map(|(type_member, id, geometry, properties, foreign)| {
            let mut f = Map::new();
            if let Some(Value::Object(foreign)) = foreign {
                f.extend(foreign);
            }
            for (key, value) in [
                ("type", type_member),
                ("id", id),
                ("geometry", geometry),
                ("properties", properties),
            ] {
                if let Some(value) = value {
                    f.insert(key.into(), value);
                }
            }
            Value::Object(f)
        })
}

/// The typed reading of one Feature, as the service uses it.
fn typed(text: &str) -> Option<FeatureDoc> {
    match Body::parse(text.as_bytes())? {
        Body::Feature(doc) => Some(doc),
        Body::Collection(_) => None,
    }
}

/// Whether a Feature is read in the plain shape: nothing the typed reading
/// leaves to the tree (a geometry, if any, of exactly type and
/// coordinates, positions of two or three numbers, no member `features`).
fn plain(feature: &Value) -> bool {
    let geometry = match feature.get("geometry") {
        // Read in the plain shape (and then refused as the tree refuses it).
        None => return feature.get("features").is_none(),
        Some(geometry) => match geometry.as_object() {
            Some(geometry) => geometry,
            None => return false,
        },
    };
    let position = |p: &Value| {
        p.as_array()
            .is_some_and(|p| (2..=3).contains(&p.len()) && p.iter().all(Value::is_number))
    };
    let line = |l: &Value| {
        l.as_array()
            .is_some_and(|l| !l.is_empty() && l.iter().all(position))
    };
    let shape = match (
        geometry.get("type").and_then(Value::as_str),
        geometry.get("coordinates"),
    ) {
        (Some("Point"), Some(p)) => position(p),
        (Some("LineString"), Some(l)) => line(l),
        (Some("Polygon"), Some(r)) => r.as_array().is_some_and(|r| !r.is_empty() && r.iter().all(line)),
        _ => false,
    };
    shape && geometry.len() == 2 && feature.get("features").is_none() && feature.is_object()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn the_typed_reading_takes_what_the_tree_takes(feature in feature()) {
        let text = feature.to_string();
        let party = PartyId(7);
        // The tree as the same text parses (serde_json may round a
        // fraction's last bit differently from the literal it printed).
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let tree = activity_from_feature(&parsed, party, "");
        let doc = typed(&text);
        prop_assert_eq!(doc.is_some(), plain(&feature), "{}", text);
        let from_doc = doc.as_ref().and_then(|doc| doc.activity(party));
        match (&tree, &from_doc) {
            (Ok(tree), Some(typed)) => prop_assert_eq!(tree, typed),
            (Ok(_), None) => prop_assert!(!plain(&feature), "a plain Feature not taken: {}", text),
            (Err(_), Some(_)) => prop_assert!(false, "taken, but the tree refuses: {}", text),
            (Err(_), None) => {}
        }
    }

    /// A collection reads as its features, each as it reads alone.
    #[test]
    fn a_collection_reads_as_its_features(features in prop::collection::vec(feature(), 0..5)) {
        // (A member named `features` is a foreign member in a collection's
        // Feature, but not in a body that is a Feature: left out here.)
        let features: Vec<Value> = features
            .into_iter()
            .map(|mut f| {
                if let Some(f) = f.as_object_mut() {
                    f.remove("features");
                }
                f
            })
            .collect();
        let text = json!({"type": "FeatureCollection", "features": features}).to_string();
        let all_plain = features.iter().all(plain);
        match Body::parse(text.as_bytes()) {
            Some(Body::Collection(docs)) => {
                prop_assert!(all_plain);
                prop_assert_eq!(docs.len(), features.len());
                for (doc, feature) in docs.iter().zip(&features) {
                    let alone = typed(&feature.to_string());
                    prop_assert_eq!(Some(doc), alone.as_ref());
                }
            }
            Some(Body::Feature(_)) => prop_assert!(false, "a collection read as a Feature"),
            None => prop_assert!(!all_plain, "{}", text),
        }
    }
}

/// A member written twice (the tree keeps the last), JSON that does not
/// parse, and other documents the tree reading answers: never taken.
#[test]
fn odd_documents_are_left_to_the_tree() {
    let point = r#"{"type":"Point","coordinates":[10,40]}"#;
    let properties = r#"{"kind":"site","start":"2031-01-01T00:00:00Z","radius_m":100}"#;
    let ok = format!(r#"{{"type":"Feature","geometry":{point},"properties":{properties}}}"#);
    assert!(typed(&ok).and_then(|doc| doc.activity(PartyId(1))).is_some());
    for text in [
        format!(r#"{{"type":"Feature","geometry":{point},"geometry":{point},"properties":{properties}}}"#),
        format!(r#"{{"type":"Feature","type":"Feature","geometry":{point},"properties":{properties}}}"#),
        format!(
            r#"{{"type":"Feature","geometry":{point},"properties":{properties},"properties":{properties}}}"#
        ),
        format!(r#"{{"type":"Feature","id":1,"id":2,"geometry":{point},"properties":{properties}}}"#),
        format!(r#"{{"type":"Feature","x":1,"x":2,"geometry":{point},"properties":{properties}}}"#),
        format!(
            r#"{{"type":"Feature","geometry":{{"type":"Point","type":"Point","coordinates":[10,40]}},"properties":{properties}}}"#
        ),
        format!(r#"{{"type":"Feature","geometry":{point},"properties":{properties}"#),
        format!(r#"{{"type":"Feature","geometry":{point},"properties":{properties}}} x"#),
        format!(r#"[{{"type":"Feature","geometry":{point},"properties":{properties}}}]"#),
        r#"{"type":"FeatureCollection"}"#.to_owned(),
        r#"{"type":"FeatureCollection","features":{}}"#.to_owned(),
        format!(r#"{{"type":"FeatureCollection","features":[{ok}, 1]}}"#),
    ] {
        assert!(
            typed(&text).and_then(|doc| doc.activity(PartyId(1))).is_none(),
            "{text}"
        );
    }
    // A collection's features read one by one.
    let two = format!(r#"{{"features":[{ok},{ok}],"type":"FeatureCollection"}}"#);
    assert!(matches!(Body::parse(two.as_bytes()), Some(Body::Collection(docs)) if docs.len() == 2));
}

/// The generator above reaches both sides: many Features the tree takes
/// are taken by the typed reading too (the property is not vacuous).
#[test]
fn the_generator_makes_features_both_readings_take() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut both, mut refused) = (0, 0);
    for _ in 0..3_000 {
        let feature = feature().new_tree(&mut runner).unwrap().current();
        let tree = activity_from_feature(&feature, PartyId(7), "");
        let typed = typed(&feature.to_string()).and_then(|doc| doc.activity(PartyId(7)));
        match (tree, typed) {
            (Ok(_), Some(_)) => both += 1,
            (Err(_), None) => refused += 1,
            _ => {}
        }
    }
    assert!(both > 100 && refused > 100, "both {both}, refused {refused}");
}
