//! Incident evidence: the track history of the entities involved in an
//! incident over `[time − window, time + window]`, captured by the track
//! thread (issue 5).
//!
//! A sans-IO machine in the style of the engine: [`Captures::start`] copies
//! the past part from the [`TrackHistory`] ring, [`Captures::on_report`]
//! adds every later applied report that belongs to a pending capture, and
//! [`Captures::handle_tick`] closes the captures whose window has passed.
//! Time only comes in as arguments (report times, the tick's `now`); the
//! machine never reads a clock and never touches the store: what to write
//! comes out of [`Captures::take_writes`], for the track thread to commit.
//!
//! **Who is involved.** Only units of the incident's parties (its reporter
//! and the parties it names): the evidence is shown to those parties, so it
//! never holds another party's unit. Among them, a unit is involved when
//! its uid is one the incident lists, or one of its reports in the window
//! links an activity the incident lists, or one of its reports in the
//! window lies within `radius_m` (default 5 km, `--incident-evidence-radius-m`)
//! of the incident's place: a unit that came that close around that time is
//! what someone reviewing the incident would look at. Once involved, all of
//! the unit's positions in the window are kept, also the ones before it
//! came near (the ring still holds them).

use std::collections::{BTreeMap, BTreeSet};

use deconflict_engine::{ActivityId, PartyId, Timestamp};
use deconflict_geodesy::{distance_m, LonLat};
use deconflict_hotline::{Incident, IncidentId};

use super::history::{HistoryPoint, TrackHistory};

/// The evidence limits; each is a flag of `deconflict serve`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvidenceConfig {
    /// A unit of an incident's party that reports within this distance of
    /// the incident's place in the window is involved.
    pub radius_m: f64,
    /// Positions one incident keeps at most; beyond, the capture is marked
    /// `truncated` and keeps no more.
    pub max_points_per_incident: usize,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            radius_m: 5_000.0,
            // 100 units reporting every second for 20 min are 120 000.
            max_points_per_incident: 200_000,
        }
    }
}

/// What a capture looks for.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSpec {
    pub incident: IncidentId,
    /// The reporter and the parties named.
    pub parties: Vec<PartyId>,
    pub uids: Vec<String>,
    pub activities: Vec<ActivityId>,
    pub place: LonLat,
    pub from: Timestamp,
    pub to: Timestamp,
    pub radius_m: f64,
}

impl CaptureSpec {
    pub fn of(incident: &Incident, radius_m: f64) -> Self {
        let mut parties = vec![incident.reporter];
        parties.extend(incident.parties.iter().filter(|&&p| p != incident.reporter));
        Self {
            incident: incident.id,
            parties,
            uids: incident.entities.clone(),
            activities: incident.activities.clone(),
            place: LonLat::new(incident.lon_deg, incident.lat_deg),
            from: incident.evidence_from,
            to: incident.evidence_to,
            radius_m,
        }
    }

    fn in_window(&self, time: Timestamp) -> bool {
        self.from <= time && time <= self.to
    }

    /// Whether this report of a unit of one of the parties involves it.
    fn involves(&self, uid: &str, point: &HistoryPoint) -> bool {
        self.in_window(point.time)
            && (self.uids.iter().any(|u| u == uid)
                || point.activity.is_some_and(|a| self.activities.contains(&a))
                || distance_m(self.place, point.position) <= self.radius_m)
    }
}

/// One kept position of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidencePoint {
    pub party: PartyId,
    pub uid: String,
    pub point: HistoryPoint,
}

/// What the track thread must write, in this order, in one transaction.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EvidenceWrites {
    /// New captures (their row, not complete).
    pub started: Vec<CaptureSpec>,
    pub points: Vec<(IncidentId, EvidencePoint)>,
    /// Captures closed, with when and whether the point limit cut them.
    pub completed: Vec<(IncidentId, Timestamp, bool)>,
}

impl EvidenceWrites {
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.points.is_empty() && self.completed.is_empty()
    }

    /// Puts writes that could not be committed back in front of newer ones.
    pub fn prepend(&mut self, mut earlier: EvidenceWrites) {
        earlier.started.append(&mut self.started);
        earlier.points.append(&mut self.points);
        earlier.completed.append(&mut self.completed);
        *self = earlier;
    }
}

#[derive(Debug)]
struct Pending {
    spec: CaptureSpec,
    involved: BTreeSet<(PartyId, String)>,
    points: usize,
    truncated: bool,
}

/// The captures still running, and the writes they made.
#[derive(Debug, Default)]
pub struct Captures {
    config: EvidenceConfig,
    pending: BTreeMap<IncidentId, Pending>,
    writes: EvidenceWrites,
}

impl Captures {
    pub fn new(config: EvidenceConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn config(&self) -> EvidenceConfig {
        self.config
    }

    pub fn is_pending(&self, incident: IncidentId) -> bool {
        self.pending.contains_key(&incident)
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Starts capturing for an incident: the ring's positions in the window
    /// now, later reports as they come. A window already over at `now`
    /// closes at once with what the ring had.
    pub fn start(&mut self, now: Timestamp, spec: CaptureSpec, history: &TrackHistory) {
        if self.pending.contains_key(&spec.incident) {
            return;
        }
        let mut pending = Pending {
            spec: spec.clone(),
            involved: BTreeSet::new(),
            points: 0,
            truncated: false,
        };
        self.writes.started.push(spec.clone());
        // Sorted, so that the same ring gives the same writes in the same order.
        let mut found: Vec<(PartyId, &str, Vec<HistoryPoint>)> = Vec::new();
        for &party in &spec.parties {
            for (uid, ring) in history.entities_of(party) {
                let window: Vec<HistoryPoint> =
                    ring.iter().filter(|p| spec.in_window(p.time)).copied().collect();
                if window.iter().any(|p| spec.involves(uid, p)) {
                    found.push((party, uid, window));
                }
            }
        }
        found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (party, uid, window) in found {
            pending.involved.insert((party, uid.to_owned()));
            for point in window {
                self.keep(&mut pending, party, uid, point);
            }
        }
        self.pending.insert(spec.incident, pending);
        self.handle_tick(now);
    }

    /// Takes back a capture that was pending when the service stopped, with
    /// the units it had found and the positions it had kept. The ring of
    /// the new process is empty: positions reported while the service was
    /// down are not known to it and stay missing.
    pub fn resume(
        &mut self,
        spec: CaptureSpec,
        involved: Vec<(PartyId, String)>,
        points: usize,
        truncated: bool,
    ) {
        self.pending.insert(
            spec.incident,
            Pending {
                spec,
                involved: involved.into_iter().collect(),
                points,
                truncated,
            },
        );
    }

    fn keep(&mut self, pending: &mut Pending, party: PartyId, uid: &str, point: HistoryPoint) {
        if pending.points >= self.config.max_points_per_incident {
            pending.truncated = true;
            return;
        }
        pending.points += 1;
        self.writes.points.push((
            pending.spec.incident,
            EvidencePoint {
                party,
                uid: uid.to_owned(),
                point,
            },
        ));
    }

    /// An applied report (already in `history`): kept by every pending
    /// capture it belongs to. A unit that becomes involved with this report
    /// brings its earlier positions in the window from the ring.
    pub fn on_report(&mut self, party: PartyId, uid: &str, point: &HistoryPoint, history: &TrackHistory) {
        if self.pending.is_empty() {
            return;
        }
        let ids: Vec<IncidentId> = self.pending.keys().copied().collect();
        for id in ids {
            let Some(mut pending) = self.pending.remove(&id) else {
                continue;
            };
            if pending.spec.parties.contains(&party) && pending.spec.in_window(point.time) {
                let key = (party, uid.to_owned());
                if pending.involved.contains(&key) {
                    self.keep(&mut pending, party, uid, *point);
                } else if pending.spec.involves(uid, point) {
                    let earlier = history.between(party, uid, pending.spec.from, point.time);
                    pending.involved.insert(key);
                    for p in earlier {
                        self.keep(&mut pending, party, uid, p);
                    }
                }
            }
            self.pending.insert(id, pending);
        }
    }

    /// Closes every capture whose window ended before `now`.
    pub fn handle_tick(&mut self, now: Timestamp) {
        let done: Vec<IncidentId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.spec.to < now)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(pending) = self.pending.remove(&id) {
                self.writes.completed.push((id, now, pending.truncated));
            }
        }
    }

    /// When the next capture closes (its window's end), if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.pending.values().map(|p| p.spec.to).min()
    }

    /// The writes made since the last call.
    pub fn take_writes(&mut self) -> EvidenceWrites {
        std::mem::take(&mut self.writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::history::HistoryLimits;

    const BLUE: PartyId = PartyId(1);
    const RED: PartyId = PartyId(2);
    const GREEN: PartyId = PartyId(3);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_s(1_000 + s)
    }

    fn point(s: i64, lon: f64) -> HistoryPoint {
        HistoryPoint {
            time: at(s),
            position: LonLat::new(lon, 52.0),
            alt_m: Some(100.0),
            speed_mps: Some(10.0),
            course_deg: Some(90.0),
            activity: None,
        }
    }

    /// An incident at 5.0 E 52.0 N at t = 0, window ±60 s, blue reporting
    /// and red named.
    fn spec() -> CaptureSpec {
        CaptureSpec {
            incident: IncidentId(7),
            parties: vec![BLUE, RED],
            uids: vec!["listed".into()],
            activities: vec![ActivityId(40)],
            place: LonLat::new(5.0, 52.0),
            from: at(-60),
            to: at(60),
            radius_m: 1_000.0,
        }
    }

    /// A virtual clock: the history and the captures, fed like the track
    /// thread feeds them.
    struct Harness {
        history: TrackHistory,
        captures: Captures,
    }

    impl Harness {
        fn new(max_points: usize) -> Self {
            Self {
                history: TrackHistory::new(HistoryLimits::default()),
                captures: Captures::new(EvidenceConfig {
                    radius_m: 1_000.0,
                    max_points_per_incident: max_points,
                }),
            }
        }

        fn report(&mut self, party: PartyId, uid: &str, p: HistoryPoint) {
            self.history.record(party, uid, p);
            self.captures.on_report(party, uid, &p, &self.history);
        }

        fn kept(&mut self) -> Vec<(u64, String, i64)> {
            self.captures
                .take_writes()
                .points
                .into_iter()
                .map(|(_, e)| (e.party.0, e.uid, e.point.time.unix_ms() / 1000 - 1_000))
                .collect()
        }
    }

    fn row(party: PartyId, uid: &str, s: i64) -> (u64, String, i64) {
        (party.0, uid.to_owned(), s)
    }

    #[test]
    fn keeps_the_window_before_and_after_and_nothing_outside() {
        let mut h = Harness::new(1_000);
        // Blue's unit near the place: before the window, in it.
        for s in [-90, -61, -60, -30] {
            h.report(BLUE, "near", point(s, 5.001));
        }
        // Blue's unit far away and not listed: not involved.
        h.report(BLUE, "far", point(-30, 6.0));
        // Red's listed unit, far away: involved by its uid.
        h.report(RED, "listed", point(-10, 7.0));
        // Green's unit at the place: not a party of the incident.
        h.report(GREEN, "near", point(-10, 5.0));
        h.captures.start(at(5), spec(), &h.history);
        let writes = h.captures.take_writes();
        assert_eq!(writes.started, vec![spec()]);
        let before: Vec<_> = writes
            .points
            .into_iter()
            .map(|(_, e)| (e.party.0, e.uid, e.point.time.unix_ms() / 1000 - 1_000))
            .collect();
        assert_eq!(
            before,
            vec![
                row(BLUE, "near", -60),
                row(BLUE, "near", -30),
                row(RED, "listed", -10)
            ]
        );
        assert!(h.captures.is_pending(IncidentId(7)));
        // After the incident: the window's end is kept, beyond it is not.
        h.report(BLUE, "near", point(30, 5.001));
        h.report(RED, "listed", point(60, 7.0));
        h.report(BLUE, "near", point(61, 5.001));
        h.report(GREEN, "near", point(30, 5.0));
        h.report(BLUE, "far", point(30, 6.0));
        assert_eq!(h.kept(), vec![row(BLUE, "near", 30), row(RED, "listed", 60)]);
        // The tick closes it once its end has passed, not before.
        h.captures.handle_tick(at(60));
        assert!(h.captures.take_writes().completed.is_empty());
        h.captures.handle_tick(at(61));
        assert_eq!(
            h.captures.take_writes().completed,
            vec![(IncidentId(7), at(61), false)]
        );
        assert!(!h.captures.is_pending(IncidentId(7)));
        // Closed: later reports are not kept.
        h.report(RED, "listed", point(62, 7.0));
        assert!(h.kept().is_empty());
    }

    #[test]
    fn a_unit_that_comes_near_later_brings_its_earlier_positions() {
        let mut h = Harness::new(1_000);
        h.report(RED, "late", point(-70, 6.0));
        h.report(RED, "late", point(-20, 6.0));
        h.captures.start(at(0), spec(), &h.history);
        h.captures.take_writes();
        h.report(RED, "late", point(10, 5.99));
        assert!(h.kept().is_empty(), "still 68 km away");
        // Linked to a listed activity: involved, with its window from the ring.
        let linked = HistoryPoint {
            activity: Some(ActivityId(40)),
            ..point(20, 5.98)
        };
        h.report(RED, "late", linked);
        assert_eq!(
            h.kept(),
            vec![row(RED, "late", -20), row(RED, "late", 10), row(RED, "late", 20)]
        );
    }

    #[test]
    fn a_window_already_over_closes_at_once() {
        let mut h = Harness::new(1_000);
        h.report(BLUE, "near", point(-10, 5.0));
        h.captures.start(at(120), spec(), &h.history);
        let writes = h.captures.take_writes();
        assert_eq!(writes.points.len(), 1);
        assert_eq!(writes.completed, vec![(IncidentId(7), at(120), false)]);
        assert_eq!(h.captures.pending_len(), 0);
    }

    #[test]
    fn the_point_limit_truncates_and_says_so() {
        let mut h = Harness::new(2);
        for s in [-30, -20, -10] {
            h.report(BLUE, "near", point(s, 5.0));
        }
        h.captures.start(at(0), spec(), &h.history);
        assert_eq!(h.kept().len(), 2);
        h.report(BLUE, "near", point(1, 5.0));
        assert!(h.kept().is_empty());
        h.captures.handle_tick(at(61));
        assert_eq!(
            h.captures.take_writes().completed,
            vec![(IncidentId(7), at(61), true)]
        );
    }

    #[test]
    fn a_resumed_capture_keeps_its_units_and_closes_on_time() {
        let mut h = Harness::new(1_000);
        h.captures
            .resume(spec(), vec![(BLUE, "far".to_owned())], 3, false);
        assert_eq!(h.captures.next_deadline(), Some(at(60)));
        // Involved before the restart, far away or not.
        h.report(BLUE, "far", point(40, 6.0));
        assert_eq!(h.kept(), vec![row(BLUE, "far", 40)]);
        h.captures.handle_tick(at(61));
        assert_eq!(h.captures.take_writes().completed.len(), 1);
        assert_eq!(h.captures.next_deadline(), None);
    }
}
