//! The store handle: one writer thread with group commit, a pool of readers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::migrations::migrate;

/// Limits of the store, each explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Writes waiting for the writer; one more is refused as
    /// [`StoreError::Overloaded`] rather than queued without bound.
    pub max_pending_writes: usize,
    /// Writes committed together in one transaction at most.
    pub max_batch: usize,
    /// Read connections kept open.
    pub readers: usize,
    /// How long a reader waits for a lock before giving up.
    pub busy_timeout_ms: u64,
    /// Injected commit failures, for the fault tests only: the field does
    /// not exist unless the `fault-injection` feature is on, so no
    /// production configuration can reach it.
    #[cfg(feature = "fault-injection")]
    pub faults: Option<crate::faults::Faults>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_pending_writes: 10_000,
            max_batch: 512,
            readers: 4,
            busy_timeout_ms: 5_000,
            #[cfg(feature = "fault-injection")]
            faults: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{limit} writes are already waiting; try again shortly")]
    Overloaded { limit: usize },
    #[error("the store is closed")]
    Closed,
    #[error("the commit failed, nothing was written: {0}")]
    CommitFailed(String),
    /// The disk (or the file size limit) is full: the commit was rolled
    /// back and nothing was written.
    #[error("the disk is full, nothing was written: {0}")]
    DiskFull(String),
    #[error("a write panicked and was rolled back")]
    WritePanicked,
    #[error("the database schema is version {found}, newer than this build knows ({known})")]
    SchemaTooNew { found: u32, known: u32 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A write's own refusal (a version mismatch, a missing row…), with the
    /// reason for the caller; its savepoint was rolled back.
    #[error("{0}")]
    Rejected(String),
}

impl StoreError {
    /// Whether the disk (or the database's size limit) is full: the write
    /// was not made, and none will be until space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull(_) => true,
            StoreError::Sqlite(error) => error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            _ => false,
        }
    }
}

/// Why a batch's transaction did not commit.
#[derive(Debug, Clone)]
pub(crate) struct CommitFailure {
    pub(crate) disk_full: bool,
    pub(crate) reason: String,
}

impl CommitFailure {
    fn of(error: &rusqlite::Error) -> Self {
        CommitFailure {
            disk_full: error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            reason: error.to_string(),
        }
    }

    fn to_error(&self) -> StoreError {
        if self.disk_full {
            StoreError::DiskFull(self.reason.clone())
        } else {
            StoreError::CommitFailed(self.reason.clone())
        }
    }
}

/// Called once the transaction holding a write has committed (`None`) or
/// failed; answers the waiting caller.
type Completion = Box<dyn FnOnce(Option<&CommitFailure>) + Send>;
/// A queued write: runs inside the batch's transaction (or is told the batch
/// could not start) and returns how to answer its caller.
type Job = Box<dyn for<'c> FnOnce(Result<&mut Transaction<'c>, &CommitFailure>) -> Completion + Send>;

/// The database handle. Cheap to share behind an `Arc`; every method blocks
/// the calling thread, so async callers use `spawn_blocking`.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    config: StoreConfig,
    jobs: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
}

fn open_connection(path: &Path, flags: OpenFlags, busy_timeout_ms: u64) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_millis(busy_timeout_ms))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            config.busy_timeout_ms,
        )?;
        // WAL lets readers proceed during writes; FULL syncs the WAL at every
        // commit, which is what makes a 2xx mean "on disk".
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::CommitFailed(format!(
                "cannot enable WAL (journal mode {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;

        let (jobs, queue) = mpsc::sync_channel::<Job>(config.max_pending_writes);
        let max_batch = config.max_batch.max(1);
        #[cfg(feature = "fault-injection")]
        let faults = config.faults.clone();
        #[cfg(not(feature = "fault-injection"))]
        let faults = None;
        let writer = std::thread::Builder::new()
            .name("deconflict-store-writer".into())
            .spawn(move || write_loop(conn, queue, max_batch, faults))
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Store {
            path,
            config,
            jobs: Some(jobs),
            writer: Some(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Runs `write` in the writer's transaction, inside its own savepoint, and
    /// returns its result once that transaction has committed. If `write`
    /// fails its changes are rolled back and the others in the batch stand.
    pub fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel::<Result<T, StoreError>>(1);
        let job: Job = Box::new(move |tx| {
            let outcome = match tx {
                Ok(tx) => run_in_savepoint(tx, write),
                Err(failure) => Err(failure.to_error()),
            };
            Box::new(move |commit_failure: Option<&CommitFailure>| {
                let result = match commit_failure {
                    // The batch did not commit: whatever the write returned,
                    // nothing of it is on disk.
                    Some(failure) if outcome.is_ok() => Err(failure.to_error()),
                    _ => outcome,
                };
                let _ = reply.send(result);
            })
        });
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => StoreError::Overloaded {
                limit: self.config.max_pending_writes,
            },
            TrySendError::Disconnected(_) => StoreError::Closed,
        })?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Runs `read` on a read-only connection. Sees every write that was
    /// acknowledged before the call.
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Closed)?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                self.config.busy_timeout_ms,
            )?,
        };
        let result = read(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < self.config.readers {
                pool.push(conn);
            }
        }
        result
    }
}

impl Drop for Store {
    /// Lets queued writes finish, then stops the writer.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn run_in_savepoint<T>(
    tx: &mut Transaction<'_>,
    write: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let savepoint = tx.savepoint()?;
    // A panicking write must not take the writer thread (and every later
    // write) down with it; its savepoint rolls back like any failure.
    let outcome =
        catch_unwind(AssertUnwindSafe(|| write(&savepoint))).unwrap_or(Err(StoreError::WritePanicked));
    match outcome {
        Ok(value) => {
            savepoint.commit()?;
            Ok(value)
        }
        Err(error) => Err(error), // dropping the savepoint rolls it back
    }
}

#[cfg(not(feature = "fault-injection"))]
type MaybeFaults = Option<std::convert::Infallible>;
#[cfg(feature = "fault-injection")]
type MaybeFaults = Option<crate::faults::Faults>;

/// Whether the test harness asked this commit to fail.
#[cfg(feature = "fault-injection")]
fn injected_failure(faults: &MaybeFaults) -> Option<CommitFailure> {
    faults
        .as_ref()
        .and_then(crate::faults::Faults::take_commit_failure)
}

#[cfg(not(feature = "fault-injection"))]
fn injected_failure(_: &MaybeFaults) -> Option<CommitFailure> {
    None
}

fn write_loop(mut conn: Connection, queue: Receiver<Job>, max_batch: usize, faults: MaybeFaults) {
    while let Ok(first) = queue.recv() {
        // Everything that queued while the last commit was syncing goes into
        // this one: that is the group commit.
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let failure = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(mut tx) => {
                for job in batch {
                    completions.push(job(Ok(&mut tx)));
                }
                match injected_failure(&faults) {
                    // Dropping the transaction rolls it back, as SQLite
                    // does when the commit's write or fsync fails.
                    Some(failure) => Some(failure),
                    None => tx.commit().err().map(|error| CommitFailure::of(&error)),
                }
            }
            Err(error) => {
                let failure = CommitFailure::of(&error);
                for job in batch {
                    completions.push(job(Err(&failure)));
                }
                Some(failure)
            }
        };
        for complete in completions {
            complete(failure.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store(config: StoreConfig) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite"), config).unwrap();
        store
            .write(|conn| {
                conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
                Ok(())
            })
            .unwrap();
        (dir, store)
    }

    fn count(store: &Store) -> i64 {
        store
            .read(|conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .unwrap()
    }

    #[test]
    fn an_acknowledged_write_is_visible_to_readers_and_after_reopen() {
        let (dir, store) = store(StoreConfig::default());
        store
            .write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES ('a')", [])?))
            .unwrap();
        assert_eq!(count(&store), 1);
        drop(store);
        let reopened = Store::open(dir.path().join("db.sqlite"), StoreConfig::default()).unwrap();
        assert_eq!(count(&reopened), 1);
        assert_eq!(
            reopened.read(|c| Ok(crate::schema_version(c)?)).unwrap(),
            crate::MIGRATIONS.len() as u32
        );
    }

    #[test]
    fn a_failing_write_rolls_back_alone() {
        let (_dir, store) = store(StoreConfig::default());
        let failed = store.write(|conn| {
            conn.execute("INSERT INTO t (v) VALUES ('half')", [])?;
            Err::<(), _>(StoreError::Rejected("changed my mind".into()))
        });
        assert!(matches!(failed, Err(StoreError::Rejected(_))));
        let panicked = store.write(|conn| -> Result<(), StoreError> {
            conn.execute("INSERT INTO t (v) VALUES ('half')", [])?;
            panic!("bug in a write")
        });
        assert!(matches!(panicked, Err(StoreError::WritePanicked)));
        store
            .write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES ('whole')", [])?))
            .unwrap();
        assert_eq!(count(&store), 1, "only the whole write is there");
    }

    #[test]
    fn concurrent_writers_are_grouped_and_all_committed() {
        let (_dir, store) = store(StoreConfig::default());
        let store = Arc::new(store);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        store
                            .write(move |conn| {
                                Ok(conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("{t}-{i}")])?)
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(count(&store), 400);
    }

    #[test]
    fn the_queue_is_bounded() {
        let (_dir, store) = store(StoreConfig {
            max_pending_writes: 1,
            ..StoreConfig::default()
        });
        let store = Arc::new(store);
        // Hold the writer busy inside one write…
        let (started_tx, started) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let release = Mutex::new(release);
        let busy = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                store.write(move |_| {
                    started_tx.send(()).unwrap();
                    release.lock().unwrap().recv().unwrap();
                    Ok(())
                })
            })
        };
        started.recv().unwrap();
        // …then of five more writes exactly one fits the queue; four are
        // refused at once instead of waiting.
        let (results_tx, results) = mpsc::channel();
        for _ in 0..5 {
            let (store, results_tx) = (Arc::clone(&store), results_tx.clone());
            std::thread::spawn(move || results_tx.send(store.write(|_| Ok(()))).unwrap());
        }
        for _ in 0..4 {
            let refused = results.recv().unwrap();
            assert!(
                matches!(refused, Err(StoreError::Overloaded { limit: 1 })),
                "{refused:?}"
            );
        }
        release_tx.send(()).unwrap();
        busy.join().unwrap().unwrap();
        results.recv().unwrap().unwrap();
    }

    #[test]
    fn a_full_database_refuses_the_write_and_keeps_the_others() {
        let (_dir, store) = store(StoreConfig::default());
        let pages: i64 = store
            .write(|conn| Ok(conn.query_row("PRAGMA page_count", [], |r| r.get(0))?))
            .unwrap();
        // SQLite's own size limit gives the same SQLITE_FULL as a full disk.
        store
            .write(move |conn| {
                conn.query_row(&format!("PRAGMA max_page_count = {}", pages + 4), [], |_| Ok(()))?;
                Ok(())
            })
            .unwrap();
        store
            .write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES ('small')", [])?))
            .unwrap();
        let full =
            store.write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES (?1)", ["x".repeat(1 << 20)])?));
        let error = full.expect_err("a megabyte does not fit in four pages");
        assert!(error.is_disk_full(), "{error}");
        assert_eq!(count(&store), 1, "the full write left nothing behind");
        store
            .write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES ('fits')", [])?))
            .unwrap();
        assert_eq!(count(&store), 2);
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn an_injected_commit_failure_fails_the_whole_batch_and_writes_nothing() {
        let faults = crate::Faults::new();
        let (_dir, store) = store(StoreConfig {
            faults: Some(faults.clone()),
            ..StoreConfig::default()
        });
        faults.fail_next_commits(1);
        let failed = store.write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES ('lost')", [])?));
        assert!(matches!(failed, Err(StoreError::CommitFailed(_))), "{failed:?}");
        assert_eq!(count(&store), 0);
        faults.fail_all_commits(true);
        for _ in 0..3 {
            let failed = store.write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES ('lost')", [])?));
            assert!(failed.as_ref().is_err_and(StoreError::is_disk_full), "{failed:?}");
        }
        assert_eq!(faults.commits_failed(), 4);
        faults.clear();
        store
            .write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES ('kept')", [])?))
            .unwrap();
        assert_eq!(count(&store), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 999).unwrap();
        }
        assert!(matches!(
            Store::open(&path, StoreConfig::default()),
            Err(StoreError::SchemaTooNew { found: 999, .. })
        ));
    }
}
