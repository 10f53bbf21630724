//! One run: the same seeded activities into both systems, W1 and W2 on each,
//! the conflict sets compared, and a report with every figure and ratio.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use deconflict_engine::{Activity, ActivityId, Engine, EngineConfig, Timestamp};
use deconflict_sim::workload::{Workload, WorkloadShape};

use crate::agreement::{worst, Disagreement, FoundBy, PairDiff};
use crate::cluster::{Cluster, ClusterOptions};
use crate::postgis::{self, IndexStrategy, LoadTimes, Table};
use crate::{cpu, BenchError};

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// N: the activities held.
    pub activities: usize,
    /// New activities checked in W1, drawn after the N from the same seed.
    pub probes: usize,
    pub seed: u64,
    /// Concurrent PostGIS clients in W1 (the engine runs on one thread).
    pub clients: usize,
    /// How long each W1 throughput measurement runs.
    pub w1_duration: Duration,
    /// W2 runs this many times on each side; the median is reported.
    pub w2_repeats: usize,
    /// A disagreement farther than this from the threshold fails the run.
    pub tolerance_m: f64,
    pub cluster: ClusterOptions,
    pub index: IndexStrategy,
    /// Print PostgreSQL's query plans.
    pub explain: bool,
}

/// Everything measured in one run.
#[derive(Debug)]
pub struct Report {
    pub options: RunOptions,
    pub server: String,
    pub engine_build: Duration,
    pub postgis_load: LoadTimes,
    pub max_reach_m: f64,
    pub engine_w1_checks_per_s: f64,
    pub postgis_w1_checks_per_s: f64,
    /// CPU time per check: the engine's thread; PostGIS's server and clients.
    pub engine_w1_cpu_per_check: Duration,
    pub postgis_w1_cpu_per_check: Duration,
    /// CPU time of one sweep (median).
    pub engine_w2_cpu: Duration,
    pub postgis_w2_cpu: Duration,
    pub engine_w2: Duration,
    pub postgis_w2: Duration,
    pub w1: PairDiff,
    pub w2: PairDiff,
    pub disagreements: Vec<Disagreement>,
    pub plans: Vec<(String, String)>,
    /// `/proc/loadavg` before and after: the machine is shared, and a busy
    /// neighbour slows both systems.
    pub load_average: (String, String),
}

impl Report {
    /// Whether every disagreement lies within the tolerance of its threshold.
    pub fn agrees(&self) -> bool {
        self.disagreements
            .iter()
            .all(|d| d.explained_within(self.options.tolerance_m))
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The workload: N held activities and the probes, validated by the engine.
fn workload(options: &RunOptions) -> Result<(Vec<Activity>, Vec<Activity>), BenchError> {
    let validator = Engine::new(EngineConfig::default());
    let mut generator = Workload::new(options.seed, WorkloadShape::default());
    let mut validate = |count: usize, offset: usize| {
        generator
            .activities(count)
            .iter()
            .enumerate()
            .map(|(k, spec)| {
                validator.validate(spec).map_err(|error| BenchError::Workload {
                    index: offset + k,
                    message: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let held = validate(options.activities, 0)?;
    let probes = validate(options.probes, options.activities)?;
    Ok((held, probes))
}

fn ids(activities: &[Activity]) -> impl Iterator<Item = (ActivityId, &Activity)> {
    activities
        .iter()
        .enumerate()
        .map(|(k, a)| (ActivityId(k as u64), a))
}

pub fn run(options: RunOptions) -> Result<Report, BenchError> {
    if options.probes == 0 || options.w2_repeats == 0 || options.clients == 0 {
        return Err(BenchError::Setup(
            "--probes, --w2-repeats and --clients must be at least 1".into(),
        ));
    }
    let load_before = load_average();
    eprintln!(
        "generating {} activities and {} probes (seed {})",
        options.activities, options.probes, options.seed
    );
    let (held, probes) = workload(&options)?;

    // deconflict: bulk load (which sweeps once), W2, W1.
    eprintln!("deconflict: building the engine");
    let started = Instant::now();
    let engine = Engine::from_activities(EngineConfig::default(), ids(&held).map(|(id, a)| (id, a.clone())))?;
    let engine_build = started.elapsed();
    let (mut w2_samples, mut w2_cpu_samples) = (Vec::new(), Vec::new());
    let mut engine_pairs = BTreeSet::new();
    for _ in 0..options.w2_repeats {
        let cpu_before = cpu::this_thread()?;
        let started = Instant::now();
        let conflicts = std::hint::black_box(engine.sweep());
        w2_samples.push(started.elapsed());
        w2_cpu_samples.push(cpu::this_thread()?.saturating_sub(cpu_before));
        engine_pairs = conflicts
            .iter()
            .map(|c| {
                let [a, b] = c.key.activities();
                (a.0, b.0)
            })
            .collect();
    }
    let engine_w2 = median(w2_samples);
    let engine_w2_cpu = median(w2_cpu_samples);
    eprintln!(
        "deconflict: W2 sweep {:.3} s, {} conflicts",
        engine_w2.as_secs_f64(),
        engine_pairs.len()
    );
    let now = Timestamp(0);
    let engine_w1_pairs: BTreeSet<(u64, u64)> = probes
        .iter()
        .enumerate()
        .flat_map(|(k, probe)| {
            engine
                .check(now, probe, None)
                .into_iter()
                .map(move |(other, _)| (k as u64, other.0))
        })
        .collect();
    let (engine_w1_checks_per_s, engine_w1_cpu_per_check) = {
        let cpu_before = cpu::this_thread()?;
        let started = Instant::now();
        let (mut checks, mut next) = (0usize, 0usize);
        while started.elapsed() < options.w1_duration {
            // Read the clock once per 64 checks, not once per check.
            for _ in 0..64 {
                std::hint::black_box(engine.check(now, &probes[next], None));
                next = (next + 1) % probes.len();
                checks += 1;
            }
        }
        let elapsed = started.elapsed();
        let cpu_used = cpu::this_thread()?.saturating_sub(cpu_before);
        (checks as f64 / elapsed.as_secs_f64(), cpu_used / checks as u32)
    };
    eprintln!("deconflict: W1 {engine_w1_checks_per_s:.0} checks/s");

    // PostGIS: the same activities, the same probes.
    eprintln!("PostGIS: starting a throwaway cluster");
    let mut cluster = Cluster::start(options.cluster.clone())?;
    let mut client = cluster.connect()?;
    postgis::create_schema(&mut client)?;
    let server = postgis::postgis_version(&mut client)?;
    eprintln!("PostGIS: loading {} activities", held.len());
    let postgis_load = postgis::load(&mut client, Table::Act, options.index, ids(&held))?;
    postgis::load(&mut client, Table::Probe, options.index, ids(&probes))?;
    let max_reach_m = postgis::max_reach_m(&mut client)?;
    let check_sql = postgis::check_one_sql(options.index, max_reach_m);
    let sweep_sql = postgis::sweep_sql(options.index, max_reach_m);
    let mut plans = Vec::new();
    if options.explain {
        let statement = client.prepare(&check_sql)?;
        // A generic plan is what a prepared statement settles on.
        client.batch_execute("SET plan_cache_mode = force_generic_plan")?;
        plans.push((
            "W1".into(),
            postgis::explain(&mut client, &check_sql.replace("$1", "0"))?,
        ));
        client.batch_execute("RESET plan_cache_mode")?;
        drop(statement);
        plans.push(("W2".into(), postgis::explain(&mut client, &sweep_sql)?));
    }

    let statement = client.prepare(&check_sql)?;
    let mut postgis_w1_pairs = BTreeSet::new();
    for k in 0..probes.len() as u64 {
        for other in postgis::check_one(&mut client, &statement, ActivityId(k))? {
            postgis_w1_pairs.insert((k, other));
        }
    }
    let (postgis_w1_checks_per_s, postgis_w1_cpu_per_check) =
        postgis_w1_throughput(&cluster, &check_sql, &options, probes.len())?;
    eprintln!("PostGIS: W1 {postgis_w1_checks_per_s:.0} checks/s");

    let (mut w2_samples, mut w2_cpu_samples) = (Vec::new(), Vec::new());
    let mut postgis_pairs = BTreeSet::new();
    let postmaster = cluster.postmaster_pid()?;
    for _ in 0..options.w2_repeats {
        let cpu_before = cpu::server(postmaster)? + cpu::this_thread()?;
        let started = Instant::now();
        postgis_pairs = postgis::sweep(&mut client, &sweep_sql)?;
        w2_samples.push(started.elapsed());
        w2_cpu_samples.push((cpu::server(postmaster)? + cpu::this_thread()?).saturating_sub(cpu_before));
    }
    let postgis_w2 = median(w2_samples);
    let postgis_w2_cpu = median(w2_cpu_samples);
    eprintln!(
        "PostGIS: W2 sweep {:.3} s, {} conflicts",
        postgis_w2.as_secs_f64(),
        postgis_pairs.len()
    );

    // Agreement: every pair found by one side only, measured both ways.
    let w1 = PairDiff::new(&engine_w1_pairs, &postgis_w1_pairs);
    let w2 = PairDiff::new(&engine_pairs, &postgis_pairs);
    let mut disagreements = Vec::new();
    for (diff, left_table, left) in [(&w1, Table::Probe, &probes), (&w2, Table::Act, &held)] {
        let pairs: Vec<((u64, u64), FoundBy)> = diff.disagreements().collect();
        let plain: Vec<(u64, u64)> = pairs.iter().map(|&(p, _)| p).collect();
        let distances = postgis::distances_m(&mut client, left_table, &plain)?;
        for (((l, r), found_by), postgis_distance_m) in pairs.into_iter().zip(distances) {
            disagreements.push(Disagreement::measure(
                (l, r),
                found_by,
                &left[l as usize],
                &held[r as usize],
                postgis_distance_m,
            ));
        }
    }
    drop(statement);
    drop(client);
    cluster.stop()?;

    Ok(Report {
        options,
        server,
        engine_build,
        postgis_load,
        max_reach_m,
        engine_w1_checks_per_s,
        postgis_w1_checks_per_s,
        engine_w1_cpu_per_check,
        postgis_w1_cpu_per_check,
        engine_w2_cpu,
        postgis_w2_cpu,
        engine_w2,
        postgis_w2,
        w1,
        w2,
        disagreements,
        plans,
        load_average: (load_before, load_average()),
    })
}

/// W1 on PostGIS: `clients` connections, each running the prepared check
/// over the probes (each from its own starting point) until the time is up.
/// Checks per second, and CPU time per check (server and client threads).
fn postgis_w1_throughput(
    cluster: &Cluster,
    check_sql: &str,
    options: &RunOptions,
    probe_count: usize,
) -> Result<(f64, Duration), BenchError> {
    let postmaster = cluster.postmaster_pid()?;
    // The clients and this thread, which reads the server's CPU time once
    // all clients are connected and again when they are done.
    let barrier = Barrier::new(options.clients + 1);
    // Each client comes back still connected: a backend exiting while the
    // server's CPU time is read could be counted in neither reading.
    type ClientResult = Result<(usize, Duration, Duration, postgres::Client), BenchError>;
    let (results, server_cpu) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.clients)
            .map(|client_index| {
                let barrier = &barrier;
                scope.spawn(move || -> ClientResult {
                    let connected = cluster
                        .connect()
                        .and_then(|mut client| Ok((client.prepare(check_sql)?, client)));
                    // Wait even after a failure, so that no one waits forever.
                    barrier.wait();
                    let (statement, mut client) = connected?;
                    let mut next = client_index * probe_count / options.clients;
                    let cpu_before = cpu::this_thread()?;
                    let started = Instant::now();
                    let mut checks = 0usize;
                    while started.elapsed() < options.w1_duration {
                        postgis::check_one(&mut client, &statement, ActivityId(next as u64))?;
                        next = (next + 1) % probe_count;
                        checks += 1;
                    }
                    let elapsed = started.elapsed();
                    let client_cpu = cpu::this_thread()?.saturating_sub(cpu_before);
                    Ok((checks, elapsed, client_cpu, client))
                })
            })
            .collect();
        barrier.wait();
        let server_before = cpu::server(postmaster);
        let results: Vec<ClientResult> = handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(Err(BenchError::ClientPanicked)))
            .collect();
        let server_cpu = server_before.and_then(|before| Ok(cpu::server(postmaster)?.saturating_sub(before)));
        (results, server_cpu)
    });
    let mut checks = 0usize;
    let mut longest = Duration::ZERO;
    let mut cpu_used = server_cpu?;
    let mut clients = Vec::new();
    for result in results {
        let (count, elapsed, client_cpu, client) = result?;
        checks += count;
        longest = longest.max(elapsed);
        cpu_used += client_cpu;
        clients.push(client);
    }
    // Disconnect, and wait until the backends have gone, so that their exit
    // does not fall into the next measurement.
    for client in clients {
        wait_for_exit(client_pid(client)?);
    }
    Ok((
        checks as f64 / longest.as_secs_f64(),
        cpu_used / checks.max(1) as u32,
    ))
}

/// Closes a client; the process id its backend had.
fn client_pid(mut client: postgres::Client) -> Result<i32, BenchError> {
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    client.close()?;
    Ok(pid)
}

/// Waits (at most 10 s) until process `pid` has exited and been reaped.
fn wait_for_exit(pid: i32) {
    let path = format!("/proc/{pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&path).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The 1, 5 and 15 minute load averages, or `?` where there is no /proc.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let n = thousands(o.activities as f64);
        writeln!(
            f,
            "deconflict vs {} — N = {n}, seed {}, {} probes",
            self.server, o.seed, o.probes
        )?;
        writeln!(
            f,
            "PostgreSQL: fsync on, synchronous_commit on, shared_buffers {}, composite GiST index `{}`, max reach {:.0} m",
            o.cluster.shared_buffers, o.index.as_str(), self.max_reach_m
        )?;
        writeln!(
            f,
            "Load average before {}, after {} (the engine used 1 thread, PostGIS up to {} clients)",
            self.load_average.0, self.load_average.1, o.clients
        )?;
        writeln!(f)?;
        writeln!(f, "| figure | deconflict | PostGIS | deconflict ahead by |")?;
        writeln!(f, "|---|---|---|---|")?;
        writeln!(
            f,
            "| W1 check one among {n} (checks/s; engine 1 thread, PostGIS {} clients) | {} | {} | {:.2}× |",
            o.clients,
            thousands(self.engine_w1_checks_per_s),
            thousands(self.postgis_w1_checks_per_s),
            self.engine_w1_checks_per_s / self.postgis_w1_checks_per_s
        )?;
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        writeln!(
            f,
            "| W1 CPU time per check (µs; engine thread; PostGIS server + clients) | {:.0} | {:.0} | {:.2}× |",
            micros(self.engine_w1_cpu_per_check),
            micros(self.postgis_w1_cpu_per_check),
            micros(self.postgis_w1_cpu_per_check) / micros(self.engine_w1_cpu_per_check)
        )?;
        let (engine_s, postgis_s) = (self.engine_w2.as_secs_f64(), self.postgis_w2.as_secs_f64());
        writeln!(
            f,
            "| W2 sweep {n} (s, median of {}) | {engine_s:.3} | {postgis_s:.3} | {:.2}× |",
            o.w2_repeats,
            postgis_s / engine_s
        )?;
        let (engine_cpu_s, postgis_cpu_s) = (
            self.engine_w2_cpu.as_secs_f64(),
            self.postgis_w2_cpu.as_secs_f64(),
        );
        writeln!(
            f,
            "| W2 CPU time of one sweep (s) | {engine_cpu_s:.3} | {postgis_cpu_s:.3} | {:.2}× |",
            postgis_cpu_s / engine_cpu_s
        )?;
        let load = &self.postgis_load;
        writeln!(
            f,
            "| load {n} (s; engine: bulk index + sweep; PostGIS: COPY+INSERT, index, VACUUM ANALYZE) | {:.2} | {:.2} ({:.2} + {:.2} + {:.2}) | |",
            self.engine_build.as_secs_f64(),
            (load.copy + load.index + load.analyze).as_secs_f64(),
            load.copy.as_secs_f64(),
            load.index.as_secs_f64(),
            load.analyze.as_secs_f64()
        )?;
        writeln!(f)?;
        for (name, diff) in [("W1", &self.w1), ("W2", &self.w2)] {
            writeln!(
                f,
                "{name} agreement: {} conflicts found by both, {} by deconflict only, {} by PostGIS only",
                thousands(diff.both as f64),
                diff.only_deconflict.len(),
                diff.only_postgis.len()
            )?;
        }
        match worst(&self.disagreements) {
            None => writeln!(f, "Both systems found exactly the same conflicts.")?,
            Some(d) => {
                writeln!(
                    f,
                    "Worst disagreement: pair {:?} (found by {:?} only): threshold {:.3} m, deconflict {:.3} m, PostGIS {:.3} m — {:.4} m from the threshold{}",
                    d.pair,
                    d.found_by,
                    d.threshold_m,
                    d.deconflict_distance_m,
                    d.postgis_distance_m,
                    d.distance_from_threshold_m(),
                    if d.rest_of_rule_holds { "" } else { "; the rest of the rule fails for this pair!" }
                )?;
                writeln!(
                    f,
                    "{} of {} disagreements within {} m of the threshold: {}",
                    self.disagreements
                        .iter()
                        .filter(|d| d.explained_within(o.tolerance_m))
                        .count(),
                    self.disagreements.len(),
                    o.tolerance_m,
                    if self.agrees() { "AGREE" } else { "DISAGREE" }
                )?;
            }
        }
        for (name, plan) in &self.plans {
            writeln!(f, "\n{name} plan:\n{plan}")?;
        }
        Ok(())
    }
}
