//! Token rotation and revocation (issue 9): the old token answers 401 from
//! the next request, the party's open event stream ends, its data stays, and
//! the change survives a restart.

mod common;

use std::time::Duration;

use common::{patrol, start};
use reqwest::{Method, StatusCode};

/// Reads an SSE response until the server ends it; `true` when it ended
/// within `limit`.
async fn ends_within(mut response: reqwest::Response, limit: Duration) -> bool {
    tokio::time::timeout(limit, async { while let Ok(Some(_)) = response.chunk().await {} })
        .await
        .is_ok()
}

on_both_backends! {
async fn a_rotated_or_revoked_token_is_refused_at_once_and_its_streams_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (blue_id, old_token) = server.party("blue", "military").await;
    let (_, red_token) = server.party("red", "military").await;
    let activity = server.notify(&old_token, patrol(41.4, "full", 8, 10)).await;
    let activity_id = activity["id"].as_u64().unwrap();

    // Only the admin rotates; another party gets 403, no token 401.
    let path = format!("/v1/parties/{blue_id}/token");
    let (status, _) = server.call(Method::POST, &path, Some(&red_token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.call(Method::POST, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/parties/999999/token",
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An open stream of the old token ends when the token is rotated.
    let stream = server
        .client
        .get(format!("{}/v1/events", server.url))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let (status, body) = server.call(Method::POST, &path, Some(&server.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_token = body["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, old_token);
    assert!(
        ends_within(stream, Duration::from_secs(5)).await,
        "the old token's event stream was not ended"
    );

    // The old token is refused, the new one reaches the party's data.
    let activity_path = format!("/v1/activities/{activity_id}");
    let (status, _) = server
        .call(Method::GET, &activity_path, Some(&old_token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .call(Method::GET, &activity_path, Some(&new_token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Revocation: 204, then no token of the party works.
    let (status, _) = server
        .call(Method::DELETE, &path, Some(&server.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call(Method::GET, &activity_path, Some(&new_token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Red is untouched.
    let (status, _) = server
        .call(Method::GET, "/v1/conflicts", Some(&red_token), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // After a restart the revocation holds; a fresh rotation brings the
    // party back with its data.
    server.stop().await;
    let server = start(dir.path(), |_| {}).await;
    let (status, _) = server
        .call(Method::GET, &activity_path, Some(&new_token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call(Method::GET, &activity_path, Some(&old_token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server.call(Method::POST, &path, Some(&server.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revived = body["token"].as_str().unwrap().to_owned();
    let (status, body) = server
        .call(Method::GET, &activity_path, Some(&revived), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}
}
