//! Persistence for deconflict: an embedded SQLite database by default, or a
//! PostgreSQL server (`--database-url`), behind one interface.
//!
//! A 2xx from the service means committed: writes go through one writer
//! thread that runs them in transactions that have reached the disk when
//! they commit (SQLite in WAL mode with `synchronous = FULL`; PostgreSQL
//! with `synchronous_commit = on` on a server with `fsync = on`). To keep
//! throughput when every commit waits for an fsync, the writer
//! *group-commits*: it takes every write queued while the previous commit was
//! syncing and runs them in one transaction, each in its own savepoint so
//! that one failing write rolls back alone. Each caller is answered only after
//! the transaction holding its write has committed.
//!
//! Reads use a small pool of separate connections, which WAL (and
//! PostgreSQL's MVCC) lets proceed while the writer writes.
//!
//! The service's SQL is written once ([`Db`], [`Row`], [`params!`]): the
//! subset both databases (and CockroachDB) run, with per-backend migration
//! lists of the same version numbers.

mod db;
#[cfg(feature = "fault-injection")]
mod faults;
mod migrations;
pub mod testing;
mod writer;

pub use db::{Backend, Db, Row, Value};
#[cfg(feature = "fault-injection")]
pub use faults::Faults;
pub use migrations::{migrations, schema_version, CONFLICT_ID_BLOCK, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
pub use postgres;
pub use rusqlite;
pub use writer::{Database, Store, StoreConfig, StoreError};
