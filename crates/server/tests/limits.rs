//! Every limit a client can reach answers as documented, against the real
//! service on 127.0.0.1 port 0 (issue 9, item 7): request bodies (413, at
//! the exact boundary, on every route that takes a JSON body, and for a
//! chunked body that never says its length, read by a client still sending
//! it), the per-token rate (429, per
//! token, and served again after `Retry-After`), event streams per party
//! (429) and in total (503), and open connections (503 problem+json from
//! the listener, the open ones still served). `tests/matrix.rs` has the
//! first 413 and 429 checks; these extend them.

mod common;

use std::time::Duration;

use common::sse::{raw_events, request_raw, Refused};
use common::{patrol, start, Server};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROBLEMS: &str = "https://deconflict.invalid/problems/";

/// Sends `body` as is (with its length) and returns status, headers, body.
async fn post_raw(
    server: &Server,
    path: &str,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    // The server's pooled client: a refused body is read to its end (within
    // `--body-drain-bytes`), so the connection stays usable after a 413.
    let response = server
        .client
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A problem answer of type `slug` whose detail names `flag`.
fn assert_problem(headers: &reqwest::header::HeaderMap, body: &Value, slug: &str, flag: &str) {
    assert_eq!(headers["content-type"], "application/problem+json", "{body}");
    assert_eq!(body["type"], format!("{PROBLEMS}{slug}"), "{body}");
    assert!(body["detail"].as_str().unwrap().contains(flag), "{body}");
}

/// `feature` padded (in its name) to exactly `bytes` bytes of JSON.
fn padded_to(mut feature: Value, bytes: usize) -> String {
    feature["properties"]["name"] = json!("");
    let bare = feature.to_string().len();
    feature["properties"]["name"] = json!("x".repeat(bytes - bare));
    let text = feature.to_string();
    assert_eq!(text.len(), bytes);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_on_every_route_however_it_is_sent() {
    const LIMIT: usize = 2_048;
    // The chunked body: 32 times the limit, well within the drain.
    const CHUNKS: usize = 64;
    const CHUNK_BYTES: usize = 1_024;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| config.limits.max_body_bytes = LIMIT).await;
    let (_, blue) = server.party("blue", "military").await;

    // The boundary: LIMIT bytes are taken, LIMIT + 1 are not.
    let at_limit = padded_to(patrol(41.0, "full", 8, 10), LIMIT);
    let (status, _, body) = post_raw(&server, "/v1/activities", &blue, at_limit).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let over = padded_to(patrol(41.1, "full", 8, 10), LIMIT + 1);
    let (status, headers, body) = post_raw(&server, "/v1/activities", &blue, over.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(&headers, &body, "too-large", "--max-body-bytes");

    // Every route that takes a JSON body, the same answer.
    for path in [
        "/v1/activities/check",
        "/v1/zones",
        "/v1/messages",
        "/v1/incidents",
        "/v1/tracks",
    ] {
        let (status, headers, body) = post_raw(&server, path, &blue, over.clone()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_problem(&headers, &body, "too-large", "--max-body-bytes");
    }

    // A chunked body says no length up front: refused all the same once it
    // passes the limit, and the client, still sending, reads the answer
    // (the server reads the rest before answering, see `--body-drain-bytes`).
    let chunks = futures_util::stream::iter(0..CHUNKS).then(|_| async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; CHUNK_BYTES]))
    });
    let (status, headers, body) = post_raw(
        &server,
        "/v1/activities",
        &blue,
        reqwest::Body::wrap_stream(chunks),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_problem(&headers, &body, "too-large", "--max-body-bytes");

    // Only the one at the limit was written (asked on the pooled connection).
    let (status, listed) = server
        .call(Method::GET, "/v1/activities", Some(&blue), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["features"].as_array().unwrap().len(), 1, "{listed}");
    println!("413: 1 body at the limit of {LIMIT} bytes taken; {LIMIT} + 1 refused on 6 routes; a chunked body of {} KiB sent 1 KiB per ms refused and the answer read", CHUNKS * CHUNK_BYTES / 1024);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_per_token_and_lifts_after_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| {
        config.limits.rate_per_s = 1.0;
        config.limits.rate_burst = 3.0;
    })
    .await;
    let (_, blue) = server.party("blue", "military").await;
    let (_, red) = server.party("red", "military").await;
    let get = |token: &str| {
        server
            .client
            .get(format!("{}/v1/zones", server.url))
            .bearer_auth(token)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(get(&blue).await.unwrap().status(), StatusCode::OK);
    }
    let refused = get(&blue).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = refused.headers().clone();
    let wait_s: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_problem(&headers, &body, "rate-limited", "--rate-per-s");
    assert_eq!(body["status"], 429);
    // Another token has its own bucket.
    assert_eq!(get(&red).await.unwrap().status(), StatusCode::OK);
    // A refused request costs nothing: after Retry-After, served again.
    tokio::time::sleep(Duration::from_secs(wait_s)).await;
    assert_eq!(get(&blue).await.unwrap().status(), StatusCode::OK);
    println!("429: burst of 3 served, the 4th refused (Retry-After {wait_s} s), another token served, served again after {wait_s} s");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited_per_party_429_and_in_total_503() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| {
        config.limits.max_subscribers = 3;
        config.limits.max_subscribers_per_party = 2;
    })
    .await;
    let (_, blue) = server.party("blue", "military").await;
    let (_, red) = server.party("red", "military").await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let open = |token: String| {
        let address = address.clone();
        async move {
            raw_events(request_raw(&address, &token, None).await.unwrap())
                .await
                .unwrap()
        }
    };
    let refusal = |answer: Result<_, Refused>| match answer {
        Ok(_) => panic!("a stream was opened beyond the limit"),
        Err(refused) => refused,
    };
    let red_1 = open(red.clone()).await.expect("red's first stream");
    let _red_2 = open(red.clone()).await.expect("red's second stream");
    let red_3 = refusal(open(red.clone()).await);
    assert_eq!(red_3.status, 429, "{red_3:?}");
    assert!(red_3.headers.contains("retry-after: 5"), "{red_3:?}");
    assert!(
        red_3.body.contains("subscribers-per-party") && red_3.body.contains("--max-subscribers-per-party")
    );
    let _blue_1 = open(blue.clone()).await.expect("blue has its own share");
    let blue_2 = refusal(open(blue.clone()).await);
    assert_eq!(blue_2.status, 503, "the total is reached: {blue_2:?}");
    assert!(blue_2.body.contains("--max-subscribers"), "{blue_2:?}");
    // A closed stream frees its slot (the server notices at its next write
    // or when the connection's end is read: poll briefly).
    drop(red_1);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(events) = open(red.clone()).await {
            reopened = Some(events);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a closed stream's slot is freed");
    println!("event streams: per party 2 (the 3rd answered 429), in total 3 (the 4th answered 503), a closed stream's slot reused");
    server.stop().await;
}

/// `GET /healthz` on `stream`, keeping the connection open; the status.
async fn healthz_on(stream: &mut TcpStream) -> (u16, String) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    read_answer(stream)
        .await
        .expect("the connection was closed before the answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_answered_503_and_the_open_ones_served() {
    const LIMIT: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| config.limits.max_connections = LIMIT).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        assert_eq!(healthz_on(&mut stream).await.0, 200);
        open.push(stream);
    }
    let mut over = TcpStream::connect(&address).await.unwrap();
    let (status, answer) = healthz_on(&mut over).await;
    assert_eq!(status, 503, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(lower.contains("retry-after: 5"), "{answer}");
    assert!(
        answer.contains(&format!("{}connections", "https://deconflict.invalid/problems/")),
        "{answer}"
    );
    assert!(answer.contains("--max-connections"), "{answer}");
    let mut rest = Vec::new();
    assert_eq!(
        over.read_to_end(&mut rest).await.unwrap(),
        0,
        "closed after the answer"
    );
    // The open connections are still served, keep-alive.
    for stream in &mut open {
        assert_eq!(healthz_on(stream).await.0, 200);
    }
    // One closes: a new connection is taken again.
    drop(open.pop());
    let mut taken = false;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if healthz_on(&mut stream).await.0 == 200 {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(taken, "a closed connection's slot is freed");
    println!("connections: {LIMIT} open and served, the next answered 503 problem+json and closed, a freed slot taken again");
    drop(open);
    server.stop().await;
}

/// Reads one HTTP/1.1 answer with a `content-length` from `stream`: its
/// status and its text (head and body).
async fn read_answer(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return Ok((status, text));
            }
        }
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "closed before the whole answer: {:?}",
                    String::from_utf8_lossy(&answer)
                ),
            ));
        }
        answer.extend_from_slice(&buffer[..n]);
    }
}

/// The head of a chunked `POST /v1/activities` as `token`.
fn chunked_head(token: &str) -> String {
    format!(
        "POST /v1/activities HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
}

/// `count` chunks of `bytes` spaces each, in HTTP/1.1 chunked coding.
fn chunks_of_spaces(count: usize, bytes: usize) -> Vec<u8> {
    let mut coded = Vec::new();
    for _ in 0..count {
        coded.extend_from_slice(format!("{bytes:x}\r\n").as_bytes());
        coded.extend(std::iter::repeat_n(b' ', bytes));
        coded.extend_from_slice(b"\r\n");
    }
    coded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_is_read_within_the_drain_limits_and_no_further() {
    const LIMIT: usize = 2_048;
    const DRAIN_BYTES: usize = 16 * 1024;
    const DRAIN_MS: u64 = 300;
    const WAIT: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| {
        config.limits.max_body_bytes = LIMIT;
        config.limits.body_drain_bytes = DRAIN_BYTES;
        config.limits.body_drain_ms = DRAIN_MS;
    })
    .await;
    let (_, blue) = server.party("blue", "military").await;
    let address = server.url.trim_start_matches("http://").to_owned();

    // Within the drain: read to its end, answered 413, and the connection
    // serves the next request (nothing of the body was left unread).
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let mut request = chunked_head(&blue).into_bytes();
    request.extend(chunks_of_spaces(8, 1_024));
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let (status, answer) = tokio::time::timeout(WAIT, read_answer(&mut stream))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("--max-body-bytes"), "{answer}");
    assert_eq!(
        healthz_on(&mut stream).await.0,
        200,
        "the same connection serves on"
    );

    // A sender that stalls past the limit: answered once the drain time is
    // up, then the connection is closed (its body never ended).
    let mut stalled = TcpStream::connect(&address).await.unwrap();
    let mut request = chunked_head(&blue).into_bytes();
    request.extend(chunks_of_spaces(3, 1_024));
    stalled.write_all(&request).await.unwrap();
    let sent = std::time::Instant::now();
    let (status, answer) = tokio::time::timeout(WAIT, read_answer(&mut stalled))
        .await
        .expect("answered")
        .unwrap();
    let stalled_wait = sent.elapsed();
    assert_eq!(status, 413, "{answer}");
    assert!(
        stalled_wait >= Duration::from_millis(DRAIN_MS),
        "the rest was waited for ({stalled_wait:?})"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, stalled.read_to_end(&mut rest))
        .await
        .expect("closed");
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "closed after the answer: {closed:?} {rest:?}"
    );
    server.stop().await;

    // Past the drain's bytes: answered without waiting out the drain time
    // (here longer than the test waits), however long the body goes on.
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| {
        config.limits.max_body_bytes = LIMIT;
        config.limits.body_drain_bytes = DRAIN_BYTES;
        config.limits.body_drain_ms = 60_000;
    })
    .await;
    let (_, blue) = server.party("blue", "military").await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut endless = TcpStream::connect(&address).await.unwrap();
    let mut request = chunked_head(&blue).into_bytes();
    request.extend(chunks_of_spaces((LIMIT + DRAIN_BYTES) / 1_024 + 4, 1_024));
    endless.write_all(&request).await.unwrap();
    let (status, answer) = tokio::time::timeout(WAIT, read_answer(&mut endless))
        .await
        .expect("answered before the drain time (60 s): the byte bound holds")
        .unwrap();
    assert_eq!(status, 413, "{answer}");
    println!(
        "body drain: a chunked 8 KiB body over a {LIMIT}-byte limit read to its end, answered 413, the connection kept; a sender stalled past the limit answered after {} ms (drain time {DRAIN_MS} ms) and closed; one past the {DRAIN_BYTES}-byte drain answered at once",
        stalled_wait.as_millis()
    );
    server.stop().await;
}
