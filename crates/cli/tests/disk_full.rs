//! A real full disk (issue 9, part 2): `deconflict serve` runs with a file
//! size limit (`ulimit -f`, SIGXFSZ ignored, so a write past the limit fails
//! with EFBIG exactly as on a full file system). Writes are taken until the
//! database cannot grow; from then on every write is refused with a 503
//! problem+json, reads keep working, and nothing refused is ever there.
//! When the limit is lifted (`prlimit` on the running process) writes are
//! taken again without a restart, and after a SIGKILL and restart the store
//! holds exactly what was acknowledged.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use deconflict_audit::{verify_checkpoint, verify_growth, Hash, NoteVerifier};
use reqwest::blocking::Client;
use serde_json::{json, Value};

use common::{deconflict_command, Served};

/// Starts the server, under a file size limit of `limit_blocks` × 512 bytes
/// when given.
fn serve(data: &Path, limit_blocks: Option<u64>) -> Served {
    let binary = env!("CARGO_BIN_EXE_deconflict");
    let mut command = match limit_blocks {
        // An ignored signal stays ignored across exec: the server gets EFBIG
        // instead of being killed by SIGXFSZ, as a full disk gives ENOSPC.
        // Only the soft limit: the test may lift it later without privilege.
        Some(blocks) => {
            let mut command = Command::new("sh");
            command.args([
                "-c",
                r#"trap '' XFSZ; ulimit -S -f "$1" || exit 97; exec "$0" serve --listen 127.0.0.1:0 --data "$2""#,
                binary,
                &blocks.to_string(),
            ]);
            command.arg(data);
            command
        }
        None => {
            let mut command = deconflict_command();
            command
                .args(["serve", "--listen", "127.0.0.1:0", "--data"])
                .arg(data);
            command
        }
    };
    command.env("DECONFLICT_LOG", "off").stderr(Stdio::null());
    Served::start(command)
}

/// A polygon of `vertices` points: a big Feature, so the database grows fast.
fn big_area(name: &str, lon: f64) -> Value {
    let vertices = 600;
    let mut ring: Vec<[f64; 2]> = (0..vertices)
        .map(|i| {
            let angle = std::f64::consts::TAU * f64::from(i) / f64::from(vertices);
            [lon + 0.05 * angle.cos(), 10.0 + 0.05 * angle.sin()]
        })
        .collect();
    ring.push(ring[0]);
    json!({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"kind": "area", "name": name, "start": "2031-05-01T08:00:00Z", "end": "2031-05-01T10:00:00Z"}})
}

fn post(client: &Client, url: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = client
        .post(format!("{url}/v1/activities"))
        .bearer_auth(token)
        .json(body)
        .send()
        .expect("the server answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = response.json().unwrap_or(Value::Null);
    if status == 503 {
        assert_eq!(content_type, "application/problem+json", "{body}");
    }
    (status, body)
}

fn get(client: &Client, url: &str, token: &str, path: &str) -> (u16, String) {
    let response = client
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .expect("the server answers");
    (response.status().as_u16(), response.text().unwrap_or_default())
}

fn names(client: &Client, url: &str, token: &str) -> BTreeSet<String> {
    let (status, text) = get(client, url, token, "/v1/activities");
    assert_eq!(status, 200, "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    listed["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_grew(client: &Client, url: &str, token: &str, verifier: &NoteVerifier, old_note: &str) {
    let old = verify_checkpoint(old_note, verifier).unwrap();
    let (_, note) = get(client, url, token, "/v1/log/checkpoint");
    let new = verify_checkpoint(&note, verifier).unwrap();
    let (_, proof) = get(
        client,
        url,
        token,
        &format!("/v1/log/proof/consistency?from={}&to={}", old.size, new.size),
    );
    let proof: Value = serde_json::from_str(&proof).unwrap();
    let proof: Vec<Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    verify_growth(&old, &note, &proof, verifier).unwrap();
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert!(
            std::env::var("DECONFLICT_REQUIRE_CLIENTS").as_deref() != Ok("1"),
            "prlimit (util-linux) is required"
        );
        println!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // 3 MiB per file: room for the schema and a few dozen big activities.
    let limit_blocks = 6 * 1024;
    let server = serve(dir.path(), Some(limit_blocks));
    let admin = std::fs::read_to_string(dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let party: Value = client
        .post(format!("{}/v1/parties", server.url))
        .bearer_auth(&admin)
        .json(&json!({"name": "blue", "kind": "military"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = party["token"].as_str().unwrap().to_owned();
    let (_, public_key) = get(&client, &server.url, &token, "/v1/log/public-key");
    let verifier = NoteVerifier::parse(public_key.trim()).unwrap();

    let mut acknowledged = BTreeSet::new();
    let mut refused = BTreeSet::new();
    let mut last_note = String::new();
    let mut slugs = BTreeSet::new();
    let mut serial = 0;
    // Fill the disk: every write is acknowledged until the first refusal.
    while refused.is_empty() {
        assert!(serial < 2_000, "the file size limit was never reached");
        let name = format!("area-{serial}");
        let (status, body) = post(
            &client,
            &server.url,
            &token,
            &big_area(&name, f64::from(serial % 300)),
        );
        match status {
            201 => {
                acknowledged.insert(name);
                last_note = body["receipt"]["checkpoint"].as_str().unwrap().to_owned();
            }
            503 => {
                slugs.insert(body["type"].as_str().unwrap().to_owned());
                assert!(
                    body["detail"].as_str().unwrap().contains("nothing was changed"),
                    "{body}"
                );
                refused.insert(name);
            }
            other => panic!("unexpected {other}: {body}"),
        }
        serial += 1;
    }
    let filled_after = acknowledged.len();
    // The disk stays full: every further write is refused, reads work.
    for _ in 0..10 {
        let name = format!("area-{serial}");
        let (status, body) = post(
            &client,
            &server.url,
            &token,
            &big_area(&name, f64::from(serial % 300)),
        );
        assert_eq!(status, 503, "a write was acknowledged on a full disk: {body}");
        slugs.insert(body["type"].as_str().unwrap().to_owned());
        refused.insert(name);
        serial += 1;
        assert_eq!(
            names(&client, &server.url, &token),
            acknowledged,
            "reads answer what was acknowledged"
        );
    }
    let (status, note) = get(&client, &server.url, &token, "/v1/log/checkpoint");
    assert_eq!(status, 200);
    assert_eq!(note, last_note, "nothing was logged on the full disk");

    // Space is freed: the same process takes writes again.
    let lifted = Command::new("prlimit")
        .args(["--pid", &server.child.id().to_string(), "--fsize=unlimited"])
        .status()
        .unwrap();
    assert!(lifted.success(), "prlimit could not lift the limit");
    let mut retried = 0;
    loop {
        let name = format!("area-{serial}");
        let (status, body) = post(&client, &server.url, &token, &big_area(&name, 1.0));
        serial += 1;
        match status {
            201 => {
                acknowledged.insert(name);
                break;
            }
            503 => {
                refused.insert(name);
                retried += 1;
                assert!(retried < 200, "writes never came back: {body}");
                std::thread::sleep(Duration::from_millis(25));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(names(&client, &server.url, &token), acknowledged);
    assert_grew(&client, &server.url, &token, &verifier, &last_note);

    // And what is on disk is exactly what was acknowledged.
    drop(server);
    let server = serve(dir.path(), None);
    let on_disk = names(&client, &server.url, &token);
    assert_eq!(on_disk, acknowledged);
    assert!(on_disk.is_disjoint(&refused));
    assert_grew(&client, &server.url, &token, &verifier, &last_note);
    println!(
        "disk full (RLIMIT_FSIZE {} KiB): {filled_after} writes acknowledged before the disk filled, {} refused with 503 \
         ({}), 0 refused writes on disk, writes back {} retries after the limit was lifted",
        limit_blocks / 2,
        refused.len(),
        slugs.into_iter().collect::<Vec<_>>().join(", "),
        retried
    );
}
