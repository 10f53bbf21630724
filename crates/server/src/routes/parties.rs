//! `POST /v1/parties`: the admin creates a party and gets its token once;
//! `POST`/`DELETE /v1/parties/{id}/token`: the admin rotates or revokes it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::PartyId;
use serde_json::{json, Value};

use crate::auth::{new_token, token_hash, Admin};
use crate::driver::Command;
use crate::ledger;
use crate::model::PartyKind;
use crate::problem::{ApiError, FieldProblem};
use crate::routes::{blocking, commit, path_id, receipt, JsonBody};
use crate::state::AppState;

/// Longest party name, in characters.
pub const MAX_PARTY_NAME_CHARS: usize = 100;

/// `{name, kind}` → 201 `{id, name, kind, token, receipt}`. The token is
/// shown once: only its digest is kept.
#[utoipa::path(post, path = "/v1/parties", tag = "parties",
    request_body(content = Object, description = "`{name, kind}`: kind is military, humanitarian, civil or broker"),
    responses((status = 201, description = "`{id, name, kind, token, receipt}`"), (status = 401), (status = 403), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let name = match body.get("name").and_then(Value::as_str) {
        Some(name) if name.trim().is_empty() => {
            errors.push(problem("/name", "must not be empty"));
            None
        }
        Some(name) if name.chars().count() > MAX_PARTY_NAME_CHARS => {
            errors.push(problem(
                "/name",
                format!("longer than {MAX_PARTY_NAME_CHARS} characters"),
            ));
            None
        }
        Some(name) if name.chars().any(char::is_control) => {
            errors.push(problem("/name", "must not contain control characters"));
            None
        }
        Some(name) => Some(name.to_owned()),
        None => {
            errors.push(problem("/name", "required: a string"));
            None
        }
    };
    let kind = match body.get("kind").and_then(Value::as_str) {
        Some(text) => PartyKind::parse(text).or_else(|| {
            errors.push(problem(
                "/kind",
                format!("unknown kind {text:?}: military, humanitarian, civil or broker"),
            ));
            None
        }),
        None => {
            errors.push(problem(
                "/kind",
                "required: military, humanitarian, civil or broker",
            ));
            None
        }
    };
    let (Some(name), Some(kind), true) = (name, kind, errors.is_empty()) else {
        return Err(ApiError::invalid("the party is not valid", errors));
    };
    let token = new_token();
    let digest = token_hash(&token);
    let committed = commit(&state, |reply| Command::CreateParty {
        name,
        kind,
        token_hash: digest,
        reply,
    })
    .await?;
    let party = committed.value.clone();
    state.directory.add(digest, party.clone());
    tracing::info!(party = party.id.0, name = %party.name, kind = party.kind.as_str(), "party created");
    let receipt = receipt(&state, &committed).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": party.id.0,
            "name": party.name,
            "kind": party.kind.as_str(),
            "token": token,
            "receipt": receipt,
        })),
    ))
}

fn problem(pointer: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
}

/// Rotates party `id`'s token: 200 `{id, token}` with a new token, shown
/// once. The old token answers 401 from the next request on, and the
/// party's open event streams (SSE and WebSocket) are ended, so nothing
/// reaches whoever holds the old one. The new digest is committed before
/// the answer; the change is not an audit-log entry (the log records what
/// parties notify, and token digests were never in it).
#[utoipa::path(post, path = "/v1/parties/{id}/token", tag = "parties", params(("id" = u64, Path)),
    responses((status = 200, description = "`{id, token}`: the new token, shown once"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn rotate_token(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = PartyId(path_id(&id, "party")?);
    let token = new_token();
    replace_token(&state, id, token_hash(&token), None).await?;
    tracing::info!(party = id.0, "party token rotated");
    Ok(Json(json!({ "id": id.0, "token": token })).into_response())
}

/// Revokes party `id`'s token: 204. The party keeps its activities,
/// conflicts and messages, but no token reaches them until the admin
/// rotates a new one (`POST /v1/parties/{id}/token`). Like a rotation, the
/// old token answers 401 at once and the party's event streams end; and
/// the party's TAK connections are closed and its TAK certificates issued
/// until now refused (the admin issues new ones after a rotation).
#[utoipa::path(delete, path = "/v1/parties/{id}/token", tag = "parties", params(("id" = u64, Path)),
    responses((status = 204, description = "revoked"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = PartyId(path_id(&id, "party")?);
    // The digest of a token nobody is ever shown: no token matches it, and
    // the column stays unique and 32 bytes as every party's does.
    let at_ms = unix_ms();
    replace_token(&state, id, token_hash(&new_token()), Some(at_ms)).await?;
    let closed = state.live.revoke_party(id, at_ms);
    tracing::info!(
        party = id.0,
        tak_connections_closed = closed,
        "party token revoked"
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Commits the new digest (and, for a revocation, its time), then swaps it
/// in memory and ends the party's streams: the old token stops working only
/// once the change is durable, so a failed commit (503) leaves the old
/// token as the store has it.
async fn replace_token(
    state: &AppState,
    id: PartyId,
    digest: [u8; 32],
    revoked_at_ms: Option<i64>,
) -> Result<(), ApiError> {
    if state.directory.party(id).is_none() {
        return Err(ApiError::not_found("party"));
    }
    let store = std::sync::Arc::clone(&state.store);
    let found = blocking(move || {
        store.write(move |conn| match revoked_at_ms {
            Some(at_ms) => ledger::revoke_token(conn, id, digest, at_ms),
            None => ledger::set_token_hash(conn, id, digest),
        })
    })
    .await?;
    if !found || !state.directory.replace_token(id, digest) {
        return Err(ApiError::not_found("party"));
    }
    let ended = state.hub.close_party(id);
    tracing::info!(party = id.0, streams_ended = ended, "party's event streams ended");
    Ok(())
}
