//! [`TrackWatch::handle_reports`]: a batch of reports (typically a second's
//! worth) taken at one `now`, with exactly the outcomes and alerts, in the
//! same order, that `handle_report` gives for each report in turn.
//!
//! Why it is faster: report by report, most of the time goes into finding
//! each report's candidates (the index's cells, the other entities' filter
//! data), read in the order the reports come, which is random in space, so
//! nearly every read misses the cache. A batch does that work in an order
//! sorted by cell, so that neighbouring reports read the same cells and the
//! same neighbours while they are cached, and on up to
//! [`TrackConfig::batch_threads`] threads, then applies the reports in their
//! given order.
//!
//! Why the alerts are the same: a run of the batch in which no entity
//! reports twice goes in three steps.
//!
//! 1. **Admit** (in order, changing only the counters): each report's
//!    outcome is decided as `handle_report` would decide it. An entity's
//!    state changes only through its own reports, and new entities count
//!    against the limits as `Pending`, so the outcomes are those of the
//!    reports in turn. A report of an entity the run already changed ends
//!    the run; the next run starts with it. A run also ends after
//!    [`TrackConfig::batch_run_reports`] reports, which bounds its working
//!    memory (runs follow each other as reports in turn do).
//! 2. **Gather** (read-only, any order, in parallel): every applied report's
//!    new state is `prepare`d, and then its candidates are found. When report
//!    `i` is applied in turn, every other entity `b` is in one of two states:
//!    its state after its own report if that report comes before `i` in the
//!    run, else its state before the run. The gather step uses exactly that
//!    state for the two things `handle_report` reads of `b`: whether the
//!    index returns it for `i`'s query (its filing in that state: the index
//!    as it was, plus a second index of the filings the run changes) and
//!    whether a pair without an open episode passes `check_pair`'s first
//!    tests (`may_open`). The pairs that do not are exactly those for which
//!    `check_pair` would return at once. The fences near each report depend
//!    only on its own state. The gathering also computes the closest
//!    approaches `check_pair` will most likely ask for (`Foreseen`: a pure
//!    function of the same two states; `check_pair` uses one only when it
//!    is the call it would make, the same form and the same instant hint),
//!    so that the exact CPA search runs on the threads too.
//! 3. **Apply** (in order): each report is applied and `check_pair` runs on
//!    its gathered pairs plus its open episodes (the same calls, minus
//!    those that would have returned at once, in the same slot order),
//!    then the fences and the plan are checked as `handle_report` does.
//!
//! `tests/tracks_batch.rs` checks the equality on seeded random fleets.

use std::collections::BTreeMap;
use std::ops::Range;

use super::*;

/// Fewer reports than this per thread are not worth a thread's start.
const REPORTS_PER_THREAD: usize = 1_024;

/// `GatherScratch::marks`: found in the index as it was before the run.
const FOUND_BEFORE: u32 = 1;
/// `GatherScratch::marks`: found in the run's new filings.
const FOUND_AFTER: u32 = 2;

/// `Run::read_ahead`: the reports whose records the gathering reads at once.
const READ_AHEAD: usize = 32;

/// `read_ahead_uids`: the reports whose entities a lookup loop reads at once.
const UID_READ_AHEAD: usize = 16;

/// Reads what `slot_of` and the lookup loop read of each of `reports` (at
/// most `UID_READ_AHEAD`), in waves whose iterations do not depend on each
/// other, so that each wave's cache misses are in flight together: the
/// uid table's first candidate for the uid's hash, its slot, the entity's
/// record (the held uid) and `Kin`, then the held uid's text. Looked up
/// one after the other, each report waits for four or five misses in
/// turn (the uid tables of ids only added the record's). Changes nothing;
/// a candidate that is not the entity (another uid with the same hash
/// bits) is read for nothing.
fn read_ahead_uids(watch: &TrackWatch, reports: &[PositionReport]) {
    let mut slots = [NONE; UID_READ_AHEAD];
    for (report, slot) in reports.iter().zip(&mut slots) {
        if let Some(party) = watch.parties.get(&report.party) {
            if let Some(&id) = party.by_uid.iter_hash(uid_hash(report.uid)).next() {
                *slot = id;
            }
        }
    }
    for slot in &mut slots[..reports.len()] {
        *slot = watch.slot_of_id.get(*slot as usize).copied().unwrap_or(NONE);
    }
    let mut touched = 0u64;
    for &slot in &slots[..reports.len()] {
        if let Some(Some(entity)) = watch.entities.get(slot as usize) {
            touched ^= entity.key.uid.len() as u64;
        }
        if let Some(kin) = watch.kin.get(slot as usize) {
            touched ^= kin.tangent.time_ms as u64;
        }
    }
    for &slot in &slots[..reports.len()] {
        if let Some(Some(entity)) = watch.entities.get(slot as usize) {
            touched ^= entity.key.uid.as_bytes().first().map_or(0, |&b| u64::from(b));
        }
    }
    std::hint::black_box(touched);
}

/// A run gathers new entities after the existing ones (above any slot).
const NEW_AFTER_EXISTING: u64 = 1 << 63;

/// No entity in a batch's slots: its report is not in the run.
const NOT_IN_RUN: u32 = u32::MAX;

/// Where a slot's entity is in a run: 8 bytes per slot (12 with the two
/// flags in fields of their own).
#[derive(Debug, Clone, Copy)]
struct InRun {
    /// The step of its report (`NOT_IN_RUN`).
    step: u32,
    /// Its report's place in the gathering order (`by_cell`), where its
    /// prepared state is (`PLACE`: `NO_PLACE` out of the run, past any
    /// run's end); `REFILED`: whether the report changes its filing
    /// (`Prepared::refiled`); `NEAR_GROWN`: whether a scan earlier in the
    /// run added to its near list (a quiet report then checks its whole
    /// list, not what the gathering found).
    place_and_flags: u32,
}

/// `InRun::place_and_flags`: the place (a run holds at most a million
/// reports, `TrackConfig::batch_run_reports`, below 2³⁰).
const PLACE: u32 = (1 << 30) - 1;
const NO_PLACE: u32 = PLACE;
const REFILED: u32 = 1 << 30;
const NEAR_GROWN: u32 = 1 << 31;

const OUT_OF_RUN: InRun = InRun {
    step: NOT_IN_RUN,
    place_and_flags: NO_PLACE,
};

impl InRun {
    fn place(self) -> usize {
        (self.place_and_flags & PLACE) as usize
    }

    fn refiled(self) -> bool {
        self.place_and_flags & REFILED != 0
    }

    fn near_grown(self) -> bool {
        self.place_and_flags & NEAR_GROWN != 0
    }

    /// Its place and whether it refiles (its near list not grown yet).
    fn set_place(&mut self, place: usize, refiled: bool) {
        debug_assert!(place < PLACE as usize);
        self.place_and_flags = place as u32 | if refiled { REFILED } else { 0 };
    }

    fn set_near_grown(&mut self) {
        self.place_and_flags |= NEAR_GROWN;
    }
}

/// An applied report of a run: 24 bytes (the checked values of the report
/// are not kept: `prepare` checks the report again, a pure function of the
/// report, `now` and the configuration, on the gathering threads).
#[derive(Debug)]
struct Step {
    /// Its index in the batch.
    report: usize,
    slot: u32,
    /// The entity's id (see `TrackWatch::entities`).
    id: u32,
    /// The entity's slot before the run (`NONE` for a new entity).
    existing: u32,
    plan_kind: Option<ActivityKind>,
}

impl Step {
    fn existing(&self) -> Option<u32> {
        (self.existing != NONE).then_some(self.existing)
    }

    /// What `admit` decided for the step's report, checked again.
    fn admitted(&self, now: Timestamp, report: &PositionReport, config: &TrackConfig) -> Admitted {
        Admitted {
            existing: self.existing(),
            checked: report
                .check(now, config)
                .expect("an admitted report passes its check"),
            plan_kind: self.plan_kind,
        }
    }
}

/// What one gathering thread found, for the steps it was given.
#[derive(Debug, Default)]
struct Gathered {
    /// `by_id`, sorted per step.
    pairs: Vec<u64>,
    fences: Vec<u32>,
    /// Sorted by the other entity's slot per step.
    foreseen: Vec<Foreseen>,
    /// The near list (ids, sorted) of each step that scans.
    near: Vec<u32>,
    /// Per step, the partners (sorted) of its open episodes for which
    /// `check_pair` returns at once (`pair_triage`) if the same kinds of
    /// episode are still open at the step: the apply step skips them then.
    /// (Between the run's start and the step, only the partner's own
    /// report, earlier in the run, may change the pair's episodes; the
    /// partner's state is taken as it is at the step.)
    settled: Vec<Settled>,
    /// Per step, in the order the thread gathered them (its part of the
    /// run's gathering order): where its findings end (each starts where
    /// the previous step's end).
    ends: Vec<Ends>,
    /// The longest each of the six vectors above was in a run since the
    /// last `trim`.
    longest: [usize; 6],
}

/// Where one step's findings end in its thread's `Gathered`, and whether
/// the entity had open zone episodes before the run (only its own reports
/// change them in a run). In 32 bits: a run holds at most a million
/// reports.
#[derive(Debug, Clone, Copy, Default)]
struct Ends {
    pairs: u32,
    fences: u32,
    foreseen: u32,
    near: u32,
    settled: u32,
    zones_open: bool,
}

/// Where one step's findings are in its thread's `Gathered`.
#[derive(Debug, Clone, Copy)]
struct Span {
    pairs: [u32; 2],
    fences: [u32; 2],
    foreseen: [u32; 2],
    near: [u32; 2],
    settled: [u32; 2],
    zones_open: bool,
}

impl Gathered {
    fn lens(&self) -> [usize; 6] {
        [
            self.pairs.len(),
            self.fences.len(),
            self.foreseen.len(),
            self.near.len(),
            self.settled.len(),
            self.ends.len(),
        ]
    }

    /// Gives back the room none of the runs since the last call used (see
    /// `trim_snug`): a batch of only new entities (the first second of a
    /// fleet, every report scanning) gathers several times what the steady
    /// batches after it do, and kept that room (20 bytes per entity at
    /// W3's 100k in foreseen approaches alone).
    fn trim(&mut self) {
        let [pairs, fences, foreseen, near, settled, ends] = std::mem::take(&mut self.longest);
        trim_snug(&mut self.pairs, pairs);
        trim_snug(&mut self.fences, fences);
        trim_snug(&mut self.foreseen, foreseen);
        trim_snug(&mut self.near, near);
        trim_snug(&mut self.settled, settled);
        trim_snug(&mut self.ends, ends);
    }

    /// The findings of the thread's `at`-th step. (Found through the
    /// step's place in the gathering order, which the run keeps per slot
    /// anyway: no per-step record of where its findings are, 48 bytes a
    /// report before.)
    fn span(&self, at: usize) -> Span {
        let start = at.checked_sub(1).map_or(Ends::default(), |k| self.ends[k]);
        let end = self.ends[at];
        Span {
            pairs: [start.pairs, end.pairs],
            fences: [start.fences, end.fences],
            foreseen: [start.foreseen, end.foreseen],
            near: [start.near, end.near],
            settled: [start.settled, end.settled],
            zones_open: end.zones_open,
        }
    }
}

fn range([start, end]: [u32; 2]) -> Range<usize> {
    start as usize..end as usize
}

/// The read-only view of a run the gathering threads share.
struct Run<'a> {
    watch: &'a TrackWatch,
    now: Timestamp,
    /// In gathering order (`InRun::place`): a report's candidates that
    /// report in the run too are near it in that order, so their new state
    /// is read from nearby memory.
    prepared: &'a [Prepared],
    /// Per step, the entity's id.
    ids: &'a [u32],
    /// Per slot, where its entity is in the run.
    step_of: &'a [InRun],
    /// The new filings of the entities whose filing the run changes.
    refiled: &'a Grid,
    /// The watch's index as it was before the run, packed.
    packed: &'a PackedGrid,
    /// At least the radius of every plan live during the run.
    quiet_radius_max_m: f64,
}

/// A batch's working memory, kept in the watch from run to run: a few
/// hundred bytes per report of a run, at most `batch_run_reports` reports.
/// Allocated afresh every run, glibc's allocator raised its mmap threshold
/// past these buffers once they were freed and then kept them in its heap,
/// a little more after each run (1,376 bytes resident per entity after 15
/// ticks of 100k, against 722 after the first); reused, they cost what
/// they hold.
#[derive(Debug)]
pub(super) struct BatchScratch {
    steps: Vec<Step>,
    prepared: Vec<Prepared>,
    /// Per slot, where its entity is in the run (`OUT_OF_RUN` for every
    /// slot between runs).
    step_of: Vec<InRun>,
    /// The steps in gathering order, each after its cell's key, then (once
    /// sorted) after its slot.
    by_cell: Vec<(u64, u32)>,
    ids: Vec<u32>,
    /// Per report of the run, its entity's slot before the run (`NONE`
    /// for a new entity) and the time of the entity's current report.
    existing: Vec<(u32, i64)>,
    /// The new filings of the entities whose filing the run changes.
    refiled: Grid,
    packed: PackedGrid,
    /// Per gathering thread.
    threads: Vec<GatherScratch>,
}

/// One gathering thread's marks and findings.
#[derive(Debug, Default)]
struct GatherScratch {
    /// Per slot, the last query that found it (`filed_at`'s `query`, two
    /// bits up) and where that query found it: in the index as it was
    /// before the run (`FOUND_BEFORE`), in the run's new filings
    /// (`FOUND_AFTER`). One array, not one per index: 4 bytes per slot and
    /// thread less. Kept from run to run: a run's queries are numbered
    /// from `first_query` on, above every earlier run's since the marks
    /// were last cleared.
    marks: Vec<u32>,
    first_query: u32,
    fence_seen: Vec<u32>,
    found: Vec<u32>,
    /// The ids of the reporting entity's open `cpa` episodes.
    open_cpa: Vec<u32>,
    out: Gathered,
}

impl BatchScratch {
    pub(super) fn new(cell_m: f64) -> Self {
        Self {
            steps: Vec::new(),
            prepared: Vec::new(),
            step_of: Vec::new(),
            by_cell: Vec::new(),
            ids: Vec::new(),
            existing: Vec::new(),
            refiled: Grid::new(cell_m),
            packed: PackedGrid::default(),
            threads: Vec::new(),
        }
    }

    /// Heap bytes held, for memory accounting.
    pub(super) fn heap_bytes(&self) -> usize {
        fn bytes<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        let threads: usize = self
            .threads
            .iter()
            .map(|t| {
                bytes(&t.marks)
                    + bytes(&t.fence_seen)
                    + bytes(&t.found)
                    + bytes(&t.open_cpa)
                    + bytes(&t.out.pairs)
                    + bytes(&t.out.fences)
                    + bytes(&t.out.foreseen)
                    + bytes(&t.out.near)
                    + bytes(&t.out.settled)
                    + bytes(&t.out.ends)
            })
            .sum();
        bytes(&self.steps)
            + bytes(&self.prepared)
            + bytes(&self.step_of)
            + bytes(&self.by_cell)
            + bytes(&self.ids)
            + bytes(&self.existing)
            + self.refiled.heap_bytes()
            + self.packed.heap_bytes()
            + threads
    }
}

impl TrackWatch {
    /// Takes a batch of position reports at `now`: the same outcomes (one
    /// per report, in order) and the same alerts in the same order as
    /// [`handle_report`](Self::handle_report) on each report in turn, with
    /// less work when the batch is large (see the module `watch/batch.rs`).
    pub fn handle_reports(
        &mut self,
        now: Timestamp,
        reports: &[PositionReport],
    ) -> Vec<Result<ReportOutcome, TrackError>> {
        let mut results = Vec::with_capacity(reports.len());
        let mut next = 0;
        while next < reports.len() {
            next = self.handle_run(now, reports, next, &mut results);
        }
        for thread in &mut self.batch.threads {
            thread.out.trim();
        }
        trim_heap_snug(&mut self.horizons);
        results
    }

    /// Handles the reports from `first` until an entity reports a second
    /// time, the run is `batch_run_reports` long, or the end; returns where
    /// it stopped.
    fn handle_run(
        &mut self,
        now: Timestamp,
        reports: &[PositionReport],
        first: usize,
        results: &mut Vec<Result<ReportOutcome, TrackError>>,
    ) -> usize {
        self.handle_tick(now);
        self.relayout_if_disordered();
        if self.fence_packed.is_none() {
            let mut packed = PackedGrid::default();
            packed.pack(&self.fence_grid);
            self.fence_packed = Some(packed);
        }
        let mut scratch = std::mem::replace(&mut self.batch, BatchScratch::new(self.config.grid_cell_m));
        let end = self.admit_run(now, reports, first, results, &mut scratch);
        let BatchScratch {
            steps,
            prepared,
            step_of,
            by_cell,
            ids,
            existing: _,
            refiled,
            packed,
            threads: thread_scratch,
        } = &mut scratch;
        let threads = self
            .config
            .batch_threads
            .min(steps.len() / REPORTS_PER_THREAD)
            .max(1);

        // Neighbouring reports one after the other: they read the same cells
        // and the same neighbours. In Z order of their cells rather than row
        // by row: a row of cells holds more neighbours than a core's cache,
        // so in row order the next row's reports found the neighbours they
        // share with this row's evicted again. An entity's slot is that
        // order already (`relayout`: slots in Z order of the filed cells),
        // and in slot order the gathering reads the records one after the
        // other; new entities follow, in Z order of their reported
        // position's cell. The order is known before `prepare`, which then
        // writes each state in its place (no permutation of the run's
        // 8 MiB of states afterwards). Any order gives the same findings;
        // this one gives locality.
        by_cell.clear();
        by_cell.extend(steps.iter().enumerate().map(|(i, step)| {
            let key = match step.existing() {
                Some(slot) => u64::from(slot),
                None => {
                    let position = reports[step.report].position;
                    let (row, column) = self.grid.cell_of(position.lat_deg, position.lon_deg);
                    NEW_AFTER_EXISTING | z_order(row, column)
                }
            };
            (key, i as u32)
        }));
        by_cell.sort_unstable();
        prepared.clear();
        if let Some(step) = steps.first() {
            // Any value: every element is overwritten below.
            let report = &reports[step.report];
            let placeholder = self.prepare(now, report, &step.admitted(now, report, &self.config));
            prepared.resize(steps.len(), placeholder);
        }
        let per_thread = steps.len().div_ceil(threads).max(1);
        in_parallel(
            by_cell
                .chunks(per_thread)
                .zip(prepared.chunks_mut(per_thread))
                .collect(),
            |(places, prepared)| {
                for (&(_, i), p) in places.iter().zip(prepared) {
                    let step = &steps[i as usize];
                    let report = &reports[step.report];
                    *p = self.prepare(now, report, &step.admitted(now, report, &self.config));
                }
            },
        );

        // The index as it is before the run: patched for the cells changed
        // since the last run (a small call costs what its reports cost),
        // copied afresh when many changed.
        packed.refresh(&mut self.grid);
        refiled.clear();
        for (place, (key, i)) in by_cell.iter_mut().enumerate() {
            let (step, p) = (&steps[*i as usize], &prepared[place]);
            let in_run = &mut step_of[step.slot as usize];
            in_run.set_place(place, p.refiled);
            if p.refiled {
                refiled.insert(p.filed, p.layer, step.slot);
            }
            // The key's place now holds the slot, so that the gathering
            // reads it here, not in `steps` (in report order).
            *key = u64::from(step.slot);
        }
        ids.clear();
        ids.extend(steps.iter().map(|step| step.id));
        // The plans the run's scans make count toward the scans' reach.
        let mut quiet_radius_max_m = self.quiet_radius_max_m;
        if self.quiet_enabled() {
            for p in prepared.iter().filter(|p| !p.quiet) {
                // (A first plan's horizon may be shorter: its radius too.)
                quiet_radius_max_m = quiet_radius_max_m.max(self.plan_after(now, p, None).radius_m);
            }
        }
        let run = Run {
            quiet_radius_max_m,
            watch: self,
            now,
            prepared,
            ids,
            step_of,
            refiled,
            packed,
        };
        thread_scratch.resize_with(threads.max(thread_scratch.len()), GatherScratch::default);
        // Thread `t` gathers places `t * chunk ..`: a step's findings are
        // its thread's `place % chunk`-th.
        let chunk = by_cell.len().div_ceil(threads).max(1);
        in_parallel(
            by_cell.chunks(chunk).zip(thread_scratch.iter_mut()).collect(),
            |(chunk, scratch)| run.gather(chunk, scratch),
        );

        for step in steps.iter() {
            let place = step_of[step.slot as usize].place();
            let found = &thread_scratch[place / chunk].out;
            let span = found.span(place % chunk);
            let prepared = &prepared[place];
            // No fence near the path and no zone episode open: the fences'
            // check would change nothing.
            let fences = &found.fences[range(span.fences)];
            let check_fences = !fences.is_empty() || span.zones_open;
            let previous = step
                .existing()
                .filter(|_| check_fences)
                .map(|slot| self.motion(slot));
            let slot = self.apply(now, &reports[step.report], step.existing(), prepared);
            assert_eq!(slot, step.slot, "a run predicts the slots of its new entities");
            assert_eq!(
                self.id(slot),
                step.id,
                "a run predicts the ids of its new entities"
            );
            if prepared.quiet {
                self.stats.quiet_reports += 1;
            }
            if prepared.quiet && step_of[slot as usize].near_grown() {
                self.check_quiet_pairs(
                    now,
                    slot,
                    &found.foreseen[range(span.foreseen)],
                    &found.settled[range(span.settled)],
                );
            } else {
                // A scan's pairs; or a quiet report whose near list is the
                // one the gathering read, or shorter: the members the index
                // returns that `may_open` passes, as for a scan.
                self.check_pairs_among(
                    now,
                    slot,
                    &found.pairs[range(span.pairs)],
                    &found.foreseen[range(span.foreseen)],
                    &found.settled[range(span.settled)],
                );
            }
            if !prepared.quiet && self.quiet_enabled() {
                let near = &found.near[range(span.near)];
                self.rescan_with(now, slot, near);
                for &other in near {
                    step_of[self.slot_of_id[other as usize] as usize].set_near_grown();
                }
            }
            if check_fences {
                self.check_fences(now, slot, previous.as_ref(), &found.fences[range(span.fences)]);
            }
            self.check_plan(now, slot);
        }
        // Every slot out of the run again, for the next (clearing the
        // whole array each run cost a pass over every slot, most of a
        // small call): the run's own, and those whose near list grew.
        for step in steps.iter() {
            let place = step_of[step.slot as usize].place();
            let found = &thread_scratch[place / chunk].out;
            for &other in &found.near[range(found.span(place % chunk).near)] {
                let other = &mut step_of[self.slot_of_id[other as usize] as usize];
                // (One in the run keeps its place for this loop.)
                if other.step == NOT_IN_RUN {
                    *other = OUT_OF_RUN;
                }
            }
        }
        for step in steps.iter() {
            step_of[step.slot as usize] = OUT_OF_RUN;
        }
        debug_assert!(step_of
            .iter()
            .all(|s| s.step == NOT_IN_RUN && s.place_and_flags == NO_PLACE));
        self.batch = scratch;
        end
    }

    /// Decides the outcome of every report from `first` on, in order, until
    /// an entity the run changes reports again or the run holds
    /// `batch_run_reports` reports; pushes the outcomes. Leaves the applied
    /// ones in `scratch.steps` and per slot its step in `scratch.step_of`;
    /// returns where the run ends.
    fn admit_run(
        &mut self,
        now: Timestamp,
        reports: &[PositionReport],
        first: usize,
        results: &mut Vec<Result<ReportOutcome, TrackError>>,
        scratch: &mut BatchScratch,
    ) -> usize {
        let slots_before = self.entities.len();
        let ids_before = self.slot_of_id.len();
        // New entities take free slots and ids (last freed first), then new
        // ones, as `insert` will give them.
        let longest = (reports.len() - first).min(self.config.batch_run_reports);
        // (Every slot is out of any run between runs: see `handle_run`.)
        let step_of = &mut scratch.step_of;
        if step_of.len() < slots_before + longest {
            step_of.reserve_exact(slots_before + longest - step_of.len());
            step_of.resize(slots_before + longest, OUT_OF_RUN);
        }
        // Every report's entity looked up first, on the gathering threads,
        // with the time of its current report: a hash probe, a comparison of
        // the uid with the held one and the entity's filter data, all cache
        // misses at random places, were a tenth of the calling thread's
        // time. Nothing the loop below changes the uids held or the
        // entities' states (new entities are inserted and states changed by
        // the apply step), so each is what `handle_report` reads.
        let lookups = &mut scratch.existing;
        lookups.clear();
        lookups.resize(longest, (NONE, 0));
        let threads = self.config.batch_threads.min(longest / REPORTS_PER_THREAD).max(1);
        let per_thread = longest.div_ceil(threads).max(1);
        let watch = &*self;
        in_parallel(
            reports[first..first + longest]
                .chunks(per_thread)
                .zip(lookups.chunks_mut(per_thread))
                .collect(),
            |(reports, found)| {
                for (reports, found) in reports
                    .chunks(UID_READ_AHEAD)
                    .zip(found.chunks_mut(UID_READ_AHEAD))
                {
                    read_ahead_uids(watch, reports);
                    for (report, found) in reports.iter().zip(found) {
                        if let Some(slot) = watch.slot_of(report.party, report.uid) {
                            *found = (slot, watch.kin[slot as usize].tangent.time_ms);
                        }
                    }
                }
            },
        );
        let mut new_keys: StableHashMap<(PartyId, &str), ()> = StableHashMap::default();
        let mut pending_by_party: BTreeMap<PartyId, usize> = BTreeMap::new();
        let mut pending_all = 0;
        let steps = &mut scratch.steps;
        steps.clear();
        let mut end = first;
        while let Some(report) = reports.get(end).filter(|_| end - first < longest) {
            let current = Some(scratch.existing[end - first]).filter(|&(slot, _)| slot != NONE);
            let existing = current.map(|(slot, _)| slot);
            let again = match existing {
                Some(slot) => step_of[slot as usize].step != NOT_IN_RUN,
                None => new_keys.contains_key(&(report.party, report.uid)),
            };
            if again {
                break;
            }
            let pending = Pending {
                party: pending_by_party.get(&report.party).copied().unwrap_or(0),
                all: pending_all,
            };
            match self.admit(now, report, current, pending) {
                Err(error) => results.push(Err(error)),
                Ok(Err(ignored)) => results.push(Ok(ignored)),
                Ok(Ok(Admitted {
                    existing: _,
                    checked: _,
                    plan_kind,
                })) => {
                    results.push(Ok(ReportOutcome::Applied));
                    let (slot, id) = match existing {
                        Some(slot) => (slot, self.id_of[slot as usize]),
                        None => {
                            let next =
                                |free: &[u32], before: usize| match free.len().checked_sub(pending_all + 1) {
                                    Some(at) => free[at],
                                    None => (before + pending_all - free.len()) as u32,
                                };
                            let slot = next(&self.free_slots, slots_before);
                            let id = next(&self.free, ids_before);
                            pending_all += 1;
                            *pending_by_party.entry(report.party).or_default() += 1;
                            new_keys.insert((report.party, report.uid), ());
                            (slot, id)
                        }
                    };
                    step_of[slot as usize].step = steps.len() as u32;
                    steps.push(Step {
                        report: end,
                        slot,
                        id,
                        existing: existing.unwrap_or(NONE),
                        plan_kind,
                    });
                }
            }
            end += 1;
        }
        // Room for the run's new entities, and for as many more in the rest
        // of the call as this run's share of new ones foretells (a fleet's
        // first call: all of them, in one block; an ordinary one: none).
        // A foretold entity that does not come costs address space only.
        let (run, rest) = (end - first, reports.len() - end);
        let foretold = (pending_all * rest).div_ceil(run.max(1));
        let mut by_party: Vec<(PartyId, usize)> = pending_by_party.into_iter().collect();
        if foretold > 0 {
            for (_, count) in &mut by_party {
                *count += (*count * rest).div_ceil(run);
            }
        }
        self.reserve_new(pending_all + foretold, by_party);
        end
    }

    /// The plan a report that scans makes (`rescan` after `apply`: the
    /// entity is filed at `now`).
    /// `first`: the id of a new entity.
    fn plan_after(&self, now: Timestamp, p: &Prepared, first: Option<u32>) -> Quiet {
        let refile_ms = if p.kin.tangent.speed_mps > 0.0 {
            now.unix_ms() + self.config.refile_every_ms
        } else {
            i64::MAX
        };
        self.quiet_plan(now.unix_ms(), &p.kin.tangent, refile_ms, first)
    }

    /// `check_pairs` on the gathered pairs `may_open` passed, plus the
    /// entity's open episodes, with the approaches the gathering foresaw.
    fn check_pairs_among(
        &mut self,
        now: Timestamp,
        slot: u32,
        gathered: &[u64],
        foreseen: &[Foreseen],
        settled: &[Settled],
    ) {
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        candidates.extend_from_slice(gathered);
        let slot_of_id = &self.slot_of_id;
        candidates.extend(
            self.entity(slot)
                .pairs
                .iter()
                .map(|&(other, _, _)| by_id(other, slot_of_id[other as usize])),
        );
        self.check_candidates(now, slot, candidates, foreseen, settled);
    }
}

impl Run<'_> {
    /// The pairs and fences of the given steps (see the module documentation).
    fn gather(&self, steps: &[(u64, u32)], scratch: &mut GatherScratch) {
        let watch = self.watch;
        let slots = self.step_of.len();
        let GatherScratch {
            marks,
            first_query,
            fence_seen,
            found,
            open_cpa,
            out,
        } = scratch;
        let first_query = scratch_queries(marks, first_query, slots, 2 * self.prepared.len());
        fence_seen.clear();
        fence_seen.resize(watch.fences.len(), 0);
        out.pairs.clear();
        out.fences.clear();
        out.foreseen.clear();
        out.near.clear();
        out.settled.clear();
        out.ends.clear();
        for (query, &(slot, i)) in steps.iter().enumerate() {
            if query % READ_AHEAD == 0 {
                self.read_ahead(steps, query);
            }
            let slot = slot as u32;
            let p = &self.prepared[self.step_of[slot as usize].place()];
            let ma = p.motion();
            let id = self.ids[i as usize];
            // The entity before the run: none for a new one (its slot is free
            // or past the end until the run applies it).
            let before_run = watch.entities.get(slot as usize).and_then(Option::as_ref);
            let previous = before_run.map(|_| watch.motion(slot));
            // The entity's open `cpa` episodes before the run (a new entity
            // has none): `check_pair` will most likely need their kept form.
            open_cpa.clear();
            if let Some(entity) = before_run {
                open_cpa.extend(
                    entity
                        .pairs
                        .iter()
                        .filter(|&&(_, kind, _)| kind == AlertKind::Cpa)
                        .map(|&(other, _, _)| other),
                );
            }
            if p.quiet {
                // Its near list and open episodes as they were before the
                // run (the apply step adds what the run's scans add): the
                // closest approaches `check_quiet_pairs` will ask for.
                let entity = before_run.expect("a quiet report's entity exists");
                found.clear();
                found.extend(
                    entity
                        .near
                        .as_slice()
                        .iter()
                        .chain(open_cpa.iter())
                        .map(|&other| watch.slot_of_id[other as usize]),
                );
                found.sort_unstable();
                found.dedup();
                // Which of them the index returns for the report's query
                // (the same cell and layer test as `check_quiet_pairs`).
                // (Most near lists are empty: no query then.)
                let query = (!entity.near.is_empty()).then(|| watch.pair_query(self.now, &ma, &p.kin));
                for &b in found.iter() {
                    let in_run = self.step_of[b as usize];
                    let (kb, filed, layer) = if in_run.step < i {
                        let pb = &self.prepared[in_run.place()];
                        (&pb.kin, pb.filed, pb.layer)
                    } else {
                        let eb = watch.entity(b);
                        (
                            &watch.kin[b as usize],
                            eb.filed.get().expect("a filed entity"),
                            eb.layer,
                        )
                    };
                    // (No query: `b` is an open episode's, not on the list.)
                    let indexed = query.as_ref().is_some_and(|(cells, layers)| {
                        filed.meets(cells) && layers.as_slice().iter().any(|range| range.contains(&layer))
                    });
                    let pairs_before = out.pairs.len();
                    self.consider(
                        i,
                        (id, &ma, &p.kin),
                        b,
                        kb,
                        open_cpa,
                        &mut out.pairs,
                        &mut out.foreseen,
                    );
                    if !indexed {
                        // Not a candidate: only its kept approach (an open
                        // episode) may be asked for.
                        out.pairs.truncate(pairs_before);
                    }
                }
            } else {
                let (cells, layers) = watch.pair_query(self.now, &ma, &p.kin);
                self.filed_at(i, first_query + (i << 1), cells, layers.as_slice(), marks, found);
                for &b in found.iter() {
                    let kb = self.state_at(i, b).0;
                    if kb.party == p.kin.party {
                        continue;
                    }
                    self.consider(
                        i,
                        (id, &ma, &p.kin),
                        b,
                        kb,
                        open_cpa,
                        &mut out.pairs,
                        &mut out.foreseen,
                    );
                }
                if watch.quiet_enabled() {
                    // The scan (`rescan`), against each candidate's plan
                    // when this report is applied in turn.
                    let plan = watch.plan_after(self.now, p, before_run.is_none().then_some(id));
                    let (cells, layers) =
                        watch.scan_query(self.now, &ma, &p.kin, &plan, self.quiet_radius_max_m);
                    // A query apart from the pair query's.
                    self.filed_at(
                        i,
                        first_query + (i << 1 | 1),
                        cells,
                        layers.as_slice(),
                        marks,
                        found,
                    );
                    let near_start = out.near.len();
                    for &b in found.iter() {
                        let (kb, changed) = self.state_at(i, b);
                        if kb.party == p.kin.party {
                            continue;
                        }
                        let in_run = self.step_of[b as usize];
                        let plan_b = if changed && !self.prepared[in_run.place()].quiet {
                            let new = watch.entities.get(b as usize).is_none_or(Option::is_none);
                            let b_id = self.id_of(b, in_run);
                            watch.plan_after(self.now, &self.prepared[in_run.place()], new.then_some(b_id))
                        } else {
                            watch.entity(b).quiet
                        };
                        if !watch.far(self.now.unix_ms(), (&plan, &p.kin), (&plan_b, kb)) {
                            out.near.push(self.id_of(b, in_run));
                        }
                    }
                    out.near[near_start..].sort_unstable();
                }
            }
            // Open episodes certain to stay as they are.
            if let Some(entity) = before_run {
                let settled_start = out.settled.len();
                for (k, &(other, _, _)) in entity.pairs.iter().enumerate() {
                    if entity.pairs[..k].iter().any(|&(o, _, _)| o == other) {
                        continue;
                    }
                    // The partner in the state it has at this step: its
                    // new one if it reports earlier in the run. The pair's
                    // episodes may change at that earlier step; the apply
                    // step then finds other kinds open than these and calls
                    // `check_pair` after all (`check_candidates`).
                    let b = watch.slot_of_id[other as usize];
                    let open = open_kinds(&entity.pairs[k..], other);
                    if watch
                        .pair_triage(self.now, &p.kin, self.state_at(i, b).0, open[0], open[1])
                        .is_none()
                    {
                        out.settled.push(Settled { other, open });
                    }
                }
                out.settled[settled_start..].sort_unstable();
            }
            let (pairs_start, foreseen_start) = out
                .ends
                .last()
                .map_or((0, 0), |e| (e.pairs as usize, e.foreseen as usize));
            out.pairs[pairs_start..].sort_unstable();
            out.foreseen[foreseen_start..].sort_unstable_by_key(|f| f.other);
            watch.fences_near_with(
                p.kin.party,
                p.origin,
                p.kin.tangent.ecef,
                previous.as_ref(),
                (fence_seen, query as u32 + 1),
                &mut out.fences,
            );
            let zones_open = watch.zone_alerts.range((id, 0)..=(id, u32::MAX)).next().is_some();
            out.ends.push(Ends {
                pairs: out.pairs.len() as u32,
                fences: out.fences.len() as u32,
                foreseen: out.foreseen.len() as u32,
                near: out.near.len() as u32,
                settled: out.settled.len() as u32,
                zones_open,
            });
        }
        let lens = out.lens();
        for (longest, len) in out.longest.iter_mut().zip(lens) {
            *longest = (*longest).max(len);
        }
    }

    /// Reads what the gathering reads first of each report, for the
    /// `READ_AHEAD` reports from `query` on (their places in `steps`): the
    /// entity records, then their open-episode lists. Each is a miss
    /// otherwise (the records of a run are in slot order but a third of
    /// the slots apart, the lists are blocks anywhere on the heap), waited
    /// for in turn by the gathering; read here in two loops whose
    /// iterations do not depend on each other, they are in flight
    /// together. Changes nothing.
    fn read_ahead(&self, steps: &[(u64, u32)], query: usize) {
        let entities = &self.watch.entities;
        let ahead = &steps[query..steps.len().min(query + READ_AHEAD)];
        let record = |&(slot, _): &(u64, u32)| entities.get(slot as usize).and_then(Option::as_ref);
        let mut touched = 0u64;
        for entity in ahead.iter().filter_map(record) {
            touched ^= entity.pairs.len() as u64 ^ entity.near.as_slice().len() as u64;
        }
        for entity in ahead.iter().filter_map(record) {
            touched ^= entity.pairs.first().map_or(0, |&(other, _, _)| u64::from(other));
        }
        std::hint::black_box(touched);
    }

    /// The entities filed in `cells` and `layers` in the state they have
    /// when step `i` is applied in turn (the index as it was, or the run's
    /// new filing for one whose report comes before), once each, into
    /// `found`; `query` (below 2³⁰) is unique to the query in this
    /// thread's marks.
    fn filed_at(
        &self,
        i: u32,
        query: u32,
        cells: CellBox,
        layers: &[RangeInclusive<u16>],
        marks: &mut [u32],
        found: &mut Vec<u32>,
    ) {
        let watch = self.watch;
        // Every item first, then the marks: the mark of one item does
        // not decide whether the next is read (no branch on a loaded
        // mark), so the reads of the marks overlap instead of waiting
        // for each other.
        found.clear();
        self.packed
            .for_each(&watch.grid, cells, layers, |b| found.push(b));
        let mark = query << 2;
        let mut kept = 0;
        for k in 0..found.len() {
            let b = found[k];
            // (Before the run's new filings, only this flag can be set.)
            let fresh = marks[b as usize] != mark | FOUND_BEFORE;
            marks[b as usize] = mark | FOUND_BEFORE;
            found[kept] = b;
            kept += usize::from(fresh);
        }
        found.truncate(kept);
        let start = found.len();
        let mut kept = start;
        self.refiled.for_each(cells, layers, |b| found.push(b));
        for k in start..found.len() {
            let b = found[k];
            let old = marks[b as usize];
            let fresh = old >> 2 != query;
            // This query's flags so far, kept (none if another query's).
            let flags = (old & (FOUND_BEFORE | FOUND_AFTER)) * u32::from(!fresh);
            marks[b as usize] = mark | flags | FOUND_AFTER;
            found[kept] = b;
            kept += usize::from(fresh);
        }
        found.truncate(kept);
        // The same for the candidates' filter data: read (and cache)
        // all of them before the loop below branches on any.
        let mut touched = 0u64;
        for &b in found.iter() {
            // A new entity's slot may be past the end.
            if let Some(kb) = watch.kin.get(b as usize) {
                touched ^= kb.party.0;
            }
            if let Some(p) = self.prepared.get(self.step_of[b as usize].place()) {
                touched ^= p.kin.party.0;
            }
        }
        std::hint::black_box(touched);
        // (Every item in `found` carries this query's mark.)
        found.retain(|&b| {
            let in_run = self.step_of[b as usize];
            let want = if in_run.step < i && in_run.refiled() {
                FOUND_AFTER
            } else {
                FOUND_BEFORE
            };
            marks[b as usize] & want != 0
        });
    }

    /// `b`'s filter data when step `i` is applied in turn, and whether its
    /// own report (earlier in the run) changed it.
    fn state_at(&self, i: u32, b: u32) -> (&Kin, bool) {
        let in_run = self.step_of[b as usize];
        if in_run.step < i {
            (&self.prepared[in_run.place()].kin, true)
        } else {
            (&self.watch.kin[b as usize], false)
        }
    }

    /// `b`'s id (a new entity has none in the watch yet).
    fn id_of(&self, b: u32, in_run: InRun) -> u32 {
        match self.watch.id_of.get(b as usize) {
            Some(&id) if id != NONE => id,
            _ => self.ids[in_run.step as usize],
        }
    }

    /// A candidate `b` of step `i` (another party's, in the state it has
    /// then): the pair if `may_open` passes it, and the closest approach
    /// `check_pair` will most likely ask for.
    #[allow(clippy::too_many_arguments)]
    fn consider(
        &self,
        i: u32,
        (id, ma, ka): (u32, &Motion, &Kin),
        b: u32,
        kb: &Kin,
        open_cpa: &[u32],
        pairs: &mut Vec<u64>,
        foreseen: &mut Vec<Foreseen>,
    ) {
        let watch = self.watch;
        let may_open = watch.may_open(self.now, ka, kb);
        if !may_open && open_cpa.is_empty() {
            return;
        }
        let in_run = self.step_of[b as usize];
        let b_id = self.id_of(b, in_run);
        if may_open {
            pairs.push(by_id(b_id, b));
        }
        let kept = open_cpa.contains(&b_id);
        if may_open || kept {
            let mb = if in_run.step < i {
                self.prepared[in_run.place()].motion()
            } else {
                watch.motion(b)
            };
            self.foresee((id, ma, ka), (b, b_id, &mb, kb), kept, foreseen);
        }
    }
}

impl Run<'_> {
    /// The closest approach `check_pair` will most likely ask for, if its
    /// bounds say it will ask: the same conditions, the same call.
    fn foresee(
        &self,
        (id, ma, ka): (u32, &Motion, &Kin),
        (other, other_id, mb, kb): (u32, u32, &Motion, &Kin),
        kept: bool,
        out: &mut Vec<Foreseen>,
    ) {
        let watch = self.watch;
        let rule = watch.rule(ka, kb);
        let (from, to) = (
            self.now.unix_ms(),
            self.now.unix_ms() + watch.config.cpa_look_ahead_ms,
        );
        let ahead = pair_bounds(&ka.tangent, &kb.tangent, from, to);
        let approach = if kept {
            // `check_pair` keeps an open episode on the bounds alone unless
            // they straddle the clearing distance.
            let keep_m = rule.limit_m * watch.config.clear_factor;
            (rule.vertical_within(watch.config.clear_factor)
                && ahead.upper_m >= keep_m
                && ahead.lower_m < keep_m)
                .then(|| closest_approach(ma, mb, from, to, ahead.straight_time_ms))
        } else if (ma.speed_mps() > 0.0 || mb.speed_mps() > 0.0)
            // Not for a pair surely within the limits now: `check_pair`
            // does not open `cpa` for it.
            && pair_bounds(&ka.tangent, &kb.tangent, from, from).upper_m >= rule.limit_m
        {
            let (lo, hi) = if id < other_id { (ma, mb) } else { (mb, ma) };
            Some(closest_approach(lo, hi, from, to, ahead.straight_time_ms))
        } else {
            None
        };
        if let Some(approach) = approach {
            out.push(Foreseen {
                other,
                kept,
                hint_ms: ahead.straight_time_ms,
                approach,
            });
        }
    }
}

/// The position of cell (`row`, `column`) on the Z-order curve: the bits of
/// the two interleaved, so that cells close on the curve are close on the
/// grid (rows and columns take at most 24 bits, see `grid.rs`).
pub(super) fn z_order(row: u32, column: u32) -> u64 {
    fn spread(x: u32) -> u64 {
        let mut x = u64::from(x);
        x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
        x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
        x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        x = (x | (x << 2)) & 0x3333_3333_3333_3333;
        (x | (x << 1)) & 0x5555_5555_5555_5555
    }
    (spread(row) << 1) | spread(column)
}

/// Reorders `len` items in place so that item `at` becomes the one that
/// was at `from(at)` (a permutation), by swapping them (`swap(a, b)`)
/// cycle by cycle: no second copy of the items.
pub(super) fn permute(len: usize, from: impl Fn(usize) -> usize, mut swap: impl FnMut(usize, usize)) {
    let mut done = vec![false; len];
    for start in 0..len {
        let mut at = start;
        while !done[at] {
            done[at] = true;
            let source = from(at);
            if source == start {
                break;
            }
            swap(at, source);
            at = source;
        }
    }
}

/// `list` as `len` copies of `value`, with room for no more: per-slot
/// buffers are refilled every run to a length that changes little, and a
/// doubling vector of 100k slots held room for 262,144 (the part past
/// `len` is never written, so never resident, but is address space).
/// The first of `queries` new query numbers for a gathering thread's
/// `marks` (at least `slots` long afterwards), above every number it gave
/// since the marks were last cleared; `next` is where the next call
/// starts. Clears the marks when the numbers would reach `NOT_IN_RUN >> 2`
/// (the mark of a cleared entry), i.e. once in some 2³⁰ / (2 × run length)
/// runs: a small call then does not pay a pass over every slot.
fn scratch_queries(marks: &mut Vec<u32>, next: &mut u32, slots: usize, queries: usize) -> u32 {
    let limit = (NOT_IN_RUN >> 2) as usize;
    assert!(queries < limit, "a run holds at most a million reports");
    if *next as usize + queries >= limit {
        resize_snug(marks, slots, NOT_IN_RUN);
        *next = 0;
    } else if marks.len() < slots {
        marks.reserve_exact(slots - marks.len());
        marks.resize(slots, NOT_IN_RUN);
    }
    let first = *next;
    *next += queries as u32;
    first
}

fn resize_snug<T: Clone>(list: &mut Vec<T>, len: usize, value: T) {
    list.clear();
    list.reserve_exact(len);
    list.resize(len, value);
}

/// `work` on every chunk, the first on this thread and each other on a
/// thread of its own.
fn in_parallel<C: Send>(chunks: Vec<C>, work: impl Fn(C) + Sync) {
    let mut chunks = chunks.into_iter();
    let Some(first) = chunks.next() else { return };
    std::thread::scope(|scope| {
        let work = &work;
        let others: Vec<_> = chunks.map(|chunk| scope.spawn(move || work(chunk))).collect();
        work(first);
        for handle in others {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Query numbers never repeat between clearings of the marks, so a
    /// mark left by an earlier run never passes for a later run's; the
    /// marks are cleared only when the numbers would reach a cleared
    /// entry's, and grown (not cleared) for new slots.
    #[test]
    fn query_numbers_stay_apart_from_run_to_run() {
        let (mut marks, mut next) = (Vec::new(), 0);
        let mut numbers = Vec::new();
        for (slots, queries) in [(10, 6), (10, 2), (14, 8), (12, 4)] {
            let first = scratch_queries(&mut marks, &mut next, slots, queries);
            numbers.extend(first..first + queries as u32);
            marks[slots - 1] = first << 2;
        }
        assert_eq!(numbers, (0..20).collect::<Vec<u32>>());
        assert_eq!(marks.len(), 14);
        assert_eq!((marks[9], marks[13], marks[11]), (6 << 2, 8 << 2, 16 << 2));
        let limit = NOT_IN_RUN >> 2;
        next = limit - 9;
        assert_eq!(scratch_queries(&mut marks, &mut next, 14, 8), limit - 9);
        assert_eq!(marks[13], 8 << 2, "not cleared while numbers are left");
        assert_eq!(scratch_queries(&mut marks, &mut next, 14, 2), 0);
        assert!(
            marks.iter().all(|&m| m == NOT_IN_RUN),
            "cleared before numbers run out"
        );
        assert_eq!(next, 2);
    }

    #[test]
    fn a_permutation_moves_every_item_where_it_belongs() {
        let order = [3usize, 0, 4, 1, 2, 6, 5, 7];
        let mut items: Vec<char> = "abcdefgh".chars().collect();
        let before = items.clone();
        super::permute(order.len(), |at| order[at], |a, b| items.swap(a, b));
        let want: Vec<char> = order.iter().map(|&k| before[k]).collect();
        assert_eq!(items, want);
    }

    #[test]
    fn z_order_interleaves_rows_and_columns() {
        assert_eq!(z_order(0, 0), 0);
        assert_eq!(z_order(0, 1), 0b01);
        assert_eq!(z_order(1, 0), 0b10);
        assert_eq!(z_order(1, 1), 0b11);
        assert_eq!(z_order(2, 3), 0b1101);
        // The largest cell numbers (24 bits each) keep their order.
        let top = (1 << 24) - 1;
        assert!(z_order(top, top - 1) < z_order(top, top));
        assert_eq!(z_order(top, top), (1u64 << 48) - 1);
    }

    #[test]
    fn gathered_room_follows_the_longest_run_since_the_last_trim() {
        let mut out = Gathered::default();
        // A first batch's long run, then a trim with that run as the longest:
        // nothing given back.
        out.fences.resize(10_000, 0);
        out.pairs.resize(10_000, 0);
        out.longest = out.lens();
        out.fences.clear();
        out.pairs.clear();
        out.trim();
        assert!(out.fences.capacity() >= 10_000);
        assert_eq!(out.longest, [0; 6], "a trim starts the count again");
        // Steady runs of at most 1,000: the room above 1,000 + 1/8 + 64 goes.
        out.pairs.resize(1_000, 0);
        out.longest = out.lens();
        out.pairs.clear();
        out.trim();
        assert_eq!(out.pairs.capacity(), 1_000 + 125 + 64);
        assert_eq!(out.fences.capacity(), 64, "no run used any");
        // Within twice the longest: left as it is (no reallocation).
        out.pairs.resize(600, 0);
        out.longest = out.lens();
        out.trim();
        assert_eq!(out.pairs.capacity(), 1_000 + 125 + 64);
        assert_eq!(out.pairs.len(), 600, "a trim never drops items");
    }

    #[test]
    fn a_queue_gives_back_room_beyond_half_its_length_above_it() {
        let mut queue: BinaryHeap<Reverse<(i64, u32)>> = BinaryHeap::new();
        for k in 0..10_000u32 {
            push_snug(&mut queue, Reverse((i64::from(k % 97), k)));
        }
        while queue.len() > 4_000 {
            queue.pop();
        }
        let before: Vec<_> = queue.clone().into_sorted_vec();
        trim_heap_snug(&mut queue);
        assert_eq!(queue.capacity(), 4_000 + 1_000 + 64);
        assert_eq!(queue.clone().into_sorted_vec(), before, "the same entries");
        while queue.len() > 3_400 {
            queue.pop();
        }
        trim_heap_snug(&mut queue);
        assert_eq!(queue.capacity(), 4_000 + 1_000 + 64, "within a half: kept");
    }

    /// A call's new entities take the per-slot and per-id arrays' room in
    /// one block, sized by its first run and the rest of the call (not an
    /// eighth at a time: `TrackWatch::reserve_new`); a call with few new
    /// ones grows them by `grow_snug`'s step; the uid tables find all.
    #[test]
    fn a_call_of_new_entities_sizes_the_arrays_once() {
        let config = TrackConfig {
            batch_run_reports: 1_000,
            ..TrackConfig::default()
        };
        let mut watch = TrackWatch::new(config).unwrap();
        let uids: Vec<String> = (0..3_400).map(|k| format!("unit-{k}")).collect();
        let report = |k: usize, time_ms: i64| PositionReport {
            party: PartyId(1 + (k % 3) as u64),
            uid: &uids[k],
            time: Timestamp(time_ms),
            position: LonLat::new(30.0 + (k * 7_919 % 3_400) as f64 * 0.003, 36.0),
            alt_m: None,
            speed_mps: Some(0.0),
            course_deg: None,
            stale: None,
            activity: None,
        };
        let capacities = |watch: &TrackWatch| {
            [
                watch.entities.capacity(),
                watch.kin.capacity(),
                watch.id_of.capacity(),
                watch.seen.capacity(),
                watch.slot_of_id.capacity(),
            ]
        };
        let first: Vec<PositionReport> = (0..3_000).map(|k| report(k, 0)).collect();
        let outcomes = watch.handle_reports(Timestamp(0), &first);
        assert!(outcomes.iter().all(|o| o == &Ok(ReportOutcome::Applied)));
        assert_eq!(
            capacities(&watch),
            [3_000; 5],
            "one block of exactly the call's entities"
        );
        for party in 1..=3 {
            assert_eq!(watch.parties[&PartyId(party)].by_uid.len(), 1_000);
        }
        // The same entities again and 400 new ones: room for 3,000 / 8 + 64 more.
        let second: Vec<PositionReport> = (0..3_400).map(|k| report(k, 1_000)).collect();
        watch.handle_reports(Timestamp(1_000), &second);
        assert_eq!(capacities(&watch), [3_000 + 439; 5]);
        assert_eq!(watch.len(), 3_400);
        for (k, uid) in uids.iter().enumerate() {
            let party = PartyId(1 + (k % 3) as u64);
            assert_eq!(watch.track(party, uid).map(|t| t.time), Some(Timestamp(1_000)));
        }
    }

    #[test]
    fn a_slot_in_a_run_takes_eight_bytes_and_keeps_its_flags_apart() {
        assert_eq!(std::mem::size_of::<InRun>(), 8);
        let mut in_run = OUT_OF_RUN;
        assert_eq!(in_run.place(), NO_PLACE as usize);
        assert!(!in_run.refiled() && !in_run.near_grown());
        in_run.set_place(999_999, true);
        assert_eq!(
            (in_run.place(), in_run.refiled(), in_run.near_grown()),
            (999_999, true, false)
        );
        in_run.set_near_grown();
        assert_eq!(
            (in_run.place(), in_run.refiled(), in_run.near_grown()),
            (999_999, true, true)
        );
        in_run.set_place(7, false);
        assert_eq!(
            (in_run.place(), in_run.refiled(), in_run.near_grown()),
            (7, false, false)
        );
        in_run.set_near_grown();
        assert_eq!(
            (in_run.place(), in_run.refiled(), in_run.near_grown()),
            (7, false, true)
        );
    }
}
