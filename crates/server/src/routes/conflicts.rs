//! Conflicts: listed for the parties involved (all for a broker),
//! acknowledged and resolved by the involved parties.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::Party;
use crate::driver::Command;
use crate::ledger;
use crate::model::{render_conflict, ConflictState};
use crate::problem::{ApiError, FieldProblem};
use crate::routes::activities::parse_query;
use crate::routes::{blocking, commit, path_id, receipt};
use crate::state::AppState;

/// `{conflicts: [Conflict]}` involving the caller, optionally in one state.
#[utoipa::path(get, path = "/v1/conflicts", tag = "conflicts",
    params(("state" = Option<String>, Query, description = "open, acknowledged or resolved")),
    responses((status = 200, description = "`{conflicts: [Conflict]}`"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn list(
    party: Party,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(query)?;
    let wanted = match query.get("state") {
        None => None,
        Some(text) => Some(ConflictState::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "a query parameter is not valid",
                vec![FieldProblem {
                    pointer: "/query/state".into(),
                    message: "must be open, acknowledged or resolved".into(),
                }],
            )
        })?),
    };
    let viewer = party.viewer();
    let store = std::sync::Arc::clone(&state.store);
    let found = blocking(move || store.read(|conn| ledger::conflicts_for(conn, &viewer, wanted))).await?;
    let conflicts: Vec<_> = found
        .iter()
        .filter_map(|(record, full)| render_conflict(record, *full, &viewer))
        .collect();
    Ok(Json(json!({ "conflicts": conflicts })).into_response())
}

/// One conflict the caller is involved in (or any, for a broker).
#[utoipa::path(get, path = "/v1/conflicts/{id}", tag = "conflicts", params(("id" = u64, Path)),
    responses((status = 200, description = "a Conflict"), (status = 401), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_one(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "conflict")?;
    let viewer = party.viewer();
    let store = std::sync::Arc::clone(&state.store);
    let found = blocking(move || store.read(|conn| ledger::conflict_by_id(conn, id))).await?;
    let rendered = found
        .and_then(|(record, full)| render_conflict(&record, full, &viewer))
        .ok_or_else(|| ApiError::not_found("conflict"))?;
    Ok(Json(rendered).into_response())
}

async fn act(state: AppState, party: Party, id: String, resolve: bool) -> Result<Response, ApiError> {
    let id = path_id(&id, "conflict")?;
    let viewer = party.viewer();
    // A resolved conflict is a 409 for those who may see it, a 404 for
    // everyone else; the driver answers for live ones.
    let store = std::sync::Arc::clone(&state.store);
    let found = blocking(move || store.read(|conn| ledger::conflict_by_id(conn, id))).await?;
    match found {
        Some((record, _)) if record.visible_to(&viewer) && record.state == ConflictState::Resolved => {
            return Err(ApiError::conflict("the conflict is already resolved"));
        }
        Some((record, _)) if record.visible_to(&viewer) => {}
        _ => return Err(ApiError::not_found("conflict")),
    }
    let committed = commit(&state, |reply| {
        if resolve {
            Command::Resolve {
                viewer,
                conflict: id,
                reply,
            }
        } else {
            Command::Ack {
                viewer,
                conflict: id,
                reply,
            }
        }
    })
    .await?;
    let receipt = receipt(&state, &committed).await?;
    let (record, full) = &committed.value;
    Ok(Json(json!({
        "conflict": render_conflict(record, *full, &viewer),
        "receipt": receipt,
    }))
    .into_response())
}

/// Acknowledges a conflict for the caller's side; once every side has,
/// its state is `acknowledged` (until it changes).
#[utoipa::path(post, path = "/v1/conflicts/{id}/ack", tag = "conflicts", params(("id" = u64, Path)),
    responses((status = 200, description = "`{conflict, receipt}`"), (status = 401), (status = 403, description = "a broker not involved"), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn ack(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(state, party, id, false).await
}

/// Resolves a conflict by agreement; it reopens as a new conflict if either
/// activity changes and the pair still conflicts.
#[utoipa::path(post, path = "/v1/conflicts/{id}/resolve", tag = "conflicts", params(("id" = u64, Path)),
    responses((status = 200, description = "`{conflict, receipt}`"), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn resolve(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(state, party, id, true).await
}
