//! The shared state behind every handler, and opening it from a data
//! directory (admin token, log key, store, driver).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deconflict_audit::{NoteSigner, NoteVerifier};
use deconflict_engine::{Engine, PartyId};
use deconflict_store::{Store, StoreError};
use rand::RngCore;

use crate::auth::{new_token, token_hash, Directory};
use crate::config::ServerConfig;
use crate::driver::{self, DriverHandle, DriverSetup, StartError};
use crate::hub::Hub;
use crate::ledger;
use crate::limits::RateLimiter;
use crate::model::{PartyInfo, PartyKind};

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: ServerConfig,
    pub directory: Directory,
    pub rate: RateLimiter,
    pub driver: DriverHandle,
    pub store: Arc<Store>,
    pub hub: Arc<Hub>,
    /// An empty engine with the service's configuration: validates
    /// submissions in the handlers, in parallel, away from the driver.
    pub validator: Engine,
    pub verifier: NoteVerifier,
    /// The hotline's performer side: action queue, CoT hook, webhook client.
    pub hotline: Arc<crate::hotline::HotlineRuntime>,
    /// Live tracks: the track thread's queue, the TAK CA and listeners.
    pub live: crate::live::LiveHandle,
}

impl AppState {
    /// A reference that does not keep the service alive (background tasks).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    // Transparent: "{0}" with a source would print the message twice.
    #[error(transparent)]
    Driver(#[from] StartError),
    #[error("{0}")]
    Live(#[from] crate::live::LiveError),
    #[error(transparent)]
    PollInterval(#[from] crate::multinode::PollIntervalOutOfRange),
}

/// What opening a data directory made on first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub admin_token_path: PathBuf,
    /// Whether the admin token was created now (first start).
    pub created_admin_token: bool,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a new secret file readable by the owner only (0600 from the
/// start: never briefly world-readable).
fn write_secret(path: &Path, contents: &str) -> Result<(), OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(contents.as_bytes()).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

fn read_or_create_secret(path: &Path, make: impl FnOnce() -> String) -> Result<(String, bool), OpenError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text.trim().to_owned(), false)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = make();
            write_secret(path, &format!("{secret}\n"))?;
            Ok((secret, true))
        }
        Err(source) => Err(OpenError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl AppState {
    /// Opens (creating on first start) the data directory and starts the
    /// driver on it.
    pub fn open(config: ServerConfig) -> Result<(AppState, Opened), OpenError> {
        crate::multinode::check_poll_interval(config.poll_interval_ms)?;
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let admin_token_path = dir.join("admin.token");
        let (admin_token, created_admin_token) = read_or_create_secret(&admin_token_path, new_token)?;
        let key_path = dir.join("log.key");
        let log_name = config.log_name.clone();
        let (log_key, _) = read_or_create_secret(&key_path, || {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            NoteSigner::from_seed(&log_name, &seed)
                .map(|s| s.to_key_string())
                .unwrap_or_default()
        })?;
        let signer = NoteSigner::parse(&log_key).map_err(|e| OpenError::BadFile {
            path: key_path.clone(),
            reason: format!("not a log signing key ({e}); is --log-name a valid key name?"),
        })?;
        let verifier = signer.verifier();

        let store = Arc::new(Store::open_database(&config.database, config.store.clone())?);
        let directory = Directory::new(token_hash(&admin_token));
        let parties = store.read(ledger::parties)?;
        let revoked: Vec<(PartyId, i64)> = parties
            .iter()
            .filter_map(|p| p.revoked_at_ms.map(|at| (p.id, at)))
            .collect();
        for party in parties {
            directory.add(
                party.token_hash,
                PartyInfo {
                    id: party.id,
                    name: party.name,
                    kind: PartyKind::parse(&party.kind).unwrap_or(PartyKind::Civil),
                },
            );
        }
        let hub = Arc::new(
            Hub::new(config.limits.max_subscribers, config.limits.subscriber_queue)
                .with_max_per_party(config.limits.max_subscribers_per_party),
        );
        let (hotline_sink, hotline) = crate::hotline::channel(&config.hotline, config.hotline_action_queue);
        let driver = driver::start(DriverSetup {
            store: Arc::clone(&store),
            hub: Arc::clone(&hub),
            engine: config.engine.clone(),
            log_key,
            max_batch: config.limits.max_batch,
            max_pending: config.limits.max_pending_commands,
            max_activities_per_party: config.limits.max_activities_per_party,
            tick_interval_ms: config.tick_interval_ms,
            hotline: config.hotline.clone(),
            hotline_sink,
            poll_interval_ms: config.poll_interval_ms,
            max_redos: config.max_redos,
        })?;
        let live = crate::live::start(
            config.live.clone(),
            &dir,
            Arc::clone(&driver.world),
            Arc::clone(&hub),
            Arc::clone(&store),
        )?;
        for (party, at_ms) in revoked {
            live.revocations().revoke(party, at_ms);
        }
        let state = AppState(Arc::new(Inner {
            rate: RateLimiter::new(config.limits.rate_per_s, config.limits.rate_burst),
            validator: Engine::new(config.engine.clone()),
            config,
            directory,
            driver,
            store,
            hub,
            verifier,
            hotline: Arc::new(hotline),
            live,
        }));
        Ok((
            state,
            Opened {
                admin_token_path,
                created_admin_token,
            },
        ))
    }
}
