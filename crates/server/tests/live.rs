//! Events over SSE, and zones with their conflicts across a restart.

mod common;

use std::time::Duration;

use common::{patrol, start};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_conflict_opened_redacted_for_its_party() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |_| {}).await;
    let (_, blue) = s.party("blue", "military").await;
    let (red_id, red) = s.party("red", "military").await;
    let (_, green) = s.party("green", "civil").await;
    let mut red_events = s
        .client
        .get(format!("{}/v1/events", s.url))
        .bearer_auth(&red)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut green_events = s
        .client
        .get(format!("{}/v1/events", s.url))
        .bearer_auth(&green)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let reds = s.notify(&red, patrol(41.404, "full", 8, 10)).await;
    s.notify(&blue, patrol(41.400, "need_to_know", 8, 10)).await;

    let mut received = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = red_events.next().await {
            received.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if received.contains("\n\n") && received.contains("event: conflict.opened") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{received}");
    let data = received
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("an event has data");
    let conflict: Value = serde_json::from_str(data).unwrap();
    // Red notified first (lower id, first place); blue's side is hidden.
    assert_eq!(conflict["activities"], json!([reds["id"], null]));
    assert_eq!(conflict["parties"], json!([red_id, null]));
    assert_eq!(conflict["state"], "open");
    assert!(received.lines().any(|l| l.starts_with("id: ")), "{received}");
    // Green is not involved: nothing but keep-alives within a moment.
    let quiet = tokio::time::timeout(Duration::from_millis(300), green_events.next()).await;
    assert!(quiet.is_err(), "green received {quiet:?}");
    s.stop().await;
}

fn zone(kind: &str, geometry: Value, extra: Value) -> Value {
    let mut properties = json!({"kind": kind, "name": format!("{kind} zone")});
    for (k, v) in extra.as_object().unwrap() {
        properties[k] = v.clone();
    }
    json!({"type": "Feature", "geometry": geometry, "properties": properties})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_conflict_with_the_activities_they_bind_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |_| {}).await;
    let (aid_id, aid) = s.party("aid", "humanitarian").await;
    let (blue_id, blue) = s.party("blue", "military").await;
    let (_, red) = s.party("red", "military").await;

    // A hospital every other party keeps 1 km clear of.
    let hospital = zone(
        "protected",
        json!({"type": "Point", "coordinates": [41.4, 37.05]}),
        json!({"radius_m": 200, "separation_m": 1000}),
    );
    let (status, created) = s
        .call(Method::POST, "/v1/zones", Some(&aid), Some(hospital))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let hospital_id = created["id"].clone();
    let near = s.notify(&blue, patrol(41.405, "need_to_know", 8, 10)).await;
    let conflict = &near["conflicts"][0];
    assert_eq!(conflict["zone"], hospital_id, "{near}");
    assert_eq!(conflict["activities"], json!([near["id"], null]));
    assert_eq!(conflict["parties"], json!([blue_id, aid_id]));
    // The aid agency sees the conflict with its site, not blue's plan.
    let (_, seen) = s.call(Method::GET, "/v1/conflicts", Some(&aid), None).await;
    assert_eq!(seen["conflicts"][0]["activities"], json!([null, null]));
    assert_eq!(seen["conflicts"][0]["zone"], hospital_id);

    // An exclusion zone binds only red; a demarcation line binds all but its owner.
    let square = json!({"type": "Polygon", "coordinates": [[[42.0, 37.0], [42.2, 37.0], [42.2, 37.2], [42.0, 37.2], [42.0, 37.0]]]});
    let (status, excl) = s
        .call(
            Method::POST,
            "/v1/zones",
            Some(&blue),
            Some(zone("exclusion", square, json!({"parties": [3]}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{excl}");
    let inside_red = s.notify(&red, patrol(42.1, "full", 8, 10)).await;
    assert_eq!(inside_red["conflicts"][0]["zone"], excl["id"]);
    let inside_blue = s.notify(&blue, patrol(42.15, "full", 8, 10)).await;
    assert!(
        inside_blue["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["zone"] != excl["id"]),
        "{inside_blue}"
    );
    let line = json!({"type": "LineString", "coordinates": [[43.0, 36.9], [43.0, 37.2]]});
    let (status, demarcation) = s
        .call(
            Method::POST,
            "/v1/zones",
            Some(&aid),
            Some(zone("demarcation", line, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{demarcation}");
    let crossing = json!({"type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[42.99, 37.05], [43.01, 37.05]]},
        "properties": {"kind": "convoy", "start": "2030-01-01T08:00:00Z", "end": "2030-01-01T09:00:00Z", "corridor_m": 50}});
    let crossed = s.notify(&red, crossing).await;
    assert_eq!(crossed["conflicts"][0]["zone"], demarcation["id"], "{crossed}");
    let (status, bad) = s
        .call(
            Method::POST,
            "/v1/zones",
            Some(&aid),
            Some(zone(
                "exclusion",
                json!({"type": "Point", "coordinates": [41.0, 37.0]}),
                json!({"radius_m": 10, "parties": [99]}),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["errors"][0]["pointer"], "/properties/parties/0");

    // Blue moves away from the hospital: that zone conflict resolves.
    let id = near["id"].as_u64().unwrap();
    let response = s
        .client
        .put(format!("{}/v1/activities/{id}", s.url))
        .bearer_auth(&blue)
        .header("If-Match", "1")
        .json(&patrol(41.6, "need_to_know", 8, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let views = |s: &common::Server| {
        let tokens = [aid.clone(), blue.clone(), red.clone()];
        let client = s.client.clone();
        let url = s.url.clone();
        async move {
            let mut seen = Vec::new();
            for token in tokens {
                for path in ["/v1/conflicts", "/v1/zones", "/v1/activities"] {
                    let body: Value = client
                        .get(format!("{url}{path}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    seen.push(body);
                }
            }
            seen
        }
    };
    let before = views(&s).await;
    assert_eq!(before[0]["conflicts"][0]["state"], "resolved", "{}", before[0]);
    s.stop().await;
    let s = start(dir.path(), |_| {}).await;
    assert_eq!(views(&s).await, before);
    s.stop().await;
}

// ---- the event catalogue -------------------------------------------------

/// Whether `text` has the shape of an event type (`conflict.opened`).
fn is_event_type(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

/// The string literals of `code`, in order.
fn literals(code: &str) -> Vec<&str> {
    code.split('"').skip(1).step_by(2).collect()
}

/// The literal that `code` starts with (after blanks), if any.
fn leading_literal(code: &str) -> Option<&str> {
    let rest = code.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// For every occurrence of `marker`, the event-type literal right after it
/// (after `skip_args` arguments, when it is a call).
fn literal_after<'a>(code: &'a str, marker: &str, skip_args: usize) -> Vec<&'a str> {
    code.match_indices(marker)
        .filter_map(|(at, _)| {
            let mut rest = &code[at + marker.len()..];
            for _ in 0..skip_args {
                rest = &rest[rest.find(',')? + 1..];
            }
            leading_literal(rest).filter(|l| is_event_type(l))
        })
        .collect()
}

/// The literals of the body of the first function named `name` after
/// `after` (`fn type_name`, `fn as_str`): the match arms naming the types.
fn literals_of_fn<'a>(code: &'a str, after: &str, name: &str) -> Vec<&'a str> {
    let start = code.find(after).unwrap_or_else(|| panic!("no {after}"));
    let body = &code[start..];
    let body = &body[body
        .find(name)
        .unwrap_or_else(|| panic!("no {name} after {after}"))..];
    let body = &body[..body.find("\n    }\n").expect("the function ends")];
    literals(body).into_iter().filter(|l| is_event_type(l)).collect()
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every event type the server can emit, read from where the sources name
/// them: the hub's publishing calls, the SSE and WebSocket routes, the
/// conflict events the driver publishes, the hotline's `Event::type_name`
/// and the engine's `AlertKind::as_str`.
fn emitted_event_types() -> std::collections::BTreeSet<String> {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates.join("server/src"), &mut files);
    let mut found = std::collections::BTreeSet::new();
    for file in files {
        let code = std::fs::read_to_string(&file).unwrap();
        for (marker, skip_args) in [
            ("publish_to(", 1),
            ("publish_to_parties(", 1),
            (".event(", 0),
            ("\"type\":", 0),
        ] {
            found.extend(
                literal_after(&code, marker, skip_args)
                    .into_iter()
                    .map(str::to_owned),
            );
        }
        for (at, _) in code.match_indices("record_conflict(") {
            let rest = &code[at..];
            let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
            if let Some(some) = statement.find("Some(\"") {
                let literal = &statement[some + 6..];
                found.insert(literal[..literal.find('"').unwrap()].to_owned());
            }
        }
    }
    let hotline = std::fs::read_to_string(crates.join("hotline/src/action.rs")).unwrap();
    found.extend(
        literals_of_fn(&hotline, "impl Event", "fn type_name")
            .into_iter()
            .map(str::to_owned),
    );
    let alerts = std::fs::read_to_string(crates.join("engine/src/track/alert.rs")).unwrap();
    found.extend(
        literals_of_fn(&alerts, "impl AlertKind", "fn as_str")
            .into_iter()
            .map(str::to_owned),
    );
    found
}

/// The types `docs/EVENTS.md` lists, one `### `type`` heading each.
fn catalogued_event_types() -> std::collections::BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/EVENTS.md");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("### `")?.strip_suffix('`'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_event_type_the_service_emits_is_in_the_catalogue() {
    let emitted = emitted_event_types();
    // The scan must see every kind of source, or it proves nothing.
    for known in [
        "conflict.opened",
        "conflict.resolved",
        "message",
        "message.flash",
        "message.acked",
        "escalation.exhausted",
        "proximity",
        "zone.crossed",
        "lagged",
    ] {
        assert!(emitted.contains(known), "the scan misses {known}: {emitted:?}");
    }
    let catalogue = catalogued_event_types();
    let missing: Vec<&String> = emitted.difference(&catalogue).collect();
    assert!(
        missing.is_empty(),
        "event types the service emits but docs/EVENTS.md does not list: {missing:?}"
    );
    let stale: Vec<&String> = catalogue.difference(&emitted).collect();
    assert!(
        stale.is_empty(),
        "docs/EVENTS.md lists types the service no longer emits: {stale:?}"
    );
}
