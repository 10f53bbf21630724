//! The day's script, played against the API on an accelerated clock, and
//! the live units.

use std::time::Duration;

use deconflict_audit::{verify_receipt, NoteVerifier, Receipt};
use deconflict_engine::Timestamp;
use deconflict_formats::format_rfc3339;
use deconflict_geodesy::{distance_m, point_at_distance, LonLat};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::scenario::Step;
use crate::{absent, now_ms, DemoError, RunningDemo};

/// Live positions are sent every this many scenario seconds…
const REPORT_EVERY_SCENARIO_S: f64 = 30.0;
/// …but never more often than this in real time.
/// The highest speed a unit reports: below the service's default
/// `max_speed_mps` (1,500 m/s), above which a report is refused whole.
const MAX_REPORTED_SPEED_MPS: f64 = 1_000.0;
const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// What the script did, for the narration and the tests.
#[derive(Debug, Clone, Default)]
pub struct ScriptOutcome {
    /// Conflicts resolved by a delay: `(activity key, conflict ids)`.
    pub resolved_by_delay: Vec<(String, Vec<u64>)>,
    /// Steps skipped because the service lacks the endpoint.
    pub skipped: Vec<String>,
    pub messages_sent: usize,
    pub track_reports: usize,
    pub incidents: usize,
    /// Positions in the incidents' evidence when the script ended.
    pub evidence_positions: usize,
    /// Receipts that verified offline against the log's public key.
    pub receipts_verified: usize,
    /// The final signed checkpoint.
    pub checkpoint: String,
}

/// One line about a conflict as a party sees it.
pub fn describe_conflict(conflict: &Value) -> String {
    let other = match (&conflict["zone"], &conflict["activities"][1]) {
        (Value::Number(zone), _) => format!("zone {zone}"),
        (_, Value::Null) => "another party's activity (need to know)".to_owned(),
        (_, id) => format!("activity {id}"),
    };
    let at = &conflict["location"]["coordinates"];
    format!(
        "conflict {}: activity {} with {other}, {:.0} m apart where {:.0} m are required, near {:.3} N {:.3} E",
        conflict["id"],
        conflict["activities"][0],
        conflict["min_distance_m"].as_f64().unwrap_or(f64::NAN),
        conflict["required_m"].as_f64().unwrap_or(f64::NAN),
        at[1].as_f64().unwrap_or(f64::NAN),
        at[0].as_f64().unwrap_or(f64::NAN),
    )
}

fn clock(t: Timestamp) -> String {
    format_rfc3339(t).get(11..16).unwrap_or("??:??").to_owned()
}

/// Waits until scenario time `at` on the accelerated clock that started at
/// `started_ms` (real) at the scenario's origin.
async fn until(demo: &RunningDemo, started_ms: i64, speed: f64, at: Timestamp) {
    let due_ms = started_ms + ((at.unix_ms() - demo.scenario.origin.unix_ms()) as f64 / speed) as i64;
    let wait = due_ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// The conflict between two activities, as the broker sees it.
async fn conflict_between(demo: &RunningDemo, pair: &[String; 2]) -> Result<Option<Value>, DemoError> {
    let ids = [demo.activities[&pair[0]], demo.activities[&pair[1]]];
    let answer = demo
        .client
        .expect(Method::GET, "/v1/conflicts", &demo.broker().token, None)
        .await?;
    Ok(answer["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            let listed: Vec<u64> = c["activities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            listed.len() == 2 && listed.contains(&ids[0]) && listed.contains(&ids[1])
        })
        .cloned())
}

fn id_of(answer: &Value) -> Option<Value> {
    [&answer["id"], &answer["message"]["id"], &answer["incident"]["id"]]
        .into_iter()
        .find(|v| !v.is_null())
        .cloned()
}

fn id_text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_owned)
}

/// Plays the script. `narrate` gets one line per thing that happens.
pub async fn run_script(
    demo: &RunningDemo,
    speed: f64,
    narrate: &mut (dyn FnMut(String) + Send),
) -> Result<ScriptOutcome, DemoError> {
    let speed = if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    };
    let mut outcome = ScriptOutcome::default();
    let mut reported: Vec<(String, u64)> = Vec::new();
    let mut messages: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    let started_ms = now_ms();
    let mut live: Option<tokio::task::JoinHandle<Result<usize, DemoError>>> = None;
    for (at, step) in &demo.scenario.script {
        until(demo, started_ms, speed, *at).await;
        let when = clock(*at);
        match step {
            Step::Message {
                key,
                from,
                to,
                priority,
                body,
                ack_within_s,
                about,
            } => {
                let sender = demo.party(from);
                let recipient = demo.party(to);
                let mut message = json!({"to": recipient.id, "body": body, "priority": priority});
                if let Some(s) = ack_within_s {
                    message["ack_within_s"] = json!(s);
                }
                if let Some(pair) = about {
                    if let Some(conflict) = conflict_between(demo, pair).await? {
                        message["conflict_id"] = conflict["id"].clone();
                    }
                }
                let answer = demo
                    .client
                    .call(Method::POST, "/v1/messages", &sender.token, Some(&message))
                    .await?;
                if absent(&answer) {
                    narrate(format!(
                        "{when} (skipped: this server has no /v1/messages yet) {} → {}: {body}",
                        sender.name, recipient.name
                    ));
                    outcome.skipped.push(format!("message {key}"));
                } else if answer.status.is_success() {
                    narrate(format!(
                        "{when} {priority} message {} → {}: {body}",
                        sender.name, recipient.name
                    ));
                    if let Some(id) = id_of(&answer.body) {
                        messages.insert(key.clone(), id);
                    }
                    outcome.messages_sent += 1;
                } else {
                    narrate(format!(
                        "{when} message {key} refused ({}): {}",
                        answer.status, answer.body
                    ));
                }
            }
            Step::AckMessage { by, message } => {
                let party = demo.party(by);
                let Some(id) = messages.get(message) else {
                    outcome.skipped.push(format!("ack of message {message}"));
                    continue;
                };
                let path = format!("/v1/messages/{}/ack", id_text(id));
                let answer = demo.client.call(Method::POST, &path, &party.token, None).await?;
                narrate(format!(
                    "{when} {} acknowledges message {} ({})",
                    party.name,
                    id_text(id),
                    answer.status
                ));
            }
            Step::AckConflict { by, about } => {
                let party = demo.party(by);
                let Some(conflict) = conflict_between(demo, about).await? else {
                    narrate(format!(
                        "{when} no open conflict between {} and {} to acknowledge",
                        about[0], about[1]
                    ));
                    continue;
                };
                let path = format!("/v1/conflicts/{}/ack", conflict["id"]);
                let answer = demo
                    .client
                    .expect(Method::POST, &path, &party.token, None)
                    .await?;
                narrate(format!(
                    "{when} {} acknowledges conflict {} (now {}; receipt at log index {})",
                    party.name, conflict["id"], answer["conflict"]["state"], answer["receipt"]["log_index"]
                ));
            }
            Step::Delay {
                by,
                activity,
                minutes,
            } => {
                let party = demo.party(by);
                let id = demo.activities[activity];
                let path = format!("/v1/activities/{id}");
                let current = demo.client.call(Method::GET, &path, &party.token, None).await?;
                if !current.status.is_success() {
                    return Err(DemoError::Refused {
                        what: format!("GET {path}"),
                        status: current.status,
                        body: current.body.to_string(),
                    });
                }
                let version = current.body["properties"]["version"].as_u64().unwrap_or(1);
                let before = conflict_ids(demo, &party.token, id).await?;
                let mut feature = crate::scenario::shifted(&current.body, minutes * 60_000, None)?;
                feature.as_object_mut().map(|f| f.remove("id"));
                let answer = demo
                    .client
                    .call_with(Method::PUT, &path, &party.token, Some(&feature), Some(version))
                    .await?;
                if !answer.status.is_success() {
                    return Err(DemoError::Refused {
                        what: format!("PUT {path}"),
                        status: answer.status,
                        body: answer.body.to_string(),
                    });
                }
                let after: Vec<u64> = answer.body["conflicts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["id"].as_u64())
                    .collect();
                let resolved: Vec<u64> = before.into_iter().filter(|c| !after.contains(c)).collect();
                narrate(format!(
                    "{when} {} delays activity {id} by {minutes} min (If-Match: \"{version}\" → version {}): conflict(s) {resolved:?} resolved",
                    party.name, answer.body["version"]
                ));
                outcome.resolved_by_delay.push((activity.clone(), resolved));
            }
            Step::Live { until: end } => {
                let end = deconflict_formats::parse_rfc3339(end).unwrap_or(*at);
                narrate(format!(
                    "{when} live tracks start: {} unit(s) report their positions",
                    demo.scenario.units.len()
                ));
                live = Some(tokio::spawn(drive_units(
                    demo.snapshot(),
                    started_ms,
                    speed,
                    *at,
                    end,
                    false,
                )));
            }
            Step::Incident {
                by,
                severity,
                at_place,
                summary,
                description,
                parties,
                units,
            } => {
                let party = demo.party(by);
                // The service's shape (`time`, `lon`, `lat`, `description`);
                // summary and severity travel in the description.
                // Its time is now, the real moment the accelerated step
                // plays: the live units stamp their positions with the real
                // time too, so the evidence window around it holds their
                // tracks. (The scenario instant on today's calendar, where
                // the plans are, is hours ahead: the service refuses an
                // incident from the future.)
                let body = json!({
                    "description": format!("{summary} ({severity}): {description}"),
                    "time": format_rfc3339(Timestamp(now_ms())),
                    "lon": at_place[0], "lat": at_place[1],
                    "parties": parties.iter().map(|key| demo.party(key).id).collect::<Vec<_>>(),
                    "entities": units,
                });
                let answer = demo
                    .client
                    .call(Method::POST, "/v1/incidents", &party.token, Some(&body))
                    .await?;
                if absent(&answer) {
                    narrate(format!(
                        "{when} (skipped: this server has no /v1/incidents yet) incident by {}: {summary}",
                        party.name
                    ));
                    outcome.skipped.push("incident".into());
                } else {
                    narrate(format!(
                        "{when} {} reports an incident: {summary} ({}{})",
                        party.name,
                        answer.status,
                        if answer.status.is_success() {
                            String::new()
                        } else {
                            format!(": {}", answer.body)
                        }
                    ));
                    outcome.incidents += usize::from(answer.status.is_success());
                    if let Some(id) = answer.body["id"].as_u64() {
                        reported.push((party.token.clone(), id));
                    }
                }
            }
        }
    }
    if let Some(live) = live {
        match live.await {
            Ok(Ok(0)) => outcome.skipped.push("live tracks".into()),
            Ok(Ok(reports)) => outcome.track_reports = reports,
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(DemoError::Io(std::io::Error::other(error))),
        }
        if outcome.track_reports == 0 {
            narrate("live tracks skipped: this server has no /v1/tracks yet".into());
        }
    }
    // The track history the service keeps around each incident.
    for (token, id) in reported {
        let path = format!("/v1/incidents/{id}/evidence");
        // The capture starts on the track thread just after the incident
        // commits (`radius_m` is null until then): ask again briefly.
        let mut answer = demo.client.call(Method::GET, &path, &token, None).await?;
        for _ in 0..100 {
            if !answer.body["radius_m"].is_null() || !answer.status.is_success() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer = demo.client.call(Method::GET, &path, &token, None).await?;
        }
        if absent(&answer) {
            outcome.skipped.push("incident evidence".into());
            continue;
        }
        let features = answer.body["features"].as_array().cloned().unwrap_or_default();
        let positions: Vec<&Value> = features
            .iter()
            .filter(|f| f["properties"]["kind"] == "position")
            .collect();
        let mut tracks: Vec<&str> = positions
            .iter()
            .filter_map(|f| f["properties"]["uid"].as_str())
            .collect();
        tracks.dedup();
        let positions = positions.len();
        narrate(format!(
            "incident {id} evidence: {positions} positions of {} ({}; GET {path})",
            if tracks.is_empty() {
                "no unit".to_owned()
            } else {
                tracks.join(", ")
            },
            if answer.body["complete"] == true {
                "complete"
            } else {
                "still capturing until the window ends"
            },
        ));
        outcome.evidence_positions += positions;
    }
    verify_log(demo, &mut outcome, narrate).await?;
    Ok(outcome)
}

async fn conflict_ids(demo: &RunningDemo, token: &str, activity: u64) -> Result<Vec<u64>, DemoError> {
    let answer = demo
        .client
        .expect(Method::GET, "/v1/conflicts?state=open", token, None)
        .await?;
    let open = demo
        .client
        .expect(Method::GET, "/v1/conflicts?state=acknowledged", token, None)
        .await?;
    Ok([answer, open]
        .iter()
        .flat_map(|a| a["conflicts"].as_array().cloned().unwrap_or_default())
        .filter(|c| {
            c["activities"][0].as_u64() == Some(activity) || c["activities"][1].as_u64() == Some(activity)
        })
        .filter_map(|c| c["id"].as_u64())
        .collect())
}

/// Checks every receipt of the loading offline against the log's public
/// key, and gets the final checkpoint.
async fn verify_log(
    demo: &RunningDemo,
    outcome: &mut ScriptOutcome,
    narrate: &mut (dyn FnMut(String) + Send),
) -> Result<(), DemoError> {
    let token = &demo.broker().token;
    let key = demo
        .client
        .call(Method::GET, "/v1/log/public-key", token, None)
        .await?;
    let key_text = key.body.as_str().unwrap_or("").trim().to_owned();
    let verifier = NoteVerifier::parse(&key_text).map_err(|e| DemoError::Refused {
        what: "GET /v1/log/public-key".into(),
        status: key.status,
        body: e.to_string(),
    })?;
    for receipt in &demo.receipts {
        let parsed: Receipt = match serde_json::from_value(receipt.clone()) {
            Ok(r) => r,
            Err(_) => continue,
        };
        if verify_receipt(&parsed, None, &verifier).is_ok() {
            outcome.receipts_verified += 1;
        }
    }
    let checkpoint = demo
        .client
        .call(Method::GET, "/v1/log/checkpoint", token, None)
        .await?;
    outcome.checkpoint = checkpoint.body.as_str().unwrap_or("").to_owned();
    narrate(format!(
        "audit log: {} of {} receipts verify offline against {key_text}; the signed checkpoint now:\n{}",
        outcome.receipts_verified,
        demo.receipts.len(),
        outcome.checkpoint.trim_end()
    ));
    Ok(())
}

/// What the live units need of the running demo (it outlives the borrow).
#[derive(Debug, Clone)]
pub struct LiveSetup {
    pub client: crate::Client,
    pub origin: Timestamp,
    /// `(uid, party token, route, window start, window end)`, scenario times.
    pub units: Vec<(String, String, Vec<LonLat>, Timestamp, Timestamp)>,
}

impl RunningDemo {
    /// The units' routes and windows from the scenario file.
    pub fn snapshot(&self) -> LiveSetup {
        let units = self
            .scenario
            .units
            .iter()
            .filter_map(|unit| {
                let feature = &self.scenario.activity(&unit.activity)?.feature;
                let route: Vec<LonLat> = feature["geometry"]["coordinates"]
                    .as_array()?
                    .iter()
                    .filter_map(|p| Some(LonLat::new(p[0].as_f64()?, p[1].as_f64()?)))
                    .collect();
                let start =
                    deconflict_formats::parse_rfc3339(feature["properties"]["start"].as_str()?).ok()?;
                let end = deconflict_formats::parse_rfc3339(feature["properties"]["end"].as_str()?).ok()?;
                Some((
                    unit.uid.clone(),
                    self.parties[&unit.party].token.clone(),
                    route,
                    start,
                    end,
                ))
            })
            .collect();
        LiveSetup {
            client: self.client.clone(),
            origin: self.scenario.origin,
            units,
        }
    }
}

/// Where a unit is at `t` driving `route` at constant speed over
/// `[start, end]` (before: at the start; after: at the end), its course
/// and its real speed.
pub fn position(route: &[LonLat], start: Timestamp, end: Timestamp, t: Timestamp) -> (LonLat, f64, f64) {
    let legs: Vec<f64> = route.windows(2).map(|w| distance_m(w[0], w[1])).collect();
    let total: f64 = legs.iter().sum();
    let span_s = ((end.unix_ms() - start.unix_ms()) as f64 / 1000.0).max(1.0);
    let fraction = ((t.unix_ms() - start.unix_ms()) as f64 / 1000.0 / span_s).clamp(0.0, 1.0);
    let mut left = total * fraction;
    for (i, leg) in legs.iter().enumerate() {
        if left <= *leg || i == legs.len() - 1 {
            let (a, b) = (route[i], route[i + 1]);
            let here = point_at_distance(a, b, left.min(*leg));
            return (here, bearing_deg(a, b), total / span_s);
        }
        left -= leg;
    }
    (route.first().copied().unwrap_or(LonLat::new(0.0, 0.0)), 0.0, 0.0)
}

/// Initial great-circle bearing (spherical: for a heading arrow).
fn bearing_deg(a: LonLat, b: LonLat) -> f64 {
    let (phi1, phi2) = (a.lat_deg.to_radians(), b.lat_deg.to_radians());
    let dlon = (b.lon_deg - a.lon_deg).to_radians();
    let y = dlon.sin() * phi2.cos();
    let x = phi1.cos() * phi2.sin() - phi1.sin() * phi2.cos() * dlon.cos();
    (y.atan2(x).to_degrees() + 360.0) % 360.0
}

/// Reports the units' positions over `[from, to]` (scenario time) on the
/// accelerated clock that started at `started_ms`; with `repeat`, plays the
/// window again and again until the task is aborted. Returns the number of
/// reports accepted, 0 when the service has no `/v1/tracks`.
pub async fn drive_units(
    setup: LiveSetup,
    started_ms: i64,
    speed: f64,
    from: Timestamp,
    to: Timestamp,
    repeat: bool,
) -> Result<usize, DemoError> {
    let period_s = (REPORT_EVERY_SCENARIO_S / speed).max(MIN_REPORT_INTERVAL.as_secs_f64());
    let mut accepted = 0;
    let mut round_started_ms = started_ms + ((from.unix_ms() - setup.origin.unix_ms()) as f64 / speed) as i64;
    loop {
        loop {
            let scenario_now =
                Timestamp(from.unix_ms() + ((now_ms() - round_started_ms) as f64 * speed) as i64);
            let t = if scenario_now > to { to } else { scenario_now };
            let stamp = format_rfc3339(Timestamp(now_ms()));
            for (uid, token, route, start, end) in &setup.units {
                if route.len() < 2 {
                    continue;
                }
                let (at, course_deg, speed_mps) = position(route, *start, *end, t);
                let moving = t > *start && t < *end;
                let report = json!({"reports": [{
                    "uid": uid, "time": stamp, "lon": at.lon_deg, "lat": at.lat_deg,
                    "course_deg": course_deg,
                    // The speed on the map: real speed times the clock's,
                    // kept under the service's default limit (1,500 m/s,
                    // which refuses the report) at fast replays.
                    "speed_mps": if moving { (speed_mps * speed).min(MAX_REPORTED_SPEED_MPS) } else { 0.0 },
                }]});
                let answer = setup
                    .client
                    .call(Method::POST, "/v1/tracks", token, Some(&report))
                    .await?;
                if absent(&answer) {
                    return Ok(0);
                }
                if answer.status == StatusCode::ACCEPTED || answer.status.is_success() {
                    accepted += 1;
                }
            }
            if t >= to {
                break;
            }
            tokio::time::sleep(Duration::from_secs_f64(period_s)).await;
        }
        if !repeat {
            return Ok(accepted);
        }
        round_started_ms = now_ms();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_drives_its_route_at_constant_speed_and_waits_at_the_ends() {
        let route = [
            LonLat::new(41.0, 37.0),
            LonLat::new(41.0, 37.1),
            LonLat::new(41.1, 37.1),
        ];
        let (start, end) = (Timestamp(0), Timestamp(3_600_000));
        let (before, _, _) = position(&route, start, end, Timestamp(-5));
        assert!(distance_m(before, route[0]) < 1e-6);
        let (after, _, _) = position(&route, start, end, Timestamp(9_999_999));
        assert!(distance_m(after, route[2]) < 1e-3);
        let total = distance_m(route[0], route[1]) + distance_m(route[1], route[2]);
        let (middle, course, speed) = position(&route, start, end, Timestamp(1_800_000));
        // Half the length falls on the first (northbound, longer) leg.
        assert!((distance_m(route[0], middle) - total / 2.0).abs() < 1.0);
        assert!((speed - total / 3600.0).abs() < 1e-9);
        assert!(
            !(1.0..=359.0).contains(&course),
            "heading north on the first leg: {course}"
        );
    }
}
