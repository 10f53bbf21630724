//! `/v1/ws` bounds what a client may send: it only ever needs Close and
//! pings, so a message (or frame) above `ws_max_message_bytes` (64 KiB by
//! default; set lower here to show it is the configured one) ends its stream and frees
//! its subscriber slot, while one at the limit is ignored and the stream
//! serves on (tungstenite's defaults would buffer up to 64 MiB).

mod common;

use std::time::Duration;

use common::{patrol, start, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const MAX_CLIENT_MESSAGE_BYTES: usize = 10_000;

async fn subscribers_become(server: &Server, count: usize) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.state.hub.subscriber_count() != count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} subscribers within 5 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_past_the_limit_ends_its_stream_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |config| {
        config.limits.ws_max_message_bytes = MAX_CLIENT_MESSAGE_BYTES
    })
    .await;
    let (_, blue) = server.party("blue", "military").await;
    let (_, red) = server.party("red", "military").await;
    let mut within = server.websocket(&red).await;
    let mut past = server.websocket(&red).await;
    subscribers_become(&server, 2).await;

    within
        .send(Message::Text("x".repeat(MAX_CLIENT_MESSAGE_BYTES).into()))
        .await
        .unwrap();
    past.send(Message::Text("x".repeat(MAX_CLIENT_MESSAGE_BYTES + 1).into()))
        .await
        .unwrap();
    // The server ends the one past the limit: a Close, an error or the end.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match past.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream past the limit ended within 5 s");
    subscribers_become(&server, 1).await;

    // The one at the limit still gets its party's events.
    server.notify(&blue, patrol(41.400, "full", 8, 10)).await;
    server.notify(&red, patrol(41.404, "full", 8, 10)).await;
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Text(text))) = within.next().await {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["type"] == "conflict.opened" {
                    return value;
                }
            } else {
                panic!("the stream within the limit ended");
            }
        }
    })
    .await
    .expect("the conflict on the stream within the limit, within 5 s");
    assert!(event["id"].as_u64().is_some());
    server.stop().await;
}
