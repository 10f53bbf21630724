//! End to end with a real TAK client: `deconflict serve --cot-listen`,
//! `deconflict party add --tak-dir` issuing the certificate, and pytak (the
//! PyPI client, `crates/tak/tests/pytak/tak_client.py`) sending its unit's
//! positions over TLS with it. Another party's unit, reported over HTTP,
//! is 700 m away at the same height: both parties must get `proximity` on
//! their event streams within a second of the report, and the TAK client
//! must receive the CoT alarm.
//!
//! Needs `python3` with pytak (`python3 -m pip install pytak`); without it
//! the test says SKIPPED loudly and passes. CI installs pytak.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{deconflict_command, listening_url, spawn_until, Served};

fn pytak_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pytak"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The running server and the address of its CoT listener.
fn serve(data: &Path) -> (Served, String) {
    let mut command = deconflict_command();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cot-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("DECONFLICT_DATA", data)
        .stderr(Stdio::null());
    const COT: &str = "CoT over TLS (client certificates) on ";
    let (child, lines) = spawn_until(command, |line| line.contains(COT))
        .unwrap_or_else(|_| panic!("the server says where CoT listens"));
    let cot = lines
        .iter()
        .find_map(|line| line.split_once(COT).map(|(_, addr)| addr.to_owned()));
    let url = listening_url(&lines).expect("the server says where it listens");
    (
        Served { child, url },
        cot.expect("the server says where CoT listens"),
    )
}

/// Reads a party's SSE stream on a thread: `(type, data, when)` per event.
fn events(url: &str, token: &str) -> mpsc::Receiver<(String, Value, Instant)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    let response = client
        .get(format!("{url}/v1/events"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert!(response.status().is_success());
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kind = String::new();
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if let Some(k) = line.strip_prefix("event:") {
                kind = k.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                let data = serde_json::from_str(d.trim()).unwrap_or(Value::Null);
                if send.send((kind.clone(), data, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

fn expect(
    events: &mpsc::Receiver<(String, Value, Instant)>,
    kind: &str,
    within: Duration,
) -> (Value, Instant) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok((k, data, at)) if k == kind => return (data, at),
            Ok(_) => {}
            Err(_) => panic!("no {kind} event within {within:?}"),
        }
    }
}

fn field(stdout: &str, name: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
}

#[test]
fn pytak_over_tls_with_the_issued_certificate_gets_and_causes_alerts() {
    if !pytak_available() {
        // CI installs pytak and sets this, so there the test cannot skip.
        assert!(
            std::env::var_os("DECONFLICT_REQUIRE_CLIENTS").is_none_or(|v| v != "1"),
            "python3 with pytak is required (DECONFLICT_REQUIRE_CLIENTS=1): python3 -m pip install pytak"
        );
        eprintln!(
            "\n\n*** SKIPPED the pytak end-to-end test: python3 with pytak is not installed.\n\
             *** Install it with: python3 -m pip install pytak\n\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (served, cot) = serve(&data);
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let admin = admin.trim();

    // The wing's TAK certificate, written by `party add --tak-dir`.
    let tak_dir = dir.path().join("wing-tak");
    let added = Command::new(env!("CARGO_BIN_EXE_deconflict"))
        .args(["party", "add", "Air Wing", "--kind", "military", "--tak-dir"])
        .arg(&tak_dir)
        .args(["--server", &served.url, "--token", admin])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&added.stdout).into_owned();
    assert!(
        added.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let wing: u64 = field(&stdout, "id").parse().unwrap();
    let wing_token = field(&stdout, "token");
    let cert = PathBuf::from(field(&stdout, "tak certificate"));
    let key = PathBuf::from(field(&stdout, "tak key"));
    let ca = PathBuf::from(field(&stdout, "tak ca"));

    let http = reqwest::blocking::Client::new();
    let red: Value = http
        .post(format!("{}/v1/parties", served.url))
        .bearer_auth(admin)
        .json(&json!({"name": "Red", "kind": "military"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let red_token = red["token"].as_str().unwrap().to_owned();
    let wing_events = events(&served.url, &wing_token);
    let red_events = events(&served.url, &red_token);

    // Red's aircraft hovers at 11.008 E 48.004 N, 504 m: pytak's first
    // position (11.0 E 48.0 N, 500 m) is about 700 m from it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let time = deconflict_formats::format_rfc3339(deconflict_engine::Timestamp(now));
    let posted = http
        .post(format!("{}/v1/tracks", served.url))
        .bearer_auth(&red_token)
        .json(&json!({"reports": [{"uid": "red-1", "time": time, "lon": 11.008, "lat": 48.004, "alt_m": 504.0, "speed_mps": 0.0}]}))
        .send()
        .unwrap();
    assert_eq!(posted.status().as_u16(), 202);

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tak/tests/pytak/tak_client.py");
    let client = Command::new("python3")
        .arg(&script)
        .env("COT_URL", format!("tls://{cot}"))
        .env("PYTAK_TLS_CLIENT_CERT", &cert)
        .env("PYTAK_TLS_CLIENT_KEY", &key)
        .env("PYTAK_TLS_CLIENT_CAFILE", &ca)
        .env("UID_PREFIX", "wing")
        .env("COUNT", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");

    // pytak's start-up takes its time; the alert must follow its report
    // within a second on both streams.
    let (alert, wing_at) = expect(&wing_events, "proximity", Duration::from_secs(30));
    let (red_alert, red_at) = expect(&red_events, "proximity", Duration::from_secs(2));
    assert_eq!(alert["id"], red_alert["id"]);
    assert_eq!(alert["state"], "open");
    let uids: Vec<&str> = alert["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_str().unwrap())
        .collect();
    assert!(
        uids.contains(&"red-1") && uids.iter().any(|u| u.starts_with("wing-")),
        "{alert}"
    );
    let parties: Vec<u64> = alert["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["party"].as_u64().unwrap())
        .collect();
    assert!(parties.contains(&wing), "the certificate's party: {alert}");
    assert!(wing_at.max(red_at) - wing_at.min(red_at) < Duration::from_secs(1));

    let output = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pytak: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("ALERT_UID=deconflict-alert-{}", alert["id"])),
        "{stdout}"
    );
    assert!(stdout.contains("ALERT_TYPE=b-a-o-c"), "{stdout}");
    let remarks = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ALERT_REMARKS="))
        .unwrap_or_default();
    assert!(remarks.contains("wing-") && remarks.contains("red-1"), "{stdout}");
}
