//! The audit log against tampering: a party writes entries and runs
//! `deconflict log verify` (its checkpoint is saved); then, with the
//! server down, the stored log is edited, cut, reordered or truncated in
//! SQLite, in two threat models:
//!
//! (a) an honest server finds its own store tampered: it refuses to start;
//! (b) a malicious operator holding the signing key rebuilds the tree over
//!     the tampered leaves and signs a checkpoint of it, so the server
//!     starts: the party's `log verify` with its saved checkpoint fails,
//!     naming the check.
//!
//! Also: `receipt verify` offline on the server's answers. Run with
//! `--nocapture` for the "tamper cases detected" summary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deconflict_audit::{sign_checkpoint, Checkpoint, NoteSigner, Tree};
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use common::{deconflict_command, listening_url, spawn_until, Served};

/// Starts `deconflict serve` on port 0 over `data`: the running server, or
/// its exit status and stderr when it refuses to start.
fn start(data: &Path) -> Result<Served, (Option<i32>, String)> {
    // stderr goes to a file: a pipe nobody reads could fill and block.
    let stderr_path = data.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut command = deconflict_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("DECONFLICT_DATA", data)
        .stderr(stderr);
    match spawn_until(command, |line| line.starts_with("listening on ")) {
        Ok((child, lines)) => Ok(Served {
            child,
            url: listening_url(&lines).expect("the line names the address"),
        }),
        Err(mut child) => {
            let status = child.wait().expect("the server exits");
            Err((status.code(), std::fs::read_to_string(&stderr_path).unwrap()))
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn deconflict(args: &[&str], server: &str, token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deconflict"))
        .args(args)
        .env("DECONFLICT_SERVER", server)
        .env("DECONFLICT_TOKEN", token)
        .output()
        .expect("the binary runs")
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Exit 1 with one line on stderr; returns the line.
fn fails(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {stderr}",
        text(&output.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

fn token_of(output: &Output) -> String {
    ok(output)
        .lines()
        .find_map(|l| l.strip_prefix("token: ").map(str::to_owned))
        .expect("a token")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The world every case starts from: a stopped server's data directory
/// with a few entries, and blue's checkpoint (and key) saved by `log verify`.
struct Baseline {
    _dir: tempfile::TempDir,
    data: PathBuf,
    checkpoint: PathBuf,
    blue_token: String,
    /// The log index of blue's first activity.
    blue_entry: u64,
}

fn baseline() -> Baseline {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data).expect("a fresh server starts");
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let blue_token = token_of(&deconflict(
        &["party", "add", "blue", "--kind", "military"],
        &server.url,
        &admin,
    ));
    let red_token = token_of(&deconflict(
        &["party", "add", "red", "--kind", "humanitarian"],
        &server.url,
        &admin,
    ));
    let mut blue_entry = None;
    for (name, token, lon) in [("blue", &blue_token, 41.400), ("red", &red_token, 41.403)] {
        let features: Vec<Value> = (0..2)
            .map(|i| {
                let lon = lon + f64::from(i) * 0.5;
                json!({"type": "Feature", "id": format!("{name}-{i}"),
                    "geometry": {"type": "LineString", "coordinates": [[lon, 37.0], [lon, 37.1]]},
                    "properties": {"kind": "patrol", "start": "2031-05-01T08:00:00Z",
                        "end": "2031-05-01T10:00:00Z", "corridor_m": 400}})
            })
            .collect();
        let file = dir.path().join(format!("{name}.geojson"));
        let collection = json!({"type": "FeatureCollection", "features": features});
        std::fs::write(&file, collection.to_string()).unwrap();
        let answer = ok(&deconflict(
            &["submit", file.to_str().unwrap(), "--format", "json"],
            &server.url,
            token,
        ));
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let first = &answer["results"][0]["result"];
        if name == "blue" {
            blue_entry = first["receipt"]["log_index"].as_u64();
            std::fs::write(dir.path().join("answer.json"), first.to_string()).unwrap();
            std::fs::write(dir.path().join("receipt.json"), first["receipt"].to_string()).unwrap();
        }
    }

    let checkpoint = dir.path().join("blue.checkpoint");
    let first = ok(&deconflict(
        &["log", "verify", "--checkpoint", checkpoint.to_str().unwrap()],
        &server.url,
        &blue_token,
    ));
    assert!(first.contains("trusted on first use"), "{first}");
    // Blue's own: its party, its two activities, the two conflicts with red.
    assert!(first.contains("5 of them yours"), "{first}");
    // Unchanged log: the second run checks growth from the saved head.
    let second = ok(&deconflict(
        &["log", "verify", "--checkpoint", checkpoint.to_str().unwrap()],
        &server.url,
        &blue_token,
    ));
    assert!(second.contains("consistent with the saved size"), "{second}");
    drop(server);
    Baseline {
        data,
        checkpoint,
        blue_token,
        blue_entry: blue_entry.expect("blue's receipt"),
        _dir: dir,
    }
}

#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// A leaf's content changed, its leaf hash recomputed.
    Edit,
    /// A leaf removed, the later ones moved up.
    Delete,
    /// Two adjacent leaves swapped.
    Reorder,
    /// The last two leaves removed.
    Truncate,
}

fn log_size(conn: &Connection) -> u64 {
    conn.query_row("SELECT COUNT(*) FROM log_leaves", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// Changes the stored leaves as a careless tamperer would: leaves, their
/// hashes and their leaf nodes, not the tree above or the checkpoints. (A
/// leaf's readers are a column of its row since migration 7: they move
/// with it.)
fn tamper(conn: &Connection, how: Tamper, blue_entry: u64) {
    // A tamperer is not held by the schema's foreign keys.
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let i = |n: u64| n as i64;
    match how {
        Tamper::Edit => {
            let leaf: Vec<u8> = conn
                .query_row(
                    "SELECT leaf FROM log_leaves WHERE idx = ?1",
                    [i(blue_entry)],
                    |r| r.get(0),
                )
                .unwrap();
            let edited = text(&leaf).replacen("37.1", "37.2", 1).into_bytes();
            assert_ne!(edited, leaf, "the edit changes the leaf");
            let hash = deconflict_audit::leaf_hash(&edited).0.to_vec();
            conn.execute(
                "UPDATE log_leaves SET leaf = ?2, leaf_hash = ?3 WHERE idx = ?1",
                params![i(blue_entry), edited, hash],
            )
            .unwrap();
            conn.execute(
                "UPDATE log_nodes SET hash = ?2 WHERE level = 0 AND idx = ?1",
                params![i(blue_entry), hash],
            )
            .unwrap();
        }
        Tamper::Delete => {
            let k = i(blue_entry);
            conn.execute("DELETE FROM log_leaves WHERE idx = ?1", [k])
                .unwrap();
            // Move the later ones up, lowest first (the key stays unique).
            let later: Vec<i64> = conn
                .prepare("SELECT idx FROM log_leaves WHERE idx > ?1 ORDER BY idx")
                .unwrap()
                .query_map([k], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for idx in later {
                conn.execute("UPDATE log_leaves SET idx = ?1 - 1 WHERE idx = ?1", [idx])
                    .unwrap();
            }
            rewrite_leaf_nodes(conn);
        }
        Tamper::Reorder => {
            let (a, b) = (i(blue_entry), i(blue_entry) + 1);
            for (from, to) in [(a, -1), (b, a), (-1, b)] {
                conn.execute("UPDATE log_leaves SET idx = ?2 WHERE idx = ?1", [from, to])
                    .unwrap();
            }
            rewrite_leaf_nodes(conn);
        }
        Tamper::Truncate => {
            let keep = i(log_size(conn) - 2);
            conn.execute("DELETE FROM log_leaves WHERE idx >= ?1", [keep])
                .unwrap();
            conn.execute("DELETE FROM log_nodes WHERE level = 0 AND idx >= ?1", [keep])
                .unwrap();
        }
    }
}

/// Level-0 nodes equal to the (tampered) leaf hashes.
fn rewrite_leaf_nodes(conn: &Connection) {
    conn.execute("DELETE FROM log_nodes WHERE level = 0", []).unwrap();
    conn.execute(
        "INSERT INTO log_nodes (level, idx, hash) SELECT 0, idx, leaf_hash FROM log_leaves",
        [],
    )
    .unwrap();
}

/// What an operator with the signing key does to make the server start:
/// every node rebuilt from the tampered leaves, one fresh signed head.
fn resign(conn: &Connection, data: &Path) {
    let signer = NoteSigner::parse(std::fs::read_to_string(data.join("log.key")).unwrap().trim()).unwrap();
    let mut tree = Tree::new();
    let mut nodes = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT leaf FROM log_leaves ORDER BY idx").unwrap();
        let leaves = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        for leaf in leaves {
            nodes.extend(tree.append(&leaf.unwrap()).unwrap().nodes);
        }
    }
    conn.execute("DELETE FROM log_nodes", []).unwrap();
    for (id, hash) in nodes {
        conn.execute(
            "INSERT INTO log_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
            params![id.level, id.index as i64, &hash.0[..]],
        )
        .unwrap();
    }
    let note = sign_checkpoint(&Checkpoint::of_tree(signer.name(), &tree), &signer).unwrap();
    conn.execute("DELETE FROM log_checkpoints", []).unwrap();
    conn.execute(
        "INSERT INTO log_checkpoints (size, note, at_ms) VALUES (?1, ?2, 0)",
        params![tree.size() as i64, note],
    )
    .unwrap();
}

/// A copy of the baseline (data directory, checkpoint and key) for one case.
fn case_copy(base: &Baseline) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&base.data, &data);
    let checkpoint = dir.path().join("blue.checkpoint");
    std::fs::copy(&base.checkpoint, &checkpoint).unwrap();
    let key = |p: &Path| PathBuf::from(format!("{}.key", p.display()));
    std::fs::copy(key(&base.checkpoint), key(&checkpoint)).unwrap();
    (dir, data, checkpoint)
}

#[test]
fn tampering_is_detected_in_both_threat_models() {
    let base = baseline();
    let cases = [Tamper::Edit, Tamper::Delete, Tamper::Reorder, Tamper::Truncate];
    let (mut detected, mut total) = (0, 0);

    // (a) The honest server refuses its tampered store.
    for how in cases {
        let (_dir, data, _) = case_copy(&base);
        tamper(
            &Connection::open(data.join("deconflict.sqlite")).unwrap(),
            how,
            base.blue_entry,
        );
        total += 1;
        match start(&data) {
            Ok(_) => panic!("(a) {how:?}: the server started on a tampered log"),
            Err((code, stderr)) => {
                assert_ne!(code, Some(0), "{stderr}");
                assert!(
                    stderr.contains("does not match its latest signed checkpoint"),
                    "(a) {how:?}: {stderr}"
                );
                println!("(a) {how:?}: refused to start: {}", stderr.trim());
                detected += 1;
            }
        }
    }
    // (a') Only a leaf's bytes changed, its hash and the tree left alone.
    {
        let (_dir, data, _) = case_copy(&base);
        let conn = Connection::open(data.join("deconflict.sqlite")).unwrap();
        conn.execute(
            "UPDATE log_leaves SET leaf = CAST(replace(leaf, '37.1', '37.2') AS BLOB) WHERE idx = ?1",
            [base.blue_entry as i64],
        )
        .unwrap();
        drop(conn);
        total += 1;
        let (_, stderr) = start(&data).err().expect("(a) bytes only: refused");
        assert!(
            stderr.contains(&format!("leaf {}: its bytes do not hash", base.blue_entry)),
            "{stderr}"
        );
        println!("(a) edit bytes only: refused to start: {}", stderr.trim());
        detected += 1;
    }

    // (b) The operator re-signs; the party's saved checkpoint catches it.
    for how in cases {
        let (_dir, data, checkpoint) = case_copy(&base);
        {
            let conn = Connection::open(data.join("deconflict.sqlite")).unwrap();
            tamper(&conn, how, base.blue_entry);
            resign(&conn, &data);
        }
        total += 1;
        let server =
            start(&data).unwrap_or_else(|e| panic!("(b) {how:?}: the re-signed server starts: {e:?}"));
        let saved_before = std::fs::read_to_string(&checkpoint).unwrap();
        let line = fails(&deconflict(
            &["log", "verify", "--checkpoint", checkpoint.to_str().unwrap()],
            &server.url,
            &base.blue_token,
        ));
        assert!(line.contains("consistency check"), "(b) {how:?}: {line}");
        assert_eq!(
            std::fs::read_to_string(&checkpoint).unwrap(),
            saved_before,
            "a failed run keeps the saved checkpoint"
        );
        println!("(b) {how:?}: log verify: {}", line.trim());
        detected += 1;
    }
    // (b') The same, and the operator appends entries so the new head is
    // larger than the saved one: only the consistency proof can tell.
    for how in cases {
        let (_dir, data, checkpoint) = case_copy(&base);
        {
            let conn = Connection::open(data.join("deconflict.sqlite")).unwrap();
            tamper(&conn, how, base.blue_entry);
            for _ in 0..3 {
                conn.execute(
                    "INSERT INTO log_leaves (idx, leaf, leaf_hash) \
                     SELECT (SELECT MAX(idx) + 1 FROM log_leaves), leaf, leaf_hash FROM log_leaves WHERE idx = 0",
                    [],
                )
                .unwrap();
            }
            resign(&conn, &data);
        }
        total += 1;
        let server =
            start(&data).unwrap_or_else(|e| panic!("(b') {how:?}: the re-signed server starts: {e:?}"));
        let line = fails(&deconflict(
            &["log", "verify", "--checkpoint", checkpoint.to_str().unwrap()],
            &server.url,
            &base.blue_token,
        ));
        assert!(
            line.contains("consistency check: from the saved size"),
            "(b') {how:?}: {line}"
        );
        println!("(b') {how:?} then grown: log verify: {}", line.trim());
        detected += 1;
    }

    // (c) The store edited under the running server (no restart, no
    // re-signing): the entries no longer match what was signed.
    let (_dir, data, checkpoint) = case_copy(&base);
    let server = start(&data).expect("the untouched copy starts");
    let conn = Connection::open(data.join("deconflict.sqlite")).unwrap();
    let k = base.blue_entry as i64;
    let edit_bytes = |conn: &Connection| {
        conn.execute(
            "UPDATE log_leaves SET leaf = CAST(replace(leaf, '37.1', '37.2') AS BLOB) WHERE idx = ?1",
            [k],
        )
        .unwrap();
    };
    let rehash = |conn: &Connection| {
        let leaf: Vec<u8> = conn
            .query_row("SELECT leaf FROM log_leaves WHERE idx = ?1", [k], |r| r.get(0))
            .unwrap();
        let hash = deconflict_audit::leaf_hash(&leaf).0.to_vec();
        conn.execute(
            "UPDATE log_leaves SET leaf_hash = ?2 WHERE idx = ?1",
            params![k, hash],
        )
        .unwrap();
    };
    type Step<'a> = &'a dyn Fn(&Connection);
    let steps: [(&str, Step, String); 2] = [
        ("leaf bytes", &edit_bytes, format!("entry {k}: leaf hash check")),
        ("leaf hash to match", &rehash, "saved root check".to_owned()),
    ];
    for (what, step, check) in steps {
        step(&conn);
        total += 1;
        let line = fails(&deconflict(
            &["log", "verify", "--checkpoint", checkpoint.to_str().unwrap()],
            &server.url,
            &base.blue_token,
        ));
        assert!(line.contains(&check), "(c) {what}: {line}");
        println!("(c) {what} edited live: log verify: {}", line.trim());
        detected += 1;
    }
    drop(server);

    println!("tamper cases detected: {detected}/{total}");
    assert_eq!(detected, total);
}

#[test]
fn receipts_verify_offline_and_keys_are_pinned() {
    let base = baseline();
    let dir = base.checkpoint.parent().unwrap();
    let key = std::fs::read_to_string(format!("{}.key", base.checkpoint.display())).unwrap();
    let key = key.trim();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_deconflict"))
            .args(args)
            .output()
            .expect("the binary runs")
    };
    let answer = dir.join("answer.json");
    let bare = dir.join("receipt.json");
    for receipt in [&answer, &bare] {
        let out = ok(&run(&[
            "receipt",
            "verify",
            receipt.to_str().unwrap(),
            "--public-key",
            key,
        ]));
        assert!(out.contains(&format!("entry {} ", base.blue_entry)), "{out}");
    }
    // The leaf as exact bytes and as base64, and a wrong leaf.
    let conn = Connection::open(base.data.join("deconflict.sqlite")).unwrap();
    let leaf: Vec<u8> = conn
        .query_row(
            "SELECT leaf FROM log_leaves WHERE idx = ?1",
            [base.blue_entry as i64],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let raw = dir.join("leaf.json");
    std::fs::write(&raw, &leaf).unwrap();
    let as_base64 = dir.join("leaf.b64");
    use base64::Engine as _;
    std::fs::write(
        &as_base64,
        base64::engine::general_purpose::STANDARD.encode(&leaf),
    )
    .unwrap();
    for leaf in [&raw, &as_base64] {
        let out = ok(&run(&[
            "receipt",
            "verify",
            bare.to_str().unwrap(),
            "--public-key",
            key,
            "--leaf",
            leaf.to_str().unwrap(),
        ]));
        assert!(out.contains("the leaf's bytes hash to it"), "{out}");
    }
    let wrong = dir.join("wrong.json");
    std::fs::write(&wrong, text(&leaf).replacen("37.1", "37.2", 1)).unwrap();
    let line = fails(&run(&[
        "receipt",
        "verify",
        bare.to_str().unwrap(),
        "--public-key",
        key,
        "--leaf",
        wrong.to_str().unwrap(),
    ]));
    assert!(line.contains("leaf check"), "{line}");

    // Another key, a changed index, a broken proof.
    let other = NoteSigner::from_seed(key.split('+').next().unwrap(), &[9; 32])
        .unwrap()
        .verifier()
        .to_string();
    let line = fails(&run(&[
        "receipt",
        "verify",
        bare.to_str().unwrap(),
        "--public-key",
        &other,
    ]));
    assert!(line.contains("checkpoint signature check"), "{line}");
    let mut receipt: Value = serde_json::from_str(&std::fs::read_to_string(&bare).unwrap()).unwrap();
    receipt["log_index"] = json!(base.blue_entry + 1);
    let moved = dir.join("moved.json");
    std::fs::write(&moved, receipt.to_string()).unwrap();
    let line = fails(&run(&[
        "receipt",
        "verify",
        moved.to_str().unwrap(),
        "--public-key",
        key,
    ]));
    assert!(line.contains("inclusion proof check"), "{line}");

    // log verify: a pinned key that is not the server's, then a changed
    // server key against the key trusted on first use.
    let server = start(&base.data).expect("the untouched store starts");
    let line = fails(&deconflict(
        &["log", "verify", "--public-key", &other],
        &server.url,
        &base.blue_token,
    ));
    assert!(line.contains("key check"), "{line}");
    let out = ok(&deconflict(
        &["log", "verify", "--public-key", key],
        &server.url,
        &base.blue_token,
    ));
    assert!(out.contains("log verified"), "{out}");
    std::fs::write(format!("{}.key", base.checkpoint.display()), format!("{other}\n")).unwrap();
    let line = fails(&deconflict(
        &["log", "verify", "--checkpoint", base.checkpoint.to_str().unwrap()],
        &server.url,
        &base.blue_token,
    ));
    assert!(line.contains("the log key changed"), "{line}");
}
