//! The comparison harness: deconflict against PostGIS on the same seeded
//! workload, in one run on one machine.
//!
//! One command generates the workload of `deconflict_sim::workload` (fixed
//! seed), loads it into the engine and into a throwaway PostgreSQL + PostGIS
//! cluster, runs W1 (check one new activity among N) and W2 (sweep all N)
//! on both, checks that both find the same conflicts, and prints each figure
//! with the ratio. See `bench/README.md`.
//!
//! Modules: `cluster` (the throwaway server), `cpu` (CPU time from /proc), `rows` (activities as PostGIS
//! rows), `postgis` (schema, load, the rule in SQL), `agreement` (comparing
//! the conflict sets), `run` (the measurements and the report).

pub mod agreement;
pub mod cluster;
pub mod cpu;
pub mod postgis;
pub mod rows;
pub mod run;
pub mod w3;

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("PostgreSQL: {}", postgres_detail(.0))]
    Postgres(#[from] postgres::Error),
    #[error("{0}")]
    Setup(String),
    #[error("workload activity {index} is invalid: {message}")]
    Workload { index: usize, message: String },
    #[error("engine: {0}")]
    Engine(#[from] deconflict_engine::EngineError),
    #[error("a client thread panicked")]
    ClientPanicked,
}

impl BenchError {
    pub(crate) fn io(what: &str, source: std::io::Error) -> Self {
        BenchError::Io {
            what: what.to_owned(),
            source,
        }
    }
}

/// The server's own message when there is one (the driver's `Display`
/// says only "db error").
fn postgres_detail(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    }
}
