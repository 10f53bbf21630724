//! W3: N entities reporting at 1 Hz, on deconflict's track watch and on
//! PostGIS, with the same seeded movement (`deconflict_sim::fleet`, as the
//! engine's own W3 bench) and the same keep-out zones.
//!
//! One *tick* is one second: every entity reports its new position, and
//! each system brings its open alerts up to date.
//!
//! - deconflict: `TrackWatch::handle_report` for every report, then
//!   `handle_tick`, then every alert drained — its default configuration,
//!   which also predicts closest approaches two minutes ahead (`cpa`), work
//!   the PostGIS side does not do.
//! - PostGIS, as an expert would write it: an UNLOGGED table of positions
//!   (live tracks are ephemeral, and deconflict keeps them in memory only)
//!   with a GiST index on the geography; per tick the positions COPYed into
//!   a temporary table and applied with one `UPDATE … FROM`, then one query
//!   for the pairs of different parties within reach (`ST_DWithin` on
//!   geography, spheroid distance, constant tolerances so that its own
//!   index rewrite applies: ground pairs, and pairs with an aircraft), and
//!   one for the entities within reach of a zone that binds them
//!   (`ST_DWithin` + `ST_Intersects`). The client keeps the open alerts
//!   with the engine's hysteresis: a pair opens within the limits and stays
//!   open until beyond `limits × clear_factor`; a zone alert opens inside
//!   the zone and stays open until the entity is `zone_clear_m` out.
//!
//! The rule is the engine's (`TrackConfig::default`): entities of different
//! parties on the ground closer than 1,000 m; with at least one airborne
//! (height above 150 m), closer than 5,000 m horizontally and 300 m
//! vertically, where an entity on the ground spans every height up to the
//! ground ceiling. Demarcation lines (crossings) are left out of the fences
//! on both sides: crossing episodes toggle on each crossing and the PostGIS
//! side does not model them.
//!
//! Agreement: after every tick, the open proximity pairs and zone episodes
//! of both systems are compared. A difference is explained when the pair
//! (or entity and zone) lies within the tolerance of a threshold — the
//! limit, or the limit × clear factor — by either system's measure, or
//! lies between the two, where history decides and the histories differ:
//! deconflict evaluates a pair whenever either entity reports, the other
//! extrapolated from its previous report, so a pair can open on an
//! extrapolated position within the limit and stay open (hysteresis) at
//! the tick's positions just beyond it; PostGIS evaluates once per tick.
//! A pair within the limits missed by one system, or an episode open
//! beyond the clearing distance, fails the run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use deconflict_engine::track::{
    Alert, AlertDetail, AlertId, AlertKind, Fence, FenceRule, PositionReport, TrackConfig, TrackKey,
    TrackWatch,
};
use deconflict_engine::Timestamp;
use deconflict_geodesy::{closest, distance_m, point_in_region, LonLat, Shape};
use deconflict_sim::fleet::{Fleet, FleetShape};

use crate::cluster::{Cluster, ClusterOptions};
use crate::{cpu, BenchError};

/// What W3 runs.
#[derive(Debug, Clone)]
pub struct W3Options {
    /// N: the entities reporting once a second.
    pub entities: usize,
    /// Keep-out zones (exclusion zones and protected sites) generated;
    /// default N / 10 fences of which the demarcation lines are dropped.
    pub fences: usize,
    /// Ticks measured after the first (the first creates every entity and
    /// is reported apart).
    pub ticks: usize,
    pub seed: u64,
    /// A difference farther than this from a threshold fails the run.
    pub tolerance_m: f64,
    pub cluster: ClusterOptions,
    /// Print PostgreSQL's plans for the proximity and zone queries.
    pub explain: bool,
}

/// 2022-10-08T00:00:00Z, as in the engine's W3 bench.
const START_MS: i64 = 1_665_187_200_000;

/// Per-tick figures of one system.
#[derive(Debug, Clone, Default)]
pub struct TickFigures {
    /// The first tick, which creates every entity (insert on PostGIS).
    pub first: Duration,
    pub wall: Vec<Duration>,
    /// CPU time of all measured ticks together.
    pub cpu: Duration,
}

impl TickFigures {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.wall.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    pub fn ticks_per_s(&self) -> f64 {
        let total: Duration = self.wall.iter().sum();
        self.wall.len() as f64 / total.as_secs_f64()
    }

    pub fn cpu_per_tick(&self) -> Duration {
        self.cpu / self.wall.len().max(1) as u32
    }
}

/// One difference between the two systems at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct W3Difference {
    pub tick: usize,
    /// `proximity` (a pair of entities) or `zone` (entity, fence).
    pub what: &'static str,
    pub subject: (u32, u32),
    pub found_by_deconflict: bool,
    /// deconflict's and PostGIS's distance (between the entities, or from
    /// the entity to the zone's boundary) and the thresholds it is judged by.
    pub deconflict_m: f64,
    pub postgis_m: f64,
    pub limit_m: f64,
    pub keep_m: f64,
    /// Between the limit and the clearing distance, where history decides.
    pub in_band: bool,
    pub explained: bool,
}

/// Everything W3 measured.
#[derive(Debug)]
pub struct W3Report {
    pub options: W3Options,
    pub zones: usize,
    pub engine: TickFigures,
    pub postgis: TickFigures,
    /// Open proximity pairs and zone episodes found by both, summed over ticks.
    pub proximity_both: usize,
    pub zone_both: usize,
    /// Open proximity pairs at the last tick, and open cpa episodes (the
    /// engine only).
    pub proximity_last: usize,
    pub cpa_last: usize,
    pub differences: Vec<W3Difference>,
    pub plans: Vec<(String, String)>,
    pub load_average: (String, String),
}

impl W3Report {
    pub fn agrees(&self) -> bool {
        self.differences.iter().all(|d| d.explained)
    }
}

/// The positions and courses of every mover at each tick.
struct Movement {
    fleet: Fleet,
    ticks: Vec<Vec<(LonLat, f64)>>,
}

fn movement(options: &W3Options) -> (Movement, Vec<Fence>) {
    let mut fleet = Fleet::new(options.seed, FleetShape::default(), options.entities);
    let fences: Vec<Fence> = fleet
        .fences(options.fences)
        .into_iter()
        .filter(|f| !f.is_line())
        .collect();
    let ticks = (0..=options.ticks)
        .map(|_| {
            fleet.step(1_000);
            fleet.movers.iter().map(|m| (m.position, m.course_deg)).collect()
        })
        .collect();
    (Movement { fleet, ticks }, fences)
}

fn tick_time(tick: usize) -> Timestamp {
    Timestamp(START_MS + 1_000 * (tick as i64 + 1))
}

/// The mover index in a uid `"{party}-{index}"`.
fn mover_index(key: &TrackKey) -> u32 {
    key.uid
        .rsplit('-')
        .next()
        .and_then(|k| k.parse().ok())
        .expect("fleet uids end with the mover's index")
}

fn ordered(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

/// The open proximity pairs and zone episodes of one system after each tick.
type Snapshots = Vec<(BTreeSet<(u32, u32)>, BTreeSet<(u32, u32)>)>;

fn run_engine(movement: &Movement, fences: &[Fence]) -> Result<(TickFigures, Snapshots, usize), BenchError> {
    let mut watch = TrackWatch::new(TrackConfig::default()).map_err(|e| BenchError::Setup(e.to_string()))?;
    watch
        .set_fences(Timestamp(START_MS), fences.to_vec())
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut open: HashMap<AlertId, (AlertKind, (u32, u32))> = HashMap::new();
    let mut figures = TickFigures::default();
    let mut snapshots = Vec::new();
    let mut alerts = Vec::new();
    for (tick, positions) in movement.ticks.iter().enumerate() {
        let now = tick_time(tick);
        let reports: Vec<PositionReport> = movement
            .fleet
            .movers
            .iter()
            .zip(positions)
            .map(|(m, &(position, course_deg))| PositionReport {
                party: m.party,
                uid: &m.uid,
                time: now,
                position,
                alt_m: m.alt_m,
                speed_mps: Some(m.speed_mps),
                course_deg: Some(course_deg),
                stale: None,
                activity: None,
            })
            .collect();
        let (started, cpu_before) = (Instant::now(), cpu::this_thread()?);
        for report in &reports {
            watch
                .handle_report(now, report)
                .map_err(|e| BenchError::Setup(format!("engine refused a fleet report: {e}")))?;
        }
        watch.handle_tick(now);
        while let Some(alert) = watch.poll_alert() {
            alerts.push(alert);
        }
        let (wall, cpu_used) = (started.elapsed(), cpu::this_thread()?.saturating_sub(cpu_before));
        if tick == 0 {
            figures.first = wall;
        } else {
            figures.wall.push(wall);
            figures.cpu += cpu_used;
        }
        for alert in alerts.drain(..) {
            match alert {
                Alert::Opened { id, detail, .. } => match &detail {
                    AlertDetail::Proximity { tracks: [a, b], .. } => {
                        open.insert(
                            id,
                            (AlertKind::Proximity, ordered(mover_index(a), mover_index(b))),
                        );
                    }
                    AlertDetail::Cpa { tracks: [a, b], .. } => {
                        open.insert(id, (AlertKind::Cpa, ordered(mover_index(a), mover_index(b))));
                    }
                    AlertDetail::ZoneEntered { track, fence, .. } => {
                        open.insert(id, (AlertKind::ZoneEntered, (mover_index(track), fence.0 as u32)));
                    }
                    _ => {}
                },
                Alert::Cleared { id, .. } => {
                    open.remove(&id);
                }
            }
        }
        let of = |kind| {
            open.values()
                .filter(|(k, _)| *k == kind)
                .map(|&(_, s)| s)
                .collect::<BTreeSet<_>>()
        };
        snapshots.push((of(AlertKind::Proximity), of(AlertKind::ZoneEntered)));
    }
    let cpa = open.values().filter(|(k, _)| *k == AlertKind::Cpa).count();
    Ok((figures, snapshots, cpa))
}

/// The engine's rule as PostGIS columns of one entity: airborne, and the
/// altitude band (an entity on the ground spans every height up to the
/// ground ceiling; the engine holds heights as `f32`, so PostGIS is given
/// the same values).
fn band(alt_m: Option<f64>, config: &TrackConfig) -> (bool, f64, f64) {
    match alt_m.map(|h| f64::from(h as f32)) {
        Some(h) if h > config.ground_ceiling_m => (true, h, h),
        Some(_) | None => (false, f64::NEG_INFINITY, config.ground_ceiling_m),
    }
}

fn sql_float(value: f64) -> String {
    if value == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        format!("{value:?}")
    }
}

fn ring_wkt(region: &[Vec<LonLat>]) -> String {
    let rings: Vec<String> = region
        .iter()
        .map(|ring| {
            let points: Vec<String> = ring
                .iter()
                .map(|p| format!("{} {}", p.lon_deg, p.lat_deg))
                .collect();
            format!("({})", points.join(","))
        })
        .collect();
    format!("SRID=4326;POLYGON({})", rings.join(","))
}

/// Pairs within the keep distance, with whether they are within the limits.
fn proximity_sql(config: &TrackConfig) -> String {
    let f = config.clear_factor;
    let (ground, air, vertical) = (
        config.ground_proximity_m,
        config.air_proximity_m,
        config.air_vertical_m,
    );
    let gap = "GREATEST(0, b.band_min_m - a.band_max_m, a.band_min_m - b.band_max_m)";
    format!(
        "SELECT a.id, b.id, ST_DWithin(a.geog, b.geog, {ground:?}) AS within
         FROM ent a JOIN ent b
           ON NOT a.airborne AND NOT b.airborne AND b.id > a.id AND b.party <> a.party
          AND ST_DWithin(a.geog, b.geog, {ground_keep:?})
         UNION ALL
         SELECT a.id, b.id, {gap} < {vertical:?} AND ST_DWithin(a.geog, b.geog, {air:?})
         FROM ent a JOIN ent b
           ON a.airborne AND (NOT b.airborne OR b.id > a.id) AND b.party <> a.party
          AND {gap} < {vertical_keep:?}
          AND ST_DWithin(a.geog, b.geog, {air_keep:?})",
        ground_keep = ground * f,
        air_keep = air * f,
        vertical_keep = vertical * f,
    )
}

/// Entities within reach of a zone that binds them, and whether inside.
fn zone_sql(config: &TrackConfig) -> String {
    format!(
        "SELECT e.id, z.id, ST_Intersects(z.geog, e.geog)
         FROM ent e JOIN zone z
           ON ST_DWithin(z.geog, e.geog, {:?})
          AND CASE WHEN z.protected THEN e.party <> z.owner ELSE e.party = ANY (z.bound) END",
        config.zone_clear_m
    )
}

/// Opens what is within the limits, keeps what was open and is still within
/// the keep distance (the engine's hysteresis).
fn hysteresis(previous: &BTreeSet<(u32, u32)>, rows: Vec<((u32, u32), bool)>) -> BTreeSet<(u32, u32)> {
    rows.into_iter()
        .filter(|(subject, within)| *within || previous.contains(subject))
        .map(|(subject, _)| subject)
        .collect()
}

fn run_postgis(
    cluster: &mut Cluster,
    movement: &Movement,
    fences: &[Fence],
    config: &TrackConfig,
    plans: Option<&mut Vec<(String, String)>>,
) -> Result<(TickFigures, Snapshots, postgres::Client), BenchError> {
    let mut plans = plans;
    let mut client = cluster.connect()?;
    client.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS postgis;
         DROP TABLE IF EXISTS ent, zone;
         CREATE UNLOGGED TABLE ent (
             id int PRIMARY KEY,
             party bigint NOT NULL,
             airborne bool NOT NULL,
             band_min_m float8 NOT NULL,
             band_max_m float8 NOT NULL,
             geog geography(Point, 4326) NOT NULL
         );
         CREATE UNLOGGED TABLE zone (
             id int PRIMARY KEY,
             owner bigint NOT NULL,
             protected bool NOT NULL,
             bound bigint[] NOT NULL,
             geog geography NOT NULL
         );
         CREATE TEMP TABLE pos (id int, lon float8, lat float8);",
    )?;
    {
        let mut writer = client.copy_in("COPY zone (id, owner, protected, bound, geog) FROM STDIN")?;
        for fence in fences {
            let (protected, bound, region) = match &fence.rule {
                FenceRule::Exclusion { region, bound } => {
                    (false, bound.iter().map(|p| p.0.to_string()).collect(), region)
                }
                FenceRule::Protected { region } => (true, Vec::new(), region),
                FenceRule::Demarcation { .. } => continue,
            };
            let line = format!(
                "{}\t{}\t{}\t{{{}}}\t{}\n",
                fence.id.0,
                fence.owner.0,
                if protected { "t" } else { "f" },
                bound.join(","),
                ring_wkt(region)
            );
            writer
                .write_all(line.as_bytes())
                .map_err(|source| BenchError::io("sending zones", source))?;
        }
        writer.finish()?;
    }
    client.batch_execute("CREATE INDEX zone_geog ON zone USING gist (geog); ANALYZE zone;")?;
    let proximity = client.prepare(&proximity_sql(config))?;
    let zone = client.prepare(&zone_sql(config))?;
    let postmaster = cluster.postmaster_pid()?;
    let mut figures = TickFigures::default();
    let mut snapshots: Snapshots = Vec::new();
    let empty = (BTreeSet::new(), BTreeSet::new());
    for (tick, positions) in movement.ticks.iter().enumerate() {
        let (started, cpu_before) = (Instant::now(), cpu::server(postmaster)? + cpu::this_thread()?);
        if tick == 0 {
            // The first tick creates every entity: COPY straight in, then
            // the index and the planner's statistics.
            let mut writer =
                client.copy_in("COPY ent (id, party, airborne, band_min_m, band_max_m, geog) FROM STDIN")?;
            let mut text = String::new();
            for (k, (m, (p, _))) in movement.fleet.movers.iter().zip(positions).enumerate() {
                let (airborne, min, max) = band(m.alt_m, config);
                text.push_str(&format!(
                    "{k}\t{}\t{}\t{}\t{}\tSRID=4326;POINT({} {})\n",
                    m.party.0,
                    if airborne { "t" } else { "f" },
                    sql_float(min),
                    sql_float(max),
                    p.lon_deg,
                    p.lat_deg
                ));
            }
            writer
                .write_all(text.as_bytes())
                .map_err(|source| BenchError::io("sending entities", source))?;
            writer.finish()?;
            client.batch_execute("CREATE INDEX ent_geog ON ent USING gist (geog); ANALYZE ent;")?;
            if let Some(plans) = plans.as_deref_mut() {
                for (name, sql) in [
                    ("W3 proximity", proximity_sql(config)),
                    ("W3 zones", zone_sql(config)),
                ] {
                    plans.push((name.into(), crate::postgis::explain(&mut client, &sql)?));
                }
            }
        } else {
            client.batch_execute("TRUNCATE pos")?;
            let mut writer = client.copy_in("COPY pos (id, lon, lat) FROM STDIN")?;
            let mut text = String::with_capacity(positions.len() * 40);
            for (k, (p, _)) in positions.iter().enumerate() {
                text.push_str(&format!("{k}\t{}\t{}\n", p.lon_deg, p.lat_deg));
            }
            writer
                .write_all(text.as_bytes())
                .map_err(|source| BenchError::io("sending positions", source))?;
            writer.finish()?;
            client.batch_execute(
                "UPDATE ent SET geog = ST_SetSRID(ST_MakePoint(pos.lon, pos.lat), 4326)::geography
                 FROM pos WHERE ent.id = pos.id",
            )?;
        }
        let rows = |rows: Vec<postgres::Row>| -> Vec<((u32, u32), bool)> {
            rows.iter()
                .map(|r| {
                    let (a, b): (i32, i32) = (r.get(0), r.get(1));
                    ((a as u32, b as u32), r.get(2))
                })
                .collect()
        };
        let pairs = rows(client.query(&proximity, &[])?);
        let zones = rows(client.query(&zone, &[])?);
        let (previous_pairs, previous_zones) = snapshots.last().unwrap_or(&empty);
        let pairs = hysteresis(previous_pairs, pairs);
        let pairs = pairs.into_iter().map(|(a, b)| ordered(a, b)).collect();
        let zones = hysteresis(previous_zones, zones);
        let wall = started.elapsed();
        let cpu_used = (cpu::server(postmaster)? + cpu::this_thread()?).saturating_sub(cpu_before);
        if tick == 0 {
            figures.first = wall;
        } else {
            figures.wall.push(wall);
            figures.cpu += cpu_used;
        }
        snapshots.push((pairs, zones));
    }
    Ok((figures, snapshots, client))
}

#[allow(clippy::too_many_arguments)] // one tick's context, each part named
/// Both systems' distances for the differences of one tick: between the two
/// entities for a pair, from the entity to the zone's boundary for a zone.
fn measure(
    client: &mut postgres::Client,
    tick: usize,
    positions: &[(LonLat, f64)],
    fences: &BTreeMap<u32, &Fence>,
    found: &[(&'static str, (u32, u32), bool)],
    config: &TrackConfig,
    alt: &[Option<f64>],
    tolerance_m: f64,
) -> Result<Vec<W3Difference>, BenchError> {
    let mut out = Vec::new();
    for &(what, (a, b), found_by_deconflict) in found {
        // `in_band`: within the clearing distance but not within the limit,
        // by deconflict's measure.
        let (deconflict_m, postgis_m, limit_m, keep_m, vertical_near, in_band) = if what == "proximity" {
            let (pa, pb) = (positions[a as usize].0, positions[b as usize].0);
            let d = distance_m(pa, pb);
            let row = client.query_one(
                "SELECT ST_Distance(a.geog, b.geog) FROM ent a, ent b WHERE a.id = $1 AND b.id = $2",
                &[&(a as i32), &(b as i32)],
            )?;
            let (ba, bb) = (band(alt[a as usize], config), band(alt[b as usize], config));
            let airborne = ba.0 || bb.0;
            let gap = (bb.1 - ba.2).max(ba.1 - bb.2).max(0.0);
            let (v, v_keep) = (config.air_vertical_m, config.air_vertical_m * config.clear_factor);
            let vertical_near =
                airborne && ((gap - v).abs() <= tolerance_m || (gap - v_keep).abs() <= tolerance_m);
            let limit = if airborne {
                config.air_proximity_m
            } else {
                config.ground_proximity_m
            };
            let keep = limit * config.clear_factor;
            let d_postgis: f64 = row.get(0);
            let within_limit = d < limit && (!airborne || gap < v);
            let within_keep = d < keep && (!airborne || gap < v_keep);
            (
                d,
                d_postgis,
                limit,
                keep,
                vertical_near,
                within_keep && !within_limit,
            )
        } else {
            let p = positions[a as usize].0;
            let fence = fences[&b];
            let region = match &fence.rule {
                FenceRule::Exclusion { region, .. } | FenceRule::Protected { region } => region,
                FenceRule::Demarcation { .. } => unreachable!("lines are not loaded"),
            };
            let d = region
                .iter()
                .map(|ring| closest(&Shape::Point(p), &Shape::Path(ring)).distance_m)
                .fold(f64::INFINITY, f64::min);
            let row = client.query_one(
                "SELECT ST_Distance(ST_Boundary(z.geog::geometry)::geography, e.geog)
                 FROM ent e, zone z WHERE e.id = $1 AND z.id = $2",
                &[&(a as i32), &(b as i32)],
            )?;
            let outside_within_clearing = !point_in_region(p, region) && d < config.zone_clear_m;
            (
                d,
                row.get::<_, f64>(0),
                0.0,
                config.zone_clear_m,
                false,
                outside_within_clearing,
            )
        };
        let near = |threshold: f64| {
            (deconflict_m - threshold).abs() <= tolerance_m || (postgis_m - threshold).abs() <= tolerance_m
        };
        // In the band, history decides whether the episode is open, and the
        // histories differ: deconflict evaluates a pair whenever either
        // entity reports (the other extrapolated from its last report),
        // PostGIS once per tick. For a zone, the band is outside it but
        // within the clearing distance of its boundary.
        let explained = near(limit_m) || near(keep_m) || vertical_near || in_band;
        out.push(W3Difference {
            tick,
            what,
            subject: (a, b),
            found_by_deconflict,
            deconflict_m,
            postgis_m,
            limit_m,
            keep_m,
            in_band,
            explained,
        });
    }
    Ok(out)
}

pub fn run_w3(options: W3Options) -> Result<W3Report, BenchError> {
    let load_before = crate::run::load_average();
    let config = TrackConfig::default();
    eprintln!(
        "W3: generating {} entities over {} ticks and {} fences (seed {})",
        options.entities,
        options.ticks + 1,
        options.fences,
        options.seed
    );
    let (movement, fences) = movement(&options);
    eprintln!("W3 deconflict: {} ticks", options.ticks + 1);
    let (engine, engine_snapshots, cpa_last) = run_engine(&movement, &fences)?;
    eprintln!(
        "W3 deconflict: tick p50 {:.1} ms, p99 {:.1} ms",
        engine.p50().as_secs_f64() * 1e3,
        engine.p99().as_secs_f64() * 1e3
    );
    eprintln!("W3 PostGIS: starting a throwaway cluster");
    let mut cluster = Cluster::start(options.cluster.clone())?;
    let mut plans = Vec::new();
    let (postgis, postgis_snapshots, mut client) = run_postgis(
        &mut cluster,
        &movement,
        &fences,
        &config,
        options.explain.then_some(&mut plans),
    )?;
    eprintln!(
        "W3 PostGIS: tick p50 {:.1} ms, p99 {:.1} ms",
        postgis.p50().as_secs_f64() * 1e3,
        postgis.p99().as_secs_f64() * 1e3
    );
    // Differences are measured on both sides at their tick's positions.
    let fence_by_id: BTreeMap<u32, &Fence> = fences.iter().map(|f| (f.id.0 as u32, f)).collect();
    let alt: Vec<Option<f64>> = movement.fleet.movers.iter().map(|m| m.alt_m).collect();
    let (mut proximity_both, mut zone_both) = (0, 0);
    let mut differences: Vec<W3Difference> = Vec::new();
    let last = movement.ticks.len() - 1;
    let mut held_tick = last;
    for (tick, ((ep, ez), (pp, pz))) in engine_snapshots.iter().zip(&postgis_snapshots).enumerate() {
        proximity_both += ep.intersection(pp).count();
        zone_both += ez.intersection(pz).count();
        let mut found = Vec::new();
        for (what, e, p) in [("proximity", ep, pp), ("zone", ez, pz)] {
            found.extend(e.difference(p).map(|&s| (what, s, true)));
            found.extend(p.difference(e).map(|&s| (what, s, false)));
        }
        if found.is_empty() {
            continue;
        }
        if tick != held_tick {
            // PostGIS holds another tick's positions: put this tick's back.
            set_positions(&mut client, &movement.ticks[tick])?;
            held_tick = tick;
        }
        let measured = measure(
            &mut client,
            tick,
            &movement.ticks[tick],
            &fence_by_id,
            &found,
            &config,
            &alt,
            options.tolerance_m,
        )?;
        differences.extend(measured);
    }
    drop(client);
    cluster.stop()?;
    let proximity_last = engine_snapshots[last].0.len();
    Ok(W3Report {
        zones: fences.len(),
        options,
        engine,
        postgis,
        proximity_both,
        zone_both,
        proximity_last,
        cpa_last,
        differences,
        plans,
        load_average: (load_before, crate::run::load_average()),
    })
}

fn set_positions(client: &mut postgres::Client, positions: &[(LonLat, f64)]) -> Result<(), BenchError> {
    let lon: Vec<f64> = positions.iter().map(|(p, _)| p.lon_deg).collect();
    let lat: Vec<f64> = positions.iter().map(|(p, _)| p.lat_deg).collect();
    client.execute(
        "UPDATE ent SET geog = ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)::geography
         FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(lon, lat, k)
         WHERE ent.id = p.k - 1",
        &[&lon, &lat],
    )?;
    Ok(())
}

impl fmt::Display for W3Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "W3 — {} entities at 1 Hz, {} keep-out zones, seed {}, {} ticks measured after the first",
            crate::run::thousands(o.entities as f64),
            crate::run::thousands(self.zones as f64),
            o.seed,
            o.ticks
        )?;
        writeln!(
            f,
            "Load average before {}, after {} (both systems on one connection / one thread)",
            self.load_average.0, self.load_average.1
        )?;
        writeln!(f)?;
        writeln!(f, "| figure | deconflict | PostGIS | deconflict ahead by |")?;
        writeln!(f, "|---|---|---|---|")?;
        let (e, p) = (&self.engine, &self.postgis);
        writeln!(
            f,
            "| W3 ticks/s ({} entities each) | {:.2} | {:.2} | {:.2}× |",
            crate::run::thousands(o.entities as f64),
            e.ticks_per_s(),
            p.ticks_per_s(),
            e.ticks_per_s() / p.ticks_per_s()
        )?;
        for (name, a, b) in [("p50", e.p50(), p.p50()), ("p99", e.p99(), p.p99())] {
            writeln!(
                f,
                "| W3 tick wall {name} (ms) | {:.1} | {:.1} | {:.2}× |",
                ms(a),
                ms(b),
                ms(b) / ms(a)
            )?;
        }
        writeln!(
            f,
            "| W3 CPU time per tick (ms; engine thread; PostGIS server + client) | {:.1} | {:.1} | {:.2}× |",
            ms(e.cpu_per_tick()),
            ms(p.cpu_per_tick()),
            ms(p.cpu_per_tick()) / ms(e.cpu_per_tick())
        )?;
        writeln!(
            f,
            "| W3 first tick, every entity new (ms; PostGIS: COPY + index + ANALYZE) | {:.1} | {:.1} | |",
            ms(e.first),
            ms(p.first)
        )?;
        writeln!(f)?;
        let only = |what: &str, by_deconflict: bool| {
            self.differences
                .iter()
                .filter(|d| d.what == what && d.found_by_deconflict == by_deconflict)
                .count()
        };
        writeln!(
            f,
            "W3 agreement over {} ticks: proximity {} open pairs found by both, {} by deconflict only, {} by PostGIS only; zones {} open episodes by both, {} / {}",
            o.ticks + 1,
            crate::run::thousands(self.proximity_both as f64),
            only("proximity", true),
            only("proximity", false),
            crate::run::thousands(self.zone_both as f64),
            only("zone", true),
            only("zone", false),
        )?;
        writeln!(
            f,
            "At the last tick: {} open proximity pairs, {} open cpa episodes (deconflict only computes cpa)",
            crate::run::thousands(self.proximity_last as f64),
            crate::run::thousands(self.cpa_last as f64)
        )?;
        for d in self.differences.iter().filter(|d| !d.explained).take(10) {
            writeln!(
                f,
                "UNEXPLAINED: tick {} {} {:?} found by {}: deconflict {:.3} m, PostGIS {:.3} m, limit {:.1} m, keep {:.1} m",
                d.tick,
                d.what,
                d.subject,
                if d.found_by_deconflict { "deconflict" } else { "PostGIS" },
                d.deconflict_m,
                d.postgis_m,
                d.limit_m,
                d.keep_m
            )?;
        }
        writeln!(
            f,
            "{} of {} differences explained ({} between the limit and the clearing distance, where history decides; the rest within {} m of a threshold): {}",
            self.differences.iter().filter(|d| d.explained).count(),
            self.differences.len(),
            self.differences.iter().filter(|d| d.in_band).count(),
            o.tolerance_m,
            if self.agrees() { "AGREE" } else { "DISAGREE" }
        )?;
        for (name, plan) in &self.plans {
            writeln!(f, "\n{name} plan:\n{plan}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_opens_within_the_limit_and_stays_open_only_within_the_keep_distance() {
        let previous: BTreeSet<(u32, u32)> = [(1, 2), (3, 4)].into();
        // Rows are the pairs within the keep distance, `true` within the limit.
        let rows = vec![((1, 2), false), ((5, 6), true), ((7, 8), false)];
        let open = hysteresis(&previous, rows);
        // (1, 2) kept, (5, 6) opened, (7, 8) never opened, (3, 4) beyond reach.
        assert_eq!(open, [(1, 2), (5, 6)].into());
    }

    #[test]
    fn the_band_is_the_engines_heights_as_f32_and_the_ground_spans_up_to_the_ceiling() {
        let config = TrackConfig::default();
        assert_eq!(band(None, &config), (false, f64::NEG_INFINITY, 150.0));
        assert_eq!(band(Some(100.0), &config), (false, f64::NEG_INFINITY, 150.0));
        let h = 1_234.567_891_234_f64;
        let held = f64::from(h as f32);
        assert_ne!(held, h);
        assert_eq!(band(Some(h), &config), (true, held, held));
    }

    #[test]
    fn the_queries_use_constant_tolerances_so_that_the_index_applies() {
        let sql = proximity_sql(&TrackConfig::default());
        assert!(sql.contains("ST_DWithin(a.geog, b.geog, 1200.0)"), "{sql}");
        assert!(sql.contains("ST_DWithin(a.geog, b.geog, 6000.0)"), "{sql}");
        assert!(zone_sql(&TrackConfig::default()).contains("ST_DWithin(z.geog, e.geog, 50.0)"));
    }
}
