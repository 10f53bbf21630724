//! `deconflict serve` as an operator runs it, and the client commands
//! against it.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use common::{deconflict_command, Served};

fn serve(data: &Path) -> Served {
    let mut command = deconflict_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("DECONFLICT_DATA", data)
        .stderr(Stdio::null());
    Served::start(command)
}

fn deconflict(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deconflict"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn field(output: &Output, name: &str) -> String {
    text(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} in {}", text(&output.stdout)))
}

fn patrols(dir: &Path, name: &str, lon: f64, far_lon: f64) -> String {
    let path = dir.join(format!("{name}.geojson"));
    let feature = |id: &str, lon: f64| {
        json!({"type": "Feature", "id": id,
            "geometry": {"type": "LineString", "coordinates": [[lon, 37.0], [lon, 37.1]]},
            "properties": {"kind": "patrol", "start": "2031-05-01T08:00:00Z", "end": "2031-05-01T10:00:00Z", "corridor_m": 400}})
    };
    let collection = json!({"type": "FeatureCollection", "features": [feature(&format!("{name}-1"), lon), feature(&format!("{name}-far"), far_lon)]});
    std::fs::write(&path, collection.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn serve_party_add_submit_and_check_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = serve(&data);

    #[cfg(unix)]
    for secret in ["admin.token", "log.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(secret)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let env_admin = [
        ("DECONFLICT_SERVER", served.url.as_str()),
        ("DECONFLICT_TOKEN", admin.as_str()),
    ];
    let blue = deconflict(&["party", "add", "blue", "--kind", "military"], &env_admin);
    assert_eq!(blue.status.code(), Some(0), "{}", text(&blue.stderr));
    let blue_token = field(&blue, "token");
    let red = deconflict(
        &[
            "party",
            "add",
            "red",
            "--kind",
            "military",
            "--server",
            &served.url,
            "--token",
            &admin,
        ],
        &[],
    );
    let red_token = field(&red, "token");
    let duplicate = deconflict(&["party", "add", "red", "--kind", "civil"], &env_admin);
    assert_eq!(duplicate.status.code(), Some(1));
    assert_eq!(text(&duplicate.stderr).lines().count(), 1);

    let blue_file = patrols(dir.path(), "blue", 41.400, 42.4);
    let red_file = patrols(dir.path(), "red", 41.403, 43.4);
    let as_blue = [
        ("DECONFLICT_SERVER", served.url.as_str()),
        ("DECONFLICT_TOKEN", blue_token.as_str()),
    ];
    let submitted = deconflict(&["submit", &blue_file], &as_blue);
    assert_eq!(submitted.status.code(), Some(0), "{}", text(&submitted.stderr));
    assert!(
        text(&submitted.stdout).contains("0 conflicts in all."),
        "{}",
        text(&submitted.stdout)
    );

    let as_red = [
        ("DECONFLICT_SERVER", served.url.as_str()),
        ("DECONFLICT_TOKEN", red_token.as_str()),
    ];
    let checked = deconflict(&["check", &red_file, "--format", "json"], &as_red);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
    let doc: Value = serde_json::from_str(&text(&checked.stdout)).unwrap();
    let first = &doc["results"][0]["result"]["conflicts"];
    assert_eq!(first.as_array().unwrap().len(), 1, "{doc:#}");
    // Blue's plan is need-to-know: red learns where and when, not whose.
    assert_eq!(first[0]["activities"][1], Value::Null);
    assert_eq!(doc["results"][1]["result"]["conflicts"], json!([]));
    let table = deconflict(&["check", &red_file], &as_red);
    assert!(
        text(&table.stdout).contains("1 conflict in all."),
        "{}",
        text(&table.stdout)
    );

    // A bad Feature is one line naming the file, the Feature and the field.
    let bad = dir.path().join("bad.geojson");
    std::fs::write(
        &bad,
        json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [41.0, 37.0]},
            "properties": {"kind": "site", "start": "2031-01-01T00:00:00Z", "radius_m": -5}})
        .to_string(),
    )
    .unwrap();
    let refused = deconflict(&["submit", &bad.display().to_string()], &as_red);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("/properties/radius_m"), "{message}");

    // No token: a one-line user error, not a panic.
    let anonymous = deconflict(&["check", &red_file, "--server", &served.url], &[]);
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(text(&anonymous.stderr).contains("DECONFLICT_TOKEN"));
}

#[test]
fn export_writes_what_the_party_may_see_as_geojson_and_kml() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = serve(&data);
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let env_admin = [
        ("DECONFLICT_SERVER", served.url.as_str()),
        ("DECONFLICT_TOKEN", admin.as_str()),
    ];
    let blue_token = field(
        &deconflict(&["party", "add", "blue", "--kind", "military"], &env_admin),
        "token",
    );
    let red_token = field(
        &deconflict(&["party", "add", "red", "--kind", "military"], &env_admin),
        "token",
    );
    let as_blue = [
        ("DECONFLICT_SERVER", served.url.as_str()),
        ("DECONFLICT_TOKEN", blue_token.as_str()),
    ];
    let as_red = [
        ("DECONFLICT_SERVER", served.url.as_str()),
        ("DECONFLICT_TOKEN", red_token.as_str()),
    ];
    let submitted = deconflict(&["submit", &patrols(dir.path(), "blue", 41.400, 42.4)], &as_blue);
    assert_eq!(submitted.status.code(), Some(0), "{}", text(&submitted.stderr));
    let submitted = deconflict(&["submit", &patrols(dir.path(), "red", 41.403, 43.4)], &as_red);
    assert_eq!(submitted.status.code(), Some(0), "{}", text(&submitted.stderr));

    // GeoJSON on standard output: red's two patrols and the conflict, with
    // blue's need-to-know side null; nothing of blue's plans.
    let exported = deconflict(&["export"], &as_red);
    assert_eq!(exported.status.code(), Some(0), "{}", text(&exported.stderr));
    let doc: Value = serde_json::from_str(&text(&exported.stdout)).unwrap();
    let layer = |name: &str| -> Vec<Value> {
        doc["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["properties"]["layer"] == name)
            .cloned()
            .collect()
    };
    let names: Vec<&str> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["properties"]["name"].as_str())
        .collect();
    assert_eq!(layer("activity").len(), 2, "{names:?}");
    assert!(names
        .iter()
        .all(|n| !n.contains("41.4,") && *n != "patrol at 41.4"));
    let conflicts = layer("conflict");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["properties"]["activities"][0], Value::Null);

    // KML into a file.
    let out = dir.path().join("red.kml");
    let written = deconflict(
        &["export", "--format", "kml", "--out", out.to_str().unwrap()],
        &as_red,
    );
    assert_eq!(written.status.code(), Some(0), "{}", text(&written.stderr));
    let kml = std::fs::read_to_string(&out).unwrap();
    assert!(kml.contains("<kml xmlns=\"http://www.opengis.net/kml/2.2\">"));
    assert_eq!(kml.matches("<Placemark ").count(), 3, "{kml}");

    // A bad query is one line naming the parameter; the file is untouched.
    let refused = deconflict(
        &[
            "export",
            "--format",
            "kml",
            "--bbox",
            "1,2",
            "--out",
            out.to_str().unwrap(),
        ],
        &as_red,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("/query/bbox"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), kml);
}

/// The service runs with mimalloc's purge delay of `main.rs` (set by
/// running itself again in place: the same process, which still serves),
/// unless the operator set one, which is kept.
#[cfg(target_os = "linux")]
#[test]
fn the_service_runs_with_its_allocator_settings_unless_the_operator_sets_them() {
    for (set, expected) in [
        (None, "MIMALLOC_PURGE_DELAY=10000"),
        (Some("-1"), "MIMALLOC_PURGE_DELAY=-1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = deconflict_command();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("DECONFLICT_DATA", dir.path().join("data"))
            .env_remove("MIMALLOC_PURGE_DELAY")
            .stderr(Stdio::null());
        if let Some(value) = set {
            command.env("MIMALLOC_PURGE_DELAY", value);
        }
        let served = Served::start(command);
        let environ = std::fs::read(format!("/proc/{}/environ", served.child.id())).unwrap();
        let settings: Vec<String> = environ
            .split(|&b| b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .filter(|v| v.starts_with("MIMALLOC_"))
            .collect();
        assert_eq!(settings, [expected]);
        let health = get_healthz(&served.url);
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    }
}

/// `GET /healthz` over a plain socket: the served process answers.
#[cfg(target_os = "linux")]
fn get_healthz(url: &str) -> String {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
