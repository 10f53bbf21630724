//! Incidents (issue 5): reported by a party, listed for the reporter and
//! the parties named (all, for a broker), with the track history captured
//! around them as evidence (`live/evidence.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::{ActivityId, PartyId};
use deconflict_formats::{format_rfc3339, parse_rfc3339};
use deconflict_hotline::{Incident, IncidentId, IncidentSpec, MessageId};
use serde_json::{json, Value};

use crate::auth::Party;
use crate::driver::Command;
use crate::hotline::{render_incident, store as hotline_store, HotlineCommand};
use crate::live::evidence_store::{self, StoredEvidence};
use crate::problem::{ApiError, FieldProblem};
use crate::routes::messages::problem;
use crate::routes::{blocking, commit, path_id, receipt, JsonBody};
use crate::state::AppState;

fn id_list(body: &Value, field: &str, errors: &mut Vec<FieldProblem>) -> Vec<u64> {
    match body.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                item.as_u64().or_else(|| {
                    errors.push(problem(&format!("/{field}/{i}"), "must be an id"));
                    None
                })
            })
            .collect(),
        Some(_) => {
            errors.push(problem(&format!("/{field}"), "must be an array of ids"));
            Vec::new()
        }
    }
}

fn number(body: &Value, field: &str, errors: &mut Vec<FieldProblem>) -> Option<f64> {
    let found = body.get(field).and_then(Value::as_f64);
    if found.is_none() {
        errors.push(problem(&format!("/{field}"), "required: degrees, a number"));
    }
    found
}

/// `{time, lon, lat, parties, description, activities?, messages?,
/// entities?}` → 201 with the incident (and its evidence window) and its
/// receipt. The parties named hear an `incident` event.
#[utoipa::path(post, path = "/v1/incidents", tag = "hotline",
    request_body(content = Object, description = "`{time, lon, lat, parties: [id], description, activities?, messages?, entities?: [uid]}`"),
    responses((status = 201, description = "the incident with `receipt`"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn report(
    party: Party,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let viewer = party.viewer();
    let mut errors = Vec::new();
    let occurred_at = match body.get("time").and_then(Value::as_str) {
        Some(text) => parse_rfc3339(text).map_or_else(
            |_| {
                errors.push(problem("/time", "not an RFC 3339 time"));
                None
            },
            Some,
        ),
        None => {
            errors.push(problem("/time", "required: when it happened (RFC 3339)"));
            None
        }
    };
    let lon = number(&body, "lon", &mut errors);
    let lat = number(&body, "lat", &mut errors);
    let description = match body.get("description").and_then(Value::as_str) {
        Some(text) => Some(text.to_owned()),
        None => {
            errors.push(problem("/description", "required: what happened"));
            None
        }
    };
    let parties = id_list(&body, "parties", &mut errors);
    let activities = id_list(&body, "activities", &mut errors);
    let messages = id_list(&body, "messages", &mut errors);
    let entities = match body.get("entities") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                item.as_str().map(str::to_owned).or_else(|| {
                    errors.push(problem(&format!("/entities/{i}"), "must be a track uid"));
                    None
                })
            })
            .collect(),
        Some(_) => {
            errors.push(problem("/entities", "must be an array of track uids"));
            Vec::new()
        }
    };
    let (Some(occurred_at), Some(lon), Some(lat), Some(description), true) =
        (occurred_at, lon, lat, description, errors.is_empty())
    else {
        return Err(ApiError::invalid("the incident is not valid", errors));
    };
    let spec = IncidentSpec {
        id: IncidentId(0),
        reporter: viewer.party,
        occurred_at,
        lon_deg: lon,
        lat_deg: lat,
        parties: parties.into_iter().map(PartyId).collect(),
        description,
        activities: activities.into_iter().map(ActivityId).collect(),
        messages: messages.into_iter().map(MessageId).collect(),
        entities,
    };
    let committed = commit(&state, |reply| {
        Command::Hotline(HotlineCommand::Report { viewer, spec, reply })
    })
    .await?;
    let receipt = receipt(&state, &committed).await?;
    let mut out = render_incident(&committed.value);
    out["receipt"] = receipt;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `{incidents: [Incident]}` the caller reported or is named in (all, for a
/// broker), at most `--max-list`.
#[utoipa::path(get, path = "/v1/incidents", tag = "hotline",
    responses((status = 200, description = "`{incidents: [Incident]}`"), (status = 401)),
    security(("bearer" = [])))]
pub async fn list(party: Party, State(state): State<AppState>) -> Result<Response, ApiError> {
    let viewer = party.viewer();
    let limit = state.config.limits.max_list;
    let store = std::sync::Arc::clone(&state.store);
    let found =
        blocking(move || store.read(move |conn| hotline_store::incidents_for(conn, &viewer, limit))).await?;
    let incidents: Vec<Value> = found.iter().map(render_incident).collect();
    Ok(Json(json!({ "incidents": incidents })).into_response())
}

/// The track history of the units involved in an incident, as a GeoJSON
/// FeatureCollection: a `LineString` per unit (`properties.times`: the time
/// of each vertex) and each position as a `Point` Feature (`time`, `party`,
/// `uid`, `alt_m`, `speed_mps`, `course_deg`). Foreign members say what it
/// covers: `incident`, `window` `{from, to}`, `radius_m`, and `complete`
/// (false while the window has not passed: positions still come in) and
/// `truncated` (`--incident-evidence-max-points` cut it). Readable by the
/// incident's reporter, the parties it names and brokers; anyone else gets
/// the 404 of a missing incident.
#[utoipa::path(get, path = "/v1/incidents/{id}/evidence", tag = "hotline", params(("id" = u64, Path)),
    responses((status = 200, description = "GeoJSON FeatureCollection (`application/geo+json`) with `complete`", content_type = "application/geo+json"),
        (status = 401), (status = 404, description = "no such incident, or not the caller's")),
    security(("bearer" = [])))]
pub async fn evidence(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = IncidentId(path_id(&id, "incident")?);
    let viewer = party.viewer();
    let store = std::sync::Arc::clone(&state.store);
    let (incident, stored) = blocking(move || {
        store.read(move |conn| {
            let Some(incident) = evidence_store::incident(conn, id)? else {
                return Ok((None, None));
            };
            if !(viewer.broker
                || incident.reporter == viewer.party
                || incident.parties.contains(&viewer.party))
            {
                return Ok((None, None));
            }
            let stored = evidence_store::evidence(conn, id)?;
            Ok((Some(incident), stored))
        })
    })
    .await?;
    let Some(incident) = incident else {
        return Err(ApiError::not_found("incident"));
    };
    let body = evidence_geojson(&incident, stored.as_ref());
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/geo+json")],
        Json(body),
    )
        .into_response())
}

/// The capture as GeoJSON (a capture not started yet is empty and not
/// complete).
fn evidence_geojson(incident: &Incident, stored: Option<&StoredEvidence>) -> Value {
    let (from, to) = stored.map_or((incident.evidence_from, incident.evidence_to), |s| (s.from, s.to));
    let mut features = Vec::new();
    let points = stored.map_or(&[][..], |s| s.points.as_slice());
    // Points come sorted by party, uid, time: one run per unit.
    for unit in points.chunk_by(|a, b| a.party == b.party && a.uid == b.uid) {
        let first = &unit[0];
        if unit.len() >= 2 {
            features.push(json!({
                "type": "Feature",
                "id": format!("{}/{}", first.party.0, first.uid),
                "geometry": {"type": "LineString", "coordinates":
                    unit.iter().map(|e| json!([e.point.position.lon_deg, e.point.position.lat_deg])).collect::<Vec<_>>()},
                "properties": {
                    "kind": "track",
                    "party": first.party.0,
                    "uid": &first.uid,
                    "times": unit.iter().map(|e| format_rfc3339(e.point.time)).collect::<Vec<_>>(),
                },
            }));
        }
        for e in unit {
            let p = &e.point;
            features.push(json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [p.position.lon_deg, p.position.lat_deg]},
                "properties": {
                    "kind": "position",
                    "party": e.party.0,
                    "uid": &e.uid,
                    "time": format_rfc3339(p.time),
                    "alt_m": p.alt_m,
                    "speed_mps": p.speed_mps,
                    "course_deg": p.course_deg,
                },
            }));
        }
    }
    json!({
        "type": "FeatureCollection",
        "incident": incident.id.0,
        "window": {"from": format_rfc3339(from), "to": format_rfc3339(to)},
        "radius_m": stored.map(|s| s.radius_m),
        "complete": stored.is_some_and(|s| s.complete),
        "truncated": stored.is_some_and(|s| s.truncated),
        "features": features,
    })
}
