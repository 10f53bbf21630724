//! Persistence for deconflict: an embedded SQLite database by default.
//!
//! A 2xx from the service means committed: writes go through one writer
//! thread that runs them in SQLite transactions in WAL mode with
//! `synchronous = FULL`, so a commit has reached the disk when it returns.
//! To keep throughput when every commit waits for an fsync, the writer
//! *group-commits*: it takes every write queued while the previous commit was
//! syncing and runs them in one transaction, each in its own savepoint so
//! that one failing write rolls back alone. Each caller is answered only after
//! the transaction holding its write has committed.
//!
//! Reads use a small pool of separate connections, which WAL lets proceed
//! while the writer writes.

#[cfg(feature = "fault-injection")]
mod faults;
mod migrations;
mod writer;

#[cfg(feature = "fault-injection")]
pub use faults::Faults;
pub use migrations::{schema_version, MIGRATIONS};
pub use rusqlite;
pub use writer::{Store, StoreConfig, StoreError};
