//! End to end with the real pytak client (PyPI `pytak`): it connects over
//! TLS with the credentials the CA issued (PEM files, or the PKCS#12 bundle
//! ATAK would import), sends CoT positions that must arrive parsed and
//! tagged with the certificate's party, and must receive the alert the
//! server sends back.
//!
//! Needs `python3` with pytak, and `cryptography` for the PKCS#12 test
//! (`python3 -m pip install pytak cryptography`). Without them a test prints
//! a loud SKIPPED message and passes, so that a machine without Python can
//! still run the suite; CI installs them.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use deconflict_engine::{PartyId, Timestamp};
use deconflict_formats::{CotAlert, CotAlertKind};
use deconflict_tak::{
    CertificateAuthority, ClientCredentials, Pkcs12Encryption, TakConfig, TakLimits, TakListener,
    TakTransport,
};
use tokio::sync::mpsc;

const POSITIONS: usize = 5;

fn python_has(module: &str) -> bool {
    let available = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        // CI installs the clients and sets this, so there the test cannot skip.
        assert!(
            std::env::var_os("DECONFLICT_REQUIRE_CLIENTS").is_none_or(|v| v != "1"),
            "python3 module {module} is required (DECONFLICT_REQUIRE_CLIENTS=1): python3 -m pip install pytak cryptography"
        );
        eprintln!(
            "\n\n*** SKIPPED pytak end-to-end test: python3 module {module} is not installed.\n\
             *** Install it with: python3 -m pip install pytak cryptography\n\n"
        );
    }
    available
}

/// Runs the pytak client with `credentials_env` for party 5's credentials
/// and checks what it sends and receives.
async fn pytak_round_trip(
    ca: &CertificateAuthority,
    credentials_env: Vec<(&str, PathBuf)>,
    password: Option<&str>,
) {
    let server_credentials = ca.issue_server(&[]).unwrap();
    let (events, mut received) = mpsc::channel(64);
    let listener = TakListener::bind(
        TakConfig {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            transport: TakTransport::Tls(ca.tls_server_config(&server_credentials).unwrap()),
            limits: TakLimits::default(),
            revocations: Default::default(),
        },
        events,
    )
    .await
    .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pytak/tak_client.py");
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .env(
            "COT_URL",
            format!("tls://127.0.0.1:{}", listener.local_addr().port()),
        )
        .env("UID_PREFIX", "wing")
        .env("COUNT", POSITIONS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, path) in credentials_env {
        command.env(key, path);
    }
    if let Some(password) = password {
        command.env("PYTAK_TLS_CLIENT_PASSWORD", password);
    }
    let child = command.spawn().expect("python3 runs");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output());

    for index in 0..POSITIONS {
        let inbound = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .expect("pytak's positions arrive")
            .unwrap();
        assert_eq!(inbound.party, PartyId(5));
        let event = inbound.event;
        assert_eq!(event.uid, format!("wing-{index}"));
        assert_eq!(event.event_type, "a-f-A-M-F-Q");
        assert_eq!(
            event.callsign.as_deref(),
            Some(format!("wing-{index}-callsign").as_str())
        );
        // pytak writes lat/lon with four decimals.
        assert!(
            (event.lat_deg - (48.0 + index as f64 * 0.001)).abs() < 1e-4,
            "{}",
            event.lat_deg
        );
        assert!(
            (event.lon_deg - (11.0 + index as f64 * 0.002)).abs() < 1e-4,
            "{}",
            event.lon_deg
        );
        assert_eq!(event.hae_m, Some(500.0 + index as f64));
        assert_eq!((event.ce_m, event.le_m), (Some(10.0), None));
        assert_eq!(event.speed_mps, Some(50.0 + index as f64));
        assert_eq!(event.course_deg, Some((index * 10 % 360) as f64));
        assert!(event.stale > event.start);
    }

    let alert = CotAlert {
        uid: "deconflict-alert-7".to_owned(),
        kind: CotAlertKind::Custom,
        title: "PROXIMITY".to_owned(),
        text: "wing-4 & red-1 are 800 m apart <1 km>".to_owned(),
        lat_deg: 48.004,
        lon_deg: 11.008,
        hae_m: Some(504.0),
        time: Timestamp(1_772_359_200_000),
        stale: Timestamp(1_772_359_320_000),
        subject_uid: Some("wing-4".to_owned()),
    };
    let delivery = listener
        .outbound()
        .send_to_party(PartyId(5), alert.to_xml().into_bytes().into());
    assert_eq!(delivery.queued, 1);

    let output = tokio::time::timeout(Duration::from_secs(40), output)
        .await
        .expect("pytak finishes")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pytak client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ALERT_UID=deconflict-alert-7"), "{stdout}");
    assert!(stdout.contains("ALERT_TYPE=b-a-o-c"), "{stdout}");
    assert!(
        stdout.contains("ALERT_REMARKS=wing-4 & red-1 are 800 m apart <1 km>"),
        "{stdout}"
    );
    listener.shutdown().await;
}

fn air_wing(ca: &CertificateAuthority) -> ClientCredentials {
    ca.issue_client(PartyId(5), "Air Wing").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytak_with_pem_files_sends_positions_and_receives_an_alert() {
    if !python_has("pytak") {
        return;
    }
    let ca = CertificateAuthority::ephemeral().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = air_wing(&ca).write_pem_files(dir.path(), "air-wing").unwrap();
    let env = vec![
        ("PYTAK_TLS_CLIENT_CERT", files.cert),
        ("PYTAK_TLS_CLIENT_KEY", files.key),
        ("PYTAK_TLS_CLIENT_CAFILE", files.ca),
    ];
    pytak_round_trip(&ca, env, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytak_with_a_pkcs12_bundle_sends_positions_and_receives_an_alert() {
    if !python_has("pytak") || !python_has("cryptography") {
        return;
    }
    let ca = CertificateAuthority::ephemeral().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let credentials = air_wing(&ca);
    let bundle = dir.path().join("air-wing.p12");
    std::fs::write(
        &bundle,
        credentials
            .to_pkcs12("atakatak", Pkcs12Encryption::default())
            .unwrap(),
    )
    .unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let env = vec![
        ("PYTAK_TLS_CLIENT_CERT", bundle),
        ("PYTAK_TLS_CLIENT_CAFILE", ca_file),
    ];
    pytak_round_trip(&ca, env, Some("atakatak")).await;
}
