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

/// No entity in a batch's slots: its report is not in the run.
const NOT_IN_RUN: u32 = u32::MAX;

/// An applied report of a run.
#[derive(Debug)]
struct Step {
    /// Its index in the batch.
    report: usize,
    slot: u32,
    admitted: Admitted,
}

/// What one gathering thread found, for the steps it was given.
#[derive(Debug, Default)]
struct Gathered {
    pairs: Vec<u32>,
    fences: Vec<u32>,
    /// Sorted by the other entity's slot per step.
    foreseen: Vec<Foreseen>,
    /// Per step: (step, end of its pairs, of its fences, of its foreseen
    /// approaches); each starts where the previous ends.
    spans: Vec<(u32, u32, u32, u32)>,
}

/// Where one step's findings are in its thread's `Gathered`.
#[derive(Debug, Clone, Default)]
struct Span {
    thread: usize,
    pairs: Range<usize>,
    fences: Range<usize>,
    foreseen: Range<usize>,
}

/// The read-only view of a run the gathering threads share.
struct Run<'a> {
    watch: &'a TrackWatch,
    now: Timestamp,
    prepared: &'a [Prepared],
    /// Per step, the entity's slot.
    slots: &'a [u32],
    /// Per slot, the step of the entity's report in this run (`NOT_IN_RUN`).
    step_of: &'a [u32],
    /// The new filings of the entities whose filing the run changes.
    refiled: &'a Grid,
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
        let (steps, end, step_of) = self.admit_run(now, reports, first, results);
        let threads = self
            .config
            .batch_threads
            .min(steps.len() / REPORTS_PER_THREAD)
            .max(1);

        let step_chunks: Vec<&[Step]> = steps.chunks(steps.len().div_ceil(threads).max(1)).collect();
        let prepared: Vec<Prepared> = in_parallel(&step_chunks, |chunk| {
            chunk
                .iter()
                .map(|step| self.prepare(now, &reports[step.report], &step.admitted))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();

        let mut refiled = Grid::new(self.config.grid_cell_m);
        for (step, prepared) in steps.iter().zip(&prepared) {
            if prepared.refiled {
                refiled.insert(prepared.filed, prepared.layer, step.slot);
            }
        }
        // Neighbouring reports one after the other: they read the same cells
        // and the same neighbours.
        let mut by_cell: Vec<u32> = (0..steps.len() as u32).collect();
        by_cell.sort_by_key(|&i| {
            let filed = prepared[i as usize].filed;
            (filed.south, filed.west, i)
        });
        let slots: Vec<u32> = steps.iter().map(|step| step.slot).collect();
        let run = Run {
            watch: self,
            now,
            prepared: &prepared,
            slots: &slots,
            step_of: &step_of,
            refiled: &refiled,
        };
        let cell_chunks: Vec<&[u32]> = by_cell.chunks(by_cell.len().div_ceil(threads).max(1)).collect();
        let gathered = in_parallel(&cell_chunks, |chunk| run.gather(chunk));

        let mut spans: Vec<Span> = vec![Span::default(); steps.len()];
        for (thread, found) in gathered.iter().enumerate() {
            let (mut pairs, mut fences, mut foreseen) = (0, 0, 0);
            for &(step, pairs_end, fences_end, foreseen_end) in &found.spans {
                let ends = (pairs_end as usize, fences_end as usize, foreseen_end as usize);
                spans[step as usize] = Span {
                    thread,
                    pairs: pairs..ends.0,
                    fences: fences..ends.1,
                    foreseen: foreseen..ends.2,
                };
                (pairs, fences, foreseen) = ends;
            }
        }
        for ((step, prepared), span) in steps.iter().zip(&prepared).zip(spans) {
            let previous = step.admitted.existing.map(|slot| self.motion(slot));
            let slot = self.apply(now, &reports[step.report], step.admitted.existing, prepared);
            assert_eq!(slot, step.slot, "a run predicts the slots of its new entities");
            let found = &gathered[span.thread];
            self.check_pairs_among(
                now,
                slot,
                &found.pairs[span.pairs],
                &found.foreseen[span.foreseen],
            );
            self.check_fences(now, slot, previous.as_ref(), &found.fences[span.fences]);
            self.check_plan(now, slot);
        }
        end
    }

    /// Decides the outcome of every report from `first` on, in order, until
    /// an entity the run changes reports again or the run holds
    /// `batch_run_reports` reports; pushes the outcomes. Returns
    /// the applied ones, where the run ends, and per slot its step.
    fn admit_run(
        &mut self,
        now: Timestamp,
        reports: &[PositionReport],
        first: usize,
        results: &mut Vec<Result<ReportOutcome, TrackError>>,
    ) -> (Vec<Step>, usize, Vec<u32>) {
        let slots_before = self.entities.len();
        // New entities take free slots (last freed first), then new ones,
        // as `insert` will give them.
        let longest = (reports.len() - first).min(self.config.batch_run_reports);
        let mut step_of = vec![NOT_IN_RUN; slots_before + longest];
        let mut new_keys: StableHashMap<(PartyId, &str), ()> = StableHashMap::default();
        let mut pending_by_party: BTreeMap<PartyId, usize> = BTreeMap::new();
        let mut pending_all = 0;
        let mut steps = Vec::new();
        let mut end = first;
        while let Some(report) = reports.get(end).filter(|_| end - first < longest) {
            let existing = self.slot_of(report.party, report.uid);
            let again = match existing {
                Some(slot) => step_of[slot as usize] != NOT_IN_RUN,
                None => new_keys.contains_key(&(report.party, report.uid)),
            };
            if again {
                break;
            }
            let pending = Pending {
                party: pending_by_party.get(&report.party).copied().unwrap_or(0),
                all: pending_all,
            };
            match self.admit(now, report, existing, pending) {
                Err(error) => results.push(Err(error)),
                Ok(Err(ignored)) => results.push(Ok(ignored)),
                Ok(Ok(admitted)) => {
                    results.push(Ok(ReportOutcome::Applied));
                    let slot = existing.unwrap_or_else(|| {
                        let slot = match self.free.len().checked_sub(pending_all + 1) {
                            Some(at) => self.free[at],
                            None => (slots_before + pending_all - self.free.len()) as u32,
                        };
                        pending_all += 1;
                        *pending_by_party.entry(report.party).or_default() += 1;
                        new_keys.insert((report.party, report.uid), ());
                        slot
                    });
                    step_of[slot as usize] = steps.len() as u32;
                    steps.push(Step {
                        report: end,
                        slot,
                        admitted,
                    });
                }
            }
            end += 1;
        }
        (steps, end, step_of)
    }

    /// `check_pairs` on the gathered pairs `may_open` passed, plus the
    /// entity's open episodes, with the approaches the gathering foresaw.
    fn check_pairs_among(&mut self, now: Timestamp, slot: u32, gathered: &[u32], foreseen: &[Foreseen]) {
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        candidates.extend_from_slice(gathered);
        candidates.extend(self.entity(slot).pairs.iter().map(|&(other, _, _)| other));
        candidates.sort_unstable();
        candidates.dedup();
        for &other in &candidates {
            let ahead = foreseen
                .binary_search_by_key(&other, |f| f.other)
                .ok()
                .map(|at| &foreseen[at]);
            self.check_pair(now, slot, other, ahead);
        }
        self.candidates = candidates;
    }
}

impl Run<'_> {
    /// The pairs and fences of the given steps (see the module documentation).
    fn gather(&self, steps: &[u32]) -> Gathered {
        let watch = self.watch;
        let slots = self.step_of.len();
        // Per slot, the last step whose query found it in the index as it
        // was before the run (`before`) and in the run's new filings (`after`).
        let (mut before, mut after) = (vec![NOT_IN_RUN; slots], vec![NOT_IN_RUN; slots]);
        let mut fence_seen = vec![0u32; watch.fences.len()];
        let mut found: Vec<u32> = Vec::new();
        let mut out = Gathered::default();
        for (query, &i) in steps.iter().enumerate() {
            let p = &self.prepared[i as usize];
            let (slot, ma) = (self.slots[i as usize], p.motion());
            // The entity before the run: none for a new one (its slot is free
            // or past the end until the run applies it).
            let before_run = watch.entities.get(slot as usize).and_then(Option::as_ref);
            let previous = before_run.map(|_| watch.motion(slot));
            // The entity's open `cpa` episodes before the run (a new entity
            // has none): `check_pair` will most likely need their kept form.
            let open_cpa: Vec<u32> = match before_run {
                Some(entity) => entity
                    .pairs
                    .iter()
                    .filter(|&&(_, kind, _)| kind == AlertKind::Cpa)
                    .map(|&(other, _, _)| other)
                    .collect(),
                _ => Vec::new(),
            };
            let (cells, layers) = watch.pair_query(self.now, &p.motion(), &p.kin);
            found.clear();
            watch.grid.for_each(cells, layers.as_slice(), |b| {
                if before[b as usize] != i {
                    if after[b as usize] != i {
                        found.push(b);
                    }
                    before[b as usize] = i;
                }
            });
            self.refiled.for_each(cells, layers.as_slice(), |b| {
                if after[b as usize] != i {
                    if before[b as usize] != i {
                        found.push(b);
                    }
                    after[b as usize] = i;
                }
            });
            for &b in &found {
                let step = self.step_of[b as usize];
                // `b`'s state when report `i` is applied in turn.
                let changed = step < i;
                let filed_there = if changed && self.prepared[step as usize].refiled {
                    after[b as usize] == i
                } else {
                    before[b as usize] == i
                };
                if !filed_there {
                    continue;
                }
                let kb = if changed {
                    &self.prepared[step as usize].kin
                } else {
                    &watch.kin[b as usize]
                };
                if kb.party == p.kin.party {
                    continue;
                }
                let may_open = watch.may_open(self.now, &p.kin, kb);
                if may_open {
                    out.pairs.push(b);
                }
                let kept = open_cpa.contains(&b);
                if may_open || kept {
                    let mb = if changed {
                        self.prepared[step as usize].motion()
                    } else {
                        watch.motion(b)
                    };
                    self.foresee((slot, &ma, &p.kin), (b, &mb, kb), kept, &mut out.foreseen);
                }
            }
            let (pairs_start, foreseen_start) =
                out.spans.last().map_or((0, 0), |s| (s.1 as usize, s.3 as usize));
            out.pairs[pairs_start..].sort_unstable();
            out.foreseen[foreseen_start..].sort_unstable_by_key(|f| f.other);
            watch.fences_near_with(
                p.kin.party,
                p.origin,
                p.kin.tangent.ecef,
                previous.as_ref(),
                (&mut fence_seen, query as u32 + 1),
                &mut out.fences,
            );
            out.spans.push((
                i,
                out.pairs.len() as u32,
                out.fences.len() as u32,
                out.foreseen.len() as u32,
            ));
        }
        out
    }
}

impl Run<'_> {
    /// The closest approach `check_pair` will most likely ask for, if its
    /// bounds say it will ask: the same conditions, the same call.
    fn foresee(
        &self,
        (slot, ma, ka): (u32, &Motion, &Kin),
        (other, mb, kb): (u32, &Motion, &Kin),
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
            let (lo, hi) = if slot < other { (ma, mb) } else { (mb, ma) };
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

/// `work` on every chunk, the first on this thread and each other on a
/// thread of its own; the results in the chunks' order.
fn in_parallel<C: Sync, T: Send>(chunks: &[C], work: impl Fn(&C) -> T + Sync) -> Vec<T> {
    match chunks {
        [] => Vec::new(),
        [only] => vec![work(only)],
        [first, rest @ ..] => std::thread::scope(|scope| {
            let others: Vec<_> = rest.iter().map(|chunk| scope.spawn(|| work(chunk))).collect();
            let mut results = vec![work(first)];
            results.extend(others.into_iter().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }));
            results
        }),
    }
}
