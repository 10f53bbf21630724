//! What the watch tells the driver: alerts that open and clear.
//!
//! Every alert is an episode with exactly one [`Alert::Opened`] and, later,
//! exactly one [`Alert::Cleared`] with the same [`AlertId`]. Episodes are
//! per pair of entities (`proximity`, `cpa`), per entity and fence
//! (`zone.entered`, `zone.crossed`) or per entity and linked activity
//! (`deviation`). [`AlertKind::as_str`] is the contract's event type.

use std::sync::Arc;

use deconflict_geodesy::LonLat;

use crate::activity::{ActivityId, PartyId};
use crate::time::{TimeWindow, Timestamp};

use super::fence::FenceId;

/// An alert episode, numbered by the watch in the order they open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlertId(pub u64);

/// An entity: its party and its uid within the party.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackKey {
    pub party: PartyId,
    pub uid: Arc<str>,
}

/// The five kinds of alert, as the contract names their events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    Proximity,
    Cpa,
    ZoneEntered,
    ZoneCrossed,
    Deviation,
}

impl AlertKind {
    /// The event `type` on `/v1/events`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::Proximity => "proximity",
            AlertKind::Cpa => "cpa",
            AlertKind::ZoneEntered => "zone.entered",
            AlertKind::ZoneCrossed => "zone.crossed",
            AlertKind::Deviation => "deviation",
        }
    }
}

/// Why a linked entity deviates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeviationCause {
    /// Farther from the activity's route (or site, or area) than allowed:
    /// `allowed_m` is the half-width plus the configured tolerance.
    OffRoute { distance_m: f64, allowed_m: f64 },
    /// Reporting outside the activity's window (before it or after it).
    OutsideWindow { window: TimeWindow },
}

/// What opened, with what the parties need to act on it.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertDetail {
    /// Two entities of different parties are closer than allowed at `at`:
    /// `distance_m` horizontally (geodesic), `vertical_gap_m` vertically
    /// (0 when a height is unknown), against `limit_m` and
    /// `vertical_limit_m` (`None` for a pair on the ground). `positions`
    /// are the two entities' positions at `at`, extrapolated from their
    /// last reports.
    Proximity {
        tracks: [TrackKey; 2],
        distance_m: f64,
        vertical_gap_m: f64,
        limit_m: f64,
        vertical_limit_m: Option<f64>,
        positions: [LonLat; 2],
    },
    /// Two entities not yet within the proximity limits are predicted, by
    /// constant-velocity extrapolation, to come within them: their closest
    /// approach within the look-ahead is at `time` (after the alert's `at`),
    /// `distance_m` apart, the first at `positions[0]` and the second at
    /// `positions[1]` (the CPA's location). The episode stays open while
    /// they are, or are predicted to be, within the limits × the clear
    /// factor, so it usually spans the `proximity` episode that follows.
    Cpa {
        tracks: [TrackKey; 2],
        time: Timestamp,
        distance_m: f64,
        vertical_gap_m: f64,
        limit_m: f64,
        vertical_limit_m: Option<f64>,
        positions: [LonLat; 2],
    },
    /// An entity reported `position` inside a keep-out zone that binds it.
    ZoneEntered {
        track: TrackKey,
        fence: FenceId,
        fence_owner: PartyId,
        position: LonLat,
    },
    /// An entity crossed a demarcation line that binds it, at `crossing`.
    ZoneCrossed {
        track: TrackKey,
        fence: FenceId,
        fence_owner: PartyId,
        crossing: LonLat,
    },
    /// A linked entity at `position` left its activity's corridor or window.
    Deviation {
        track: TrackKey,
        activity: ActivityId,
        position: LonLat,
        cause: DeviationCause,
    },
}

/// What an episode was about, repeated in its clearing event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertSubject {
    Pair([TrackKey; 2]),
    Fence {
        track: TrackKey,
        fence: FenceId,
        fence_owner: PartyId,
    },
    Plan {
        track: TrackKey,
        activity: ActivityId,
    },
}

impl AlertSubject {
    /// The parties the episode concerns: both entities' parties, or the
    /// entity's party and the fence's owner.
    pub fn parties(&self) -> Vec<PartyId> {
        let mut parties = match self {
            AlertSubject::Pair([a, b]) => vec![a.party, b.party],
            AlertSubject::Fence {
                track, fence_owner, ..
            } => vec![track.party, *fence_owner],
            AlertSubject::Plan { track, .. } => vec![track.party],
        };
        parties.dedup();
        parties
    }
}

/// Why an episode ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearReason {
    /// The pair is beyond the clearing distance (limit × clear factor), or
    /// no longer predicted to come within it.
    Separated,
    /// This entity went stale (or its report aged out) and left the watch.
    Stale(TrackKey),
    /// Outside the zone and at least the clearing distance from it.
    LeftZone,
    /// Crossed the demarcation line back.
    CrossedBack,
    /// Back within the corridor's half-width and the window.
    BackOnPlan,
    /// The entity now reports a different activity, or none.
    Unlinked,
    FenceRemoved,
    PlanRemoved,
}

/// An event for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Alert {
    Opened {
        id: AlertId,
        at: Timestamp,
        detail: AlertDetail,
    },
    Cleared {
        id: AlertId,
        at: Timestamp,
        kind: AlertKind,
        subject: AlertSubject,
        reason: ClearReason,
    },
}

impl AlertDetail {
    pub fn kind(&self) -> AlertKind {
        match self {
            AlertDetail::Proximity { .. } => AlertKind::Proximity,
            AlertDetail::Cpa { .. } => AlertKind::Cpa,
            AlertDetail::ZoneEntered { .. } => AlertKind::ZoneEntered,
            AlertDetail::ZoneCrossed { .. } => AlertKind::ZoneCrossed,
            AlertDetail::Deviation { .. } => AlertKind::Deviation,
        }
    }

    pub fn subject(&self) -> AlertSubject {
        match self {
            AlertDetail::Proximity { tracks, .. } | AlertDetail::Cpa { tracks, .. } => {
                AlertSubject::Pair(tracks.clone())
            }
            AlertDetail::ZoneEntered {
                track,
                fence,
                fence_owner,
                ..
            }
            | AlertDetail::ZoneCrossed {
                track,
                fence,
                fence_owner,
                ..
            } => AlertSubject::Fence {
                track: track.clone(),
                fence: *fence,
                fence_owner: *fence_owner,
            },
            AlertDetail::Deviation { track, activity, .. } => AlertSubject::Plan {
                track: track.clone(),
                activity: *activity,
            },
        }
    }
}

impl Alert {
    pub fn id(&self) -> AlertId {
        match self {
            Alert::Opened { id, .. } | Alert::Cleared { id, .. } => *id,
        }
    }

    pub fn kind(&self) -> AlertKind {
        match self {
            Alert::Opened { detail, .. } => detail.kind(),
            Alert::Cleared { kind, .. } => *kind,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Alert::Opened { at, .. } | Alert::Cleared { at, .. } => *at,
        }
    }

    pub fn subject(&self) -> AlertSubject {
        match self {
            Alert::Opened { detail, .. } => detail.subject(),
            Alert::Cleared { subject, .. } => subject.clone(),
        }
    }

    /// The parties to tell.
    pub fn parties(&self) -> Vec<PartyId> {
        self.subject().parties()
    }
}
