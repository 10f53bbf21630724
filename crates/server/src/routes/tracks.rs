//! Live tracks over HTTP: `POST /v1/tracks` (position reports),
//! `GET /v1/tracks` (the latest visible positions), and the admin's
//! `POST /v1/parties/{id}/tak-certificate` (a party's TAK client
//! certificate from the server's CA).

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deconflict_engine::{ActivityId, PartyId, Timestamp};
use deconflict_formats::parse_rfc3339;
use deconflict_geodesy::{GeoBounds, LonLat};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::auth::{Admin, Party};
use crate::driver::now_ms;
use crate::live::task::report_problem;
use crate::live::{LiveCommand, OwnedReport};
use crate::problem::{ApiError, FieldProblem};
use crate::routes::{json_value, path_id, BodyBytes};
use crate::state::AppState;

fn problem(pointer: String, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        pointer,
        message: message.into(),
    }
}

/// Bad reports: 400 with a pointer per bad field.
fn bad_reports(errors: Vec<FieldProblem>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid-reports",
        "some reports are not valid; nothing was taken",
    )
    .with_errors(errors)
}

/// Reads one report object, collecting a problem per bad field.
fn read_report(index: usize, value: &Value, errors: &mut Vec<FieldProblem>) -> Option<OwnedReport> {
    let at = |field: &str| format!("/reports/{index}/{field}");
    let Some(object) = value.as_object() else {
        errors.push(problem(format!("/reports/{index}"), "must be an object"));
        return None;
    };
    let before = errors.len();
    let uid = match object.get("uid") {
        Some(Value::String(uid)) => Some(uid.clone()),
        _ => {
            errors.push(problem(at("uid"), "required: a string"));
            None
        }
    };
    let mut time_of = |field: &str, required: bool| -> Option<Timestamp> {
        match object.get(field) {
            Some(Value::String(text)) => parse_rfc3339(text)
                .map_err(|e| errors.push(problem(at(field), e.to_string())))
                .ok(),
            None | Some(Value::Null) if !required => None,
            _ => {
                errors.push(problem(at(field), "required: an RFC 3339 time"));
                None
            }
        }
    };
    let time = time_of("time", true);
    let stale = time_of("stale", false);
    let mut number = |field: &str, required: bool| -> Option<f64> {
        match object.get(field) {
            Some(Value::Number(n)) => n.as_f64(),
            None | Some(Value::Null) if !required => None,
            _ => {
                errors.push(problem(
                    at(field),
                    if required {
                        "required: a number"
                    } else {
                        "must be a number"
                    },
                ));
                None
            }
        }
    };
    let lon = number("lon", true);
    let lat = number("lat", true);
    let alt_m = number("alt_m", false);
    let speed_mps = number("speed_mps", false);
    let course_deg = number("course_deg", false);
    let activity = match object.get("activity_id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(id) if id > 0 => Some(ActivityId(id)),
            _ => {
                errors.push(problem(
                    at("activity_id"),
                    "must be an activity id (a positive integer)",
                ));
                None
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    Some(OwnedReport {
        uid: uid?,
        time: time?,
        position: LonLat::new(lon?, lat?),
        alt_m,
        speed_mps,
        course_deg,
        stale,
        activity,
    })
}

/// Whether the body is an object with exactly one array in it (outside
/// strings): the reports. serde's derived structs also read an array of
/// their fields in order (`["uid", "time", …]`), which the tree reading
/// refuses; such a body goes to the tree reading.
fn one_array_in_one_object(bytes: &[u8]) -> bool {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    let (mut in_string, mut escaped, mut arrays) = (false, false, 0usize);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'[' {
            arrays += 1;
        }
    }
    arrays == 1
}

/// A well-formed batch, borrowed from the body (strings without escapes
/// are not copied).
#[derive(serde::Deserialize)]
struct FastBody<'a> {
    #[serde(borrow)]
    reports: Vec<FastReport<'a>>,
}

#[derive(serde::Deserialize)]
struct FastReport<'a> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    lon: f64,
    lat: f64,
    #[serde(default)]
    alt_m: Option<f64>,
    #[serde(default)]
    speed_mps: Option<f64>,
    #[serde(default)]
    course_deg: Option<f64>,
    #[serde(default, borrow)]
    stale: Option<Cow<'a, str>>,
    #[serde(default)]
    activity_id: Option<u64>,
}

/// The batch read without a JSON tree when every report in it is well
/// formed as [`read_report`] would find it; `None` for anything else
/// (not JSON, a field missing or of the wrong type, a bad time, a
/// duplicate key, activity id 0), which [`read_report`] then reads again
/// and names. So both paths take and refuse exactly the same bodies.
fn fast_reports(bytes: &[u8]) -> Option<Vec<OwnedReport>> {
    if !one_array_in_one_object(bytes) {
        return None;
    }
    let body: FastBody<'_> = serde_json::from_slice(bytes).ok()?;
    body.reports
        .into_iter()
        .map(|r| {
            let stale = match r.stale {
                Some(text) => Some(parse_rfc3339(&text).ok()?),
                None => None,
            };
            let activity = match r.activity_id {
                Some(0) => return None,
                Some(id) => Some(ActivityId(id)),
                None => None,
            };
            Some(OwnedReport {
                uid: r.uid.into_owned(),
                time: parse_rfc3339(&r.time).ok()?,
                position: LonLat::new(r.lon, r.lat),
                alt_m: r.alt_m,
                speed_mps: r.speed_mps,
                course_deg: r.course_deg,
                stale,
                activity,
            })
        })
        .collect()
}

/// `{reports: [{uid, time, lon, lat, alt_m?, speed_mps?, course_deg?,
/// activity_id?, stale?}]}` → 202 `{accepted, ignored}`. The batch is taken
/// whole or not at all: any bad report is a 400 naming each bad field as
/// `/reports/{i}/{field}`, and nothing is taken. `ignored` counts reports
/// older than (or as old as) the entity's current one, or already stale.
/// A report may link only an activity of the caller's.
#[utoipa::path(post, path = "/v1/tracks", tag = "tracks",
    request_body(content = Object, description = "`{reports: [{uid, time, lon, lat, alt_m?, speed_mps?, course_deg?, activity_id?, stale?}]}`"),
    responses((status = 202, description = "`{accepted, ignored}`"), (status = 400, description = "bad reports, each field named"),
        (status = 401), (status = 413, description = "more reports than --max-reports-per-request"),
        (status = 422, description = "the party's entity limit"), (status = 503)),
    security(("bearer" = [])))]
pub async fn report(
    party: Party,
    State(state): State<AppState>,
    BodyBytes(bytes): BodyBytes,
) -> Result<Response, ApiError> {
    let limit = state.live.config.max_reports_per_request;
    let too_many = |count: usize| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-reports",
            format!("{count} reports in one request; the limit is {limit} (--max-reports-per-request)"),
        )
        .with_errors(vec![problem("/reports".into(), format!("at most {limit} items"))])
    };
    let party_id = party.0.id;
    let now = Timestamp(now_ms());
    let mut errors = Vec::new();
    let mut reports = Vec::new();
    let mut check = |index: usize, report: OwnedReport, errors: &mut Vec<FieldProblem>| match report
        .as_report(party_id)
        .validate(now, &state.live.config.track)
    {
        Ok(()) => reports.push((index, report)),
        Err(error) => errors.push(report_problem(index, &error)),
    };
    match fast_reports(&bytes) {
        // Every report well formed: read straight into typed values, with
        // no JSON tree (a third of the service's CPU per report besides the
        // watch was building and dropping it, `benches/latency.rs`).
        Some(read) => {
            if read.len() > limit {
                return Err(too_many(read.len()));
            }
            for (index, report) in read.into_iter().enumerate() {
                check(index, report, &mut errors);
            }
        }
        // Anything else is read as a tree, which names each bad field.
        None => {
            let body = json_value(&bytes)?;
            let Some(items) = body.get("reports").and_then(Value::as_array) else {
                return Err(bad_reports(vec![problem(
                    "/reports".into(),
                    "required: an array of position reports",
                )]));
            };
            if items.len() > limit {
                return Err(too_many(items.len()));
            }
            for (index, item) in items.iter().enumerate() {
                if let Some(report) = read_report(index, item, &mut errors) {
                    check(index, report, &mut errors);
                }
            }
        }
    }
    {
        // Linking is for the caller's own activities; another party's (or
        // none) reads the same, so nothing leaks about others' activities.
        let world = state.driver.world();
        for (index, report) in &reports {
            if let Some(activity) = report.activity {
                let owned = world
                    .activities
                    .get(&activity)
                    .is_some_and(|m| m.party == party_id);
                if !owned {
                    errors.push(problem(
                        format!("/reports/{index}/activity_id"),
                        "no live activity of yours has this id",
                    ));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(bad_reports(errors));
    }
    let (reply, wait) = oneshot::channel();
    state.live.submit(LiveCommand::Reports {
        party: party_id,
        reports: reports.into_iter().map(|(_, r)| r).collect(),
        reply,
    })?;
    let accepted = wait
        .await
        .map_err(|_| ApiError::unavailable(&"the track thread dropped the request"))??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": accepted.accepted, "ignored": accepted.ignored})),
    )
        .into_response())
}

fn parse_bbox(text: &str) -> Result<GeoBounds, ApiError> {
    let bad = || {
        ApiError::invalid(
            "the query has a bad parameter",
            vec![problem(
                "bbox".into(),
                "must be W,S,E,N in degrees: longitudes within [-180, 180], latitudes within [-90, 90], S <= N (W > E crosses the antimeridian)",
            )],
        )
    };
    let numbers: Vec<f64> = text
        .split(',')
        .map(|n| n.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [west_deg, south_deg, east_deg, north_deg] = numbers[..] else {
        return Err(bad());
    };
    let lon_ok = |v: f64| v.is_finite() && (-180.0..=180.0).contains(&v);
    let lat_ok = |v: f64| v.is_finite() && (-90.0..=90.0).contains(&v);
    if !(lon_ok(west_deg) && lon_ok(east_deg) && lat_ok(south_deg) && lat_ok(north_deg))
        || south_deg > north_deg
    {
        return Err(bad());
    }
    Ok(GeoBounds {
        south_deg,
        north_deg,
        west_deg,
        east_deg,
    })
}

/// The latest position of every live entity the caller may see, as a
/// FeatureCollection of Points (`id` `party/uid`; properties `party, uid,
/// time, stale, alt_m, speed_mps, course_deg, airborne`, and `activity_id`
/// for the caller's own). Need to know: a party sees its own entities, and
/// another party's only while an open alert concerns both (one of its
/// entities in the pair, or its zone entered or crossed); a broker sees
/// all. `truncated` is true when more than `--max-tracks-listed` matched.
#[utoipa::path(get, path = "/v1/tracks", tag = "tracks",
    params(("bbox" = Option<String>, Query, description = "W,S,E,N")),
    responses((status = 200, description = "a GeoJSON FeatureCollection"), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn list(
    party: Party,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bbox = query.get("bbox").map(|b| parse_bbox(b)).transpose()?;
    let (reply, wait) = oneshot::channel();
    state.live.submit(LiveCommand::Tracks {
        viewer: party.viewer(),
        bbox,
        limit: state.live.config.max_tracks_listed,
        reply,
    })?;
    let collection = wait
        .await
        .map_err(|_| ApiError::unavailable(&"the track thread dropped the request"))?;
    Ok(Json(collection).into_response())
}

/// Issues a TAK client certificate for party `id` from the server's CA:
/// 201 `{party, cert_pem, key_pem, ca_pem}`. The key is not kept: each call
/// issues a new certificate (the old ones stay valid until they expire or
/// the party's token is revoked). Right after a revocation the answer waits
/// for the next second: a certificate issued in the revocation's second
/// would be refused with the revoked ones (X.509 times have whole seconds).
#[utoipa::path(post, path = "/v1/parties/{id}/tak-certificate", tag = "parties",
    responses((status = 201, description = "`{party, cert_pem, key_pem, ca_pem}`"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn tak_certificate(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = PartyId(path_id(&id, "party")?);
    let info = state
        .directory
        .party(id)
        .ok_or_else(|| ApiError::not_found("party"))?;
    if let Some(after_ms) = state.live.revocations().issue_after_ms(id) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        if now_ms < after_ms {
            // At most a second; the clock is the server's own.
            tokio::time::sleep(std::time::Duration::from_millis((after_ms - now_ms) as u64)).await;
        }
    }
    let issuing = state.clone();
    let credentials =
        tokio::task::spawn_blocking(move || issuing.live.ca().issue_client(info.id, &info.name))
            .await
            .map_err(|e| ApiError::unavailable(&e))?
            .map_err(|e| ApiError::unavailable(&e))?;
    tracing::info!(party = id.0, "TAK client certificate issued");
    let mut body = Map::new();
    body.insert("party".into(), json!(id.0));
    body.insert("cert_pem".into(), json!(credentials.cert_pem));
    body.insert("key_pem".into(), json!(credentials.key_pem));
    body.insert("ca_pem".into(), json!(credentials.ca_pem));
    Ok((StatusCode::CREATED, Json(Value::Object(body))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_of_every_report_is_named() {
        let mut errors = Vec::new();
        let good = read_report(
            0,
            &json!({"uid": "a", "time": "2030-01-01T00:00:00Z", "lon": 41.0, "lat": 37.0, "alt_m": null}),
            &mut errors,
        );
        assert!(good.is_some() && errors.is_empty(), "{errors:?}");
        assert!(read_report(
            3,
            &json!({"uid": 7, "time": "yesterday", "lon": "41", "speed_mps": "fast", "activity_id": 0}),
            &mut errors
        )
        .is_none());
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/reports/3/uid",
                "/reports/3/time",
                "/reports/3/lon",
                "/reports/3/lat",
                "/reports/3/speed_mps",
                "/reports/3/activity_id"
            ]
        );
    }

    #[test]
    fn a_bbox_must_be_four_numbers_in_range() {
        assert!(parse_bbox("40,36,42,38").is_ok());
        assert!(parse_bbox("179,-1,-179,1").is_ok(), "across the antimeridian");
        for bad in ["40,36,42", "40,38,42,36", "a,b,c,d", "40,36,200,38"] {
            assert!(parse_bbox(bad).is_err(), "{bad}");
        }
    }

    /// The reports the tree reading takes from `body`, or `None` if it
    /// names a problem.
    fn tree_reports(body: &str) -> Option<Vec<OwnedReport>> {
        let value: Value = serde_json::from_str(body).ok()?;
        let items = value.get("reports")?.as_array()?;
        let mut errors = Vec::new();
        let read: Vec<OwnedReport> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| read_report(i, item, &mut errors))
            .collect();
        errors.is_empty().then_some(read)
    }

    #[test]
    fn the_typed_reading_takes_only_what_the_tree_reading_takes_and_reads_it_the_same() {
        let good = r#"{"uid":"a\"b","time":"2030-01-01T00:00:00Z","lon":41,"lat":36.5}"#;
        let full = r#"{"uid":"u","time":"2030-01-01T00:00:00.250Z","lon":41.5,"lat":36.5,"alt_m":null,"speed_mps":12.5,"course_deg":90,"stale":"2030-01-01T00:02:00Z","activity_id":7,"extra":{"x":1}}"#;
        let bodies = [
            format!(r#"{{"reports":[{good},{full}]}}"#),
            r#" {"reports":[], "note": "[not an array]"}"#.to_owned(),
            r#"{"reports":[]}"#.to_owned(),
            // Each of these goes to the tree reading, which takes or names it.
            format!(r#"{{"reports":[{good}],"extra":[1]}}"#),
            r#"{"reports":[["u","2030-01-01T00:00:00Z",41,36]]}"#.to_owned(),
            r#"[[{"uid":"u","time":"2030-01-01T00:00:00Z","lon":41,"lat":36}]]"#.to_owned(),
            r#"{"reports":[{"uid":"u","time":"2030-01-01T00:00:00Z","lon":41,"lat":36,"activity_id":0}]}"#
                .to_owned(),
            r#"{"reports":[{"uid":"u","time":"2030-01-01T00:00:00Z","lon":41,"lat":36,"activity_id":2.0}]}"#
                .to_owned(),
            r#"{"reports":[{"uid":"u","time":"yesterday","lon":41,"lat":36}]}"#.to_owned(),
            r#"{"reports":[{"uid":"u","time":"2030-01-01T00:00:00Z","lon":"41","lat":36}]}"#.to_owned(),
            r#"{"reports":[{"uid":null,"time":"2030-01-01T00:00:00Z","lon":41,"lat":36}]}"#.to_owned(),
            r#"{"reports":[{"uid":"u","uid":"v","time":"2030-01-01T00:00:00Z","lon":41,"lat":36}]}"#
                .to_owned(),
            r#"{"reports":[{"uid":"u","time":"2030-01-01T00:00:00Z","lon":41,"lat":36,"stale":5}]}"#
                .to_owned(),
            r#"{"reports":{"0":{}}}"#.to_owned(),
            "not json".to_owned(),
        ];
        let mut typed = 0;
        for body in &bodies {
            let fast = fast_reports(body.as_bytes());
            if let Some(fast) = &fast {
                typed += 1;
                assert_eq!(Some(fast), tree_reports(body).as_ref(), "{body}");
            }
        }
        assert_eq!(typed, 3, "the well-formed bodies are read typed");
        assert_eq!(fast_reports(bodies[0].as_bytes()).unwrap()[0].uid, "a\"b");
    }
}
