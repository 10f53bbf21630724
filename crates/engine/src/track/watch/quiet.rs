//! The quiet horizon: temporal coherence of the pair search, with exactly
//! the alerts of a search on every report.
//!
//! Every report used to look up its candidates in the index (some 47 at
//! W3's density) and filter each, although almost every entity keeps its
//! course from one second to the next and a pair far apart cannot come
//! within reach for many seconds. Here an entity searches its neighbours
//! in full (a *scan*) only when it is new, when its model strays from the
//! one it last scanned with (its *plan*), or when its *horizon* (at most
//! [`TrackConfig::quiet_horizon_ms`] later) comes; in between, a report
//! checks only its *near* list (the neighbours the last scans of the pair
//! could not rule out) and its open episodes.
//!
//! ## The bound
//!
//! A plan is the entity's tangent line `P` at its scan (see
//! `kinematics.rs`), a horizon `V` and a radius `ρ`. A later model `G` of
//! the entity (an exact geodesic, with tangent `T`) is *on plan* when, for
//! every instant `s` in `[now, V + look-ahead]`, `|G(s) − P(s)| ≤ ρ`
//! (Earth-centred distance). It is checked as
//! `max(|T − P| at both ends) + E_T ≤ ρ`, where `E_T` is `T`'s largest
//! tangent error over the interval (`worst_tangent_error_m`: the geodesic
//! leaves its tangent by at most `κ s²/2`): `T − P` is affine in time, so
//! its norm is convex and largest at an end; and `|G − P| ≤ |G − T| + |T − P|`.
//! No curvature of either geodesic enters beyond `E_T`. The party, the
//! height and `airborne` must be unchanged too (they decide the pair rule).
//! A scan's own model is on its plan: `ρ = E_P + quiet_tolerance_m`.
//!
//! A pair `(a, b)` without an open episode can change only by *opening*
//! one, which takes an exact distance below the rule's `limit_m` at some
//! instant of `[t, t + look-ahead]` (`check_pair`'s proximity and its
//! closest approach both evaluate the models at such instants), or the
//! rule's vertical test, which depends only on what on-plan keeps. So a
//! pair is *far* when the vertical test fails or when the plans' straight
//! models stay `limit_m + ρ_a + ρ_b + QUIET_MARGIN_M` apart over
//! `[scan, min(V_a, V_b) + look-ahead]`: then the exact (chord, hence
//! geodesic) distance of any on-plan models stays above `limit_m` until
//! either horizon, and `check_pair` on the pair would return without effect.
//!
//! ## Completeness of a scan
//!
//! The scan of `x` looks up its candidates in the index with its geodesic
//! path's box over `[now, V_x + look-ahead]` grown by
//! `W = geodesic_at_most(max_open + 2ρ_x + 2ρ_max + margin)` (`ρ_max` at
//! least every live plan's radius). Every other entity `y` is filed under a
//! box that holds its current model's path from its last filing `f_y` to
//! `f_y + refile_every + look-ahead`, and its horizon `V_y` is at most
//! `f_y + refile_every` (a horizon never passes the entity's next refiling,
//! and `quiet_horizon_ms ≤ refile_every_ms`). So a `y` the scan does not
//! find is more than `W` (geodesic) from `x` at every instant of the
//! pair's window; the chord is then at least `max_open + 2ρ_x + 2ρ_max +
//! margin` (the chord bounds the geodesic from above through
//! `geodesic_at_most`, which increases), and any on-plan models of the two
//! are within `ρ` of the plans, which are within `ρ` of the models the
//! scan saw: still farther than `max_open`. The layers are the pair query's
//! (the vertical reach; heights do not change on plan).
//!
//! ## The invariant
//!
//! For every pair of different parties without an open episode whose
//! `check_pair` could have an effect at a report of either, the pair is on
//! both near lists. Proof: near lists are symmetric and change only at a
//! scan of one of the two, which replaces the scanner's list whole. Take the
//! later of the two entities' last scans: it used both current plans (plans
//! change only at scans) and either found the pair (near: listed; far:
//! without effect until `min(V_a, V_b)`) or did not (far, as above). Before
//! either horizon passes, its entity scans again: a report at or after
//! `V − horizon/4` scans, and `handle_tick` rescans an entity whose horizon
//! came without a report (before any report at that `now` is taken).
//! Entities that arrive scan; entities that expire leave every list;
//! turning, changing height, `airborne` (a link to a flight) or speed beyond
//! the tolerance puts a report off plan, and it scans. A `now` before the
//! latest one a handler was given (a clock stepped back) puts every report
//! off plan: windows start at or after the scans only with a clock that
//! does not go back.
//!
//! A quiet report then calls `check_pair` on its near list members that the
//! index returns for its query (the same cell and layer test) and on its
//! open episodes, in id order: every call the search would make with an
//! effect, plus calls the search makes too; so the alerts are the same.
//! `tests/tracks_quiet.rs` compares with a watch without horizon (0).

use super::*;
use crate::track::kinematics::{straight_closest, worst_tangent_error_m};

/// Metres of slack on the far test and on the scan's reach: far above the
/// rounding of Earth-sized coordinates and of geographiclib's distances.
const QUIET_MARGIN_M: f64 = 1.0;

/// An entity's plan: the model its last scan used (see the module).
#[derive(Debug, Clone, Copy)]
pub(super) struct Quiet {
    pub(super) tangent: Tangent,
    /// The horizon; `i64::MAX` without a plan (no horizon configured).
    pub(super) until_ms: i64,
    /// Every on-plan model stays this close to `tangent` until the horizon
    /// plus the look-ahead.
    pub(super) radius_m: f64,
}

/// Ids a near list holds in the record itself.
const NEAR_INLINE: usize = 3;

/// An entity's near list (ids, see the module): up to three in the record
/// itself, more in a block of their own. 16 bytes in the record against a
/// `Vec`'s 24, and no block at all for the lists of one to three ids (at
/// W3's 100k entities, 66k of the 73k non-empty lists; each block is 32
/// bytes resident). The order is a `Vec`'s under the same calls (`push`
/// appends, `swap_remove` moves the last into the gap).
#[derive(Debug, Clone)]
pub(super) enum NearList {
    Inline {
        len: u8,
        ids: [u32; NEAR_INLINE],
    },
    // Boxed on purpose: a `Vec` here would make every list 24 bytes or
    // more; the extra block is paid only by the few longer lists.
    #[allow(clippy::box_collection)]
    Heap(Box<Vec<u32>>),
}

impl Default for NearList {
    fn default() -> Self {
        NearList::Inline {
            len: 0,
            ids: [0; NEAR_INLINE],
        }
    }
}

impl NearList {
    pub(super) fn as_slice(&self) -> &[u32] {
        match self {
            NearList::Inline { len, ids } => &ids[..usize::from(*len)],
            NearList::Heap(ids) => ids,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub(super) fn push(&mut self, id: u32) {
        match self {
            NearList::Inline { len, ids } if usize::from(*len) < NEAR_INLINE => {
                ids[usize::from(*len)] = id;
                *len += 1;
            }
            NearList::Inline { ids, .. } => {
                let mut list = Vec::with_capacity(NEAR_INLINE * 2);
                list.extend_from_slice(ids);
                list.push(id);
                *self = NearList::Heap(Box::new(list));
            }
            NearList::Heap(list) => {
                reserve_snug(list, 1);
                list.push(id);
            }
        }
    }

    /// Takes the first `id` off the list, if it is on it.
    pub(super) fn remove(&mut self, id: u32) {
        let Some(at) = self.as_slice().iter().position(|&x| x == id) else {
            return;
        };
        match self {
            NearList::Inline { len, ids } => {
                *len -= 1;
                ids[at] = ids[usize::from(*len)];
            }
            NearList::Heap(list) => {
                list.swap_remove(at);
            }
        }
    }

    /// The list holding `ids`, in their order.
    pub(super) fn set(&mut self, ids: &[u32]) {
        match self {
            NearList::Heap(list) if ids.len() > NEAR_INLINE => {
                list.clear();
                reserve_snug(list, ids.len());
                list.extend_from_slice(ids);
            }
            _ if ids.len() > NEAR_INLINE => {
                let mut list = Vec::new();
                reserve_snug(&mut list, ids.len());
                list.extend_from_slice(ids);
                *self = NearList::Heap(Box::new(list));
            }
            _ => {
                let mut inline = [0; NEAR_INLINE];
                inline[..ids.len()].copy_from_slice(ids);
                *self = NearList::Inline {
                    len: ids.len() as u8,
                    ids: inline,
                };
            }
        }
    }

    /// Bytes of its own block, if any.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            NearList::Inline { .. } => 0,
            NearList::Heap(list) => std::mem::size_of::<Vec<u32>>() + list.capacity() * 4,
        }
    }
}

impl Quiet {
    pub(super) const NONE: Quiet = Quiet {
        tangent: Tangent {
            ecef: [0.0; 3],
            velocity: [0.0; 3],
            speed_mps: 0.0,
            time_ms: 0,
        },
        until_ms: i64::MAX,
        radius_m: 0.0,
    };
}

impl TrackWatch {
    pub(super) fn quiet_enabled(&self) -> bool {
        self.config.quiet_horizon_ms > 0
    }

    /// The plan of a scan at `now` with the model `tangent`, whose filing
    /// runs out at `refile_ms`; `first` with the entity's id for its first
    /// plan.
    ///
    /// A first horizon is shortened by up to half, by a hash of the id: a
    /// fleet that appears at once would otherwise scan again all at once,
    /// every horizon (a tick of 100k scans among ticks of a few thousand).
    /// Any horizon up to `quiet_horizon_ms` keeps the bound.
    pub(super) fn quiet_plan(
        &self,
        now_ms: i64,
        tangent: &Tangent,
        refile_ms: i64,
        first: Option<u32>,
    ) -> Quiet {
        let horizon_ms = self.config.quiet_horizon_ms;
        let spread_ms = first.map_or(0, |id| {
            let hash = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            (hash % (horizon_ms as u64 / 2 + 1)) as i64
        });
        let until_ms = (now_ms + horizon_ms - spread_ms).min(refile_ms);
        let end_ms = until_ms.saturating_add(self.config.cpa_look_ahead_ms);
        Quiet {
            tangent: *tangent,
            until_ms,
            radius_m: worst_tangent_error_m(tangent, now_ms, end_ms) + self.config.quiet_tolerance_m,
        }
    }

    /// Whether a report's new model `kin` keeps the entity in `slot` on its
    /// plan (see the module): then the report need not scan.
    pub(super) fn stays_quiet(&self, now_ms: i64, slot: u32, kin: &Kin) -> bool {
        if !self.quiet_enabled() {
            return false;
        }
        let plan = &self.entity(slot).quiet;
        // A quarter of the horizon before it, reports scan: an entity that
        // reports every second scans on a report, not in `handle_tick`.
        // Before the latest `now` the watch was given (a clock stepped
        // back), plans and near lists say nothing: every plan and on-plan
        // check was made at or before the latest, and covers from there on.
        let early_ms = self.config.quiet_horizon_ms / 4;
        if plan.until_ms == i64::MAX || now_ms >= plan.until_ms - early_ms || now_ms < self.latest_now_ms {
            return false;
        }
        let old = &self.kin[slot as usize];
        if kin.party != old.party
            || kin.airborne != old.airborne
            || kin.alt_m.to_bits() != old.alt_m.to_bits()
        {
            return false;
        }
        let end_ms = plan.until_ms + self.config.cpa_look_ahead_ms;
        let apart = |t: i64| chord_m(kin.tangent.at(t), plan.tangent.at(t));
        let drift_m = apart(now_ms).max(apart(end_ms));
        drift_m + worst_tangent_error_m(&kin.tangent, now_ms, end_ms) <= plan.radius_m
    }

    /// Whether a pair cannot open an episode before either horizon, given
    /// both plans and (for the pair rule) both current states.
    pub(super) fn far(&self, now_ms: i64, (qa, ka): (&Quiet, &Kin), (qb, kb): (&Quiet, &Kin)) -> bool {
        if qa.until_ms == i64::MAX || qb.until_ms == i64::MAX {
            // No plan to bound by (cannot happen with a horizon configured:
            // every live entity scanned on its first report).
            return false;
        }
        let rule = self.rule(ka, kb);
        if !rule.vertical_within(1.0) {
            return true;
        }
        let end_ms = qa.until_ms.min(qb.until_ms) + self.config.cpa_look_ahead_ms;
        let (straight_m, _) = straight_closest(&qa.tangent, &qb.tangent, now_ms, end_ms);
        straight_m >= rule.limit_m + qa.radius_m + qb.radius_m + QUIET_MARGIN_M
    }

    /// The cells and layers a scan with `plan` looks up (see the module);
    /// `radius_max_m` at least every live plan's radius.
    pub(super) fn scan_query(
        &self,
        now: Timestamp,
        motion: &Motion,
        kin: &Kin,
        plan: &Quiet,
        radius_max_m: f64,
    ) -> (CellBox, Layers) {
        let c = &self.config;
        let reach_m =
            geodesic_at_most_m(c.max_open_m() + 2.0 * plan.radius_m + 2.0 * radius_max_m + QUIET_MARGIN_M);
        let swept = motion.swept_bounds(now.unix_ms(), plan.until_ms + c.cpa_look_ahead_ms);
        let cells = self.grid.cell_box(&swept.expanded_m(reach_m));
        let (_, layers) = self.pair_query(now, motion, kin);
        (cells, layers)
    }

    /// Makes the entity in `slot` (just applied, off plan or new) scan
    /// with its current model: a new plan, and its near list.
    pub(super) fn rescan(&mut self, now: Timestamp, slot: u32) {
        let plan = self.adopt_plan(now, slot);
        let query = self.next_query();
        let kin = self.kin[slot as usize];
        let (cells, layers) = self.scan_query(now, &self.motion(slot), &kin, &plan, self.quiet_radius_max_m);
        let mut near = std::mem::take(&mut self.near_scratch);
        near.clear();
        let (seen, kins) = (&mut self.seen, &self.kin);
        self.grid.for_each(cells, layers.as_slice(), |other| {
            if seen[other as usize] != query {
                seen[other as usize] = query;
                if kins[other as usize].party != kin.party {
                    near.push(other);
                }
            }
        });
        near.retain(|&other| {
            let qb = &self.entity(other).quiet;
            !self.far(now.unix_ms(), (&plan, &kin), (qb, &self.kin[other as usize]))
        });
        for other in near.iter_mut() {
            *other = self.id_of[*other as usize];
        }
        self.set_near(slot, &near);
        self.near_scratch = near;
    }

    /// Makes the entity's current model its plan.
    pub(super) fn adopt_plan(&mut self, now: Timestamp, slot: u32) -> Quiet {
        self.stats.scans += 1;
        let entity = self.entity(slot);
        let first = (entity.quiet.until_ms == i64::MAX).then(|| self.id(slot));
        let plan = self.quiet_plan(
            now.unix_ms(),
            &self.kin[slot as usize].tangent,
            entity.refile_ms,
            first,
        );
        self.entity_mut(slot).quiet = plan;
        self.quiet_radius_max_m = self.quiet_radius_max_m.max(plan.radius_m);
        let id = self.id(slot);
        push_snug(&mut self.horizons, Reverse((plan.until_ms, id)));
        plan
    }

    /// [`rescan`](Self::rescan) with the near list a batch gathered.
    pub(super) fn rescan_with(&mut self, now: Timestamp, slot: u32, near: &[u32]) {
        self.adopt_plan(now, slot);
        self.set_near(slot, near);
    }

    /// Replaces the near list of the entity in `slot` (ids), on both sides.
    pub(super) fn set_near(&mut self, slot: u32, near: &[u32]) {
        let id = self.id(slot);
        let mut list = std::mem::take(&mut self.entity_mut(slot).near);
        self.leave_near_lists(id, list.as_slice());
        for &other in near {
            let other_slot = self.slot_of_id[other as usize];
            self.entity_mut(other_slot).near.push(id);
        }
        list.set(near);
        self.entity_mut(slot).near = list;
    }

    /// Takes `id` off the near lists of `partners`.
    pub(super) fn leave_near_lists(&mut self, id: u32, partners: &[u32]) {
        for &other in partners {
            let other_slot = self.slot_of_id[other as usize];
            if let Some(entity) = self
                .entities
                .get_mut(other_slot as usize)
                .and_then(Option::as_mut)
            {
                entity.near.remove(id);
            }
        }
    }

    /// Queues the entity's earliest wake-up (staleness, refiling) if it is
    /// earlier than the one queued.
    pub(super) fn schedule(&mut self, slot: u32) {
        let id = self.id_of[slot as usize];
        let entity = self.entity_mut(slot);
        let wake = entity.stale_ms.min(entity.refile_ms);
        if wake < entity.wake_ms {
            entity.wake_ms = wake;
            push_snug(&mut self.wakes, Reverse((wake, id)));
        }
    }

    /// `check_pair` on a quiet report's near list members that the index
    /// returns for its query, and on its open episodes, in id order (see
    /// the module), with the approaches a batch foresaw.
    /// `settled`: open episodes' partners (sorted) a batch found
    /// `check_pair` would return at once for.
    pub(super) fn check_quiet_pairs(
        &mut self,
        now: Timestamp,
        slot: u32,
        foreseen: &[Foreseen],
        settled: &[Settled],
    ) {
        let kin = self.kin[slot as usize];
        let (cells, layers) = self.pair_query(now, &self.motion(slot), &kin);
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        let entity = self.entity(slot);
        for &other_id in entity.near.as_slice() {
            let other = self.slot_of_id[other_id as usize];
            let b = self.entity(other);
            let indexed = b.filed.get().is_some_and(|filed| filed.meets(&cells))
                && layers.as_slice().iter().any(|range| range.contains(&b.layer));
            if indexed {
                candidates.push(by_id(other_id, other));
            }
        }
        for &(other_id, _, _) in &entity.pairs {
            candidates.push(by_id(other_id, self.slot_of_id[other_id as usize]));
        }
        self.check_candidates(now, slot, candidates, foreseen, settled);
    }

    /// `check_pair` on `candidates` (`by_id` keys: in id order once sorted,
    /// as a search on every report would call them), less the `settled`
    /// partners whose open kinds of episode are still those the batch
    /// assumed, with the approaches a batch foresaw; the buffer goes back
    /// to `self.candidates` for the next report.
    pub(super) fn check_candidates(
        &mut self,
        now: Timestamp,
        slot: u32,
        mut candidates: Vec<u64>,
        foreseen: &[Foreseen],
        settled: &[Settled],
    ) {
        candidates.sort_unstable();
        candidates.dedup();
        if !settled.is_empty() {
            let pairs = &self.entity(slot).pairs;
            candidates.retain(|&c| {
                let other = (c >> 32) as u32;
                match settled.binary_search_by_key(&other, |s| s.other) {
                    // Settled for the kinds open now only.
                    Ok(at) => settled[at].open != open_kinds(pairs, other),
                    Err(_) => true,
                }
            });
        }
        for &other in &candidates {
            let other = slot_in(other);
            let ahead = foreseen
                .binary_search_by_key(&other, |f| f.other)
                .ok()
                .map(|at| &foreseen[at]);
            self.check_pair(now, slot, other, ahead);
        }
        self.candidates = candidates;
    }

    /// The largest radius of the live plans (after a relayout: plans of
    /// entities gone no longer count).
    pub(super) fn recompute_quiet_radius_max(&mut self) {
        self.quiet_radius_max_m = self
            .entities
            .iter()
            .flatten()
            .map(|e| {
                if e.quiet.until_ms == i64::MAX {
                    0.0
                } else {
                    e.quiet.radius_m
                }
            })
            .fold(0.0, f64::max);
    }
}

#[cfg(test)]
mod tests {
    use super::NearList;

    /// A `Vec` under the same calls: the order the list must keep.
    fn model_remove(list: &mut Vec<u32>, id: u32) {
        if let Some(at) = list.iter().position(|&x| x == id) {
            list.swap_remove(at);
        }
    }

    #[test]
    fn a_near_list_keeps_the_order_of_a_vec_under_the_same_calls() {
        assert_eq!(std::mem::size_of::<NearList>(), 16);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as u32
        };
        let (mut list, mut model) = (NearList::default(), Vec::new());
        let mut heap_seen = false;
        for _ in 0..20_000 {
            match next(10) {
                0..=4 => {
                    let id = next(12);
                    list.push(id);
                    model.push(id);
                }
                5..=7 => {
                    let id = next(12);
                    list.remove(id);
                    model_remove(&mut model, id);
                }
                _ => {
                    let ids: Vec<u32> = (0..next(7)).map(|_| next(12)).collect();
                    list.set(&ids);
                    model = ids;
                }
            }
            assert_eq!(list.as_slice(), model.as_slice());
            assert_eq!(list.is_empty(), model.is_empty());
            heap_seen |= list.heap_bytes() > 0;
            assert_eq!(list.heap_bytes() > 0, matches!(list, NearList::Heap(_)));
        }
        assert!(heap_seen, "lists longer than the record holds were made");
        // One to three ids take no block of their own.
        list.set(&[4, 5, 6]);
        assert_eq!(list.heap_bytes(), 0);
        list.push(7);
        assert_eq!(list.as_slice(), [4, 5, 6, 7]);
        assert!(list.heap_bytes() > 0);
    }
}
