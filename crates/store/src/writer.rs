//! The store handle: one writer thread with group commit, a pool of readers,
//! on SQLite or PostgreSQL.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::db::{Backend, Db, PgConn};
use crate::migrations::migrate;

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (created at first start).
    Sqlite(PathBuf),
    /// A PostgreSQL (or CockroachDB) connection string, URL
    /// (`postgres://user@127.0.0.1:5432/db`) or `key=value` form. No TLS:
    /// see [`Store::open_database`].
    Postgres(String),
}

impl std::fmt::Debug for Database {
    /// The connection string may hold a password: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(_) => f.write_str("Postgres(<connection string>)"),
        }
    }
}

impl Database {
    pub fn backend(&self) -> Backend {
        match self {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }
}

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
    /// How long a reader waits for a lock before giving up (SQLite).
    pub busy_timeout_ms: u64,
    /// The writer connection's page cache in KiB (SQLite `cache_size`).
    /// SQLite's own default is 2 MiB, which at 100k activities holds a
    /// fraction of the indexes every batch inserts into: each insert then
    /// reads its index pages back through the OS. Memory use grows up to
    /// this much; it is not preallocated. Readers keep SQLite's default.
    pub writer_cache_kib: u32,
    /// WAL pages (16 KiB each in a database this store created, 4 KiB in
    /// one created before it made them larger) after which a commit wakes
    /// the checkpointer thread, which
    /// copies the WAL back into the database file on its own connection
    /// (SQLite's passive checkpoint: it waits for nobody) while the writer
    /// goes on committing. SQLite's own `wal_autocheckpoint` (default
    /// 1,000) would do it on the writer's thread, in series with every
    /// write. Each checkpoint writes every page changed since the last one
    /// and syncs the database file; a longer WAL lets a page changed by
    /// many batches be copied once. Commits still sync the WAL: durability
    /// does not depend on checkpoints.
    pub wal_autocheckpoint_pages: u32,
    /// WAL pages after which the writer checkpoints itself (passively)
    /// after its commit, as SQLite's `wal_autocheckpoint` does: the bound
    /// on the WAL's length when the checkpointer cannot keep up or never
    /// finds the WAL idle to start it over (the writer's own checkpoint
    /// then copies what the checkpointer left). At or below
    /// `wal_autocheckpoint_pages` the writer does every checkpoint.
    pub wal_max_pages: u32,
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
            writer_cache_kib: 65_536,
            // 64 MiB and 256 MiB of 16 KiB pages, the sizes the checkpoint
            // was measured at with 4 KiB pages (writer-s19); 16 KiB pages
            // with these counts measured the same CPU (driver-s22).
            wal_autocheckpoint_pages: 4_096,
            wal_max_pages: 16_384,
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
    #[error("database: {0}")]
    Postgres(#[from] postgres::Error),
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
    /// Another writer on the same database committed first (a lost
    /// compare-and-swap, or PostgreSQL's serialization failure `40001`):
    /// nothing of this transaction was written; redo it on the new state.
    #[error("another writer committed first, nothing was written: {0}")]
    LostRace(String),
}

impl StoreError {
    /// Whether the disk (or the database's size limit) is full: the write
    /// was not made, and none will be until space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull(_) => true,
            StoreError::Sqlite(error) => error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            StoreError::Postgres(error) => error.code() == Some(&postgres::error::SqlState::DISK_FULL),
            _ => false,
        }
    }

    /// Whether another writer on the same database won: the transaction was
    /// rolled back because of a concurrent commit (PostgreSQL's
    /// serialization failure or deadlock, or a lost compare-and-swap), and
    /// redoing it against the new state will do.
    pub fn is_lost_race(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            StoreError::LostRace(_) => true,
            StoreError::Postgres(error) => matches!(
                error.code(),
                Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            ),
            _ => false,
        }
    }
}

/// Why a batch's transaction did not commit.
#[derive(Debug, Clone)]
pub(crate) struct CommitFailure {
    pub(crate) disk_full: bool,
    /// A concurrent commit won (see [`StoreError::is_lost_race`]).
    pub(crate) lost_race: bool,
    pub(crate) reason: String,
}

impl CommitFailure {
    fn of(error: &StoreError) -> Self {
        CommitFailure {
            disk_full: error.is_disk_full(),
            lost_race: error.is_lost_race(),
            reason: error.to_string(),
        }
    }

    fn to_error(&self) -> StoreError {
        if self.disk_full {
            StoreError::DiskFull(self.reason.clone())
        } else if self.lost_race {
            StoreError::LostRace(self.reason.clone())
        } else {
            StoreError::CommitFailed(self.reason.clone())
        }
    }
}

/// Called once the transaction holding a write has committed (`None`) or
/// failed; answers the waiting caller.
type Completion = Box<dyn FnOnce(Option<&CommitFailure>) + Send>;
/// How a queued write runs inside the batch's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// Other writes share the transaction: this one runs in its own
    /// savepoint so that its failure rolls back only its own changes.
    Savepoint,
    /// The only write of an SQLite transaction: no savepoint (a
    /// savepoint copies every page it first changes into a sub-journal,
    /// ~4 % of the W1 bench's process time); if it fails the whole
    /// transaction rolls back, which is the same thing.
    Alone,
}

/// A queued write: runs inside the batch's transaction (or is told the batch
/// could not start) and returns how to answer its caller.
type Job =
    Box<dyn for<'d, 'c> FnOnce(Result<(&'d mut Db<'c>, Isolation), &CommitFailure>) -> Completion + Send>;

/// The read connections kept open, of the store's backend.
#[derive(Debug)]
enum Readers {
    Sqlite(Vec<Connection>),
    Postgres(Vec<PgConn>),
}

/// The database handle. Cheap to share behind an `Arc`; every method blocks
/// the calling thread, so async callers use `spawn_blocking`.
#[derive(Debug)]
pub struct Store {
    database: Database,
    config: StoreConfig,
    jobs: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// SQLite's checkpointer thread; it ends when the writer's connection
    /// (which holds the other end of its wake-up channel) is dropped.
    checkpointer: Option<JoinHandle<()>>,
    readers: Mutex<Readers>,
}

/// Prepared statements the SQLite writer keeps (rusqlite's default is 16).
const WRITER_STATEMENT_CACHE: usize = 64;

/// The page size of a database this store creates, in bytes (SQLite's
/// default is 4,096). The service's writes are mostly appends (log leaves,
/// activity versions, conflict and hotline rows, index entries in the last
/// id block), so a commit's dirty pages are mostly full ones at the end of
/// each B-tree: with 16 KiB pages a batch writes a quarter as many WAL
/// frames (each its own checksum, write and WAL-index entry) and splits a
/// quarter as many pages, for about the same bytes. Measured in the W1
/// bench among 100k activities (crates/server/NOTES.md, `driver-s22`): the
/// writer's CPU ~0.8×, the checkpointer's ~0.4×; 8 KiB gained half as
/// much, 32 KiB less and wrote ~1.4× the bytes. The WAL limits
/// ([`StoreConfig::wal_autocheckpoint_pages`], `wal_max_pages`) count
/// pages of this size.
const NEW_DATABASE_PAGE_SIZE: i64 = 16_384;

fn open_connection(path: &Path, flags: OpenFlags, busy_timeout_ms: u64) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_millis(busy_timeout_ms))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Starts SQLite's checkpointer: a thread with its own connection that runs
/// a passive checkpoint each time it is woken (see
/// [`StoreConfig::wal_autocheckpoint_pages`]). Returns the wake-up sender
/// (one pending wake-up is enough: a checkpoint copies everything committed
/// before it starts) and the thread. The thread ends when the sender is
/// dropped.
fn spawn_checkpointer(
    path: &Path,
    config: &StoreConfig,
) -> Result<(SyncSender<()>, JoinHandle<()>), StoreError> {
    let conn = open_connection(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        config.busy_timeout_ms,
    )?;
    // The checkpoint syncs the database file before the WAL may be
    // started over, as on the writer.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        // Not `deconflict-store-…`: the kernel keeps 15 bytes of a thread's
        // name, and per-thread CPU figures must tell it from the writer.
        .name("deconflict-checkpointer".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                // A failed or partial checkpoint (busy, disk full) loses
                // nothing: the commits are in the WAL, the next commit
                // wakes this thread again, and the writer's own bound
                // (`wal_max_pages`) keeps the WAL from growing without end.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
        .map_err(|source| StoreError::Io {
            path: PathBuf::from("deconflict-checkpointer"),
            source,
        })?;
    Ok((wake, thread))
}

/// Replaces SQLite's automatic checkpoint on the writer's connection: after
/// each commit, the WAL's length in pages decides between nothing, waking
/// the checkpointer, and (past [`StoreConfig::wal_max_pages`]) a passive
/// checkpoint on the writer itself.
fn install_wal_hook(
    conn: &mut Connection,
    config: &StoreConfig,
    wake: SyncSender<()>,
) -> Result<(), StoreError> {
    let (autocheckpoint, max) = (config.wal_autocheckpoint_pages, config.wal_max_pages);
    conn.wal_hook(Some(
        move |wal: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
            let pages = u32::try_from(pages).unwrap_or(0);
            if pages >= max {
                // Its failure is ignored like SQLite's own automatic
                // checkpoint's: the commit has happened, and an error returned
                // here would make COMMIT report one.
                let _ = wal.checkpoint();
            } else if pages >= autocheckpoint {
                let _ = wake.try_send(());
            }
            Ok(())
        },
    ))?;
    Ok(())
}

/// The writer's connection.
enum WriterConn {
    Sqlite(Connection),
    /// Reconnected at the next batch when the server closed it (a restart
    /// of the database): every batch until then fails, none is lost.
    Postgres {
        url: String,
        conn: Option<Box<PgConn>>,
    },
}

impl WriterConn {
    /// Starts the batch's transaction: `BEGIN IMMEDIATE` on SQLite (the
    /// write lock now, not at the first write), SERIALIZABLE on PostgreSQL
    /// (CockroachDB's only level, and PostgreSQL's strictest).
    fn begin(&mut self) -> Result<Db<'_>, StoreError> {
        match self {
            WriterConn::Sqlite(conn) => {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                Ok(Db::sqlite(conn))
            }
            WriterConn::Postgres { url, conn } => {
                if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
                    *conn = None;
                    *conn = Some(Box::new(PgConn::connect(url)?));
                }
                let Some(pg) = conn.as_mut() else {
                    return Err(StoreError::Closed);
                };
                pg.client.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
                Ok(Db::postgres(pg))
            }
        }
    }
}

/// Ends the batch's transaction: commits it, or rolls it back (`failure`
/// says why) and reports that nothing of it was written.
fn finish(db: &mut Db<'_>, failure: Option<CommitFailure>) -> Option<CommitFailure> {
    let failure = failure.or_else(|| db.execute_batch("COMMIT").err().map(|e| CommitFailure::of(&e)));
    if failure.is_some() {
        // After a failed COMMIT SQLite may still hold the transaction open;
        // PostgreSQL has ended it already (and ignores this).
        let _ = db.execute_batch("ROLLBACK");
    }
    failure
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and
    /// migrates it.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        Store::open_database(&Database::Sqlite(path.as_ref().to_path_buf()), config)
    }

    /// Opens `database` and migrates it.
    ///
    /// PostgreSQL is reached with the synchronous `postgres` crate
    /// (rust-postgres) rather than `sqlx`: the store is thread-based (one
    /// writer thread, blocking readers under `spawn_blocking`), so a
    /// blocking client fits it without a second async runtime inside the
    /// store, and its statements are plain SQL strings like rusqlite's,
    /// which keeps one SQL text for both backends. There is no TLS: the
    /// database is expected on the same host (loopback or a Unix socket).
    pub fn open_database(database: &Database, config: StoreConfig) -> Result<Store, StoreError> {
        let mut checkpointer = None;
        let writer_conn = match database {
            Database::Sqlite(path) => {
                let mut conn = open_connection(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_CREATE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    config.busy_timeout_ms,
                )?;
                // Only a new, empty database takes it: an existing one
                // keeps the page size it was created with.
                conn.pragma_update(None, "page_size", NEW_DATABASE_PAGE_SIZE)?;
                // WAL lets readers proceed during writes; FULL syncs the WAL
                // at every commit, which is what makes a 2xx mean "on disk".
                let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    return Err(StoreError::CommitFailed(format!(
                        "cannot enable WAL (journal mode {mode})"
                    )));
                }
                conn.pragma_update(None, "synchronous", "FULL")?;
                // A negative cache_size is a size in KiB, not in pages.
                conn.pragma_update(None, "cache_size", -i64::from(config.writer_cache_kib))?;
                let (wake, thread) = spawn_checkpointer(path, &config)?;
                checkpointer = Some(thread);
                install_wal_hook(&mut conn, &config, wake)?;
                // One batch of the service prepares ~10 single-row
                // statements and up to 4 multi-row ones per table it
                // inserts several rows into; rusqlite's default cache of 16
                // would evict and re-prepare them every batch.
                conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
                migrate(&mut Db::sqlite(&conn))?;
                WriterConn::Sqlite(conn)
            }
            Database::Postgres(url) => {
                let mut conn = PgConn::connect(url)?;
                // A commit returns once its WAL record is flushed (the
                // server's `fsync` must be on too): a 2xx means durable,
                // as on SQLite. Set per session so that a server default
                // of `off` cannot weaken it.
                conn.client.batch_execute("SET synchronous_commit = on")?;
                migrate(&mut Db::postgres(&mut conn))?;
                WriterConn::Postgres {
                    url: url.clone(),
                    conn: Some(Box::new(conn)),
                }
            }
        };

        let (jobs, queue) = mpsc::sync_channel::<Job>(config.max_pending_writes);
        let max_batch = config.max_batch.max(1);
        #[cfg(feature = "fault-injection")]
        let faults = config.faults.clone();
        #[cfg(not(feature = "fault-injection"))]
        let faults = None;
        let writer = std::thread::Builder::new()
            .name("deconflict-store-writer".into())
            .spawn(move || write_loop(writer_conn, queue, max_batch, faults))
            .map_err(|source| StoreError::Io {
                path: PathBuf::from("deconflict-store-writer"),
                source,
            })?;
        let readers = match database.backend() {
            Backend::Sqlite => Readers::Sqlite(Vec::new()),
            Backend::Postgres => Readers::Postgres(Vec::new()),
        };
        Ok(Store {
            database: database.clone(),
            config,
            jobs: Some(jobs),
            writer: Some(writer),
            checkpointer,
            readers: Mutex::new(readers),
        })
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub fn backend(&self) -> Backend {
        self.database.backend()
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
        F: FnOnce(&mut Db<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel::<Result<T, StoreError>>(1);
        let job: Job = Box::new(move |db| {
            let outcome = match db {
                Ok((db, Isolation::Savepoint)) => run_in_savepoint(db, write),
                Ok((db, Isolation::Alone)) => run_alone(db, write),
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

    /// Runs `read` on a read connection, in one read transaction: its
    /// queries see one snapshot, which holds every write that was
    /// acknowledged before the call.
    pub fn read<T>(&self, read: impl FnOnce(&mut Db<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.database {
            Database::Sqlite(path) => {
                let pooled = match &mut *self.readers.lock().map_err(|_| StoreError::Closed)? {
                    Readers::Sqlite(pool) => pool.pop(),
                    Readers::Postgres(_) => None,
                };
                let conn = match pooled {
                    Some(conn) => conn,
                    None => open_connection(
                        path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        self.config.busy_timeout_ms,
                    )?,
                };
                let result = read_transaction(&mut Db::sqlite(&conn), "BEGIN", read);
                if let Ok(mut readers) = self.readers.lock() {
                    if let Readers::Sqlite(pool) = &mut *readers {
                        if pool.len() < self.config.readers {
                            pool.push(conn);
                        }
                    }
                }
                result
            }
            Database::Postgres(url) => {
                let pooled = match &mut *self.readers.lock().map_err(|_| StoreError::Closed)? {
                    Readers::Postgres(pool) => pool.pop(),
                    Readers::Sqlite(_) => None,
                };
                let mut conn = match pooled {
                    Some(conn) if !conn.client.is_closed() => conn,
                    _ => PgConn::connect(url)?,
                };
                let result = read_transaction(
                    &mut Db::postgres(&mut conn),
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                    read,
                );
                if conn.client.is_closed() {
                    return result;
                }
                if let Ok(mut readers) = self.readers.lock() {
                    if let Readers::Postgres(pool) = &mut *readers {
                        if pool.len() < self.config.readers {
                            pool.push(conn);
                        }
                    }
                }
                result
            }
        }
    }
}

fn read_transaction<T>(
    db: &mut Db<'_>,
    begin: &str,
    read: impl FnOnce(&mut Db<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    db.execute_batch(begin)?;
    let result = read(db);
    // Nothing was written: ending the transaction either way is the same.
    let end = db.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let value = result?;
    end?;
    Ok(value)
}

impl Drop for Store {
    /// Lets queued writes finish, then stops the writer.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.join();
        }
    }
}

fn run_in_savepoint<T>(
    db: &mut Db<'_>,
    write: impl FnOnce(&mut Db<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if let Err(error) = db.execute_batch("SAVEPOINT write") {
        db.poisoned = true;
        return Err(error);
    }
    // A panicking write must not take the writer thread (and every later
    // write) down with it; its savepoint rolls back like any failure.
    let outcome =
        catch_unwind(AssertUnwindSafe(|| write(&mut *db))).unwrap_or(Err(StoreError::WritePanicked));
    let close = if outcome.is_ok() {
        "RELEASE SAVEPOINT write"
    } else {
        "ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write"
    };
    if let Err(error) = db.execute_batch(close) {
        // The transaction is in a state we cannot vouch for (a write that
        // swallowed a PostgreSQL error leaves it aborted): the whole batch
        // is rolled back.
        db.poisoned = true;
        return Err(outcome.err().unwrap_or(error));
    }
    outcome
}

/// Runs the transaction's only write without a savepoint. A failure (or a
/// panic) marks the transaction for rollback: nothing of it is written,
/// exactly as if its savepoint had been rolled back in a transaction that
/// then committed nothing.
fn run_alone<T>(
    db: &mut Db<'_>,
    write: impl FnOnce(&mut Db<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let outcome =
        catch_unwind(AssertUnwindSafe(|| write(&mut *db))).unwrap_or(Err(StoreError::WritePanicked));
    if outcome.is_err() {
        db.poisoned = true;
    }
    outcome
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

fn write_loop(mut conn: WriterConn, queue: Receiver<Job>, max_batch: usize, faults: MaybeFaults) {
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
        let failure = match conn.begin() {
            Ok(mut db) => {
                // Only on SQLite: a PostgreSQL write that swallows an error
                // leaves the transaction aborted, which only closing a
                // savepoint reveals (COMMIT would answer ROLLBACK, no error).
                let isolation = if batch.len() == 1 && db.backend() == Backend::Sqlite {
                    Isolation::Alone
                } else {
                    Isolation::Savepoint
                };
                for job in batch {
                    completions.push(job(Ok((&mut db, isolation))));
                }
                let failure = if db.poisoned {
                    Some(CommitFailure {
                        disk_full: false,
                        lost_race: false,
                        reason: "a write left the transaction in an unknown state".into(),
                    })
                } else {
                    // A rollback instead of the commit, as the database
                    // does when the commit's write or fsync fails.
                    injected_failure(&faults)
                };
                finish(&mut db, failure)
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
    use crate::params;
    use std::sync::Arc;

    fn store(config: StoreConfig) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite"), config).unwrap();
        store
            .write(|db| db.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
            .unwrap();
        (dir, store)
    }

    /// The one integer `sql` reads.
    fn read_i64(store: &Store, sql: &'static str) -> i64 {
        store
            .read(move |db| db.query_one(sql, params![], |r| r.get_i64(0)))
            .unwrap()
    }

    fn count(store: &Store) -> i64 {
        read_i64(store, "SELECT count(*) FROM t")
    }

    #[test]
    fn an_acknowledged_write_is_visible_to_readers_and_after_reopen() {
        let (dir, store) = store(StoreConfig::default());
        store
            .write(|db| db.execute("INSERT INTO t (v) VALUES ('a')", params![]))
            .unwrap();
        assert_eq!(count(&store), 1);
        drop(store);
        let reopened = Store::open(dir.path().join("db.sqlite"), StoreConfig::default()).unwrap();
        assert_eq!(count(&reopened), 1);
        assert_eq!(
            reopened.read(crate::schema_version).unwrap(),
            crate::SQLITE_MIGRATIONS.len() as u32
        );
    }

    #[test]
    fn a_failing_write_rolls_back_alone() {
        let (_dir, store) = store(StoreConfig::default());
        let failed = store.write(|db| {
            db.execute("INSERT INTO t (v) VALUES ('half')", params![])?;
            Err::<(), _>(StoreError::Rejected("changed my mind".into()))
        });
        assert!(matches!(failed, Err(StoreError::Rejected(_))));
        let panicked = store.write(|db| -> Result<(), StoreError> {
            db.execute("INSERT INTO t (v) VALUES ('half')", params![])?;
            panic!("bug in a write")
        });
        assert!(matches!(panicked, Err(StoreError::WritePanicked)));
        store
            .write(|db| db.execute("INSERT INTO t (v) VALUES ('whole')", params![]))
            .unwrap();
        assert_eq!(count(&store), 1, "only the whole write is there");
    }

    #[test]
    fn in_a_shared_transaction_a_failing_write_rolls_back_only_its_savepoint() {
        // What the writer does when several writes share a transaction
        // (`Isolation::Savepoint`); a lone one (`Isolation::Alone`, every
        // write of the test above) rolls the transaction back instead.
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL); BEGIN")
            .unwrap();
        let mut db = Db::sqlite(&conn);
        run_in_savepoint(&mut db, |db| {
            db.execute("INSERT INTO t (v) VALUES ('before')", params![])
        })
        .unwrap();
        let failed = run_in_savepoint(&mut db, |db| {
            db.execute("INSERT INTO t (v) VALUES ('half')", params![])?;
            Err::<(), _>(StoreError::Rejected("changed my mind".into()))
        });
        assert!(matches!(failed, Err(StoreError::Rejected(_))));
        run_in_savepoint(&mut db, |db| {
            db.execute("INSERT INTO t (v) VALUES ('after')", params![])
        })
        .unwrap();
        assert!(!db.poisoned, "the others' transaction still commits");
        let alone = run_alone(&mut db, |_| Err::<(), _>(StoreError::Rejected("no".into())));
        assert!(matches!(alone, Err(StoreError::Rejected(_))));
        assert!(db.poisoned, "a lone write's failure rolls its transaction back");
        db.execute_batch("COMMIT").unwrap();
        let kept: Vec<String> = conn
            .prepare("SELECT v FROM t ORDER BY k")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, ["before", "after"]);
    }

    #[test]
    fn the_writer_page_cache_and_checkpoint_interval_are_the_configured_ones() {
        let pragma = |name: &'static str| {
            move |db: &mut Db<'_>| db.query_one(&format!("PRAGMA {name}"), params![], |r| r.get_i64(0))
        };
        let (_dir, store) = store(StoreConfig {
            writer_cache_kib: 12_345,
            wal_autocheckpoint_pages: 2_345,
            ..StoreConfig::default()
        });
        assert_eq!(store.write(pragma("cache_size")).unwrap(), -12_345);
        // SQLite's own automatic checkpoint is replaced by the WAL hook
        // (the two tests below).
        assert_eq!(store.write(pragma("wal_autocheckpoint")).unwrap(), 0);
        // Readers keep SQLite's defaults: they do not hold the writer's cache.
        assert_ne!(store.read(pragma("cache_size")).unwrap(), -12_345);
    }

    fn page_size(store: &Store) -> i64 {
        read_i64(store, "PRAGMA page_size")
    }

    #[test]
    fn a_new_database_gets_16_kib_pages_and_an_existing_one_keeps_its_own() {
        let (_dir, store) = store(StoreConfig::default());
        assert_eq!(page_size(&store), NEW_DATABASE_PAGE_SIZE);
        drop(store);
        // A database created with SQLite's default pages, in WAL mode as
        // the store leaves it, with rows in it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;
                 CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);",
            )
            .unwrap();
            for i in 0..200 {
                conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("{i:0600}")])
                    .unwrap();
            }
        }
        let store = Store::open(&path, StoreConfig::default()).unwrap();
        assert_eq!(page_size(&store), 4096);
        store
            .write(|db| db.execute("INSERT INTO t (v) VALUES ('after')", params![]))
            .unwrap();
        let rows: Vec<String> = store
            .read(|db| db.query_map("SELECT v FROM t ORDER BY k", params![], |r| r.get_text(0)))
            .unwrap();
        let want: Vec<String> = (0..200)
            .map(|i| format!("{i:0600}"))
            .chain(["after".to_string()])
            .collect();
        assert_eq!(rows, want);
        drop(store);
        let store = Store::open(&path, StoreConfig::default()).unwrap();
        assert_eq!(page_size(&store), 4096, "still after a restart");
    }

    /// The database file's length (not the WAL's): it grows when a
    /// checkpoint copies pages back into it.
    fn database_file_len(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("db.sqlite")).unwrap().len()
    }

    /// Commits 64 writes of 4 KiB each: the WAL grows by at least a page
    /// per commit.
    fn write_pages(store: &Store) {
        for i in 0..64 {
            store
                .write(move |db| db.execute("INSERT INTO t (v) VALUES (?1)", params![&format!("{i:04096}")]))
                .unwrap();
        }
    }

    #[test]
    fn past_wal_max_pages_the_writer_checkpoints_itself_and_below_it_nothing_does() {
        let never = u32::MAX;
        let (dir, unbounded) = store(StoreConfig {
            wal_autocheckpoint_pages: never,
            wal_max_pages: never,
            ..StoreConfig::default()
        });
        let before = database_file_len(&dir);
        write_pages(&unbounded);
        assert_eq!(
            database_file_len(&dir),
            before,
            "no checkpoint: everything is in the WAL"
        );
        drop(unbounded);
        let (dir, store) = store(StoreConfig {
            wal_autocheckpoint_pages: never,
            wal_max_pages: 16,
            ..StoreConfig::default()
        });
        let before = database_file_len(&dir);
        write_pages(&store);
        // The checkpoint ran inside a commit, before that write returned.
        assert!(database_file_len(&dir) > before + 16 * 4096);
        assert_eq!(count(&store), 64);
    }

    #[test]
    fn past_wal_autocheckpoint_pages_the_checkpointer_thread_copies_the_wal() {
        let (dir, store) = store(StoreConfig {
            wal_autocheckpoint_pages: 16,
            wal_max_pages: u32::MAX,
            ..StoreConfig::default()
        });
        let before = database_file_len(&dir);
        write_pages(&store);
        // The writer never checkpoints here (`wal_max_pages`): only the
        // checkpointer thread can grow the database file. It runs on its
        // own, so wait for it (bounded; it takes milliseconds).
        let waited = std::time::Instant::now();
        while database_file_len(&dir) <= before + 16 * 4096 {
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "the checkpointer never copied the WAL"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(count(&store), 64);
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
                            .write(move |db| {
                                db.execute("INSERT INTO t (v) VALUES (?1)", params![&format!("{t}-{i}")])
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
            .write(|db| db.query_one("PRAGMA page_count", params![], |r| r.get_i64(0)))
            .unwrap();
        // SQLite's own size limit gives the same SQLITE_FULL as a full disk.
        store
            .write(move |db| {
                let conn = db.as_sqlite().expect("an SQLite store");
                conn.query_row(&format!("PRAGMA max_page_count = {}", pages + 4), [], |_| Ok(()))?;
                Ok(())
            })
            .unwrap();
        store
            .write(|db| db.execute("INSERT INTO t (v) VALUES ('small')", params![]))
            .unwrap();
        let full =
            store.write(|db| db.execute("INSERT INTO t (v) VALUES (?1)", params![&"x".repeat(1 << 20)]));
        let error = full.expect_err("a megabyte does not fit in four pages");
        assert!(error.is_disk_full(), "{error}");
        assert_eq!(count(&store), 1, "the full write left nothing behind");
        store
            .write(|db| db.execute("INSERT INTO t (v) VALUES ('fits')", params![]))
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
        let failed = store.write(|db| db.execute("INSERT INTO t (v) VALUES ('lost')", params![]));
        assert!(matches!(failed, Err(StoreError::CommitFailed(_))), "{failed:?}");
        assert_eq!(count(&store), 0);
        faults.fail_all_commits(true);
        for _ in 0..3 {
            let failed = store.write(|db| db.execute("INSERT INTO t (v) VALUES ('lost')", params![]));
            assert!(failed.as_ref().is_err_and(StoreError::is_disk_full), "{failed:?}");
        }
        assert_eq!(faults.commits_failed(), 4);
        faults.clear();
        store
            .write(|db| db.execute("INSERT INTO t (v) VALUES ('kept')", params![]))
            .unwrap();
        assert_eq!(count(&store), 1);
    }

    /// A fresh PostgreSQL store when a test server is configured; `None`
    /// (after saying so) when not, or a failure on CI.
    fn postgres_store(config: StoreConfig) -> Option<(Database, Store)> {
        let admin = crate::testing::test_database_url_or_skip("store on PostgreSQL")?;
        let url = crate::testing::create_test_database(&admin, "store").unwrap();
        let database = Database::Postgres(url);
        let store = Store::open_database(&database, config).unwrap();
        store
            .write(|db| db.execute_batch("CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT NOT NULL UNIQUE)"))
            .unwrap();
        Some((database, store))
    }

    #[test]
    fn on_postgres_writes_commit_roll_back_alone_and_survive_a_reopen() {
        let Some((database, store)) = postgres_store(StoreConfig::default()) else {
            return;
        };
        assert_eq!(
            store.read(crate::schema_version).unwrap() as usize,
            crate::POSTGRES_MIGRATIONS.len()
        );
        let store = Arc::new(store);
        // Concurrent writers, grouped; one in each thread fails on a
        // PostgreSQL error (a duplicate) and rolls back alone.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..25_i64 {
                        let key = t * 100 + i;
                        store
                            .write(move |db| {
                                db.execute(
                                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                                    params![key, &format!("{key}")],
                                )
                            })
                            .unwrap();
                    }
                    let duplicate = store.write(move |db| {
                        db.execute(
                            "INSERT INTO t (k, v) VALUES (?1, ?2)",
                            params![t * 100 + 1000, &format!("new {t}")],
                        )?;
                        // This thread's first key, already there.
                        db.execute(
                            "INSERT INTO t (k, v) VALUES (?1, ?2)",
                            params![t * 100, &format!("dup {t}")],
                        )
                    });
                    assert!(matches!(duplicate, Err(StoreError::Postgres(_))), "{duplicate:?}");
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let count = |store: &Store| {
            store
                .read(|db| db.query_one("SELECT count(*) FROM t", params![], |r| r.get_i64(0)))
                .unwrap()
        };
        assert_eq!(count(&store), 100, "the failed writes left nothing");
        // A write that swallows a PostgreSQL error leaves the transaction
        // aborted: the whole batch fails rather than commit half of it.
        let swallowed = store.write(|db| {
            db.execute("INSERT INTO t (k, v) VALUES (9999, 'x')", params![])?;
            let _ = db.execute("INSERT INTO t (k, v) VALUES (0, 'again')", params![]);
            Ok(())
        });
        // (Its caller gets the error that closing its savepoint met; the
        // other writes of the batch get `CommitFailed`.)
        assert!(swallowed.is_err(), "{swallowed:?}");
        assert_eq!(count(&store), 100);
        drop(store);
        let reopened = Store::open_database(&database, StoreConfig::default()).unwrap();
        assert_eq!(
            count(&reopened),
            100,
            "everything acknowledged is there after a reopen"
        );
        let panicked = reopened.write(|db| -> Result<(), StoreError> {
            db.execute("INSERT INTO t (k, v) VALUES (5000, 'half')", params![])?;
            panic!("bug in a write")
        });
        assert!(matches!(panicked, Err(StoreError::WritePanicked)));
        assert_eq!(count(&reopened), 100);
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn on_postgres_an_injected_commit_failure_writes_nothing() {
        let faults = crate::Faults::new();
        let Some((_, store)) = postgres_store(StoreConfig {
            faults: Some(faults.clone()),
            ..StoreConfig::default()
        }) else {
            return;
        };
        faults.fail_next_commits(1);
        let failed = store.write(|db| db.execute("INSERT INTO t (k, v) VALUES (1, 'lost')", params![]));
        assert!(matches!(failed, Err(StoreError::CommitFailed(_))), "{failed:?}");
        store
            .write(|db| db.execute("INSERT INTO t (k, v) VALUES (2, 'kept')", params![]))
            .unwrap();
        let keys = store
            .read(|db| db.query_map("SELECT k FROM t", params![], |r| r.get_i64(0)))
            .unwrap();
        assert_eq!(keys, [2]);
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
