//! Recent track history per entity, kept by the track thread so an
//! incident can copy the positions around its time as evidence.
//!
//! Bounded three ways, each a `serve` flag: points older than `retention_ms`
//! (measured against the newest report time of the entity, never a clock
//! read; `--track-history-age-s`) are dropped, no entity keeps more than
//! `max_points_per_entity` (`--track-history-per-entity`), and all rings
//! together hold at most `max_points_total` (`--track-history-total`): past
//! it the oldest point of all goes first, so the freshest history, the one
//! a new incident needs, is what stays. Memory: a point is about 72 bytes
//! (time, position, altitude, speed, course, linked activity), so the
//! default total of 1 000 000 points is about 70 MiB at most.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use deconflict_engine::{ActivityId, PartyId, Timestamp};
use deconflict_geodesy::LonLat;

/// The limits of [`TrackHistory`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryLimits {
    /// How far back from an entity's newest report points are kept.
    pub retention_ms: i64,
    /// The most points one entity keeps; the oldest go first.
    pub max_points_per_entity: usize,
    /// The most points all entities keep together; the oldest of all go
    /// first.
    pub max_points_total: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        // The incident evidence window defaults to ±10 min: the ring holds
        // the 10 min before an incident is reported. 600 points is one
        // report a second for 10 min.
        Self {
            retention_ms: 10 * 60 * 1000,
            max_points_per_entity: 600,
            max_points_total: 1_000_000,
        }
    }
}

/// One kept position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPoint {
    pub time: Timestamp,
    pub position: LonLat,
    pub alt_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub course_deg: Option<f64>,
    /// The activity the unit said it executes in this report.
    pub activity: Option<ActivityId>,
}

/// An entity's uid, shared by its ring and its entry in `fronts`.
type Uid = Arc<str>;

/// The ring of recent positions of every entity, by party, then uid: a
/// report of a known entity is filed without allocating (the uid is
/// looked up as the `&str` it came as; it was two `String`s and a hash
/// of both per report, an eighth of the track thread at 100,000
/// entities).
#[derive(Debug, Default)]
pub struct TrackHistory {
    limits: HistoryLimits,
    rings: HashMap<PartyId, HashMap<Uid, VecDeque<HistoryPoint>>>,
    /// The oldest point of every ring, ordered: the global limit drops the
    /// first of these. Kept exactly in step with the rings' fronts.
    fronts: BTreeSet<(Timestamp, PartyId, Uid)>,
    total: usize,
    /// Rings, all parties.
    entities: usize,
}

impl TrackHistory {
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Keeps an applied report. Reports arrive in time order per entity
    /// (the watch ignores older ones), so the ring stays sorted.
    pub fn record(&mut self, party: PartyId, uid: &str, point: HistoryPoint) {
        if self.limits.max_points_per_entity == 0 || self.limits.max_points_total == 0 {
            return;
        }
        let of_party = self.rings.entry(party).or_default();
        let (uid, ring) = match of_party.get_key_value(uid) {
            Some((held, _)) => {
                let held = Arc::clone(held);
                let ring = of_party.get_mut(uid).expect("just found");
                (held, ring)
            }
            None => {
                let uid: Uid = Arc::from(uid);
                self.entities += 1;
                (Arc::clone(&uid), of_party.entry(uid).or_default())
            }
        };
        let front_before = ring.front().map(|p| p.time);
        ring.push_back(point);
        self.total += 1;
        let oldest_kept = point.time.plus_ms(-self.limits.retention_ms);
        while ring.len() > 1 && ring.front().is_some_and(|p| p.time < oldest_kept) {
            ring.pop_front();
            self.total -= 1;
        }
        while ring.len() > self.limits.max_points_per_entity {
            ring.pop_front();
            self.total -= 1;
        }
        let front_after = ring.front().map(|p| p.time);
        self.refront(party, &uid, front_before, front_after);
        while self.total > self.limits.max_points_total {
            self.drop_oldest();
        }
    }

    /// Moves the entity's entry in `fronts` from `before` to `after`.
    fn refront(&mut self, party: PartyId, uid: &Uid, before: Option<Timestamp>, after: Option<Timestamp>) {
        if before == after {
            return;
        }
        if let Some(before) = before {
            self.fronts.remove(&(before, party, Arc::clone(uid)));
        }
        if let Some(after) = after {
            self.fronts.insert((after, party, Arc::clone(uid)));
        }
    }

    /// Drops the oldest point of all rings (the global limit).
    fn drop_oldest(&mut self) {
        let Some((time, party, uid)) = self.fronts.pop_first() else {
            return;
        };
        let Some(ring) = self
            .rings
            .get_mut(&party)
            .and_then(|of_party| of_party.get_mut(&uid))
        else {
            return;
        };
        debug_assert_eq!(ring.front().map(|p| p.time), Some(time));
        ring.pop_front();
        self.total -= 1;
        match ring.front() {
            Some(next) => {
                self.fronts.insert((next.time, party, uid));
            }
            None => {
                self.remove_ring(party, &uid);
            }
        }
    }

    /// The kept points of one entity inside `[from, to]`.
    pub fn between(&self, party: PartyId, uid: &str, from: Timestamp, to: Timestamp) -> Vec<HistoryPoint> {
        self.rings
            .get(&party)
            .and_then(|of_party| of_party.get(uid))
            .map(|ring| {
                ring.iter()
                    .filter(|p| p.time >= from && p.time <= to)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every entity of `party` with its kept points, in no particular order.
    pub fn entities_of(&self, party: PartyId) -> impl Iterator<Item = (&str, &VecDeque<HistoryPoint>)> {
        self.rings
            .get(&party)
            .into_iter()
            .flatten()
            .map(|(uid, ring)| (&**uid, ring))
    }

    /// Drops the rings whose newest point is older than the retention at
    /// `now` (the driver's tick time), so entities that went away do not
    /// keep memory.
    pub fn prune(&mut self, now: Timestamp) {
        let oldest_kept = now.plus_ms(-self.limits.retention_ms);
        let gone: Vec<(PartyId, Uid)> = self
            .rings
            .iter()
            .flat_map(|(party, of_party)| of_party.iter().map(move |(uid, ring)| (*party, uid, ring)))
            .filter(|(_, _, ring)| ring.back().is_none_or(|p| p.time < oldest_kept))
            .map(|(party, uid, _)| (party, Arc::clone(uid)))
            .collect();
        for (party, uid) in gone {
            self.remove(party, &uid);
        }
    }

    /// Drops an entity the watch let go of.
    pub fn forget(&mut self, party: PartyId, uid: &str) {
        self.remove(party, uid);
    }

    fn remove(&mut self, party: PartyId, uid: &str) {
        let Some((uid, ring)) = self.remove_ring(party, uid) else {
            return;
        };
        self.total -= ring.len();
        if let Some(front) = ring.front() {
            self.fronts.remove(&(front.time, party, uid));
        }
    }

    /// Takes the ring out of `rings` (and the party's map when it was its
    /// last), `fronts` untouched.
    fn remove_ring(&mut self, party: PartyId, uid: &str) -> Option<(Uid, VecDeque<HistoryPoint>)> {
        let of_party = self.rings.get_mut(&party)?;
        let removed = of_party.remove_entry(uid)?;
        if of_party.is_empty() {
            self.rings.remove(&party);
        }
        self.entities -= 1;
        Some(removed)
    }

    /// Entities with a ring.
    pub fn len(&self) -> usize {
        self.entities
    }

    pub fn is_empty(&self) -> bool {
        self.entities == 0
    }

    /// Points kept, all entities together.
    pub fn points(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(s: i64) -> HistoryPoint {
        HistoryPoint {
            time: Timestamp::from_unix_s(s),
            position: LonLat::new(5.0, 52.0),
            alt_m: None,
            speed_mps: None,
            course_deg: None,
            activity: None,
        }
    }

    fn limits(retention_s: i64, per_entity: usize, total: usize) -> HistoryLimits {
        HistoryLimits {
            retention_ms: retention_s * 1000,
            max_points_per_entity: per_entity,
            max_points_total: total,
        }
    }

    fn all(h: &TrackHistory, party: u64, uid: &str) -> Vec<HistoryPoint> {
        h.between(
            PartyId(party),
            uid,
            Timestamp::from_unix_s(0),
            Timestamp::from_unix_s(10_000),
        )
    }

    /// The bookkeeping agrees with the rings after every change.
    fn check(h: &TrackHistory) {
        let rings: Vec<(PartyId, &Uid, &VecDeque<HistoryPoint>)> = h
            .rings
            .iter()
            .flat_map(|(party, of_party)| of_party.iter().map(move |(uid, ring)| (*party, uid, ring)))
            .collect();
        let counted: usize = rings.iter().map(|(_, _, ring)| ring.len()).sum();
        assert_eq!(h.total, counted);
        assert_eq!(h.fronts.len(), rings.len());
        assert_eq!(h.entities, rings.len());
        assert!(
            h.rings.values().all(|of_party| !of_party.is_empty()),
            "no empty party map"
        );
        for (party, uid, ring) in rings {
            assert!(h
                .fronts
                .contains(&(ring.front().unwrap().time, party, Arc::clone(uid))));
        }
        assert!(h.total <= h.limits.max_points_total);
    }

    #[test]
    fn drops_points_older_than_the_age_limit() {
        let mut h = TrackHistory::new(limits(60, 100, 1_000));
        for s in [0, 30, 61, 90] {
            h.record(PartyId(1), "a", point(s));
            check(&h);
        }
        assert_eq!(all(&h, 1, "a"), vec![point(30), point(61), point(90)]);
    }

    #[test]
    fn caps_points_per_entity() {
        let mut h = TrackHistory::new(limits(1_000, 2, 1_000));
        for s in 0..5 {
            h.record(PartyId(1), "a", point(s));
            check(&h);
        }
        assert_eq!(all(&h, 1, "a"), vec![point(3), point(4)]);
    }

    #[test]
    fn caps_points_in_total_dropping_the_oldest_of_all() {
        let mut h = TrackHistory::new(limits(1_000, 100, 4));
        h.record(PartyId(1), "a", point(10));
        h.record(PartyId(2), "b", point(5));
        h.record(PartyId(1), "a", point(20));
        h.record(PartyId(2), "b", point(25));
        check(&h);
        assert_eq!(h.points(), 4);
        // The fifth point pushes out b's point at 5 s, the oldest of all.
        h.record(PartyId(1), "a", point(30));
        check(&h);
        assert_eq!(all(&h, 2, "b"), vec![point(25)]);
        assert_eq!(all(&h, 1, "a"), vec![point(10), point(20), point(30)]);
        // Then a's at 10 s, then a's at 20 s; b's last point stays.
        h.record(PartyId(3), "c", point(31));
        h.record(PartyId(3), "c", point(32));
        check(&h);
        assert_eq!(all(&h, 1, "a"), vec![point(30)]);
        assert_eq!(all(&h, 2, "b"), vec![point(25)]);
        // A ring emptied by the total limit goes: b's at 25 s is next.
        h.record(PartyId(3), "c", point(33));
        check(&h);
        assert!(all(&h, 2, "b").is_empty());
        assert_eq!(h.len(), 2);
        assert_eq!(h.points(), 4);
    }

    /// Many entities of several parties under all three limits, with
    /// entities forgotten and pruned on the way: the bookkeeping (rings,
    /// fronts, counts, per-party maps) agrees after every change, and an
    /// entity's newest point is always kept.
    #[test]
    fn bookkeeping_holds_across_parties_and_limits() {
        let mut h = TrackHistory::new(limits(40, 5, 60));
        let uids: Vec<String> = (0..25).map(|i| format!("u{i}")).collect();
        for step in 0..2_000i64 {
            let party = PartyId((step * 7 % 3) as u64 + 1);
            let uid = &uids[(step * 13 % 25) as usize];
            let time = step / 4;
            h.record(party, uid, point(time));
            check(&h);
            assert_eq!(all(&h, party.0, uid).last(), Some(&point(time)));
            if step % 97 == 0 {
                h.forget(PartyId((step % 3) as u64 + 1), &uids[(step % 25) as usize]);
                check(&h);
            }
            if step % 251 == 0 {
                h.prune(Timestamp::from_unix_s(time));
                check(&h);
            }
        }
        assert!(h.len() > 25 && h.points() == 60, "{} {}", h.len(), h.points());
    }

    #[test]
    fn zero_limits_keep_nothing() {
        for limits in [limits(600, 0, 100), limits(600, 100, 0)] {
            let mut h = TrackHistory::new(limits);
            h.record(PartyId(1), "a", point(1));
            assert!(h.is_empty());
            check(&h);
        }
    }

    #[test]
    fn window_and_entity_are_exact() {
        let mut h = TrackHistory::new(HistoryLimits::default());
        for s in [10, 20, 30] {
            h.record(PartyId(1), "a", point(s));
        }
        h.record(PartyId(2), "a", point(20));
        let kept = h.between(
            PartyId(1),
            "a",
            Timestamp::from_unix_s(20),
            Timestamp::from_unix_s(30),
        );
        assert_eq!(kept, vec![point(20), point(30)]);
        assert!(h
            .between(
                PartyId(1),
                "b",
                Timestamp::from_unix_s(0),
                Timestamp::from_unix_s(99)
            )
            .is_empty());
        assert_eq!(h.entities_of(PartyId(2)).count(), 1);
        h.forget(PartyId(1), "a");
        check(&h);
        assert_eq!(h.len(), 1);
        h.prune(Timestamp::from_unix_s(20 + 600));
        assert_eq!(h.len(), 1);
        h.prune(Timestamp::from_unix_s(21 + 600));
        check(&h);
        assert!(h.is_empty());
        assert_eq!(h.points(), 0);
    }
}
