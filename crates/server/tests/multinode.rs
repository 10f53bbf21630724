//! Two `serve` nodes on one PostgreSQL database behave as one service
//! (issue 8 part 2): 1,000 concurrent notifications split across both, many
//! of them overlapping activities of other parties, give exactly the
//! conflicts a brute-force comparison of every pair of the final activities
//! finds (none missed at the instant both nodes commit, none twice); both
//! nodes list the same; every receipt, from either node, verifies in one
//! log whose heads never fork; a party's stream on one node sees the
//! conflicts notified through the other; and hotline messages and their
//! acknowledgements reach the parties' streams on whichever node they are
//! connected to.
//!
//! PostgreSQL only (SQLite has one node): skipped with a printed reason
//! without `DECONFLICT_TEST_DATABASE_URL`, failed then under
//! `DECONFLICT_REQUIRE_CLIENTS=1`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sse::Events;
use common::{patrol, start, Backend, Server};
use deconflict_audit::{verify_checkpoint, verify_growth, verify_receipt, Hash, NoteVerifier, Receipt};
use deconflict_engine::{evaluate, Engine, EngineConfig, PartyId};
use deconflict_formats::activity_from_feature;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Submissions, split evenly across the two nodes.
const SUBMISSIONS: usize = 1_000;
/// Requests in flight at once, over both nodes.
const CONCURRENCY: usize = 64;
/// Places far apart (no conflict between them); the activities of one
/// place overlap in space, and in time when their hours meet.
const PLACES: usize = 100;
const PARTIES: usize = 10;

/// A small deterministic generator (xorshift64*): the same load every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Submission `i`: a patrol at one of the places, a few hundred metres
/// from the others there, for some hours of 2030-01-01.
fn feature(rng: &mut Rng, i: usize) -> Value {
    let place = i % PLACES;
    let lon = -60.0 + 1.2 * place as f64 + rng.below(9) as f64 * 0.001;
    let lat = 10.0 + rng.below(5) as f64 * 0.001;
    let start_h = rng.below(20);
    let end_h = start_h + 1 + rng.below(4);
    json!({
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[lon, lat], [lon, lat + 0.05]]},
        "properties": {
            "kind": "patrol", "name": format!("patrol {i}"),
            "start": format!("2030-01-01T{start_h:02}:00:00Z"), "end": format!("2030-01-01T{end_h:02}:00:00Z"),
            "corridor_m": 200, "sharing": "full"
        }
    })
}

/// Node B's data directory: the same database, admin token and log key as
/// node A's (what an operator copies to every node).
fn second_node_dir(a: &Path, b: &Path) {
    std::fs::create_dir_all(b).unwrap();
    for file in ["test-database-url", "admin.token", "log.key"] {
        std::fs::copy(a.join(file), b.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

async fn get(server: &Server, path: &str, token: &str) -> Value {
    let (status, body) = server.call(Method::GET, path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// The open conflicts as a broker lists them: activity pairs, by id.
async fn listed(server: &Server, broker: &str) -> (BTreeSet<(u64, u64)>, Vec<u64>) {
    let body = get(server, "/v1/conflicts?state=open", broker).await;
    let mut pairs = BTreeSet::new();
    let mut ids = Vec::new();
    for conflict in body["conflicts"].as_array().unwrap() {
        let a = conflict["activities"][0].as_u64().unwrap();
        let b = conflict["activities"][1].as_u64().unwrap();
        assert!(
            pairs.insert((a.min(b), a.max(b))),
            "the pair {a}-{b} is open twice: {conflict}"
        );
        ids.push(conflict["id"].as_u64().unwrap());
    }
    (pairs, ids)
}

/// A counter of the process: both nodes run in it, so both nodes' sum.
/// The hashes of a proof answer (`{proof: [base64, …]}`).
fn proof_hashes(answer: &Value) -> Vec<Hash> {
    answer["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

fn metric(name: &str) -> u64 {
    metric_f64(name) as u64
}

/// The same, unrounded (a histogram's `_sum` in seconds).
fn metric_f64(name: &str) -> f64 {
    let text = deconflict_server::routes::ops::prometheus()
        .map(|handle| handle.render())
        .unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_database_find_every_conflict_once_in_one_log() {
    if !common::postgres_available("multinode::two_nodes") {
        return;
    }
    common::with_backend(Backend::Postgres, async {
        let dir = tempfile::tempdir().unwrap();
        let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
        let tweak = |config: &mut deconflict_server::ServerConfig| {
            config.poll_interval_ms = 50;
            config.limits.rate_per_s = 100_000.0;
            config.limits.rate_burst = 100_000.0;
        };
        let a = start(&dir_a, tweak).await;
        second_node_dir(&dir_a, &dir_b);
        let b = start(&dir_b, tweak).await;
        let nodes = [&a, &b];

        // Parties created through both nodes; each node knows the others'
        // tokens from the shared database.
        let mut parties = Vec::new();
        for p in 0..PARTIES {
            let node = nodes[p % 2];
            parties.push(node.party(&format!("party-{p}"), "military").await);
        }
        let (_, broker) = a.party("broker", "broker").await;
        for (id, token) in &parties {
            let me = get(&b, "/v1/me", token).await;
            assert_eq!(me["id"].as_u64(), Some(*id), "{me}");
        }

        // A stream of party 0 on node B, open before the load.
        let (watched, watched_token) = parties[0].clone();
        let mut stream = Events::open(&b, &watched_token).await;

        let mut rng = Rng(0x05ee_d0fd_ec0f_11c7);
        let load: Vec<(usize, Value)> = (0..SUBMISSIONS)
            .map(|i| (rng.below(PARTIES as u64) as usize, feature(&mut rng, i)))
            .collect();
        let started = Instant::now();
        let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = Vec::new();
        for (i, (party, feature)) in load.iter().cloned().enumerate() {
            let node = nodes[i % 2];
            let (url, client) = (node.url.clone(), node.client.clone());
            let token = parties[party].1.clone();
            let gate = Arc::clone(&gate);
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                let response = client
                    .post(format!("{url}/v1/activities"))
                    .bearer_auth(&token)
                    .json(&feature)
                    .send()
                    .await
                    .expect("the node answers");
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                assert_eq!(status, StatusCode::CREATED, "{body}");
                body
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let elapsed = started.elapsed();

        // The truth: every pair of the final activities, compared directly.
        let validator = Engine::new(EngineConfig::default());
        let mut activities = Vec::new();
        let mut ids = BTreeSet::new();
        for ((party, feature), answer) in load.iter().zip(&answers) {
            let id = answer["id"].as_u64().unwrap();
            assert!(ids.insert(id), "activity id {id} given twice");
            let party_id = parties[*party].0;
            let activity = activity_from_feature(feature, PartyId(party_id), "")
                .unwrap()
                .validate(&validator)
                .unwrap();
            activities.push((id, party_id, activity));
        }
        let mut truth = BTreeSet::new();
        for (i, (id_a, _, a)) in activities.iter().enumerate() {
            for (id_b, _, b) in &activities[i + 1..] {
                if evaluate(a, b).is_some() {
                    truth.insert((*id_a.min(id_b), *id_a.max(id_b)));
                }
            }
        }
        let cross_party = activities
            .iter()
            .enumerate()
            .flat_map(|(i, x)| activities[i + 1..].iter().map(move |y| (x, y)))
            .filter(|((id_a, pa, _), (id_b, pb, _))| {
                pa != pb && truth.contains(&(*id_a.min(id_b), *id_a.max(id_b)))
            })
            .count();
        assert!(
            cross_party >= SUBMISSIONS / 2,
            "the load must overlap a lot: {} conflicts, {cross_party} between parties",
            truth.len()
        );

        let (through_a, ids_a) = listed(&a, &broker).await;
        let (through_b, ids_b) = listed(&b, &broker).await;
        assert_eq!(ids_a, ids_b, "the nodes list different conflicts");
        assert_eq!(through_a, through_b, "the nodes list different conflicts");
        let missed: Vec<_> = truth.difference(&through_a).take(5).collect();
        let spurious: Vec<_> = through_a.difference(&truth).take(5).collect();
        assert!(
            missed.is_empty() && spurious.is_empty(),
            "{} conflicts, {} expected; missed e.g. {missed:?}, spurious e.g. {spurious:?}",
            through_a.len(),
            truth.len()
        );
        // Each answer listed conflicts of its own activity, real ones.
        for answer in &answers {
            let id = answer["id"].as_u64().unwrap();
            for conflict in answer["conflicts"].as_array().unwrap() {
                let x = conflict["activities"][0].as_u64().unwrap();
                let y = conflict["activities"][1].as_u64().unwrap();
                assert!(x == id || y == id, "{id}: {conflict}");
                assert!(truth.contains(&(x.min(y), x.max(y))), "{id}: {conflict}");
            }
        }

        // One log: every receipt verifies under the one key, at its own
        // index, and every head it cites is a prefix of the final head, as
        // either node proves.
        let key = get(&a, "/v1/log/public-key", &broker).await;
        let verifier = NoteVerifier::parse(key.as_str().unwrap().trim()).unwrap();
        let final_a = get(&a, "/v1/log/checkpoint", &broker).await;
        let final_b = get(&b, "/v1/log/checkpoint", &broker).await;
        let note = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v["checkpoint"].as_str().unwrap().to_owned())
        };
        let final_note = note(&final_a);
        assert_eq!(final_note, note(&final_b), "the nodes serve different heads");
        let final_head = verify_checkpoint(&final_note, &verifier).unwrap();
        let mut indexes = BTreeSet::new();
        let mut heads: HashMap<u64, Hash> = HashMap::new();
        for answer in &answers {
            let receipt: Receipt = serde_json::from_value(answer["receipt"].clone()).unwrap();
            let verified = verify_receipt(&receipt, None, &verifier).unwrap();
            assert!(
                indexes.insert(verified.log_index),
                "log index {} twice",
                verified.log_index
            );
            let root = heads
                .entry(verified.checkpoint.size)
                .or_insert(verified.checkpoint.root_hash);
            assert_eq!(
                *root, verified.checkpoint.root_hash,
                "two heads of size {}",
                verified.checkpoint.size
            );
        }
        assert!(indexes.iter().all(|&i| i < final_head.size));
        for (n, (size, _)) in heads.iter().enumerate().filter(|(n, _)| n % 10 == 0) {
            let cited = answers
                .iter()
                .map(|a| a["receipt"]["checkpoint"].as_str().unwrap().to_owned())
                .find(|c| verify_checkpoint(c, &verifier).unwrap().size == *size)
                .unwrap();
            let old = verify_checkpoint(cited, &verifier).unwrap();
            let prover = nodes[n % 2];
            let proof = get(
                prover,
                &format!("/v1/log/proof/consistency?from={size}&to={}", final_head.size),
                &broker,
            )
            .await;
            let proof = proof_hashes(&proof);
            verify_growth(&old, &final_note, &proof, &verifier)
                .unwrap_or_else(|e| panic!("the head of size {size} forked from the final one: {e}"));
        }
        // Inclusion proofs from either node verify against the final head.
        for (n, answer) in answers.iter().enumerate().step_by(37) {
            let index = answer["receipt"]["log_index"].as_u64().unwrap();
            let prover = nodes[n % 2];
            let proof = get(
                prover,
                &format!("/v1/log/proof/inclusion?index={index}&size={}", final_head.size),
                &broker,
            )
            .await;
            let proof = proof_hashes(&proof);
            let receipt: Receipt = serde_json::from_value(answer["receipt"].clone()).unwrap();
            deconflict_audit::verify_inclusion(
                &receipt.leaf_hash,
                index,
                final_head.size,
                &proof,
                &final_head.root_hash,
            )
            .unwrap();
        }

        // Party 0's stream on node B saw each of its conflicts open, those
        // notified through node A too, with the log index as id.
        let party_of: HashMap<u64, u64> = activities.iter().map(|(id, party, _)| (*id, *party)).collect();
        let notified_through_a: BTreeSet<u64> = answers
            .iter()
            .step_by(2)
            .map(|answer| answer["id"].as_u64().unwrap())
            .collect();
        let theirs: BTreeSet<(u64, u64)> = truth
            .iter()
            .filter(|(x, y)| party_of[x] == watched || party_of[y] == watched)
            .copied()
            .collect();
        let mut seen = BTreeSet::new();
        while seen.len() < theirs.len() {
            // The stream has nothing else to say: every event is an opening.
            let event = stream.expect("conflict.opened", Duration::from_secs(10)).await;
            let x = event["activities"][0].as_u64().unwrap();
            let y = event["activities"][1].as_u64().unwrap();
            assert!(
                theirs.contains(&(x.min(y), x.max(y))),
                "not party {watched}'s: {event}"
            );
            assert!(seen.insert((x.min(y), x.max(y))), "opened twice: {event}");
        }
        let via_a = theirs
            .iter()
            .filter(|(x, y)| notified_through_a.contains(x.max(y)))
            .count();
        assert!(
            via_a > 0,
            "none of party {watched}'s conflicts came through node A"
        );

        let races = metric("deconflict_batches_lost_race_total");
        let redone = metric("deconflict_redone_commands_total");
        let catch_ups = metric("deconflict_catch_ups_total");
        println!(
            "multinode: {SUBMISSIONS} submissions through 2 nodes in {:.2} s ({:.0}/s), {} conflicts \
             ({cross_party} between parties), log {} entries; batches lost to the other node {races}, \
             commands redone {redone}, catch-ups {catch_ups}; party {watched}'s stream on node B saw its \
             {} conflicts, {via_a} of them opened through node A",
            elapsed.as_secs_f64(),
            SUBMISSIONS as f64 / elapsed.as_secs_f64(),
            truth.len(),
            final_head.size,
            theirs.len(),
        );
        drop(stream);
        a.stop().await;
        b.stop().await;
    })
    .await;
}

/// The race itself, made certain: node B polls once a minute, so it has
/// not seen node A's activity when it notifies its own at the same place.
/// B's batch loses the swap, B catches up and redoes it, and the conflict
/// with A's activity is in B's answer. With `--max-redos 0` the same loss
/// is refused with 503 `contention` instead, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_redoes_its_write_on_the_winners_state() {
    if !common::postgres_available("multinode::a_node_behind") {
        return;
    }
    common::with_backend(Backend::Postgres, async {
        let dir = tempfile::tempdir().unwrap();
        let (dir_a, dir_b, dir_c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        let a = start(&dir_a, |_| {}).await;
        second_node_dir(&dir_a, &dir_b);
        second_node_dir(&dir_a, &dir_c);
        let slow = deconflict_server::multinode::MAX_POLL_INTERVAL_MS;
        let b = start(&dir_b, |config| config.poll_interval_ms = slow).await;
        let c = start(&dir_c, |config| {
            config.poll_interval_ms = slow;
            config.max_redos = 0;
        })
        .await;
        let (_, blue) = a.party("blue", "military").await;
        let (red_id, red) = b.party("red", "military").await;
        // Through A: C, which may not redo, would lose creating it.
        let (_, green) = a.party("green", "military").await;

        let first = a.notify(&blue, patrol(30.0, "full", 9, 11)).await;
        let first_id = first["id"].as_u64().unwrap();
        let second = b.notify(&red, patrol(30.0, "full", 10, 12)).await;
        let conflicts = second["conflicts"].as_array().unwrap();
        assert_eq!(conflicts.len(), 1, "{second}");
        let pair = [
            conflicts[0]["activities"][0].as_u64(),
            conflicts[0]["activities"][1].as_u64(),
        ];
        assert!(pair.contains(&Some(first_id)), "{second}");
        assert!(second["id"].as_u64().unwrap() > first_id, "{second}");

        // Node C is behind too, and may not redo: refused, nothing written.
        let (status, problem) = c
            .call(
                Method::POST,
                "/v1/activities",
                Some(&green),
                Some(patrol(30.0, "full", 9, 12)),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
        assert!(
            problem["type"].as_str().unwrap().ends_with("contention"),
            "{problem}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains("--max-redos"),
            "{problem}"
        );
        // Caught up, C writes at the next try.
        let third = c.notify(&green, patrol(30.0, "full", 9, 12)).await;
        assert_eq!(third["conflicts"].as_array().unwrap().len(), 2, "{third}");
        let (_, mine) = b.call(Method::GET, "/v1/conflicts", Some(&red), None).await;
        assert_eq!(
            mine["conflicts"].as_array().unwrap().len(),
            2,
            "party {red_id}: {mine}"
        );

        a.stop().await;
        b.stop().await;
        c.stop().await;
    })
    .await;
}

/// A party's hotline events reach its stream on whichever node it is
/// connected to: a message sent through node A reaches the recipient's
/// stream on node B (which reports the delivery: A lists it delivered),
/// the acknowledgement made through B reaches the sender's stream on A,
/// each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotline_events_reach_the_parties_on_either_node() {
    if !common::postgres_available("multinode::hotline_events") {
        return;
    }
    common::with_backend(Backend::Postgres, async {
        let dir = tempfile::tempdir().unwrap();
        let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
        let fast = |config: &mut deconflict_server::ServerConfig| config.poll_interval_ms = 50;
        let a = start(&dir_a, fast).await;
        second_node_dir(&dir_a, &dir_b);
        let b = start(&dir_b, fast).await;
        let (blue, blue_token) = a.party("blue", "military").await;
        // Created through A, so that A accepts a message to it at once (B
        // finds red's token in the database on first use).
        let (red, red_token) = a.party("red", "military").await;
        // Each party connected to one node only.
        let mut blue_on_a = Events::open(&a, &blue_token).await;
        let mut red_on_b = Events::open(&b, &red_token).await;

        let (status, sent) = a
            .call(
                Method::POST,
                "/v1/messages",
                Some(&blue_token),
                Some(json!({"to": red, "body": "hold at the bridge", "priority": "priority"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sent}");
        let id = sent["id"].as_u64().unwrap();
        let wait = Duration::from_secs(10);
        let got = red_on_b.expect("message", wait).await;
        assert_eq!(got["id"].as_u64(), Some(id), "{got}");
        assert_eq!(got["from"].as_u64(), Some(blue), "{got}");
        assert_eq!(got["body"], "hold at the bridge", "{got}");

        // Node B reported the delivery; node A, caught up, lists it.
        let mut delivered = Value::Null;
        for _ in 0..200 {
            let listed = get(&a, "/v1/messages", &blue_token).await;
            delivered = listed["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"].as_u64() == Some(id))
                .cloned()
                .unwrap_or(Value::Null);
            if delivered["state"] == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(delivered["state"], "delivered", "{delivered}");

        // The acknowledgement through B reaches the sender on A.
        let (status, acked) = b
            .call(
                Method::POST,
                &format!("/v1/messages/{id}/ack"),
                Some(&red_token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{acked}");
        let told = blue_on_a.expect("message.acked", wait).await;
        assert_eq!(told["message"].as_u64(), Some(id), "{told}");
        assert_eq!(told["to"].as_u64(), Some(red), "{told}");

        // Once per node: a second message on B's stream is the next
        // `message` event there, not a repeat of the first.
        let (status, second) = a
            .call(
                Method::POST,
                "/v1/messages",
                Some(&blue_token),
                Some(json!({"to": red, "body": "second", "priority": "routine"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        let next = red_on_b.expect("message", wait).await;
        assert_eq!(next["id"], second["id"], "{next}");

        drop((blue_on_a, red_on_b));
        a.stop().await;
        b.stop().await;
    })
    .await;
}

/// What a catch-up costs as the store grows (it rebuilds from the whole
/// store: every live activity re-validated, every leaf re-hashed). A
/// measurement, not a check: node A files 0, 2,000 and 10,000 activities of
/// one party (no conflicts), then node B, which never polled, writes once,
/// loses the race and catches up; the time is B's
/// `deconflict_catch_up_seconds`. `cargo test -p deconflict-server --test
/// multinode -- --ignored catch_up_cost` (figures in docs/DATABASES.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that prints figures, not a check"]
async fn catch_up_cost_at_store_sizes() {
    if !common::postgres_available("multinode::catch_up_cost") {
        return;
    }
    common::with_backend(Backend::Postgres, async {
        let dir = tempfile::tempdir().unwrap();
        let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
        let a = start(&dir_a, |config| {
            config.limits.rate_per_s = 100_000.0;
            config.limits.rate_burst = 100_000.0;
        })
        .await;
        second_node_dir(&dir_a, &dir_b);
        let slow = deconflict_server::multinode::MAX_POLL_INTERVAL_MS;
        let b = start(&dir_b, |config| config.poll_interval_ms = slow).await;
        let (_, blue) = a.party("blue", "military").await;
        let (_, red) = a.party("red", "military").await;
        let mut filed = 0_usize;
        for (round, target) in [0_usize, 2_000, 10_000].into_iter().enumerate() {
            while filed < target {
                // One degree apart: none of them meets another.
                let features: Vec<Value> = (filed..(filed + 100).min(target))
                    .map(|i| {
                        let (lon, lat) = (-170.0 + (i % 300) as f64, -60.0 + (i / 300) as f64);
                        json!({
                            "type": "Feature",
                            "geometry": {"type": "LineString", "coordinates": [[lon, lat], [lon, lat + 0.05]]},
                            "properties": {
                                "kind": "patrol", "name": format!("seed {i}"), "start": "2030-01-01T08:00:00Z",
                                "end": "2030-01-01T12:00:00Z", "corridor_m": 200
                            }
                        })
                    })
                    .collect();
                let count = features.len();
                let (status, body) = a
                    .call(
                        Method::POST,
                        "/v1/activities",
                        Some(&blue),
                        Some(json!({"type": "FeatureCollection", "features": features})),
                    )
                    .await;
                assert!(status.is_success(), "{status}: {body}");
                filed += count;
            }
            let (sum, count) = (
                metric_f64("deconflict_catch_up_seconds_sum"),
                metric("deconflict_catch_up_seconds_count"),
            );
            b.notify(&red, patrol(30.0 + round as f64, "full", 9, 11)).await;
            let caught_up = metric("deconflict_catch_up_seconds_count") - count;
            let seconds = metric_f64("deconflict_catch_up_seconds_sum") - sum;
            println!(
                "catch-up with {filed} live activities (and as many log entries): {caught_up} \
                 catch-up(s), {:.1} ms each",
                seconds * 1000.0 / caught_up.max(1) as f64,
            );
        }
        a.stop().await;
        b.stop().await;
    })
    .await;
}
