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

/// The default of [`super::LiveConfig::group_max_reports`]
/// (`--track-group-max-reports`): reports queued for the watch at most
/// taken in one call when several commands wait (whole commands; a command is never split). Large enough
/// for the watch's second core (from 2,048 reports) and to spread its cost
/// per call; small enough that the first command's alerts wait little for
/// the others' (some 10–20 ms of the watch at 100,000 entities).
pub const MAX_COALESCED_REPORTS: usize = 8_192;

/// A CoT event as the watch's report.
fn cot_report(inbound: &TakInbound) -> PositionReport<'_> {
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
}

/// How many reports a command holds, if it may join a group taken in one
/// call: CoT batches, and requests that need no parts.
fn reports_in(command: &LiveCommand, publish_every_reports: usize) -> Option<usize> {
    match command {
        LiveCommand::Reports { reports, .. } if reports.len() <= publish_every_reports => Some(reports.len()),
        LiveCommand::Cot(events) => Some(events.len()),
        _ => None,
    }
}

/// The entity limits a group of requests must pass together to be taken in
/// one call: an upper bound of what each request's own check would find
/// after the ones before it were taken (every entity not held now that any
/// report of the group names counts as new, and the watch only gains
/// entities within a call but for stale ones, which each check would
/// find gone as well). A request that would not pass it ends the group
/// and is checked alone, after the group is taken, as before.
///
/// Far below the limits (the usual case) the bound is taken coarser and
/// costs no lookup: every report counts as a new entity. Only a request
/// that this coarse bound does not pass has its entities looked up (a
/// lookup per report was a sixth of the track thread at 100,000
/// entities). Both bounds only ever over-count (an entity counted by the
/// coarse one may be counted again by the exact one), so what passes
/// either passes the old bound, and a request that passes neither is
/// checked alone, as before.
#[derive(Default)]
struct GroupLimits {
    /// The entities not held that the group's looked-up reports name.
    new: HashMap<PartyId, HashSet<String>>,
    /// An upper bound of the new entities the group names, per party.
    counted: HashMap<PartyId, usize>,
    /// The same, all parties.
    new_total: usize,
}

impl GroupLimits {
    /// Whether `command` joins (its entities then count).
    fn admit(&mut self, watch: &TrackWatch, command: &LiveCommand) -> bool {
        let config = watch.config();
        match command {
            LiveCommand::Reports { party, reports, .. } => {
                let n = reports.len();
                let of_party = self.counted.get(party).copied().unwrap_or(0) + n;
                if watch.party_len(*party) + of_party <= config.max_entities_per_party
                    && watch.len() + self.new_total + n <= config.max_entities
                {
                    *self.counted.entry(*party).or_default() += n;
                    self.new_total += n;
                    return true;
                }
            }
            LiveCommand::Cot(events) => {
                // Not checked (CoT reports of new entities past a limit
                // are refused one by one, in the call as alone): counted.
                for e in events {
                    *self.counted.entry(e.party).or_default() += 1;
                }
                self.new_total += events.len();
                return true;
            }
            _ => return false,
        }
        self.admit_looked_up(watch, command)
    }

    /// The exact bound for a request the coarse one did not pass.
    fn admit_looked_up(&mut self, watch: &TrackWatch, command: &LiveCommand) -> bool {
        let LiveCommand::Reports { party, reports, .. } = command else {
            return false;
        };
        let config = watch.config();
        let mut added: Vec<&str> = reports
            .iter()
            .map(|r| r.uid.as_str())
            .filter(|uid| {
                watch.track(*party, uid).is_none()
                    && !self.new.get(party).is_some_and(|held| held.contains(*uid))
            })
            .collect();
        added.sort_unstable();
        added.dedup();
        let of_party = self.counted.get(party).copied().unwrap_or(0) + added.len();
        if watch.party_len(*party) + of_party > config.max_entities_per_party
            || watch.len() + self.new_total + added.len() > config.max_entities
        {
            return false;
        }
        *self.counted.entry(*party).or_default() += added.len();
        self.new_total += added.len();
        let held = self.new.entry(*party).or_default();
        for uid in added {
            held.insert(uid.to_owned());
        }
        true
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
    /// Reports of queued commands taken in one call of the watch at most
    /// (see [`MAX_COALESCED_REPORTS`]); 0 takes each command alone.
    coalesce_reports: usize,
    /// The clock (`now_ms`; a fixed one in tests).
    clock: fn() -> i64,
    /// Calls of the watch that took reports (the tests check the grouping).
    #[cfg(test)]
    report_calls: usize,
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
            coalesce_reports: MAX_COALESCED_REPORTS,
            clock: now_ms,
            #[cfg(test)]
            report_calls: 0,
            fence_signature: (Vec::new(), Vec::new()),
            plans: HashMap::new(),
            open: BTreeMap::new(),
            history: TrackHistory::default(),
            captures: Captures::default(),
            unwritten: EvidenceWrites::default(),
        }
    }

    /// Reports of one request taken between two publications of alerts.
    /// Parts smaller than the default (whole requests) also take each
    /// command alone: an alert waits for its part, as asked, not for the
    /// commands queued with it.
    pub fn with_publish_every(mut self, reports: usize) -> Self {
        self.publish_every_reports = reports.max(1);
        if self.publish_every_reports < super::DEFAULT_PUBLISH_EVERY_REPORTS {
            self.coalesce_reports = 0;
        }
        self
    }

    /// Reports of queued commands taken in one call at most (0: each
    /// command alone, as before coalescing;
    /// [`super::LiveConfig::group_max_reports`]). Call it before
    /// [`Self::with_publish_every`], whose smaller parts turn it off.
    pub fn with_coalesce(mut self, reports: usize) -> Self {
        self.coalesce_reports = reports;
        self
    }

    fn now(&self) -> Timestamp {
        Timestamp((self.clock)())
    }

    /// The recent-history ring and the evidence captures to keep (with
    /// their limits).
    pub fn with_evidence(mut self, history: TrackHistory, captures: Captures) -> Self {
        self.history = history;
        self.captures = captures;
        self
    }

    pub fn run(mut self, inbox: Receiver<LiveCommand>) {
        self.serve(&inbox);
    }

    /// Until the queue is closed and empty.
    fn serve(&mut self, inbox: &Receiver<LiveCommand>) {
        self.resume_captures(self.now());
        let mut next_tick = Instant::now();
        // A command taken from the queue behind a group of reports, not
        // part of it: handled next, before anything newer.
        let mut held: Option<LiveCommand> = None;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let received = match held.take() {
                Some(command) => Ok(command),
                None => inbox.recv_timeout(wait),
            };
            match received {
                Ok(command)
                    if self.coalesce_reports > 0
                        && reports_in(&command, self.publish_every_reports).is_some() =>
                {
                    let group = self.gather_group(command, inbox, &mut held);
                    self.take_group(group);
                }
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Positions kept since the last tick go to disk; the
                    // captures still pending resume at the next start.
                    self.flush_evidence(self.now());
                    return;
                }
            }
            if Instant::now() >= next_tick {
                let now = self.now();
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

    /// `first` and the report commands queued right behind it, up to
    /// `coalesce_reports` reports in all (whole commands); the first other
    /// command found goes to `held`. Nothing waits for more: what is not
    /// queued yet is not waited for.
    fn gather_group(
        &self,
        first: LiveCommand,
        inbox: &Receiver<LiveCommand>,
        held: &mut Option<LiveCommand>,
    ) -> Vec<LiveCommand> {
        let mut total = reports_in(&first, self.publish_every_reports).unwrap_or(0);
        let mut group = vec![first];
        while total < self.coalesce_reports {
            let Ok(next) = inbox.try_recv() else { break };
            match reports_in(&next, self.publish_every_reports) {
                Some(n) if total + n <= self.coalesce_reports => {
                    total += n;
                    group.push(next);
                }
                _ => {
                    *held = Some(next);
                    break;
                }
            }
        }
        group
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
                let now = self.now();
                let answer = self.take_reports(now, party, &reports);
                self.publish();
                let _ = reply.send(answer);
            }
            LiveCommand::Cot(events) => {
                let now = self.now();
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
                let now = self.now();
                self.sync(now);
                self.publish();
            }
            LiveCommand::CaptureEvidence { incident } => {
                let now = self.now();
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

    /// Takes a group of queued report commands (HTTP requests and CoT
    /// batches, in queue order) in as few calls of the watch as the limits
    /// allow, with the outcomes, alerts and answers of one command at a
    /// time (the watch takes a batch as one report at a time). Why: the
    /// watch's cost per call includes work on all it holds (the batch path
    /// indexes the whole grid anew), and its second core only joins from
    /// 2,048 reports a call; requests of at most 1,000 reports, one call
    /// each, fell behind at 100,000 entities (the latency bench). Alone
    /// (first command only) when the queue holds nothing else: the group
    /// is what had to wait anyway.
    fn take_group(&mut self, group: Vec<LiveCommand>) {
        let mut rest = group.into_iter().peekable();
        while rest.peek().is_some() {
            let now = self.now();
            let mut segment: Vec<LiveCommand> = Vec::new();
            {
                let mut fits = GroupLimits::default();
                while let Some(next) = rest.peek() {
                    if !fits.admit(&self.watch, next) {
                        break;
                    }
                    segment.push(rest.next().expect("peeked"));
                }
            }
            match segment.len() {
                // Even alone it may pass no limit: its own exact check names it.
                0 => self.handle(rest.next().expect("peeked")),
                1 => self.handle(segment.pop().expect("one")),
                _ => self.take_segment(now, segment),
            }
        }
    }

    /// Report commands that pass every entity limit together (checked by
    /// [`GroupLimits`]), taken in one call.
    fn take_segment(&mut self, now: Timestamp, segment: Vec<LiveCommand>) {
        for command in &segment {
            if let LiveCommand::Reports { reports, .. } = command {
                for activity in reports.iter().filter_map(|r| r.activity) {
                    self.ensure_plan(activity);
                }
            }
        }
        // Sized once: grown by doubling, up to 8,192 reports of ~100 bytes
        // were copied again at each step into fresh pages.
        let reports: usize = segment
            .iter()
            .filter_map(|command| reports_in(command, usize::MAX))
            .sum();
        let mut built: Vec<PositionReport<'_>> = Vec::with_capacity(reports);
        let mut ends = Vec::with_capacity(segment.len());
        for command in &segment {
            match command {
                LiveCommand::Reports { party, reports, .. } => {
                    built.extend(reports.iter().map(|r| r.as_report(*party)));
                }
                LiveCommand::Cot(events) => built.extend(events.iter().map(cot_report)),
                _ => unreachable!("a group holds report commands only"),
            }
            ends.push(built.len());
        }
        let mut outcomes = self.watch.handle_reports(now, &built).into_iter();
        #[cfg(test)]
        {
            self.report_calls += 1;
        }
        let mut answers = Vec::with_capacity(segment.len());
        let mut start = 0;
        for (command, end) in segment.iter().zip(ends) {
            let part = &built[start..end];
            let taken: Vec<_> = outcomes.by_ref().take(end - start).collect();
            start = end;
            match command {
                LiveCommand::Reports { party, .. } => {
                    let mut accepted = Accepted::default();
                    self.count_outcomes(*party, 0, part, taken, &mut accepted);
                    metrics::counter!("deconflict_track_reports_total", "source" => "http")
                        .increment(accepted.accepted as u64);
                    answers.push(Some(accepted));
                }
                _ => {
                    self.count_cot(part, taken);
                    answers.push(None);
                }
            }
        }
        drop(built);
        self.publish();
        for (command, answer) in segment.into_iter().zip(answers) {
            if let (LiveCommand::Reports { reply, .. }, Some(accepted)) = (command, answer) {
                let _ = reply.send(Ok(accepted));
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
            #[cfg(test)]
            {
                self.report_calls += 1;
            }
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
        let built: Vec<PositionReport<'_>> = events.iter().map(cot_report).collect();
        let outcomes = self.watch.handle_reports(now, &built);
        #[cfg(test)]
        {
            self.report_calls += 1;
        }
        self.count_cot(&built, outcomes);
        self.publish();
    }

    /// Keeps the applied CoT reports in the history; counts the refused.
    fn count_cot(&mut self, built: &[PositionReport<'_>], outcomes: Vec<Result<ReportOutcome, TrackError>>) {
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
                            outbound.send_episode_to_party(party, id.0, Arc::clone(&bytes));
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
                                outbound.send_episode_to_party(party, id.0, Arc::clone(&bytes));
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::mpsc;

    use deconflict_engine::track::TrackConfig;
    use deconflict_engine::{Engine, EngineConfig};
    use deconflict_formats::CotEvent;
    use deconflict_store::StoreConfig;
    use deconflict_tak::ConnectionId;

    use super::*;
    use crate::hub::Delivery;

    /// Every report of the runs is before this; the clock stands still, so
    /// that two runs see the same `now` whatever their speed.
    const NOW_MS: i64 = 1_800_000_000_000;

    thread_local! {
        static CLOCK: Cell<i64> = const { Cell::new(NOW_MS) };
    }

    fn fixed_clock() -> i64 {
        CLOCK.with(Cell::get)
    }

    /// A tiny deterministic generator (no dependency for the test).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn owned(uid: String, time: i64, rng: &mut Lcg) -> OwnedReport {
        OwnedReport {
            uid,
            time: Timestamp(time),
            position: LonLat::new(30.0 + 0.1 * rng.next(), 40.0 + 0.1 * rng.next()),
            alt_m: None,
            speed_mps: Some(20.0 * rng.next()),
            course_deg: Some(360.0 * rng.next()),
            stale: None,
            activity: None,
        }
    }

    fn cot(party: PartyId, uid: String, time: i64, rng: &mut Lcg) -> TakInbound {
        let report = owned(uid, time, rng);
        TakInbound {
            party,
            connection: ConnectionId(party.0),
            event: CotEvent {
                uid: report.uid,
                event_type: "a-f-G-U-C".into(),
                how: Some("m-g".into()),
                time: report.time,
                start: report.time,
                stale: Timestamp(time + 120_000),
                lat_deg: report.position.lat_deg,
                lon_deg: report.position.lon_deg,
                hae_m: None,
                ce_m: None,
                le_m: None,
                speed_mps: report.speed_mps,
                course_deg: report.course_deg,
                callsign: None,
                group: None,
                remarks: None,
            },
        }
    }

    /// What a run answered and published.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        answers: Vec<Result<Accepted, (u16, String)>>,
        /// Per subscriber (party 1, party 2, a broker), in order.
        events: Vec<Vec<(&'static str, String)>>,
        tracks: Vec<Value>,
    }

    /// The commands the thread finds queued: rounds of requests of both
    /// parties, CoT batches between them, and a query and a zone change
    /// among them (which end a group).
    fn commands() -> Vec<(LiveCommand, Option<Pending>)> {
        let mut rng = Lcg(7);
        let mut out = Vec::new();
        for round in 0..6i64 {
            let time = NOW_MS - 6_000 + round * 1_000;
            for request in 0..5 {
                for party in [PartyId(1), PartyId(2)] {
                    let reports: Vec<OwnedReport> = (0..40)
                        .map(|i| owned(format!("u-{}", request * 40 + i), time + request as i64, &mut rng))
                        .collect();
                    let (reply, answer) = oneshot::channel();
                    out.push((
                        LiveCommand::Reports {
                            party,
                            reports,
                            reply,
                        },
                        Some(Pending::Answer(answer)),
                    ));
                }
                if request == 2 {
                    let events = (0..30)
                        .map(|i| cot(PartyId(1 + i % 2), format!("c-{i}"), time + 3, &mut rng))
                        .collect();
                    out.push((LiveCommand::Cot(events), None));
                }
            }
            if round == 3 {
                let (reply, answer) = oneshot::channel();
                out.push((
                    LiveCommand::Tracks {
                        viewer: Viewer {
                            party: PartyId(1),
                            broker: false,
                        },
                        bbox: None,
                        limit: 10_000,
                        reply,
                    },
                    Some(Pending::Tracks(answer)),
                ));
                out.push((LiveCommand::ZonesChanged, None));
            }
        }
        out
    }

    enum Pending {
        Answer(oneshot::Receiver<Result<Accepted, ApiError>>),
        Tracks(oneshot::Receiver<Value>),
    }

    /// Runs the thread over `commands`, all queued before it starts.
    fn run(
        track: TrackConfig,
        coalesce: usize,
        commands: Vec<(LiveCommand, Option<Pending>)>,
    ) -> (Outcome, usize) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("live.sqlite"), StoreConfig::default()).unwrap());
        let world = Arc::new(RwLock::new(World {
            engine: Engine::new(EngineConfig::default()),
            activities: Default::default(),
            zones: BTreeMap::new(),
        }));
        let hub = Arc::new(Hub::new(10, 1_000_000));
        let mut subscriptions: Vec<_> = [(1, false), (2, false), (9, true)]
            .into_iter()
            .map(|(party, broker)| {
                hub.subscribe(Viewer {
                    party: PartyId(party),
                    broker,
                })
                .unwrap()
            })
            .collect();
        let mut task = TrackTask::new(
            TrackWatch::new(track).unwrap(),
            world,
            Arc::clone(&hub),
            store,
            Arc::new(Mutex::new(Vec::new())),
            Duration::from_secs(3_600),
        )
        .with_coalesce(coalesce);
        task.clock = fixed_clock;
        let (inbox, queue) = mpsc::sync_channel(commands.len());
        let mut pending = Vec::new();
        for (command, answer) in commands {
            inbox.send(command).unwrap();
            pending.extend(answer);
        }
        drop(inbox);
        task.serve(&queue);
        let calls = task.report_calls;
        let mut answers = Vec::new();
        let mut tracks = Vec::new();
        for answer in pending {
            match answer {
                Pending::Answer(mut answer) => answers.push(
                    answer
                        .try_recv()
                        .expect("every request is answered")
                        .map_err(|e| (e.status().as_u16(), format!("{e:?}"))),
                ),
                Pending::Tracks(mut answer) => tracks.push(answer.try_recv().expect("the query is answered")),
            }
        }
        let events = subscriptions
            .iter_mut()
            .map(|s| {
                let mut got = Vec::new();
                while let Ok(Delivery { kind, data, .. }) = s.events.try_recv() {
                    got.push((kind, data.to_string()));
                }
                got
            })
            .collect();
        (
            Outcome {
                answers,
                events,
                tracks,
            },
            calls,
        )
    }

    /// Queued requests and CoT batches taken in one call of the watch give
    /// the answers, the events (to each party and to a broker, in order)
    /// and the query's answer of one command at a time, in far fewer calls.
    #[test]
    fn queued_reports_taken_together_answer_and_alert_as_one_at_a_time() {
        let track = TrackConfig::default();
        let (alone, alone_calls) = run(track.clone(), 0, commands());
        let (grouped, grouped_calls) = run(track.clone(), MAX_COALESCED_REPORTS, commands());
        let alerts = alone.events[2].len();
        assert!(alerts > 50, "the fleet raises alerts: {alerts}");
        assert!(alone
            .answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| a.accepted > 0)));
        assert_eq!(alone_calls, 66, "one call per command");
        // The query and the zone change split round 3 from round 4.
        assert!(grouped_calls <= 3, "{grouped_calls} calls");
        assert_eq!(alone, grouped);
        // Groups of at most 100 reports: whole commands only.
        let (small, small_calls) = run(track.clone(), 100, commands());
        assert!((30..66).contains(&small_calls), "{small_calls} calls");
        assert_eq!(alone, small);
    }

    /// A request that the entity limits may refuse is checked alone, after
    /// the requests before it were taken: its answer (422, or taken) is
    /// the one it gets alone.
    #[test]
    fn a_request_near_the_entity_limits_is_checked_alone() {
        for (per_party, total) in [(90, 2_000_000), (130, 2_000_000), (2_000, 250), (2_000, 170)] {
            let track = TrackConfig {
                max_entities_per_party: per_party,
                max_entities: total,
                ..TrackConfig::default()
            };
            let (alone, _) = run(track.clone(), 0, commands());
            let (grouped, grouped_calls) = run(track.clone(), MAX_COALESCED_REPORTS, commands());
            let refused = alone.answers.iter().filter(|a| a.is_err()).count();
            assert!(
                refused > 0,
                "{per_party}/{total}: the limits refuse some requests"
            );
            assert!(grouped_calls < 66, "{per_party}/{total}: some requests grouped");
            assert_eq!(alone, grouped, "{per_party}/{total}");
        }
    }
}
