//! The engine: a state machine that keeps the active activities and the set
//! of conflicts among them.
//!
//! Inputs are `handle_*(now, …)` calls, outputs are return values and events
//! drained with [`Engine::poll_event`]. There is no IO and no clock: the
//! driver passes `now` and must drain events after each call.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::activity::{Activity, ActivityId, ActivitySpec, SeparationDefaults};
use crate::conflict::{evaluate, may_conflict, Conflict, ConflictKey, Finding};
use crate::index::SpatioTemporalIndex;
use crate::time::Timestamp;
use crate::validate::{Limits, ValidationError};

/// A hash map whose iteration order depends only on what was inserted, so
/// that a seeded simulation replays identically (std's default hasher is
/// seeded at random per process).
type StableHashMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A fixed multiplicative hasher for the engine's integer ids (the
/// `FxHash` scheme): a check looks up every candidate by id, and SipHash
/// cost more than the rest of a lookup. Ids are numbered by the driver, not
/// by the parties, so there is no adversary to flood one bucket.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Everything the engine can be told to do differently.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub limits: Limits,
    pub separation: SeparationDefaults,
    /// Activities held at once; a notification beyond it is refused.
    pub max_activities: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            separation: SeparationDefaults::default(),
            max_activities: 2_000_000,
        }
    }
}

/// Why a conflict stopped being one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// One of the two activities was cancelled.
    Cancelled { activity: ActivityId },
    /// An update moved one of them clear of the other.
    NoLongerConflicting,
    /// One of the two activities ended.
    Expired { activity: ActivityId },
}

/// What the engine tells the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ConflictOpened(Conflict),
    /// The pair still conflicts but where, when or how close changed.
    ConflictUpdated(Conflict),
    ConflictResolved {
        conflict: Conflict,
        resolution: Resolution,
    },
    /// The activity's window ended and it left the engine.
    ActivityExpired {
        activity: ActivityId,
        at: Timestamp,
    },
}

/// A refused command. Nothing changed when one is returned, except that what
/// had ended by `now` may have expired.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("activity {0:?} already exists")]
    DuplicateActivity(ActivityId),
    #[error("activity {0:?} does not exist")]
    UnknownActivity(ActivityId),
    #[error("an update cannot change the party of activity {0:?}")]
    PartyChanged(ActivityId),
    #[error("the engine holds its limit of {limit} activities")]
    Capacity { limit: usize },
}

/// A place in the engine's table of activities: what the index files, so
/// that a candidate is found without a hash probe.
type Slot = u32;

/// An activity in its slot, with its id.
///
/// Aligned to a cache line and in declaration order, with the id first:
/// everything a check reads of a candidate (its id, the fields
/// `may_conflict` tests, the footprint, the head of the prepared shape up
/// to its probes and rings, see [`Activity`]) is the slot's first 256
/// bytes, four lines. Unaligned (424 bytes) with the id last, it was five
/// to six lines and one more for the id.
#[derive(Debug)]
#[repr(C, align(64))]
struct Held {
    id: ActivityId,
    activity: Activity,
}

/// The deconfliction engine. See the module documentation.
#[derive(Debug, Default)]
pub struct Engine {
    config: EngineConfig,
    /// The activities held, each in a slot; `None` marks a free slot.
    /// [`Engine::from_activities`] lays them out in the index's packed
    /// order, so that the sweep, which meets pairs leaf after leaf, reads
    /// them nearly in sequence.
    slots: Vec<Option<Held>>,
    /// Free slots, reused before the table grows.
    free: Vec<Slot>,
    slot_of: StableHashMap<ActivityId, Slot>,
    index: SpatioTemporalIndex<Slot>,
    conflicts: BTreeMap<ConflictKey, Conflict>,
    /// For each activity, the activities it conflicts with.
    partners: StableHashMap<ActivityId, BTreeSet<ActivityId>>,
    /// Window ends, soonest first; stale entries (an updated or cancelled
    /// activity) are skipped when popped.
    expiries: BinaryHeap<Reverse<(Timestamp, ActivityId)>>,
    events: VecDeque<Event>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// An engine holding `activities`, with their conflicts found by one
    /// sweep: how a driver restores its state at start, far faster than
    /// notifying one by one. Emits no events (nothing changed).
    pub fn from_activities(
        config: EngineConfig,
        activities: impl IntoIterator<Item = (ActivityId, Activity)>,
    ) -> Result<Self, EngineError> {
        let mut given: Vec<Option<Held>> = Vec::new();
        let mut seen: StableHashMap<ActivityId, ()> = StableHashMap::default();
        for (id, activity) in activities {
            if seen.insert(id, ()).is_some() {
                return Err(EngineError::DuplicateActivity(id));
            }
            given.push(Some(Held { id, activity }));
        }
        drop(seen);
        if given.len() > config.max_activities {
            return Err(EngineError::Capacity {
                limit: config.max_activities,
            });
        }
        // Packed once to learn the tree's order, then the slots are laid
        // out in that order and packed again under their final numbers.
        let order = SpatioTemporalIndex::bulk_load(given.iter().enumerate().map(|(i, held)| {
            let a = &held.as_ref().expect("every given slot is full").activity;
            (slot_number(i), &a.reach, &a.window)
        }))
        .packed_order();
        let mut slots = Vec::with_capacity(given.len());
        for i in order {
            slots.push(given[i as usize].take());
        }
        let slot_of: StableHashMap<ActivityId, Slot> = slots
            .iter()
            .enumerate()
            .filter_map(|(slot, held)| held.as_ref().map(|h| (h.id, slot_number(slot))))
            .collect();
        let index = SpatioTemporalIndex::bulk_load(slots.iter().enumerate().filter_map(|(slot, held)| {
            held.as_ref()
                .map(|h| (slot_number(slot), &h.activity.reach, &h.activity.window))
        }));
        let expiries = slots
            .iter()
            .flatten()
            .filter_map(|h| h.activity.window.end.map(|end| Reverse((end, h.id))))
            .collect();
        let mut engine = Self {
            config,
            slots,
            slot_of,
            index,
            expiries,
            ..Self::default()
        };
        for conflict in engine.sweep() {
            let [a, b] = conflict.key.activities();
            engine.partners.entry(a).or_default().insert(b);
            engine.partners.entry(b).or_default().insert(a);
            engine.conflicts.insert(conflict.key, conflict);
        }
        Ok(engine)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Validates a notification under this engine's limits and defaults.
    pub fn validate(&self, spec: &ActivitySpec) -> Result<Activity, ValidationError> {
        Activity::validate(spec, &self.config.limits, &self.config.separation)
    }

    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    pub fn activity(&self, id: ActivityId) -> Option<&Activity> {
        let &slot = self.slot_of.get(&id)?;
        self.slots[slot as usize].as_ref().map(|held| &held.activity)
    }

    /// Every activity held, in no particular (but reproducible) order.
    pub fn activities(&self) -> impl Iterator<Item = (ActivityId, &Activity)> {
        self.slots.iter().flatten().map(|held| (held.id, &held.activity))
    }

    /// The activity in `slot`, which the index files (so it is held).
    fn held(&self, slot: Slot) -> &Held {
        self.slots[slot as usize]
            .as_ref()
            .expect("the index files only held slots")
    }

    /// Every open conflict, ordered by key.
    pub fn conflicts(&self) -> impl Iterator<Item = &Conflict> {
        self.conflicts.values()
    }

    pub fn conflict(&self, key: ConflictKey) -> Option<&Conflict> {
        self.conflicts.get(&key)
    }

    /// The open conflicts of one activity, ordered by the other's id.
    pub fn conflicts_of(&self, id: ActivityId) -> impl Iterator<Item = &Conflict> {
        self.partners
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(move |&other| self.conflicts.get(&ConflictKey::new(id, other)))
    }

    /// The conflicts `activity` would have with what the engine holds at
    /// `now`, ordered by the other activity's id. Changes nothing.
    ///
    /// `as_id` is the id the activity has or would have: its own current
    /// version is left out (checking an update), and pairs are evaluated
    /// lower id first, as the sweep does, so that a conflict's witness point
    /// does not depend on how it was found. Without an id the activity counts
    /// as the newest.
    pub fn check(
        &self,
        now: Timestamp,
        activity: &Activity,
        as_id: Option<ActivityId>,
    ) -> Vec<(ActivityId, Finding)> {
        // The candidates' list is this thread's, reused from check to check
        // (and filtered in place): grown 4 → 8 → 16 by each check and then
        // copied into a second list of (id, activity), the lists were ~600
        // instructions of allocator per check.
        let mut candidates = CANDIDATES.take();
        self.index
            .candidates(&activity.reach, &activity.window, &mut candidates);
        // First every lookup, then every evaluation: the lookups and the
        // first reads of each candidate's geometry are independent of one
        // another, so their cache misses overlap instead of coming one
        // candidate at a time (100k activities are far beyond the caches).
        candidates.retain(|&slot| {
            let held = self.held(slot);
            // Expiry is lazy (it waits for a tick); an activity whose
            // window has ended conflicts with nothing.
            Some(held.id) != as_id
                && !held.activity.window.ended_by(now)
                && may_conflict(activity, &held.activity)
        });
        // With the footprint's buffer, whose line (the footprint's kind)
        // nothing before `evaluate` reads: one miss per candidate, taken
        // pair after pair (counted with a simulated cache).
        std::hint::black_box(
            candidates
                .iter()
                .map(|&slot| {
                    let held = &self.held(slot).activity;
                    held.prepared.touch() + held.footprint.buffer_m()
                })
                .sum::<f64>(),
        );
        // At most one finding per candidate: one allocation, none when
        // no candidate is left.
        let mut found: Vec<(ActivityId, Finding)> = Vec::with_capacity(candidates.len());
        for &slot in &candidates {
            let Held {
                id: other,
                activity: held,
            } = self.held(slot);
            let finding = match as_id {
                Some(id) if id < *other => evaluate(activity, held),
                _ => evaluate(held, activity),
            };
            if let Some(finding) = finding {
                found.push((*other, finding));
            }
        }
        CANDIDATES.set(candidates);
        // The index answers in slot order.
        found.sort_unstable_by_key(|&(other, _)| other);
        found
    }

    /// Adds a notified activity and opens its conflicts. Returns the keys of
    /// the conflicts opened.
    pub fn handle_notify(
        &mut self,
        now: Timestamp,
        id: ActivityId,
        activity: Activity,
    ) -> Result<Vec<ConflictKey>, EngineError> {
        if self.slot_of.contains_key(&id) {
            return Err(EngineError::DuplicateActivity(id));
        }
        if self.len() >= self.config.max_activities {
            return Err(EngineError::Capacity {
                limit: self.config.max_activities,
            });
        }
        // What ended before `now` leaves first, so that the conflict set
        // always describes the engine at `now` (and equals a sweep).
        self.handle_tick(now);
        let findings = self.check(now, &activity, Some(id));
        self.store(id, activity);
        let mut opened = Vec::with_capacity(findings.len());
        for (other, finding) in findings {
            let conflict = self.conflict_for(id, other, finding);
            opened.push(conflict.key);
            self.open(conflict);
        }
        Ok(opened)
    }

    /// Replaces an activity and re-evaluates its conflicts: new ones open,
    /// changed ones update, vanished ones resolve.
    pub fn handle_update(
        &mut self,
        now: Timestamp,
        id: ActivityId,
        activity: Activity,
    ) -> Result<(), EngineError> {
        let Some(old) = self.activity(id) else {
            return Err(EngineError::UnknownActivity(id));
        };
        if old.party != activity.party {
            return Err(EngineError::PartyChanged(id));
        }
        self.handle_tick(now);
        if !self.slot_of.contains_key(&id) {
            // It ended before `now`: an update cannot bring it back.
            return Err(EngineError::UnknownActivity(id));
        }
        let findings: BTreeMap<ActivityId, Finding> =
            self.check(now, &activity, Some(id)).into_iter().collect();
        self.store(id, activity);

        let previous: Vec<ActivityId> = self.partners.get(&id).into_iter().flatten().copied().collect();
        for other in previous {
            if !findings.contains_key(&other) {
                self.resolve(ConflictKey::new(id, other), Resolution::NoLongerConflicting);
            }
        }
        for (other, finding) in findings {
            let conflict = self.conflict_for(id, other, finding);
            match self.conflicts.get_mut(&conflict.key) {
                Some(existing) if *existing == conflict => {}
                Some(existing) => {
                    *existing = conflict;
                    self.events.push_back(Event::ConflictUpdated(conflict));
                }
                None => self.open(conflict),
            }
        }
        Ok(())
    }

    /// Removes an activity and resolves its conflicts. Returns what it was.
    pub fn handle_cancel(&mut self, now: Timestamp, id: ActivityId) -> Result<Activity, EngineError> {
        if !self.slot_of.contains_key(&id) {
            return Err(EngineError::UnknownActivity(id));
        }
        self.handle_tick(now);
        let activity = self.take(id).ok_or(EngineError::UnknownActivity(id))?;
        self.resolve_all_of(id, Resolution::Cancelled { activity: id });
        Ok(activity)
    }

    /// Lets time pass: every activity whose window has ended by `now` leaves
    /// the engine, and its conflicts resolve.
    pub fn handle_tick(&mut self, now: Timestamp) {
        while let Some(&Reverse((end, id))) = self.expiries.peek() {
            if end > now {
                break;
            }
            self.expiries.pop();
            let current = self.activity(id).and_then(|a| a.window.end);
            if current != Some(end) {
                continue; // cancelled or moved since this entry was pushed
            }
            self.take(id);
            self.resolve_all_of(id, Resolution::Expired { activity: id });
            self.events.push_back(Event::ActivityExpired {
                activity: id,
                at: end,
            });
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Every conflict among the held activities, found from scratch, ordered
    /// by key. Used to rebuild and to cross-check the incremental set.
    pub fn sweep(&self) -> Vec<Conflict> {
        sweep_with(&self.index, |slot| {
            let held = self.held(slot);
            (held.id, &held.activity)
        })
    }

    /// Files `activity` as `id`, in the slot it has or a free one.
    fn store(&mut self, id: ActivityId, activity: Activity) {
        let slot = match self.slot_of.get(&id) {
            Some(&slot) => slot,
            None => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    slot_number(self.slots.len() - 1)
                });
                self.slot_of.insert(id, slot);
                slot
            }
        };
        self.index.insert(slot, &activity.reach, &activity.window);
        if let Some(end) = activity.window.end {
            self.expiries.push(Reverse((end, id)));
        }
        self.slots[slot as usize] = Some(Held { id, activity });
    }

    /// Removes `id` from the table and the index; its slot becomes free.
    fn take(&mut self, id: ActivityId) -> Option<Activity> {
        let slot = self.slot_of.remove(&id)?;
        self.index.remove(slot);
        self.free.push(slot);
        self.slots[slot as usize].take().map(|held| held.activity)
    }

    fn party_of(&self, id: ActivityId) -> crate::activity::PartyId {
        self.activity(id).expect("a conflict's activities are held").party
    }

    fn conflict_for(&self, id: ActivityId, other: ActivityId, finding: Finding) -> Conflict {
        Conflict::new(id, self.party_of(id), other, self.party_of(other), finding)
    }

    fn open(&mut self, conflict: Conflict) {
        let [a, b] = conflict.key.activities();
        self.partners.entry(a).or_default().insert(b);
        self.partners.entry(b).or_default().insert(a);
        self.conflicts.insert(conflict.key, conflict);
        self.events.push_back(Event::ConflictOpened(conflict));
    }

    fn resolve(&mut self, key: ConflictKey, resolution: Resolution) {
        let Some(conflict) = self.conflicts.remove(&key) else {
            return;
        };
        let [a, b] = key.activities();
        for (this, other) in [(a, b), (b, a)] {
            if let Some(set) = self.partners.get_mut(&this) {
                set.remove(&other);
                if set.is_empty() {
                    self.partners.remove(&this);
                }
            }
        }
        self.events
            .push_back(Event::ConflictResolved { conflict, resolution });
    }

    fn resolve_all_of(&mut self, id: ActivityId, resolution: Resolution) {
        let others: Vec<ActivityId> = self.partners.get(&id).into_iter().flatten().copied().collect();
        for other in others {
            self.resolve(ConflictKey::new(id, other), resolution);
        }
    }
}

thread_local! {
    /// [`Engine::check`]'s list of candidate slots, kept between checks so
    /// that a check allocates only the list it returns. Taken out for the
    /// check and put back after, so a check that panics leaves an empty
    /// list, never a borrowed one.
    static CANDIDATES: std::cell::Cell<Vec<Slot>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Pairs whose data the sweep reads ahead of evaluating them.
const SWEEP_BATCH: usize = 16;

/// A slot's number: the table never holds more than `max_activities`,
/// which a configuration keeps far below 2^32 (the index's own limit).
fn slot_number(slot: usize) -> Slot {
    Slot::try_from(slot).expect("fewer than 2^32 activities")
}

/// All conflicts among the activities filed in `index`, each pair once,
/// ordered by key. `activity` tells the id and activity filed under a key.
///
/// Every pair that conflicts has intersecting reaches, so it is among the
/// index's meeting pairs; each pair is evaluated lower id first, as
/// [`Engine::check`] does.
pub fn sweep_with<'a, K: Copy + Eq + std::hash::Hash + Ord + std::fmt::Debug>(
    index: &SpatioTemporalIndex<K>,
    activity: impl Fn(K) -> (ActivityId, &'a Activity),
) -> Vec<Conflict> {
    type Pair<'a> = (ActivityId, &'a Activity, ActivityId, &'a Activity);
    let mut conflicts = Vec::new();
    // As in `Engine::check`: all first reads of a batch before its
    // evaluations, so that their cache misses overlap.
    let evaluate_batch = |batch: &mut Vec<Pair<'a>>, conflicts: &mut Vec<Conflict>| {
        std::hint::black_box(
            batch
                .iter()
                .map(|(_, this, _, that)| this.prepared.touch() + that.prepared.touch())
                .sum::<f64>(),
        );
        for &(low, this, high, that) in batch.iter() {
            if let Some(finding) = evaluate(this, that) {
                conflicts.push(Conflict::new(low, this.party, high, that.party, finding));
            }
        }
        batch.clear();
    };
    let mut batch: Vec<Pair<'a>> = Vec::with_capacity(SWEEP_BATCH);
    // Pairs are evaluated as the join meets them (spatially local, see
    // `SpatioTemporalIndex::pairs`), each key once.
    index.for_each_pair(|x, y| {
        let ((x, this), (y, that)) = (activity(x), activity(y));
        let pair = if x < y {
            (x, this, y, that)
        } else {
            (y, that, x, this)
        };
        if may_conflict(pair.1, pair.3) {
            batch.push(pair);
            if batch.len() == SWEEP_BATCH {
                evaluate_batch(&mut batch, &mut conflicts);
            }
        }
    });
    evaluate_batch(&mut batch, &mut conflicts);
    // Sorted by key through a list of (key, position): a conflict is 88
    // bytes, and moving whole conflicts was most of the sort's time.
    let mut order: Vec<(ConflictKey, u32)> = conflicts
        .iter()
        .enumerate()
        .map(|(i, conflict)| (conflict.key, u32::try_from(i).expect("fewer than 2^32 conflicts")))
        .collect();
    order.sort_unstable();
    debug_assert!(order.windows(2).all(|w| w[0].0 < w[1].0));
    order.into_iter().map(|(_, i)| conflicts[i as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deconflict_geodesy::Prepared;

    /// What a check reads of a candidate's slot (see [`Held`]) is its first
    /// four cache lines, the slots aligned to lines.
    #[test]
    fn a_candidate_is_four_lines_of_its_slot() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<Option<Held>>(), 64);
        assert_eq!(offset_of!(Held, id), 0);
        let head = offset_of!(Held, activity) + offset_of!(Activity, prepared) + Prepared::HEAD_BYTES;
        assert_eq!(head, 256);
        // The fields before the prepared shape are those a check reads.
        assert!(offset_of!(Activity, footprint) < offset_of!(Activity, prepared));
        assert!(offset_of!(Activity, kind) > offset_of!(Activity, prepared));
        assert!(offset_of!(Activity, reach) > offset_of!(Activity, prepared));
        assert!(size_of::<Option<Held>>() == size_of::<Held>());
    }
}
