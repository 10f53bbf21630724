//! The spatio-temporal index: which activities could be near one another in
//! space and time.
//!
//! Each entry is an axis-aligned box in (longitude°, latitude°, time in hours).
//! The index only proposes candidates: a box query is a superset of the true
//! answer, and the exact geodesic test decides. Boxes that cross the
//! antimeridian are filed as two boxes, one on each side, so that no query has
//! to wrap.
//!
//! Most entries live in a *packed* tree: built at once by sort-tile-recursive
//! packing (sorted on longitude into slabs, each slab on latitude, each of
//! those on time, cut into leaves of [`NODE_SIZE`]), its boxes in one flat
//! array per level, a node's children contiguous and found by arithmetic.
//! A query reads a few runs of consecutive boxes instead of chasing a
//! pointer per node as the R*-tree (`rstar`) did; at 100k activities it was
//! most of a check's budget. The packed tree cannot take inserts, so
//! entries filed since the last build go to a small dynamic R*-tree, and
//! removed packed entries are only marked; once those two together exceed
//! a quarter of the entries (or [`MIN_REBUILD`]), everything is packed
//! again. That costs `O(n log n)` once per `n / 4` changes (packing 100k
//! takes ~50 ms CPU), about 2 µs per change amortised.
//!
//! Time is stored in hours rather than milliseconds so that the three axes
//! have comparable extents (a few degrees, a few hundred hours); the R*-tree's
//! split heuristics compare areas across axes and would otherwise split on
//! time only. The conversion is monotonic, so closed-box intersection stays a
//! superset of half-open window overlap.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;

use deconflict_geodesy::GeoBounds;
use rstar::{Envelope, ParentNode, RTree, RTreeNode, RTreeObject, AABB};
use smallvec::SmallVec;

use crate::time::TimeWindow;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Children per node of the packed tree: 16 boxes of 48 bytes are twelve
/// consecutive cache lines, which the prefetcher streams.
const NODE_SIZE: usize = 16;

/// Pending changes (dynamic entries plus removed packed ones) are packed
/// once they exceed this or a [`REBUILD_FRACTION`]th of the entries,
/// whichever is larger: below it, the dynamic tree stays cheap to query.
/// At 100k with one update per query, a quarter cost 3.8 µs per query and
/// 5.6 µs per update, a sixteenth 2.4 and 12.5 µs (packing more often),
/// rstar alone 7.6 and 8.3 µs (its tree degrades under inserts).
const MIN_REBUILD: usize = 256;
const REBUILD_FRACTION: usize = 4;

/// A closed box: (longitude°, latitude°, hours) at each corner.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Box3 {
    min: [f64; 3],
    max: [f64; 3],
}

impl Box3 {
    /// Whether the closed boxes share a point (the same test as `rstar`'s).
    #[inline]
    fn meets(&self, other: &Box3) -> bool {
        (self.min[0] <= other.max[0])
            & (other.min[0] <= self.max[0])
            & (self.min[1] <= other.max[1])
            & (other.min[1] <= self.max[1])
            & (self.min[2] <= other.max[2])
            & (other.min[2] <= self.max[2])
    }

    fn union(&self, other: &Box3) -> Box3 {
        let mut out = *self;
        for axis in 0..3 {
            out.min[axis] = out.min[axis].min(other.min[axis]);
            out.max[axis] = out.max[axis].max(other.max[axis]);
        }
        out
    }

    fn centre(&self, axis: usize) -> f64 {
        0.5 * self.min[axis] + 0.5 * self.max[axis]
    }

    fn aabb(&self) -> AABB<[f64; 3]> {
        AABB::from_corners(self.min, self.max)
    }

    fn of(envelope: &AABB<[f64; 3]>) -> Box3 {
        Box3 {
            min: envelope.lower(),
            max: envelope.upper(),
        }
    }
}

/// The map from a box coordinate to the single-precision value kept in
/// [`Lanes`]: the coordinate less a per-axis origin (near the entries, so
/// that the values are small and precise: 5 cm of longitude, 40 ms of time
/// at the workload's scale), rounded to `f32`.
///
/// Both steps round to nearest, so the map is monotone: `a <= b` implies
/// `f(a) <= f(b)`, and so `f(a) < f(b)` implies `a < b`. Boxes and queries
/// go through the same map, which is why a box test in single precision
/// never drops a box that meets (`<=` holds in `f32` whenever it holds in
/// `f64`), and why a test that holds strictly in `f32` holds in `f64` too;
/// only a tie (two coordinates rounded to the same `f32`) leaves the answer
/// open, and the exact box decides it (see [`Packed::query`]). Infinities
/// stay infinite, NaN (a missing box) stays NaN, and finite values beyond
/// the `f32` range become infinite, all still monotone.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Narrow {
    origin: [f64; 3],
}

impl Narrow {
    /// Origins at the mean of the finite lower corners (an open window's
    /// end, `end_or_max`, would drag a mean of both corners far away).
    fn for_boxes(boxes: &[Box3]) -> Narrow {
        let mut origin = [0.0; 3];
        for (axis, o) in origin.iter_mut().enumerate() {
            let (sum, count) = boxes
                .iter()
                .map(|b| b.min[axis])
                .filter(|x| x.is_finite())
                .fold((0.0, 0usize), |(sum, count), x| (sum + x, count + 1));
            if count > 0 && (sum / count as f64).is_finite() {
                *o = sum / count as f64;
            }
        }
        Narrow { origin }
    }

    #[inline]
    fn value(&self, axis: usize, x: f64) -> f32 {
        (x - self.origin[axis]) as f32
    }

    fn corners(&self, b: &Box3) -> ([f32; 3], [f32; 3]) {
        let mut lo = [0.0; 3];
        let mut hi = [0.0; 3];
        for axis in 0..3 {
            lo[axis] = self.value(axis, b.min[axis]);
            hi[axis] = self.value(axis, b.max[axis]);
        }
        (lo, hi)
    }
}

/// Sixteen sibling boxes of the packed tree, column by column (`lo[axis][k]`,
/// `hi[axis][k]` for box `k`) and in single precision ([`Narrow`]), so that
/// testing all of them against a query is a few whole-column comparisons
/// over six cache lines. Missing boxes (past the end of a level) are NaN,
/// which meets nothing. 384 bytes, six aligned lines: a query reads ~6
/// groups of leaves and ~6 of their parents at 100k, and in `f64` (twelve
/// lines a group) they were half the lines a check waits for.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Lanes {
    lo: [[f32; NODE_SIZE]; 3],
    hi: [[f32; NODE_SIZE]; 3],
}

impl Lanes {
    fn of(boxes: &[Box3], narrow: &Narrow) -> Lanes {
        let mut lanes = Lanes {
            lo: [[f32::NAN; NODE_SIZE]; 3],
            hi: [[f32::NAN; NODE_SIZE]; 3],
        };
        for (k, b) in boxes.iter().enumerate() {
            let (lo, hi) = narrow.corners(b);
            for axis in 0..3 {
                lanes.lo[axis][k] = lo[axis];
                lanes.hi[axis][k] = hi[axis];
            }
        }
        lanes
    }

    /// Two masks over the sixteen boxes, for a query already narrowed:
    /// bit `k` of the first set when box `k` may meet it (the test of
    /// [`Box3::meets`] in `f32`: set whenever the exact boxes meet), of the
    /// second when it surely does (every comparison strict in `f32`, so it
    /// holds in `f64`).
    #[inline]
    fn meeting(&self, q_lo: &[f32; 3], q_hi: &[f32; 3]) -> (u32, u32) {
        let mut maybe = [1u8; NODE_SIZE];
        let mut surely = [1u8; NODE_SIZE];
        for axis in 0..3 {
            let (lo, hi) = (&self.lo[axis], &self.hi[axis]);
            let (q_lo, q_hi) = (q_lo[axis], q_hi[axis]);
            for k in 0..NODE_SIZE {
                maybe[k] &= u8::from(lo[k] <= q_hi) & u8::from(q_lo <= hi[k]);
                surely[k] &= u8::from(lo[k] < q_hi) & u8::from(q_lo < hi[k]);
            }
        }
        (bit_mask(maybe), bit_mask(surely))
    }

    /// One number from each of the six lines (see `query`).
    fn read_ahead(&self) -> f32 {
        (0..3).map(|axis| self.lo[axis][0] + self.hi[axis][0]).sum()
    }

    /// Makes box `k` meet nothing (every coordinate NaN).
    fn clear(&mut self, k: usize) {
        for axis in 0..3 {
            self.lo[axis][k] = f32::NAN;
            self.hi[axis][k] = f32::NAN;
        }
    }
}

/// A group of sixteen leaves as a query reads it: their boxes ([`Lanes`])
/// and, in the line right after, their keys, so that a group whose boxes
/// meet the query is one run of seven consecutive lines (the keys in their
/// own array, unaligned, and the removal marks were one to three more
/// lines elsewhere, each a miss). A removed entry's box is made NaN here,
/// so a query never reads the removal marks. Missing leaves (past the end)
/// repeat the group's first key behind a NaN box, never read.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Leaves<K> {
    lanes: Lanes,
    keys: [K; NODE_SIZE],
}

/// Bit `k` set when byte `k` of `bits` (each 0 or 1) is 1: eight bytes at
/// a time by one multiplication, which moves byte `i`'s bit to bit `56 + i`
/// (`8 i + 56 − 7 i`; every other product lands on a distinct bit below 56
/// or beyond 63, so no carry reaches the top byte). Built bit by bit, the
/// mask was a shift and an or per box, most of a group's test.
#[inline]
fn bit_mask(bits: [u8; NODE_SIZE]) -> u32 {
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let half = |i: usize| {
        let word = u64::from_le_bytes(bits[8 * i..8 * i + 8].try_into().expect("eight bytes"));
        u32::from((word.wrapping_mul(GATHER) >> 56) as u8)
    };
    half(0) | (half(1) << 8)
}

/// A node's index at one level of the packed tree, which holds fewer than
/// 2^32 entries (see `SpatioTemporalIndex`'s limit).
fn node_number(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 nodes per level")
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry<K> {
    envelope: AABB<[f64; 3]>,
    key: K,
}

impl<K> RTreeObject for Entry<K> {
    type Envelope = AABB<[f64; 3]>;

    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

fn hours(window: &TimeWindow) -> (f64, f64) {
    (
        window.start.unix_ms() as f64 / MS_PER_HOUR,
        window.end_or_max().unix_ms() as f64 / MS_PER_HOUR,
    )
}

/// One or two items, kept inline (a key has one box, or two across the
/// antimeridian).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Two<T> {
    items: [T; 2],
    len: u8,
}

impl<T: Copy> Two<T> {
    fn one(item: T) -> Self {
        Self {
            items: [item; 2],
            len: 1,
        }
    }

    fn push(&mut self, item: T) {
        self.items[usize::from(self.len)] = item;
        self.len += 1;
    }

    fn as_slice(&self) -> &[T] {
        &self.items[..usize::from(self.len)]
    }
}

/// The one or two boxes (split at the antimeridian) that stand for a reach.
fn boxes(bounds: &GeoBounds, window: &TimeWindow) -> Two<Box3> {
    let (t0, t1) = hours(window);
    let (south, north) = (bounds.south_deg, bounds.north_deg);
    let mut intervals = bounds.lon_intervals().map(|(west, east)| Box3 {
        min: [west, south, t0],
        max: [east, north, t1],
    });
    let mut out = Two::one(intervals.next().expect("at least one interval"));
    for b in intervals {
        out.push(b);
    }
    out
}

/// Where a key's boxes are.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Filed {
    /// Slots of the packed tree's entries.
    Packed(Two<u32>),
    /// In the dynamic tree, under these boxes.
    Dynamic(Two<Box3>),
}

/// The packed (static) tree. See the module documentation.
#[derive(Debug)]
struct Packed<K> {
    /// The entries' keys in tree order.
    keys: Vec<K>,
    /// `levels[0]` holds the entries' boxes; `levels[l + 1][i]` bounds
    /// `levels[l][i * NODE_SIZE..(i + 1) * NODE_SIZE]`. The last level has
    /// at most `NODE_SIZE` boxes, the root's children.
    levels: Vec<Vec<Box3>>,
    /// The same boxes by groups of siblings, for queries: `lanes[l][g]`
    /// holds `levels[l][g * NODE_SIZE..]`, up to `NODE_SIZE` of them, in
    /// single precision through `narrow`; `lanes[0]` is empty, the leaves'
    /// groups are in `leaves`.
    lanes: Vec<Vec<Lanes>>,
    /// The leaves by groups of sixteen with their keys (see [`Leaves`]):
    /// `leaves[g]` holds `levels[0][g * NODE_SIZE..]` and
    /// `keys[g * NODE_SIZE..]`, a removed entry's box NaN.
    leaves: Vec<Leaves<K>>,
    narrow: Narrow,
    /// Entries removed since the build: skipped until the next one.
    removed: Vec<bool>,
    removed_count: usize,
    /// Entries whose key is filed as two boxes (across the antimeridian):
    /// only a pair involving one can be met twice by the join.
    split: Vec<bool>,
}

impl<K: Copy + Ord> Packed<K> {
    fn build(mut entries: Vec<(K, Box3)>) -> Self {
        sort_tile_recursive(&mut entries);
        let keys = entries.iter().map(|e| e.0).collect();
        let mut levels = vec![entries.iter().map(|e| e.1).collect::<Vec<_>>()];
        while levels[levels.len() - 1].len() > NODE_SIZE {
            let above = levels[levels.len() - 1]
                .chunks(NODE_SIZE)
                .map(|children| children[1..].iter().fold(children[0], |all, b| all.union(b)))
                .collect();
            levels.push(above);
        }
        let removed = vec![false; entries.len()];
        let narrow = Narrow::for_boxes(&levels[0]);
        let lanes = levels
            .iter()
            .enumerate()
            .map(|(level, boxes)| {
                if level == 0 {
                    return Vec::new();
                }
                boxes
                    .chunks(NODE_SIZE)
                    .map(|group| Lanes::of(group, &narrow))
                    .collect()
            })
            .collect();
        let leaves = levels[0]
            .chunks(NODE_SIZE)
            .zip(entries.chunks(NODE_SIZE))
            .map(|(boxes, group)| {
                let mut keys = [group[0].0; NODE_SIZE];
                for (key, entry) in keys.iter_mut().zip(group) {
                    *key = entry.0;
                }
                Leaves {
                    lanes: Lanes::of(boxes, &narrow),
                    keys,
                }
            })
            .collect();
        Self {
            keys,
            levels,
            lanes,
            leaves,
            narrow,
            split: removed.clone(),
            removed,
            removed_count: 0,
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn top(&self) -> usize {
        self.levels.len() - 1
    }

    /// The children (at `level - 1`) of node `i` at `level`.
    fn children(&self, level: usize, i: usize) -> Range<usize> {
        let first = i * NODE_SIZE;
        first..(first + NODE_SIZE).min(self.levels[level - 1].len())
    }

    /// Appends the keys of live entries meeting `query`.
    ///
    /// Level by level (breadth first) over [`Lanes`]: each group of sixteen
    /// sibling boxes is tested at once into a bit mask (the comparisons run
    /// on whole columns, without a branch per box), and every group a level
    /// needs is read ahead before any is tested, so that their cache misses
    /// overlap. Box by box, the query was ~270 box tests of a dozen
    /// instructions and a branch each at 100k. The keys come out in the
    /// same order as depth first (each level is kept left to right).
    fn query(&self, query: &Box3, out: &mut Vec<K>) {
        let top = self.top();
        if self.levels[top].is_empty() {
            return;
        }
        // Groups of `level` to test: group `g` holds boxes `16 g..16 g + 16`,
        // the children of box `g` of the level above.
        let (q_lo, q_hi) = self.narrow.corners(query);
        let mut groups: SmallVec<[u32; 64]> = SmallVec::new();
        let mut below: SmallVec<[u32; 64]> = SmallVec::new();
        groups.push(0);
        for level in (1..=top).rev() {
            let lanes = &self.lanes[level];
            std::hint::black_box(
                groups
                    .iter()
                    .map(|&g| lanes[g as usize].read_ahead())
                    .sum::<f32>(),
            );
            below.clear();
            for &g in &groups {
                // A parent that only may meet costs a wasted group at
                // worst; its children decide.
                let (mut mask, _) = lanes[g as usize].meeting(&q_lo, &q_hi);
                while mask != 0 {
                    let k = mask.trailing_zeros();
                    mask &= mask - 1;
                    below.push(node_number(g as usize * NODE_SIZE + k as usize));
                }
            }
            std::mem::swap(&mut groups, &mut below);
        }
        // The leaves, their keys read ahead with their boxes (after the
        // test they were one more miss per group with a candidate).
        for &g in &groups {
            let leaves = &self.leaves[g as usize];
            std::hint::black_box((leaves.lanes.read_ahead(), leaves.keys[0]));
        }
        for &g in &groups {
            let leaves = &self.leaves[g as usize];
            let (mut mask, surely) = leaves.lanes.meeting(&q_lo, &q_hi);
            while mask != 0 {
                let k = mask.trailing_zeros();
                mask &= mask - 1;
                // Removed entries are NaN, so never in `mask`. A tie in
                // `f32` (coordinates within rounding of each other) is
                // settled by the exact box, so the keys are exactly those
                // whose boxes meet.
                if surely & (1 << k) != 0 || self.levels[0][g as usize * NODE_SIZE + k as usize].meets(query)
                {
                    out.push(leaves.keys[k as usize]);
                }
            }
        }
    }

    /// Every pair of live entries with distinct keys whose boxes meet, as
    /// (lower, higher), in the order the join meets them: to `once` those
    /// that are met once, appended to `split` those with a key filed as
    /// two boxes (which may be met twice).
    fn pairs(&self, once: &mut impl FnMut(K, K), split: &mut Vec<(K, K)>) {
        if self.keys.is_empty() {
            return;
        }
        let top = self.top();
        let mut pairs = Pairs { once, split };
        self.self_join(top, 0..self.levels[top].len(), &mut pairs);
    }

    /// Pairs within the subtrees of `nodes` (siblings at `level`): those
    /// under one node, then those across each pair of nodes.
    fn self_join<F: FnMut(K, K)>(&self, level: usize, nodes: Range<usize>, out: &mut Pairs<'_, K, F>) {
        for i in nodes.clone() {
            if level > 0 {
                self.self_join(level - 1, self.children(level, i), out);
            }
            for j in i + 1..nodes.end {
                self.join(level, i, j, out);
            }
        }
    }

    /// Pairs with one entry under node `i` and one under node `j` (distinct
    /// nodes at the same level).
    fn join<F: FnMut(K, K)>(&self, level: usize, i: usize, j: usize, out: &mut Pairs<'_, K, F>) {
        let boxes = &self.levels[level];
        if !boxes[i].meets(&boxes[j]) {
            return;
        }
        if level == 0 {
            let (x, y) = (self.keys[i], self.keys[j]);
            if x != y && !self.removed[i] && !self.removed[j] {
                if self.split[i] || self.split[j] {
                    out.split.push((x.min(y), x.max(y)));
                } else {
                    (out.once)(x.min(y), x.max(y));
                }
            }
            return;
        }
        let below = &self.levels[level - 1];
        // Only the children that meet the other node can meet its children.
        let mut near_j = [0usize; NODE_SIZE];
        let mut count = 0;
        for d in self.children(level, j) {
            if below[d].meets(&boxes[i]) {
                near_j[count] = d;
                count += 1;
            }
        }
        for c in self.children(level, i) {
            if below[c].meets(&boxes[j]) {
                for &d in &near_j[..count] {
                    self.join(level - 1, c, d, out);
                }
            }
        }
    }
}

/// Where [`Packed::join`] hands the pairs it meets.
struct Pairs<'a, K, F> {
    once: &'a mut F,
    split: &'a mut Vec<(K, K)>,
}

/// How many more times the packing cuts the time axis than each spatial
/// one. A check's reach box covers a good part of a hotspot but an hour or
/// two of a week, so leaves thin in time and wide in space are hit less
/// often; at 100k, 4 made a check about a tenth cheaper than 1 (equal cuts)
/// and 16 or 64 were no better (`engine_profile`, CPU time).
const TIME_CUTS_PER_SPACE_CUT: f64 = 4.0;

/// Orders entries so that runs of `NODE_SIZE` are tight boxes: sorted by
/// longitude into slabs, each slab by latitude into runs, each run by time
/// (Leutenegger et al.'s sort-tile-recursive packing, in three axes, with
/// [`TIME_CUTS_PER_SPACE_CUT`]). Each latitude run holds a whole number of
/// leaves, so no leaf straddles two.
fn sort_tile_recursive<K: Copy + Ord>(entries: &mut [(K, Box3)]) {
    let by = |axis: usize| {
        move |x: &(K, Box3), y: &(K, Box3)| x.1.centre(axis).total_cmp(&y.1.centre(axis)).then(x.0.cmp(&y.0))
    };
    let leaves = entries.len().div_ceil(NODE_SIZE) as f64;
    let space_cuts = ((leaves / TIME_CUTS_PER_SPACE_CUT).cbrt().ceil() as usize).max(1);
    let time_cuts = ((leaves / (space_cuts * space_cuts) as f64).ceil() as usize).max(1);
    let run = NODE_SIZE * time_cuts;
    entries.sort_unstable_by(by(0));
    for slab in entries.chunks_mut(run * space_cuts) {
        slab.sort_unstable_by(by(1));
        for run in slab.chunks_mut(run) {
            run.sort_unstable_by(by(2));
        }
    }
}

/// An index of keyed boxes in space and time.
#[derive(Debug)]
pub struct SpatioTemporalIndex<K> {
    packed: Packed<K>,
    /// Entries filed since the packed tree was built.
    dynamic: RTree<Entry<K>>,
    /// Where each key's boxes are, needed to remove it.
    filed: HashMap<K, Filed>,
    /// [`MIN_REBUILD`], smaller in tests so that they rebuild often.
    min_rebuild: usize,
}

impl<K: Copy + Eq + Hash + Ord + std::fmt::Debug> Default for SpatioTemporalIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash + Ord + std::fmt::Debug> SpatioTemporalIndex<K> {
    pub fn new() -> Self {
        Self::bulk_load(std::iter::empty())
    }

    /// Builds an index from many entries at once (all packed), far faster
    /// than inserting one by one. Keys must be distinct.
    pub fn bulk_load<'a>(items: impl IntoIterator<Item = (K, &'a GeoBounds, &'a TimeWindow)>) -> Self {
        let mut entries = Vec::new();
        for (key, bounds, window) in items {
            entries.extend(boxes(bounds, window).as_slice().iter().map(|&b| (key, b)));
        }
        let mut index = Self {
            packed: Packed::build(entries),
            dynamic: RTree::new(),
            filed: HashMap::new(),
            min_rebuild: MIN_REBUILD,
        };
        index.file_packed();
        index
    }

    /// Records where each packed entry is; every key is then packed.
    fn file_packed(&mut self) {
        self.filed.clear();
        self.filed.reserve(self.packed.len());
        for (slot, &key) in self.packed.keys.iter().enumerate() {
            let slot = u32::try_from(slot).expect("fewer than 2^32 boxes");
            match self.filed.get_mut(&key) {
                Some(Filed::Packed(slots)) => {
                    for &other in slots.as_slice() {
                        self.packed.split[other as usize] = true;
                    }
                    self.packed.split[slot as usize] = true;
                    slots.push(slot);
                }
                _ => {
                    let previous = self.filed.insert(key, Filed::Packed(Two::one(slot)));
                    debug_assert!(previous.is_none(), "bulk-loaded keys are distinct");
                }
            }
        }
    }

    /// Packs everything again once the pending changes are many enough
    /// (see [`MIN_REBUILD`]).
    fn rebuild_if_due(&mut self) {
        let pending = self.dynamic.size() + self.packed.removed_count;
        let entries = self.packed.len() - self.packed.removed_count + self.dynamic.size();
        if pending <= self.min_rebuild.max(entries / REBUILD_FRACTION) {
            return;
        }
        let packed = std::mem::replace(&mut self.packed, Packed::build(Vec::new()));
        let mut all: Vec<(K, Box3)> = Vec::with_capacity(entries);
        all.extend(
            packed
                .keys
                .iter()
                .zip(&packed.levels[0])
                .zip(&packed.removed)
                .filter(|(_, &removed)| !removed)
                .map(|((&key, &b), _)| (key, b)),
        );
        all.extend(self.dynamic.iter().map(|e| (e.key, Box3::of(&e.envelope))));
        self.packed = Packed::build(all);
        self.dynamic = RTree::new();
        self.file_packed();
    }

    pub fn len(&self) -> usize {
        self.filed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filed.is_empty()
    }

    pub fn contains(&self, key: K) -> bool {
        self.filed.contains_key(&key)
    }

    /// Files `key` under the given reach and window, replacing what it was
    /// filed under before.
    pub fn insert(&mut self, key: K, bounds: &GeoBounds, window: &TimeWindow) {
        self.remove(key);
        let filed = boxes(bounds, window);
        for b in filed.as_slice() {
            self.dynamic.insert(Entry {
                envelope: b.aabb(),
                key,
            });
        }
        self.filed.insert(key, Filed::Dynamic(filed));
        self.rebuild_if_due();
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: K) -> bool {
        match self.filed.remove(&key) {
            None => return false,
            Some(Filed::Packed(slots)) => {
                for &slot in slots.as_slice() {
                    let slot = slot as usize;
                    self.packed.removed[slot] = true;
                    self.packed.removed_count += 1;
                    self.packed.leaves[slot / NODE_SIZE].lanes.clear(slot % NODE_SIZE);
                }
            }
            Some(Filed::Dynamic(filed)) => {
                for b in filed.as_slice() {
                    let removed = self.dynamic.remove(&Entry {
                        envelope: b.aabb(),
                        key,
                    });
                    debug_assert!(removed.is_some(), "a filed box is in the tree");
                }
            }
        }
        self.rebuild_if_due();
        true
    }

    /// Appends to `out` every key whose boxes intersect the query's, each
    /// once, in ascending order. `out` is cleared first; it is an argument so
    /// that hot loops reuse one allocation.
    pub fn candidates(&self, bounds: &GeoBounds, window: &TimeWindow, out: &mut Vec<K>) {
        out.clear();
        for query in boxes(bounds, window).as_slice() {
            self.packed.query(query, out);
            let envelope = query.aabb();
            if self.dynamic.size() > 0 && self.dynamic.root().envelope().intersects(&envelope) {
                collect_meeting(self.dynamic.root(), &envelope, out);
            }
        }
        // A key filed as two boxes, or met by both halves of a query, is
        // reported once.
        out.sort_unstable();
        out.dedup();
    }

    /// Each live key of the packed tree once, in the tree's order (a
    /// leaf's entries together, leaf after leaf), then those filed since
    /// (in no useful order): a caller that lays out its own data in this
    /// order reads it nearly in sequence in [`Self::pairs`].
    pub fn packed_order(&self) -> Vec<K> {
        let packed = &self.packed;
        // A key filed as two boxes comes at its first.
        let mut seen = std::collections::HashSet::new();
        let mut order: Vec<K> = (0..packed.len())
            .filter(|&slot| !packed.removed[slot] && (!packed.split[slot] || seen.insert(packed.keys[slot])))
            .map(|slot| packed.keys[slot])
            .collect();
        let mut dynamic: Vec<K> = self.dynamic.iter().map(|entry| entry.key).collect();
        dynamic.sort_unstable();
        dynamic.dedup();
        order.extend(dynamic);
        order
    }

    /// Every pair of distinct keys whose boxes meet, each once as (lower,
    /// higher): first the packed tree joined with itself (each pair of
    /// sibling subtrees once, far cheaper than one query per key), in the
    /// order the join meets them, then in ascending order the pairs with a
    /// dynamic entry (each queried against the packed tree, then the
    /// dynamic tree joined with itself) and those with a key filed as two
    /// boxes.
    ///
    /// The join's order is the tree's: a leaf's entries are met with their
    /// neighbours in space and time, one leaf after another, so a caller
    /// that reads each pair's data finds most of it in cache (in key order,
    /// one side of each pair was a random read). The sweep is 15 % faster
    /// for it at 100k.
    pub fn pairs(&self) -> Vec<(K, K)> {
        let mut out = Vec::new();
        self.for_each_pair(|x, y| out.push((x, y)));
        out
    }

    /// [`Self::pairs`], handed to `each` as the join meets them instead
    /// of collected: a caller that evaluates pairs as they come reads their
    /// data while the join's neighbours are still cached, and no list of
    /// every pair (300k at 100k activities) is built.
    pub fn for_each_pair(&self, mut each: impl FnMut(K, K)) {
        let mut doubtful = Vec::new();
        self.packed.pairs(&mut each, &mut doubtful);
        let mut met = Vec::new();
        for entry in self.dynamic.iter() {
            met.clear();
            self.packed.query(&Box3::of(&entry.envelope), &mut met);
            doubtful.extend(
                met.iter()
                    .filter(|&&other| other != entry.key)
                    .map(|&other| (other.min(entry.key), other.max(entry.key))),
            );
        }
        if self.dynamic.size() > 0 {
            self_join(self.dynamic.root(), &mut doubtful);
        }
        // Keys filed as two boxes (across the antimeridian) can meet twice;
        // a pair of a packed and a dynamic key is never met by the join.
        doubtful.sort_unstable();
        doubtful.dedup();
        for (x, y) in doubtful {
            each(x, y);
        }
    }
}

/// The keys of the entries under `node` whose boxes meet `query`: a plain
/// recursion (the tree is a few levels deep) that allocates nothing, unlike
/// rstar's iterator with its own stack.
fn collect_meeting<K: Copy>(node: &ParentNode<Entry<K>>, query: &AABB<[f64; 3]>, out: &mut Vec<K>) {
    for child in node.children() {
        match child {
            RTreeNode::Leaf(entry) => {
                if entry.envelope.intersects(query) {
                    out.push(entry.key);
                }
            }
            RTreeNode::Parent(p) => {
                if p.envelope().intersects(query) {
                    collect_meeting(p, query, out);
                }
            }
        }
    }
}

/// Every pair of distinct entries under `node` whose boxes meet, as
/// (lower, higher) keys: each unordered pair of children once, and each
/// child with itself.
fn self_join<K: Copy + Ord>(node: &ParentNode<Entry<K>>, out: &mut Vec<(K, K)>) {
    let children = node.children();
    for (i, a) in children.iter().enumerate() {
        if let RTreeNode::Parent(p) = a {
            self_join(p, out);
        }
        for b in &children[i + 1..] {
            join(a, b, out);
        }
    }
}

/// Every pair of entries, one under `a` and one under `b` (disjoint
/// subtrees), whose boxes meet.
fn join<K: Copy + Ord>(a: &RTreeNode<Entry<K>>, b: &RTreeNode<Entry<K>>, out: &mut Vec<(K, K)>) {
    if !a.envelope().intersects(&b.envelope()) {
        return;
    }
    match (a, b) {
        (RTreeNode::Leaf(x), RTreeNode::Leaf(y)) => {
            if x.key != y.key {
                out.push((x.key.min(y.key), x.key.max(y.key)));
            }
        }
        (RTreeNode::Parent(p), leaf @ RTreeNode::Leaf(_)) => {
            for c in p.children() {
                join(c, leaf, out);
            }
        }
        (leaf @ RTreeNode::Leaf(_), RTreeNode::Parent(q)) => {
            for d in q.children() {
                join(leaf, d, out);
            }
        }
        (RTreeNode::Parent(p), RTreeNode::Parent(q)) => {
            for c in p.children() {
                if c.envelope().intersects(&b.envelope()) {
                    for d in q.children() {
                        join(c, d, out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn b(west: f64, south: f64, east: f64, north: f64) -> GeoBounds {
        GeoBounds {
            south_deg: south,
            north_deg: north,
            west_deg: west,
            east_deg: east,
        }
    }

    fn w(start_h: i64, end_h: Option<i64>) -> TimeWindow {
        let ms = |h: i64| Timestamp(h * 3_600_000);
        TimeWindow::new(ms(start_h), end_h.map(ms))
    }

    #[test]
    fn finds_overlapping_boxes_only() {
        let mut index = SpatioTemporalIndex::new();
        index.insert(1u32, &b(0.0, 0.0, 1.0, 1.0), &w(0, Some(2)));
        index.insert(2, &b(5.0, 5.0, 6.0, 6.0), &w(0, Some(2)));
        index.insert(3, &b(0.5, 0.5, 2.0, 2.0), &w(5, Some(6)));
        let mut out = Vec::new();
        index.candidates(&b(0.9, 0.9, 1.5, 1.5), &w(1, Some(3)), &mut out);
        assert_eq!(out, vec![1]);
        index.candidates(&b(0.9, 0.9, 1.5, 1.5), &w(1, None), &mut out);
        assert_eq!(out, vec![1, 3]);
    }

    /// Coordinates closer than the single-precision lanes can tell apart:
    /// the lanes tie, and the exact boxes decide, so the answer is the
    /// `f64` one on both sides of the tie.
    #[test]
    fn bit_mask_sets_the_bit_of_each_set_byte() {
        for mask in [0u32, 1, 0x8000, 0xffff, 0x5a5a, 0xa5a5, 0x0180, 0x7ffe] {
            let bits: [u8; NODE_SIZE] = std::array::from_fn(|k| u8::from(mask & (1 << k) != 0));
            assert_eq!(bit_mask(bits), mask);
        }
        for k in 0..NODE_SIZE {
            let mut bits = [0; NODE_SIZE];
            bits[k] = 1;
            assert_eq!(bit_mask(bits), 1 << k);
            let mut bits = [1; NODE_SIZE];
            bits[k] = 0;
            assert_eq!(bit_mask(bits), 0xffff & !(1 << k));
        }
    }

    #[test]
    fn single_precision_ties_are_decided_exactly() {
        let (west_a, east_a) = (10.0, 11.0);
        let (west_b, east_b) = (70.0, 70.0 + 1e-9);
        let windows = [w(0, Some(1)), w(0, Some(1))];
        let reaches = [b(west_a, 0.0, east_a, 1.0), b(west_b, 0.0, east_b, 1.0)];
        let index = SpatioTemporalIndex::bulk_load(
            [1u32, 2]
                .into_iter()
                .zip(reaches.iter().zip(&windows))
                .map(|(key, (reach, window))| (key, reach, window)),
        );
        let apart_west = 70.0 + 5e-7;
        let narrow = index.packed.narrow;
        // The case this test is about: east of B and the query's west tie.
        assert_eq!(narrow.value(0, east_b), narrow.value(0, apart_west));
        let mut out = Vec::new();
        index.candidates(&b(apart_west, 0.0, 71.0, 1.0), &w(0, Some(1)), &mut out);
        assert!(out.is_empty(), "{out:?}");
        index.candidates(&b(east_b, 0.0, 71.0, 1.0), &w(0, Some(1)), &mut out);
        assert_eq!(out, vec![2]);
    }

    /// The same on the time axis: a query starting a millisecond after a
    /// window's end ties with it in `f32` (far from the origin, an `f32`
    /// step is most of a second there) and must not meet it; one starting
    /// at the end must (the boxes are closed).
    #[test]
    fn single_precision_ties_in_time_are_decided_exactly() {
        let windows = [w(0, Some(1_000)), w(10_000, Some(10_001))];
        let reach = b(10.0, 0.0, 11.0, 1.0);
        let index = SpatioTemporalIndex::bulk_load(
            [1u32, 2]
                .into_iter()
                .zip(&windows)
                .map(|(key, window)| (key, &reach, window)),
        );
        let end_ms = 1_000 * 3_600_000;
        let narrow = index.packed.narrow;
        let hours = |ms: i64| ms as f64 / MS_PER_HOUR;
        assert_eq!(narrow.value(2, hours(end_ms)), narrow.value(2, hours(end_ms + 1)));
        let mut out = Vec::new();
        let after = TimeWindow::new(Timestamp(end_ms + 1), Some(Timestamp(end_ms + 3_600_000)));
        index.candidates(&b(10.5, 0.5, 12.0, 2.0), &after, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let at = TimeWindow::new(Timestamp(end_ms), Some(Timestamp(end_ms + 3_600_000)));
        index.candidates(&b(10.5, 0.5, 12.0, 2.0), &at, &mut out);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn antimeridian_boxes_meet_from_either_side() {
        let mut index = SpatioTemporalIndex::new();
        // 179.5°E to 179.5°W.
        index.insert(7u32, &b(179.5, -1.0, -179.5, 1.0), &w(0, Some(1)));
        let mut out = Vec::new();
        index.candidates(&b(-179.8, 0.0, -179.6, 0.5), &w(0, Some(1)), &mut out);
        assert_eq!(out, vec![7]);
        index.candidates(&b(179.6, 0.0, 179.8, 0.5), &w(0, Some(1)), &mut out);
        assert_eq!(out, vec![7]);
        // A wrapping query meets it once.
        index.candidates(&b(179.0, 0.0, -179.0, 0.5), &w(0, Some(1)), &mut out);
        assert_eq!(out, vec![7]);
        index.candidates(&b(10.0, 0.0, 11.0, 0.5), &w(0, Some(1)), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn remove_and_reinsert() {
        let mut index = SpatioTemporalIndex::new();
        index.insert(1u32, &b(0.0, 0.0, 1.0, 1.0), &w(0, Some(2)));
        index.insert(1, &b(10.0, 10.0, 11.0, 11.0), &w(0, Some(2)));
        assert_eq!(index.len(), 1);
        let mut out = Vec::new();
        index.candidates(&b(0.0, 0.0, 1.0, 1.0), &w(0, Some(2)), &mut out);
        assert!(out.is_empty(), "the old box is gone after an update");
        assert!(index.remove(1));
        assert!(!index.remove(1));
        index.candidates(&b(10.0, 10.0, 11.0, 11.0), &w(0, Some(2)), &mut out);
        assert!(out.is_empty());
        assert!(index.is_empty());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::time::Timestamp;
    use proptest::prelude::*;

    /// A box anywhere, sometimes across the antimeridian, sometimes all
    /// longitudes.
    fn bounds() -> impl Strategy<Value = GeoBounds> {
        (
            -90.0..90.0f64,
            0.0..20.0f64,
            -180.0..180.0f64,
            0.0..40.0f64,
            0..20u8,
        )
            .prop_map(|(south, height, west, width, shape)| {
                let north = (south + height).min(90.0);
                if shape == 0 {
                    return GeoBounds {
                        south_deg: south,
                        north_deg: north,
                        west_deg: -180.0,
                        east_deg: 180.0,
                    };
                }
                let mut east = west + width;
                if east > 180.0 {
                    east -= 360.0; // wraps: west > east
                }
                GeoBounds {
                    south_deg: south,
                    north_deg: north,
                    west_deg: west,
                    east_deg: east,
                }
            })
    }

    fn window() -> impl Strategy<Value = TimeWindow> {
        (0..1_000i64, 1..200i64, 0..10u8).prop_map(|(start_min, length_min, open)| {
            let start = Timestamp(start_min * 60_000);
            let end = (open != 0).then(|| start.plus_ms(length_min * 60_000));
            TimeWindow::new(start, end)
        })
    }

    fn lon_overlap(a: &GeoBounds, b: &GeoBounds) -> bool {
        let intervals = |g: &GeoBounds| -> Vec<(f64, f64)> {
            if g.west_deg <= g.east_deg {
                vec![(g.west_deg, g.east_deg)]
            } else {
                vec![(g.west_deg, 180.0), (-180.0, g.east_deg)]
            }
        };
        intervals(a)
            .iter()
            .any(|&(w1, e1)| intervals(b).iter().any(|&(w2, e2)| w1 <= e2 && w2 <= e1))
    }

    /// The index's contract, stated without it: closed boxes in space, and
    /// windows whose closed hulls meet.
    fn brute_force_meets(a: &(GeoBounds, TimeWindow), b: &(GeoBounds, TimeWindow)) -> bool {
        let lat = a.0.south_deg <= b.0.north_deg && b.0.south_deg <= a.0.north_deg;
        let time = a.1.start <= b.1.end_or_max() && b.1.start <= a.1.end_or_max();
        lat && time && lon_overlap(&a.0, &b.0)
    }

    /// Pairs in ascending order, duplicates kept (so that a pair reported
    /// twice fails the comparison).
    fn sorted(mut pairs: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
        pairs.sort_unstable();
        pairs
    }

    /// What the index must answer, from the live items alone: every pair
    /// of meeting keys, and each query's meeting keys.
    fn check_against_brute_force(
        index: &SpatioTemporalIndex<usize>,
        live: &[Option<(GeoBounds, TimeWindow)>],
        queries: &[(GeoBounds, TimeWindow)],
    ) -> Result<(), TestCaseError> {
        let expected_pairs: Vec<(usize, usize)> = (0..live.len())
            .flat_map(|i| (i + 1..live.len()).map(move |j| (i, j)))
            .filter(|&(i, j)| match (&live[i], &live[j]) {
                (Some(a), Some(b)) => brute_force_meets(a, b),
                _ => false,
            })
            .collect();
        prop_assert_eq!(sorted(index.pairs()), expected_pairs);
        prop_assert_eq!(index.len(), live.iter().flatten().count());
        let mut out = Vec::new();
        for query in queries {
            index.candidates(&query.0, &query.1, &mut out);
            let expected: Vec<usize> = (0..live.len())
                .filter(|&k| {
                    live[k]
                        .as_ref()
                        .is_some_and(|item| brute_force_meets(item, query))
                })
                .collect();
            prop_assert_eq!(&out, &expected);
        }
        Ok(())
    }

    /// What the engine does to its index.
    #[derive(Debug, Clone)]
    enum Op {
        /// Notify (a new key) or update (a held one).
        Insert(prop::sample::Index, GeoBounds, TimeWindow),
        /// Cancel or expire.
        Remove(prop::sample::Index),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<prop::sample::Index>(), bounds(), window()).prop_map(|(k, b, w)| Op::Insert(k, b, w)),
            2 => any::<prop::sample::Index>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The packed tree, its dynamic part and the rebuilds that merge
        /// them, through any sequence of inserts, updates and removals
        /// (rebuilding after as few as one change), answer exactly as brute
        /// force does after every few steps.
        #[test]
        fn any_sequence_of_changes_answers_as_brute_force(
            initial in prop::collection::vec((bounds(), window()), 0..80),
            ops in prop::collection::vec(op(), 1..120),
            queries in prop::collection::vec((bounds(), window()), 1..8),
            min_rebuild in 0..40usize,
            keys in 1..120usize,
        ) {
            let mut live: Vec<Option<(GeoBounds, TimeWindow)>> = vec![None; keys.max(initial.len())];
            for (k, item) in initial.iter().enumerate() {
                live[k] = Some(*item);
            }
            let mut index = SpatioTemporalIndex::bulk_load(initial.iter().enumerate().map(|(k, (b, w))| (k, b, w)));
            index.min_rebuild = min_rebuild;
            check_against_brute_force(&index, &live, &queries)?;
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(k, b, w) => {
                        let k = k.index(live.len());
                        index.insert(k, &b, &w);
                        live[k] = Some((b, w));
                    }
                    Op::Remove(k) => {
                        let k = k.index(live.len());
                        prop_assert_eq!(index.remove(k), live[k].is_some());
                        live[k] = None;
                    }
                }
                for (k, item) in live.iter().enumerate() {
                    prop_assert_eq!(index.contains(k), item.is_some());
                }
                if step % 7 == 0 {
                    check_against_brute_force(&index, &live, &queries)?;
                }
            }
            check_against_brute_force(&index, &live, &queries)?;
        }

        #[test]
        fn never_misses_a_candidate_and_reports_only_meeting_boxes(
            items in prop::collection::vec((bounds(), window()), 1..120),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
            queries in prop::collection::vec((bounds(), window()), 1..20),
            bulk in any::<bool>(),
        ) {
            let mut index = if bulk {
                SpatioTemporalIndex::bulk_load(items.iter().enumerate().map(|(k, (b, w))| (k, b, w)))
            } else {
                let mut index = SpatioTemporalIndex::new();
                for (k, (b, w)) in items.iter().enumerate() {
                    index.insert(k, b, w);
                }
                index
            };
            let mut live: Vec<bool> = vec![true; items.len()];
            for r in removed {
                let k = r.index(items.len());
                prop_assert_eq!(index.remove(k), live[k]);
                live[k] = false;
            }
            let expected_pairs: Vec<(usize, usize)> = (0..items.len())
                .flat_map(|i| (i + 1..items.len()).map(move |j| (i, j)))
                .filter(|&(i, j)| live[i] && live[j] && brute_force_meets(&items[i], &items[j]))
                .collect();
            prop_assert_eq!(sorted(index.pairs()), expected_pairs);
            let mut out = Vec::new();
            for query in &queries {
                index.candidates(&query.0, &query.1, &mut out);
                let expected: Vec<usize> = (0..items.len())
                    .filter(|&k| live[k] && brute_force_meets(&items[k], query))
                    .collect();
                prop_assert_eq!(&out, &expected);
            }
        }
    }
}
