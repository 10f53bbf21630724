//! The authorization matrix (every endpoint × no token, bad token, another
//! party's object, the right party) and each class of bad input.

mod common;

use common::{patrol, start};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BAD: &str = "dcf_not-a-real-token";

on_both_backends! {
async fn every_endpoint_answers_401_403_404_or_2xx_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |_| {}).await;
    let (_, blue) = s.party("blue", "military").await;
    let (_, red) = s.party("red", "military").await;
    let (_, green) = s.party("green", "civil").await;
    let (_, broker) = s.party("cell", "broker").await;
    let admin = s.admin.clone();
    let secret = s.notify(&blue, patrol(41.400, "need_to_know", 8, 10)).await;
    let shared = s.notify(&blue, patrol(42.400, "full", 8, 10)).await;
    let reds = s.notify(&red, patrol(41.404, "need_to_know", 8, 10)).await;
    let conflict = reds["conflicts"][0]["id"]
        .as_u64()
        .expect("blue and red conflict");
    let (secret, shared) = (secret["id"].as_u64().unwrap(), shared["id"].as_u64().unwrap());

    // Without a valid token, nothing but operations answers.
    let feature = patrol(43.0, "full", 8, 10);
    let guarded: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/parties".into(),
            Some(json!({"name": "x", "kind": "civil"})),
        ),
        (Method::POST, "/v1/activities".into(), Some(feature.clone())),
        (Method::POST, "/v1/activities/check".into(), Some(feature.clone())),
        (Method::GET, "/v1/activities".into(), None),
        (Method::GET, format!("/v1/activities/{secret}"), None),
        (
            Method::PUT,
            format!("/v1/activities/{secret}"),
            Some(feature.clone()),
        ),
        (Method::DELETE, format!("/v1/activities/{secret}"), None),
        (Method::GET, "/v1/conflicts".into(), None),
        (Method::GET, format!("/v1/conflicts/{conflict}"), None),
        (Method::POST, format!("/v1/conflicts/{conflict}/ack"), None),
        (Method::POST, format!("/v1/conflicts/{conflict}/resolve"), None),
        (Method::POST, "/v1/zones".into(), Some(feature.clone())),
        (Method::GET, "/v1/zones".into(), None),
        (Method::GET, "/v1/events".into(), None),
        (Method::GET, "/v1/log/checkpoint".into(), None),
        (Method::GET, "/v1/log/public-key".into(), None),
        (Method::GET, "/v1/log/entries?from=0&to=1".into(), None),
        (Method::GET, "/v1/log/proof/inclusion?index=0&size=1".into(), None),
        (Method::GET, "/v1/log/proof/consistency?from=0&to=1".into(), None),
    ];
    for (method, path, body) in &guarded {
        for token in [None, Some(BAD)] {
            let (status, problem) = s.call(method.clone(), path, token, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}");
            assert_eq!(problem["status"], 401, "{problem}");
        }
    }
    for path in ["/healthz", "/metrics", "/openapi.json"] {
        let (status, _) = s.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // The admin token only creates parties; a party token never does.
    let (status, _) = s
        .call(
            Method::POST,
            "/v1/parties",
            Some(&red),
            Some(json!({"name": "x", "kind": "civil"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (method, path, body) in &guarded[1..14] {
        let (status, _) = s.call(method.clone(), path, Some(&admin), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "admin on {method} {path}");
    }
    for path in [
        "/v1/log/checkpoint",
        "/v1/log/public-key",
        "/v1/log/entries?from=0&to=1",
    ] {
        let (status, _) = s.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "admin on {path}");
    }

    // Another party's need-to-know activity answers exactly like one that
    // does not exist, whatever the method.
    let missing = 987_654;
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(feature.clone())),
        (Method::DELETE, None),
    ] {
        let mut hidden = s
            .client
            .request(method.clone(), format!("{}/v1/activities/{secret}", s.url))
            .bearer_auth(&red);
        let mut absent = s
            .client
            .request(method.clone(), format!("{}/v1/activities/{missing}", s.url))
            .bearer_auth(&red);
        if let Some(body) = &body {
            hidden = hidden.header("If-Match", "1").json(body);
            absent = absent.header("If-Match", "1").json(body);
        }
        let (hidden, absent) = (hidden.send().await.unwrap(), absent.send().await.unwrap());
        assert_eq!(hidden.status(), StatusCode::NOT_FOUND, "{method}");
        assert_eq!(absent.status(), StatusCode::NOT_FOUND, "{method}");
        assert_eq!(
            hidden.text().await.unwrap(),
            absent.text().await.unwrap(),
            "{method}"
        );
    }
    // A shared one is visible, but only its owner changes it.
    let (status, _) = s
        .call(Method::GET, &format!("/v1/activities/{shared}"), Some(&red), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = s
        .client
        .delete(format!("{}/v1/activities/{shared}", s.url))
        .bearer_auth(&red)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Conflicts: the uninvolved see nothing (404 like a missing id); a
    // broker sees but may not act; the involved act.
    let (status, hidden) = s
        .call(
            Method::GET,
            &format!("/v1/conflicts/{conflict}"),
            Some(&green),
            None,
        )
        .await;
    let (_, absent) = s
        .call(
            Method::GET,
            &format!("/v1/conflicts/{missing}"),
            Some(&green),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(hidden, absent);
    let (_, listed) = s.call(Method::GET, "/v1/conflicts", Some(&green), None).await;
    assert_eq!(listed["conflicts"], json!([]));
    for action in ["ack", "resolve"] {
        let path = format!("/v1/conflicts/{conflict}/{action}");
        let (status, _) = s.call(Method::POST, &path, Some(&green), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
        let (status, _) = s.call(Method::POST, &path, Some(&broker), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
    }
    let (status, _) = s
        .call(
            Method::GET,
            &format!("/v1/conflicts/{conflict}"),
            Some(&broker),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v1/conflicts/{conflict}/ack"),
            Some(&red),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, resolved) = s
        .call(
            Method::POST,
            &format!("/v1/conflicts/{conflict}/resolve"),
            Some(&blue),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["conflict"]["state"], "resolved");
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v1/conflicts/{conflict}/ack"),
            Some(&red),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "already resolved");

    // The owner: get, update, cancel.
    let (status, _) = s
        .call(
            Method::GET,
            &format!("/v1/activities/{secret}"),
            Some(&blue),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, cancelled) = s
        .call(
            Method::DELETE,
            &format!("/v1/activities/{secret}"),
            Some(&blue),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert!(cancelled["receipt"]["checkpoint"].is_string());
    let (status, _) = s
        .call(
            Method::GET,
            &format!("/v1/activities/{secret}"),
            Some(&blue),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "cancelled");
    s.stop().await;
}
}

async fn log_size(s: &common::Server, token: &str) -> u64 {
    let (_, note) = s.call(Method::GET, "/v1/log/checkpoint", Some(token), None).await;
    note.as_str().unwrap().lines().nth(1).unwrap().parse().unwrap()
}

on_both_backends! {
async fn bad_input_is_a_named_4xx_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |config| {
        config.limits.max_body_bytes = 4_096;
        config.limits.max_activities_per_party = 2;
        config.engine.limits.max_vertices = 10;
    })
    .await;
    let (_, blue) = s.party("blue", "military").await;
    let first = s.notify(&blue, patrol(41.0, "full", 8, 10)).await;
    let id = first["id"].as_u64().unwrap();
    let before = log_size(&s, &blue).await;

    let post = |body: reqwest::Body| {
        s.client
            .post(format!("{}/v1/activities", s.url))
            .bearer_auth(&blue)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let problem = |response: reqwest::Response| async move {
        let status = response.status();
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{status}"
        );
        (status, response.json::<Value>().await.unwrap())
    };
    let pointers = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap().to_owned())
            .collect()
    };

    // Not JSON; JSON but not a Feature.
    let (status, body) = problem(post("{not json".into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&body), vec![""]);
    let (status, body) = problem(post(json!({"type": "Point"}).to_string().into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(pointers(&body).contains(&"/type".to_owned()), "{body}");
    // A FeatureCollection is a batch of notifications: without its array it
    // is refused as a whole, naming the missing member.
    let (status, body) = problem(
        post(json!({"type": "FeatureCollection"}).to_string().into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&body), vec!["/features"], "{body}");
    // Every bad field named at once.
    let mut bad = patrol(41.0, "loud", 8, 10);
    bad["properties"]["corridor_m"] = json!(-1);
    bad["geometry"]["coordinates"][1] = json!([41.0, 95.0]);
    let (status, body) = problem(post(bad.to_string().into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let named = pointers(&body);
    assert!(named.contains(&"/properties/sharing".to_owned()), "{body}");
    // Too many vertices (limit 10).
    let mut long = patrol(41.0, "full", 8, 10);
    long["geometry"]["coordinates"] = json!((0..11)
        .map(|i| json!([41.0, 37.0 + f64::from(i) * 0.01]))
        .collect::<Vec<_>>());
    let (status, body) = problem(post(long.to_string().into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&body), vec!["/geometry"], "{body}");
    // Body over 4 KiB: 413, connection intact.
    let (status, _) = problem(post(vec![b' '; 5_000].into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Already ended.
    let mut past = patrol(41.0, "full", 8, 10);
    past["properties"]["start"] = json!("2001-01-01T00:00:00Z");
    past["properties"]["end"] = json!("2001-01-01T01:00:00Z");
    let (status, body) = problem(post(past.to_string().into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&body), vec!["/properties/end"]);
    // Bad query parameters.
    for (query, pointer) in [
        ("bbox=1,2,3", "/query/bbox"),
        ("from=yesterday", "/query/from"),
        ("limit=0", "/query/limit"),
    ] {
        let (status, body) = s
            .call(Method::GET, &format!("/v1/activities?{query}"), Some(&blue), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(pointers(&body), vec![pointer], "{query}");
    }
    let (status, _) = s
        .call(Method::GET, "/v1/conflicts?state=maybe", Some(&blue), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s
        .call(
            Method::GET,
            "/v1/log/proof/inclusion?index=5&size=1",
            Some(&blue),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s
        .call(
            Method::GET,
            "/v1/log/entries?from=0&to=99999999",
            Some(&blue),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s
        .call(Method::GET, "/v1/activities/not-a-number", Some(&blue), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s.call(Method::GET, "/v1/nowhere", Some(&blue), None).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::NOT_FOUND, json!(404))
    );

    // If-Match: missing 428, not a version 422, stale 412.
    let put = |if_match: Option<&'static str>| {
        let mut request = s
            .client
            .put(format!("{}/v1/activities/{id}", s.url))
            .bearer_auth(&blue)
            .json(&patrol(41.1, "full", 8, 10));
        if let Some(v) = if_match {
            request = request.header("If-Match", v);
        }
        request.send()
    };
    assert_eq!(
        put(None).await.unwrap().status(),
        StatusCode::PRECONDITION_REQUIRED
    );
    assert_eq!(
        put(Some("soon")).await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        put(Some("\"7\"")).await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(log_size(&s, &blue).await, before, "nothing was written");

    // Activities per party (limit 2).
    s.notify(&blue, patrol(44.0, "full", 8, 10)).await;
    let (status, body) = s
        .call(
            Method::POST,
            "/v1/activities",
            Some(&blue),
            Some(patrol(45.0, "full", 8, 10)),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("--max-activities-per-party"));
    s.stop().await;
}
}

on_both_backends! {
async fn the_rate_and_subscriber_limits_answer_429_and_503() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |config| {
        config.limits.rate_per_s = 0.5;
        config.limits.rate_burst = 3.0;
        config.limits.max_subscribers = 1;
    })
    .await;
    let (_, blue) = s.party("blue", "military").await;
    let (_, red) = s.party("red", "military").await;
    let stream = s
        .client
        .get(format!("{}/v1/events", s.url))
        .bearer_auth(&red)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let (status, body) = s.call(Method::GET, "/v1/events", Some(&blue), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    drop(stream);
    for _ in 0..2 {
        let (status, _) = s.call(Method::GET, "/v1/zones", Some(&blue), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = s
        .client
        .get(format!("{}/v1/zones", s.url))
        .bearer_auth(&blue)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2");
    s.stop().await;
}
}
