//! Recent track history per entity, kept by the track thread so an
//! incident can copy the positions around its time as evidence.
//!
//! Bounded twice: points older than `retention_ms` (measured against the
//! newest report time of the entity, never a clock read) are dropped, and
//! no entity keeps more than `max_points_per_entity`. Memory: a point is
//! 32 bytes (time + lon + lat + alt), so the default 600 points cost about
//! 19 KiB per entity, ~190 MiB at 10 000 entities in the worst case.

use std::collections::{HashMap, VecDeque};

use deconflict_engine::{PartyId, Timestamp};
use deconflict_geodesy::LonLat;

/// The limits of [`TrackHistory`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryLimits {
    /// How far back from an entity's newest report points are kept.
    pub retention_ms: i64,
    /// The most points one entity keeps; the oldest go first.
    pub max_points_per_entity: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        // The incident evidence window defaults to ±10 min.
        Self {
            retention_ms: 10 * 60 * 1000,
            max_points_per_entity: 600,
        }
    }
}

/// One kept position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPoint {
    pub time: Timestamp,
    pub position: LonLat,
    pub alt_m: Option<f64>,
}

/// The ring of recent positions of every entity, keyed by (party, uid).
#[derive(Debug, Default)]
pub struct TrackHistory {
    limits: HistoryLimits,
    rings: HashMap<(PartyId, String), VecDeque<HistoryPoint>>,
}

impl TrackHistory {
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            rings: HashMap::new(),
        }
    }

    /// Keeps an applied report. Reports arrive in time order per entity
    /// (the watch ignores older ones), so the ring stays sorted.
    pub fn record(&mut self, party: PartyId, uid: &str, point: HistoryPoint) {
        let ring = self.rings.entry((party, uid.to_owned())).or_default();
        ring.push_back(point);
        let oldest_kept = point.time.plus_ms(-self.limits.retention_ms);
        while ring.front().is_some_and(|p| p.time < oldest_kept) {
            ring.pop_front();
        }
        while ring.len() > self.limits.max_points_per_entity {
            ring.pop_front();
        }
    }

    /// The kept points of one entity inside `[from, to]`.
    pub fn between(&self, party: PartyId, uid: &str, from: Timestamp, to: Timestamp) -> Vec<HistoryPoint> {
        self.rings
            .get(&(party, uid.to_owned()))
            .map(|ring| {
                ring.iter()
                    .filter(|p| p.time >= from && p.time <= to)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drops the rings whose newest point is older than the retention at
    /// `now` (the driver's tick time), so entities that went away do not
    /// keep memory.
    pub fn prune(&mut self, now: Timestamp) {
        let oldest_kept = now.plus_ms(-self.limits.retention_ms);
        self.rings
            .retain(|_, ring| ring.back().is_some_and(|p| p.time >= oldest_kept));
    }

    /// Drops an entity the watch let go of.
    pub fn forget(&mut self, party: PartyId, uid: &str) {
        self.rings.remove(&(party, uid.to_owned()));
    }

    pub fn len(&self) -> usize {
        self.rings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
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
        }
    }

    #[test]
    fn drops_points_older_than_retention() {
        let mut h = TrackHistory::new(HistoryLimits {
            retention_ms: 60_000,
            max_points_per_entity: 100,
        });
        for s in [0, 30, 61, 90] {
            h.record(PartyId(1), "a", point(s));
        }
        let kept = h.between(
            PartyId(1),
            "a",
            Timestamp::from_unix_s(0),
            Timestamp::from_unix_s(100),
        );
        assert_eq!(kept, vec![point(30), point(61), point(90)]);
    }

    #[test]
    fn caps_points_per_entity() {
        let mut h = TrackHistory::new(HistoryLimits {
            retention_ms: 1_000_000,
            max_points_per_entity: 2,
        });
        for s in 0..5 {
            h.record(PartyId(1), "a", point(s));
        }
        let kept = h.between(
            PartyId(1),
            "a",
            Timestamp::from_unix_s(0),
            Timestamp::from_unix_s(10),
        );
        assert_eq!(kept, vec![point(3), point(4)]);
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
        h.forget(PartyId(1), "a");
        assert_eq!(h.len(), 1);
        h.prune(Timestamp::from_unix_s(20 + 600));
        assert_eq!(h.len(), 1);
        h.prune(Timestamp::from_unix_s(21 + 600));
        assert!(h.is_empty());
    }
}
