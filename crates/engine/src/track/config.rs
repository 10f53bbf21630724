//! Everything a [`TrackWatch`](super::TrackWatch) can be told to do
//! differently: alert thresholds, hysteresis, staleness, limits and the
//! spatial index's cell size.

use super::error::{ConfigProblem, TrackError};

/// Alert thresholds, hysteresis, staleness and limits. Every field has a
/// documented default ([`TrackConfig::default`]); [`TrackConfig::validate`]
/// checks a configuration before a watch uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    /// Two entities on the ground (neither airborne) closer than this raise
    /// `proximity`. Default 1,000 m.
    pub ground_proximity_m: f64,
    /// A pair with at least one airborne entity raises `proximity` when
    /// closer than this horizontally *and* [`air_vertical_m`](Self::air_vertical_m)
    /// vertically. Default 5,000 m.
    pub air_proximity_m: f64,
    /// Default 300 m.
    pub air_vertical_m: f64,
    /// Height above the WGS84 ellipsoid (CoT `hae`) above which an entity is
    /// airborne; an entity linked to a flight is airborne at any height.
    /// Default 150 m, for the lowlands this service starts in; raise it where
    /// the ground is high.
    pub ground_ceiling_m: f64,
    /// Hysteresis: an alert opens below a threshold and clears only above
    /// `threshold × clear_factor` (for both the horizontal and the vertical
    /// threshold), so position jitter around a threshold yields one alert and
    /// one clear. Default 1.2.
    pub clear_factor: f64,
    /// How far ahead `cpa` predicts, by constant-velocity extrapolation.
    /// Default 120 s.
    pub cpa_look_ahead_ms: i64,
    /// When a report carries no stale time (CoT's `stale`), the entity goes
    /// stale this long after the report's time. Default 120 s.
    pub default_stale_ms: i64,
    /// A report dated later than `now` by more than this is refused (field
    /// `time`): clocks drift, but a report from the future would freeze an
    /// entity against every correct report until then. Default 60 s.
    pub max_future_ms: i64,
    /// A linked entity deviates when farther than its corridor's half-width
    /// (a disk's radius, 0 for a polygon) plus this; the deviation clears
    /// once it is back within the half-width. Default 50 m.
    pub deviation_tolerance_m: f64,
    /// An entity that entered a keep-out zone leaves it (the alert clears)
    /// only once it is outside and at least this far from the zone.
    /// Default 50 m.
    pub zone_clear_m: f64,
    /// Reported speeds above this are refused (field `speed_mps`), and
    /// speeds estimated from two reports above it are treated as unknown (a
    /// position jump, not a velocity). Default 1,500 m/s.
    pub max_speed_mps: f64,
    /// Entities one party may have live at once. Default 100,000.
    pub max_entities_per_party: usize,
    /// Entities live at once, all parties. Default 2,000,000.
    pub max_entities: usize,
    /// Longest `uid`, in bytes. Default 256 (TAK uids are well under 100).
    pub max_uid_bytes: usize,
    /// Fences held at once. Default 100,000.
    pub max_fences: usize,
    /// Positions in one fence, every ring counted. Default 10,000.
    pub max_fence_vertices: usize,
    /// Linked plans held at once. Default 1,000,000.
    pub max_plans: usize,
    /// Side of the spatial index's cells, in metres of latitude. Default
    /// 25 km: about the distance an airliner covers in the look-ahead, so a
    /// track's swept box spans one to four cells (see `grid.rs`).
    pub grid_cell_m: f64,
    /// Thickness of the index's altitude layers for airborne entities.
    /// Default 500 m, a little above the vertical reach (300 m × 1.2) so a
    /// query spans two or three layers.
    pub altitude_layer_m: f64,
    /// A moving entity's box in the index covers its extrapolated path this
    /// far beyond the look-ahead, so that it needs refiling only this often
    /// when it stops reporting. Default 10 s.
    pub refile_every_ms: i64,
    /// Threads [`TrackWatch::handle_reports`](super::TrackWatch::handle_reports)
    /// may use for the work of a batch that reads but does not change the
    /// watch (the candidates of every report); at most one per 1,024 reports
    /// runs. The alerts do not depend on it. From 1 to 64; default 2, the
    /// cores the W3 budget gives the engine.
    pub batch_threads: usize,
    /// Reports a batch takes through one run (admit, gather, apply) at most;
    /// a longer batch goes in several runs, with the same alerts. It bounds
    /// the batch's working memory (some 250 bytes per report of a run, kept
    /// in the watch for the next batch, besides some 30 bytes per entity);
    /// longer runs find more neighbours already cached (at 100k reports a
    /// second, runs of 16,384 cost some 10 % more CPU than runs of 65,536;
    /// 32,768 nothing measurable, `crates/sim/NOTES.md`, tracks-s20). From
    /// 1 to 1,000,000; default 32,768 (about 8 MiB).
    pub batch_run_reports: usize,
    /// Temporal coherence (see `watch/quiet.rs`): after a full search of its
    /// neighbours, an entity that keeps to its course (within
    /// [`quiet_tolerance_m`](Self::quiet_tolerance_m)) checks only the few
    /// neighbours that search found within reach, until this long after it;
    /// the alerts are the same. 0 searches on every report (no horizon).
    /// At most [`refile_every_ms`](Self::refile_every_ms): the index must
    /// hold every entity's path up to its horizon. Default 10 s.
    pub quiet_horizon_ms: i64,
    /// How far (metres, Earth-centred) an entity's model may stray from the
    /// one its last full search used before its reports search again.
    /// Larger keeps more turning entities quiet but puts more neighbours on
    /// each entity's short list. From 1 m to 100 km; default 200 m.
    pub quiet_tolerance_m: f64,
}

impl Default for TrackConfig {
    fn default() -> Self {
        Self {
            ground_proximity_m: 1_000.0,
            air_proximity_m: 5_000.0,
            air_vertical_m: 300.0,
            ground_ceiling_m: 150.0,
            clear_factor: 1.2,
            cpa_look_ahead_ms: 120_000,
            default_stale_ms: 120_000,
            max_future_ms: 60_000,
            deviation_tolerance_m: 50.0,
            zone_clear_m: 50.0,
            max_speed_mps: 1_500.0,
            max_entities_per_party: 100_000,
            max_entities: 2_000_000,
            max_uid_bytes: 256,
            max_fences: 100_000,
            max_fence_vertices: 10_000,
            max_plans: 1_000_000,
            grid_cell_m: 25_000.0,
            altitude_layer_m: 500.0,
            refile_every_ms: 10_000,
            batch_threads: 2,
            batch_run_reports: 32_768,
            quiet_horizon_ms: 10_000,
            quiet_tolerance_m: 200.0,
        }
    }
}

impl TrackConfig {
    /// Checks that every threshold is finite and positive and that the index
    /// can be built, naming the first field that is not.
    pub fn validate(&self) -> Result<(), TrackError> {
        let positive = [
            ("ground_proximity_m", self.ground_proximity_m),
            ("air_proximity_m", self.air_proximity_m),
            ("air_vertical_m", self.air_vertical_m),
            ("deviation_tolerance_m", self.deviation_tolerance_m),
            ("zone_clear_m", self.zone_clear_m),
            ("max_speed_mps", self.max_speed_mps),
            ("altitude_layer_m", self.altitude_layer_m),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(TrackError::Config {
                    field,
                    problem: ConfigProblem::NotPositive,
                });
            }
        }
        if !self.ground_ceiling_m.is_finite() {
            return Err(TrackError::Config {
                field: "ground_ceiling_m",
                problem: ConfigProblem::NotFinite,
            });
        }
        if !(self.clear_factor.is_finite() && self.clear_factor >= 1.0) {
            return Err(TrackError::Config {
                field: "clear_factor",
                problem: ConfigProblem::BelowOne,
            });
        }
        // Cells below 100 m would make the index's cell numbers overflow
        // its packed keys (see `grid.rs`) and serve no threshold.
        if !(self.grid_cell_m.is_finite() && (100.0..=1_000_000.0).contains(&self.grid_cell_m)) {
            return Err(TrackError::Config {
                field: "grid_cell_m",
                problem: ConfigProblem::OutOfRange {
                    min: 100.0,
                    max: 1_000_000.0,
                },
            });
        }
        if !(1..=64).contains(&self.batch_threads) {
            return Err(TrackError::Config {
                field: "batch_threads",
                problem: ConfigProblem::OutOfRange { min: 1.0, max: 64.0 },
            });
        }
        if !(1..=1_000_000).contains(&self.batch_run_reports) {
            return Err(TrackError::Config {
                field: "batch_run_reports",
                problem: ConfigProblem::OutOfRange {
                    min: 1.0,
                    max: 1_000_000.0,
                },
            });
        }
        if !(self.quiet_tolerance_m.is_finite() && (1.0..=100_000.0).contains(&self.quiet_tolerance_m)) {
            return Err(TrackError::Config {
                field: "quiet_tolerance_m",
                problem: ConfigProblem::OutOfRange {
                    min: 1.0,
                    max: 100_000.0,
                },
            });
        }
        let durations = [
            ("cpa_look_ahead_ms", self.cpa_look_ahead_ms),
            ("default_stale_ms", self.default_stale_ms),
            ("max_future_ms", self.max_future_ms),
            ("refile_every_ms", self.refile_every_ms),
        ];
        for (field, value) in durations {
            // A day bounds every extrapolation the watch makes.
            if !(0..=86_400_000).contains(&value) || (value == 0 && field != "max_future_ms") {
                return Err(TrackError::Config {
                    field,
                    problem: ConfigProblem::OutOfRange {
                        min: 1.0,
                        max: 86_400_000.0,
                    },
                });
            }
        }
        if !(0..=self.refile_every_ms).contains(&self.quiet_horizon_ms) {
            return Err(TrackError::Config {
                field: "quiet_horizon_ms",
                problem: ConfigProblem::OutOfRange {
                    min: 0.0,
                    max: self.refile_every_ms as f64,
                },
            });
        }
        Ok(())
    }

    /// The largest distance below which a pair's episode can open.
    pub(crate) fn max_open_m(&self) -> f64 {
        self.air_proximity_m.max(self.ground_proximity_m)
    }

    /// The farthest apart two entities can be and still hold an alert.
    pub(crate) fn max_reach_m(&self) -> f64 {
        self.air_proximity_m.max(self.ground_proximity_m) * self.clear_factor
    }
}
