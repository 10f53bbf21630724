//! Incident evidence through the real service on 127.0.0.1:0 (issue 5):
//! positions reported before and after an incident are captured within its
//! window and nothing outside it, only the incident's parties (and brokers)
//! read it, and it survives a restart, a capture still running at the stop
//! resuming.

mod common;

use std::time::{Duration, Instant};

use deconflict_engine::Timestamp;
use deconflict_formats::format_rfc3339;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{start, Server};

/// The evidence window in these tests: ±6 s, so a capture closes quickly.
const WINDOW_S: u32 = 6;

fn configure(config: &mut deconflict_server::ServerConfig) {
    config.hotline.evidence_before_s = WINDOW_S;
    config.hotline.evidence_after_s = WINDOW_S;
    config.live.tick_interval_ms = 100;
    config.live.evidence.radius_m = 2_000.0;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn time(ms: i64) -> String {
    format_rfc3339(Timestamp(ms))
}

/// A report at `ms`, stale long after (reports from the past would
/// otherwise be stale on arrival).
fn report(uid: &str, ms: i64, lon: f64) -> Value {
    json!({"uid": uid, "time": time(ms), "lon": lon, "lat": 37.0, "alt_m": 120.0,
        "speed_mps": 12.5, "course_deg": 90.0, "stale": time(now_ms() + 600_000)})
}

async fn post_tracks(s: &Server, token: &str, reports: Vec<Value>) {
    let count = reports.len();
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/tracks",
            Some(token),
            Some(json!({ "reports": reports })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], count, "{body}");
}

async fn evidence(s: &Server, token: &str, incident: u64) -> (StatusCode, Value) {
    s.call(
        Method::GET,
        &format!("/v1/incidents/{incident}/evidence"),
        Some(token),
        None,
    )
    .await
}

/// Asks until `done` holds for the evidence (the capture runs on the track
/// thread's ticks), at most 20 s.
async fn evidence_when(s: &Server, token: &str, incident: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = evidence(s, token, incident).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "evidence never got there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(uid, ms)` of every position Feature, sorted.
fn positions(body: &Value) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = body["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["kind"] == "position")
        .map(|f| {
            let p = &f["properties"];
            let t = deconflict_formats::parse_rfc3339(p["time"].as_str().unwrap()).unwrap();
            (p["uid"].as_str().unwrap().to_owned(), t.unix_ms())
        })
        .collect();
    out.sort();
    out
}

async fn report_incident(s: &Server, token: &str, body: Value) -> u64 {
    let (status, incident) = s
        .call(Method::POST, "/v1/incidents", Some(token), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    incident["id"].as_u64().unwrap()
}

on_both_backends! {
async fn evidence_holds_the_window_before_and_after_for_the_parties_only_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), configure).await;
    let (_, blue) = s.party("blue", "military").await;
    let (red_id, red) = s.party("red", "military").await;
    let (_, green) = s.party("green", "military").await;
    let (_, broker) = s.party("cell", "broker").await;

    // The incident happened 3 s ago at 20.0 E 37.0 N: window [t−6 s, t+6 s].
    let t = now_ms() - 3_000;
    let w = i64::from(WINDOW_S) * 1000;
    post_tracks(
        &s,
        &blue,
        vec![
            report("blue-near", t - w - 2_000, 20.0), // before the window
            report("blue-far", t - 1_000, 21.0),      // 89 km away, not listed
        ],
    )
    .await;
    post_tracks(&s, &blue, vec![report("blue-near", t - 4_000, 20.001)]).await;
    post_tracks(&s, &blue, vec![report("blue-near", t - 1_000, 20.002)]).await;
    // Red's listed unit is far away: involved by its uid.
    post_tracks(&s, &red, vec![report("red-listed", t - 2_000, 22.0)]).await;
    // Green is not a party of the incident, though its unit is at the place.
    post_tracks(&s, &green, vec![report("green-near", t - 1_000, 20.0)]).await;

    let incident = report_incident(
        &s,
        &blue,
        json!({"time": time(t), "lon": 20.0, "lat": 37.0, "parties": [red_id],
            "description": "near miss at the crossing", "entities": ["red-listed"]}),
    )
    .await;
    evidence_when(&s, &blue, incident, |e| !positions(e).is_empty()).await;

    // After it: inside the window, and one past its end (accepted by the
    // watch: less than a minute ahead).
    post_tracks(&s, &blue, vec![report("blue-near", t + 2_000, 20.003)]).await;
    post_tracks(&s, &red, vec![report("red-listed", t + 1_000, 22.001)]).await;
    post_tracks(&s, &blue, vec![report("blue-near", t + w + 1_000, 20.004)]).await;
    post_tracks(&s, &green, vec![report("green-near", t + 1_000, 20.0)]).await;

    let done = evidence_when(&s, &blue, incident, |e| e["complete"] == true).await;
    assert_eq!(
        positions(&done),
        vec![
            ("blue-near".to_owned(), t - 4_000),
            ("blue-near".to_owned(), t - 1_000),
            ("blue-near".to_owned(), t + 2_000),
            ("red-listed".to_owned(), t - 2_000),
            ("red-listed".to_owned(), t + 1_000),
        ],
        "{done}"
    );
    assert_eq!(done["window"]["from"], time(t - w));
    assert_eq!(done["window"]["to"], time(t + w));
    assert_eq!(done["truncated"], false);
    // A line per unit with a time per vertex; positions carry their readings.
    let lines: Vec<&Value> = done["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["geometry"]["type"] == "LineString")
        .collect();
    assert_eq!(lines.len(), 2, "{done}");
    for line in &lines {
        assert_eq!(
            line["geometry"]["coordinates"].as_array().unwrap().len(),
            line["properties"]["times"].as_array().unwrap().len()
        );
    }
    let position = done["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["kind"] == "position")
        .unwrap();
    assert_eq!(position["properties"]["alt_m"], 120.0);
    assert_eq!(position["properties"]["speed_mps"], 12.5);
    assert_eq!(position["properties"]["course_deg"], 90.0);

    // Red (named) and the broker read the same; green gets a missing incident's 404.
    for token in [&red, &broker] {
        assert_eq!(
            evidence(&s, token, incident).await,
            (StatusCode::OK, done.clone())
        );
    }
    let (status, others) = evidence(&s, &green, incident).await;
    let (_, missing) = evidence(&s, &green, 987_654).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(others, missing);

    // A second incident whose window is still open when the service stops.
    let t2 = now_ms();
    post_tracks(&s, &red, vec![report("red-near", t2 - 1_000, 20.0)]).await;
    let running = report_incident(
        &s,
        &red,
        json!({"time": time(t2), "lon": 20.0, "lat": 37.0, "parties": [],
            "description": "second"}),
    )
    .await;
    evidence_when(&s, &red, running, |e| !positions(e).is_empty()).await;
    s.stop().await;

    // Restart: the closed capture reads the same; the running one resumes
    // with its unit and keeps what that unit reports until its end.
    let s = start(dir.path(), configure).await;
    assert_eq!(evidence(&s, &blue, incident).await, (StatusCode::OK, done));
    post_tracks(&s, &red, vec![report("red-near", t2 + 500, 25.0)]).await;
    let resumed = evidence_when(&s, &red, running, |e| e["complete"] == true).await;
    assert_eq!(
        positions(&resumed),
        vec![
            ("red-near".to_owned(), t2 - 1_000),
            ("red-near".to_owned(), t2 + 500)
        ],
        "{resumed}"
    );
    s.stop().await;
}
}
