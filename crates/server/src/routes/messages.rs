//! Hotline messages (issue 5): sent by a party to another, listed for the
//! sender and the recipient (all, for a broker), acknowledged by the
//! recipient.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::PartyId;
use deconflict_hotline::{ConflictId, IncidentId, Link, MessageId, MessageSpec, Priority};
use serde_json::{json, Value};

use crate::auth::Party;
use crate::driver::Command;
use crate::hotline::{render_message, store as hotline_store, HotlineCommand};
use crate::ledger;
use crate::problem::{ApiError, FieldProblem};
use crate::routes::{blocking, commit, path_id, receipt, JsonBody};
use crate::state::AppState;

pub(crate) fn problem(pointer: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
}

/// An optional non-negative integer field.
pub(crate) fn optional_u64(body: &Value, field: &str, errors: &mut Vec<FieldProblem>) -> Option<u64> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(value) => value.as_u64().or_else(|| {
            errors.push(problem(&format!("/{field}"), "must be a non-negative integer"));
            None
        }),
    }
}

/// `{to, body, priority, ack_within_s?, conflict_id?, incident_id?}` → 201
/// with the message and its receipt.
#[utoipa::path(post, path = "/v1/messages", tag = "hotline",
    request_body(content = Object, description = "`{to, body, priority: routine|priority|flash, ack_within_s?, conflict_id?, incident_id?}`"),
    responses((status = 201, description = "the message with `receipt`"), (status = 401), (status = 422, description = "names the field: unknown recipient, oneself, body too long"), (status = 429)),
    security(("bearer" = [])))]
pub async fn send(
    party: Party,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let viewer = party.viewer();
    let mut errors = Vec::new();
    let to = match body.get("to") {
        Some(value) => value.as_u64().or_else(|| {
            errors.push(problem("/to", "must be a party id"));
            None
        }),
        None => {
            errors.push(problem("/to", "required: the recipient's party id"));
            None
        }
    };
    let text = match body.get("body") {
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            errors.push(problem("/body", "must be a string"));
            None
        }
        None => {
            errors.push(problem("/body", "required: the message text"));
            None
        }
    };
    let priority = match body.get("priority") {
        Some(Value::String(text)) => Priority::parse(text).or_else(|| {
            errors.push(problem(
                "/priority",
                format!("unknown priority {text:?}: routine, priority or flash"),
            ));
            None
        }),
        Some(_) | None => {
            errors.push(problem("/priority", "required: routine, priority or flash"));
            None
        }
    };
    let ack_within_s = optional_u64(&body, "ack_within_s", &mut errors).and_then(|s| {
        u32::try_from(s).ok().or_else(|| {
            errors.push(problem("/ack_within_s", "too large"));
            None
        })
    });
    let conflict_id = optional_u64(&body, "conflict_id", &mut errors);
    let incident_id = optional_u64(&body, "incident_id", &mut errors);
    if conflict_id.is_some() && incident_id.is_some() {
        errors.push(problem(
            "/incident_id",
            "a message links a conflict or an incident, not both",
        ));
    }
    let (Some(to), Some(text), Some(priority), true) = (to, text, priority, errors.is_empty()) else {
        return Err(ApiError::invalid("the message is not valid", errors));
    };
    if let Some(id) = conflict_id {
        let store = std::sync::Arc::clone(&state.store);
        let found = blocking(move || store.read(|conn| ledger::conflict_by_id(conn, id))).await?;
        if !found.is_some_and(|(record, _)| record.visible_to(&viewer)) {
            return Err(ApiError::field(
                "/conflict_id",
                "no such conflict involving the sender",
            ));
        }
    }
    let link = match (conflict_id, incident_id) {
        (Some(c), _) => Some(Link::Conflict(ConflictId(c))),
        (None, Some(i)) => Some(Link::Incident(IncidentId(i))),
        (None, None) => None,
    };
    let committed = commit(&state, |reply| {
        Command::Hotline(HotlineCommand::Send {
            viewer,
            spec: MessageSpec {
                id: MessageId(0),
                from: viewer.party,
                to: PartyId(to),
                priority,
                body: text,
                ack_within_s,
                link,
            },
            reply,
        })
    })
    .await?;
    let receipt = receipt(&state, &committed).await?;
    let mut out = render_message(&committed.value);
    out["receipt"] = receipt;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `{messages: [Message]}` sent or received by the caller (every message,
/// for a broker), oldest first, at most `--max-list`.
#[utoipa::path(get, path = "/v1/messages", tag = "hotline",
    responses((status = 200, description = "`{messages: [Message]}`"), (status = 401)),
    security(("bearer" = [])))]
pub async fn list(party: Party, State(state): State<AppState>) -> Result<Response, ApiError> {
    let viewer = party.viewer();
    let limit = state.config.limits.max_list;
    let store = std::sync::Arc::clone(&state.store);
    let found =
        blocking(move || store.read(move |conn| hotline_store::messages_for(conn, &viewer, limit))).await?;
    let messages: Vec<Value> = found.iter().map(render_message).collect();
    Ok(Json(json!({ "messages": messages })).into_response())
}

/// The recipient acknowledges: the deadline, flash repeats and any ladder
/// stop, and the sender hears `message.acked`. Anyone else's message is a
/// 404 (403 for its sender and brokers, who know it exists). Twice is fine.
#[utoipa::path(post, path = "/v1/messages/{id}/ack", tag = "hotline", params(("id" = u64, Path)),
    responses((status = 200, description = "the message with `receipt`"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn ack(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "message")?;
    let committed = commit(&state, |reply| {
        Command::Hotline(HotlineCommand::Ack {
            viewer: party.viewer(),
            message: id,
            reply,
        })
    })
    .await?;
    let receipt = receipt(&state, &committed).await?;
    let (message, again) = &committed.value;
    let mut out = render_message(message);
    out["already_acked"] = json!(again);
    out["receipt"] = receipt;
    Ok(Json(out).into_response())
}
