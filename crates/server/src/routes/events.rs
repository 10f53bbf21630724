//! `GET /v1/events`: Server-Sent Events of the conflicts that concern the
//! caller, redacted as in `GET /v1/conflicts`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::json;

use crate::auth::Party;
use crate::hub::Subscription;
use crate::problem::ApiError;
use crate::state::AppState;

/// The event stream. Event types: `conflict.opened`, `conflict.updated`,
/// `conflict.resolved` (data: a Conflict; id: its log index), and `lagged`
/// (data: `{dropped}`) when this subscriber was too slow and events were
/// dropped: re-read `GET /v1/conflicts`.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    responses((status = 200, description = "text/event-stream"), (status = 401), (status = 429, description = "the party's stream limit is reached"), (status = 503, description = "the subscriber limit is reached")),
    security(("bearer" = [])))]
pub async fn stream(party: Party, State(state): State<AppState>) -> Result<Response, ApiError> {
    let subscription = state.hub.subscribe(party.viewer())?;
    // Subscribed first, so that what was never delivered reaches this stream.
    crate::hotline::stream_opened(&state, party.viewer().party);
    let events = stream::unfold(subscription, |mut sub: Subscription| async move {
        // A drop is reported before the next event that got through.
        let dropped = sub.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let event = Event::default()
                .event("lagged")
                .data(json!({ "dropped": dropped }).to_string());
            return Some((Ok::<_, Infallible>(event), sub));
        }
        let delivery = sub.events.recv().await?;
        // The data was encoded once by the hub for every stream.
        let mut event = Event::default().event(delivery.kind).data(&*delivery.data);
        if let Some(id) = delivery.id {
            event = event.id(id.to_string());
        }
        Some((Ok(event), sub))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
