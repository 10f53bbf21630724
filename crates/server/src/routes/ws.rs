//! `GET /v1/ws`: the events of `/v1/events` over a WebSocket, for clients
//! that prefer one (TAK plug-ins, dashboards behind proxies that buffer SSE).
//!
//! Same subscription as SSE (same party filter, same bounded queue, same
//! subscriber limit, same drop policy): each event is one text message
//! `{"type", "id" (the log index, absent for track alerts), "data"}`, and a
//! `{"type": "lagged", "data": {"dropped"}}` message comes before the next
//! event that got through after a drop. Messages from the client are
//! ignored except Close; pings are answered by the WebSocket layer.

use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::auth::Party;
use crate::hub::Subscription;
use crate::problem::ApiError;
use crate::state::AppState;

/// What one WebSocket may buffer. The client only ever sends Close and
/// pings (anything else is ignored), so its messages are small: the
/// default read buffer (128 KiB, allocated when the socket opens) and
/// message limit (64 MiB; ours is `ServiceLimits::ws_max_message_bytes`)
/// would let every held stream cost 128 KiB and any client make the server
/// buffer 64 MiB for nothing.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Events are written one message at a time and flushed: no need to
/// gather 128 KiB before writing.
const WRITE_BUFFER_BYTES: usize = 0;

#[utoipa::path(get, path = "/v1/ws", tag = "events",
    responses((status = 101, description = "WebSocket: one JSON text message per event"), (status = 401), (status = 429, description = "the party's stream limit is reached"), (status = 503, description = "the subscriber limit is reached")),
    security(("bearer" = [])))]
pub async fn upgrade(
    party: Party,
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let subscription = state.hub.subscribe(party.viewer())?;
    // Subscribed first, so that what was never delivered reaches this stream.
    crate::hotline::stream_opened(&state, party.viewer().party);
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(state.config.limits.ws_max_message_bytes)
        .max_frame_size(state.config.limits.ws_max_message_bytes)
        .on_upgrade(move |socket| pump(socket, subscription)))
}

async fn pump(mut socket: WebSocket, mut sub: Subscription) {
    loop {
        let dropped = sub.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let text = json!({"type": "lagged", "data": {"dropped": dropped}}).to_string();
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        tokio::select! {
            delivery = sub.events.recv() => {
                let Some(delivery) = delivery else { return };
                // The data was encoded once by the hub for every stream.
                if socket.send(Message::Text(delivery.ws_text().into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
