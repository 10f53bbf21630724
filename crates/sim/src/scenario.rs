//! Seeded simulations: a day of notifications, updates, cancellations and
//! passing time, driven through the engine on a virtual clock, with the
//! engine's invariants checked as it goes.
//!
//! A failure names its seed; `DECONFLICT_SEED=<seed>` replays it exactly.

use std::collections::BTreeMap;

use deconflict_engine::{
    ActivityId, ActivitySpec, Conflict, ConflictKey, Engine, EngineConfig, EngineError, Event, TimeWindow,
    Timestamp,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::workload::{Workload, WorkloadShape};

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Notify {
        id: ActivityId,
        spec: ActivitySpec,
    },
    /// Moves an activity in time (a delay or an advance), as liaison cells do
    /// to resolve conflicts.
    Shift {
        id: ActivityId,
        by_ms: i64,
    },
    Cancel {
        id: ActivityId,
    },
    Tick,
}

/// A timed list of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub steps: Vec<(Timestamp, Step)>,
}

/// The shape of a dense day: a small region so that conflicts are common.
pub fn dense_day_shape() -> WorkloadShape {
    WorkloadShape {
        parties: 6,
        west_deg: 41.0,
        south_deg: 36.6,
        box_size_deg: 1.0,
        hotspots: 4,
        hotspot_share: 0.8,
        hotspot_sigma_m: 8_000.0,
        span_days: 1,
        median_duration_min: 90.0,
        ..WorkloadShape::default()
    }
}

impl Scenario {
    /// `steps` steps over a day, from `seed`.
    pub fn generate(seed: u64, steps: usize, shape: WorkloadShape) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let start = shape.start;
        let day_ms = shape.span_days * 86_400_000;
        let mut workload = Workload::new(seed, shape);
        let mut next_id = 0u64;
        let mut notified = Vec::new();
        let mut out = Vec::with_capacity(steps);
        for i in 0..steps {
            // Time moves forward through the day in uneven steps.
            let now = start.plus_ms(day_ms * i as i64 / steps as i64 + rng.gen_range(0..60_000));
            let roll: f64 = rng.gen();
            let step = if roll < 0.55 || notified.is_empty() {
                next_id += 1;
                let id = ActivityId(next_id);
                notified.push(id);
                Step::Notify {
                    id,
                    spec: workload.next_activity(),
                }
            } else if roll < 0.75 {
                let id = notified[rng.gen_range(0..notified.len())];
                Step::Shift {
                    id,
                    by_ms: rng.gen_range(-2i64..=4) * 30 * 60_000,
                }
            } else if roll < 0.85 {
                Step::Cancel {
                    id: notified[rng.gen_range(0..notified.len())],
                }
            } else {
                Step::Tick
            };
            out.push((now, step));
        }
        Scenario { seed, steps: out }
    }
}

/// What a run did, for comparing runs and for printing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub notified: usize,
    pub shifted: usize,
    pub cancelled: usize,
    pub expired: usize,
    pub opened: usize,
    pub updated: usize,
    pub resolved: usize,
    pub open_at_end: usize,
    /// Every event in order with the step and time that caused it, so two
    /// runs can be compared exactly and a driver can narrate the day.
    pub events: Vec<(usize, Timestamp, Event)>,
}

/// A broken invariant, with the seed and step that replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub step: usize,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} step {}: {} (replay with DECONFLICT_SEED={})",
            self.seed, self.step, self.what, self.seed
        )
    }
}

fn shifted(spec: &ActivitySpec, by_ms: i64) -> ActivitySpec {
    let mut spec = spec.clone();
    spec.window = TimeWindow::new(
        spec.window.start.plus_ms(by_ms),
        spec.window.end.map(|e| e.plus_ms(by_ms)),
    );
    spec
}

/// Drives `scenario` through a fresh engine, checking after every step that
/// the conflict set rebuilt from the events equals the engine's, and every
/// `audit_every` steps that it equals a sweep from scratch.
pub fn run(scenario: &Scenario, audit_every: usize) -> Result<RunSummary, Violation> {
    let mut engine = Engine::new(EngineConfig::default());
    let mut specs: BTreeMap<ActivityId, ActivitySpec> = BTreeMap::new();
    let mut from_events: BTreeMap<ConflictKey, Conflict> = BTreeMap::new();
    let mut summary = RunSummary::default();
    let fail = |step: usize, what: String| Violation {
        seed: scenario.seed,
        step,
        what,
    };

    for (i, (now, step)) in scenario.steps.iter().enumerate() {
        match step {
            Step::Notify { id, spec } => {
                let activity = engine
                    .validate(spec)
                    .map_err(|e| fail(i, format!("generated spec invalid: {e}")))?;
                engine
                    .handle_notify(*now, *id, activity)
                    .map_err(|e| fail(i, e.to_string()))?;
                specs.insert(*id, spec.clone());
                summary.notified += 1;
            }
            Step::Shift { id, by_ms } => {
                if engine.activity(*id).is_some() {
                    let spec = shifted(&specs[id], *by_ms);
                    let activity = engine.validate(&spec).map_err(|e| fail(i, e.to_string()))?;
                    match engine.handle_update(*now, *id, activity) {
                        Ok(()) => {
                            specs.insert(*id, spec);
                            summary.shifted += 1;
                        }
                        // It ended by `now` and expired instead.
                        Err(EngineError::UnknownActivity(_)) => {}
                        Err(other) => return Err(fail(i, other.to_string())),
                    }
                }
            }
            Step::Cancel { id } => {
                if engine.handle_cancel(*now, *id).is_ok() {
                    summary.cancelled += 1;
                }
            }
            Step::Tick => engine.handle_tick(*now),
        }
        while let Some(event) = engine.poll_event() {
            summary.events.push((i, *now, event.clone()));
            match event {
                Event::ConflictOpened(c) => {
                    summary.opened += 1;
                    if c.parties[0] == c.parties[1] {
                        return Err(fail(i, format!("a party conflicts with itself: {c:?}")));
                    }
                    if from_events.insert(c.key, c).is_some() {
                        return Err(fail(i, format!("opened twice: {:?}", c.key)));
                    }
                }
                Event::ConflictUpdated(c) => {
                    summary.updated += 1;
                    if from_events.insert(c.key, c).is_none() {
                        return Err(fail(i, format!("updated before opened: {:?}", c.key)));
                    }
                }
                Event::ConflictResolved { conflict, .. } => {
                    summary.resolved += 1;
                    if from_events.remove(&conflict.key).is_none() {
                        return Err(fail(i, format!("resolved but never opened: {:?}", conflict.key)));
                    }
                }
                Event::ActivityExpired { .. } => summary.expired += 1,
            }
        }
        let held: Vec<Conflict> = engine.conflicts().copied().collect();
        let told: Vec<Conflict> = from_events.values().copied().collect();
        if held != told {
            return Err(fail(
                i,
                format!(
                    "events tell {} conflicts, engine holds {}",
                    told.len(),
                    held.len()
                ),
            ));
        }
        if audit_every > 0 && i % audit_every == 0 {
            // Activities that ended but were not yet ticked away are in both
            // the held set and the sweep, so the two compare whole.
            let swept = engine.sweep();
            if swept != held {
                return Err(fail(
                    i,
                    format!("incremental {} != sweep {}", held.len(), swept.len()),
                ));
            }
        }
    }
    summary.open_at_end = engine.conflicts().count();
    Ok(summary)
}
