//! GeoJSON → activity: every problem named by its JSON pointer, in one pass.

use deconflict_engine::{Engine, EngineConfig, PartyId};
use deconflict_formats::{activities_from_geojson, FormatErrors};
use proptest::prelude::*;
use serde_json::{json, Value};

fn patrol() -> Value {
    json!({
        "type": "Feature",
        "id": "us-1",
        "geometry": {"type": "LineString", "coordinates": [[41.40, 37.00], [41.45, 37.05]]},
        "properties": {
            "kind": "patrol", "name": "US patrol", "start": "2022-10-08T06:00:00Z",
            "end": "2022-10-08T09:00:00Z", "corridor_m": 500
        }
    })
}

/// Parses and validates `doc`; compares every `pointer: message` with `expected`
/// (empty: accepted).
#[track_caller]
fn check(doc: Value, expected: &[&str]) {
    let engine = Engine::new(EngineConfig::default());
    let got: Vec<String> = match activities_from_geojson(&doc.to_string(), PartyId(1)) {
        Err(FormatErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
        Ok(parsed) => parsed
            .iter()
            .filter_map(|p| p.validate(&engine).err())
            .flat_map(|FormatErrors(errors)| errors)
            .map(|e| e.to_string())
            .collect(),
    };
    assert_eq!(got, expected);
}

/// `doc` with the value at `pointer` replaced (or added to its object).
fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    if let Some(slot) = doc.pointer_mut(pointer) {
        *slot = value;
        return doc;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{pointer}"))
        .insert(key.into(), value);
    doc
}

fn without(mut doc: Value, key: &str) -> Value {
    doc["properties"].as_object_mut().unwrap().remove(key);
    doc
}

#[test]
fn a_well_formed_feature_is_accepted() {
    check(patrol(), &[]);
    let parsed = activities_from_geojson(&patrol().to_string(), PartyId(1)).unwrap();
    assert_eq!(parsed[0].id, Some(json!("us-1")));
    assert_eq!(parsed[0].name.as_deref(), Some("US patrol"));
}

#[test]
fn missing_and_mistyped_properties() {
    check(
        without(patrol(), "kind"),
        &["/properties/kind: required: patrol, convoy, flight, site, area or exercise"],
    );
    check(
        with(patrol(), "/properties/kind", json!("raid")),
        &["/properties/kind: unknown kind \"raid\": patrol, convoy, flight, site, area or exercise"],
    );
    check(
        without(patrol(), "start"),
        &["/properties/start: required: an RFC 3339 date-time"],
    );
    check(
        with(patrol(), "/properties/end", json!("tomorrow")),
        &["/properties/end: \"tomorrow\" is not an RFC 3339 date-time such as 2022-10-08T06:00:00Z"],
    );
    check(
        with(patrol(), "/properties/corridor_m", json!("wide")),
        &["/properties/corridor_m: must be a number"],
    );
    check(
        without(patrol(), "corridor_m"),
        &["/properties/corridor_m: required for a LineString: the corridor's full width in metres"],
    );
    check(
        with(patrol(), "/properties/sharing", json!("public")),
        &["/properties/sharing: must be \"need_to_know\" or \"full\""],
    );
    check(
        with(patrol(), "/properties/radius_m", json!(5)),
        &["/properties/radius_m: only for a Point"],
    );
}

#[test]
fn several_problems_are_reported_together() {
    let doc = with(
        with(patrol(), "/properties/kind", json!(7)),
        "/properties/start",
        json!(null),
    );
    check(
        doc,
        &[
            "/properties/kind: required: patrol, convoy, flight, site, area or exercise",
            "/properties/start: must be an RFC 3339 date-time string",
        ],
    );
}

#[test]
fn geometry_problems() {
    check(
        with(patrol(), "/geometry/type", json!("MultiPoint")),
        &["/geometry/type: \"MultiPoint\" is not supported: use Point, LineString or Polygon"],
    );
    check(
        with(patrol(), "/geometry/coordinates/1", json!([41.45])),
        &["/geometry/coordinates/1: a position is [longitude, latitude] in degrees"],
    );
    check(
        with(patrol(), "/geometry", json!(null)),
        &["/geometry: required: a Point, LineString or Polygon"],
    );
}

#[test]
fn the_engines_verdict_is_mapped_to_pointers() {
    check(
        with(patrol(), "/geometry/coordinates/1/1", json!(91.0)),
        &["/geometry/coordinates/1/1: latitude 91 is outside [-90, 90]"],
    );
    check(
        with(patrol(), "/properties/end", json!("2022-10-08T05:00:00Z")),
        &["/properties/end: end must be after start"],
    );
    let site = json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [200.0, 37.05]},
        "properties": {"kind": "site", "start": "2022-10-08T00:00:00Z", "radius_m": -1}
    });
    check(
        site,
        &[
            "/properties/radius_m: must be greater than 0, got -1",
            "/geometry/coordinates/0: longitude 200 is outside [-180, 180]",
        ],
    );
    let bow_tie = json!({
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[41.0, 36.0], [41.1, 36.1], [41.1, 36.0], [41.0, 36.1], [41.0, 36.0]]]},
        "properties": {"kind": "area", "start": "2022-10-08T00:00:00Z", "end": "2022-10-09T00:00:00Z"}
    });
    check(
        bow_tie,
        &["/geometry/coordinates/0: ring intersects itself: edges 0 and 2 cross"],
    );
}

#[test]
fn feature_collections_prefix_each_feature() {
    let collection = json!({
        "type": "FeatureCollection",
        "features": [patrol(), with(patrol(), "/properties/end", json!("2022-10-08T05:00:00Z")), with(patrol(), "/properties/kind", json!(null))]
    });
    check(
        collection,
        &["/features/2/properties/kind: required: patrol, convoy, flight, site, area or exercise"],
    );
    let valid_then_invalid = json!({"type": "FeatureCollection", "features": [patrol(), with(patrol(), "/properties/end", json!("2022-10-08T05:00:00Z"))]});
    check(
        valid_then_invalid,
        &["/features/1/properties/end: end must be after start"],
    );
    check(
        json!({"type": "FeatureCollection"}),
        &["/features: must be an array of Features"],
    );
}

#[test]
fn not_json_at_all() {
    let Err(FormatErrors(errors)) = activities_from_geojson("{not json", PartyId(1)) else {
        panic!()
    };
    assert_eq!(errors[0].pointer, "");
    assert!(
        errors[0].message.starts_with("not valid JSON"),
        "{}",
        errors[0].message
    );
}

/// Arbitrary JSON values, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![
            Just("Feature".to_owned()),
            Just("Point".to_owned()),
            Just("2022-10-08T00:00:00Z".to_owned()),
            ".{0,8}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("geometry".to_owned()),
                    Just("coordinates".to_owned()),
                    Just("properties".to_owned()),
                    Just("kind".to_owned()),
                    Just("start".to_owned()),
                    Just("end".to_owned()),
                    Just("radius_m".to_owned()),
                    Just("corridor_m".to_owned()),
                    Just("features".to_owned()),
                    Just("waypoint_times".to_owned()),
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The GeoJSON → activity path never panics and never rejects silently.
    #[test]
    fn any_bytes_give_an_activity_or_named_errors(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(FormatErrors(errors)) = activities_from_geojson(&text, PartyId(1)) {
            prop_assert!(!errors.is_empty());
        }
    }

    #[test]
    fn any_json_gives_an_activity_or_named_errors(value in any_json()) {
        let engine = Engine::new(EngineConfig::default());
        match activities_from_geojson(&value.to_string(), PartyId(1)) {
            Ok(parsed) => for p in parsed {
                if let Err(FormatErrors(errors)) = p.validate(&engine) {
                    prop_assert!(!errors.is_empty());
                }
            },
            Err(FormatErrors(errors)) => prop_assert!(!errors.is_empty()),
        }
    }
}
