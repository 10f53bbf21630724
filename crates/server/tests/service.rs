//! The service end to end over HTTP: notify, see conflicts, receipts that
//! verify offline, need-to-know, and restart recovery.

mod common;

use base64::Engine as _;
use common::{patrol, start};
use deconflict_audit::{verify_receipt, NoteVerifier, Receipt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

on_both_backends! {
async fn notify_conflict_receipt_need_to_know_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (blue, blue_token) = server.party("blue", "military").await;
    let (red, red_token) = server.party("red", "military").await;
    let (_, broker_token) = server.party("cell", "broker").await;

    let first = server
        .notify(&blue_token, patrol(41.400, "need_to_know", 8, 10))
        .await;
    assert_eq!(first["version"], 1);
    assert_eq!(first["conflicts"], json!([]));
    // ~445 m east, overlapping corridors: one conflict.
    let second = server
        .notify(&red_token, patrol(41.405, "need_to_know", 9, 11))
        .await;
    let conflicts = second["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{second}");
    let conflict = &conflicts[0];
    assert_eq!(conflict["start"], "2030-01-01T09:00:00Z");
    assert_eq!(conflict["end"], "2030-01-01T10:00:00Z");
    // Red sees its own side and nothing of blue's need-to-know plan.
    assert_eq!(conflict["activities"], json!([null, second["id"]]));
    assert_eq!(conflict["parties"], json!([null, red]));
    assert_eq!(conflict["min_distance_m"], 0.0);

    // The receipt verifies offline with the log's public key and the leaf.
    let (status, key) = server
        .call(Method::GET, "/v1/log/public-key", Some(&red_token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let verifier = NoteVerifier::parse(key.as_str().unwrap().trim()).unwrap();
    let receipt: Receipt = serde_json::from_value(second["receipt"].clone()).unwrap();
    let index = receipt.log_index;
    let (_, entries) = server
        .call(
            Method::GET,
            &format!("/v1/log/entries?from={index}&to={}", index + 1),
            Some(&red_token),
            None,
        )
        .await;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(
            entries["entries"][0]["leaf"]
                .as_str()
                .expect("red reads its own entry"),
        )
        .unwrap();
    let verified = verify_receipt(&receipt, Some(&leaf), &verifier).unwrap();
    assert!(verified.checkpoint.size > index);
    let leaf: Value = serde_json::from_slice(&leaf).unwrap();
    assert_eq!(leaf["kind"], "activity.notified");
    // Blue's entry is a hash only for red.
    let blue_index = first["receipt"]["log_index"].as_u64().unwrap();
    let (_, entries) = server
        .call(
            Method::GET,
            &format!("/v1/log/entries?from={blue_index}&to={}", blue_index + 1),
            Some(&red_token),
            None,
        )
        .await;
    assert!(entries["entries"][0].get("leaf").is_none(), "{entries}");
    assert!(entries["entries"][0]["leaf_hash"].is_string());

    // Need-to-know: red cannot list or fetch blue's activity; 404 as if absent.
    let blue_id = first["id"].as_u64().unwrap();
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/v1/activities/{blue_id}"),
            Some(&red_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, absent) = server
        .call(Method::GET, "/v1/activities/999999", Some(&red_token), None)
        .await;
    assert_eq!(body, absent, "no existence leak");
    let (_, listed) = server
        .call(Method::GET, "/v1/activities", Some(&red_token), None)
        .await;
    assert_eq!(listed["features"].as_array().unwrap().len(), 1);
    let (status, own) = server
        .call(
            Method::GET,
            &format!("/v1/activities/{blue_id}"),
            Some(&blue_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["properties"]["version"], 1);
    let (_, everything) = server
        .call(Method::GET, "/v1/activities", Some(&broker_token), None)
        .await;
    assert_eq!(everything["features"].as_array().unwrap().len(), 2);

    // Blue acknowledges; the state survives a restart exactly.
    let conflict_id = conflict["id"].as_u64().unwrap();
    let (status, acked) = server
        .call(
            Method::POST,
            &format!("/v1/conflicts/{conflict_id}/ack"),
            Some(&blue_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["conflict"]["acknowledged_by"], json!([blue]));
    let before = snapshot(&server, &[&blue_token, &red_token, &broker_token]).await;
    let (_, checkpoint_before) = server
        .call(Method::GET, "/v1/log/checkpoint", Some(&blue_token), None)
        .await;
    server.stop().await;

    let server = start(dir.path(), |_| {}).await;
    let after = snapshot(&server, &[&blue_token, &red_token, &broker_token]).await;
    assert_eq!(before, after);
    let (_, checkpoint_after) = server
        .call(Method::GET, "/v1/log/checkpoint", Some(&blue_token), None)
        .await;
    assert_eq!(checkpoint_before, checkpoint_after);

    // And it goes on: red moves away, the conflict resolves, the log grows
    // consistently with the checkpoint saved before the restart.
    let red_id = second["id"].as_u64().unwrap();
    let response = server
        .client
        .put(format!("{}/v1/activities/{red_id}", server.url))
        .bearer_auth(&red_token)
        .header("If-Match", "\"1\"")
        .json(&patrol(41.6, "need_to_know", 9, 11))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let moved: Value = response.json().await.unwrap();
    assert_eq!(moved["version"], 2);
    assert_eq!(moved["conflicts"], json!([]));
    let (_, open) = server
        .call(Method::GET, "/v1/conflicts?state=open", Some(&blue_token), None)
        .await;
    assert_eq!(open["conflicts"], json!([]));
    let (_, resolved) = server
        .call(
            Method::GET,
            "/v1/conflicts?state=resolved",
            Some(&blue_token),
            None,
        )
        .await;
    assert_eq!(resolved["conflicts"][0]["resolution"], "no_longer_conflicting");
    let old = deconflict_audit::verify_checkpoint(checkpoint_before.as_str().unwrap(), &verifier).unwrap();
    let (_, latest) = server
        .call(Method::GET, "/v1/log/checkpoint", Some(&blue_token), None)
        .await;
    let latest = latest.as_str().unwrap().to_owned();
    let new_size = deconflict_audit::verify_checkpoint(&latest, &verifier)
        .unwrap()
        .size;
    let (_, proof) = server
        .call(
            Method::GET,
            &format!("/v1/log/proof/consistency?from={}&to={new_size}", old.size),
            Some(&blue_token),
            None,
        )
        .await;
    let proof: Vec<deconflict_audit::Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| deconflict_audit::Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    deconflict_audit::verify_growth(&old, &latest, &proof, &verifier).unwrap();
    server.stop().await;
}
}

/// What each party sees: its activities and conflicts.
async fn snapshot(server: &common::Server, tokens: &[&str]) -> Vec<Value> {
    let mut seen = Vec::new();
    for token in tokens {
        for path in ["/v1/activities", "/v1/conflicts", "/v1/zones"] {
            let (status, body) = server.call(Method::GET, path, Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            seen.push(body);
        }
    }
    seen
}
