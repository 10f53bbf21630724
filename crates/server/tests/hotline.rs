//! The hotline over HTTP (issue 5), against the real service on port 0:
//! messages delivered over SSE and acknowledged, a flash message missed
//! until its signed webhook calls reach a real receiver on loopback (and a
//! failing receiver is retried), a deadline that passed while the service
//! was down firing at start, and every class of bad input.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use deconflict_engine::PartyId;
use deconflict_hotline::{verify_signature, Message, Subject, SIGNATURE_HEADER};
use deconflict_server::hotline::HotlineHook;
use deconflict_server::ServerConfig;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use common::sse::Events;
use common::{patrol, start, Server};

/// How long a test waits for an event it expects.
const EVENT_WAIT: Duration = Duration::from_secs(10);

const SECRET: &str = "a-webhook-secret-of-32-bytes-ok!";

/// `POST /v1/messages/{id}/ack` as `token`.
async fn ack_message(server: &Server, id: impl std::fmt::Display, token: &str) -> (StatusCode, Value) {
    server
        .call(Method::POST, &format!("/v1/messages/{id}/ack"), Some(token), None)
        .await
}

async fn send(server: &Server, token: &str, body: Value) -> (StatusCode, Value) {
    server
        .call(Method::POST, "/v1/messages", Some(token), Some(body))
        .await
}

async fn messages(server: &Server, token: &str) -> Vec<Value> {
    let (status, body) = server.call(Method::GET, "/v1/messages", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"].as_array().unwrap().clone()
}

/// Polls the caller's message `id` until `check` holds (within 10 s).
async fn wait_for_message(server: &Server, token: &str, id: u64, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        if let Some(found) = messages(server, token).await.into_iter().find(|m| m["id"] == id) {
            if check(&found) {
                return found;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} never reached the expected state");
}

fn pointer_of(body: &Value) -> &str {
    body["errors"][0]["pointer"].as_str().unwrap_or("")
}

on_both_backends! {
async fn a_message_is_delivered_over_sse_acknowledged_and_listed_for_those_concerned() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (blue, blue_token) = server.party("blue", "military").await;
    let (red, red_token) = server.party("red", "military").await;
    let (_green, green_token) = server.party("green", "humanitarian").await;
    let (_broker, broker_token) = server.party("broker", "broker").await;
    let mut red_events = Events::open(&server, &red_token).await;
    let mut blue_events = Events::open(&server, &blue_token).await;

    let (status, sent) = send(
        &server,
        &blue_token,
        json!({"to": red, "body": "Patrol crossing the M4 at 14:00, please confirm", "priority": "priority"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["from"], blue);
    assert_eq!(sent["to"], red);
    assert_eq!(sent["ack_within_s"], 300, "the priority default");
    assert!(sent["receipt"]["checkpoint"].is_string(), "{sent}");
    let id = sent["id"].as_u64().unwrap();

    let delivered = red_events.expect("message", EVENT_WAIT).await;
    assert_eq!(delivered["id"], id);
    assert_eq!(
        delivered["body"],
        "Patrol crossing the M4 at 14:00, please confirm"
    );
    let listed = wait_for_message(&server, &blue_token, id, |m| m["state"] == "delivered").await;
    assert!(listed["delivered_at"].is_string());

    // Not the recipient: a stranger learns nothing, the sender is refused.
    let (status, _) = ack_message(&server, id, &green_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, missing) = server
        .call(Method::POST, "/v1/messages/999/ack", Some(&green_token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, stranger) = ack_message(&server, id, &green_token).await;
    assert_eq!(stranger, missing, "no existence leak");
    let (status, _) = ack_message(&server, id, &blue_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, acked) = ack_message(&server, id, &red_token).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["already_acked"], false);
    let heard = blue_events.expect("message.acked", EVENT_WAIT).await;
    assert_eq!(heard["message"], id);
    assert_eq!(heard["to"], red);
    let (status, again) = ack_message(&server, id, &red_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_acked"], true);
    assert_eq!(again["acked_at"], acked["acked_at"]);

    assert_eq!(messages(&server, &green_token).await.len(), 0);
    assert_eq!(messages(&server, &red_token).await.len(), 1);
    assert_eq!(
        messages(&server, &broker_token).await.len(),
        1,
        "a broker sees all"
    );

    // The log holds the send, the delivery and the acknowledgement.
    let (_, entries) = server
        .call(
            Method::GET,
            "/v1/log/entries?from=0&to=100",
            Some(&broker_token),
            None,
        )
        .await;
    let kinds: Vec<String> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["leaf"].as_str())
        .map(|leaf| {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD.decode(leaf).unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for kind in ["message.sent", "message.delivered", "message.acknowledged"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing from {kinds:?}");
    }
    server.stop().await;
}
}

on_both_backends! {
async fn conflict_acknowledgements_reach_the_other_party_and_late_ones_are_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| config.hotline.conflict_ack_within_s = 1).await;
    let (_blue, blue_token) = server.party("blue", "military").await;
    let (red, red_token) = server.party("red", "military").await;
    let mut blue_events = Events::open(&server, &blue_token).await;
    server.notify(&blue_token, patrol(40.0, "full", 9, 11)).await;
    let second = server.notify(&red_token, patrol(40.001, "full", 10, 12)).await;
    let conflict = second["conflicts"][0]["id"].as_u64().unwrap();
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/conflicts/{conflict}/ack"),
            Some(&red_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let acked = blue_events.expect("conflict.acked", EVENT_WAIT).await;
    assert_eq!(
        acked,
        json!({"conflict": conflict, "party": red, "acked_at": acked["acked_at"]})
    );
    // Blue never acknowledges: after a second, both hear it.
    let overdue = blue_events.expect("conflict.overdue", EVENT_WAIT).await;
    assert_eq!(overdue["conflict"], conflict);
    assert_ne!(overdue["party"], red);
    server.stop().await;
}
}

/// What the loopback webhook receiver got: signature header and body.
type Calls = mpsc::UnboundedSender<(String, HeaderMap, Vec<u8>)>;

async fn webhook_receiver() -> (String, mpsc::UnboundedReceiver<(String, HeaderMap, Vec<u8>)>) {
    async fn ok(State(calls): State<Calls>, headers: HeaderMap, body: axum::body::Bytes) -> AxumStatus {
        let _ = calls.send(("ok".into(), headers, body.to_vec()));
        AxumStatus::OK
    }
    async fn fail(State(calls): State<Calls>, headers: HeaderMap, body: axum::body::Bytes) -> AxumStatus {
        let _ = calls.send(("fail".into(), headers, body.to_vec()));
        AxumStatus::INTERNAL_SERVER_ERROR
    }
    let (calls, received) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/ok", post(ok))
        .route("/fail", post(fail))
        .with_state(calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(u64, u64, u32)>>);

impl HotlineHook for Recorder {
    fn repeat_flash(&self, party: PartyId, message: &Message, repeat: u32) -> usize {
        self.0.lock().unwrap().push((party.0, message.id.0, repeat));
        0
    }
    fn alert(&self, _party: PartyId, _subject: Subject, _step: u16) {}
}

fn fast_hotline(config: &mut ServerConfig) {
    config.hotline.ack_within.flash_s = Some(1);
    config.hotline.retry.base_s = 1;
    config.hotline.retry.cap_s = 2;
    config.hotline.retry.max_attempts = 3;
    config.hotline.webhook_timeout_s = 5;
}

on_both_backends! {
async fn a_missed_flash_message_is_overdue_then_escalated_by_signed_webhooks_with_retries() {
    let (receiver_url, mut calls) = webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), fast_hotline).await;
    let recorder = Arc::new(Recorder::default());
    server.state.hotline.set_hook(recorder.clone());
    let (blue, blue_token) = server.party("blue", "military").await;
    let (red, red_token) = server.party("red", "military").await;
    // Red's ladder: a receiver that always fails, then one that works.
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/v1/parties/{red}/escalation"),
            Some(&red_token),
            Some(json!({"escalation": [
                {"kind": "webhook", "url": format!("{receiver_url}/fail"), "secret": SECRET},
                {"kind": "webhook", "url": format!("{receiver_url}/ok"), "secret": SECRET, "delay_s": 0},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !body.to_string().contains(SECRET),
        "the answer never shows a secret"
    );
    let mut blue_events = Events::open(&server, &blue_token).await;
    let mut red_events = Events::open(&server, &red_token).await;

    let (status, sent) = send(
        &server,
        &blue_token,
        json!({"to": red, "body": "Stop: your convoy is heading into our exercise area", "priority": "flash"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let id = sent["id"].as_u64().unwrap();
    assert_eq!(sent["ack_within_s"], 1);
    assert_eq!(red_events.expect("message.flash", EVENT_WAIT).await["repeat"], 0);
    for events in [&mut blue_events, &mut red_events] {
        let overdue = events.expect("message.overdue", EVENT_WAIT).await;
        assert_eq!(overdue["message"], id);
        assert_eq!(overdue["priority"], "flash");
    }

    // Three attempts at the failing receiver, then the next step's.
    let mut seen = Vec::new();
    while seen.last().map(|(route, _): &(String, Value)| route.as_str()) != Some("ok") {
        let (route, headers, payload) = tokio::time::timeout(Duration::from_secs(15), calls.recv())
            .await
            .expect("a webhook call within 15 s")
            .unwrap();
        let header = headers[SIGNATURE_HEADER].to_str().unwrap();
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        verify_signature(SECRET.as_bytes(), header, &payload, now_s, 60).expect("a valid signature");
        assert!(
            verify_signature(b"another-secret-of-enough-bytes!!", header, &payload, now_s, 60).is_err(),
            "the signature depends on the secret"
        );
        seen.push((route, serde_json::from_slice::<Value>(&payload).unwrap()));
    }
    let routes: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(routes, ["fail", "fail", "fail", "ok"]);
    let attempts: Vec<&Value> = seen.iter().map(|(_, p)| &p["attempt"]).collect();
    assert_eq!(attempts, [1, 2, 3, 1]);
    let last = &seen[3].1;
    assert_eq!(last["type"], "message.overdue");
    assert_eq!(last["message"]["id"], id);
    assert_eq!(last["message"]["from"], blue);
    assert_eq!(last["step"], 1);
    assert_eq!(
        recorder.0.lock().unwrap().first(),
        Some(&(red, id, 0)),
        "the TAK hook got the flash message"
    );

    // Acknowledging stops everything; the sender hears it.
    let (status, _) = ack_message(&server, id, &red_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        blue_events.expect("message.acked", EVENT_WAIT).await["message"],
        id
    );
    server.stop().await;
}
}

on_both_backends! {
async fn a_deadline_that_passed_while_the_service_was_down_fires_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (_blue, blue_token) = server.party("blue", "military").await;
    let (red, _red_token) = server.party("red", "military").await;
    let (status, sent) = send(
        &server,
        &blue_token,
        json!({"to": red, "body": "Confirm the corridor", "priority": "routine", "ack_within_s": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let id = sent["id"].as_u64().unwrap();
    let before = messages(&server, &blue_token).await;
    assert_eq!(before[0]["overdue_at"], Value::Null);
    server.stop().await;

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let server = start(dir.path(), |_| {}).await;
    let overdue = wait_for_message(&server, &blue_token, id, |m| m["overdue_at"].is_string()).await;
    assert_eq!(overdue["state"], "sent");
    let at = |field: &str| deconflict_formats::parse_rfc3339(overdue[field].as_str().unwrap()).unwrap();
    assert!(
        at("overdue_at").unix_ms() >= at("ack_deadline").unix_ms() + 500,
        "found overdue after the restart, not before the stop: {overdue}"
    );
    server.stop().await;
}
}

on_both_backends! {
async fn bad_input_is_a_clear_4xx_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| config.hotline.limits.max_body_bytes = 64).await;
    let (blue, blue_token) = server.party("blue", "military").await;
    let (red, red_token) = server.party("red", "military").await;

    let cases = [
        (json!({"to": 999, "body": "hello", "priority": "routine"}), "/to"),
        (json!({"to": blue, "body": "hello", "priority": "routine"}), "/to"),
        (
            json!({"to": red, "body": "x".repeat(65), "priority": "routine"}),
            "/body",
        ),
        (json!({"to": red, "body": "  ", "priority": "routine"}), "/body"),
        (
            json!({"to": red, "body": "hello", "priority": "urgent"}),
            "/priority",
        ),
        (json!({"to": red, "body": "hello"}), "/priority"),
        (json!({"body": "hello", "priority": "flash"}), "/to"),
        (
            json!({"to": red, "body": "hello", "priority": "flash", "ack_within_s": 0}),
            "/ack_within_s",
        ),
        (
            json!({"to": red, "body": "hello", "priority": "flash", "incident_id": 7}),
            "/incident_id",
        ),
        (
            json!({"to": red, "body": "hello", "priority": "flash", "conflict_id": 7}),
            "/conflict_id",
        ),
    ];
    for (body, pointer) in cases {
        let (status, problem) = send(&server, &blue_token, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {problem}");
        assert_eq!(pointer_of(&problem), pointer, "{body} → {problem}");
    }
    assert!(
        messages(&server, &blue_token).await.is_empty(),
        "nothing was written"
    );

    // Escalation contacts: only the party itself (or the admin), and named fields.
    let ladder =
        json!({"escalation": [{"kind": "webhook", "url": "http://127.0.0.1:9/x", "secret": "short"}]});
    let (status, problem) = server
        .call(
            Method::PUT,
            &format!("/v1/parties/{red}/escalation"),
            Some(&red_token),
            Some(ladder.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(pointer_of(&problem), "/escalation/0/secret");
    let (status, _) = server
        .call(
            Method::PUT,
            &format!("/v1/parties/{red}/escalation"),
            Some(&blue_token),
            Some(ladder),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = server
        .call(
            Method::PUT,
            &format!("/v1/parties/{red}/escalation"),
            Some(&server.admin),
            Some(json!({"escalation": [{"kind": "pager"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer_of(&problem), "/escalation/0/kind");
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/v1/parties/{red}/escalation"),
            Some(&server.admin),
            Some(json!({"escalation": [{"kind": "party", "party": blue, "delay_s": 60}, {"kind": "tak"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Incidents: named fields; the parties named see it, others do not.
    let (status, problem) = server
        .call(
            Method::POST,
            "/v1/incidents",
            Some(&blue_token),
            Some(json!({"time": "2020-01-01T10:00:00Z", "lon": 200.0, "lat": 37.0, "parties": [red], "description": "shots fired"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer_of(&problem), "/lon");
    let (status, incident) = server
        .call(
            Method::POST,
            "/v1/incidents",
            Some(&blue_token),
            Some(
                json!({"time": "2020-01-01T10:00:00Z", "lon": 41.2, "lat": 37.0, "parties": [red],
                "description": "warning shots near the checkpoint", "entities": ["blue-1"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    assert_eq!(incident["evidence"]["from"], "2020-01-01T09:50:00Z");
    let (_, listed) = server
        .call(Method::GET, "/v1/incidents", Some(&red_token), None)
        .await;
    assert_eq!(listed["incidents"].as_array().unwrap().len(), 1);
    let (_green, green_token) = server.party("green", "civil").await;
    let (_, listed) = server
        .call(Method::GET, "/v1/incidents", Some(&green_token), None)
        .await;
    assert_eq!(listed["incidents"], json!([]));
    server.stop().await;
}
}

/// A message sent while the recipient has no stream is delivered when one
/// opens, and `delivered_at` is that moment, not the send.
async fn redelivered_when_a_stream_opens(open: impl AsyncFnOnce(&Server, &str) -> Value) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (_blue, blue_token) = server.party("blue", "military").await;
    let (red, red_token) = server.party("red", "military").await;
    let (status, sent) = send(
        &server,
        &blue_token,
        json!({"to": red, "body": "Convoy at the bridge at 16:00", "priority": "routine"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let id = sent["id"].as_u64().unwrap();
    assert_eq!(sent["delivered_at"], Value::Null, "nobody was listening");
    // The send's own delivery attempt has run (and reached nobody) once a
    // later command has been answered: actions are performed in order.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let listed = messages(&server, &blue_token).await;
    assert_eq!(listed[0]["state"], "sent", "{listed:?}");
    assert_eq!(listed[0]["delivered_at"], Value::Null);

    let delivered = open(&server, &red_token).await;
    assert_eq!(delivered["id"], id);
    assert_eq!(delivered["body"], "Convoy at the bridge at 16:00");
    let listed = wait_for_message(&server, &blue_token, id, |m| m["state"] == "delivered").await;
    let sent_at = deconflict_formats::parse_rfc3339(listed["sent_at"].as_str().unwrap()).unwrap();
    let delivered_at = deconflict_formats::parse_rfc3339(listed["delivered_at"].as_str().unwrap()).unwrap();
    assert!(
        delivered_at.unix_ms() >= sent_at.unix_ms() + 50,
        "delivered when the stream opened: {listed}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_away_is_delivered_when_an_event_stream_opens() {
    redelivered_when_a_stream_opens(async |server: &Server, token: &str| {
        Events::open(server, token)
            .await
            .expect("message", EVENT_WAIT)
            .await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_away_is_delivered_when_a_websocket_opens() {
    redelivered_when_a_stream_opens(async |server: &Server, token: &str| {
        let mut socket = server.websocket(token).await;
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let frame = socket.next().await.unwrap().unwrap();
                if let Ok(text) = frame.into_text() {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "message" {
                        return value["data"].clone();
                    }
                }
            }
        })
        .await
        .expect("the message on the WebSocket within 5 s")
    })
    .await;
}

fn pytak_installed() -> bool {
    let installed = std::process::Command::new("python3")
        .args(["-c", "import pytak"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        assert!(
            std::env::var_os("DECONFLICT_REQUIRE_CLIENTS").is_none_or(|v| v != "1"),
            "python3 module pytak is required (DECONFLICT_REQUIRE_CLIENTS=1): python3 -m pip install pytak"
        );
        eprintln!("\n\n*** SKIPPED pytak flash test: python3 module pytak is not installed (python3 -m pip install pytak)\n\n");
    }
    installed
}

on_both_backends! {
/// The recipient's TAK client (pytak over TLS with the certificate the
/// server's CA issued) gets a flash message sent while it was away as soon
/// as it connects, then every repeat until the message is acknowledged,
/// and nothing after.
async fn a_flash_message_repeats_to_the_recipients_tak_client_until_acknowledged() {
    if !pytak_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| {
        config.hotline.flash_repeat_every_s = 1;
        config.hotline.ack_within.flash_s = Some(600);
    })
    .await;
    let (blue, blue_token) = server.party("blue", "military").await;
    let (red, red_token) = server.party("red", "military").await;
    let credentials = tempfile::tempdir().unwrap();
    let files = server
        .state
        .live
        .ca()
        .issue_client(PartyId(red), "red")
        .unwrap()
        .write_pem_files(credentials.path(), "red")
        .unwrap();
    let listener = server
        .state
        .live
        .listen_cot("127.0.0.1:0".parse().unwrap(), None, &[])
        .await
        .unwrap();

    let (status, sent) = send(
        &server,
        &blue_token,
        json!({"to": red, "body": "Hold fire on grid 38S MB 123 456", "priority": "flash"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let id = sent["id"].as_u64().unwrap();
    // And a routine one: no repeats, so only the redelivery at connection
    // can bring it to the TAK client.
    let (status, routine) = send(
        &server,
        &blue_token,
        json!({"to": red, "body": "Resupply convoy tomorrow 06:00", "priority": "routine"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{routine}");
    let routine_id = routine["id"].as_u64().unwrap();

    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pytak/chat_listener.py");
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .env(
            "COT_URL",
            format!("tls://127.0.0.1:{}", listener.local_addr().port()),
        )
        .env("PYTAK_TLS_CLIENT_CERT", &files.cert)
        .env("PYTAK_TLS_CLIENT_KEY", &files.key)
        .env("PYTAK_TLS_CLIENT_CAFILE", &files.ca)
        .env("DURATION_S", "30")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    // The client's lines as they come, read on a thread of their own.
    let (line_sender, mut lines) = mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_sender.send(line).is_err() {
                return;
            }
        }
    });
    let flash_uid = format!("flash-{id}-");
    let routine_uid = format!("message-{routine_id} ");
    let mut routine_line = None;
    let mut flashes: Vec<String> = Vec::new();
    // The next chat line of the flash message (noting the routine one on
    // the way), within `within`.
    let mut next_flash = async |within: Duration| -> Option<String> {
        tokio::time::timeout(within, async {
            while let Some(line) = lines.recv().await {
                if line.starts_with("CHAT ") && line.contains(&routine_uid) {
                    routine_line = Some(line.clone());
                }
                if line.starts_with("CHAT ") && line.contains(&flash_uid) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    };
    for _ in 0..2 {
        let line = next_flash(Duration::from_secs(10))
            .await
            .expect("a flash repeat on the TAK client within 10 s");
        flashes.push(line);
    }
    assert!(
        flashes[0].contains("Hold fire on grid 38S MB 123 456")
            && flashes[0].contains(&format!("from party {blue}")),
        "{flashes:?}"
    );
    assert_ne!(flashes[0], flashes[1], "each repeat is a new chat line");
    let listed = wait_for_message(&server, &blue_token, id, |m| m["state"] == "delivered").await;
    assert!(
        listed["delivered_at"].is_string(),
        "the TAK client counts as a delivery"
    );
    let listed = wait_for_message(&server, &blue_token, routine_id, |m| m["state"] == "delivered").await;
    assert!(listed["delivered_at"].is_string(), "{listed}");

    let (status, _) = ack_message(&server, id, &red_token).await;
    assert_eq!(status, StatusCode::OK);
    // A repeat already on its way when the ack committed may still land;
    // after that, two repeat intervals bring nothing.
    let _ = next_flash(Duration::from_millis(300)).await;
    let after_ack = next_flash(Duration::from_millis(2_500)).await;
    assert_eq!(after_ack, None, "no repeat after the acknowledgement");
    let routine_line = routine_line.expect("the routine message reached the TAK client when it connected");
    assert!(
        routine_line.contains("Resupply convoy tomorrow 06:00"),
        "{routine_line}"
    );
    let _ = child.kill();
    let _ = child.wait();
    listener.shutdown().await;
    server.stop().await;
}
}
