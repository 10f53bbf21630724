//! `deconflict-bench`: deconflict against PostGIS on the same seeded data, in
//! one run on one machine. Exit status 0 when both systems agree (every
//! disagreement within the tolerance of its threshold), 1 when they do not,
//! 2 when the run could not finish.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use deconflict_bench::cluster::ClusterOptions;
use deconflict_bench::postgis::IndexStrategy;
use deconflict_bench::run::{run, RunOptions};
use deconflict_bench::w3::{run_w3, W3Options};

/// deconflict vs PostGIS: W1 (check one new activity among N), W2 (sweep
/// all N) and W3 (N entities reporting at 1 Hz) on the same seeded data,
/// with what each system finds compared.
#[derive(Debug, Parser)]
#[command(name = "deconflict-bench")]
struct Args {
    /// N, the activities held.
    #[arg(long, env = "DECONFLICT_BENCH_ACTIVITIES", default_value_t = 100_000)]
    activities: usize,
    /// New activities checked in W1 (drawn after the N, same seed).
    #[arg(long, env = "DECONFLICT_BENCH_PROBES", default_value_t = 1_000)]
    probes: usize,
    #[arg(long, env = "DECONFLICT_BENCH_SEED", default_value_t = 2022)]
    seed: u64,
    /// Concurrent PostGIS clients in W1 (the engine uses one thread).
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Seconds each W1 throughput measurement runs.
    #[arg(long, default_value_t = 10.0)]
    w1_seconds: f64,
    /// Runs of W2 on each side; the median is reported.
    #[arg(long, default_value_t = 3)]
    w2_repeats: usize,
    /// A disagreement farther than this from its threshold fails the run.
    #[arg(long, default_value_t = 1.0)]
    tolerance_m: f64,
    /// Where initdb, pg_ctl and postgres are.
    #[arg(long, env = "PG_BIN", default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
    /// PostgreSQL's shared_buffers: enough to hold tables and indexes.
    #[arg(long, default_value = "1GB")]
    shared_buffers: String,
    /// PostGIS index condition: `reach-box` (each row's box grown by its own
    /// reach, indexed with the time range) or `max-reach` (index on the
    /// plain geography, each probe's box grown by its reach plus the largest).
    #[arg(long, default_value = "reach-box", value_parser = ["reach-box", "max-reach"])]
    index: String,
    /// Print PostgreSQL's plans for W1, W2 and W3.
    #[arg(long)]
    explain: bool,
    /// Which workloads run: `all` (W1/W2, W3, and CoT ingest when the
    /// deconflict binary is there), `w1w2`, `w3` or `cot`.
    #[arg(long, default_value = "all", value_parser = ["all", "w1w2", "w3", "cot"])]
    workload: String,
    /// CoT ingest: the deconflict binary (`cargo build --release -p
    /// deconflict`); default the `deconflict` beside this harness.
    #[arg(long)]
    deconflict_bin: Option<PathBuf>,
    /// CoT ingest: the Python that runs `bench/cot_ingest.py` (needs pytak).
    #[arg(long, env = "DECONFLICT_BENCH_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// CoT ingest: a Python with FreeTAKServer installed; without it, the
    /// deconflict side only.
    #[arg(long, env = "DECONFLICT_BENCH_FTS_PYTHON")]
    fts_python: Option<PathBuf>,
    /// CoT ingest: sender connections, events per connection, and the time
    /// bound per server in seconds.
    #[arg(long, default_value_t = 4)]
    cot_connections: usize,
    #[arg(long, default_value_t = 25_000)]
    cot_events: usize,
    #[arg(long, default_value_t = 120.0)]
    cot_seconds: f64,
    /// W3: entities reporting once a second.
    #[arg(long, env = "DECONFLICT_BENCH_ENTITIES", default_value_t = 100_000)]
    entities: usize,
    /// W3: fences generated (default entities / 10); demarcation lines
    /// among them are dropped, the zones kept.
    #[arg(long)]
    w3_fences: Option<usize>,
    /// W3: ticks (seconds of reports) measured after the first.
    #[arg(long, default_value_t = 10)]
    w3_ticks: usize,
    /// A quick run for CI (W1/W2: 2,000 activities, 200 probes, 1 s of W1,
    /// one W2; W3: 2,000 entities, 2,000 fences, 3 ticks): it proves the harness works
    /// and that both systems agree, its figures mean little.
    #[arg(long)]
    smoke: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.w1_seconds > 0.0 && args.w1_seconds.is_finite()) {
        eprintln!("error: --w1-seconds must be a positive number of seconds");
        return ExitCode::from(2);
    }
    if args.tolerance_m.is_nan() || args.tolerance_m < 0.0 {
        eprintln!("error: --tolerance-m must be a non-negative number of metres");
        return ExitCode::from(2);
    }
    let Some(index) = IndexStrategy::parse(&args.index) else {
        eprintln!("error: --index must be reach-box or max-reach");
        return ExitCode::from(2);
    };
    let cluster = ClusterOptions {
        bin_dir: args.pg_bin.clone(),
        shared_buffers: args.shared_buffers.clone(),
    };
    let mut options = RunOptions {
        activities: args.activities,
        probes: args.probes,
        seed: args.seed,
        clients: args.clients,
        w1_duration: Duration::from_secs_f64(args.w1_seconds),
        w2_repeats: args.w2_repeats,
        tolerance_m: args.tolerance_m,
        cluster: cluster.clone(),
        index,
        explain: args.explain,
    };
    let mut w3 = W3Options {
        entities: args.entities,
        fences: args.w3_fences.unwrap_or(args.entities / 10),
        ticks: args.w3_ticks,
        seed: args.seed,
        tolerance_m: args.tolerance_m,
        cluster,
        explain: args.explain,
    };
    if args.smoke {
        options.activities = 2_000;
        options.probes = 200;
        options.w1_duration = Duration::from_secs(1);
        options.w2_repeats = 1;
        w3.entities = 2_000;
        // Enough zones that a few entities enter one (zones are sparse).
        w3.fences = 2_000;
        w3.ticks = 3;
    }
    if w3.entities == 0 || w3.ticks == 0 {
        eprintln!("error: --entities and --w3-ticks must be at least 1");
        return ExitCode::from(2);
    }
    let mut agrees = true;
    if matches!(args.workload.as_str(), "all" | "w1w2") {
        match run(options) {
            Ok(report) => {
                println!("{report}");
                agrees &= report.agrees();
            }
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if matches!(args.workload.as_str(), "all" | "w3") {
        match run_w3(w3) {
            Ok(report) => {
                println!("{report}");
                agrees &= report.agrees();
            }
            Err(error) => {
                eprintln!("error: W3: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if matches!(args.workload.as_str(), "all" | "cot") {
        let deconflict = args.deconflict_bin.clone().or_else(|| {
            let beside = std::env::current_exe().ok()?.with_file_name("deconflict");
            beside.exists().then_some(beside)
        });
        match deconflict {
            // CI's smoke stays deterministic: the ingest needs a built server
            // binary and pytak, so it runs only when asked for.
            _ if args.smoke && args.workload == "all" => {
                eprintln!("CoT ingest skipped in --smoke (run it with --workload cot)");
            }
            None if args.workload == "all" => {
                eprintln!("CoT ingest skipped: no deconflict binary beside this one (cargo build --release -p deconflict, or --deconflict-bin)");
            }
            None => {
                eprintln!("error: --deconflict-bin is needed for --workload cot (no deconflict binary beside this one)");
                return ExitCode::from(2);
            }
            Some(binary) => {
                let (connections, events) = if args.smoke {
                    (2, 500)
                } else {
                    (args.cot_connections, args.cot_events)
                };
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../cot_ingest.py");
                let mut command = std::process::Command::new(&args.python);
                command
                    .arg(script)
                    .arg("--deconflict")
                    .arg(binary)
                    .args(["--connections", &connections.to_string()])
                    .args(["--events", &events.to_string()])
                    .args(["--seconds", &args.cot_seconds.to_string()]);
                if let Some(fts) = &args.fts_python {
                    command.arg("--fts-python").arg(fts);
                }
                match command.status() {
                    Ok(status) if status.success() => {}
                    Ok(status) if status.code() == Some(1) => agrees = false,
                    Ok(status) => {
                        eprintln!("error: {script} ended with {status}");
                        return ExitCode::from(2);
                    }
                    Err(error) => {
                        eprintln!("error: cannot run {}: {error}", args.python.display());
                        return ExitCode::from(2);
                    }
                }
            }
        }
    }
    if agrees {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
