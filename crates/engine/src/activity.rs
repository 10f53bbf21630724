//! What a party notifies: activities, their footprints, altitude bands and
//! separation rules.
//!
//! An [`ActivitySpec`] is what arrives from outside (unchecked); an
//! [`Activity`] is what the engine keeps, built only through
//! [`Activity::validate`](crate::Activity::validate) so that every `Activity`
//! in the engine is known to be well formed.

use deconflict_geodesy::{Buffered, GeoBounds, LonLat, Prepared, Shape};

use crate::time::{TimeWindow, Timestamp};

/// A party (an armed force, a coalition cell, an aid organisation…), as
/// numbered by the driver. Two activities of the same party never conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartyId(pub u64);

/// An activity, as numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActivityId(pub u64);

/// The kinds of activity a party can notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    Patrol,
    Convoy,
    Flight,
    /// A static place such as a hospital or a base: the only kind whose window
    /// may stay open.
    Site,
    Area,
    Exercise,
}

impl ActivityKind {
    pub const ALL: [ActivityKind; 6] = [
        ActivityKind::Patrol,
        ActivityKind::Convoy,
        ActivityKind::Flight,
        ActivityKind::Site,
        ActivityKind::Area,
        ActivityKind::Exercise,
    ];

    /// The contract's spelling (`patrol`, `convoy`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Patrol => "patrol",
            ActivityKind::Convoy => "convoy",
            ActivityKind::Flight => "flight",
            ActivityKind::Site => "site",
            ActivityKind::Area => "area",
            ActivityKind::Exercise => "exercise",
        }
    }

    pub fn parse(text: &str) -> Option<ActivityKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A footprint as notified, before validation.
#[derive(Debug, Clone, PartialEq)]
pub enum FootprintSpec {
    /// Every point within `radius_m` of `center`.
    Point { center: LonLat, radius_m: f64 },
    /// Every point within `corridor_m / 2` of the geodesic route. With
    /// `waypoint_times` (one per vertex) the route is a schedule: the mover is
    /// at each vertex at its time and the half-width is its position
    /// uncertainty.
    LineString {
        route: Vec<LonLat>,
        corridor_m: f64,
        waypoint_times: Option<Vec<Timestamp>>,
    },
    /// The inside and edge of the exterior ring (`rings[0]`) minus the holes.
    Polygon { rings: Vec<Vec<LonLat>> },
}

/// An activity as notified, before validation. Absent optional values take
/// the defaults described on each field.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivitySpec {
    pub party: PartyId,
    pub kind: ActivityKind,
    pub window: TimeWindow,
    pub footprint: FootprintSpec,
    /// Absent: no lower bound (down to any depth).
    pub alt_min_m: Option<f64>,
    /// Absent: no upper bound.
    pub alt_max_m: Option<f64>,
    /// Absent: the engine's default for the kind ([`SeparationDefaults`]).
    pub separation_m: Option<f64>,
    /// Absent: 0, i.e. only overlapping altitude bands conflict.
    pub vertical_separation_m: Option<f64>,
}

/// The default horizontal separation per kind, used when an activity does
/// not set its own `separation_m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeparationDefaults {
    pub patrol_m: f64,
    pub convoy_m: f64,
    pub flight_m: f64,
    pub site_m: f64,
    pub area_m: f64,
    pub exercise_m: f64,
}

impl Default for SeparationDefaults {
    /// Ground movements keep a kilometre apart, aircraft five (a common
    /// lateral minimum), fixed sites half a kilometre, exercises two.
    fn default() -> Self {
        Self {
            patrol_m: 1_000.0,
            convoy_m: 1_000.0,
            flight_m: 5_000.0,
            site_m: 500.0,
            area_m: 500.0,
            exercise_m: 2_000.0,
        }
    }
}

impl SeparationDefaults {
    pub fn for_kind(&self, kind: ActivityKind) -> f64 {
        match kind {
            ActivityKind::Patrol => self.patrol_m,
            ActivityKind::Convoy => self.convoy_m,
            ActivityKind::Flight => self.flight_m,
            ActivityKind::Site => self.site_m,
            ActivityKind::Area => self.area_m,
            ActivityKind::Exercise => self.exercise_m,
        }
    }
}

/// A closed altitude interval in metres; unbounded sides are infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AltitudeBand {
    pub min_m: f64,
    pub max_m: f64,
}

impl AltitudeBand {
    pub const ALL: AltitudeBand = AltitudeBand {
        min_m: f64::NEG_INFINITY,
        max_m: f64::INFINITY,
    };

    /// The vertical gap between two bands, 0 when they touch or overlap.
    pub fn gap_m(&self, other: &AltitudeBand) -> f64 {
        let lower_top = self.max_m.min(other.max_m);
        let upper_bottom = self.min_m.max(other.min_m);
        (upper_bottom - lower_top).max(0.0)
    }
}

/// A validated footprint. Routes and rings are as notified, except that a
/// route's consecutive repeated positions are folded for its geometry (a
/// stop is kept in its schedule).
#[derive(Debug, Clone, PartialEq)]
pub enum Footprint {
    Disk {
        center: LonLat,
        radius_m: f64,
    },
    Corridor {
        /// Consecutive positions distinct, at least two.
        route: Vec<LonLat>,
        width_m: f64,
        schedule: Option<Schedule>,
    },
    Polygon {
        rings: Vec<Vec<LonLat>>,
    },
}

/// A timed route: where the mover is when. Vertices may repeat (a stop);
/// times strictly increase.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub vertices: Vec<LonLat>,
    pub times_ms: Vec<i64>,
}

impl Footprint {
    /// The shape that the buffer is drawn around.
    pub fn base_shape(&self) -> Shape<'_> {
        match self {
            Footprint::Disk { center, .. } => Shape::Point(*center),
            Footprint::Corridor { route, .. } => Shape::Path(route),
            Footprint::Polygon { rings } => Shape::Region(rings),
        }
    }

    /// How far the footprint reaches beyond its base shape.
    pub fn buffer_m(&self) -> f64 {
        match self {
            Footprint::Disk { radius_m, .. } => *radius_m,
            Footprint::Corridor { width_m, .. } => width_m / 2.0,
            Footprint::Polygon { .. } => 0.0,
        }
    }

    pub fn schedule(&self) -> Option<&Schedule> {
        match self {
            Footprint::Corridor { schedule, .. } => schedule.as_ref(),
            _ => None,
        }
    }

    /// The number of positions, counted as notified.
    pub fn vertex_count(&self) -> usize {
        match self {
            Footprint::Disk { .. } => 1,
            Footprint::Corridor { route, .. } => route.len(),
            Footprint::Polygon { rings } => rings.iter().map(Vec::len).sum(),
        }
    }
}

/// A validated activity, as the engine keeps it.
///
/// In declaration order (`repr(C)`): a check reads, for every candidate, the
/// fields `may_conflict` tests (party, window, altitude band, separations:
/// 64 bytes), then the footprint's kind and buffer and the head of the
/// prepared shape, so those come first and sit in two or three consecutive
/// cache lines of the engine's table; the index's box comes last.
#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct Activity {
    pub party: PartyId,
    pub window: TimeWindow,
    pub altitude: AltitudeBand,
    pub separation_m: f64,
    pub vertical_separation_m: f64,
    pub footprint: Footprint,
    /// The base shape's geometry prepared once for the fast conflict test.
    pub(crate) prepared: Prepared,
    pub kind: ActivityKind,
    /// Contains every point within `buffer + separation_m` of the base shape:
    /// two activities can only conflict when their reaches intersect, since
    /// `reach_a + reach_b >= buffer_a + buffer_b + max(separation_a, separation_b)`.
    pub(crate) reach: GeoBounds,
    /// The base shape's box (no buffer, no separation), kept because the
    /// validation computes it anyway (`reach` grows it) and a service
    /// storing the activity needs the footprint's box: computing it again
    /// walks every geodesic edge a second time. Last: a check never reads it.
    pub(crate) base_bounds: GeoBounds,
}

impl Activity {
    /// The box the index files this activity under (see the field's comment).
    pub fn reach(&self) -> &GeoBounds {
        &self.reach
    }

    /// Contains every point of the footprint (the base shape grown by the
    /// corridor's or disk's buffer): what a store filters lists by.
    pub fn footprint_bounds(&self) -> GeoBounds {
        self.base_bounds.expanded_m(self.footprint.buffer_m())
    }

    /// The footprint as the geodesy fast path takes it.
    pub(crate) fn buffered(&self) -> Buffered<'_> {
        Buffered {
            shape: self.footprint.base_shape(),
            prepared: &self.prepared,
            buffer_m: self.footprint.buffer_m(),
        }
    }
}
