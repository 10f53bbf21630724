//! `GET /v1/export` (GeoJSON and KML of exactly what the caller may see)
//! and `GET /v1/history` (what the timeline replays), on the real server
//! on 127.0.0.1:0.

mod common;

use common::{patrol, start};
use quick_xml::events::Event;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct World {
    server: common::Server,
    blue: (u64, String),
    red: (u64, String),
    broker: String,
    blue_secret: u64,
    blue_shared: u64,
    red_secret: u64,
}

/// Blue notifies a need-to-know patrol and a shared one, red a need-to-know
/// patrol crossing blue's secret one; a protected disk zone and an
/// exclusion polygon far away.
async fn world(dir: &std::path::Path, max_list: usize) -> World {
    let server = start(dir, |config| config.limits.max_list = max_list).await;
    let blue = server.party("blue", "military").await;
    let red = server.party("red", "military").await;
    let (_, broker) = server.party("cell", "broker").await;
    let blue_secret = server
        .notify(&blue.1, patrol(41.400, "need_to_know", 8, 10))
        .await["id"]
        .as_u64()
        .unwrap();
    let blue_shared = server.notify(&blue.1, patrol(43.0, "full", 12, 14)).await["id"]
        .as_u64()
        .unwrap();
    let red_secret = server.notify(&red.1, patrol(41.405, "need_to_know", 9, 11)).await["id"]
        .as_u64()
        .unwrap();
    for zone in [
        json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [38.66, 33.5]},
               "properties": {"kind": "protected", "name": "hospital", "radius_m": 300}}),
        json!({"type": "Feature", "geometry": {"type": "Polygon",
               "coordinates": [[[30.0, 30.0], [30.1, 30.0], [30.1, 30.1], [30.0, 30.0]]]},
               "properties": {"kind": "exclusion", "name": "box", "start": "2030-01-02T00:00:00Z", "parties": [red.0]}}),
    ] {
        let (status, body) = server
            .call(Method::POST, "/v1/zones", Some(&broker), Some(zone))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    World {
        server,
        blue,
        red,
        broker,
        blue_secret,
        blue_shared,
        red_secret,
    }
}

async fn export(server: &common::Server, token: &str, query: &str) -> (StatusCode, String, String) {
    let response = server
        .client
        .get(format!("{}/v1/export{query}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

fn layer<'a>(collection: &'a Value, name: &str) -> Vec<&'a Value> {
    collection["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["layer"] == name)
        .collect()
}

fn ids(features: &[&Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = features.iter().map(|f| f["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

on_both_backends! {
async fn geojson_export_holds_exactly_what_each_party_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path(), 100).await;

    let (status, content_type, body) = export(&w.server, &w.red.1, "?format=geojson").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/geo+json");
    let red: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(red["type"], "FeatureCollection");
    // Red: its own patrol and blue's shared one, never blue's secret one.
    assert_eq!(ids(&layer(&red, "activity")), vec![w.blue_shared, w.red_secret]);
    assert!(
        !body.contains("patrol at 41.4\""),
        "blue's need-to-know patrol leaks: {body}"
    );
    assert_eq!(layer(&red, "zone").len(), 2);
    // The conflict: a Point at the closest approach, blue's side null.
    let conflicts = layer(&red, "conflict");
    assert_eq!(conflicts.len(), 1, "{body}");
    let conflict = conflicts[0];
    assert_eq!(conflict["geometry"]["type"], "Point");
    assert_eq!(conflict["properties"]["activities"], json!([null, w.red_secret]));
    assert_eq!(conflict["properties"]["parties"], json!([null, w.red.0]));
    assert_eq!(conflict["properties"]["party_names"], json!([null, "red"]));
    let lon = conflict["geometry"]["coordinates"][0].as_f64().unwrap();
    assert!((41.39..41.42).contains(&lon), "closest point at {lon}");
    let shared = layer(&red, "activity")
        .into_iter()
        .find(|f| f["id"] == w.blue_shared)
        .unwrap();
    assert_eq!(shared["properties"]["party_name"], "blue");

    // Blue sees both of its own, not red's; the broker everything.
    let (_, _, body) = export(&w.server, &w.blue.1, "").await;
    let blue: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ids(&layer(&blue, "activity")), vec![w.blue_secret, w.blue_shared]);
    assert_eq!(
        layer(&blue, "conflict")[0]["properties"]["activities"],
        json!([w.blue_secret, null])
    );
    let (_, _, body) = export(&w.server, &w.broker, "?format=geojson").await;
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ids(&layer(&all, "activity")),
        vec![w.blue_secret, w.blue_shared, w.red_secret]
    );

    // Narrowed: a box around the crossing, a time after the crossing.
    let (_, _, body) = export(&w.server, &w.broker, "?bbox=41,36.9,42,37.2").await;
    let boxed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ids(&layer(&boxed, "activity")), vec![w.blue_secret, w.red_secret]);
    assert_eq!(layer(&boxed, "zone").len(), 0);
    assert_eq!(layer(&boxed, "conflict").len(), 1);
    let (_, _, body) = export(
        &w.server,
        &w.broker,
        "?from=2030-01-01T11:00:00Z&to=2030-01-01T13:00:00Z",
    )
    .await;
    let later: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ids(&layer(&later, "activity")), vec![w.blue_shared]);
    assert_eq!(layer(&later, "conflict").len(), 0, "the crossing ended at 10:00");
    assert_eq!(
        layer(&later, "zone").len(),
        1,
        "the exclusion box starts on 2 January"
    );

    // An instant (the web map's timeline) and the map's box: what is on
    // then and there; windows are half-open, so an activity ending at the
    // instant is not on, one starting at it is.
    let at = |body: &str| -> Value { serde_json::from_str(body).unwrap() };
    let (status, _, body) = export(
        &w.server,
        &w.broker,
        "?time=2030-01-01T09:30:00Z&bbox=41,36.9,42,37.2",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let then = at(&body);
    assert_eq!(ids(&layer(&then, "activity")), vec![w.blue_secret, w.red_secret]);
    assert_eq!(layer(&then, "conflict").len(), 1);
    assert_eq!(layer(&then, "zone").len(), 0, "both zones are outside the box");
    let (_, _, body) = export(&w.server, &w.broker, "?time=2030-01-01T10:00:00Z").await;
    let ten = at(&body);
    assert_eq!(
        ids(&layer(&ten, "activity")),
        vec![w.red_secret],
        "blue's patrol ended at 10:00"
    );
    assert_eq!(layer(&ten, "conflict").len(), 0);
    let (_, _, body) = export(&w.server, &w.broker, "?time=2030-01-01T12:00:00Z").await;
    assert_eq!(ids(&layer(&at(&body), "activity")), vec![w.blue_shared]);
    // Blue asking for the same instant sees only what blue may see.
    let (_, _, body) = export(&w.server, &w.blue.1, "?time=2030-01-01T09:30:00Z").await;
    let blues = at(&body);
    assert_eq!(ids(&layer(&blues, "activity")), vec![w.blue_secret]);

    w.server.stop().await;
}
}

/// Every element of a KML document, as `(path, text)` in order.
fn kml_elements(kml: &str) -> Vec<(String, String)> {
    let mut reader = quick_xml::Reader::from_str(kml);
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => {
                path.push(start.name().into_inner().to_owned());
                out.push((path.join("/"), String::new()));
            }
            Event::Text(text) => {
                if let Some(last) = out.last_mut() {
                    last.1
                        .push_str(&text.xml_content(quick_xml::XmlVersion::Implicit1_0));
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(path.is_empty(), "every element closes");
    out
}

on_both_backends! {
async fn kml_export_is_kml_2_2_with_the_same_need_to_know() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path(), 100).await;
    let (status, content_type, kml) = export(&w.server, &w.red.1, "?format=kml").await;
    assert_eq!(status, StatusCode::OK, "{kml}");
    assert_eq!(content_type, "application/vnd.google-earth.kml+xml");
    assert!(kml.contains("<kml xmlns=\"http://www.opengis.net/kml/2.2\">"));
    let elements = kml_elements(&kml);
    let count = |path: &str| elements.iter().filter(|(p, _)| p == path).count();
    let placemark = "kml/Document/Folder/Placemark";
    // Two activities, two zones, one conflict.
    assert_eq!(count(placemark), 5);
    assert_eq!(count("kml/Document/Folder"), 3);
    // Corridors as centrelines, the disk zone and the polygon as polygons,
    // the conflict as a point.
    assert_eq!(count(&format!("{placemark}/LineString")), 2);
    assert_eq!(count(&format!("{placemark}/Polygon")), 2);
    assert_eq!(count(&format!("{placemark}/Point")), 1);
    assert_eq!(
        count(&format!(
            "{placemark}/Polygon/outerBoundaryIs/LinearRing/coordinates"
        )),
        2
    );
    // Every placemark has a name, a time span where it has a window, data.
    assert_eq!(count(&format!("{placemark}/name")), 5);
    assert_eq!(count(&format!("{placemark}/ExtendedData")), 5);
    assert!(count(&format!("{placemark}/TimeSpan/begin")) >= 3);
    // The width of a corridor is in its data.
    assert!(kml.contains("<Data name=\"corridor_m\">"));
    // Need-to-know: blue's secret patrol is absent.
    let names: Vec<&str> = elements
        .iter()
        .filter(|(p, _)| p == &format!("{placemark}/name"))
        .map(|(_, t)| t.trim())
        .collect();
    assert!(!names.contains(&"patrol at 41.4"), "{names:?}");
    assert!(names.contains(&"patrol at 41.405"), "{names:?}");
    assert!(names.contains(&"patrol at 43"), "{names:?}");
    // Coordinates are lon,lat pairs.
    for (path, text) in &elements {
        if path.ends_with("/coordinates") {
            for position in text.split_whitespace() {
                let numbers: Vec<f64> = position.split(',').map(|n| n.parse().unwrap()).collect();
                assert_eq!(numbers.len(), 2, "{position}");
                assert!((-180.0..=180.0).contains(&numbers[0]) && (-90.0..=90.0).contains(&numbers[1]));
            }
        }
    }
    w.server.stop().await;
}
}

on_both_backends! {
async fn export_refuses_bad_queries_and_more_than_the_list_limit() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path(), 2).await;
    let pointer = |body: &str| -> Value {
        let problem: Value = serde_json::from_str(body).unwrap();
        problem["errors"][0]["pointer"].clone()
    };
    let (status, _, body) = export(&w.server, &w.red.1, "?format=shapefile").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer(&body), "/query/format");
    let (status, _, body) = export(&w.server, &w.red.1, "?from=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer(&body), "/query/from");
    let (status, _, body) = export(&w.server, &w.red.1, "?time=noon").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer(&body), "/query/time");
    let (status, _, body) = export(
        &w.server,
        &w.red.1,
        "?time=2030-01-01T09:00:00Z&from=2030-01-01T08:00:00Z",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(pointer(&body), "/query/time");
    let (status, _, body) = export(&w.server, &w.red.1, "?bbox=1,2,3").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer(&body), "/query/bbox");
    // --max-list 2: red sees 2 activities (fine), the broker 3 (refused).
    let (status, _, _) = export(&w.server, &w.red.1, "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = export(&w.server, &w.broker, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("--max-list"), "{body}");
    let (status, _, _) = export(&w.server, &w.broker, "?bbox=41,36.9,42,37.2").await;
    assert_eq!(status, StatusCode::OK, "narrowed below the limit");
    // No token: 401.
    let response = w
        .server
        .client
        .get(format!("{}/v1/export", w.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // In the OpenAPI document.
    let (_, openapi) = w.server.call(Method::GET, "/openapi.json", None, None).await;
    assert!(openapi["paths"]["/v1/export"]["get"].is_object());
    w.server.stop().await;
}
}

on_both_backends! {
async fn history_replays_versions_and_conflicts_with_need_to_know() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path(), 100).await;
    let before_move = w
        .server
        .call(Method::GET, "/v1/history", Some(&w.red.1), None)
        .await
        .1;
    // Red moves its patrol away (version 2): the conflict resolves.
    let response = w
        .server
        .client
        .put(format!("{}/v1/activities/{}", w.server.url, w.red_secret))
        .bearer_auth(&w.red.1)
        .header("If-Match", "\"1\"")
        .json(&patrol(41.6, "need_to_know", 9, 11))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (status, red) = w
        .server
        .call(Method::GET, "/v1/history", Some(&w.red.1), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{red}");
    let versions: Vec<(u64, u64)> = red["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), v["version"].as_u64().unwrap()))
        .collect();
    // Blue's shared patrol, red's two versions; never blue's secret one.
    assert_eq!(
        versions,
        vec![(w.blue_shared, 1), (w.red_secret, 1), (w.red_secret, 2)]
    );
    let first = &red["activities"][1];
    assert_eq!(first["feature"]["geometry"]["coordinates"][0][0], 41.405);
    assert_eq!(first["feature"]["properties"]["version"], 1);
    // The conflict: open before the move, resolved after, blue's side null.
    let conflict = &red["conflicts"][0];
    assert_eq!(conflict["state"], "resolved");
    assert_eq!(conflict["activities"], json!([null, w.red_secret]));
    assert!(
        conflict["opened_at"].is_string() && conflict["resolved_at"].is_string(),
        "{conflict}"
    );
    assert_eq!(before_move["conflicts"][0]["state"], "open");

    // From an instant after everything: only the versions in force then.
    let (_, later) = w
        .server
        .call(
            Method::GET,
            "/v1/history?from=2100-01-01T00:00:00Z",
            Some(&w.red.1),
            None,
        )
        .await;
    let versions: Vec<(u64, u64)> = later["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), v["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(versions, vec![(w.blue_shared, 1), (w.red_secret, 2)]);
    assert_eq!(later["conflicts"], json!([]), "resolved before `from`");
    // Until an instant before anything was recorded: nothing.
    let (_, early) = w
        .server
        .call(
            Method::GET,
            "/v1/history?to=2000-01-01T00:00:00Z",
            Some(&w.broker),
            None,
        )
        .await;
    assert_eq!(early["activities"], json!([]));
    assert_eq!(early["conflicts"], json!([]));
    // Blue sees its two patrols and not red's; a bad time is named.
    let (_, blue) = w
        .server
        .call(Method::GET, "/v1/history", Some(&w.blue.1), None)
        .await;
    let ids: Vec<u64> = blue["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![w.blue_secret, w.blue_shared]);
    let (status, problem) = w
        .server
        .call(Method::GET, "/v1/history?to=soon", Some(&w.blue.1), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/query/to");
    w.server.stop().await;
}
}
