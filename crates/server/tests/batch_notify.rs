//! `POST /v1/activities` with a FeatureCollection (our extension of the
//! contract): one answer per feature, in order; a bad feature refuses only
//! itself; every committed feature's receipt, built from the batch's nodes
//! in memory, verifies offline and matches a receipt read from the store.

mod common;

use common::{patrol, start};
use deconflict_audit::{verify_receipt, NoteVerifier, Receipt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

on_both_backends! {
async fn a_feature_collection_answers_each_feature_with_a_receipt_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| config.limits.max_pending_commands = 4).await;
    let (_, token) = server.party("blue", "military").await;
    // Some single notifications first, so that the batch's proofs need
    // nodes from before it (the starting frontier).
    for lon in [30.0, 30.5, 31.0] {
        server.notify(&token, patrol(lon, "full", 9, 10)).await;
    }
    let mut bad = patrol(32.0, "full", 9, 10);
    bad["properties"]["start"] = json!("not a time");
    let collection = json!({
        "type": "FeatureCollection",
        "features": [patrol(30.0, "full", 9, 10), bad, patrol(33.0, "full", 9, 10)],
    });
    let (status, answer) = server
        .call(Method::POST, "/v1/activities", Some(&token), Some(collection))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["status"], 201);
    assert_eq!(results[1]["status"], 422);
    assert!(
        results[1]["problem"]["errors"][0]["pointer"]
            .as_str()
            .unwrap()
            .starts_with("/features/1/"),
        "{}",
        results[1]
    );
    assert_eq!(results[2]["status"], 201);

    let (_, key) = server
        .call(Method::GET, "/v1/log/public-key", Some(&token), None)
        .await;
    let verifier = NoteVerifier::parse(key.as_str().unwrap().trim()).unwrap();
    for result in [&results[0], &results[2]] {
        let receipt: Receipt = serde_json::from_value(result["receipt"].clone()).unwrap();
        let verified = verify_receipt(&receipt, None, &verifier).unwrap();
        // The same proof as the store gives for that entry under that head.
        let (status, stored) = server
            .call(
                Method::GET,
                &format!(
                    "/v1/log/proof/inclusion?index={}&size={}",
                    receipt.log_index, verified.checkpoint.size
                ),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{stored}");
        let stored: Vec<String> = serde_json::from_value(stored["proof"].clone()).unwrap_or_default();
        let ours: Vec<String> = receipt.inclusion_proof.iter().map(|h| h.to_base64()).collect();
        assert_eq!(ours, stored);
    }

    // More features than the driver's queue holds: refused whole, 413.
    let too_many = json!({
        "type": "FeatureCollection",
        "features": (0..5).map(|i| patrol(34.0 + f64::from(i), "full", 9, 10)).collect::<Vec<Value>>(),
    });
    let (status, problem) = server
        .call(Method::POST, "/v1/activities", Some(&token), Some(too_many))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("--max-pending-commands"));
    server.stop().await;
}
}
