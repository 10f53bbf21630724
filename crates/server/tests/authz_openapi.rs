//! The authorization matrix generated from `/openapi.json` (issue 9): every
//! operation the real server documents × {no token, malformed tokens,
//! another party's object id, the right party}. `tests/matrix.rs` is the
//! hand-written matrix with each endpoint's exact answers; this one is
//! generated so that a new operation cannot be left out: an operation the
//! generator cannot fill in fails the test unless `UNFILLABLE` names it with
//! a reason, and every route of the router must be in the document.
//!
//! Rules checked for every operation:
//! - without a token, or with a malformed one, a guarded operation answers
//!   401 problem+json and nothing else;
//! - as party "blue", another party's object id answers exactly (status and
//!   body) as an id that does not exist: no existence leaked;
//! - no answer to blue ever holds red's need-to-know content (a marker in
//!   red's secret activity, its message and incident to green);
//! - no write as blue on red's objects succeeds, and red's objects are
//!   unchanged at the end (0 cross-party writes);
//! - the right caller gets a 2xx, so the matrix is not all refusals.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{patrol, start, Server};
use deconflict_engine::Timestamp;
use deconflict_formats::format_rfc3339;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// In every piece of red's need-to-know content; never in an answer to blue.
const MARKER: &str = "red-secret-7f3a";
/// No object of any kind has this id.
const MISSING_ID: u64 = 987_654;

/// Operations the generator cannot exercise, each with why.
const UNFILLABLE: &[(&str, &str, &str)] = &[];

/// Right-caller answers that are not 2xx, each with why.
const RIGHT_NOT_2XX: &[(&str, &str, &str)] = &[(
    "get",
    "/v1/ws",
    "a WebSocket needs an upgrade handshake (400 without one); streams are covered by tests/live.rs and tests/revocation.rs",
)];

/// Routes the router has that the document does not describe, with why.
const UNDOCUMENTED_ROUTES: &[(&str, &str)] = &[("/openapi.json", "the document itself")];

/// Header values that must all answer 401.
fn malformed(blue: &str) -> Vec<String> {
    vec![
        "Bearer dcf_not-a-real-token".into(),
        "Bearer ".into(),
        "Basic Ymx1ZTpibHVl".into(),
        format!("Bearer {}x", blue),
        format!("Bearer {}", &blue[..blue.len() - 1]),
        blue.to_owned(), // the token without its scheme
    ]
}

struct Party {
    id: u64,
    token: String,
}

struct Fixture {
    admin: String,
    blue: Party,
    red: Party,
    green: Party,
    red_secret_activity: u64,
    red_green_conflict: u64,
    red_to_green_message: u64,
    red_green_incident: u64,
    next_lon: f64,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

async fn send(s: &Server, method: &Method, path: &str, auth: Option<&str>, body: Option<&Value>) -> Answer {
    let mut request = s.client.request(method.clone(), format!("{}{path}", s.url));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    if *method == Method::PUT && path.starts_with("/v1/activities/") {
        request = request.header("if-match", "1");
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // An event stream never ends: its headers are the answer.
    let body = if content_type.starts_with("text/event-stream") {
        String::new()
    } else {
        response.text().await.unwrap_or_default()
    };
    Answer {
        status,
        content_type,
        body,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    format_rfc3339(Timestamp(ms))
}

impl Fixture {
    async fn new(s: &Server) -> Self {
        let (blue_id, blue) = s.party("blue", "military").await;
        let (red_id, red) = s.party("red", "military").await;
        let (green_id, green) = s.party("green", "civil").await;
        let mut secret = patrol(20.0, "need_to_know", 8, 10);
        secret["properties"]["name"] = json!(format!("{MARKER} patrol"));
        let secret = s.notify(&red, secret).await["id"].as_u64().unwrap();
        s.notify(&green, patrol(20.004, "need_to_know", 8, 10)).await;
        let (_, conflicts) = s.call(Method::GET, "/v1/conflicts", Some(&red), None).await;
        let red_green_conflict = conflicts["conflicts"][0]["id"]
            .as_u64()
            .expect("red and green conflict");
        let message = json!({"to": green_id, "body": format!("{MARKER} message"), "priority": "routine"});
        let (status, message) = s
            .call(Method::POST, "/v1/messages", Some(&red), Some(message))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        let incident = json!({"time": now_rfc3339(), "lon": 20.0, "lat": 37.0, "parties": [green_id],
            "description": format!("{MARKER} incident")});
        let (status, incident) = s
            .call(Method::POST, "/v1/incidents", Some(&red), Some(incident))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{incident}");
        Fixture {
            admin: s.admin.clone(),
            blue: Party {
                id: blue_id,
                token: blue,
            },
            red: Party {
                id: red_id,
                token: red,
            },
            green: Party {
                id: green_id,
                token: green,
            },
            red_secret_activity: secret,
            red_green_conflict,
            red_to_green_message: message["id"].as_u64().unwrap(),
            red_green_incident: incident["id"].as_u64().unwrap(),
            next_lon: 30.0,
        }
    }

    /// A fresh activity of blue's, away from everything else.
    async fn blue_activity(&mut self, s: &Server) -> u64 {
        self.next_lon += 0.5;
        s.notify(&self.blue.token, patrol(self.next_lon, "need_to_know", 8, 10))
            .await["id"]
            .as_u64()
            .unwrap()
    }

    /// A fresh conflict between blue and red.
    async fn blue_conflict(&mut self, s: &Server) -> u64 {
        self.next_lon += 0.5;
        s.notify(&self.blue.token, patrol(self.next_lon, "full", 8, 10))
            .await;
        let reds = s
            .notify(&self.red.token, patrol(self.next_lon + 0.004, "full", 8, 10))
            .await;
        reds["conflicts"][0]["id"]
            .as_u64()
            .expect("blue and red conflict")
    }

    /// A fresh message from red to blue.
    async fn message_to_blue(&self, s: &Server) -> u64 {
        let body = json!({"to": self.blue.id, "body": "for blue", "priority": "routine"});
        let (status, message) = s
            .call(Method::POST, "/v1/messages", Some(&self.red.token), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        message["id"].as_u64().unwrap()
    }
}

/// How to call one operation: its `{id}` for the right caller and for
/// another party's object (None: the operation has no id), its body, and
/// who the right caller is.
struct Filled {
    own_id: Option<u64>,
    others_id: Option<u64>,
    body: Option<Value>,
    right_token: String,
}

/// Fills in an operation from what the document says of it, or `None` when
/// the generator does not know how (a new resource: teach it here).
async fn fill(method: &str, path: &str, op: &Value, f: &mut Fixture, s: &Server) -> Option<Filled> {
    let has_body = op.get("requestBody").is_some();
    let blue = f.blue.token.clone();
    let lon = f.next_lon + 0.25;
    let body = |value: Value| has_body.then_some(value);
    let filled = match (method, path) {
        ("post", "/v1/parties") => Filled {
            own_id: None,
            others_id: None,
            body: body(json!({"name": format!("matrix-{lon}"), "kind": "civil"})),
            right_token: f.admin.clone(),
        },
        ("post", "/v1/activities") | ("post", "/v1/activities/check") | ("post", "/v1/zones") => {
            let mut feature = patrol(lon, "full", 8, 10);
            if path == "/v1/zones" {
                feature = json!({"type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [lon, 37.0]},
                    "properties": {"kind": "protected", "name": "matrix zone", "radius_m": 100, "separation_m": 200}});
            }
            f.next_lon += 0.5;
            Filled {
                own_id: None,
                others_id: None,
                body: body(feature),
                right_token: blue,
            }
        }
        (_, "/v1/activities/{id}") => Filled {
            own_id: Some(f.blue_activity(s).await),
            others_id: Some(f.red_secret_activity),
            body: body(patrol(f.next_lon, "need_to_know", 8, 11)),
            right_token: blue,
        },
        (_, "/v1/conflicts/{id}") | (_, "/v1/conflicts/{id}/ack") | (_, "/v1/conflicts/{id}/resolve") => {
            Filled {
                own_id: Some(f.blue_conflict(s).await),
                others_id: Some(f.red_green_conflict),
                body: body(json!({})),
                right_token: blue,
            }
        }
        ("post", "/v1/messages") => Filled {
            own_id: None,
            others_id: None,
            body: body(json!({"to": f.red.id, "body": "from blue", "priority": "routine"})),
            right_token: blue,
        },
        ("post", "/v1/messages/{id}/ack") => Filled {
            own_id: Some(f.message_to_blue(s).await),
            others_id: Some(f.red_to_green_message),
            body: None,
            right_token: blue,
        },
        ("post", "/v1/incidents") => Filled {
            own_id: None,
            others_id: None,
            body: body(
                json!({"time": now_rfc3339(), "lon": lon, "lat": 37.0, "parties": [f.red.id],
                "description": "matrix incident"}),
            ),
            right_token: blue,
        },
        ("get", "/v1/incidents/{id}/evidence") => {
            let report = json!({"time": now_rfc3339(), "lon": lon, "lat": 37.0, "parties": [f.red.id],
                "description": "blue's incident"});
            let (status, incident) = s
                .call(Method::POST, "/v1/incidents", Some(&blue), Some(report))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{incident}");
            Filled {
                own_id: incident["id"].as_u64(),
                others_id: Some(f.red_green_incident),
                body: None,
                right_token: blue,
            }
        }
        ("post", "/v1/tracks") => Filled {
            own_id: None,
            others_id: None,
            body: body(
                json!({"reports": [{"uid": "blue-matrix", "time": now_rfc3339(), "lon": lon, "lat": 37.0}]}),
            ),
            right_token: blue,
        },
        ("put", "/v1/parties/{id}/escalation") => Filled {
            own_id: Some(f.blue.id),
            others_id: Some(f.red.id),
            body: body(json!({"escalation": []})),
            right_token: blue,
        },
        // Admin operations on a party: the right caller is the admin on a
        // throwaway party (rotating green's token would lock green out);
        // blue, a party, is refused alike for red and for no party.
        (_, "/v1/parties/{id}/token") | ("post", "/v1/parties/{id}/tak-certificate") => Filled {
            own_id: Some(
                s.party(&format!("throwaway-{method}-{}", path.len()), "civil")
                    .await
                    .0,
            ),
            others_id: Some(f.red.id),
            body: None,
            right_token: f.admin.clone(),
        },
        // Reads of the caller's own view: every other parameter is a query.
        ("get", _) if !path.contains('{') => Filled {
            own_id: None,
            others_id: None,
            body: None,
            right_token: blue,
        },
        _ => return None,
    };
    // A required body the generator has no sample for is not filled in.
    let body_required = op["requestBody"]["required"].as_bool().unwrap_or(has_body);
    (filled.body.is_some() || !body_required).then_some(filled)
}

/// Values for the query parameters the document marks required.
fn query_for(op: &Value) -> Result<String, String> {
    let mut pairs = Vec::new();
    for parameter in op["parameters"].as_array().into_iter().flatten() {
        if parameter["in"] != "query" || parameter["required"] != true {
            continue;
        }
        let name = parameter["name"].as_str().unwrap_or_default();
        let value = match name {
            "from" => "0",
            "to" | "size" => "1",
            "index" => "0",
            other => return Err(format!("no value for required query parameter {other:?}")),
        };
        pairs.push(format!("{name}={value}"));
    }
    Ok(if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    })
}

/// The paths the router declares (`routes/mod.rs`), read from its source.
fn router_paths() -> BTreeSet<String> {
    let source = include_str!("../src/routes/mod.rs");
    let mut paths = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let start = rest.find('"').unwrap() + 1;
        let end = start + rest[start..].find('"').unwrap();
        paths.insert(rest[start..end].to_owned());
    }
    paths
}

fn same_answer(a: &Answer, b: &Answer, others_id: u64) -> bool {
    a.status == b.status
        && a.content_type == b.content_type
        && a.body.replace(&others_id.to_string(), "{id}") == b.body.replace(&MISSING_ID.to_string(), "{id}")
}

on_both_backends! {
async fn the_generated_matrix_lets_no_one_in_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |_| {}).await;
    let mut f = Fixture::new(&s).await;
    let spec = s
        .client
        .get(format!("{}/openapi.json", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(spec.status(), StatusCode::OK);
    let spec: Value = spec.json().await.unwrap();
    let paths = spec["paths"].as_object().expect("the document has paths");

    // Every route the router has is documented (or listed with a reason).
    let undocumented: Vec<String> = router_paths()
        .into_iter()
        .filter(|p| !paths.contains_key(p) && !UNDOCUMENTED_ROUTES.iter().any(|(u, _)| u == p))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );

    let mut operations = BTreeMap::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                operations.insert((method.clone(), path.clone()), op.clone());
            }
        }
    }
    let bad_headers = malformed(&f.blue.token);
    let (mut calls, mut refusals_401, mut not_found_alike, mut leaks, mut cross_writes) = (0, 0, 0, 0, 0);
    let (mut right_ok, mut public) = (0, 0);
    let mut unfilled = Vec::new();
    let mut failures = Vec::new();
    for ((method, path), op) in &operations {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let guarded = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let query = match query_for(op) {
            Ok(query) => query,
            Err(reason) => {
                unfilled.push(format!("{method} {path}: {reason}"));
                continue;
            }
        };
        let Some(filled) = fill(method, path, op, &mut f, &s).await else {
            if !UNFILLABLE.iter().any(|(um, up, _)| um == method && up == path) {
                unfilled.push(format!("{method} {path}: the generator does not know it"));
            }
            continue;
        };
        let at = |id: Option<u64>| match id {
            Some(id) => format!("{}{query}", path.replace("{id}", &id.to_string())),
            None => format!("{path}{query}"),
        };
        let own_path = at(filled.own_id);
        let body = filled.body.as_ref();

        // No token, malformed tokens.
        let mut attempts: Vec<Option<&str>> = vec![None];
        attempts.extend(bad_headers.iter().map(|h| Some(h.as_str())));
        for auth in attempts {
            let answer = send(&s, &m, &own_path, auth, body).await;
            calls += 1;
            if !guarded {
                public += 1;
                if answer.body.contains(MARKER) {
                    leaks += 1;
                    failures.push(format!(
                        "{method} {own_path} without a token leaked red's content"
                    ));
                }
                continue;
            }
            if answer.status == StatusCode::UNAUTHORIZED && answer.content_type == "application/problem+json"
            {
                refusals_401 += 1;
            } else {
                failures.push(format!(
                    "{method} {own_path} with {auth:?}: {} {}",
                    answer.status, answer.body
                ));
            }
        }

        // Another party's object, as blue: exactly as a missing one.
        let blue = bearer(&f.blue.token);
        if let Some(others_id) = filled.others_id {
            let others = send(&s, &m, &at(Some(others_id)), Some(&blue), body).await;
            let missing = send(&s, &m, &at(Some(MISSING_ID)), Some(&blue), body).await;
            calls += 2;
            if others.status.is_success() {
                cross_writes += usize::from(method != "get");
                failures.push(format!(
                    "{method} {path} on red's {others_id} as blue: {}",
                    others.status
                ));
            }
            if same_answer(&others, &missing, others_id) {
                not_found_alike += 1;
            } else {
                failures.push(format!(
                    "{method} {path}: red's object answers {} {} but a missing one {} {}",
                    others.status, others.body, missing.status, missing.body
                ));
            }
            for answer in [&others, &missing] {
                if answer.body.contains(MARKER) {
                    leaks += 1;
                    failures.push(format!("{method} {path} on red's object leaked red's content"));
                }
            }
        }

        // The right caller.
        let right = send(&s, &m, &own_path, Some(&bearer(&filled.right_token)), body).await;
        calls += 1;
        if right.body.contains(MARKER) && filled.right_token == f.blue.token {
            leaks += 1;
            failures.push(format!(
                "{method} {own_path} as blue leaked red's content: {}",
                right.body
            ));
        }
        let excused = RIGHT_NOT_2XX.iter().any(|(em, ep, _)| em == method && ep == path);
        if right.status.is_success() || excused {
            right_ok += 1;
        } else {
            failures.push(format!(
                "{method} {own_path} as the right caller: {} {}",
                right.status, right.body
            ));
        }
    }

    // Red's objects are as red left them: 0 cross-party writes.
    let red = Some(f.red.token.as_str());
    let (status, secret) = s
        .call(
            Method::GET,
            &format!("/v1/activities/{}", f.red_secret_activity),
            red,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "red's activity is still there: {secret}");
    assert_eq!(secret["properties"]["version"], 1, "{secret}");
    let (_, conflict) = s
        .call(
            Method::GET,
            &format!("/v1/conflicts/{}", f.red_green_conflict),
            red,
            None,
        )
        .await;
    assert_eq!(conflict["state"], "open", "{conflict}");
    let green = Some(f.green.token.as_str());
    let (_, messages) = s.call(Method::GET, "/v1/messages", green, None).await;
    let message = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == f.red_to_green_message)
        .cloned()
        .expect("red's message to green");
    assert!(
        message["acked_at"].is_null() && message["state"] != "acknowledged",
        "{message}"
    );
    let (status, _) = s.call(Method::GET, "/v1/me", red, None).await;
    assert_eq!(status, StatusCode::OK, "red's token still works");

    println!(
        "authorization matrix from /openapi.json: {} operations ({} public), {calls} calls; \
         {refusals_401} answered 401 without or with a malformed token, {not_found_alike} answered for \
         another party's object exactly as for a missing one, {right_ok} answered the right caller; \
         {cross_writes} cross-party writes, {leaks} leaks, {} unfilled",
        operations.len(),
        public / (bad_headers.len() + 1),
        unfilled.len()
    );
    assert!(
        unfilled.is_empty(),
        "operations the generator cannot fill in: {unfilled:#?}"
    );
    assert!(failures.is_empty(), "{} failures: {failures:#?}", failures.len());
    assert_eq!((cross_writes, leaks), (0, 0));
    s.stop().await;
}
}
