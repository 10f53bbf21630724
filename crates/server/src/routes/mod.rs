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
    if let Ok(receipt) = Receipt::build_with(
        &head.paths,
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

/// A receipt serialized exactly as the audit crate's [`Receipt`] is (the
/// same members in its declaration order, the same bytes), with each
/// hash's base64 written from a stack buffer: `Hash`'s own `Serialize`
/// makes a `String` per hash, about twenty per committed feature.
#[derive(Debug)]
pub struct ReceiptAnswer(pub Receipt);

impl serde::Serialize for ReceiptAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let receipt = &self.0;
        let mut out = serializer.serialize_struct("Receipt", 4)?;
        out.serialize_field("log_index", &receipt.log_index)?;
        out.serialize_field("leaf_hash", &HashText(&receipt.leaf_hash))?;
        out.serialize_field("checkpoint", &receipt.checkpoint)?;
        out.serialize_field("inclusion_proof", &ProofText(&receipt.inclusion_proof))?;
        out.end()
    }
}

/// A hash as its standard padded base64 string (`Hash::to_base64`).
struct HashText<'a>(&'a deconflict_audit::Hash);

impl serde::Serialize for HashText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        // 32 bytes are 44 characters of padded base64.
        let mut text = [0u8; 44];
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(self.0.as_bytes(), &mut text)
            .map_err(serde::ser::Error::custom)?;
        let text = std::str::from_utf8(&text[..written]).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

struct ProofText<'a>(&'a [deconflict_audit::Hash]);

impl serde::Serialize for ProofText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(HashText))
    }
}

/// A JSON answer serialized straight into its body (axum's `Json` would
/// start from 128 bytes and grow; `capacity` is the caller's estimate).
/// An answer of at least [`POOLED_ANSWER_MIN`] bytes (a FeatureCollection's
/// results: ~0.5 MB for 200 features) is written into a buffer of
/// [`ANSWER_BUFFERS`], which takes it back once hyper has sent it.
pub fn json_response(
    status: axum::http::StatusCode,
    body: &impl serde::Serialize,
    capacity: usize,
) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    let headers = [(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    )];
    if capacity < POOLED_ANSWER_MIN {
        let mut bytes = Vec::with_capacity(capacity);
        serde_json::to_writer(&mut bytes, body).map_err(|e| ApiError::unavailable(&e))?;
        return Ok((status, headers, bytes).into_response());
    }
    let mut buffer = ANSWER_BUFFERS.take(capacity);
    serde_json::to_writer(&mut buffer.0, body).map_err(|e| ApiError::unavailable(&e))?;
    Ok((status, headers, Bytes::from_owner(buffer)).into_response())
}

/// Answers estimated at this size or more are written into pooled buffers.
const POOLED_ANSWER_MIN: usize = 64 * 1024;

/// Large answers' buffers, reused: each new one of ~0.5 MB was fresh memory
/// from the allocator, whose first touch made the kernel zero its pages
/// (~3.5 % of the tokio workers' samples at 200 features per request).
/// Holds at most [`AnswerBuffers::MAX_HELD`] buffers of at most
/// [`AnswerBuffers::MAX_BYTES`] each.
static ANSWER_BUFFERS: AnswerBuffers = AnswerBuffers {
    free: std::sync::Mutex::new(Vec::new()),
};

struct AnswerBuffers {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl AnswerBuffers {
    /// Enough for 16 connections' answers of 200 features in flight.
    const MAX_HELD: usize = 16;
    /// A buffer larger than this (an answer of ~1,000 features) is freed.
    const MAX_BYTES: usize = 4 * 1024 * 1024;

    /// An empty buffer of at least `capacity` bytes.
    fn take(&'static self, capacity: usize) -> PooledAnswer {
        let held = self.free.lock().ok().and_then(|mut free| free.pop());
        let mut buffer = held.unwrap_or_default();
        buffer.reserve(capacity);
        PooledAnswer(buffer, self)
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() > Self::MAX_BYTES {
            return;
        }
        buffer.clear();
        if let Ok(mut free) = self.free.lock() {
            if free.len() < Self::MAX_HELD {
                free.push(buffer);
            }
        }
    }
}

/// An answer's bytes in a pooled buffer: the body owns it, and dropping it
/// (hyper has written it, or the connection went away) gives it back.
struct PooledAnswer(Vec<u8>, &'static AnswerBuffers);

impl AsRef<[u8]> for PooledAnswer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PooledAnswer {
    fn drop(&mut self) {
        self.1.give_back(std::mem::take(&mut self.0));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::xorshift;
    use deconflict_audit::Hash;

    /// A receipt answer is byte for byte the audit crate's serialization of
    /// the receipt: random indexes of every scale, hashes, proofs of 0 to
    /// 63 hashes, and notes with newlines, quotes and non-ASCII text.
    #[test]
    fn receipt_answers_serialize_as_the_receipt() {
        let mut next = xorshift(0x1234_5678_9abc_def1);
        let hash = |next: &mut dyn FnMut() -> u64| {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            Hash(bytes)
        };
        let notes = [
            "",
            "log.example\n42\nAbC=\n\n\u{2014} log Kx9f\n",
            "\"quoted\" \\ \t é",
        ];
        for round in 0..2_000u64 {
            let receipt = Receipt {
                log_index: next() >> (round % 64),
                leaf_hash: hash(&mut next),
                checkpoint: notes[(round % 3) as usize].repeat((round % 5) as usize),
                inclusion_proof: (0..next() % 64).map(|_| hash(&mut next)).collect(),
            };
            assert_eq!(
                serde_json::to_vec(&ReceiptAnswer(receipt.clone())).unwrap(),
                serde_json::to_vec(&receipt).unwrap(),
                "{receipt:?}"
            );
        }
    }

    /// What `json_response` answers is the value's serialization, below and
    /// above the pooled size, with answers held at once and given back in
    /// any order (a buffer given back is reused, never with what it held).
    #[tokio::test]
    async fn answers_are_the_serialized_values_whether_pooled_or_not() {
        let mut next = xorshift(0x0dd_ba11_cafe_f00d);
        let mut held = Vec::new();
        for _ in 0..300 {
            let length = match next() % 3 {
                0 => (next() % 1_000) as usize,
                1 => POOLED_ANSWER_MIN + (next() % 100_000) as usize,
                _ => (next() % 300_000) as usize,
            };
            let fill = (b'a' + (next() % 26) as u8) as char;
            let value = serde_json::json!({"results": fill.to_string().repeat(length)});
            let estimate = match next() % 3 {
                0 => 0,
                1 => length / 2,
                _ => length * 2,
            };
            let response = json_response(axum::http::StatusCode::OK, &value, estimate).unwrap();
            held.push((response, serde_json::to_vec(&value).unwrap()));
            // Answers are sent (and dropped) in any order, some kept a while.
            while held.len() > (next() % 24) as usize {
                let at = (next() as usize) % held.len();
                let (response, expected) = held.swap_remove(at);
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                assert_eq!(body.len(), expected.len());
                assert!(body == expected);
            }
        }
        let held_buffers = ANSWER_BUFFERS.free.lock().unwrap();
        assert!(held_buffers.len() <= AnswerBuffers::MAX_HELD);
        assert!(held_buffers
            .iter()
            .all(|buffer| buffer.is_empty() && buffer.capacity() <= AnswerBuffers::MAX_BYTES));
    }
}
