//! Zones: created by a party (or broker), visible to all.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::{PartyId, ZoneId};
use serde_json::{json, Value};

use crate::auth::Party;
use crate::driver::Command;
use crate::ledger;
use crate::model::render_conflict;
use crate::problem::ApiError;
use crate::routes::{answer, blocking, receipt, JsonBody};
use crate::state::AppState;
use crate::zones::zone_from_feature;

/// Creates a zone (see `crate::zones` for its properties); the activities
/// that break its rule open conflicts at once.
#[utoipa::path(post, path = "/v1/zones", tag = "zones",
    request_body(content = Object, description = "a GeoJSON Feature with properties.kind exclusion, protected or demarcation"),
    responses((status = 201, description = "`{id, conflicts, receipt}`"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    party: Party,
    State(state): State<AppState>,
    JsonBody(mut feature): JsonBody,
) -> Result<Response, ApiError> {
    let zone = zone_from_feature(&feature, party.0.id, &state.validator)?;
    for (i, excluded) in zone.parties.iter().enumerate() {
        if state.directory.party(*excluded).is_none() {
            return Err(ApiError::field(
                &format!("/properties/parties/{i}"),
                "no such party",
            ));
        }
    }
    if let Some(object) = feature.as_object_mut() {
        object.remove("id");
    }
    let (reply, wait) = crate::driver::reply_channel();
    state.driver.submit(Command::CreateZone {
        viewer: party.viewer(),
        zone: Box::new(zone),
        feature,
        reply,
    })?;
    let committed = answer(wait).await?;
    // Live tracks: the new zone becomes a fence at once.
    state.live.zones_changed();
    let receipt = receipt(&state, &committed).await?;
    let viewer = party.viewer();
    let conflicts: Vec<Value> = committed
        .value
        .conflicts
        .iter()
        .filter_map(|(record, full)| render_conflict(record, *full, &viewer))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": committed.value.id, "conflicts": conflicts, "receipt": receipt})),
    )
        .into_response())
}

/// Every zone, as a FeatureCollection (zones are shared in full).
#[utoipa::path(get, path = "/v1/zones", tag = "zones",
    responses((status = 200, description = "a GeoJSON FeatureCollection"), (status = 401)),
    security(("bearer" = [])))]
pub async fn list(_party: Party, State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = std::sync::Arc::clone(&state.store);
    let zones = blocking(move || store.read(ledger::list_zones)).await?;
    let features: Vec<Value> = zones
        .into_iter()
        .map(|(id, party, kind, feature)| zone_feature(id, party, &kind, feature))
        .collect();
    Ok(Json(json!({"type": "FeatureCollection", "features": features})).into_response())
}

/// A stored zone as served: its Feature with the service's id, its owner
/// and its kind.
pub(crate) fn zone_feature(id: ZoneId, party: PartyId, kind: &str, mut feature: Value) -> Value {
    if let Some(object) = feature.as_object_mut() {
        object.insert("id".into(), json!(id.0));
        if let Some(Value::Object(p)) = object.get_mut("properties") {
            p.insert("party".into(), json!(party.0));
            p.insert("kind".into(), json!(kind));
        }
    }
    feature
}
