//! Disk faults (issue 9, part 2), in process: commits made to fail as a
//! failed fsync or a full disk (the store's `fault-injection` feature, on
//! only in test builds). The service must refuse writes with a 503
//! problem+json that says what failed, never acknowledge what it did not
//! persist, keep serving reads, roll its engine, audit tree and hotline back
//! to what the store holds, and take writes again once the fault clears.
//! The real full disk (a file size limit on the child process) is in
//! `crates/cli/tests/disk_full.rs`.

mod common;

use base64::Engine as _;
use common::{patrol, start, Server};
use deconflict_audit::{verify_checkpoint, verify_growth, Checkpoint, Hash, NoteVerifier};
use deconflict_store::Faults;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn checkpoint(s: &Server, token: &str) -> String {
    let response = s
        .client
        .get(format!("{}/v1/log/checkpoint", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

async fn verifier(s: &Server, token: &str) -> NoteVerifier {
    let response = s
        .client
        .get(format!("{}/v1/log/public-key", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    NoteVerifier::parse(response.text().await.unwrap().trim()).unwrap()
}

/// The log only grew from `old` (verified by a consistency proof).
async fn assert_grew(s: &Server, token: &str, verifier: &NoteVerifier, old: &Checkpoint) -> Checkpoint {
    let note = checkpoint(s, token).await;
    let new = verify_checkpoint(&note, verifier).unwrap();
    let (status, proof) = s
        .call(
            Method::GET,
            &format!("/v1/log/proof/consistency?from={}&to={}", old.size, new.size),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    let proof: Vec<Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    verify_growth(old, &note, &proof, verifier).unwrap()
}

fn assert_refused(status: StatusCode, body: &Value, slug: &str, says: &str) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["type"],
        format!("https://deconflict.invalid/problems/{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], 503);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(says), "{detail}");
    assert!(detail.contains("nothing was changed"), "{detail}");
    // SQLite's words stay in the log.
    assert!(
        !detail.to_lowercase().contains("sqlite") && !detail.contains("injected"),
        "{detail}"
    );
}

/// Retries while the driver is still rebuilding (a 503 too) after the fault
/// cleared; the first non-503 answer is returned.
async fn until_rebuilt(s: &Server, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    for _ in 0..200 {
        let (status, answer) = s.call(Method::POST, path, Some(token), Some(body.clone())).await;
        if status != StatusCode::SERVICE_UNAVAILABLE
            || answer["type"] != "https://deconflict.invalid/problems/storage-failed"
        {
            return (status, answer);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the service never took writes again");
}

on_both_backends! {
async fn a_failed_commit_is_refused_rolled_back_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let s = start(dir.path(), |config| config.store.faults = Some(faults.clone())).await;
    let (_, blue) = s.party("blue", "military").await;
    let (red_id, red) = s.party("red", "military").await;
    let verifier = verifier(&s, &blue).await;

    s.notify(&blue, patrol(41.0, "need_to_know", 8, 10)).await;
    let before = verify_checkpoint(&checkpoint(&s, &blue).await, &verifier).unwrap();

    // A failed fsync: the write that red would have conflicted with blue
    // with is refused, and nothing of it remains anywhere.
    faults.fail_next_commits(1);
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/activities",
            Some(&red),
            Some(patrol(41.001, "need_to_know", 8, 10)),
        )
        .await;
    assert_refused(status, &body, "storage-failed", "could not write");
    assert_eq!(faults.commits_failed(), 1);

    // Reads go on meanwhile.
    let (status, listed) = s.call(Method::GET, "/v1/activities", Some(&red), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["features"].as_array().unwrap().len(), 0, "{listed}");
    let (status, conflicts) = s.call(Method::GET, "/v1/conflicts", Some(&blue), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        conflicts["conflicts"],
        json!([]),
        "no conflict with a write that failed"
    );
    assert_eq!(
        verify_checkpoint(&checkpoint(&s, &blue).await, &verifier).unwrap(),
        before,
        "the log did not move"
    );

    // The next write commits: the engine no longer holds the failed one
    // (red's new patrol is the only conflict with blue), and its leaf
    // follows the last committed one, with no gap and no fork.
    let (status, created) =
        until_rebuilt(&s, &red, "/v1/activities", patrol(41.002, "need_to_know", 8, 10)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["receipt"]["log_index"].as_u64().unwrap(),
        before.size,
        "{created}"
    );
    let conflicts = created["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{created}");
    // Conflict 1: the id the failed batch had taken was given back too.
    assert_eq!(conflicts[0]["id"], 1, "{created}");
    assert_eq!(conflicts[0]["activities"][1], created["id"], "{created}");
    let (_, listed) = s.call(Method::GET, "/v1/activities", Some(&red), None).await;
    assert_eq!(listed["features"].as_array().unwrap().len(), 1, "{listed}");
    assert_grew(&s, &blue, &verifier, &before).await;

    // The check endpoint reads the engine directly: no trace of the failed
    // write there either (one conflict: blue's; red's own do not count).
    let (status, checked) = s
        .call(
            Method::POST,
            "/v1/activities/check",
            Some(&blue),
            Some(patrol(41.0015, "need_to_know", 8, 10)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["conflicts"].as_array().unwrap().len(), 1, "{checked}");

    // A message and an acknowledgement through a failing disk: refused, then
    // taken once it clears; the hotline machine was rebuilt too.
    let (status, sent) = s
        .call(
            Method::POST,
            "/v1/messages",
            Some(&blue),
            Some(json!({"to": red_id, "body": "hold at the ridge", "priority": "routine"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let message = sent["id"].as_u64().unwrap();
    faults.fail_next_commits(1);
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/v1/messages/{message}/ack"),
            Some(&red),
            None,
        )
        .await;
    assert_refused(status, &body, "storage-failed", "could not write");
    let (_, listed) = s.call(Method::GET, "/v1/messages", Some(&red), None).await;
    assert!(listed["messages"][0]["acked_at"].is_null(), "{listed}");
    let (status, acked) = until_rebuilt(&s, &red, &format!("/v1/messages/{message}/ack"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(
        acked["already_acked"], false,
        "the failed ack left nothing behind: {acked}"
    );

    // After a restart the store holds exactly what was acknowledged.
    s.stop().await;
    let s = start(dir.path(), |_| {}).await;
    let (_, listed) = s.call(Method::GET, "/v1/activities", Some(&red), None).await;
    assert_eq!(listed["features"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["features"][0]["id"], created["id"]);
    assert_grew(&s, &blue, &verifier, &before).await;
    s.stop().await;
}
}

on_both_backends! {
async fn a_full_disk_refuses_every_write_until_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let s = start(dir.path(), |config| config.store.faults = Some(faults.clone())).await;
    let (_, blue) = s.party("blue", "military").await;
    let verifier = verifier(&s, &blue).await;
    let first = s.notify(&blue, patrol(41.0, "need_to_know", 8, 10)).await;
    let before = verify_checkpoint(&checkpoint(&s, &blue).await, &verifier).unwrap();

    faults.fail_all_commits(true);
    let mut refused = 0;
    for i in 0..20 {
        let (status, body) = s
            .call(
                Method::POST,
                "/v1/activities",
                Some(&blue),
                Some(patrol(42.0 + f64::from(i) * 0.01, "need_to_know", 8, 10)),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "write {i} was acknowledged on a full disk: {body}"
        );
        // The first is the full disk itself; the rest may meet the
        // rebuild that follows each failure.
        let slug = body["type"].as_str().unwrap();
        assert!(
            slug.ends_with("/disk-full") || slug.ends_with("/storage-failed"),
            "{body}"
        );
        if slug.ends_with("/disk-full") {
            assert!(
                body["detail"].as_str().unwrap().contains("disk is full"),
                "{body}"
            );
        }
        refused += 1;
        // Reads keep working the whole time.
        let (status, one) = s
            .call(
                Method::GET,
                &format!("/v1/activities/{}", first["id"]),
                Some(&blue),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{one}");
    }
    assert_eq!(refused, 20);
    assert!(faults.commits_failed() >= 1);
    assert_eq!(
        verify_checkpoint(&checkpoint(&s, &blue).await, &verifier).unwrap(),
        before,
        "nothing was logged on a full disk"
    );

    faults.clear();
    let (status, created) =
        until_rebuilt(&s, &blue, "/v1/activities", patrol(43.0, "need_to_know", 8, 10)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["receipt"]["log_index"].as_u64().unwrap(), before.size);
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(
            s.call(
                Method::GET,
                &format!("/v1/log/entries?from={0}&to={1}", before.size, before.size + 1),
                Some(&blue),
                None,
            )
            .await
            .1["entries"][0]["leaf"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let leaf: Value = serde_json::from_slice(&leaf).unwrap();
    assert_eq!(leaf["kind"], "activity.notified");
    assert_eq!(leaf["payload"]["activity"], created["id"]);
    let (_, listed) = s.call(Method::GET, "/v1/activities", Some(&blue), None).await;
    assert_eq!(
        listed["features"].as_array().unwrap().len(),
        2,
        "only the acknowledged two: {listed}"
    );
    assert_grew(&s, &blue, &verifier, &before).await;
    println!(
        "disk faults (injected): {refused} writes refused with 503 on a full disk, 0 acknowledged, {} commits failed; \
         writes taken again after the fault cleared",
        faults.commits_failed()
    );
    s.stop().await;
}
}
