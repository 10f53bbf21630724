//! The track thread: the one owner of the [`TrackWatch`].
//!
//! Everything that touches the watch is a [`LiveCommand`] on one bounded
//! queue: reports from `POST /v1/tracks` and from TAK clients, the queries
//! of `GET /v1/tracks`, and "zones changed". Between commands the thread
//! ticks every `tick_interval_ms`: it passes the clock's `now` (the watch
//! never reads a clock), lets stale entities go, and brings the watch's
//! fences and plans in line with the driver's `World` (the zones the
//! service holds; the activities linked entities execute). Every alert the
//! watch raises is published on the hub to the parties it concerns (and
//! brokers), and sent as CoT to those parties' connected TAK clients.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deconflict_engine::track::{
    Alert, AlertId, AlertSubject, Fence, Plan, PositionReport, ReportOutcome, TrackError, TrackKey,
    TrackWatch,
};
use deconflict_engine::{ActivityId, PartyId, Timestamp, ZoneId, ZoneKind};
use deconflict_formats::format_rfc3339;
use deconflict_geodesy::{GeoBounds, LonLat};
use deconflict_hotline::IncidentId;
use deconflict_store::Store;
use deconflict_tak::{TakInbound, TakOutbound};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::driver::{now_ms, World};
use crate::hub::Hub;
use crate::ledger;
use crate::model::Viewer;
use crate::problem::{ApiError, FieldProblem};

use super::alerts::{alert_json, cot_cleared, cot_opened};
use super::evidence::{CaptureSpec, Captures, EvidenceWrites};
use super::evidence_store;
use super::fences::{fence_of_zone, is_active};
use super::history::{HistoryPoint, TrackHistory};

fn point_of(report: &PositionReport<'_>) -> HistoryPoint {
    HistoryPoint {
        time: report.time,
        position: report.position,
        alt_m: report.alt_m,
        speed_mps: report.speed_mps,
        course_deg: report.course_deg,
        activity: report.activity,
    }
}

/// A position report as parsed from JSON, owning its uid.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedReport {
    pub uid: String,
    pub time: Timestamp,
    pub position: LonLat,
    pub alt_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub course_deg: Option<f64>,
    pub stale: Option<Timestamp>,
    pub activity: Option<ActivityId>,
}

impl OwnedReport {
    pub fn as_report(&self, party: PartyId) -> PositionReport<'_> {
        PositionReport {
            party,
            uid: &self.uid,
            time: self.time,
            position: self.position,
            alt_m: self.alt_m,
            speed_mps: self.speed_mps,
            course_deg: self.course_deg,
            stale: self.stale,
            activity: self.activity,
        }
    }
}

/// What `POST /v1/tracks` learns: reports taken, and reports ignored
/// because the entity already has a newer one or they were stale on
/// arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted {
    pub accepted: usize,
    pub ignored: usize,
}

#[derive(Debug)]
pub enum LiveCommand {
    Reports {
        party: PartyId,
        reports: Vec<OwnedReport>,
        reply: oneshot::Sender<Result<Accepted, ApiError>>,
    },
    /// CoT events as the TAK forwarder found them queued (one or more, at
    /// most `publish_every_reports`): one command per batch, so that a
    /// busy listener costs the track queue one slot per batch, not per
    /// event, and the watch takes them as a batch.
    Cot(Vec<TakInbound>),
    Tracks {
        viewer: Viewer,
        bbox: Option<GeoBounds>,
        limit: usize,
        reply: oneshot::Sender<Value>,
    },
    /// A zone was created: resynchronise the fences now, not at the next tick.
    ZonesChanged,
    /// An incident was committed: capture its evidence (the incident is
    /// read from the store, where it is by now).
    CaptureEvidence { incident: IncidentId },
}

/// An open episode, remembered for visibility and for the CoT cancel.
#[derive(Debug, Clone)]
struct OpenAlert {
    subject: AlertSubject,
    kind: &'static str,
    positions: Vec<(PartyId, LonLat)>,
}

pub(crate) struct TrackTask {
    pub watch: TrackWatch,
    pub world: Arc<RwLock<World>>,
    pub hub: Arc<Hub>,
    pub store: Arc<Store>,
    pub tak: Arc<Mutex<Vec<TakOutbound>>>,
    pub tick_interval: Duration,
    /// Reports of one request taken between two publications of alerts
    /// ([`super::LiveConfig::publish_every_reports`]).
    pub publish_every_reports: usize,
    /// The active zones (and, when a demarcation binds "every other
    /// party", the parties) the fences were last built from.
    fence_signature: (Vec<ZoneId>, Vec<PartyId>),
    /// Plans held, with the activity version they were built from.
    plans: HashMap<ActivityId, u64>,
    open: BTreeMap<AlertId, OpenAlert>,
    /// Recent positions per entity, for incident evidence.
    pub history: TrackHistory,
    /// Incident evidence being captured.
    captures: Captures,
    /// Evidence writes not committed yet (a failed write is retried at the
    /// next tick).
    unwritten: EvidenceWrites,
}

impl std::fmt::Debug for TrackTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackTask")
            .field("entities", &self.watch.len())
            .finish_non_exhaustive()
    }
}

impl TrackTask {
    pub fn new(
        watch: TrackWatch,
        world: Arc<RwLock<World>>,
        hub: Arc<Hub>,
        store: Arc<Store>,
        tak: Arc<Mutex<Vec<TakOutbound>>>,
        tick_interval: Duration,
    ) -> Self {
        Self {
            watch,
            world,
            hub,
            store,
            tak,
            tick_interval,
            publish_every_reports: super::DEFAULT_PUBLISH_EVERY_REPORTS,
            fence_signature: (Vec::new(), Vec::new()),
            plans: HashMap::new(),
            open: BTreeMap::new(),
            history: TrackHistory::default(),
            captures: Captures::default(),
            unwritten: EvidenceWrites::default(),
        }
    }

    /// Reports of one request taken between two publications of alerts.
    pub fn with_publish_every(mut self, reports: usize) -> Self {
        self.publish_every_reports = reports.max(1);
        self
    }

    /// The recent-history ring and the evidence captures to keep (with
    /// their limits).
    pub fn with_evidence(mut self, history: TrackHistory, captures: Captures) -> Self {
        self.history = history;
        self.captures = captures;
        self
    }

    pub fn run(mut self, inbox: Receiver<LiveCommand>) {
        self.resume_captures(Timestamp(now_ms()));
        let mut next_tick = Instant::now();
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Positions kept since the last tick go to disk; the
                    // captures still pending resume at the next start.
                    self.flush_evidence(Timestamp(now_ms()));
                    return;
                }
            }
            if Instant::now() >= next_tick {
                let now = Timestamp(now_ms());
                self.watch.handle_tick(now);
                self.sync(now);
                self.publish();
                self.captures.handle_tick(now);
                self.flush_evidence(now);
                metrics::gauge!("deconflict_live_entities").set(self.watch.len() as f64);
                next_tick = Instant::now() + self.tick_interval;
            }
        }
    }

    fn world(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handle(&mut self, command: LiveCommand) {
        match command {
            LiveCommand::Reports {
                party,
                reports,
                reply,
            } => {
                let now = Timestamp(now_ms());
                let answer = self.take_reports(now, party, &reports);
                self.publish();
                let _ = reply.send(answer);
            }
            LiveCommand::Cot(events) => {
                let now = Timestamp(now_ms());
                self.take_cot(now, &events);
            }
            LiveCommand::Tracks {
                viewer,
                bbox,
                limit,
                reply,
            } => {
                let _ = reply.send(self.visible_tracks(&viewer, bbox.as_ref(), limit));
            }
            LiveCommand::ZonesChanged => {
                let now = Timestamp(now_ms());
                self.sync(now);
                self.publish();
            }
            LiveCommand::CaptureEvidence { incident } => {
                let now = Timestamp(now_ms());
                match self.store.read(move |conn| {
                    Ok((
                        evidence_store::incident(conn, incident)?,
                        evidence_store::evidence(conn, incident)?.is_some(),
                    ))
                }) {
                    // Started already (a resumed or repeated command): nothing to do.
                    Ok((Some(_), true)) => {}
                    Ok((Some(found), false)) => {
                        let spec = CaptureSpec::of(&found, self.captures.config().radius_m);
                        self.captures.start(now, spec, &self.history);
                        self.flush_evidence(now);
                    }
                    Ok((None, _)) => tracing::warn!(incident = incident.0, "no such incident to capture"),
                    // The next start finds it without a capture and starts it.
                    Err(error) => tracing::warn!(incident = incident.0, %error, "cannot read the incident"),
                }
            }
        }
    }

    /// Keeps an applied report in the ring and in the pending captures.
    fn remember(&mut self, party: PartyId, uid: &str, point: HistoryPoint) {
        self.history.record(party, uid, point);
        self.captures.on_report(party, uid, &point, &self.history);
    }

    /// At start: captures pending at the last stop resume (with the units
    /// and positions they had, closing at the first tick if their window
    /// is over); incidents whose capture never started start now, from an
    /// empty ring.
    fn resume_captures(&mut self, now: Timestamp) {
        match self.store.read(evidence_store::unfinished) {
            Ok(found) => {
                for pending in found.pending {
                    self.captures
                        .resume(pending.spec, pending.involved, pending.points, pending.truncated);
                }
                let radius_m = self.captures.config().radius_m;
                for incident in found.unstarted {
                    self.captures
                        .start(now, CaptureSpec::of(&incident, radius_m), &self.history);
                }
                self.captures.handle_tick(now);
                self.flush_evidence(now);
            }
            Err(error) => tracing::error!(%error, "cannot read unfinished incident evidence"),
        }
    }

    /// Commits the captures' writes; on failure they wait for the next tick.
    fn flush_evidence(&mut self, now: Timestamp) {
        let mut writes = self.captures.take_writes();
        writes.prepend(std::mem::take(&mut self.unwritten));
        if writes.is_empty() {
            return;
        }
        let kept = writes.points.len();
        let shared = Arc::new(writes);
        let batch = Arc::clone(&shared);
        match self
            .store
            .write(move |conn| evidence_store::write(conn, &batch, now))
        {
            Ok(()) => {
                metrics::counter!("deconflict_evidence_points_total").increment(kept as u64);
            }
            Err(error) => {
                tracing::warn!(%error, points = kept, "incident evidence not written; retried at the next tick");
                self.unwritten = Arc::try_unwrap(shared).unwrap_or_else(|arc| (*arc).clone());
            }
        }
    }

    /// Takes a validated batch whole or not at all: the limits on entities
    /// are checked for the batch before the first report is applied.
    fn take_reports(
        &mut self,
        now: Timestamp,
        party: PartyId,
        reports: &[OwnedReport],
    ) -> Result<Accepted, ApiError> {
        let config = self.watch.config();
        let new: HashSet<&str> = reports
            .iter()
            .map(|r| r.uid.as_str())
            .filter(|uid| self.watch.track(party, uid).is_none())
            .collect();
        if self.watch.party_len(party) + new.len() > config.max_entities_per_party {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "too-many-entities",
                format!(
                    "this batch would give the party more than {} live entities (--max-entities-per-party)",
                    config.max_entities_per_party
                ),
            )
            .with_errors(vec![FieldProblem {
                pointer: "/reports".into(),
                message: format!("{} new entities", new.len()),
            }]));
        }
        if self.watch.len() + new.len() > config.max_entities {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "capacity",
                format!(
                    "the service holds its limit of {} live entities",
                    config.max_entities
                ),
            )
            .with_retry_after(10));
        }
        for activity in reports.iter().filter_map(|r| r.activity) {
            self.ensure_plan(activity);
        }
        let mut accepted = Accepted::default();
        // The engine gathers a call's candidates in cell order (on
        // `batch_threads` threads), with the same outcomes and alerts as
        // one report at a time; the request goes in parts of
        // `publish_every_reports`, and each part's alerts are sent before
        // the next part is taken, so that an alert waits for its part, not
        // for the whole request.
        let built: Vec<PositionReport<'_>> = reports.iter().map(|r| r.as_report(party)).collect();
        let part_len = self.publish_every_reports.max(1);
        for (part, chunk) in built.chunks(part_len).enumerate() {
            let outcomes = self.watch.handle_reports(now, chunk);
            self.count_outcomes(party, part * part_len, chunk, outcomes, &mut accepted);
            self.publish();
        }
        metrics::counter!("deconflict_track_reports_total", "source" => "http")
            .increment(accepted.accepted as u64);
        Ok(accepted)
    }

    /// CoT events of any parties, taken as one batch (the watch gives the
    /// same outcomes and alerts as one at a time); a refused event is
    /// counted and logged, the others still count.
    fn take_cot(&mut self, now: Timestamp, events: &[TakInbound]) {
        let built: Vec<PositionReport<'_>> = events
            .iter()
            .map(|inbound| {
                let event = &inbound.event;
                PositionReport {
                    party: inbound.party,
                    uid: &event.uid,
                    time: event.time,
                    position: LonLat::new(event.lon_deg, event.lat_deg),
                    alt_m: event.hae_m,
                    speed_mps: event.speed_mps,
                    course_deg: event.course_deg,
                    stale: Some(event.stale),
                    activity: None,
                }
            })
            .collect();
        let outcomes = self.watch.handle_reports(now, &built);
        let mut taken = 0u64;
        for (report, outcome) in built.iter().zip(outcomes) {
            match outcome {
                Ok(outcome) => {
                    if outcome == ReportOutcome::Applied {
                        self.remember(report.party, report.uid, point_of(report));
                    }
                    taken += 1;
                }
                Err(error) => {
                    metrics::counter!("deconflict_track_reports_refused_total", "source" => "cot")
                        .increment(1);
                    tracing::debug!(party = report.party.0, uid = %report.uid, %error, "CoT report refused");
                }
            }
        }
        metrics::counter!("deconflict_track_reports_total", "source" => "cot").increment(taken);
        self.publish();
    }

    fn count_outcomes(
        &mut self,
        party: PartyId,
        first: usize,
        built: &[PositionReport<'_>],
        outcomes: Vec<Result<ReportOutcome, TrackError>>,
        accepted: &mut Accepted,
    ) {
        for (i, (report, outcome)) in built.iter().zip(outcomes).enumerate() {
            let i = first + i;
            match outcome {
                Ok(ReportOutcome::Applied) => {
                    self.remember(party, report.uid, point_of(report));
                    accepted.accepted += 1
                }
                Ok(_) => accepted.ignored += 1,
                // Only a race can get here (the handler validated the batch
                // and checked the activity's owner): an activity cancelled
                // in between. The rest of the batch still counts.
                Err(error) => {
                    tracing::debug!(report = i, %error, "report refused after validation");
                    accepted.ignored += 1;
                }
            }
        }
    }

    fn ensure_plan(&mut self, activity: ActivityId) {
        if self.plans.contains_key(&activity) {
            return;
        }
        let plan = {
            let world = self.world();
            let Some(meta) = world.activities.get(&activity) else {
                return;
            };
            world
                .engine
                .activity(activity)
                .map(|a| (Plan::from_activity(a), meta.version))
        };
        if let Some((plan, version)) = plan {
            match self.watch.set_plan(activity, plan) {
                Ok(()) => {
                    self.plans.insert(activity, version);
                }
                Err(error) => tracing::warn!(activity = activity.0, %error, "cannot hold the plan"),
            }
        }
    }

    /// Brings fences and plans in line with the driver's world.
    fn sync(&mut self, now: Timestamp) {
        self.history.prune(now);
        let (active, needs_parties) = {
            let world = self.world();
            let active: Vec<ZoneId> = world
                .zones
                .iter()
                .filter(|(_, z)| is_active(z, now))
                .map(|(id, _)| *id)
                .collect();
            let needs_parties = world
                .zones
                .values()
                .any(|z| z.kind == ZoneKind::Demarcation && z.parties.is_empty() && is_active(z, now));
            (active, needs_parties)
        };
        let parties: Vec<PartyId> = if needs_parties {
            match self.store.read(ledger::parties) {
                Ok(rows) => rows.into_iter().map(|r| r.id).collect(),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the parties; fences kept as they were");
                    self.fence_signature.1.clone()
                }
            }
        } else {
            Vec::new()
        };
        let signature = (active, parties);
        if signature != self.fence_signature {
            let max_vertices = self.watch.config().max_fence_vertices;
            let fences: Vec<Fence> = {
                let world = self.world();
                signature
                    .0
                    .iter()
                    .filter_map(|id| fence_of_zone(*id, world.zones.get(id)?, &signature.1))
                    .filter(|fence| match fence.validate(max_vertices) {
                        Ok(()) => true,
                        Err(error) => {
                            tracing::warn!(zone = fence.id.0, %error, "zone not usable as a fence");
                            false
                        }
                    })
                    .collect()
            };
            match self.watch.set_fences(now, fences) {
                Ok(()) => self.fence_signature = signature,
                Err(error) => tracing::warn!(%error, "fences not updated"),
            }
        }
        // Plans: dropped with their activity, rebuilt when it changed.
        let changes: Vec<(ActivityId, Option<(Plan, u64)>)> = {
            let world = self.world();
            self.plans
                .iter()
                .filter_map(|(&id, &version)| match world.activities.get(&id) {
                    None => Some((id, None)),
                    Some(meta) if meta.version != version => Some((
                        id,
                        world
                            .engine
                            .activity(id)
                            .map(|a| (Plan::from_activity(a), meta.version)),
                    )),
                    Some(_) => None,
                })
                .collect()
        };
        for (id, change) in changes {
            let held = match change {
                Some((plan, version)) => self.watch.set_plan(id, plan).is_ok().then_some(version),
                None => None,
            };
            match held {
                Some(version) => {
                    self.plans.insert(id, version);
                }
                None => {
                    self.watch.remove_plan(now, id);
                    self.plans.remove(&id);
                }
            }
        }
    }

    /// Sends every alert the watch raised: events on the hub, CoT to TAK.
    fn publish(&mut self) {
        while let Some(alert) = self.watch.poll_alert() {
            let kind = alert.kind().as_str();
            let parties = alert.parties();
            let data = alert_json(&alert);
            self.hub.publish_to_parties(&parties, kind, &data);
            metrics::counter!("deconflict_track_alerts_total", "type" => kind).increment(1);
            let tak = self.tak.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &alert {
                Alert::Opened { id, at, detail } => {
                    let mut positions = Vec::with_capacity(parties.len());
                    for &party in &parties {
                        let cot = cot_opened(*id, *at, detail, party);
                        positions.push((party, LonLat::new(cot.lon_deg, cot.lat_deg)));
                        let bytes: Arc<[u8]> = cot.to_xml().into_bytes().into();
                        for outbound in tak.iter() {
                            outbound.send_to_party(party, Arc::clone(&bytes));
                        }
                    }
                    self.open.insert(
                        *id,
                        OpenAlert {
                            subject: detail.subject(),
                            kind,
                            positions,
                        },
                    );
                }
                Alert::Cleared { id, at, reason, .. } => {
                    if let Some(open) = self.open.remove(id) {
                        for (party, position) in open.positions {
                            let cot = cot_cleared(*id, *at, open.kind, reason, position);
                            let bytes: Arc<[u8]> = cot.to_xml().into_bytes().into();
                            for outbound in tak.iter() {
                                outbound.send_to_party(party, Arc::clone(&bytes));
                            }
                        }
                    }
                }
            }
        }
    }

    /// The need-to-know rule for live positions: a party sees its own
    /// entities, and another party's entity only while an open alert
    /// concerns both (a pair with one of its entities, or an entity in or
    /// across one of its zones). A broker sees every entity.
    fn visible_tracks(&self, viewer: &Viewer, bbox: Option<&GeoBounds>, limit: usize) -> Value {
        let mut shown: HashSet<&TrackKey> = HashSet::new();
        if !viewer.broker {
            for open in self.open.values() {
                match &open.subject {
                    AlertSubject::Pair([a, b]) => {
                        if a.party == viewer.party {
                            shown.insert(b);
                        } else if b.party == viewer.party {
                            shown.insert(a);
                        }
                    }
                    AlertSubject::Fence {
                        track, fence_owner, ..
                    } if *fence_owner == viewer.party => {
                        shown.insert(track);
                    }
                    _ => {}
                }
            }
        }
        let mut features = Vec::new();
        let mut truncated = false;
        for view in self.watch.tracks() {
            let own = view.key.party == viewer.party;
            if !(viewer.broker || own || shown.contains(view.key)) {
                continue;
            }
            if bbox.is_some_and(|b| !in_bbox(b, view.position)) {
                continue;
            }
            if features.len() >= limit {
                truncated = true;
                break;
            }
            let mut properties = json!({
                "party": view.key.party.0,
                "uid": &*view.key.uid,
                "time": format_rfc3339(view.time),
                "stale": format_rfc3339(view.stale),
                "alt_m": view.alt_m,
                "speed_mps": view.speed_mps,
                "course_deg": view.course_deg,
                "airborne": view.airborne,
            });
            // Which activity a unit executes is its party's business.
            if own || viewer.broker {
                properties["activity_id"] = json!(view.activity.map(|a| a.0));
            }
            features.push(json!({
                "type": "Feature",
                "id": format!("{}/{}", view.key.party.0, view.key.uid),
                "geometry": {"type": "Point", "coordinates": [view.position.lon_deg, view.position.lat_deg]},
                "properties": properties,
            }));
        }
        json!({"type": "FeatureCollection", "features": features, "truncated": truncated})
    }
}

/// Whether `p` is in the box (W > E crosses the antimeridian).
pub fn in_bbox(b: &GeoBounds, p: LonLat) -> bool {
    let lat_ok = (b.south_deg..=b.north_deg).contains(&p.lat_deg);
    let lon_ok = if b.west_deg <= b.east_deg {
        (b.west_deg..=b.east_deg).contains(&p.lon_deg)
    } else {
        p.lon_deg >= b.west_deg || p.lon_deg <= b.east_deg
    };
    lat_ok && lon_ok
}

/// A refused report, as the field it names under `/reports/{index}`.
pub fn report_problem(index: usize, error: &TrackError) -> FieldProblem {
    let field = match error {
        TrackError::Invalid { field, .. } => field.as_str(),
        TrackError::PlanOfAnotherParty { .. } => "activity_id",
        _ => "",
    };
    let message = match error {
        TrackError::Invalid { problem, .. } => problem.to_string(),
        other => other.to_string(),
    };
    FieldProblem {
        pointer: if field.is_empty() {
            format!("/reports/{index}")
        } else {
            format!("/reports/{index}/{field}")
        },
        message,
    }
}
