//! [`TrackWatch`]: the live state of every reported entity, and the alerts
//! among them, as a sans-IO state machine.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::ops::RangeInclusive;
use std::sync::Arc;

use hashbrown::HashTable;

use deconflict_geodesy::{
    bounds, closest, closest_if_below, point_in_region, segments_intersection, GeoBounds, LonLat, Shape,
};

use crate::activity::{ActivityId, ActivityKind, PartyId};
use crate::time::Timestamp;

use super::alert::{
    Alert, AlertDetail, AlertId, AlertKind, AlertSubject, ClearReason, DeviationCause, TrackKey,
};
use super::config::TrackConfig;
use super::error::TrackError;
use super::fence::{Fence, FenceId, FenceRule, HeldFence};
use super::grid::{CellBox, Grid, PackedGrid};
use super::hash::{StableHashMap, StableHasher};
use super::kinematics::{
    chord_m, closest_approach, exact_at, geodesic_at_most_m, inverse, pair_bounds, pair_lower_bound_m,
    Approach, Band, Motion, PairBounds, Tangent,
};
use super::plan::{HeldPlan, Plan};
use super::report::PositionReport;

mod batch;
mod quiet;

use quiet::{NearList, Quiet};

/// Where an entity's velocity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VelocitySource {
    /// Speed and course as reported.
    Reported,
    /// From the previous report's position and time (a geodesic's length
    /// over the elapsed time, and its course on arrival).
    Estimated,
    /// No velocity: the entity is taken to stay where it reported.
    Unknown,
}

/// What became of a report that was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The entity's state is now this report's.
    Applied,
    /// Same time as the entity's current report: ignored (the first wins).
    Duplicate,
    /// Older than the entity's current report: ignored.
    OutOfOrder,
    /// Already stale at `now`: ignored.
    StaleOnArrival,
}

/// Counters of what the watch did with reports, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackStats {
    pub applied: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub stale_on_arrival: u64,
    /// Reports linked to an activity the watch holds no plan for (kept
    /// unlinked until the driver passes the plan).
    pub unknown_plan: u64,
    /// Entities that went stale and left the watch.
    pub expired: u64,
    /// Full searches of an entity's neighbours (`TrackConfig::quiet_horizon_ms`):
    /// on a report off its plan, and when its horizon comes without one.
    pub scans: u64,
    /// Applied reports that kept their entity on its plan and checked only
    /// its near list.
    pub quiet_reports: u64,
}

/// One entity as the driver may read it (`GET /v1/tracks`).
#[derive(Debug, Clone, Copy)]
pub struct TrackView<'a> {
    pub key: &'a TrackKey,
    pub time: Timestamp,
    pub position: LonLat,
    pub alt_m: Option<f64>,
    pub speed_mps: f64,
    pub course_deg: f64,
    pub velocity: VelocitySource,
    pub stale: Timestamp,
    pub activity: Option<ActivityId>,
    pub airborne: bool,
    motion: Motion,
}

impl TrackView<'_> {
    /// Where the kinematic model puts the entity at `time`: its reported
    /// position moved along the geodesic of its course at its speed.
    pub fn position_at(&self, time: Timestamp) -> LonLat {
        self.motion.position_at(time.unix_ms())
    }
}

/// What the pair filter reads of an entity, in a vector of its own with one
/// cache line per entity: a report meets tens of candidates, and each would
/// otherwise cost several cache misses in the full record.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Kin {
    tangent: Tangent,
    party: PartyId,
    /// NaN when unknown.
    alt_m: f32,
    airborne: bool,
}

/// One live entity. The fields a pair check reads come first, so that a
/// candidate (a report meets tens, each a likely cache miss) costs as few
/// cache lines as possible, the small ones among them so that no padding
/// follows them (184 bytes; 200 with a `Vec` of open episodes and an
/// `Option<CellBox>`, 232 before). (Aligning records to cache lines
/// would cost some 60 bytes each against the memory budget.)
#[derive(Debug)]
#[repr(C)]
struct Entity {
    /// The reported position and course; the rest of the kinematic model
    /// (time, speed, tangent) is in the entity's `Kin`.
    origin: LonLat,
    course_deg: f32,
    /// The cells the swept box is filed under; `None` before the first filing.
    filed: FiledBox,
    layer: u16,
    velocity: VelocitySource,
    /// Whether the entity is linked to an activity (`TrackWatch::links`
    /// holds which: few entities are, and 16 bytes in every record cost
    /// more than a lookup for those).
    linked: bool,
    /// Open `proximity` and `cpa` episodes this entity is in: (other
    /// entity's id, kind, alert id). Usually empty or a few, so a pair's lookup is a
    /// scan of the reporting entity's own list, not a search of a global map.
    /// A boxed slice of exactly its length (16 bytes in the record against
    /// a `Vec`'s 24, and no slack in the block): episodes open and close
    /// far more rarely than the list is read.
    pairs: Box<[(u32, AlertKind, AlertId)]>,
    key: TrackKey,
    stale_ms: i64,
    /// The swept box covers the path up to this instant plus the look-ahead;
    /// `i64::MAX` for an entity at rest.
    refile_ms: i64,
    /// The earliest wake-up queued for this entity.
    wake_ms: i64,
    /// The model of the entity's last scan (`watch/quiet.rs`).
    quiet: Quiet,
    /// The ids of the entities the last scans of this entity and of them
    /// could not rule out (symmetric; `watch/quiet.rs`).
    near: NearList,
}

/// An entity's `Option<CellBox>` in 16 bytes rather than 20 (with the
/// record's padding, 8 bytes a record): `wraps` in the top bit of `west`,
/// `None` as a `south` of `u32::MAX`. Rows and columns stay below 2³¹:
/// `grid_cell_m ≥ 100` (checked by `TrackConfig`) gives at most 400,000
/// columns and 200,000 rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FiledBox {
    south: u32,
    north: u32,
    west_and_wraps: u32,
    east: u32,
}

const FILED_WRAPS: u32 = 1 << 31;

impl FiledBox {
    const NONE: FiledBox = FiledBox {
        south: u32::MAX,
        north: 0,
        west_and_wraps: 0,
        east: 0,
    };

    fn new(cells: CellBox) -> Self {
        assert!(
            cells.south < FILED_WRAPS && cells.north < FILED_WRAPS && cells.west < FILED_WRAPS,
            "cell numbers below 2^31"
        );
        FiledBox {
            south: cells.south,
            north: cells.north,
            west_and_wraps: cells.west | if cells.wraps { FILED_WRAPS } else { 0 },
            east: cells.east,
        }
    }

    fn get(self) -> Option<CellBox> {
        (self.south != u32::MAX).then_some(CellBox {
            south: self.south,
            north: self.north,
            west: self.west_and_wraps & !FILED_WRAPS,
            east: self.east,
            wraps: self.west_and_wraps & FILED_WRAPS != 0,
        })
    }
}

impl Kin {
    fn band(&self, ceiling_m: f64) -> Band {
        if !self.alt_m.is_nan() {
            let h = f64::from(self.alt_m);
            Band { min_m: h, max_m: h }
        } else if self.airborne {
            Band {
                min_m: f64::NEG_INFINITY,
                max_m: f64::INFINITY,
            }
        } else {
            Band {
                min_m: f64::NEG_INFINITY,
                max_m: ceiling_m,
            }
        }
    }

    fn alt(&self) -> Option<f64> {
        (!self.alt_m.is_nan()).then_some(f64::from(self.alt_m))
    }
}

/// New entities a batch has admitted but not inserted yet: they count
/// against the limits of the reports after them.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    party: usize,
    all: usize,
}

/// A report that will change its entity (`admit` decided so).
#[derive(Debug, Clone, Copy)]
struct Admitted {
    existing: Option<u32>,
    checked: super::report::CheckedReport,
    plan_kind: Option<ActivityKind>,
}

/// An entity's state after an admitted report (`prepare`), before it is
/// applied. The model before the report is not copied here: it stays the
/// watch's until the report is applied, and a batch holds one `Prepared`
/// per report (128 bytes, not 256, of the batch's working memory).
#[derive(Debug, Clone, Copy)]
struct Prepared {
    kin: Kin,
    origin: LonLat,
    course_deg: f32,
    velocity: VelocitySource,
    layer: u16,
    stale_ms: i64,
    /// The cells the entity's swept box is filed under after the report.
    filed: CellBox,
    /// Whether `filed` or `layer` differ from the entity's filing before
    /// the report (always for a new entity).
    refiled: bool,
    /// Whether the report keeps the entity on its plan: it checks only its
    /// near list, and does not scan (`watch/quiet.rs`).
    quiet: bool,
}

impl Prepared {
    fn motion(&self) -> Motion {
        Motion {
            origin: self.origin,
            course_deg: self.course_deg,
            tangent: self.kin.tangent,
        }
    }
}

/// A closest approach of a pair that a batch's gathering computed ahead of
/// `check_pair`, in one of the two forms `check_pair` asks for: `kept` (an
/// open `cpa` episode, the reporting entity first) or not (a new one, the
/// lower slot first), with the straight models' closest instant as hint.
#[derive(Debug, Clone, Copy)]
struct Foreseen {
    other: u32,
    kept: bool,
    hint_ms: i64,
    approach: Approach,
}

/// An open episode's partner for which a batch's gathering found that
/// `check_pair` returns at once, provided the kinds of episode open at the
/// apply step are still `open` (proximity, cpa).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Settled {
    other: u32,
    open: [bool; 2],
}

/// Which kinds of episode (proximity, cpa) are open with the entity `other`
/// in an entity's list of open episodes.
fn open_kinds(pairs: &[(u32, AlertKind, AlertId)], other: u32) -> [bool; 2] {
    let open = |want| pairs.iter().any(|&(o, kind, _)| o == other && kind == want);
    [open(AlertKind::Proximity), open(AlertKind::Cpa)]
}

/// The altitude layers a pair query reads: one or two ranges.
#[derive(Debug, Clone)]
struct Layers {
    ranges: [RangeInclusive<u16>; 2],
    len: usize,
}

impl Layers {
    fn one(range: RangeInclusive<u16>) -> Self {
        Self {
            // Never read: `len` is 1.
            ranges: [range.clone(), range],
            len: 1,
        }
    }

    fn two(first: RangeInclusive<u16>, second: RangeInclusive<u16>) -> Self {
        Self {
            ranges: [first, second],
            len: 2,
        }
    }

    fn as_slice(&self) -> &[RangeInclusive<u16>] {
        &self.ranges[..self.len]
    }
}

#[derive(Debug, Default)]
struct PartyTracks {
    /// The party's entities by uid: their ids only (not their slots: slots
    /// move when the watch lays its entities out again in cell order),
    /// hashed by uid, the uid itself read from the entity's record
    /// (`TrackKey`). 5 bytes a bucket against 25 with the uid's `Arc`
    /// beside the id in a map.
    by_uid: HashTable<u32>,
}

/// The hash of a uid in its party's table (`PartyTracks::by_uid`).
fn uid_hash(uid: &str) -> u64 {
    BuildHasherDefault::<StableHasher>::default().hash_one(uid)
}

/// No entity: a free slot's id, a free id's slot.
const NONE: u32 = u32::MAX;

/// `relayout` renumbers the slots once more than one live entity in this
/// many was inserted or changed its first cell since the last time.
const RELAYOUT_DISORDER_DIVISOR: usize = 8;

/// Alerts the queue keeps room for once drained (a second's worth at
/// 100k entities is some 2,400).
const ALERT_QUEUE_KEPT: usize = 4_096;

/// Layer 0 holds entities on the ground, 1 airborne ones of unknown height,
/// 2 and up airborne ones by height from this base.
const LAYER_BASE_M: f64 = -1_000.0;
const GROUND_LAYER: u16 = 0;
const UNKNOWN_HEIGHT_LAYER: u16 = 1;

/// The pair rule: thresholds and the vertical gap.
#[derive(Debug, Clone, Copy)]
struct PairRule {
    limit_m: f64,
    vertical_limit_m: Option<f64>,
    gap_m: f64,
}

impl PairRule {
    fn vertical_within(&self, factor: f64) -> bool {
        self.vertical_limit_m.is_none_or(|v| self.gap_m < v * factor)
    }
}

/// The live state of every reported entity and the alerts among them.
///
/// Sans-IO: the driver passes `now` to every handler and drains alerts with
/// [`poll_alert`](Self::poll_alert) after each call. Given the same calls
/// in the same order it emits the same alerts in the same order.
///
/// A report is checked against the entities and fences the spatial index
/// puts near it; alerts between entities are evaluated when either reports,
/// and every alert clears when one of its entities goes stale
/// ([`handle_tick`](Self::handle_tick), or any handler at a later `now`).
#[derive(Debug)]
pub struct TrackWatch {
    config: TrackConfig,
    /// Per slot. An entity has a stable *id* (given as slots were before:
    /// the last freed first, else the next number), which orders
    /// everything the alerts depend on (`check_pair`'s calls, the pair's
    /// order in an alert, expiries due at the same instant), and a *slot*,
    /// its place in these per-slot arrays, which the watch renumbers in
    /// the order of the entities' cells from time to time (`relayout`), so
    /// that a report's candidates, all in nearby cells, are nearby in memory.
    entities: Vec<Option<Entity>>,
    /// Per slot, the pair filter's view of the entity (stale for free slots).
    kin: Vec<Kin>,
    /// Per slot, the entity's id (`NONE` for a free slot).
    id_of: Vec<u32>,
    /// Per id, the entity's slot (`NONE` for a free id).
    slot_of_id: Vec<u32>,
    /// Free ids, the last freed last.
    free: Vec<u32>,
    /// Free slots, the last freed last.
    free_slots: Vec<u32>,
    /// Entities inserted or filed under another first cell since the last
    /// `relayout`: a measure of how far the slots are from cell order.
    disorder: usize,
    live: usize,
    parties: BTreeMap<PartyId, PartyTracks>,
    grid: Grid,
    /// Per slot, the number of the last query that found it (deduplication).
    seen: Vec<u32>,
    query: u32,
    /// (instant, entity id).
    wakes: BinaryHeap<Reverse<(i64, u32)>>,
    /// (horizon, entity id): `watch/quiet.rs`.
    horizons: BinaryHeap<Reverse<(i64, u32)>>,
    fences: Vec<Option<HeldFence>>,
    fence_free: Vec<u32>,
    fence_ids: BTreeMap<FenceId, u32>,
    fence_grid: Grid,
    /// `fence_grid` packed for a batch's many queries; `None` once a fence
    /// changed, until the next batch packs it again.
    fence_packed: Option<PackedGrid>,
    fence_seen: Vec<u32>,
    /// Per fence slot its box, apart from the fence so that a report's
    /// query reads a compact array first (most fences in a cell are far).
    fence_reach: Vec<GeoBounds>,
    plans: BTreeMap<ActivityId, HeldPlan>,
    /// Open pair episodes (each is in both entities' `pairs`).
    open_pairs: usize,
    /// Open zone episodes by (entity id, fence slot).
    zone_alerts: BTreeMap<(u32, u32), AlertId>,
    /// By entity id.
    deviation_alerts: BTreeMap<u32, (AlertId, ActivityId)>,
    /// By entity id, the activity of every linked entity (`Entity::linked`).
    links: BTreeMap<u32, ActivityId>,
    next_alert: u64,
    alerts: VecDeque<Alert>,
    stats: TrackStats,
    /// A report's candidates, `by_id`.
    candidates: Vec<u64>,
    /// At least the radius of every live plan (`watch/quiet.rs`).
    quiet_radius_max_m: f64,
    /// The latest `now` any handler was given.
    latest_now_ms: i64,
    near_scratch: Vec<u32>,
    batch: batch::BatchScratch,
}

impl TrackWatch {
    pub fn new(config: TrackConfig) -> Result<Self, TrackError> {
        config.validate()?;
        Ok(Self {
            grid: Grid::new(config.grid_cell_m),
            fence_grid: Grid::new(config.grid_cell_m),
            fence_packed: None,
            batch: batch::BatchScratch::new(config.grid_cell_m),
            config,
            entities: Vec::new(),
            kin: Vec::new(),
            id_of: Vec::new(),
            slot_of_id: Vec::new(),
            free: Vec::new(),
            free_slots: Vec::new(),
            disorder: 0,
            live: 0,
            parties: BTreeMap::new(),
            seen: Vec::new(),
            query: 0,
            wakes: BinaryHeap::new(),
            horizons: BinaryHeap::new(),
            fences: Vec::new(),
            fence_free: Vec::new(),
            fence_ids: BTreeMap::new(),
            fence_seen: Vec::new(),
            fence_reach: Vec::new(),
            plans: BTreeMap::new(),
            open_pairs: 0,
            zone_alerts: BTreeMap::new(),
            deviation_alerts: BTreeMap::new(),
            links: BTreeMap::new(),
            next_alert: 0,
            alerts: VecDeque::new(),
            stats: TrackStats::default(),
            candidates: Vec::new(),
            quiet_radius_max_m: 0.0,
            latest_now_ms: i64::MIN,
            near_scratch: Vec::new(),
        })
    }

    pub fn config(&self) -> &TrackConfig {
        &self.config
    }

    pub fn stats(&self) -> TrackStats {
        self.stats
    }

    /// Live entities.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The next alert, oldest first.
    pub fn poll_alert(&mut self) -> Option<Alert> {
        let next = self.alerts.pop_front();
        if next.is_none() && self.alerts.capacity() > ALERT_QUEUE_KEPT {
            // A burst (the first reports of a whole fleet open tens of
            // thousands of episodes at once; an alert is ~160 bytes) would
            // otherwise keep its queue for good: 100k entities' first tick
            // left some 20 MiB behind.
            self.alerts.shrink_to(ALERT_QUEUE_KEPT);
        }
        next
    }

    /// Open episodes, all kinds.
    pub fn open_alerts(&self) -> usize {
        self.open_pairs + self.zone_alerts.len() + self.deviation_alerts.len()
    }

    fn view<'a>(entity: &'a Entity, kin: &Kin, link: Option<ActivityId>) -> TrackView<'a> {
        let moving = entity.velocity != VelocitySource::Unknown;
        TrackView {
            key: &entity.key,
            time: Timestamp(kin.tangent.time_ms),
            position: entity.origin,
            alt_m: kin.alt(),
            speed_mps: if moving {
                f64::from(kin.tangent.speed_mps)
            } else {
                0.0
            },
            course_deg: f64::from(entity.course_deg),
            velocity: entity.velocity,
            stale: Timestamp(entity.stale_ms),
            activity: link,
            airborne: kin.airborne,
            motion: Motion {
                origin: entity.origin,
                course_deg: entity.course_deg,
                tangent: kin.tangent,
            },
        }
    }

    /// One live entity.
    pub fn track(&self, party: PartyId, uid: &str) -> Option<TrackView<'_>> {
        let slot = self.slot_of(party, uid)?;
        let kin = &self.kin[slot as usize];
        let link = self.link(slot);
        self.entities[slot as usize]
            .as_ref()
            .map(|e| Self::view(e, kin, link))
    }

    /// Every live entity, in a reproducible order.
    pub fn tracks(&self) -> impl Iterator<Item = TrackView<'_>> {
        // In id order: slots move.
        self.slot_of_id.iter().filter(|&&slot| slot != NONE).map(|&slot| {
            let entity = self.entity(slot);
            Self::view(entity, &self.kin[slot as usize], self.link(slot))
        })
    }

    /// Live entities of one party.
    pub fn party_len(&self, party: PartyId) -> usize {
        self.parties.get(&party).map_or(0, |p| p.by_uid.len())
    }

    fn open(&mut self, at: Timestamp, detail: AlertDetail) -> AlertId {
        let id = AlertId(self.next_alert);
        self.next_alert += 1;
        self.alerts.push_back(Alert::Opened { id, at, detail });
        id
    }

    fn clear(
        &mut self,
        id: AlertId,
        at: Timestamp,
        kind: AlertKind,
        subject: AlertSubject,
        reason: ClearReason,
    ) {
        self.alerts.push_back(Alert::Cleared {
            id,
            at,
            kind,
            subject,
            reason,
        });
    }

    /// The id of the entity in `slot`.
    fn id(&self, slot: u32) -> u32 {
        self.id_of[slot as usize]
    }

    fn entity(&self, slot: u32) -> &Entity {
        self.entities[slot as usize].as_ref().expect("a live slot")
    }

    /// The full kinematic model of a live entity.
    fn motion(&self, slot: u32) -> Motion {
        let entity = self.entity(slot);
        Motion {
            origin: entity.origin,
            course_deg: entity.course_deg,
            tangent: self.kin[slot as usize].tangent,
        }
    }

    fn entity_mut(&mut self, slot: u32) -> &mut Entity {
        self.entities[slot as usize].as_mut().expect("a live slot")
    }

    /// The activity a live entity is linked to.
    fn link(&self, slot: u32) -> Option<ActivityId> {
        if self.entity(slot).linked {
            self.links.get(&self.id(slot)).copied()
        } else {
            None
        }
    }

    fn set_link(&mut self, slot: u32, link: Option<ActivityId>) {
        let id = self.id(slot);
        let entity = self.entity_mut(slot);
        if !entity.linked && link.is_none() {
            return;
        }
        entity.linked = link.is_some();
        match link {
            Some(activity) => self.links.insert(id, activity),
            None => self.links.remove(&id),
        };
    }

    // ----- time -----------------------------------------------------------

    /// Expires what went stale by `now` (clearing its alerts) and refiles
    /// moving entities whose box in the index is about to run out.
    pub fn handle_tick(&mut self, now: Timestamp) {
        self.latest_now_ms = self.latest_now_ms.max(now.unix_ms());
        while let Some(&Reverse((wake_ms, id))) = self.wakes.peek() {
            if wake_ms > now.unix_ms() {
                break;
            }
            self.wakes.pop();
            let slot = self.slot_of_id[id as usize];
            let Some(entity) = self.entities.get(slot as usize).and_then(Option::as_ref) else {
                continue;
            };
            if entity.wake_ms != wake_ms {
                continue;
            }
            if entity.stale_ms <= now.unix_ms() {
                self.expire(now, slot);
                continue;
            }
            if entity.refile_ms <= now.unix_ms() {
                self.file(now, slot);
            }
            let entity = self.entity_mut(slot);
            entity.wake_ms = entity.stale_ms.min(entity.refile_ms);
            let wake = entity.wake_ms;
            push_snug(&mut self.wakes, Reverse((wake, id)));
        }
        // Horizons that came without a report, after the expiries (in
        // their own queue: the order of expiries, hence of their alerts,
        // is the one without horizons). A scan emits nothing.
        while let Some(&Reverse((until_ms, id))) = self.horizons.peek() {
            if until_ms > now.unix_ms() {
                break;
            }
            self.horizons.pop();
            let slot = self.slot_of_id[id as usize];
            let due = self
                .entities
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|entity| entity.quiet.until_ms == until_ms);
            if due {
                self.rescan(now, slot);
            }
        }
    }

    fn expire(&mut self, now: Timestamp, slot: u32) {
        let key = self.entity(slot).key.clone();
        self.close_all(now, slot, &ClearReason::Stale(key.clone()));
        let near = std::mem::take(&mut self.entity_mut(slot).near);
        self.leave_near_lists(self.id(slot), near.as_slice());
        let entity = self.entities[slot as usize].take().expect("a live slot");
        if let Some(filed) = entity.filed.get() {
            self.grid.remove(filed, entity.layer, slot);
        }
        let id = self.id(slot);
        if let Some(party) = self.parties.get_mut(&key.party) {
            if let Ok(entry) = party.by_uid.find_entry(uid_hash(&key.uid), |&other| other == id) {
                entry.remove();
            }
            if party.by_uid.is_empty() {
                self.parties.remove(&key.party);
            }
        }
        self.links.remove(&id);
        self.free.push(id);
        self.free_slots.push(slot);
        self.slot_of_id[id as usize] = NONE;
        self.id_of[slot as usize] = NONE;
        self.live -= 1;
        self.stats.expired += 1;
    }

    /// Clears every open episode of an entity.
    fn close_all(&mut self, now: Timestamp, slot: u32, reason: &ClearReason) {
        let pairs = self.entity(slot).pairs.clone();
        for &(other, kind, id) in pairs.iter() {
            let other = self.slot_of_id[other as usize];
            self.close_pair(now, slot, other, kind, id, reason.clone());
        }
        let entity_id = self.id(slot);
        let zones: Vec<((u32, u32), AlertId)> = self
            .zone_alerts
            .range((entity_id, 0)..=(entity_id, u32::MAX))
            .map(|(&k, &id)| (k, id))
            .collect();
        for ((_, fence), id) in zones {
            self.close_zone(now, slot, fence, id, reason.clone());
        }
        if let Some((id, activity)) = self.deviation_alerts.remove(&entity_id) {
            let track = self.entity(slot).key.clone();
            self.clear(
                id,
                now,
                AlertKind::Deviation,
                AlertSubject::Plan { track, activity },
                reason.clone(),
            );
        }
    }

    fn pair_subject(&self, a: u32, b: u32) -> AlertSubject {
        let (first, second) = if self.id(a) < self.id(b) { (a, b) } else { (b, a) };
        AlertSubject::Pair([self.entity(first).key.clone(), self.entity(second).key.clone()])
    }

    fn close_pair(
        &mut self,
        now: Timestamp,
        a: u32,
        b: u32,
        kind: AlertKind,
        id: AlertId,
        reason: ClearReason,
    ) {
        for (this, that) in [(a, b), (b, a)] {
            let that = self.id(that);
            let pairs = &mut self.entity_mut(this).pairs;
            remove_exact(pairs, |&(other, k, _)| (other, k) == (that, kind));
        }
        self.open_pairs -= 1;
        let subject = self.pair_subject(a, b);
        self.clear(id, now, kind, subject, reason);
    }

    fn open_pair(&mut self, now: Timestamp, a: u32, b: u32, detail: AlertDetail) {
        let kind = detail.kind();
        let id = self.open(now, detail);
        let (id_a, id_b) = (self.id(a), self.id(b));
        for (slot, other) in [(a, id_b), (b, id_a)] {
            let pairs = &mut self.entity_mut(slot).pairs;
            push_exact(pairs, (other, kind, id));
        }
        self.open_pairs += 1;
    }

    fn fence_subject(&self, slot: u32, fence: u32) -> (AlertSubject, AlertKind) {
        let held = self.fences[fence as usize].as_ref().expect("a held fence");
        let kind = if held.fence.is_line() {
            AlertKind::ZoneCrossed
        } else {
            AlertKind::ZoneEntered
        };
        let subject = AlertSubject::Fence {
            track: self.entity(slot).key.clone(),
            fence: held.fence.id,
            fence_owner: held.fence.owner,
        };
        (subject, kind)
    }

    fn close_zone(&mut self, now: Timestamp, slot: u32, fence: u32, id: AlertId, reason: ClearReason) {
        self.zone_alerts.remove(&(self.id(slot), fence));
        let (subject, kind) = self.fence_subject(slot, fence);
        self.clear(id, now, kind, subject, reason);
    }

    // ----- reports --------------------------------------------------------

    /// Takes one position report at `now`: updates the entity (creating it
    /// on its first report) and raises or clears its alerts.
    ///
    /// Refused (with nothing changed) when a field is invalid, when a new
    /// entity would exceed a limit, or when the report links to another
    /// party's activity. Reports not newer than the entity's current one,
    /// and reports already stale at `now`, are ignored and counted.
    pub fn handle_report(
        &mut self,
        now: Timestamp,
        report: &PositionReport,
    ) -> Result<ReportOutcome, TrackError> {
        self.handle_tick(now);
        let existing = self.slot_of(report.party, report.uid);
        let current = existing.map(|slot| (slot, self.kin[slot as usize].tangent.time_ms));
        let admitted = match self.admit(now, report, current, Pending::default())? {
            Ok(admitted) => admitted,
            Err(ignored) => return Ok(ignored),
        };
        let prepared = self.prepare(now, report, &admitted);
        let previous = existing.map(|slot| self.motion(slot));
        let slot = self.apply(now, report, existing, &prepared);
        if prepared.quiet {
            self.stats.quiet_reports += 1;
            self.check_quiet_pairs(now, slot, &[], &[]);
        } else {
            self.check_pairs(now, slot);
            if self.quiet_enabled() {
                self.rescan(now, slot);
            }
        }
        let found = self.fences_near(slot, previous.as_ref());
        self.check_fences(now, slot, previous.as_ref(), &found);
        self.check_plan(now, slot);
        Ok(ReportOutcome::Applied)
    }

    fn slot_of(&self, party: PartyId, uid: &str) -> Option<u32> {
        let mut found = NONE;
        self.parties.get(&party)?.by_uid.find(uid_hash(uid), |&id| {
            let slot = self.slot_of_id[id as usize];
            let same = self.entity(slot).key.uid.as_ref() == uid;
            if same {
                found = slot;
            }
            same
        })?;
        Some(found)
    }

    /// Decides what becomes of a report (refused, ignored or applied) and
    /// counts it, changing nothing else. `current`: the entity's slot and
    /// the time of its current report (none for a new entity). `pending` are
    /// the new entities a batch admitted before this report but has not
    /// inserted yet.
    fn admit(
        &mut self,
        now: Timestamp,
        report: &PositionReport,
        current: Option<(u32, i64)>,
        pending: Pending,
    ) -> Result<Result<Admitted, ReportOutcome>, TrackError> {
        let checked = report.check(now, &self.config)?;
        let existing = current.map(|(slot, _)| slot);
        if let Some((_, current_ms)) = current {
            if report.time.unix_ms() < current_ms {
                self.stats.out_of_order += 1;
                return Ok(Err(ReportOutcome::OutOfOrder));
            }
            if report.time.unix_ms() == current_ms {
                self.stats.duplicates += 1;
                return Ok(Err(ReportOutcome::Duplicate));
            }
        } else {
            if self.party_len(report.party) + pending.party >= self.config.max_entities_per_party {
                return Err(TrackError::PartyCapacity {
                    party: report.party,
                    limit: self.config.max_entities_per_party,
                });
            }
            if self.live + pending.all >= self.config.max_entities {
                return Err(TrackError::Capacity {
                    limit: self.config.max_entities,
                });
            }
        }
        let plan_kind = match report.activity.and_then(|a| self.plans.get(&a).map(|p| (a, p))) {
            Some((activity, held)) if held.plan.party != report.party => {
                return Err(TrackError::PlanOfAnotherParty {
                    activity,
                    owner: held.plan.party,
                    party: report.party,
                });
            }
            Some((_, held)) => Some(held.plan.kind),
            None => None,
        };
        if checked.stale_ms <= now.unix_ms() {
            self.stats.stale_on_arrival += 1;
            return Ok(Err(ReportOutcome::StaleOnArrival));
        }
        if report.activity.is_some() && plan_kind.is_none() {
            self.stats.unknown_plan += 1;
        }
        self.stats.applied += 1;
        Ok(Ok(Admitted {
            existing,
            checked,
            plan_kind,
        }))
    }

    /// The entity's state after an admitted report, computed from its state
    /// before and the report alone (so a batch can compute it for all its
    /// reports before applying any).
    fn prepare(&self, now: Timestamp, report: &PositionReport, admitted: &Admitted) -> Prepared {
        let checked = &admitted.checked;
        let previous = admitted.existing.map(|slot| self.motion(slot));
        let (speed_mps, course_deg, velocity) = self.velocity(report, checked, previous.as_ref());
        let motion = Motion::new(report.position, report.time.unix_ms(), speed_mps, course_deg);
        let airborne = checked.alt_m.is_some_and(|h| h > self.config.ground_ceiling_m)
            || admitted.plan_kind == Some(ActivityKind::Flight);
        let alt_m = checked.alt_m.map_or(f32::NAN, |h| h as f32);
        let layer = if !airborne {
            GROUND_LAYER
        } else if let Some(h) = checked.alt_m {
            self.layer_of(h)
        } else {
            UNKNOWN_HEIGHT_LAYER
        };
        let filed = self.swept_cells(now, &motion);
        let refiled = admitted.existing.is_none_or(|slot| {
            let entity = self.entity(slot);
            entity.filed.get() != Some(filed) || entity.layer != layer
        });
        let kin = Kin {
            tangent: motion.tangent,
            party: report.party,
            alt_m,
            airborne,
        };
        let quiet = admitted
            .existing
            .is_some_and(|slot| self.stays_quiet(now.unix_ms(), slot, &kin));
        Prepared {
            kin,
            quiet,
            origin: motion.origin,
            course_deg: motion.course_deg,
            velocity,
            layer,
            stale_ms: checked.stale_ms,
            filed,
            refiled,
        }
    }

    /// Makes a prepared report the entity's state (creating the entity on
    /// its first report) and files it in the index; returns its slot.
    fn apply(
        &mut self,
        now: Timestamp,
        report: &PositionReport,
        existing: Option<u32>,
        prepared: &Prepared,
    ) -> u32 {
        let slot = match existing {
            Some(slot) => {
                let old_link = self.link(slot);
                if old_link != report.activity {
                    if let Some((id, activity)) = self.deviation_alerts.remove(&self.id(slot)) {
                        let track = self.entity(slot).key.clone();
                        self.clear(
                            id,
                            now,
                            AlertKind::Deviation,
                            AlertSubject::Plan { track, activity },
                            ClearReason::Unlinked,
                        );
                    }
                }
                self.kin[slot as usize] = prepared.kin;
                let entity = self.entity_mut(slot);
                entity.origin = prepared.origin;
                entity.course_deg = prepared.course_deg;
                entity.velocity = prepared.velocity;
                entity.stale_ms = prepared.stale_ms;
                self.set_link(slot, report.activity);
                slot
            }
            None => {
                let slot = self.insert(report, prepared);
                self.set_link(slot, report.activity);
                slot
            }
        };
        self.refile_to(now, slot, prepared.layer, prepared.filed);
        slot
    }

    /// Renumbers the slots in the order of the entities' first filed cell
    /// (Z order, then id) once enough entities were inserted or moved to
    /// another first cell since the last time: a batch gathers its reports
    /// in that order too, so a report's candidates, all in nearby cells,
    /// are then in nearby slots, and their filter data (`kin`), the
    /// gathering's marks and the index's items are read from a few cache
    /// lines instead of one miss each. Ids do not change, so neither do
    /// the alerts. Leaves no free slot (the arrays are as long as the
    /// entities are many).
    fn relayout_if_disordered(&mut self) {
        if self.disorder * RELAYOUT_DISORDER_DIVISOR < self.live.max(1) {
            return;
        }
        self.disorder = 0;
        // Free slots last (key `u64::MAX`), to be cut off.
        let mut keyed: Vec<(u64, u32, u32)> = self
            .entities
            .iter()
            .zip(&self.id_of)
            .enumerate()
            .map(|(slot, (e, &id))| {
                let key = e
                    .as_ref()
                    .and_then(|e| e.filed.get())
                    .map_or(u64::MAX, |filed| batch::z_order(filed.south, filed.west));
                (key, id, slot as u32)
            })
            .collect();
        keyed.sort_unstable();
        // Per new slot the old one, and per old slot the new one.
        let order: Vec<u32> = keyed.iter().map(|&(_, _, old)| old).collect();
        drop(keyed);
        let mut new_slot = vec![NONE; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_slot[old as usize] = new as u32;
        }
        // In place, not into new vectors: a second copy of the records,
        // freed at once, would stay in the allocator's heap.
        batch::permute(
            order.len(),
            |at| order[at] as usize,
            |a, b| {
                self.entities.swap(a, b);
                self.kin.swap(a, b);
                self.id_of.swap(a, b);
            },
        );
        self.entities.truncate(self.live);
        self.kin.truncate(self.live);
        self.id_of.truncate(self.live);
        self.seen.truncate(self.live);
        self.seen.iter_mut().for_each(|s| *s = 0);
        self.free_slots.clear();
        for (slot, &id) in self.id_of.iter().enumerate() {
            self.slot_of_id[id as usize] = slot as u32;
        }
        self.grid.renumber(&new_slot);
        self.recompute_quiet_radius_max();
    }

    /// A fresh number for deduplicating one query's results.
    fn next_query(&mut self) -> u32 {
        self.query = self.query.wrapping_add(1);
        if self.query == 0 {
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.fence_seen.iter_mut().for_each(|s| *s = 0);
            self.query = 1;
        }
        self.query
    }

    fn layer_of(&self, alt_m: f64) -> u16 {
        let above = ((alt_m - LAYER_BASE_M) / self.config.altitude_layer_m)
            .floor()
            .max(0.0);
        (2.0 + above).min(f64::from(u16::MAX)) as u16
    }

    /// Speed and course: as reported, else estimated from the previous
    /// report, else unknown (at rest).
    fn velocity(
        &self,
        report: &PositionReport,
        checked: &super::report::CheckedReport,
        previous: Option<&Motion>,
    ) -> (f64, f64, VelocitySource) {
        match (checked.speed_mps, checked.course_deg) {
            (Some(speed), Some(course)) => return (speed, course, VelocitySource::Reported),
            (Some(0.0), None) => return (0.0, 0.0, VelocitySource::Reported),
            _ => {}
        }
        if let Some(previous) = previous {
            let dt_s = (report.time.unix_ms() - previous.time_ms()) as f64 / 1000.0;
            let (distance_m, _, course_on_arrival) = inverse(previous.origin, report.position);
            let estimated = distance_m / dt_s;
            if dt_s > 0.0 && estimated <= self.config.max_speed_mps && distance_m > 0.0 {
                return (
                    checked.speed_mps.unwrap_or(estimated),
                    checked.course_deg.unwrap_or(course_on_arrival),
                    VelocitySource::Estimated,
                );
            }
        }
        (0.0, 0.0, VelocitySource::Unknown)
    }

    fn insert(&mut self, report: &PositionReport, prepared: &Prepared) -> u32 {
        let entity = Entity {
            key: TrackKey {
                party: report.party,
                uid: Arc::from(report.uid),
            },
            origin: prepared.origin,
            course_deg: prepared.course_deg,
            velocity: prepared.velocity,
            layer: prepared.layer,
            stale_ms: prepared.stale_ms,
            refile_ms: i64::MAX,
            wake_ms: i64::MAX,
            filed: FiledBox::NONE,
            linked: false,
            pairs: Box::default(),
            quiet: Quiet::NONE,
            near: NearList::default(),
        };
        let kin = prepared.kin;
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                grow_snug(&mut self.slot_of_id);
                self.slot_of_id.push(NONE);
                (self.slot_of_id.len() - 1) as u32
            }
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.entities[slot as usize] = Some(entity);
                self.kin[slot as usize] = kin;
                self.id_of[slot as usize] = id;
                slot
            }
            None => {
                grow_snug(&mut self.entities);
                grow_snug(&mut self.kin);
                grow_snug(&mut self.id_of);
                grow_snug(&mut self.seen);
                self.entities.push(Some(entity));
                self.kin.push(kin);
                self.id_of.push(id);
                self.seen.push(0);
                (self.entities.len() - 1) as u32
            }
        };
        self.slot_of_id[id as usize] = slot;
        let (entities, slot_of_id) = (&self.entities, &self.slot_of_id);
        self.parties
            .entry(report.party)
            .or_default()
            .by_uid
            .insert_unique(uid_hash(report.uid), id, |&other| {
                let slot = slot_of_id[other as usize] as usize;
                let entity = entities[slot].as_ref().expect("a listed entity is live");
                uid_hash(&entity.key.uid)
            });
        self.live += 1;
        self.disorder += 1;
        slot
    }

    /// Room for `new` entities about to be inserted (`by_party` of them per
    /// party), taken before the first `insert` rather than grown an eighth
    /// at a time: the first second of a fleet inserts every entity, and
    /// each step of `grow_snug` leaves the previous block freed. glibc
    /// hands a large block back to the system at once (or `mremap`s it);
    /// mimalloc keeps freed blocks resident for its purge delay (10 s in the
    /// server), and 100k new entities in steps of an eighth freed some
    /// eight times the arrays' final size. Never less than `grow_snug`'s
    /// step, so that many small calls do not reallocate on each. Room for
    /// fewer than `new` is taken as the free slots and ids cover.
    fn reserve_new(&mut self, new: usize, by_party: impl IntoIterator<Item = (PartyId, usize)>) {
        let slots = new.saturating_sub(self.free_slots.len());
        reserve_grown(&mut self.entities, slots);
        reserve_grown(&mut self.kin, slots);
        reserve_grown(&mut self.id_of, slots);
        reserve_grown(&mut self.seen, slots);
        reserve_grown(&mut self.slot_of_id, new.saturating_sub(self.free.len()));
        // A new entity queues its first wake-up, and its first scan a horizon.
        reserve_heap_grown(&mut self.wakes, new);
        if self.quiet_enabled() {
            reserve_heap_grown(&mut self.horizons, new);
        }
        let (entities, slot_of_id) = (&self.entities, &self.slot_of_id);
        for (party, count) in by_party {
            // A table grows by doubling whatever it is asked for: asked once
            // for the run's entities, it skips the steps between.
            self.parties
                .entry(party)
                .or_default()
                .by_uid
                .reserve(count, |&other| {
                    let slot = slot_of_id[other as usize] as usize;
                    let entity = entities[slot].as_ref().expect("a listed entity is live");
                    uid_hash(&entity.key.uid)
                });
        }
    }

    /// Files an entity's swept box `new_box` after a report (its layer may change).
    fn refile_to(&mut self, now: Timestamp, slot: u32, layer: u16, new_box: CellBox) {
        let old = self.entity(slot);
        let (old_box, old_layer) = (old.filed.get(), old.layer);
        if old_box != Some(new_box) || old_layer != layer {
            if let Some(old_box) = old_box {
                self.grid.remove(old_box, old_layer, slot);
                if (old_box.south, old_box.west) != (new_box.south, new_box.west) {
                    self.disorder += 1;
                }
            }
            self.grid.insert(new_box, layer, slot);
        }
        let refile_every = self.config.refile_every_ms;
        let moving = self.kin[slot as usize].tangent.speed_mps > 0.0;
        let entity = self.entity_mut(slot);
        entity.filed = FiledBox::new(new_box);
        entity.layer = layer;
        entity.refile_ms = if moving {
            now.unix_ms() + refile_every
        } else {
            i64::MAX
        };
        self.schedule(slot);
    }

    /// Refiles without a report (the box ran out).
    fn file(&mut self, now: Timestamp, slot: u32) {
        let layer = self.entity(slot).layer;
        let new_box = self.swept_cells(now, &self.motion(slot));
        self.refile_to(now, slot, layer, new_box);
    }

    /// The cells of the path the entity may take from its report to the end
    /// of the look-ahead after its next refiling.
    fn swept_cells(&self, now: Timestamp, motion: &Motion) -> CellBox {
        let until = now.unix_ms() + self.config.refile_every_ms + self.config.cpa_look_ahead_ms;
        let from = motion.time_ms().min(now.unix_ms());
        self.grid.cell_box(&motion.swept_bounds(from, until))
    }

    // ----- pairs ----------------------------------------------------------

    fn rule(&self, a: &Kin, b: &Kin) -> PairRule {
        let c = &self.config;
        let gap_m = a.band(c.ground_ceiling_m).gap_m(&b.band(c.ground_ceiling_m));
        if a.airborne || b.airborne {
            PairRule {
                limit_m: c.air_proximity_m,
                vertical_limit_m: Some(c.air_vertical_m),
                gap_m,
            }
        } else {
            PairRule {
                limit_m: c.ground_proximity_m,
                vertical_limit_m: None,
                gap_m,
            }
        }
    }

    /// The cells and layers that hold every entity within alert reach of
    /// an entity's path over the look-ahead: every other entity's filed box
    /// holds its own path over the same interval.
    fn pair_query(&self, now: Timestamp, motion: &Motion, kin: &Kin) -> (CellBox, Layers) {
        let c = &self.config;
        let ceiling = c.ground_ceiling_m;
        let vertical_reach = c.air_vertical_m * c.clear_factor;
        let swept = motion.swept_bounds(now.unix_ms(), now.unix_ms() + c.cpa_look_ahead_ms);
        // One box for every layer: the ground rule's reach is smaller, and
        // the bounds dismiss the extra candidates in a few flops.
        let cells = self.grid.cell_box(&swept.expanded_m(c.max_reach_m()));
        let band = kin.band(ceiling);
        let layers = if !kin.airborne {
            Layers::one(GROUND_LAYER..=self.layer_of(band.max_m + vertical_reach))
        } else if let Some(h) = kin.alt() {
            let first = if h - vertical_reach < ceiling {
                GROUND_LAYER
            } else {
                UNKNOWN_HEIGHT_LAYER
            };
            Layers::two(
                first..=UNKNOWN_HEIGHT_LAYER,
                self.layer_of(h - vertical_reach)..=self.layer_of(h + vertical_reach),
            )
        } else {
            Layers::one(GROUND_LAYER..=u16::MAX)
        };
        (cells, layers)
    }

    /// Gathers, sorted, the entities the index puts within alert reach of
    /// `slot`'s swept path, plus those it has open episodes with.
    fn gather_pairs(&mut self, now: Timestamp, slot: u32) {
        let query = self.next_query();
        let (cells, layers) = self.pair_query(now, &self.motion(slot), &self.kin[slot as usize]);
        let party = self.kin[slot as usize].party;
        let mut found = std::mem::take(&mut self.candidates);
        found.clear();
        // The grid holds only live entities, so their `kin` is current.
        let (seen, kin, id_of) = (&mut self.seen, &self.kin, &self.id_of);
        self.grid.for_each(cells, layers.as_slice(), |other| {
            if seen[other as usize] != query {
                seen[other as usize] = query;
                if kin[other as usize].party != party {
                    found.push(by_id(id_of[other as usize], other));
                }
            }
        });
        let (seen, entity) = (
            &mut self.seen,
            self.entities[slot as usize].as_ref().expect("a live slot"),
        );
        for &(other_id, _, _) in &entity.pairs {
            let other = self.slot_of_id[other_id as usize];
            if seen[other as usize] != query {
                seen[other as usize] = query;
                found.push(by_id(other_id, other));
            }
        }
        found.sort_unstable();
        self.candidates = found;
    }

    /// Whether a pair with no open episode gets past `check_pair`'s first
    /// tests (the same tests, in the same order): a batch gathers only such
    /// pairs, and `check_pair` returns at once for the others.
    fn may_open(&self, now: Timestamp, ka: &Kin, kb: &Kin) -> bool {
        let rule = self.rule(ka, kb);
        if !rule.vertical_within(1.0) {
            return false;
        }
        let (from, to) = (now.unix_ms(), now.unix_ms() + self.config.cpa_look_ahead_ms);
        // `lower_m` is never NaN (a `max` with 0), so this is exactly the
        // negation of `check_pair`'s `lower_m >= limit_m`.
        pair_lower_bound_m(&ka.tangent, &kb.tangent, from, to) < rule.limit_m
    }

    fn check_pairs(&mut self, now: Timestamp, slot: u32) {
        self.gather_pairs(now, slot);
        let candidates = std::mem::take(&mut self.candidates);
        for &other in &candidates {
            self.check_pair(now, slot, slot_in(other), None);
        }
        self.candidates = candidates;
    }

    /// `check_pair`'s first tests, for a pair with the given kinds of
    /// episode open: `None` when it returns at once (no effect), else the
    /// bounds over the look-ahead and at `now`. A batch asks it ahead for a
    /// reporting entity's open episodes (`Gathered::settled`).
    fn pair_triage(
        &self,
        now: Timestamp,
        ka: &Kin,
        kb: &Kin,
        proximity: bool,
        cpa: bool,
    ) -> Option<(PairBounds, PairBounds)> {
        let rule = self.rule(ka, kb);
        let factor = self.config.clear_factor;
        let any_open = proximity || cpa;
        if !any_open && !rule.vertical_within(1.0) {
            return None;
        }
        let (from, to) = (now.unix_ms(), now.unix_ms() + self.config.cpa_look_ahead_ms);
        let ahead = pair_bounds(&ka.tangent, &kb.tangent, from, to);
        if !any_open && ahead.lower_m >= rule.limit_m {
            return None;
        }
        let here = pair_bounds(&ka.tangent, &kb.tangent, from, from);
        // Most pairs are decided by the bounds alone: kept episodes well
        // within the clearing distance, quiet pairs well beyond the limits.
        // They never touch the other entity's full record.
        let keep_m = rule.limit_m * factor;
        let moving = ka.tangent.speed_mps > 0.0 || kb.tangent.speed_mps > 0.0;
        let settled = |open: bool, bounds: &PairBounds, may_open: bool| {
            if open {
                rule.vertical_within(factor) && bounds.upper_m < keep_m
            } else {
                !(may_open && rule.vertical_within(1.0) && bounds.lower_m < rule.limit_m)
            }
        };
        // A pair within the limits now by the bounds, with its proximity
        // episode open (and kept, by the first test): `check_pair` does not
        // open `cpa` for it (it warns of a proximity to come). Most open
        // episodes are such pairs.
        let cpa_excluded = !cpa && proximity && here.upper_m < rule.limit_m;
        if settled(proximity, &here, true) && (cpa_excluded || settled(cpa, &ahead, moving)) {
            return None;
        }
        Some((ahead, here))
    }

    /// Opens, keeps or clears the `proximity` and `cpa` episodes of a pair.
    ///
    /// `foreseen` is a closest approach a batch computed ahead for this
    /// pair: used when it is the one this call needs (same form, same
    /// instant hint; the batch computed it from the same two states).
    fn check_pair(&mut self, now: Timestamp, slot: u32, other: u32, foreseen: Option<&Foreseen>) {
        let (ka, kb) = (&self.kin[slot as usize], &self.kin[other as usize]);
        let rule = self.rule(ka, kb);
        let a = self.entity(slot);
        let factor = self.config.clear_factor;
        let (slot_id, other_id) = (self.id(slot), self.id(other));
        let open = |kind| {
            a.pairs
                .iter()
                .find(|&&(o, k, _)| (o, k) == (other_id, kind))
                .map(|&(_, _, id)| id)
        };
        let (proximity, cpa) = (open(AlertKind::Proximity), open(AlertKind::Cpa));
        let Some((ahead, here)) = self.pair_triage(now, ka, kb, proximity.is_some(), cpa.is_some()) else {
            return;
        };
        let (from, to) = (now.unix_ms(), now.unix_ms() + self.config.cpa_look_ahead_ms);
        let (ma, mb) = (self.motion(slot), self.motion(other));
        let (lo, hi) = if slot_id < other_id {
            (slot, other)
        } else {
            (other, slot)
        };
        let (m_lo, m_hi) = if slot_id < other_id { (ma, mb) } else { (mb, ma) };

        // proximity: at `now`.
        let mut exact_now = None;
        let exact_here = |exact_now: &mut Option<f64>| {
            *exact_now.get_or_insert_with(|| exact_at(&ma, &mb, from).distance_m)
        };
        let within_now = match proximity {
            Some(id) => {
                let keep_m = rule.limit_m * factor;
                let keep = rule.vertical_within(factor)
                    && (here.upper_m < keep_m
                        || (here.lower_m < keep_m && exact_here(&mut exact_now) < keep_m));
                if !keep {
                    self.close_pair(now, slot, other, AlertKind::Proximity, id, ClearReason::Separated);
                }
                here.upper_m < rule.limit_m
                    || (here.lower_m < rule.limit_m && exact_here(&mut exact_now) < rule.limit_m)
            }
            None if rule.vertical_within(1.0) && here.lower_m < rule.limit_m => {
                let exact = exact_at(&m_lo, &m_hi, from);
                if exact.distance_m < rule.limit_m {
                    let tracks = [self.entity(lo).key.clone(), self.entity(hi).key.clone()];
                    let detail = AlertDetail::Proximity {
                        tracks,
                        distance_m: exact.distance_m,
                        vertical_gap_m: rule.gap_m,
                        limit_m: rule.limit_m,
                        vertical_limit_m: rule.vertical_limit_m,
                        positions: [exact.at_a, exact.at_b],
                    };
                    self.open_pair(now, lo, hi, detail);
                }
                exact.distance_m < rule.limit_m
            }
            None => false,
        };

        // cpa: over the look-ahead. It warns of a proximity to come, so it
        // opens only for a pair not within the limits now; once open it stays
        // open through the proximity until the pair is predicted clear.
        match cpa {
            Some(id) => {
                let keep_m = rule.limit_m * factor;
                let keep = rule.vertical_within(factor)
                    && (ahead.upper_m < keep_m
                        || (ahead.lower_m < keep_m
                            && foreseen
                                .filter(|f| f.kept && f.hint_ms == ahead.straight_time_ms)
                                .map_or_else(
                                    || closest_approach(&ma, &mb, from, to, ahead.straight_time_ms),
                                    |f| f.approach,
                                )
                                .distance_m
                                < keep_m));
                if !keep {
                    self.close_pair(now, slot, other, AlertKind::Cpa, id, ClearReason::Separated);
                }
            }
            None if rule.vertical_within(1.0)
                && ahead.lower_m < rule.limit_m
                && !within_now
                && (ma.speed_mps() > 0.0 || mb.speed_mps() > 0.0) =>
            {
                let approach = foreseen
                    .filter(|f| !f.kept && f.hint_ms == ahead.straight_time_ms)
                    .map_or_else(
                        || closest_approach(&m_lo, &m_hi, from, to, ahead.straight_time_ms),
                        |f| f.approach,
                    );
                if approach.distance_m < rule.limit_m && approach.time_ms > from {
                    let tracks = [self.entity(lo).key.clone(), self.entity(hi).key.clone()];
                    let detail = AlertDetail::Cpa {
                        tracks,
                        time: Timestamp(approach.time_ms),
                        distance_m: approach.distance_m,
                        vertical_gap_m: rule.gap_m,
                        limit_m: rule.limit_m,
                        vertical_limit_m: rule.vertical_limit_m,
                        positions: [approach.at_a, approach.at_b],
                    };
                    self.open_pair(now, lo, hi, detail);
                }
            }
            None => {}
        }
    }

    // ----- fences ---------------------------------------------------------

    /// The fences binding the entity's party whose box meets the path from
    /// its previous report to this one, sorted.
    fn fences_near(&mut self, slot: u32, previous: Option<&Motion>) -> Vec<u32> {
        let query = self.next_query();
        let mut seen = std::mem::take(&mut self.fence_seen);
        let kin = &self.kin[slot as usize];
        let mut found = Vec::new();
        self.fences_near_with(
            kin.party,
            self.entity(slot).origin,
            kin.tangent.ecef,
            previous,
            (&mut seen, query),
            &mut found,
        );
        self.fence_seen = seen;
        found
    }

    /// [`fences_near`](Self::fences_near) for an entity at `here` (Earth-centred
    /// `here_ecef`), with the caller's deduplication marks and query number;
    /// appends to `found`, sorting what it appends.
    fn fences_near_with(
        &self,
        party: PartyId,
        here: LonLat,
        here_ecef: super::kinematics::V3,
        previous: Option<&Motion>,
        (seen, query): (&mut [u32], u32),
        found: &mut Vec<u32>,
    ) {
        let start = found.len();
        let moved = previous.filter(|p| p.origin != here);
        // The geodesic from the previous position stays within its length of
        // that position; its length is bounded from the chord (Schur).
        let reach = match moved {
            Some(p) => bounds(&Shape::Point(p.origin))
                .expanded_m(geodesic_at_most_m(chord_m(p.tangent.ecef, here_ecef))),
            None => bounds(&Shape::Point(here)),
        };
        let (fences, boxes) = (&self.fences, &self.fence_reach);
        let (grid, cells) = (&self.fence_grid, self.fence_grid.cell_box(&reach));
        let mut each = |f: u32| {
            if seen[f as usize] != query {
                seen[f as usize] = query;
                if boxes[f as usize].intersects(&reach)
                    && fences[f as usize].as_ref().is_some_and(|h| h.fence.binds(party))
                {
                    found.push(f);
                }
            }
        };
        match &self.fence_packed {
            Some(packed) => packed.for_each(grid, cells, &[0..=0], &mut each),
            None => grid.for_each(cells, &[0..=0], &mut each),
        }
        found[start..].sort_unstable();
    }

    /// Opens and clears the zone episodes of an entity that just reported,
    /// given the fences near its path (`fences_near`).
    fn check_fences(&mut self, now: Timestamp, slot: u32, previous: Option<&Motion>, found: &[u32]) {
        let entity = self.entity(slot);
        let here = entity.origin;
        let moved = previous.filter(|p| p.origin != here);
        let reach = match moved {
            Some(p) => bounds(&Shape::Point(p.origin)).expanded_m(geodesic_at_most_m(chord_m(
                p.tangent.ecef,
                self.kin[slot as usize].tangent.ecef,
            ))),
            None => bounds(&Shape::Point(here)),
        };
        let moved = moved.map(|p| p.origin);
        let here_box = bounds(&Shape::Point(here));
        let entity_id = self.id(slot);
        for &fence in found {
            let held = self.fences[fence as usize].as_ref().expect("a held fence");
            let open = self.zone_alerts.get(&(entity_id, fence)).copied();
            match &held.fence.rule {
                FenceRule::Exclusion { region, .. } | FenceRule::Protected { region } => {
                    let inside = held.reach.intersects(&here_box) && point_in_region(here, region);
                    match open {
                        Some(id) => {
                            let near = inside
                                || (held.reach.intersects(&here_box)
                                    && closest_if_below(
                                        &Shape::Point(here),
                                        &Shape::Region(region),
                                        self.config.zone_clear_m,
                                    )
                                    .is_some());
                            if !near {
                                self.close_zone(now, slot, fence, id, ClearReason::LeftZone);
                            }
                        }
                        None if inside => {
                            let (track, id_, owner) =
                                (self.entity(slot).key.clone(), held.fence.id, held.fence.owner);
                            let id = self.open(
                                now,
                                AlertDetail::ZoneEntered {
                                    track,
                                    fence: id_,
                                    fence_owner: owner,
                                    position: here,
                                },
                            );
                            self.zone_alerts.insert((entity_id, fence), id);
                        }
                        None => {}
                    }
                }
                FenceRule::Demarcation { line, .. } => {
                    let Some(from) = moved else { continue };
                    let Some(crossing) = crossings(from, here, line, &held.edge_boxes, &reach) else {
                        continue;
                    };
                    match open {
                        Some(id) => self.close_zone(now, slot, fence, id, ClearReason::CrossedBack),
                        None => {
                            let (track, id_, owner) =
                                (self.entity(slot).key.clone(), held.fence.id, held.fence.owner);
                            let id = self.open(
                                now,
                                AlertDetail::ZoneCrossed {
                                    track,
                                    fence: id_,
                                    fence_owner: owner,
                                    crossing,
                                },
                            );
                            self.zone_alerts.insert((entity_id, fence), id);
                        }
                    }
                }
            }
        }
        // Open zone episodes whose fence the index did not propose: the
        // entity is beyond the fence's reach, so outside and clear of it.
        let stale: Vec<(u32, AlertId)> = self
            .zone_alerts
            .range((entity_id, 0)..=(entity_id, u32::MAX))
            .filter(|((_, f), _)| found.binary_search(f).is_err())
            .filter(|((_, f), _)| {
                !self.fences[*f as usize]
                    .as_ref()
                    .expect("a held fence")
                    .fence
                    .is_line()
            })
            .map(|(&(_, f), &id)| (f, id))
            .collect();
        for (fence, id) in stale {
            self.close_zone(now, slot, fence, id, ClearReason::LeftZone);
        }
    }

    // ----- plans ----------------------------------------------------------

    fn check_plan(&mut self, now: Timestamp, slot: u32) {
        let entity = self.entity(slot);
        let (here, time) = (entity.origin, Timestamp(self.kin[slot as usize].tangent.time_ms));
        let Some(activity) = self.link(slot) else { return };
        let Some(held) = self.plans.get(&activity) else {
            return;
        };
        let plan = &held.plan;
        let outside_window = time < plan.window.start || plan.window.ended_by(time);
        let base = plan.base.as_shape();
        let here_box = bounds(&Shape::Point(here));
        let allowed_m = plan.buffer_m + self.config.deviation_tolerance_m;
        let entity_id = self.id(slot);
        let open = self.deviation_alerts.get(&entity_id).copied();
        match open {
            Some((id, activity)) => {
                // Back on plan: within the half-width proper (the tolerance
                // is the hysteresis band), and inside the window.
                let back = !outside_window
                    && held.reach.intersects(&here_box)
                    && closest_if_below(&Shape::Point(here), &base, plan.buffer_m + 1e-3).is_some();
                if back {
                    self.deviation_alerts.remove(&entity_id);
                    let track = self.entity(slot).key.clone();
                    self.clear(
                        id,
                        now,
                        AlertKind::Deviation,
                        AlertSubject::Plan { track, activity },
                        ClearReason::BackOnPlan,
                    );
                }
            }
            None => {
                let off_route = !held.reach.intersects(&here_box)
                    || closest_if_below(&Shape::Point(here), &base, allowed_m).is_none();
                let cause = if outside_window {
                    DeviationCause::OutsideWindow { window: plan.window }
                } else if off_route {
                    DeviationCause::OffRoute {
                        distance_m: closest(&Shape::Point(here), &base).distance_m,
                        allowed_m,
                    }
                } else {
                    return;
                };
                let track = self.entity(slot).key.clone();
                let id = self.open(
                    now,
                    AlertDetail::Deviation {
                        track,
                        activity,
                        position: here,
                        cause,
                    },
                );
                self.deviation_alerts.insert(entity_id, (id, activity));
            }
        }
    }

    /// Holds (or replaces) the plan of an activity that entities may link
    /// to. Entities already linked are checked against it at their next report.
    pub fn set_plan(&mut self, activity: ActivityId, plan: Plan) -> Result<(), TrackError> {
        if !self.plans.contains_key(&activity) && self.plans.len() >= self.config.max_plans {
            return Err(TrackError::PlanCapacity {
                limit: self.config.max_plans,
            });
        }
        self.plans
            .insert(activity, HeldPlan::new(plan, self.config.deviation_tolerance_m));
        Ok(())
    }

    /// Drops an activity's plan (cancelled, ended), clearing its deviations.
    pub fn remove_plan(&mut self, now: Timestamp, activity: ActivityId) {
        self.handle_tick(now);
        if self.plans.remove(&activity).is_none() {
            return;
        }
        let linked: Vec<(u32, AlertId)> = self
            .deviation_alerts
            .iter()
            .filter(|(_, (_, a))| *a == activity)
            .map(|(&entity, &(id, _))| (entity, id))
            .collect();
        for (entity, id) in linked {
            self.deviation_alerts.remove(&entity);
            let track = self.entity(self.slot_of_id[entity as usize]).key.clone();
            self.clear(
                id,
                now,
                AlertKind::Deviation,
                AlertSubject::Plan { track, activity },
                ClearReason::PlanRemoved,
            );
        }
    }

    pub fn plan(&self, activity: ActivityId) -> Option<&Plan> {
        self.plans.get(&activity).map(|h| &h.plan)
    }

    // ----- fence management -----------------------------------------------

    /// Adds (or replaces) a fence. Entities of bound parties already inside
    /// a new keep-out zone get `zone.entered` at `now`.
    pub fn add_fence(&mut self, now: Timestamp, fence: Fence) -> Result<(), TrackError> {
        self.handle_tick(now);
        fence.validate(self.config.max_fence_vertices)?;
        let replacing = self.fence_ids.contains_key(&fence.id);
        if !replacing && self.fence_ids.len() >= self.config.max_fences {
            return Err(TrackError::FenceCapacity {
                limit: self.config.max_fences,
            });
        }
        if replacing {
            self.remove_fence(now, fence.id)?;
        }
        let held = HeldFence::new(fence, self.config.zone_clear_m);
        let cells = self.fence_grid.cell_box(&held.reach);
        let slot = match self.fence_free.pop() {
            Some(slot) => slot,
            None => {
                self.fences.push(None);
                self.fence_seen.push(0);
                self.fence_reach.push(held.reach);
                (self.fences.len() - 1) as u32
            }
        };
        self.fence_grid.insert(cells, 0, slot);
        self.fence_packed = None;
        self.fence_ids.insert(held.fence.id, slot);
        let region = match &held.fence.rule {
            FenceRule::Exclusion { region, .. } | FenceRule::Protected { region } => Some(region.clone()),
            FenceRule::Demarcation { .. } => None,
        };
        let (reach, fence_id, owner) = (held.reach, held.fence.id, held.fence.owner);
        let binds = held.fence.clone();
        self.fence_reach[slot as usize] = held.reach;
        self.fences[slot as usize] = Some(held);
        let Some(region) = region else { return Ok(()) };
        // Who is already inside.
        let mut inside: Vec<u64> = Vec::new();
        let entity_cells = self.grid.cell_box(&reach);
        let (entities, id_of) = (&self.entities, &self.id_of);
        self.grid.for_each(entity_cells, &[GROUND_LAYER..=u16::MAX], |e| {
            inside.push(by_id(id_of[e as usize], e));
        });
        // In id order (slots move).
        inside.sort_unstable();
        inside.dedup();
        let mut inside: Vec<u32> = inside.into_iter().map(slot_in).collect();
        inside.retain(|&e| {
            let entity = entities[e as usize].as_ref().expect("a live slot");
            let here = entity.origin;
            binds.binds(entity.key.party)
                && reach.intersects(&bounds(&Shape::Point(here)))
                && point_in_region(here, &region)
        });
        for e in inside {
            let track = self.entity(e).key.clone();
            let position = self.entity(e).origin;
            let id = self.open(
                now,
                AlertDetail::ZoneEntered {
                    track,
                    fence: fence_id,
                    fence_owner: owner,
                    position,
                },
            );
            self.zone_alerts.insert((self.id(e), slot), id);
        }
        Ok(())
    }

    /// Removes a fence, clearing its open episodes.
    pub fn remove_fence(&mut self, now: Timestamp, id: FenceId) -> Result<(), TrackError> {
        self.handle_tick(now);
        let slot = self
            .fence_ids
            .get(&id)
            .copied()
            .ok_or(TrackError::UnknownFence(id))?;
        let open: Vec<(u32, AlertId)> = self
            .zone_alerts
            .iter()
            .filter(|((_, f), _)| *f == slot)
            .map(|(&(e, _), &alert)| (e, alert))
            .collect();
        for (entity, alert) in open {
            let entity = self.slot_of_id[entity as usize];
            self.close_zone(now, entity, slot, alert, ClearReason::FenceRemoved);
        }
        let held = self.fences[slot as usize].take().expect("a held fence");
        let cells = self.fence_grid.cell_box(&held.reach);
        self.fence_grid.remove(cells, 0, slot);
        self.fence_packed = None;
        self.fence_ids.remove(&id);
        self.fence_free.push(slot);
        Ok(())
    }

    /// Makes the held fences exactly `fences`: removes the others, adds the
    /// new, replaces the changed, keeps the unchanged (and their episodes).
    /// Every fence is validated before anything changes.
    pub fn set_fences(&mut self, now: Timestamp, fences: Vec<Fence>) -> Result<(), TrackError> {
        self.handle_tick(now);
        for fence in &fences {
            fence.validate(self.config.max_fence_vertices)?;
        }
        let wanted: BTreeMap<FenceId, Fence> = fences.into_iter().map(|f| (f.id, f)).collect();
        if wanted.len() > self.config.max_fences {
            return Err(TrackError::FenceCapacity {
                limit: self.config.max_fences,
            });
        }
        let gone: Vec<FenceId> = self
            .fence_ids
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.remove_fence(now, id)?;
        }
        for (id, fence) in wanted {
            let unchanged = self
                .fence_ids
                .get(&id)
                .and_then(|&slot| self.fences[slot as usize].as_ref())
                .is_some_and(|held| held.fence == fence);
            if !unchanged {
                self.add_fence(now, fence)?;
            }
        }
        Ok(())
    }

    pub fn fence(&self, id: FenceId) -> Option<&Fence> {
        let slot = *self.fence_ids.get(&id)?;
        self.fences[slot as usize].as_ref().map(|h| &h.fence)
    }

    pub fn fence_count(&self) -> usize {
        self.fence_ids.len()
    }

    /// Approximate bytes held by the entity state, its open pair episodes,
    /// the index and the batches' working memory (not the uid strings,
    /// fences or plans), for capacity planning.
    pub fn entity_bytes(&self) -> usize {
        let slots = self.entities.capacity() * std::mem::size_of::<Option<Entity>>()
            + self.kin.capacity() * std::mem::size_of::<Kin>();
        let seen = (self.seen.capacity()
            + self.free.capacity()
            + self.free_slots.capacity()
            + self.id_of.capacity()
            + self.slot_of_id.capacity())
            * 4;
        let wakes =
            (self.wakes.capacity() + self.horizons.capacity()) * std::mem::size_of::<Reverse<(i64, u32)>>();
        let names: usize = self
            .parties
            .values()
            .map(|p| p.by_uid.capacity() * (std::mem::size_of::<u32>() + 1))
            .sum();
        let pairs: usize = self
            .entities
            .iter()
            .flatten()
            .map(|e| e.pairs.len() * std::mem::size_of::<(u32, AlertKind, AlertId)>() + e.near.heap_bytes())
            .sum();
        // A B-tree's entry with its share of the nodes: about twice its size.
        let links = self.links.len() * 2 * std::mem::size_of::<(u32, ActivityId)>();
        slots + seen + wakes + names + pairs + links + self.grid.heap_bytes() + self.batch.heap_bytes()
    }
}

/// The smallest capacity `reserve_snug` gives, in bytes: glibc's smallest
/// block holds 24.
const SNUG_MIN_BYTES: usize = 24;

/// Room for `additional` more items in an entity's own short list (its
/// near list; the open episodes now take a block of exactly their length), growing by half rather than doubling and
/// from one small block rather than `Vec`'s first 4 or 8 items: some 75k of
/// 100k entities hold each list, most with one to three items, and every
/// block's slack is resident (the open episodes' lists took 80-byte blocks
/// for two items of 16 bytes).
fn reserve_snug<T>(list: &mut Vec<T>, additional: usize) {
    let needed = list.len() + additional;
    if needed > list.capacity() {
        let room = needed
            .max(list.len() + list.len() / 2)
            .max(SNUG_MIN_BYTES / std::mem::size_of::<T>().max(1));
        list.reserve_exact(room - list.len());
    }
}

/// `list` with `item` appended, in a block of exactly its length.
fn push_exact<T: Copy>(list: &mut Box<[T]>, item: T) {
    let mut longer = Vec::with_capacity(list.len() + 1);
    longer.extend_from_slice(list);
    longer.push(item);
    *list = longer.into_boxed_slice();
}

/// `list` without the items `gone` picks (the others in their order), in a
/// block of exactly its length; the same block when `gone` picks none.
fn remove_exact<T: Copy>(list: &mut Box<[T]>, mut gone: impl FnMut(&T) -> bool) {
    let kept = list.iter().filter(|&item| !gone(item)).count();
    if kept < list.len() {
        let mut shorter = Vec::with_capacity(kept);
        shorter.extend(list.iter().copied().filter(|item| !gone(item)));
        *list = shorter.into_boxed_slice();
    }
}

/// Room for one more item in a per-slot or per-id vector, growing by an
/// eighth (and at least 64 items) rather than doubling: at 100k entities a
/// doubling vector held room for 131,072, 31 % more than live, in records
/// of 208 + 64 bytes. (Room never written is address space, not resident
/// memory; `entity_bytes` counts it.) Growing by an eighth copies each
/// item some 8 times instead of 2 over the vector's growth, and most
/// growth is a large block's `mremap`, without copying.
fn grow_snug<T>(list: &mut Vec<T>) {
    if list.len() == list.capacity() {
        list.reserve_exact(list.len() / 8 + 64);
    }
}

/// Room for `additional` more items in a per-slot or per-id vector in one
/// step: exactly that many when `grow_snug`'s step is fewer, else that
/// step (`TrackWatch::reserve_new`).
fn reserve_grown<T>(list: &mut Vec<T>, additional: usize) {
    if list.len() + additional > list.capacity() {
        list.reserve_exact(additional.max(list.len() / 8 + 64));
    }
}

/// `reserve_grown` for a wake-up queue.
fn reserve_heap_grown<T: Ord>(queue: &mut BinaryHeap<T>, additional: usize) {
    if queue.len() + additional > queue.capacity() {
        queue.reserve_exact(additional.max(queue.len() / 8 + 64));
    }
}

/// `push` on a wake-up queue, which grows as `grow_snug`.
fn push_snug<T: Ord>(queue: &mut BinaryHeap<T>, item: T) {
    if queue.len() == queue.capacity() {
        queue.reserve_exact(queue.len() / 8 + 64);
    }
    queue.push(item);
}

/// Gives back a vector's room beyond an eighth above `longest` (the most
/// it held lately), if it holds more than twice that: room a rare large
/// batch needed is not kept for the ordinary ones, and a vector whose use
/// stays within a factor of two of its peak is never reallocated.
fn trim_snug<T>(list: &mut Vec<T>, longest: usize) {
    let keep = longest.max(list.len());
    if list.capacity() > 2 * keep + 64 {
        list.shrink_to(keep + keep / 8 + 64);
    }
}

/// `trim_snug` for a wake-up queue, against its length: a queue's entries
/// come and go steadily (one horizon per scan, popped when it comes), but
/// the first second of a fleet, every entity scanning, pushed many more.
/// Kept a quarter above its length, trimmed only past a half: the length
/// moves by some tenth between batches, and a queue trimmed closer grew
/// again (a reallocation) in the next batch.
fn trim_heap_snug<T: Ord>(queue: &mut BinaryHeap<T>) {
    let keep = queue.len();
    if queue.capacity() > keep + keep / 2 + 64 {
        queue.shrink_to(keep + keep / 4 + 64);
    }
}

/// A candidate as (entity id, slot) in one number, so that sorting
/// candidates sorts them by id.
fn by_id(id: u32, slot: u32) -> u64 {
    (u64::from(id) << 32) | u64::from(slot)
}

/// The slot of a `by_id` candidate.
fn slot_in(candidate: u64) -> u32 {
    candidate as u32
}

/// Where the geodesic segment `from`–`to` crosses `line`, if it crosses an
/// odd number of its edges (an even number returns to the same side). A
/// crossing exactly at an interior vertex is counted on the edge it starts.
fn crossings(
    from: LonLat,
    to: LonLat,
    line: &[LonLat],
    edge_boxes: &[deconflict_geodesy::GeoBounds],
    reach: &deconflict_geodesy::GeoBounds,
) -> Option<LonLat> {
    let mut count = 0usize;
    let mut first = None;
    let last_edge = line.len() - 2;
    for (k, edge) in line.windows(2).enumerate() {
        if !edge_boxes[k].intersects(reach) {
            continue;
        }
        if let Some(x) = segments_intersection(from, to, edge[0], edge[1]) {
            if k < last_edge && super::kinematics::distance_m(x, edge[1]) < 1e-3 {
                continue;
            }
            count += 1;
            first.get_or_insert(x);
        }
    }
    (count % 2 == 1).then_some(first).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lists_grow_by_half_from_one_small_block() {
        let mut pairs: Vec<(u32, AlertKind, AlertId)> = Vec::new();
        let mut capacities = Vec::new();
        for k in 0..10 {
            reserve_snug(&mut pairs, 1);
            pairs.push((k, AlertKind::Cpa, AlertId(u64::from(k))));
            capacities.push(pairs.capacity());
        }
        assert_eq!(capacities, [1, 2, 3, 4, 6, 6, 9, 9, 9, 13]);
        let mut near: Vec<u32> = Vec::new();
        reserve_snug(&mut near, 0);
        assert_eq!(near.capacity(), 0, "an empty list takes no block");
        reserve_snug(&mut near, 1);
        assert_eq!(near.capacity(), 6);
        near.extend([1, 2, 3, 4, 5, 6]);
        reserve_snug(&mut near, 10);
        assert_eq!(near.capacity(), 16);
    }

    #[test]
    fn links_live_beside_the_records_and_leave_with_their_entity() {
        let mut watch = TrackWatch::new(TrackConfig::default()).unwrap();
        let report = |uid, time_ms, activity| PositionReport {
            party: PartyId(1),
            uid,
            time: Timestamp(time_ms),
            position: LonLat::new(41.4, 36.9),
            alt_m: None,
            speed_mps: Some(0.0),
            course_deg: None,
            stale: None,
            activity,
        };
        watch
            .handle_report(Timestamp(0), &report("a", 0, Some(ActivityId(7))))
            .unwrap();
        watch.handle_report(Timestamp(0), &report("b", 0, None)).unwrap();
        assert_eq!(
            watch.track(PartyId(1), "a").unwrap().activity,
            Some(ActivityId(7))
        );
        assert_eq!(watch.track(PartyId(1), "b").unwrap().activity, None);
        watch
            .handle_report(Timestamp(1_000), &report("a", 1_000, Some(ActivityId(8))))
            .unwrap();
        assert_eq!(
            watch.track(PartyId(1), "a").unwrap().activity,
            Some(ActivityId(8))
        );
        watch
            .handle_report(Timestamp(2_000), &report("a", 2_000, None))
            .unwrap();
        assert_eq!(watch.track(PartyId(1), "a").unwrap().activity, None);
        assert!(watch.links.is_empty());
        watch
            .handle_report(Timestamp(3_000), &report("a", 3_000, Some(ActivityId(9))))
            .unwrap();
        // Both go stale; a newcomer takes a freed id and no link with it.
        watch.handle_tick(Timestamp(200_000));
        assert!(watch.is_empty());
        assert!(watch.links.is_empty(), "an expired entity's link is dropped");
        watch
            .handle_report(Timestamp(200_000), &report("c", 200_000, None))
            .unwrap();
        assert_eq!(watch.track(PartyId(1), "c").unwrap().activity, None);
        assert_eq!(watch.tracks().filter(|t| t.activity.is_some()).count(), 0);
    }

    #[test]
    fn uid_tables_find_every_entity_through_growth_expiry_and_relayout() {
        // Two parties with the same uids (same hashes, different tables),
        // enough of them that each table grows several times (its ids
        // rehashed through their records) and `relayout` moves slots.
        let mut watch = TrackWatch::new(TrackConfig::default()).unwrap();
        let uids: Vec<String> = (0..3_000).map(|k| format!("unit-{k}")).collect();
        fn expected_lon(party: u64, k: usize) -> f64 {
            // Spread in space, so that the slots leave insertion order.
            30.0 + ((k * 7_919) % 3_000) as f64 * 0.003 + party as f64 * 0.0001
        }
        fn report(party: u64, k: usize, uid: &str, time_ms: i64) -> PositionReport<'_> {
            PositionReport {
                party: PartyId(party),
                uid,
                time: Timestamp(time_ms),
                position: LonLat::new(expected_lon(party, k), 36.0),
                alt_m: None,
                speed_mps: Some(0.0),
                course_deg: None,
                stale: Some(Timestamp(
                    time_ms + if k.is_multiple_of(3) { 10_000 } else { 1_000_000 },
                )),
                activity: None,
            }
        }
        for (k, uid) in uids.iter().enumerate() {
            for party in [1, 2] {
                watch
                    .handle_report(Timestamp(0), &report(party, k, uid, 0))
                    .unwrap();
            }
        }
        let check = |watch: &TrackWatch, live: &dyn Fn(usize) -> bool| {
            for (k, uid) in uids.iter().enumerate() {
                for party in [1, 2] {
                    match watch.track(PartyId(party), uid) {
                        Some(view) => {
                            assert!(live(k), "{party}/{uid} should have left");
                            assert_eq!(view.key.uid.as_ref(), uid.as_str());
                            assert_eq!(view.key.party, PartyId(party));
                            assert!((view.position.lon_deg - expected_lon(party, k)).abs() < 1e-9);
                        }
                        None => assert!(!live(k), "{party}/{uid} not found"),
                    }
                }
            }
            assert_eq!(watch.track(PartyId(3), "unit-1").map(|v| v.time), None);
            assert_eq!(watch.track(PartyId(1), "unit-3000").map(|v| v.time), None);
        };
        check(&watch, &|_| true);
        assert_eq!(watch.party_len(PartyId(1)), 3_000);
        // A third go stale and leave their tables.
        watch.handle_tick(Timestamp(20_000));
        check(&watch, &|k| !k.is_multiple_of(3));
        assert_eq!(watch.party_len(PartyId(2)), 2_000);
        // They come back (new ids from the free list); the others report again.
        for (k, uid) in uids.iter().enumerate() {
            for party in [1, 2] {
                let outcome = watch.handle_report(Timestamp(20_000), &report(party, k, uid, 20_000));
                assert_eq!(outcome.unwrap(), ReportOutcome::Applied);
            }
        }
        check(&watch, &|_| true);
        assert_eq!(watch.party_len(PartyId(1)) + watch.party_len(PartyId(2)), 6_000);
        assert_eq!(watch.len(), 6_000);
    }

    #[test]
    fn per_slot_vectors_and_queues_grow_by_an_eighth() {
        let mut slots: Vec<u64> = Vec::new();
        let mut queue: BinaryHeap<Reverse<(i64, u32)>> = BinaryHeap::new();
        for k in 0..100_000u32 {
            grow_snug(&mut slots);
            slots.push(u64::from(k));
            push_snug(&mut queue, Reverse((i64::from(k % 977), k)));
            for capacity in [slots.capacity(), queue.capacity()] {
                assert!(capacity >= slots.len());
                assert!(capacity <= slots.len() + slots.len() / 8 + 64);
            }
        }
        // Still a heap: the earliest first.
        assert_eq!(queue.peek(), Some(&Reverse((0, 0))));
    }

    #[test]
    fn exact_lists_keep_vec_order_and_no_slack() {
        let mut exact: Box<[(u32, AlertKind, AlertId)]> = Box::default();
        let mut model: Vec<(u32, AlertKind, AlertId)> = Vec::new();
        let mut x = 7u32;
        for step in 0..400u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let other = (x >> 16) % 5;
            let kind = if x & 1 == 0 {
                AlertKind::Cpa
            } else {
                AlertKind::Proximity
            };
            if x.is_multiple_of(3) {
                remove_exact(&mut exact, |&(o, k, _)| (o, k) == (other, kind));
                model.retain(|&(o, k, _)| (o, k) != (other, kind));
            } else {
                push_exact(&mut exact, (other, kind, AlertId(u64::from(step))));
                model.push((other, kind, AlertId(u64::from(step))));
            }
            assert_eq!(&exact[..], &model[..], "step {step}");
        }
        assert!(!exact.is_empty(), "the walk ends with a list to compare");
    }

    #[test]
    fn a_filed_box_gives_back_the_cells_it_took() {
        assert_eq!(FiledBox::NONE.get(), None);
        let grid = Grid::new(100.0);
        for (south, north, west, east) in [
            (-90.0, 90.0, -180.0, 180.0),
            (36.0, 36.5, 179.5, -179.5),
            (-89.99, -89.0, 170.0, -170.0),
            (0.0, 0.0, 0.0, 0.0),
            (89.0, 90.0, -180.0, -179.99),
        ] {
            let cells = grid.cell_box(&deconflict_geodesy::GeoBounds {
                south_deg: south,
                north_deg: north,
                west_deg: west,
                east_deg: east,
            });
            assert_eq!(FiledBox::new(cells).get(), Some(cells), "{cells:?}");
        }
        let wrapping = CellBox {
            south: 0,
            north: 199_999,
            west: 399_999,
            east: 3,
            wraps: true,
        };
        assert_eq!(FiledBox::new(wrapping).get(), Some(wrapping));
        assert_eq!(
            FiledBox::new(CellBox {
                wraps: false,
                ..wrapping
            })
            .get()
            .map(|c| c.wraps),
            Some(false)
        );
    }

    #[test]
    fn records_stay_within_their_budget() {
        // The entity record has no padding left; `Kin` is one cache line.
        assert_eq!(std::mem::size_of::<Option<Entity>>(), 184);
        assert_eq!(std::mem::size_of::<Kin>(), 64);
    }
}
