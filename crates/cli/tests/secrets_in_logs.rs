//! No token, key or other secret reaches the log (issue 9, item 8): the
//! real `deconflict serve` as a child process, over HTTPS with a TAK
//! listener, logging JSON at trace level, is driven through party creation,
//! requests with `Authorization` headers, failed logins, token rotation and
//! revocation and TAK certificate issuance; then every log line is scanned
//! for every secret it ever held or was shown.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::Stdio;

use common::{deconflict_command, Served};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The strings a secret is recognised by: the whole of it, and each line of
/// a PEM body (base64, 16 characters or more) on its own, so that a key
/// logged in pieces or without its armour is still found.
fn fingerprints(secret: &str) -> Vec<String> {
    let mut out = vec![secret.trim().to_owned()];
    for line in secret.lines() {
        let line = line.trim();
        if line.len() >= 16 && !line.starts_with("-----") {
            out.push(line.to_owned());
        }
    }
    out
}

/// The log key's private part (`PRIVATE+KEY+name+hash+base64`): the whole
/// line and its base64 key.
fn note_key_fingerprints(key: &str) -> Vec<String> {
    let key = key.trim();
    let mut out = vec![key.to_owned()];
    if let Some(encoded) = key.rsplit('+').next() {
        out.push(encoded.to_owned());
    }
    out
}

struct Session {
    client: Client,
    url: String,
}

impl Session {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("the server answers");
        let status = response.status();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn patrol(lon: f64) -> Value {
    json!({"type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[lon, 37.0], [lon, 37.1]]},
        "properties": {"kind": "patrol", "start": "2031-05-01T08:00:00Z", "end": "2031-05-01T10:00:00Z",
            "corridor_m": 400, "sharing": "full"}})
}

fn read_secret(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn no_token_or_key_reaches_the_log_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A test CA and the HTTPS certificate, so the TLS key is a secret too.
    let ca = deconflict_tak::CertificateAuthority::ephemeral().unwrap();
    let https = ca.issue_server(&[]).unwrap();
    let (cert_path, key_path) = (dir.path().join("https.pem"), dir.path().join("https.key"));
    std::fs::write(&cert_path, &https.cert_pem).unwrap();
    std::fs::write(&key_path, &https.key_pem).unwrap();
    let log_path = dir.path().join("server.log");

    let mut command = deconflict_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--cot-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .env("DECONFLICT_DATA", &data)
        // Everything, from every crate: the most the log can ever say.
        .env("DECONFLICT_LOG", "trace")
        .stderr(Stdio::from(File::create(&log_path).unwrap()));
    // Read stdout up to the CoT line, the last the server prints: a pipe
    // closed before it would end the server.
    let (child, lines) = common::spawn_until(command, |l| l.starts_with("CoT over TLS"))
        .unwrap_or_else(|_| panic!("the server starts"));
    let url = common::listening_url(&lines).expect("the server says where it listens");
    let served = Served { child, url };
    assert!(served.url.starts_with("https://"), "{}", served.url);
    let session = Session {
        client: Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).unwrap())
            .build()
            .unwrap(),
        url: served.url.clone(),
    };
    let admin = read_secret(&data.join("admin.token")).trim().to_owned();
    let mut secrets: Vec<(String, String)> = vec![("admin token".into(), admin.clone())];
    let admin_auth = bearer(&admin);

    // Parties are created: their tokens are in the answers.
    let party = |name: &str| -> (u64, String) {
        let (status, body) = session.call(
            reqwest::Method::POST,
            "/v1/parties",
            Some(&admin_auth),
            Some(json!({"name": name, "kind": "military"})),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_u64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    };
    let (blue, blue_token) = party("blue");
    let (red, red_token) = party("red");
    secrets.push(("blue's first token".into(), blue_token.clone()));
    secrets.push(("red's first token".into(), red_token.clone()));
    let mut requests = 2;

    // Requests with the right tokens.
    for (token, lon) in [(&blue_token, 41.0), (&red_token, 41.001)] {
        let (status, body) = session.call(
            reqwest::Method::POST,
            "/v1/activities",
            Some(&bearer(token)),
            Some(patrol(lon)),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, _) = session.call(reqwest::Method::GET, "/v1/me", Some(&bearer(token)), None);
        assert_eq!(status, StatusCode::OK);
        let (status, _) = session.call(reqwest::Method::GET, "/v1/conflicts", Some(&bearer(token)), None);
        assert_eq!(status, StatusCode::OK);
        requests += 3;
    }

    // Failed logins: tokens that are nobody's, a mangled admin token, a
    // party token where the admin's is needed, basic credentials.
    let stranger = "dcf_NotAnyonesTokenButSecretAllTheSame0123456789";
    let mangled = format!("{admin}x");
    let basic = "Basic ZGVjb25mbGljdDpodW50ZXIy"; // deconflict:hunter2
    secrets.push(("a stranger's token".into(), stranger.into()));
    secrets.push(("a mangled admin token".into(), mangled.clone()));
    secrets.push(("basic credentials".into(), "ZGVjb25mbGljdDpodW50ZXIy".into()));
    for (authorization, expected) in [
        (bearer(stranger), StatusCode::UNAUTHORIZED),
        (bearer(&mangled), StatusCode::UNAUTHORIZED),
        (basic.to_owned(), StatusCode::UNAUTHORIZED),
        (format!("Bearer  {stranger} "), StatusCode::UNAUTHORIZED),
    ] {
        let (status, _) = session.call(reqwest::Method::GET, "/v1/me", Some(&authorization), None);
        assert_eq!(status, expected, "{authorization}");
        requests += 1;
    }
    let (status, _) = session.call(
        reqwest::Method::POST,
        "/v1/parties",
        Some(&bearer(&blue_token)),
        Some(json!({"name": "green", "kind": "civil"})),
    );
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a party's token cannot create parties"
    );
    requests += 1;

    // Rotation and revocation: the new tokens are in the answers.
    let (status, body) = session.call(
        reqwest::Method::POST,
        &format!("/v1/parties/{blue}/token"),
        Some(&admin_auth),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let blue_rotated = body["token"].as_str().unwrap().to_owned();
    secrets.push(("blue's rotated token".into(), blue_rotated.clone()));
    let (status, _) = session.call(reqwest::Method::GET, "/v1/me", Some(&bearer(&blue_token)), None);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token after rotation");
    let (status, _) = session.call(reqwest::Method::GET, "/v1/me", Some(&bearer(&blue_rotated)), None);
    assert_eq!(status, StatusCode::OK);
    let (status, _) = session.call(
        reqwest::Method::DELETE,
        &format!("/v1/parties/{red}/token"),
        Some(&admin_auth),
        None,
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = session.call(reqwest::Method::GET, "/v1/me", Some(&bearer(&red_token)), None);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the revoked token");
    let (status, body) = session.call(
        reqwest::Method::POST,
        &format!("/v1/parties/{red}/token"),
        Some(&admin_auth),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    secrets.push((
        "red's new token".into(),
        body["token"].as_str().unwrap().to_owned(),
    ));
    requests += 6;

    // A TAK client certificate: its private key is in the answer.
    let (status, body) = session.call(
        reqwest::Method::POST,
        &format!("/v1/parties/{blue}/tak-certificate"),
        Some(&admin_auth),
        None,
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    secrets.push((
        "blue's TAK private key".into(),
        body["key_pem"].as_str().unwrap().to_owned(),
    ));
    requests += 1;

    // Stop the server as an operator does, so that what it logs on the way
    // out is scanned too.
    let pid = served.child.id().to_string();
    let _ = std::process::Command::new("kill").args(["-INT", &pid]).status();
    let mut served = served;
    let _ = served.child.wait();

    // The keys at rest: the HTTPS key, the TAK CA's key, the log's key.
    secrets.push(("the HTTPS private key".into(), https.key_pem.clone()));
    secrets.push((
        "the TAK CA's private key".into(),
        read_secret(&data.join("tak/tak-ca.key")),
    ));
    let log_key = read_secret(&data.join("log.key"));

    let mut needles: Vec<(String, String)> = Vec::new();
    for (name, secret) in &secrets {
        for fingerprint in fingerprints(secret) {
            needles.push((name.clone(), fingerprint));
        }
    }
    for fingerprint in note_key_fingerprints(&log_key) {
        needles.push(("the log signing key".into(), fingerprint));
    }
    needles.push(("PEM private key armour".into(), "PRIVATE KEY".into()));
    needles.push(("a bearer credential".into(), "Bearer ".into()));

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let mut found = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        for (name, needle) in &needles {
            if line.contains(needle.as_str()) {
                found.push(format!("line {}: {name}", number + 1));
            }
        }
    }
    // The scan means something only if the log is full: trace lines, the
    // request lines, the token events.
    let trace_lines = lines.iter().filter(|l| l.contains(r#""level":"TRACE""#)).count();
    let request_lines = lines
        .iter()
        .filter(|l| l.contains(r#""message":"request""#))
        .count();
    assert!(
        lines.iter().all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "every log line is JSON"
    );
    assert!(
        request_lines >= requests,
        "{request_lines} request lines for {requests} requests"
    );
    assert!(trace_lines > 0, "no trace-level line: the filter did not apply");
    for event in [
        "party token rotated",
        "party token revoked",
        "TAK client certificate issued",
    ] {
        assert!(log.contains(event), "the log lacks {event:?}");
    }
    println!(
        "secrets in logs: {} log lines ({trace_lines} at trace), {requests} requests, {} secrets ({} fingerprints) \
         searched, {} found",
        lines.len(),
        secrets.len() + 1,
        needles.len(),
        found.len()
    );
    assert!(found.is_empty(), "secrets in the log: {found:#?}");
}
