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

on_both_backends! {
/// A collection read in the typed (plain) shape and one that is not (a
/// geometry with a foreign member sends it through the tree) answer alike:
/// each bad feature named under its own `/features/N`, with the engine's
/// pointer for a bad vertex and the reader's for a bad property.
async fn plain_and_other_collections_name_the_same_pointers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (_, token) = server.party("blue", "military").await;
    for foreign_geometry_member in [false, true] {
        let mut vertex = patrol(40.0, "full", 9, 10);
        vertex["geometry"]["coordinates"][1] = json!([40.0, 95.0]);
        let mut width = patrol(41.0, "full", 9, 10);
        width["properties"]["corridor_m"] = json!("wide");
        let mut good = patrol(42.0, "full", 9, 10);
        if foreign_geometry_member {
            good["geometry"]["bbox"] = json!([41.0, 36.0, 43.0, 38.0]);
        }
        let collection = json!({"type": "FeatureCollection", "features": [good, vertex, width]});
        let (status, answer) = server
            .call(Method::POST, "/v1/activities", Some(&token), Some(collection))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let results = answer["results"].as_array().unwrap();
        assert_eq!(results[0]["status"], 201, "{answer}");
        let pointers = |at: usize| -> Vec<String> {
            results[at]["problem"]["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["pointer"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(results[1]["status"], 422);
        assert_eq!(pointers(1), vec!["/features/1/geometry/coordinates/1/1"], "{answer}");
        assert_eq!(results[2]["status"], 422);
        assert_eq!(pointers(2), vec!["/features/2/properties/corridor_m"], "{answer}");
        // The stored Feature keeps the foreign member (the tree's text).
        let id = results[0]["id"].as_u64().unwrap();
        let (_, stored) = server
            .call(Method::GET, &format!("/v1/activities/{id}"), Some(&token), None)
            .await;
        assert_eq!(stored["geometry"].get("bbox").is_some(), foreign_geometry_member, "{stored}");
    }
}
}
