//! Activities: notify, check, list, get, update (with `If-Match`), cancel.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::Timestamp;
use deconflict_formats::{activity_from_feature, parse_rfc3339, Body, FeatureDoc};
use deconflict_geodesy::GeoBounds;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::auth::Party;
use crate::driver::{now_ms, ChangeOutcome, Command, Committed, Submission};
use crate::ledger::{self, ActivityFilter};
use crate::model::{conflict_view, render_conflict, ConflictView, PartyInfo, Viewer};
use crate::problem::{ApiError, FieldProblem, Problem};
use crate::routes::{
    answer, blocking, feature_text, json_response, json_value, path_id, receipt_of, BodyBytes, ReceiptAnswer,
};
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

/// [`submission`] of a Feature read in the plain shape, without its tree:
/// the same activity, stored text and canonical form (the formats crate's
/// and [`feature_text`]'s tests hold them to the tree's), or `None` when
/// the tree reading would refuse it or anything is not plain. The caller
/// then reads the tree, whose answer (its problems) is the one given.
fn typed_submission(state: &AppState, party: &PartyInfo, mut doc: FeatureDoc) -> Option<Submission> {
    let parsed = doc.activity(party.id)?;
    let activity = parsed.validate(&state.validator).ok()?;
    if activity.window.ended_by(Timestamp(now_ms())) {
        return None;
    }
    normalise_doc(&mut doc)?;
    let feature_canonical = feature_text::canonical(&doc)?;
    let feature_text = feature_text::stored_text(&doc)?;
    let bounds = activity.footprint_bounds();
    Some(Submission {
        activity,
        feature_text,
        feature_canonical,
        sharing: parsed.sharing,
        bounds,
    })
}

/// A one-Feature body, read (in the plain shape, or else as a tree) before
/// anything else of the request is looked at, as the `Json` extractor did.
enum OneFeature {
    Typed(FeatureDoc),
    Tree(Value),
}

impl OneFeature {
    fn read(bytes: &[u8]) -> Result<OneFeature, ApiError> {
        match Body::parse(bytes) {
            Some(Body::Feature(doc)) => Ok(OneFeature::Typed(doc)),
            _ => json_value(bytes).map(OneFeature::Tree),
        }
    }

    /// Its submission; a refusal is always the tree's.
    fn submission(self, state: &AppState, party: &PartyInfo, bytes: &[u8]) -> Result<Submission, ApiError> {
        match self {
            OneFeature::Typed(doc) => match typed_submission(state, party, doc) {
                Some(submission) => Ok(submission),
                None => submission(state, party, json_value(bytes)?),
            },
            OneFeature::Tree(feature) => submission(state, party, feature),
        }
    }
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

/// [`normalise`] on a Feature's typed parts (`None` without properties,
/// which a Feature read as an activity has).
fn normalise_doc(doc: &mut FeatureDoc) -> Option<()> {
    let client_id = doc.id.take().filter(|id| !id.is_null());
    let properties = doc.properties_mut()?;
    properties.remove("version");
    properties.remove("party");
    if let Some(id) = client_id {
        properties.insert("client_id".into(), id);
    }
    Some(())
}

fn render_all(conflicts: &[(crate::model::ConflictRecord, [bool; 2])], viewer: &Viewer) -> Vec<Value> {
    conflicts
        .iter()
        .filter_map(|(record, full)| render_conflict(record, *full, viewer))
        .collect()
}

/// [`render_all`] as typed values, serialized straight into an answer.
fn views_of(conflicts: &[(crate::model::ConflictRecord, [bool; 2])], viewer: &Viewer) -> Vec<ConflictView> {
    conflicts
        .iter()
        .filter_map(|(record, full)| conflict_view(record, *full, viewer))
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
    conflicts: Vec<ConflictView>,
    id: u64,
    receipt: ReceiptAnswer,
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
        conflicts: views_of(&outcome.conflicts, viewer),
        id: outcome.id,
        receipt: ReceiptAnswer(receipt),
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
    BodyBytes(bytes): BodyBytes,
) -> Result<Response, ApiError> {
    let submission = match Body::parse(&bytes) {
        Some(Body::Collection(features)) => {
            return create_many(&state, &party, Features::Typed(features, &bytes)).await
        }
        Some(Body::Feature(doc)) => match typed_submission(&state, &party.0, doc) {
            Some(submission) => submission,
            None => submission(&state, &party.0, json_value(&bytes)?)?,
        },
        None => {
            let feature = json_value(&bytes)?;
            if feature.get("type").and_then(Value::as_str) == Some("FeatureCollection") {
                return create_many(&state, &party, Features::Tree(feature)).await;
            }
            submission(&state, &party.0, feature)?
        }
    };
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
async fn create_many(state: &AppState, party: &Party, features: Features<'_>) -> Result<Response, ApiError> {
    let features = match features {
        Features::Typed(docs, bytes) => FeatureList::Typed {
            docs,
            bytes,
            tree: None,
        },
        Features::Tree(mut collection) => {
            let Some(Value::Array(features)) = collection.get_mut("features").map(Value::take) else {
                return Err(ApiError::field(
                    "/features",
                    "a FeatureCollection needs a features array",
                ));
            };
            FeatureList::Tree(features)
        }
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
    let mut features = features;
    let waits: Vec<Result<oneshot::Receiver<_>, ApiError>> = (0..features.len())
        .map(|at| {
            let submission = features.submission(state, &party.0, at).map_err(|mut error| {
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

/// A FeatureCollection's features as read: typed (the plain shape) or as
/// trees.
enum Features<'a> {
    Typed(Vec<FeatureDoc>, &'a [u8]),
    Tree(Value),
}

enum FeatureList<'a> {
    /// `tree` is the body's `features` as trees, read at the first feature
    /// the typed path does not take (for the tree's answer).
    Typed {
        docs: Vec<FeatureDoc>,
        bytes: &'a [u8],
        tree: Option<Vec<Value>>,
    },
    Tree(Vec<Value>),
}

impl FeatureList<'_> {
    fn len(&self) -> usize {
        match self {
            FeatureList::Typed { docs, .. } => docs.len(),
            FeatureList::Tree(features) => features.len(),
        }
    }

    /// Feature `at`'s submission (each feature is asked for once).
    fn submission(&mut self, state: &AppState, party: &PartyInfo, at: usize) -> Result<Submission, ApiError> {
        match self {
            FeatureList::Tree(features) => submission(state, party, features[at].take()),
            FeatureList::Typed { docs, bytes, tree } => {
                let doc = std::mem::take(&mut docs[at]);
                if let Some(submission) = typed_submission(state, party, doc) {
                    return Ok(submission);
                }
                if tree.is_none() {
                    let mut collection = json_value(bytes)?;
                    let Some(Value::Array(features)) = collection.get_mut("features").map(Value::take) else {
                        return Err(ApiError::unavailable(&"the features read differently as a tree"));
                    };
                    *tree = Some(features);
                }
                let feature = tree
                    .as_mut()
                    .and_then(|features| features.get_mut(at))
                    .map(Value::take)
                    .ok_or_else(|| ApiError::unavailable(&"the features read differently as a tree"))?;
                submission(state, party, feature)
            }
        }
    }
}

/// Checks a Feature against what is notified, storing nothing.
#[utoipa::path(post, path = "/v1/activities/check", tag = "activities",
    request_body(content = Object, description = "a GeoJSON Feature"),
    responses((status = 200, description = "`{conflicts: [Conflict]}` (ids null: nothing was stored)"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn check(
    party: Party,
    State(state): State<AppState>,
    BodyBytes(bytes): BodyBytes,
) -> Result<Response, ApiError> {
    let typed = match Body::parse(&bytes) {
        Some(Body::Feature(doc)) => doc
            .activity(party.0.id)
            .and_then(|parsed| parsed.validate(&state.validator).ok())
            .filter(|activity| !activity.window.ended_by(Timestamp(now_ms()))),
        _ => None,
    };
    let activity = match typed {
        Some(activity) => activity,
        None => validated(&state, &party.0, json_value(&bytes)?)?.activity,
    };
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
    BodyBytes(bytes): BodyBytes,
) -> Result<Response, ApiError> {
    let feature = OneFeature::read(&bytes)?;
    let id = path_id(&id, "activity")?;
    let version = if_match(&headers)?;
    let submission = feature.submission(&state, &party.0, &bytes)?;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Random Features of the plain shape: numbers of every form (integers,
    /// fractions, `-0`, exponents), ids of each kind, properties that the
    /// normalisation moves or drops, keys whose UTF-16 and UTF-8 orders
    /// differ, strings that need escapes, foreign members.
    fn random_features() -> Vec<Value> {
        let mut seed = 0x853c_49e6_748f_ea9b_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let numbers = [
            json!(10),
            json!(-3),
            json!(10.25),
            json!(-0.0),
            json!(1e21),
            json!(1.5e-7),
            json!(123.456_789_012_345_67),
            json!(0),
        ];
        let number = |next: &mut dyn FnMut(u64) -> u64| numbers[next(numbers.len() as u64) as usize].clone();
        let mut features = Vec::new();
        for round in 0..500 {
            let position = |next: &mut dyn FnMut(u64) -> u64| {
                if next(4) == 0 {
                    json!([number(next), number(next), number(next)])
                } else {
                    json!([number(next), number(next)])
                }
            };
            let geometry = match round % 3 {
                0 => json!({"type": "Point", "coordinates": position(&mut next)}),
                1 => {
                    let route: Vec<Value> = (0..2 + next(5)).map(|_| position(&mut next)).collect();
                    json!({"coordinates": route, "type": "LineString"})
                }
                _ => {
                    let rings: Vec<Value> = (0..1 + next(2))
                        .map(|_| Value::Array((0..4 + next(4)).map(|_| position(&mut next)).collect()))
                        .collect();
                    json!({"type": "Polygon", "coordinates": rings})
                }
            };
            let mut properties = json!({
                "kind": "area",
                "start": "2031-01-01T00:00:00Z",
                "note": "é \u{1F600} \"q\" back\\slash \n\t\u{1}\u{7f}",
                "\u{e000}": 1,
                "\u{1F600}": [true, null, {"b": 2, "a": 1.0}],
            });
            if next(2) == 0 {
                properties["version"] = json!(4);
                properties["party"] = json!(9);
            }
            if next(3) == 0 {
                properties["client_id"] = json!("theirs");
            }
            let mut feature = json!({"type": "Feature", "geometry": geometry, "properties": properties});
            match next(4) {
                0 => feature["id"] = json!("us-1"),
                1 => feature["id"] = json!(17),
                2 => feature["id"] = Value::Null,
                _ => {}
            }
            if next(3) == 0 {
                feature["bbox"] = json!([1, 2.5, 3, 4]);
                feature["\u{e001}x"] = json!("private");
                // Before U+E001 in UTF-16 (a surrogate pair), after it in UTF-8.
                feature["\u{1F600}"] = json!(-0.0);
                feature["Z"] = json!({"nested": [1, {"k": "v"}]});
            }
            features.push(feature);
        }
        features
    }

    /// The stored text and the canonical form written from the typed parts
    /// equal the tree's (`normalise`, then `to_string` and
    /// `canonical_json`), byte for byte.
    #[test]
    fn typed_feature_texts_equal_the_trees() {
        for feature in random_features() {
            let text = feature.to_string();
            let mut tree = json_value(text.as_bytes()).unwrap();
            normalise(&mut tree);
            let Some(Body::Feature(mut doc)) = Body::parse(text.as_bytes()) else {
                panic!("not read in the plain shape: {text}");
            };
            normalise_doc(&mut doc).unwrap();
            assert_eq!(
                feature_text::stored_text(&doc).unwrap(),
                tree.to_string(),
                "{text}"
            );
            assert_eq!(
                feature_text::canonical(&doc).unwrap(),
                deconflict_audit::canonical_json(&tree).unwrap(),
                "{text}"
            );
        }
    }

    /// An integer a double cannot hold is refused by both: the typed
    /// writer gives nothing (the tree's refusal is then the answer).
    #[test]
    fn an_integer_beyond_2_pow_53_is_refused_by_both() {
        for coordinates in [
            "[9007199254740993,40]",
            "[10,-9007199254740993]",
            "[10,40,9007199254740992]",
        ] {
            let text = format!(
                r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":{coordinates}}},"properties":{{"kind":"site"}}}}"#
            );
            let tree = json_value(text.as_bytes()).unwrap();
            assert!(deconflict_audit::canonical_json(&tree).is_err());
            let Some(Body::Feature(doc)) = Body::parse(text.as_bytes()) else {
                panic!("not read in the plain shape: {text}");
            };
            assert!(feature_text::canonical(&doc).is_none(), "{text}");
        }
    }
}
