//! The conflict rule: two activities of different parties conflict when their
//! windows overlap, their altitude bands are closer than the larger vertical
//! separation, and their footprints are closer than the larger horizontal
//! separation.
//!
//! Footprints are buffered base shapes, so the footprint distance is
//! `max(0, d(base_a, base_b) - buffer_a - buffer_b)` and the test becomes a
//! question about base shapes: is `d(base_a, base_b) < required_m + buffers`?
//! That question is decided exactly by [`geodesy::separation_if_below`]
//! (proven bounds, and Karney's geodesics near the threshold).
//! Touching counts: footprints that share a point conflict even when the
//! required separation is 0.

use deconflict_geodesy::{self as geodesy, Closest, LonLat, Shape, TimedPath};

use crate::activity::{Activity, ActivityId, PartyId, Schedule};
use crate::time::{TimeWindow, Timestamp};

/// A conflict's identity: the unordered pair of activities, lower id first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConflictKey {
    low: ActivityId,
    high: ActivityId,
}

impl ConflictKey {
    pub fn new(a: ActivityId, b: ActivityId) -> Self {
        Self {
            low: a.min(b),
            high: a.max(b),
        }
    }

    pub fn activities(&self) -> [ActivityId; 2] {
        [self.low, self.high]
    }

    pub fn involves(&self, id: ActivityId) -> bool {
        self.low == id || self.high == id
    }

    /// The other activity of the pair.
    pub fn other(&self, id: ActivityId) -> ActivityId {
        if self.low == id {
            self.high
        } else {
            self.low
        }
    }
}

/// What the rule finds about one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    /// When both can be there: the overlap of the windows, or, for two timed
    /// routes, the span during which they are too close.
    pub window: TimeWindow,
    /// The separation distance between the footprints, 0 when they touch
    /// (exactly: 0 is reported only when proven). Within
    /// [`geodesy::GAP_TOLERANCE_M`] (0.25 m) of Karney's value; whether it
    /// is below the required separation is always decided exactly.
    pub min_distance_m: f64,
    /// The separation that was needed: the larger of the two.
    pub required_m: f64,
    /// A point of closest approach: halfway across the gap between the
    /// footprints, or a common point when they overlap.
    pub location: LonLat,
}

/// A conflict between two activities of different parties.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conflict {
    pub key: ConflictKey,
    /// The parties of `key.activities()`, in the same order.
    pub parties: [PartyId; 2],
    pub finding: Finding,
}

impl Conflict {
    pub(crate) fn new(
        a: ActivityId,
        a_party: PartyId,
        b: ActivityId,
        b_party: PartyId,
        finding: Finding,
    ) -> Self {
        let key = ConflictKey::new(a, b);
        let parties = if key.low == a {
            [a_party, b_party]
        } else {
            [b_party, a_party]
        };
        Self {
            key,
            parties,
            finding,
        }
    }
}

/// False when `a` and `b` cannot conflict, decided from the activities'
/// own fields alone (party, window, altitude band), without reading their
/// geometry; true means [`evaluate`] must decide.
pub(crate) fn may_conflict(a: &Activity, b: &Activity) -> bool {
    if a.party == b.party || a.window.overlap(&b.window).is_none() {
        return false;
    }
    let vertical_gap_m = a.altitude.gap_m(&b.altitude);
    let vertical_required_m = a.vertical_separation_m.max(b.vertical_separation_m);
    !(vertical_gap_m > 0.0 && vertical_gap_m >= vertical_required_m)
}

/// Whether and how `a` and `b` conflict. Symmetric up to the order of
/// witness points.
pub fn evaluate(a: &Activity, b: &Activity) -> Option<Finding> {
    if !may_conflict(a, b) {
        return None;
    }
    let window = a.window.overlap(&b.window)?;

    let required_m = a.separation_m.max(b.separation_m);
    let buffer_a_m = a.footprint.buffer_m();
    let buffer_b_m = b.footprint.buffer_m();
    let buffers_m = buffer_a_m + buffer_b_m;
    // `closest_if_below` is strict; with no separation required, touching
    // (distance exactly equal to the buffers) must still count.
    let limit_m = if required_m > 0.0 {
        required_m + buffers_m
    } else {
        buffers_m.next_up()
    };

    let finish = |closest: Closest, window: TimeWindow| Finding {
        window,
        min_distance_m: (closest.distance_m - buffers_m).max(0.0),
        required_m,
        location: geodesy::gap_midpoint(&closest, buffer_a_m, buffer_b_m),
    };

    match (a.footprint.schedule(), b.footprint.schedule()) {
        (None, None) => {
            // The prepared fast path: exact decision, gap within
            // `GAP_TOLERANCE_M`, Karney's geodesics only near the threshold.
            let separation = geodesy::separation_if_below(&a.buffered(), &b.buffered(), limit_m)?;
            Some(Finding {
                window,
                min_distance_m: separation.gap_m,
                required_m,
                location: separation.location,
            })
        }
        (Some(schedule), None) => {
            let swept = swept_route(schedule, &window);
            let closest = geodesy::closest_if_below(&shape_of(&swept), &b.footprint.base_shape(), limit_m)?;
            Some(finish(closest, window))
        }
        (None, Some(schedule)) => {
            let swept = swept_route(schedule, &window);
            let closest = geodesy::closest_if_below(&a.footprint.base_shape(), &shape_of(&swept), limit_m)?;
            Some(finish(closest, window))
        }
        (Some(schedule_a), Some(schedule_b)) => {
            let mover_a = timed(schedule_a);
            let mover_b = timed(schedule_b);
            // Both windows are closed for timed routes (they are corridors,
            // never open-ended sites), so the overlap has an end.
            let (from_ms, to_ms) = (window.start.unix_ms(), window.end_or_max().unix_ms());
            let (first_ms, last_ms) = geodesy::time_span_below(&mover_a, &mover_b, from_ms, to_ms, limit_m)?;
            let approach = geodesy::closest_approach(&mover_a, &mover_b, first_ms, last_ms);
            let closest = Closest {
                distance_m: approach.distance_m,
                on_a: approach.on_a,
                on_b: approach.on_b,
            };
            // The span is closed at its last instant; as a half-open window it
            // ends one millisecond later.
            let span = TimeWindow::new(Timestamp(first_ms), Some(Timestamp(last_ms.saturating_add(1))));
            Some(finish(closest, span))
        }
    }
}

fn timed(schedule: &Schedule) -> TimedPath<'_> {
    TimedPath {
        vertices: &schedule.vertices,
        times_ms: &schedule.times_ms,
    }
}

/// The part of a timed route travelled during `window`: against an untimed
/// activity, only where the mover can be while the other is there matters.
fn swept_route(schedule: &Schedule, window: &TimeWindow) -> Vec<LonLat> {
    let mut swept = timed(schedule).subpath(window.start.unix_ms(), window.end_or_max().unix_ms());
    // A stop repeats a position; a geodesic path needs distinct neighbours.
    swept.dedup();
    swept
}

fn shape_of(swept: &[LonLat]) -> Shape<'_> {
    if swept.len() >= 2 {
        Shape::Path(swept)
    } else {
        Shape::Point(swept[0])
    }
}
