//! The audit log over HTTP: the signed checkpoint, the verifier key,
//! entries (full leaves only for who they concern), and RFC 9162 proofs.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use deconflict_audit::{consistency_proof, inclusion_proof, Checkpoint};
use deconflict_store::StoreError;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::ledger::{self, NodeReader};
use crate::model::Viewer;
use crate::problem::{ApiError, FieldProblem};
use crate::routes::activities::parse_query;
use crate::routes::blocking;
use crate::state::AppState;

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The latest signed checkpoint, a C2SP signed note.
#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "log",
    responses((status = 200, description = "text/plain signed note"), (status = 401), (status = 404, description = "nothing logged yet")),
    security(("bearer" = [])))]
pub async fn checkpoint(_caller: Caller, State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = std::sync::Arc::clone(&state.store);
    let note = blocking(move || store.read(ledger::latest_checkpoint)).await?;
    note.map(text)
        .ok_or_else(|| ApiError::not_found("checkpoint: the log is empty"))
}

/// The log's verifier key, `NAME+HASH+BASE64` (Ed25519).
#[utoipa::path(get, path = "/v1/log/public-key", tag = "log",
    responses((status = 200, description = "text/plain verifier key"), (status = 401)),
    security(("bearer" = [])))]
pub async fn public_key(_caller: Caller, State(state): State<AppState>) -> Response {
    text(format!("{}\n", state.verifier))
}

fn number(query: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let problem = |message: &str| {
        ApiError::invalid(
            "a query parameter is not valid",
            vec![FieldProblem {
                pointer: format!("/query/{name}"),
                message: message.to_owned(),
            }],
        )
    };
    query
        .get(name)
        .ok_or_else(|| problem("required: a non-negative integer"))?
        .parse::<u64>()
        .map_err(|_| problem("must be a non-negative integer"))
}

async fn log_size(state: &AppState) -> Result<u64, ApiError> {
    let store = std::sync::Arc::clone(&state.store);
    let note = blocking(move || store.read(ledger::latest_checkpoint)).await?;
    Ok(note
        .and_then(|n| {
            let body = n.split("\n\n").next()?.to_owned() + "\n";
            Checkpoint::parse(&body).ok()
        })
        .map_or(0, |c| c.size))
}

fn viewer_of(caller: &Caller) -> Viewer {
    match caller {
        Caller::Party(p) => p.viewer(),
        // The admin created every party but reads no one's plans: as party
        // 0 (no party), it reads only what is public.
        Caller::Admin => Viewer {
            party: deconflict_engine::PartyId(0),
            broker: false,
        },
    }
}

/// Entries `[from, to)`: `{entries: [{index, leaf_hash, leaf?}]}` with
/// `leaf` (base64 of the exact leaf bytes) for the entries that concern the
/// caller (all, for a broker) and only the hash for the others.
#[utoipa::path(get, path = "/v1/log/entries", tag = "log",
    params(("from" = u64, Query), ("to" = u64, Query, description = "exclusive")),
    responses((status = 200, description = "`{entries: [{index, leaf_hash, leaf?}]}`"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn entries(
    caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(query)?;
    let (from, to) = (number(&query, "from")?, number(&query, "to")?);
    let max = state.config.limits.max_log_entries;
    if to < from || to - from > max {
        return Err(ApiError::field(
            "/query/to",
            format!("must be at least `from` and at most {max} more (--max-log-entries)"),
        ));
    }
    let viewer = viewer_of(&caller);
    let store = std::sync::Arc::clone(&state.store);
    let found = blocking(move || store.read(|conn| ledger::entries(conn, &viewer, from, to))).await?;
    let entries: Vec<Value> = found
        .into_iter()
        .map(|e| {
            let mut entry = json!({"index": e.index, "leaf_hash": e.leaf_hash.to_base64()});
            if let Some(leaf) = e.leaf {
                entry["leaf"] = json!(STANDARD.encode(leaf));
            }
            entry
        })
        .collect();
    Ok(Json(json!({ "entries": entries })).into_response())
}

fn proof_json(proof: Vec<deconflict_audit::Hash>) -> Response {
    let proof: Vec<String> = proof.iter().map(|h| h.to_base64()).collect();
    Json(json!({ "proof": proof })).into_response()
}

/// RFC 9162 inclusion proof of entry `index` in the tree of `size`.
#[utoipa::path(get, path = "/v1/log/proof/inclusion", tag = "log",
    params(("index" = u64, Query), ("size" = u64, Query)),
    responses((status = 200, description = "`{proof: [base64]}`"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn inclusion(
    _caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(query)?;
    let (index, size) = (number(&query, "index")?, number(&query, "size")?);
    let logged = log_size(&state).await?;
    if size > logged {
        return Err(ApiError::field(
            "/query/size",
            format!("the log has {logged} entries"),
        ));
    }
    if index >= size {
        return Err(ApiError::field("/query/index", "must be below size"));
    }
    let store = std::sync::Arc::clone(&state.store);
    let proof = blocking(move || {
        store.read(|conn| {
            inclusion_proof(&NodeReader::new(conn), index, size)
                .map_err(|e| StoreError::Rejected(e.to_string()))
        })
    })
    .await?;
    Ok(proof_json(proof))
}

/// RFC 9162 consistency proof from the tree of `from` entries to `to`.
#[utoipa::path(get, path = "/v1/log/proof/consistency", tag = "log",
    params(("from" = u64, Query), ("to" = u64, Query)),
    responses((status = 200, description = "`{proof: [base64]}`"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn consistency(
    _caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(query)?;
    let (from, to) = (number(&query, "from")?, number(&query, "to")?);
    let logged = log_size(&state).await?;
    if to > logged {
        return Err(ApiError::field(
            "/query/to",
            format!("the log has {logged} entries"),
        ));
    }
    if from > to {
        return Err(ApiError::field("/query/from", "must not be above `to`"));
    }
    let store = std::sync::Arc::clone(&state.store);
    let proof = blocking(move || {
        store.read(|conn| {
            consistency_proof(&NodeReader::new(conn), from, to)
                .map_err(|e| StoreError::Rejected(e.to_string()))
        })
    })
    .await?;
    Ok(proof_json(proof))
}
