//! Activities: notify, check, list, get, update (with `If-Match`), cancel.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_audit::Receipt;
use deconflict_engine::Timestamp;
use deconflict_formats::{activity_from_feature, parse_rfc3339};
use deconflict_geodesy::GeoBounds;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::auth::Party;
use crate::driver::{now_ms, ChangeOutcome, Command, Committed, Submission};
use crate::ledger::{self, ActivityFilter};
use crate::model::{render_conflict, PartyInfo, Viewer};
use crate::problem::{ApiError, FieldProblem, Problem};
use crate::routes::{answer, blocking, json_response, path_id, receipt_of, JsonBody};
use crate::state::AppState;

/// Parses and validates a Feature in the handler (in parallel, off the
/// driver), normalises what is stored (the client's own `id` moves to
/// `properties.client_id`; `version` and `party` are the service's) and
/// encodes it once, here rather than on the driver's thread: the text of
/// its row and the canonical form its log leaf embeds.
fn submission(state: &AppState, party: &PartyInfo, feature: Value) -> Result<Submission, ApiError> {
    let mut valid = validated(state, party, feature)?;
    normalise(&mut valid.feature);
    // The footprint's box filters lists (`bbox`): the engine's validation
    // computed the base shape's box already (walking every geodesic edge),
    // so this only grows it by the buffer.
    let bounds = valid.activity.footprint_bounds();
    let canonical = deconflict_audit::canonical_json(&valid.feature)
        .map_err(|error| ApiError::field("", format!("cannot be logged: {error}")))?;
    Ok(Submission {
        activity: valid.activity,
        feature_text: valid.feature.to_string(),
        feature_canonical: canonical,
        sharing: valid.sharing,
        bounds,
    })
}

/// A Feature that validated.
struct Validated {
    activity: deconflict_engine::Activity,
    sharing: deconflict_formats::Sharing,
    feature: Value,
}

fn validated(state: &AppState, party: &PartyInfo, feature: Value) -> Result<Validated, ApiError> {
    let parsed = activity_from_feature(&feature, party.id, "")?;
    let activity = parsed.validate(&state.validator)?;
    if activity.window.ended_by(Timestamp(now_ms())) {
        return Err(ApiError::field(
            "/properties/end",
            "the activity has already ended",
        ));
    }
    Ok(Validated {
        activity,
        sharing: parsed.sharing,
        feature,
    })
}

/// What is stored of a Feature: the client's own `id` moves to
/// `properties.client_id`; `version` and `party` are the service's.
fn normalise(feature: &mut Value) {
    if let Some(object) = feature.as_object_mut() {
        let client_id = object.remove("id").filter(|id| !id.is_null());
        if let Some(Value::Object(properties)) = object.get_mut("properties") {
            properties.remove("version");
            properties.remove("party");
            if let Some(id) = client_id {
                properties.insert("client_id".into(), id);
            }
        }
    }
}

fn render_all(conflicts: &[(crate::model::ConflictRecord, [bool; 2])], viewer: &Viewer) -> Vec<Value> {
    conflicts
        .iter()
        .filter_map(|(record, full)| render_conflict(record, *full, viewer))
        .collect()
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// A committed change as answered, serialized straight into the body (no
/// `Value` tree of the receipt and the answer, built and then dropped for
/// every feature). Members in the order serde_json's sorted maps gave.
#[derive(serde::Serialize)]
struct ChangeAnswer {
    conflicts: Vec<Value>,
    id: u64,
    receipt: Receipt,
    /// Only in a FeatureCollection's results (201).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    version: u64,
}

/// One feature's result in a FeatureCollection's answer.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum FeatureResult {
    Committed(ChangeAnswer),
    Refused { status: u16, problem: Box<Problem> },
}

/// About what one change's answer takes: the receipt's checkpoint note and
/// inclusion proof (~1.5 KB at a million entries) and a conflict or two.
const CHANGE_ANSWER_BYTES: usize = 2_048;

async fn change_answer(
    state: &AppState,
    viewer: &Viewer,
    committed: &Committed<ChangeOutcome>,
) -> Result<ChangeAnswer, ApiError> {
    let receipt = receipt_of(state, committed).await?;
    let outcome = &committed.value;
    Ok(ChangeAnswer {
        conflicts: render_all(&outcome.conflicts, viewer),
        id: outcome.id,
        receipt,
        status: None,
        version: outcome.version,
    })
}

async fn change_response(
    state: &AppState,
    viewer: &Viewer,
    committed: Committed<ChangeOutcome>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let answer = change_answer(state, viewer, &committed).await?;
    let outcome = &committed.value;
    let mut response = json_response(status, &answer, CHANGE_ANSWER_BYTES)?;
    response.headers_mut().insert(header::ETAG, etag(outcome.version));
    if status == StatusCode::CREATED {
        if let Ok(location) = HeaderValue::from_str(&format!("/v1/activities/{}", outcome.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    Ok(response)
}

/// Notifies an activity: 201 `{id, version, conflicts, receipt}`; or, our
/// extension of the contract for integrators that notify many at once, a
/// FeatureCollection: 200 `{results: [..]}`, one per feature in order (see
/// [`create_many`]).
#[utoipa::path(post, path = "/v1/activities", tag = "activities",
    request_body(content = Object, description = "a GeoJSON Feature (see the contract's activity properties), or a FeatureCollection of them"),
    responses((status = 201, description = "`{id, version, conflicts: [Conflict], receipt}`"),
        (status = 200, description = "for a FeatureCollection: `{results: [{status, ...}]}`, one per feature, in order"),
        (status = 401), (status = 409, description = "the party holds its limit of activities"),
        (status = 413), (status = 422, description = "problem+json naming each bad field"), (status = 429)),
    security(("bearer" = [])))]
pub async fn create(
    party: Party,
    State(state): State<AppState>,
    JsonBody(feature): JsonBody,
) -> Result<Response, ApiError> {
    if feature.get("type").and_then(Value::as_str) == Some("FeatureCollection") {
        return create_many(&state, &party, feature).await;
    }
    let submission = submission(&state, &party.0, feature)?;
    let (reply, wait) = crate::driver::reply_channel();
    state.driver.submit(Command::Notify {
        viewer: party.viewer(),
        submission: Box::new(submission),
        reply,
    })?;
    let committed = answer(wait).await?;
    change_response(&state, &party.viewer(), committed, StatusCode::CREATED).await
}

/// Notifies every feature of a FeatureCollection: 200 `{results}`, one per
/// feature in order, each either `{status: 201, id, version, conflicts,
/// receipt}` (committed with its leaf, exactly as the one-feature answer) or
/// `{status, problem}` (nothing stored for that feature; its field pointers
/// start at `/features/N`). Each feature is its own command, so one bad
/// feature refuses only itself; queued back to back, they commit in a few
/// driver batches instead of one request each. At most
/// `--max-pending-commands` features (the driver's queue): beyond, 413.
async fn create_many(state: &AppState, party: &Party, mut collection: Value) -> Result<Response, ApiError> {
    let Some(Value::Array(features)) = collection.get_mut("features").map(Value::take) else {
        return Err(ApiError::field(
            "/features",
            "a FeatureCollection needs a features array",
        ));
    };
    let limit = state.driver.queue_limit;
    if features.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-features",
            format!(
                "{} features: at most {limit} per request (--max-pending-commands)",
                features.len()
            ),
        ));
    }
    let viewer = party.viewer();
    let waits: Vec<Result<oneshot::Receiver<_>, ApiError>> = features
        .into_iter()
        .enumerate()
        .map(|(at, feature)| {
            let submission = submission(state, &party.0, feature).map_err(|mut error| {
                for problem in &mut error.0.errors {
                    problem.pointer = format!("/features/{at}{}", problem.pointer);
                }
                error
            })?;
            let (reply, wait) = crate::driver::reply_channel();
            state.driver.submit(Command::Notify {
                viewer,
                submission: Box::new(submission),
                reply,
            })?;
            Ok(wait)
        })
        .collect();
    let mut results = Vec::with_capacity(waits.len());
    for wait in waits {
        let answer = match wait {
            Ok(wait) => match answer(wait).await {
                Ok(committed) => change_answer(state, &viewer, &committed).await,
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        results.push(match answer {
            Ok(answer) => FeatureResult::Committed(ChangeAnswer {
                status: Some(StatusCode::CREATED.as_u16()),
                ..answer
            }),
            Err(error) => FeatureResult::Refused {
                status: error.status().as_u16(),
                problem: error.0,
            },
        });
    }
    #[derive(serde::Serialize)]
    struct Results {
        results: Vec<FeatureResult>,
    }
    let capacity = results.len().saturating_mul(CHANGE_ANSWER_BYTES);
    json_response(StatusCode::OK, &Results { results }, capacity)
}

/// Checks a Feature against what is notified, storing nothing.
#[utoipa::path(post, path = "/v1/activities/check", tag = "activities",
    request_body(content = Object, description = "a GeoJSON Feature"),
    responses((status = 200, description = "`{conflicts: [Conflict]}` (ids null: nothing was stored)"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn check(
    party: Party,
    State(state): State<AppState>,
    JsonBody(feature): JsonBody,
) -> Result<Response, ApiError> {
    let activity = validated(&state, &party.0, feature)?.activity;
    let driver = state.driver.clone();
    let viewer = party.viewer();
    let found = tokio::task::spawn_blocking(move || {
        let world = driver.world();
        world.check(Timestamp(now_ms()), &activity)
    })
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    let conflicts: Vec<Value> = render_all(&found, &viewer)
        .into_iter()
        .map(|mut c| {
            // The probe has no id and no conflict was recorded.
            c["id"] = Value::Null;
            c["activities"][0] = Value::Null;
            c
        })
        .collect();
    metrics::counter!("deconflict_checks_total").increment(1);
    Ok(Json(json!({ "conflicts": conflicts })).into_response())
}

pub(crate) fn query_problem(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(
        "a query parameter is not valid",
        vec![FieldProblem {
            pointer: format!("/query/{name}"),
            message: message.into(),
        }],
    )
}

pub(crate) fn parse_query(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("the query string does not parse: {e}")))
}

/// Query parameter `name` as an RFC 3339 instant in Unix milliseconds
/// (`None` when absent), or a problem naming the parameter.
pub(crate) fn query_time(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(name)
        .map(|text| {
            parse_rfc3339(text)
                .map(Timestamp::unix_ms)
                .map_err(|e| query_problem(name, e.to_string()))
        })
        .transpose()
}

pub(crate) fn parse_bbox(text: &str) -> Result<GeoBounds, ApiError> {
    let numbers: Vec<f64> = text
        .split(',')
        .map(|n| n.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| query_problem("bbox", "must be W,S,E,N in degrees"))?;
    let [west, south, east, north] = numbers[..] else {
        return Err(query_problem("bbox", "must be four numbers: W,S,E,N"));
    };
    let lon_ok = |v: f64| v.is_finite() && (-180.0..=180.0).contains(&v);
    let lat_ok = |v: f64| v.is_finite() && (-90.0..=90.0).contains(&v);
    if !(lon_ok(west) && lon_ok(east) && lat_ok(south) && lat_ok(north)) || south > north {
        return Err(query_problem(
            "bbox",
            "longitudes within [-180, 180], latitudes within [-90, 90], S <= N (W > E crosses the antimeridian)",
        ));
    }
    Ok(GeoBounds {
        south_deg: south,
        north_deg: north,
        west_deg: west,
        east_deg: east,
    })
}

/// The activities the caller may see: theirs, those shared in full, and
/// everything for a broker.
#[utoipa::path(get, path = "/v1/activities", tag = "activities",
    params(("bbox" = Option<String>, Query, description = "W,S,E,N"), ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("after" = Option<u64>, Query, description = "paging: ids above this"), ("limit" = Option<usize>, Query)),
    responses((status = 200, description = "a GeoJSON FeatureCollection; `next` is the `after` of the next page"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn list(
    party: Party,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(query)?;
    let max_list = state.config.limits.max_list;
    let time = |name: &str| query_time(&query, name);
    let filter = ActivityFilter {
        bbox: query.get("bbox").map(|b| parse_bbox(b)).transpose()?,
        from_ms: time("from")?,
        to_ms: time("to")?,
        after: query
            .get("after")
            .map(|a| {
                // Ids are SQLite integers: one above i64::MAX names no
                // activity (and the schema says int64).
                a.parse::<u64>()
                    .ok()
                    .filter(|after| i64::try_from(*after).is_ok())
                    .ok_or_else(|| query_problem("after", "must be an activity id"))
            })
            .transpose()?
            .unwrap_or(0),
        limit: match query.get("limit") {
            None => max_list,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max_list).contains(&n) => n,
                _ => {
                    return Err(query_problem(
                        "limit",
                        format!("must be 1 to {max_list} (--max-list)"),
                    ))
                }
            },
        },
    };
    let viewer = party.viewer();
    let store = std::sync::Arc::clone(&state.store);
    let limit = filter.limit;
    let found = blocking(move || store.read(|conn| ledger::list_activities(conn, &viewer, &filter))).await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|a| a.id.0))
        .flatten();
    let features: Vec<Value> = found.iter().map(ledger::ActivityView::to_feature).collect();
    Ok(Json(json!({"type": "FeatureCollection", "features": features, "next": next})).into_response())
}

async fn visible(state: &AppState, viewer: &Viewer, id: &str) -> Result<ledger::ActivityView, ApiError> {
    let id = path_id(id, "activity")?;
    let store = std::sync::Arc::clone(&state.store);
    let found = blocking(move || store.read(|conn| ledger::activity(conn, id))).await?;
    // Another party's need-to-know activity answers exactly as a missing one.
    found
        .filter(|a| a.visible_to(viewer))
        .ok_or_else(|| ApiError::not_found("activity"))
}

/// One activity as a Feature, with its version as `ETag`.
#[utoipa::path(get, path = "/v1/activities/{id}", tag = "activities",
    params(("id" = u64, Path)),
    responses((status = 200, description = "the Feature"), (status = 401), (status = 404, description = "no such activity, or not visible to the caller")),
    security(("bearer" = [])))]
pub async fn get_one(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let activity = visible(&state, &party.viewer(), &id).await?;
    let mut response = Json(activity.to_feature()).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(activity.version));
    Ok(response)
}

fn if_match(headers: &HeaderMap) -> Result<u64, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "if-match-required",
            "send `If-Match: VERSION` (the version you last read) to change an activity",
        ));
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "If-Match is not a version",
                vec![FieldProblem {
                    pointer: "/headers/If-Match".into(),
                    message: "must be the activity's version, e.g. \"3\"".into(),
                }],
            )
        })
}

/// Replaces an activity; `If-Match` must carry its current version.
#[utoipa::path(put, path = "/v1/activities/{id}", tag = "activities",
    params(("id" = u64, Path), ("If-Match" = String, Header, description = "the current version")),
    request_body(content = Object, description = "a GeoJSON Feature"),
    responses((status = 200, description = "`{id, version, conflicts, receipt}`"), (status = 401), (status = 403), (status = 404), (status = 412), (status = 422), (status = 428)),
    security(("bearer" = [])))]
pub async fn update(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(feature): JsonBody,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "activity")?;
    let version = if_match(&headers)?;
    let submission = submission(&state, &party.0, feature)?;
    let (reply, wait) = crate::driver::reply_channel();
    state.driver.submit(Command::Update {
        viewer: party.viewer(),
        id,
        if_match: version,
        submission: Box::new(submission),
        reply,
    })?;
    let committed = answer(wait).await?;
    change_response(&state, &party.viewer(), committed, StatusCode::OK).await
}

/// Cancels an activity; its conflicts resolve.
#[utoipa::path(delete, path = "/v1/activities/{id}", tag = "activities",
    params(("id" = u64, Path)),
    responses((status = 200, description = "`{id, version, conflicts: [], receipt}`"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn cancel(
    party: Party,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "activity")?;
    let (reply, wait) = crate::driver::reply_channel();
    state.driver.submit(Command::Cancel {
        viewer: party.viewer(),
        id,
        reply,
    })?;
    let committed = answer(wait).await?;
    change_response(&state, &party.viewer(), committed, StatusCode::OK).await
}
