//! Live tracks through the real service: reports over HTTP, alerts on the
//! parties' event streams (SSE and WebSocket), zones as fences, the
//! need-to-know rule of `GET /v1/tracks`, and the limits.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use deconflict_engine::Timestamp;
use deconflict_formats::format_rfc3339;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::sse::Events;
use common::{start, Server};

/// The report time: the clock, but always after the previous report's.
/// The watch ignores a report of an entity that is not newer than the one
/// it holds (same `time`: a duplicate), and two posts of one test often
/// fall in the same millisecond: that is why a clearing report once went
/// unseen (answered `{"accepted": 0, "ignored": 1}`).
fn now_rfc3339() -> String {
    static LAST_MS: AtomicI64 = AtomicI64::new(0);
    let clock_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let previous = LAST_MS.fetch_max(clock_ms, Ordering::SeqCst);
    let ms = if clock_ms > previous {
        clock_ms
    } else {
        LAST_MS.fetch_add(1, Ordering::SeqCst) + 1
    };
    format_rfc3339(Timestamp(ms))
}

fn report(uid: &str, lon: f64, lat: f64, speed_mps: f64, course_deg: f64) -> Value {
    json!({"uid": uid, "time": now_rfc3339(), "lon": lon, "lat": lat, "speed_mps": speed_mps, "course_deg": course_deg})
}

async fn post_tracks(server: &Server, token: &str, reports: Vec<Value>) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            "/v1/tracks",
            Some(token),
            Some(json!({"reports": reports})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converging_units_alert_both_parties_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (blue, blue_token) = server.party("Blue", "military").await;
    let (red, red_token) = server.party("Red", "military").await;
    let (_, green_token) = server.party("Green", "military").await;
    let mut blue_events = Events::open(&server, &blue_token).await;
    let mut red_events = Events::open(&server, &red_token).await;

    // 3 km apart head-on at 15 m/s each: the CPA (0 m) is 100 s ahead,
    // inside the 120 s look-ahead.
    let (status, body) =
        post_tracks(&server, &blue_token, vec![report("b-1", 41.00, 37.0, 15.0, 90.0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 1);
    let (status, _) = post_tracks(
        &server,
        &red_token,
        vec![report("r-1", 41.0336, 37.0, 15.0, 270.0)],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for events in [&mut blue_events, &mut red_events] {
        let cpa = events.expect("cpa", Duration::from_secs(1)).await;
        assert_eq!(cpa["state"], "open");
        let parties: Vec<u64> = cpa["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["party"].as_u64().unwrap())
            .collect();
        assert!(parties.contains(&blue) && parties.contains(&red), "{cpa}");
        assert!(cpa["distance_m"].as_f64().unwrap() < 1_000.0, "{cpa}");
    }

    // Red sees Blue's unit while the alert concerns both; Green sees nothing.
    let (_, red_view) = server
        .call(Method::GET, "/v1/tracks", Some(&red_token), None)
        .await;
    let uids: Vec<&str> = red_view["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), 2, "{red_view}");
    let (_, green_view) = server
        .call(Method::GET, "/v1/tracks", Some(&green_token), None)
        .await;
    assert_eq!(green_view["features"], json!([]), "not Green's business");

    // Now 500 m apart: proximity for both.
    let (status, body) = post_tracks(
        &server,
        &red_token,
        vec![report("r-1", 41.0056, 37.0, 15.0, 270.0)],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["accepted"], 1, "{body}");
    for events in [&mut blue_events, &mut red_events] {
        let proximity = events.expect("proximity", Duration::from_secs(1)).await;
        assert!(proximity["distance_m"].as_f64().unwrap() < 1_000.0, "{proximity}");
        assert_eq!(proximity["vertical_limit_m"], Value::Null, "on the ground");
    }

    // Red turns away and leaves: the proximity clears, with its reason.
    let (status, body) = post_tracks(&server, &red_token, vec![report("r-1", 41.05, 37.0, 15.0, 90.0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["accepted"], 1, "a newer report is applied: {body}");
    for events in [&mut blue_events, &mut red_events] {
        let cleared = events.expect("proximity", Duration::from_secs(1)).await;
        assert_eq!(cleared["state"], "cleared", "{cleared}");
        assert_eq!(cleared["reason"], "separated");
    }
    drop((blue_events, red_events));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_entering_a_protected_zone_alerts_its_party_and_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (_, blue_token) = server.party("Blue", "military").await;
    let (aid, aid_token) = server.party("Aid", "humanitarian").await;
    let (status, zone) = server
        .call(
            Method::POST,
            "/v1/zones",
            Some(&aid_token),
            Some(json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [41.2, 37.0]},
                "properties": {"kind": "protected", "name": "hospital", "radius_m": 500}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{zone}");
    let mut blue_events = Events::open(&server, &blue_token).await;
    let mut aid_events = Events::open(&server, &aid_token).await;
    // The zone creation hook made it a fence at once: no tick to wait for.
    let (status, _) = post_tracks(&server, &blue_token, vec![report("b-7", 41.2, 37.001, 0.0, 0.0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for events in [&mut blue_events, &mut aid_events] {
        let entered = events.expect("zone.entered", Duration::from_secs(1)).await;
        assert_eq!(entered["zone"], zone["id"]);
        assert_eq!(entered["zone_owner"], aid);
        assert_eq!(entered["track"]["uid"], "b-7");
    }
    // The owner sees the intruder on its map while the alert is open.
    let (_, view) = server
        .call(Method::GET, "/v1/tracks", Some(&aid_token), None)
        .await;
    assert_eq!(view["features"][0]["properties"]["uid"], "b-7", "{view}");
    assert!(
        view["features"][0]["properties"].get("activity_id").is_none(),
        "which activity another party's unit executes is not shown"
    );
    drop((blue_events, aid_events));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_named_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| {
        config.live.max_reports_per_request = 5;
        config.live.track.max_entities_per_party = 3;
    })
    .await;
    let (_, blue_token) = server.party("Blue", "military").await;
    let (_, red_token) = server.party("Red", "military").await;
    let mut reports: Vec<Value> = (0..4)
        .map(|i| report(&format!("b-{i}"), 41.0 + f64::from(i) * 0.1, 37.0, 1.0, 0.0))
        .collect();
    reports[3]["lat"] = json!(91.0);
    reports[1]["speed_mps"] = json!("fast");
    let (status, body) = post_tracks(&server, &blue_token, reports).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/reports/1/speed_mps", "/reports/3/lat"]);
    let (_, view) = server
        .call(Method::GET, "/v1/tracks", Some(&blue_token), None)
        .await;
    assert_eq!(view["features"], json!([]), "a bad batch takes nothing");

    // Linking another party's activity is refused like a missing one.
    let red_patrol = server
        .notify(&red_token, common::patrol(41.0, "need_to_know", 8, 10))
        .await;
    let mut linked = report("b-0", 41.0, 37.0, 1.0, 0.0);
    linked["activity_id"] = red_patrol["id"].clone();
    let (status, body) = post_tracks(&server, &blue_token, vec![linked]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["pointer"], "/reports/0/activity_id");

    // The batch limit and the entity limit, each named.
    let six: Vec<Value> = (0..6)
        .map(|i| report(&format!("x-{i}"), 41.0, 37.0, 0.0, 0.0))
        .collect();
    let (status, body) = post_tracks(&server, &blue_token, six).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("--max-reports-per-request"));
    let four: Vec<Value> = (0..4)
        .map(|i| report(&format!("y-{i}"), 41.0 + f64::from(i), 37.0, 0.0, 0.0))
        .collect();
    let (status, body) = post_tracks(&server, &blue_token, four).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("--max-entities-per-party"));
    let (_, view) = server
        .call(Method::GET, "/v1/tracks", Some(&blue_token), None)
        .await;
    assert_eq!(view["features"], json!([]), "refused whole");
    let (status, _) = server
        .call(Method::GET, "/v1/tracks?bbox=1,2,3", Some(&blue_token), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_carries_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (_, blue_token) = server.party("Blue", "military").await;
    let (_, red_token) = server.party("Red", "military").await;
    let mut socket = server.websocket(&red_token).await;
    let (status, _) = post_tracks(&server, &blue_token, vec![report("b-1", 41.0, 37.0, 0.0, 0.0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = post_tracks(&server, &red_token, vec![report("r-1", 41.005, 37.0, 0.0, 0.0)]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let message = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let message = socket.next().await.unwrap().unwrap();
            if let Ok(text) = message.into_text() {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "proximity" {
                    return value;
                }
            }
        }
    })
    .await
    .expect("proximity on the WebSocket within 1 s");
    assert_eq!(message["data"]["state"], "open");
    assert!(message.get("id").is_none(), "track alerts are not log entries");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_issues_tak_certificates_naming_the_party() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (blue, blue_token) = server.party("Blue", "military").await;
    let path = format!("/v1/parties/{blue}/tak-certificate");
    let (status, _) = server.call(Method::POST, &path, Some(&blue_token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admin only");
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/parties/999/tak-certificate",
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server.call(Method::POST, &path, Some(&server.admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for field in ["cert_pem", "key_pem", "ca_pem"] {
        assert!(body[field].as_str().unwrap().contains("-----BEGIN"), "{field}");
    }
    // The CA lives in the data directory and signs every certificate.
    let ca = std::fs::read_to_string(dir.path().join("tak/tak-ca.pem")).unwrap();
    assert_eq!(body["ca_pem"].as_str().unwrap().trim(), ca.trim());
    server.stop().await;
}

/// `publish_every_reports` (`--publish-every-reports`): a request taken in
/// parts, each part's alerts published before the next part, raises the
/// same alerts as the request taken whole, and answers the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_taken_in_parts_raises_the_same_alerts_as_taken_whole() {
    let mut seen = Vec::new();
    for parts in [1, 3, 1_000] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), |c| c.live.publish_every_reports = parts).await;
        let (_, blue_token) = server.party("Blue", "military").await;
        let (_, red_token) = server.party("Red", "military").await;
        let mut blue_events = Events::open(&server, &blue_token).await;
        // Seven pairs of stationary ground units 500 m apart (under the
        // 1 km threshold), the pairs 20 km from each other.
        let units = 7;
        let blue: Vec<Value> = (0..units)
            .map(|i| report(&format!("b-{i}"), 40.0 + 0.2 * f64::from(i), 36.0, 0.0, 0.0))
            .collect();
        let red: Vec<Value> = (0..units)
            .map(|i| report(&format!("r-{i}"), 40.0 + 0.2 * f64::from(i), 36.0045, 0.0, 0.0))
            .collect();
        let (status, body) = post_tracks(&server, &blue_token, blue).await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (StatusCode::ACCEPTED, Some(7)),
            "{body}"
        );
        let (status, body) = post_tracks(&server, &red_token, red).await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (StatusCode::ACCEPTED, Some(7)),
            "{body}"
        );
        let mut pairs = Vec::new();
        for _ in 0..units {
            let alert = blue_events.expect("proximity", Duration::from_secs(5)).await;
            assert_eq!(alert["state"], "open");
            let uids: Vec<String> = alert["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["uid"].as_str().unwrap().to_owned())
                .collect();
            pairs.push(uids);
        }
        pairs.sort();
        seen.push(pairs);
        server.stop().await;
    }
    assert_eq!(seen[0].len(), 7);
    assert!(seen.iter().all(|pairs| *pairs == seen[0]), "{seen:?}");
}
