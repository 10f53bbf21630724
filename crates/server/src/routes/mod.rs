//! The HTTP surface: one module per resource, the router, and what they
//! share (body reading, receipts, blocking store access).

pub mod activities;
pub mod conflicts;
pub mod demo;
pub mod escalation;
pub mod events;
pub mod export;
mod feature_text;
pub mod history;
pub mod incidents;
pub mod log;
pub mod me;
pub mod messages;
pub mod ops;
pub mod parties;
pub mod security;
pub mod tracks;
pub mod web;
pub mod ws;
pub mod zones;

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use deconflict_audit::Receipt;
use deconflict_store::StoreError;
use serde_json::Value;

use crate::driver::{Command, Committed, Reply};
use crate::ledger::NodeReader;
use crate::problem::ApiError;
use crate::state::AppState;

/// The service's router over `state`: testable with `oneshot`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    let router = Router::new()
        .route("/v1/parties", post(parties::create))
        .route("/v1/activities", post(activities::create).get(activities::list))
        .route("/v1/activities/check", post(activities::check))
        .route(
            "/v1/activities/{id}",
            get(activities::get_one)
                .put(activities::update)
                .delete(activities::cancel),
        )
        .route("/v1/conflicts", get(conflicts::list))
        .route("/v1/conflicts/{id}", get(conflicts::get_one))
        .route("/v1/conflicts/{id}/ack", post(conflicts::ack))
        .route("/v1/conflicts/{id}/resolve", post(conflicts::resolve))
        .route("/v1/zones", post(zones::create).get(zones::list))
        .route("/v1/events", get(events::stream))
        .route("/v1/messages", post(messages::send).get(messages::list))
        .route("/v1/messages/{id}/ack", post(messages::ack))
        .route("/v1/incidents", post(incidents::report).get(incidents::list))
        .route("/v1/incidents/{id}/evidence", get(incidents::evidence))
        .route(
            "/v1/parties/{id}/token",
            post(parties::rotate_token).delete(parties::revoke_token),
        )
        .route("/v1/parties/{id}/escalation", put(escalation::set))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/tracks", post(tracks::report).get(tracks::list))
        .route("/v1/parties/{id}/tak-certificate", post(tracks::tak_certificate))
        .route("/v1/log/checkpoint", get(log::checkpoint))
        .route("/v1/log/public-key", get(log::public_key))
        .route("/v1/log/entries", get(log::entries))
        .route("/v1/log/proof/inclusion", get(log::inclusion))
        .route("/v1/log/proof/consistency", get(log::consistency))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/me", get(me::get))
        .route("/v1/export", get(export::export))
        .route("/v1/history", get(history::history))
        .merge(web::router())
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(track));
    security::layer(router, &state.config).with_state(state)
}

/// Request latency by route, and a log line per request (never the
/// `Authorization` header).
async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::histogram!(
        "deconflict_request_seconds",
        "route" => route.clone(),
        "method" => method.to_string(),
        "status" => status.to_string(),
    )
    .record(elapsed.as_secs_f64());
    tracing::debug!(%method, route, status, elapsed_us = elapsed.as_micros() as u64, "request");
    response
}

/// A JSON request body read as a value: 413 beyond the size limit, 400
/// (as problem+json) when it is not JSON.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let BodyBytes(bytes) = BodyBytes::from_request(request, state).await?;
        json_value(&bytes).map(JsonBody)
    }
}

/// A body read as JSON, or the 400 of [`JsonBody`].
pub fn json_value(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| ApiError::field("", format!("not valid JSON: {error}")))
}

/// A request body as bytes, with the limits of [`JsonBody`]: for a route
/// that reads its body into typed values first (`POST /v1/tracks`, the
/// hottest) and falls back to [`json_value`] for the error messages.
#[derive(Debug)]
pub struct BodyBytes(pub Bytes);

impl FromRequest<AppState> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limits = &state.config.limits;
        let drain = Drain {
            bytes: limits.body_drain_bytes,
            within: Duration::from_millis(limits.body_drain_ms),
        };
        read_body(request, limits.max_body_bytes, drain)
            .await
            .map(BodyBytes)
    }
}

/// How much of an oversized body is read and discarded before the 413.
#[derive(Debug, Clone, Copy)]
struct Drain {
    bytes: usize,
    within: Duration,
}

/// Reads a body of at most `limit` bytes. Beyond it the answer is 413, but
/// first the rest is read and discarded (at most `drain.bytes` past the
/// limit, for at most `drain.within`): closing a connection with unread
/// bytes sends a reset, which can destroy the answer before a client still
/// sending reads it, and a chunked body has no length to refuse up front.
/// A body drained to its end also leaves the connection usable. A body
/// longer than that is answered at once; its connection is then closed.
async fn read_body(request: Request, limit: usize, drain: Drain) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut body = request.into_body().into_data_stream();
    let unreadable = |error: axum::Error| ApiError::bad_request(format!("cannot read the body: {error}"));
    if let Some(length) = declared.filter(|&length| length > limit as u64) {
        // Too long by its own account: read the rest only if it can all be
        // read (else the connection closes with bytes unread anyway).
        if length - limit as u64 <= drain.bytes as u64 {
            discard(
                &mut body,
                usize::try_from(length).unwrap_or(usize::MAX),
                drain.within,
            )
            .await;
        }
        return Err(ApiError::too_large(limit));
    }
    let mut read = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if read.len() + chunk.len() > limit {
            let past_limit = read.len() + chunk.len() - limit;
            discard(&mut body, drain.bytes.saturating_sub(past_limit), drain.within).await;
            return Err(ApiError::too_large(limit));
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

/// Reads and drops what is left of `body`: about `budget` bytes at most
/// (the chunk that crosses it is read too, and one more read tells whether
/// the body ended there), for at most `within`.
async fn discard(body: &mut axum::body::BodyDataStream, budget: usize, within: Duration) {
    let mut drained = 0usize;
    let _ = tokio::time::timeout(within, async {
        while drained <= budget {
            match body.next().await {
                Some(Ok(chunk)) => drained = drained.saturating_add(chunk.len()),
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
}

/// Runs blocking store work off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(ApiError::unavailable(&error)),
        Err(error) => Err(ApiError::unavailable(&error)),
    }
}

/// The receipt of a committed change, with its inclusion proof.
pub async fn receipt<T>(state: &AppState, committed: &Committed<T>) -> Result<Value, ApiError> {
    let receipt = receipt_of(state, committed).await?;
    serde_json::to_value(receipt).map_err(|e| ApiError::unavailable(&e))
}

/// [`receipt`] as the audit crate's type, for an answer serialized straight
/// into its body.
pub async fn receipt_of<T>(state: &AppState, committed: &Committed<T>) -> Result<Receipt, ApiError> {
    // The batch's own nodes answer at once; the store is the fallback.
    let head = &committed.head;
    if let Ok(receipt) = Receipt::build(
        &head.batch_nodes,
        committed.log_index,
        &head.checkpoint,
        head.note.clone(),
    ) {
        return Ok(receipt);
    }
    let store = std::sync::Arc::clone(&state.store);
    let head = std::sync::Arc::clone(&committed.head);
    let index = committed.log_index;
    blocking(move || {
        store.read(move |conn| {
            Receipt::build(&NodeReader::new(conn), index, &head.checkpoint, head.note.clone())
                .map_err(|e| StoreError::Rejected(e.to_string()))
        })
    })
    .await
}

/// A JSON answer serialized straight into its body (axum's `Json` would
/// start from 128 bytes and grow; `capacity` is the caller's estimate).
pub fn json_response(
    status: axum::http::StatusCode,
    body: &impl serde::Serialize,
    capacity: usize,
) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    let mut bytes = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut bytes, body).map_err(|e| ApiError::unavailable(&e))?;
    Ok((
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

/// Hands a command to the driver and waits until it is committed (or
/// refused): `make` builds the command around the reply channel.
pub async fn commit<T>(
    state: &AppState,
    make: impl FnOnce(Reply<T>) -> Command,
) -> Result<Committed<T>, ApiError> {
    let (reply, wait) = crate::driver::reply_channel();
    state.driver.submit(make(reply))?;
    answer(wait).await
}

/// Waits for the driver's answer.
pub async fn answer<T>(
    reply: tokio::sync::oneshot::Receiver<Result<Committed<T>, ApiError>>,
) -> Result<Committed<T>, ApiError> {
    reply
        .await
        .map_err(|_| ApiError::unavailable(&"the driver dropped the request"))?
}

/// A decimal id from the path; anything else names nothing (404).
pub fn path_id(text: &str, what: &str) -> Result<u64, ApiError> {
    text.parse::<u64>().map_err(|_| ApiError::not_found(what))
}
