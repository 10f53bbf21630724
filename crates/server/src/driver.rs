//! The driver: the one thread that owns the engine, the audit tree and the
//! checkpoint signer, and turns commands into committed batches.
//!
//! # The write path (see ARCHITECTURE.md)
//!
//! 1. Handlers parse and validate in parallel, then queue a [`Command`]
//!    (bounded: a full queue is a 503, never unbounded memory).
//! 2. The driver takes every queued command (up to `max_batch`), and for
//!    each, in order: checks it against the current state, mutates the
//!    engine, drains the engine's events, and appends a leaf per state
//!    change to the tree, collecting the rows to write. A refused command
//!    changes nothing and is answered at once.
//!    The driver only encodes and numbers the leaves (an index is a
//!    counter).
//! 3. The *sealer* ([`Sealer`], a thread of its own) takes the batches in
//!    the order they were built, hashes their leaves into the audit tree,
//!    signs one checkpoint per batch (the signer refuses a fork) and hands
//!    rows, leaves, nodes and checkpoint to the committer as one store
//!    write: one transaction, one fsync, for the whole batch. It seals one
//!    batch while the driver builds the next.
//! 4. The committer answers every command of the batch and publishes its
//!    events only after the commit. Meanwhile the driver already builds the
//!    next batch, so the engine works while the disk syncs.
//!
//! The tree's append order is the stored order by construction: the driver
//! numbers every leaf, the sealer appends them in that order (and refuses a
//! batch that does not start where its tree ends), batches commit in the
//! order they were built, and each batch's write checks that the log on
//! disk ends exactly where the batch begins. If a commit fails, that check
//! also fails every batch built on top of it; the driver then stops taking
//! commands (they answer 503), waits for the sealer and the committer to
//! drain, and rebuilds engine, tree and signer from the store, handing the
//! tree and signer to the sealer before any new batch: the state is again
//! exactly what was committed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use deconflict_audit::{
    Checkpoint, CheckpointSigner, Hash, HashReader, InclusionPaths, LeafEvent, NodeId, NoteSigner, Tree,
};
use deconflict_engine::{
    Activity, ActivityId, Engine, EngineConfig, EngineError, Event, Finding, PartyId, Resolution, TimeWindow,
    Timestamp, Zone, ZoneId,
};
use deconflict_formats::{activity_from_feature, Sharing};
use deconflict_geodesy::GeoBounds;
use deconflict_store::{Backend, Store, StoreError};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::hotline::{HotlineCommand, HotlineSink, HotlineState};
use crate::hub::{Hub, HubEvent};
use crate::ledger::{self, ActivityRow, NodeReader, Row};
use crate::model::{
    conflict_leaf_bytes, parse_sharing, ConflictRecord, ConflictState, PartyInfo, PartyKind, Subject, Viewer,
};
use crate::problem::ApiError;
use crate::zones::zone_from_feature;

// The hotline's part of the driver (issue 5): shares the batch.
#[path = "hotline/driving.rs"]
mod hotline_driving;

/// A hasher for the driver's tables keyed by ids (activities, conflicts,
/// zones, parties, and `Subject`s made of them): FxHash's step as
/// rustc-hash 2 has it (add the word, multiply by an odd constant; the
/// result rotated so that hashbrown's bucket bits come from the product's
/// well-mixed middle), a few instructions per id instead of SipHash's
/// rounds. SipHash's keyed randomness is there against keys an attacker
/// chooses to collide; these keys are not chosen by anyone outside: every
/// id is allocated by this service, one after another, before it is ever
/// a key (a client names an id only to look it up, never to insert it).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(Self::K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// A map keyed by service-allocated ids (see [`IdHasher`]).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A set of service-allocated ids (see [`IdHasher`]).
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// What the engine holds about an activity beyond the engine's own view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityMeta {
    pub party: PartyId,
    pub version: u64,
    pub sharing: Sharing,
}

/// The state shared with readers that need the engine (checks): the
/// driver write-locks it for one command at a time.
#[derive(Debug)]
pub struct World {
    pub engine: Engine,
    /// Live activities (held by the engine).
    pub activities: IdMap<ActivityId, ActivityMeta>,
    pub zones: BTreeMap<ZoneId, Zone>,
}

impl World {
    fn full(&self, id: ActivityId) -> bool {
        self.activities
            .get(&id)
            .is_some_and(|m| m.sharing == Sharing::Full)
    }

    /// Whether each side of a conflict is shared in full.
    pub fn sides_full(&self, subject: &Subject) -> [bool; 2] {
        match subject {
            Subject::Pair([a, b]) => [self.full(*a), self.full(*b)],
            Subject::Zone { activity, .. } => [self.full(*activity), true],
        }
    }

    /// What `activity` of `party` would conflict with now, as unsaved
    /// conflict records (id 0): activities first, then zones.
    pub fn check(&self, now: Timestamp, activity: &Activity) -> Vec<(ConflictRecord, [bool; 2])> {
        let probe = ActivityId(0);
        let mut out = Vec::new();
        for (other, finding) in self.engine.check(now, activity, None) {
            let Some(meta) = self.activities.get(&other) else {
                continue;
            };
            let record = unsaved(
                Subject::Pair([probe, other]),
                [activity.party, meta.party],
                finding,
                now.unix_ms(),
            );
            out.push((record, [false, meta.sharing == Sharing::Full]));
        }
        for (&zone_id, zone) in &self.zones {
            if let Some(finding) = zone.evaluate(activity) {
                let record = unsaved(
                    Subject::Zone {
                        activity: probe,
                        zone: zone_id,
                    },
                    [activity.party, zone.owner],
                    finding,
                    now.unix_ms(),
                );
                out.push((record, [false, true]));
            }
        }
        out
    }
}

fn unsaved(subject: Subject, parties: [PartyId; 2], finding: Finding, now_ms: i64) -> ConflictRecord {
    ConflictRecord {
        id: 0,
        subject,
        parties,
        finding,
        state: ConflictState::Open,
        acked_ms: [None, None],
        opened_at_ms: now_ms,
        updated_at_ms: now_ms,
        resolved_at_ms: None,
        resolution: None,
    }
}

/// The signed tree head a batch committed under.
#[derive(Debug, Clone)]
pub struct SignedHead {
    pub note: String,
    pub checkpoint: Checkpoint,
    /// Every node an inclusion proof of one of the batch's own entries
    /// under this head needs, so that a receipt is built from memory
    /// rather than by a store read per answer (see [`BatchNodes`]).
    pub batch_nodes: BatchNodes,
    /// What every inclusion proof under this head shares (the folds of
    /// the frontier's tails), made once by the sealer rather than per
    /// receipt by the workers; with `batch_nodes` a receipt is then a few
    /// lookups and no hashing.
    pub paths: InclusionPaths,
}

/// The nodes a batch appended plus the frontier of the tree it started
/// from.
///
/// That is enough for the inclusion proof of any entry of the batch under
/// the batch's head: a sibling on the path either holds some of the batch's
/// leaves (then the batch completed it) or ends at or before the batch's
/// first entry, and such a perfect subtree just left of a path through the
/// batch is one of the starting frontier's. An id outside both is absent,
/// and the caller falls back to the store.
///
/// The nodes a batch completes at one level have consecutive indices (each
/// is completed by the batch's leaf at its right end, and those leaves are
/// consecutive), so each level is one run looked up by subtraction: a
/// receipt's ~20 lookups cost no search through the batch's thousands of
/// nodes. The frontier (one node per set bit of the starting size) and any
/// node out of its level's run are kept sorted apart.
#[derive(Debug, Clone, Default)]
pub struct BatchNodes {
    /// `levels[l]`: the first index and the hashes of the run of level `l`.
    levels: Vec<(u64, Vec<Hash>)>,
    /// The starting frontier and stray nodes, sorted by id.
    others: Vec<(NodeId, Hash)>,
}

impl BatchNodes {
    fn new(start_frontier: &Tree, rows: &[Row]) -> Self {
        let mut others: Vec<(NodeId, Hash)> = Tree::frontier_ids(start_frontier.size())
            .into_iter()
            .zip(start_frontier.frontier().iter().copied())
            .collect();
        let mut levels: Vec<(u64, Vec<Hash>)> = Vec::new();
        for row in rows {
            let Row::Node { id, hash } = row else { continue };
            let level = usize::from(id.level);
            if levels.len() <= level {
                levels.resize_with(level + 1, || (id.index, Vec::new()));
            }
            let (first, run) = &mut levels[level];
            if run.is_empty() {
                *first = id.index;
            }
            if *first + run.len() as u64 == id.index {
                run.push(*hash);
            } else {
                others.push((*id, *hash));
            }
        }
        others.sort_unstable_by_key(|(id, _)| *id);
        others.dedup_by_key(|(id, _)| *id);
        BatchNodes { levels, others }
    }

    /// The hash of node `id`, if the batch holds it.
    fn get(&self, id: NodeId) -> Option<Hash> {
        if let Some((first, run)) = self.levels.get(usize::from(id.level)) {
            if let Some(at) = id.index.checked_sub(*first) {
                if let Some(hash) = usize::try_from(at).ok().and_then(|at| run.get(at)) {
                    return Some(*hash);
                }
            }
        }
        self.others
            .binary_search_by_key(&id, |(node, _)| *node)
            .ok()
            .map(|at| self.others[at].1)
    }
}

/// A [`BatchNodes`] lookup never fails; a missing id is `None`.
#[derive(Debug, thiserror::Error)]
#[error("unreachable")]
pub enum NoError {}

impl HashReader for BatchNodes {
    type Error = NoError;

    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error> {
        Ok(ids.iter().map(|id| self.get(*id)).collect())
    }
}

/// A command's answer once its batch has committed.
#[derive(Debug)]
pub struct Committed<T> {
    pub value: T,
    /// The entry that records the change (its receipt's index).
    pub log_index: u64,
    pub head: Arc<SignedHead>,
}

/// Where a command's answer goes. A command is kept (cloned) until its
/// batch commits, because the batch may lose the race to another node on
/// the same database and then be redone (see `crate::multinode`); every
/// clone shares one slot, so the command is answered once, by whichever
/// copy answers first, and a redo skips a command already answered.
pub struct Reply<T>(Arc<std::sync::Mutex<Option<ReplySender<T>>>>);

type ReplySender<T> = oneshot::Sender<Result<Committed<T>, ApiError>>;

/// A command's reply slot and the handler's end.
pub fn reply_channel<T>() -> (Reply<T>, oneshot::Receiver<Result<Committed<T>, ApiError>>) {
    let (sender, receiver) = oneshot::channel();
    (Reply(Arc::new(std::sync::Mutex::new(Some(sender)))), receiver)
}

impl<T> Reply<T> {
    /// Answers, unless a copy answered already (then gives `answer` back).
    pub fn send(self, answer: Result<Committed<T>, ApiError>) -> Result<(), Result<Committed<T>, ApiError>> {
        let sender = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match sender {
            Some(sender) => sender.send(answer),
            None => Err(answer),
        }
    }

    /// Whether the command was answered (refused, or its batch committed).
    pub fn answered(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
    }
}

impl<T> Clone for Reply<T> {
    fn clone(&self) -> Self {
        Reply(Arc::clone(&self.0))
    }
}

impl<T> std::fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("answered", &self.answered())
            .finish()
    }
}

/// An activity change's outcome: the activity's id and version, and its
/// conflicts after the change.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    pub id: u64,
    pub version: u64,
    pub conflicts: Vec<(ConflictRecord, [bool; 2])>,
}

/// A validated activity with what is stored alongside, encoded by the
/// handler so that the driver only copies bytes.
#[derive(Debug, Clone)]
pub struct Submission {
    pub activity: Activity,
    /// The Feature as its row stores it (JSON text, without `id`: readers
    /// add it from the row's id column).
    pub feature_text: String,
    /// The same Feature in RFC 8785 canonical form, as its log leaf embeds
    /// it (see [`activity_leaf_bytes`]).
    pub feature_canonical: Vec<u8>,
    pub sharing: Sharing,
    pub bounds: GeoBounds,
}

/// A version of an activity the engine has taken (notified or updated),
/// with what its row and its leaf keep of the [`Submission`].
struct TakenVersion {
    /// `activity.notified` or `activity.updated`.
    kind: &'static str,
    id: ActivityId,
    party: PartyId,
    version: u64,
    window: TimeWindow,
    feature_text: String,
    feature_canonical: Vec<u8>,
    sharing: Sharing,
    bounds: GeoBounds,
}

/// The exact bytes `LeafEvent { kind, at_ms, payload: {"activity": id,
/// "feature": <feature>, "party": party, "version": version} }.encode()`
/// gives, assembled from the Feature's canonical form instead of
/// re-encoding (and cloning) the Feature on the driver's thread: RFC 8785
/// sorts members and writes each value canonically on its own, so an
/// object's canonical form is its sorted members' canonical forms joined.
/// `kind` is one of the service's own ASCII names (no escaping needed).
pub fn activity_leaf_bytes(
    kind: &str,
    at_ms: i64,
    id: u64,
    party: u64,
    version: u64,
    feature_canonical: &[u8],
) -> Result<Vec<u8>, deconflict_audit::Error> {
    // The service's kinds are plain ASCII names; anything else is refused
    // here rather than escaped (the integers' limits are `Jcs`'s, those of
    // LeafEvent::encode and canonical_json).
    if !kind
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(deconflict_audit::Error::Encoding(format!("event kind {kind:?}")));
    }
    let mut jcs = crate::jcs::Jcs::leaf(kind, at_ms, feature_canonical.len() + 128)?;
    jcs.raw(b"{\"activity\":");
    jcs.uint(id)?;
    jcs.raw(b",\"feature\":");
    jcs.raw(feature_canonical);
    jcs.raw(b",\"party\":");
    jcs.uint(party)?;
    jcs.raw(b",\"version\":");
    jcs.uint(version)?;
    jcs.raw(b"}");
    Ok(jcs.end_leaf())
}

#[derive(Debug, Clone)]
pub enum Command {
    CreateParty {
        name: String,
        kind: PartyKind,
        token_hash: [u8; 32],
        reply: Reply<PartyInfo>,
    },
    Notify {
        viewer: Viewer,
        submission: Box<Submission>,
        reply: Reply<ChangeOutcome>,
    },
    Update {
        viewer: Viewer,
        id: u64,
        if_match: u64,
        submission: Box<Submission>,
        reply: Reply<ChangeOutcome>,
    },
    Cancel {
        viewer: Viewer,
        id: u64,
        reply: Reply<ChangeOutcome>,
    },
    Ack {
        viewer: Viewer,
        conflict: u64,
        reply: Reply<(ConflictRecord, [bool; 2])>,
    },
    Resolve {
        viewer: Viewer,
        conflict: u64,
        reply: Reply<(ConflictRecord, [bool; 2])>,
    },
    CreateZone {
        viewer: Viewer,
        zone: Box<Zone>,
        feature: Value,
        reply: Reply<ChangeOutcome>,
    },
    /// Finish what is queued before it, wait for the commits, then stop.
    Stop { done: mpsc::Sender<()> },
    /// Messages, incidents, escalation contacts and outcomes (issue 5).
    Hotline(HotlineCommand),
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("audit log: {0}")]
    Audit(#[from] deconflict_audit::Error),
    #[error("stored activity {id} no longer validates: {reason}")]
    Activity { id: u64, reason: String },
    #[error("stored zone {id} no longer validates: {reason}")]
    Zone { id: u64, reason: String },
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("hotline: {0}")]
    Hotline(#[from] deconflict_hotline::RestoreError),
    #[error(
        "the stored audit log does not match its latest signed checkpoint ({0}); \
         refusing to start: restore the data directory from a backup"
    )]
    LogTampered(ledger::LogDefect),
}

/// How handlers reach the driver.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    commands: SyncSender<Command>,
    pub world: Arc<RwLock<World>>,
    /// Set while the driver rebuilds its state after a failed commit.
    pub reconciling: Arc<AtomicBool>,
    pub queue_limit: usize,
}

impl DriverHandle {
    /// Queues a command; refuses at once when the driver is behind or
    /// rebuilding.
    pub fn submit(&self, command: Command) -> Result<(), ApiError> {
        if self.reconciling.load(Ordering::Acquire) {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "storage-failed",
                "the last write could not be committed to disk and the service is rebuilding its \
                 state from the database: nothing was changed; reads still work; try again",
            )
            .with_retry_after(1));
        }
        self.commands.try_send(command).map_err(|error| match error {
            TrySendError::Full(_) => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "{} commands are already waiting (--max-pending-commands); try again shortly",
                    self.queue_limit
                ),
            )
            .with_retry_after(1),
            TrySendError::Disconnected(_) => ApiError::unavailable(&"the driver has stopped"),
        })
    }

    /// Asks the driver to finish what is queued and stop; returns once every
    /// accepted command is committed and answered.
    pub fn stop(&self) {
        let (done, wait) = mpsc::channel();
        if self.commands.send(Command::Stop { done }).is_ok() {
            let _ = wait.recv();
        }
    }

    pub fn world(&self) -> RwLockReadGuard<'_, World> {
        // A panic while holding the lock would be a bug; keep serving reads
        // from the state as it was rather than failing every request.
        self.world
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The state only the driver touches.
struct Ledger {
    /// The log's size once every leaf numbered so far is appended: the
    /// next leaf's index. The tree itself is the sealer's (see [`Sealer`]).
    size: u64,
    next_party: u64,
    next_activity: u64,
    next_zone: u64,
    next_conflict: u64,
    parties: IdMap<PartyId, PartyKind>,
    party_names: HashSet<String>,
    live_per_party: IdMap<PartyId, usize>,
    /// Open or acknowledged conflicts by subject, and subject by id. A
    /// record is boxed: the table holds hundreds of thousands, and growing
    /// it moves every entry (~230 bytes each unboxed; that move and the
    /// fresh pages it needs were ~12 % of the driver's time among 100k).
    live: IdMap<Subject, Box<ConflictRecord>>,
    by_id: IdMap<u64, Subject>,
    /// Subjects the engine (or a zone) still finds in conflict but that a
    /// party resolved by hand: they reopen only if they change.
    suppressed: IdSet<Subject>,
    /// The hotline machine and its id counters.
    hotline: HotlineState,
}

/// A completion runs once the batch commits (`Ok`) or fails.
type Completion = Box<dyn FnOnce(Result<Arc<SignedHead>, ApiError>) + Send>;

/// What one batch writes and announces.
struct Batch {
    first_index: u64,
    now_ms: i64,
    rows: Vec<Row>,
    /// The batch's leaves, numbered from `first_index` in this order: the
    /// sealer hashes them into the tree (and their rows into `rows`).
    leaves: Vec<PendingLeaf>,
    completions: Vec<Completion>,
    events: Vec<HubEvent>,
    /// Each hotline message as last written in this batch, so that a
    /// second write in the same millisecond is named by its own change
    /// (see `hotline::leaf_of`).
    messages_written: HashMap<deconflict_hotline::MessageId, deconflict_hotline::Message>,
}

/// An internal failure mid-batch: the batch is abandoned and the state
/// rebuilt from the store.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Fatal(String);

impl From<deconflict_audit::Error> for Fatal {
    fn from(error: deconflict_audit::Error) -> Self {
        Fatal(format!("audit log: {error}"))
    }
}

enum Job {
    Commit {
        first_index: u64,
        end_size: u64,
        rows: Vec<Row>,
        completions: Vec<Completion>,
        events: Vec<HubEvent>,
        /// `None`: the sealer could not seal it (an earlier batch failed to
        /// seal, and `poisoned` is set): it fails like a batch built on one
        /// that failed to commit.
        head: Option<Arc<SignedHead>>,
    },
    Barrier(mpsc::Sender<()>),
}

/// A leaf the driver numbered, for the sealer to encode and hash: the
/// leaves written several times per notification come as the values they
/// are written from (the sealer writes their RFC 8785 bytes, off the
/// driver's thread), the rarer ones already encoded.
#[derive(Debug)]
enum PendingLeaf {
    /// Encoded bytes and who may read them in full (0: everyone).
    Bytes { bytes: Vec<u8>, readers: Vec<u64> },
    /// An activity's new version: [`activity_leaf_bytes`] of the Feature's
    /// canonical form, read by its party or, shared in full, by everyone.
    Activity {
        kind: &'static str,
        id: ActivityId,
        party: PartyId,
        version: u64,
        sharing: Sharing,
        feature_canonical: Vec<u8>,
    },
    /// A conflict change ([`conflict_leaf_bytes`]), read by its parties.
    Conflict {
        kind: &'static str,
        record: ConflictRecord,
    },
    /// A conflict's acknowledgement record of the hotline, read by its
    /// parties (`hotline_driving::conflict_ack_leaf_bytes`).
    ConflictAck(deconflict_hotline::ConflictAck),
}

impl PendingLeaf {
    /// The leaf's bytes (its event at `at_ms`, the batch's time) and
    /// readers.
    fn encode(self, at_ms: i64) -> Result<(Vec<u8>, Vec<u64>), deconflict_audit::Error> {
        Ok(match self {
            PendingLeaf::Bytes { bytes, readers } => (bytes, readers),
            PendingLeaf::Activity {
                kind,
                id,
                party,
                version,
                sharing,
                feature_canonical,
            } => (
                activity_leaf_bytes(kind, at_ms, id.0, party.0, version, &feature_canonical)?,
                activity_readers(party, sharing),
            ),
            PendingLeaf::Conflict { kind, record } => (
                conflict_leaf_bytes(kind, at_ms, &record)?,
                vec![record.parties[0].0, record.parties[1].0],
            ),
            PendingLeaf::ConflictAck(ack) => (
                hotline_driving::conflict_ack_leaf_bytes(&ack, at_ms)?,
                ack.parties.iter().map(|p| p.party.0).collect(),
            ),
        })
    }
}

/// Who may read an activity's leaves in full: its party, or everyone (0)
/// when it is shared in full.
fn activity_readers(party: PartyId, sharing: Sharing) -> Vec<u64> {
    match sharing {
        Sharing::Full => vec![0],
        Sharing::NeedToKnow => vec![party.0],
    }
}

/// A batch the driver built, for the sealer to seal and hand on.
struct Sealing {
    first_index: u64,
    now_ms: i64,
    rows: Vec<Row>,
    leaves: Vec<PendingLeaf>,
    completions: Vec<Completion>,
    events: Vec<HubEvent>,
}

/// The audit log's appending state: the tree and the signer that has
/// signed its heads. `restore` rebuilds it from the store; the sealer
/// holds it.
struct SealState {
    tree: Tree,
    signer: CheckpointSigner,
}

enum SealJob {
    Seal(Box<Sealing>),
    /// The driver rebuilt its state from the store: the tree and signer
    /// start over from there (sent after a flush, before any new batch).
    Reset(Box<SealState>),
    /// Passed on to the committer (see [`Driver::flush`]).
    Barrier(mpsc::Sender<()>),
}

/// The sealer: the stage between the driver and the committer that owns
/// the audit tree and the checkpoint signer. For each batch, in the order
/// the driver built them, it hashes the leaves into the tree (their leaf
/// and node rows), signs one head, and gathers the nodes the batch's
/// receipts need ([`BatchNodes`]); so the driver only numbers leaves, and
/// the sealing of one batch overlaps the engine's work on the next.
struct Sealer {
    state: SealState,
    /// Nodes appended but maybe not yet committed: the signer's proofs
    /// read them from here, the rest from the store.
    overlay: BTreeMap<NodeId, Hash>,
    store: Arc<Store>,
    committed_size: Arc<AtomicU64>,
    /// Set by a batch that could not be sealed: later batches are not
    /// sealed either (they fail) until the driver's rebuild resets it.
    broken: bool,
}

impl Sealer {
    fn new(state: SealState, store: Arc<Store>, committed_size: Arc<AtomicU64>) -> Self {
        Sealer {
            state,
            overlay: BTreeMap::new(),
            store,
            committed_size,
            broken: false,
        }
    }

    fn reset(&mut self, state: SealState) {
        self.state = state;
        self.overlay.clear();
        self.broken = false;
    }

    /// Appends the batch's leaves to the tree (their rows and nodes to
    /// `rows`, after the batch's other rows), signs the new head (its row
    /// last) and returns it with the batch's end size.
    fn seal(&mut self, sealing: &mut Sealing) -> Result<(u64, Arc<SignedHead>), String> {
        if self.broken {
            return Err("an earlier batch could not be sealed".into());
        }
        let tree = &mut self.state.tree;
        if sealing.first_index != tree.size() {
            return Err(format!(
                "the batch starts at entry {} but the tree holds {}",
                sealing.first_index,
                tree.size()
            ));
        }
        let start_tree = tree.clone();
        let rows = &mut sealing.rows;
        rows.reserve(sealing.leaves.len() * 3 + 1);
        for leaf in sealing.leaves.drain(..) {
            let (bytes, readers) = leaf
                .encode(sealing.now_ms)
                .map_err(|e| format!("audit log: {e}"))?;
            let appended = tree.append(&bytes).map_err(|e| format!("audit log: {e}"))?;
            rows.push(Row::Leaf {
                index: appended.index,
                bytes,
                hash: appended.leaf_hash,
                readers,
            });
            for (id, hash) in appended.nodes {
                self.overlay.insert(id, hash);
                rows.push(Row::Node { id, hash });
            }
        }
        // Nodes the committer has confirmed are on disk leave the overlay.
        let committed = self.committed_size.load(Ordering::Acquire);
        self.overlay
            .retain(|id, _| ((id.index + 1) << id.level) > committed);
        // The consistency proof from the last signed head (as a rule this
        // batch's start) takes the starting frontier and the batch's own
        // nodes: read from memory, not by a store read per batch.
        let batch_nodes = BatchNodes::new(&start_tree, rows);
        let reader = BatchNodesFirst {
            batch: &batch_nodes,
            rest: OverlayReader {
                overlay: &self.overlay,
                store: &self.store,
            },
        };
        let signer = &mut self.state.signer;
        let note = signer
            .sign_tree(&reader, tree)
            .map_err(|error| format!("the signer refused the new tree head: {error}"))?;
        let end_size = tree.size();
        rows.push(Row::Checkpoint {
            size: end_size,
            note: note.clone(),
            at_ms: sealing.now_ms,
        });
        let head = Arc::new(SignedHead {
            note,
            checkpoint: signer
                .last_signed()
                .cloned()
                .unwrap_or_else(|| Checkpoint::of_tree(signer.verifier().name(), tree)),
            batch_nodes,
            paths: InclusionPaths::of_tree(tree),
        });
        Ok((end_size, head))
    }

    fn run(
        mut self,
        inbox: Receiver<SealJob>,
        jobs: SyncSender<Job>,
        poisoned: Arc<AtomicBool>,
        spare_leaves: SyncSender<Vec<PendingLeaf>>,
    ) {
        while let Ok(job) = inbox.recv() {
            let job = match job {
                SealJob::Reset(state) => {
                    self.reset(*state);
                    continue;
                }
                SealJob::Barrier(done) => Job::Barrier(done),
                SealJob::Seal(mut sealing) => {
                    let (end_size, head) = match self.seal(&mut sealing) {
                        Ok((end_size, head)) => (end_size, Some(head)),
                        Err(reason) => {
                            if !self.broken {
                                tracing::error!(%reason, "cannot seal a batch; rebuilding from the store");
                                self.broken = true;
                                poisoned.store(true, Ordering::Release);
                                for complete in std::mem::take(&mut sealing.completions) {
                                    complete(Err(ApiError::unavailable(&reason)));
                                }
                            }
                            (sealing.first_index, None)
                        }
                    };
                    let Sealing {
                        first_index,
                        rows,
                        mut leaves,
                        completions,
                        events,
                        ..
                    } = *sealing;
                    // Emptied by a sealing; back to the driver for reuse.
                    leaves.clear();
                    let _ = spare_leaves.try_send(leaves);
                    Job::Commit {
                        first_index,
                        end_size,
                        rows,
                        completions,
                        events,
                        head,
                    }
                }
            };
            if let Err(mpsc::SendError(Job::Commit { completions, .. })) = jobs.send(job) {
                for complete in completions {
                    complete(Err(ApiError::unavailable(&"the committer has stopped")));
                }
            }
        }
    }
}

/// Reads nodes from the overlay first, then from the store.
struct OverlayReader<'a> {
    overlay: &'a BTreeMap<NodeId, Hash>,
    store: &'a Store,
}

impl HashReader for OverlayReader<'_> {
    type Error = StoreError;

    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error> {
        let mut out: Vec<Option<Hash>> = ids.iter().map(|id| self.overlay.get(id).copied()).collect();
        let missing: Vec<(usize, NodeId)> = out
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is_none())
            .map(|(i, _)| (i, ids[i]))
            .collect();
        if !missing.is_empty() {
            let wanted: Vec<NodeId> = missing.iter().map(|(_, id)| *id).collect();
            let found = self
                .store
                .read(move |conn| NodeReader::new(conn).node_hashes(&wanted))?;
            for ((i, _), hash) in missing.into_iter().zip(found) {
                out[i] = hash;
            }
        }
        Ok(out)
    }
}

/// Reads a batch's own nodes first, then the overlay and the store for
/// what they lack.
struct BatchNodesFirst<'a> {
    batch: &'a BatchNodes,
    rest: OverlayReader<'a>,
}

impl HashReader for BatchNodesFirst<'_> {
    type Error = StoreError;

    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error> {
        let Ok(mut out) = self.batch.node_hashes(ids);
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<NodeId> = missing.iter().map(|&i| ids[i]).collect();
            for (i, hash) in missing.into_iter().zip(self.rest.node_hashes(&wanted)?) {
                out[i] = hash;
            }
        }
        Ok(out)
    }
}

/// The wall clock in Unix milliseconds: the only clock the service reads.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Everything needed to start or rebuild the driver.
#[derive(Clone)]
pub struct DriverSetup {
    pub store: Arc<Store>,
    pub hub: Arc<Hub>,
    pub engine: EngineConfig,
    pub log_key: String,
    pub max_batch: usize,
    pub max_pending: usize,
    pub max_activities_per_party: usize,
    pub tick_interval_ms: u64,
    pub hotline: deconflict_hotline::HotlineConfig,
    /// Where committed hotline actions go (the performer).
    pub hotline_sink: HotlineSink,
    /// How often the driver reads the log head to pick up what other
    /// nodes on the same PostgreSQL database appended (`--poll-interval-ms`;
    /// SQLite has one node and is not polled).
    pub poll_interval_ms: u64,
    /// Catch-ups in a row, without a commit of this node's own, after
    /// which its waiting commands are refused (`--max-redos`).
    pub max_redos: u32,
}

impl std::fmt::Debug for DriverSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The log key is a secret: never printed.
        f.debug_struct("DriverSetup")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// Subjects the store says are live but the engine no longer finds: what
/// ended while the service was down.
type Stale = Vec<Subject>;

/// What [`restore`] rebuilds from the store.
struct Restored {
    world: World,
    ledger: Ledger,
    seal: SealState,
    stale: Stale,
}

fn restore(setup: &DriverSetup, now: i64) -> Result<Restored, StartError> {
    let note_signer = NoteSigner::parse(&setup.log_key)?;
    // One read transaction: another node on the same database may commit
    // meanwhile, and the rows, the leaves and the signed head must be of
    // one instant.
    let (snap, signer, rebuilt, hotline_records, head) = setup.store.read(|conn| {
        let snap = ledger::load(conn, now)?;
        let signer = match &snap.last_checkpoint {
            Some(note) => CheckpointSigner::resume(note_signer.clone(), note),
            None => Ok(CheckpointSigner::new(note_signer.clone())),
        };
        let signer = match signer {
            Ok(signer) => signer,
            Err(error) => return Ok(Err(error)),
        };
        // The stored leaves must reproduce the head signed last, or the
        // next head would be inconsistent with one already issued.
        let rebuilt = ledger::rebuild_log(conn, signer.last_signed())?;
        let hotline_records = crate::hotline::store::load_records(conn)?;
        let head = crate::multinode::log_head(conn)?;
        Ok(Ok((snap, signer, rebuilt, hotline_records, head)))
    })??;
    let validator = Engine::new(setup.engine.clone());
    let mut held = Vec::with_capacity(snap.activities.len());
    let mut metas = IdMap::with_capacity_and_hasher(snap.activities.len(), Default::default());
    let mut live_per_party: IdMap<PartyId, usize> = IdMap::default();
    for stored in &snap.activities {
        let activity = activity_from_feature(&stored.feature, stored.party, "")
            .and_then(|parsed| parsed.validate(&validator))
            .map_err(|e| StartError::Activity {
                id: stored.id.0,
                reason: e.to_string(),
            })?;
        held.push((stored.id, activity));
        metas.insert(
            stored.id,
            ActivityMeta {
                party: stored.party,
                version: stored.version,
                sharing: parse_sharing(&stored.sharing),
            },
        );
        *live_per_party.entry(stored.party).or_default() += 1;
    }
    let engine = Engine::from_activities(setup.engine.clone(), held)?;
    let mut zones = BTreeMap::new();
    for (id, owner, feature) in &snap.zones {
        let zone = zone_from_feature(feature, *owner, &validator).map_err(|e| StartError::Zone {
            id: id.0,
            reason: e.to_string(),
        })?;
        zones.insert(*id, zone);
    }
    let world = World {
        engine,
        activities: metas,
        zones,
    };

    // Refuse to start on a log that does not match its signed head.
    let tree = rebuilt.map_err(StartError::LogTampered)?;
    debug_assert_eq!(tree.size(), snap.log_size);
    if head != tree.size() {
        // Only an edit of the database parts them (each batch moves both).
        tracing::warn!(
            head,
            leaves = tree.size(),
            "the log head disagrees with the stored leaves; moving it to the leaves"
        );
        let leaves = tree.size();
        setup
            .store
            .write(move |db| crate::multinode::repair_head(db, head, leaves))?;
    }

    // What is in conflict now, by subject, to match against the store.
    let mut current: IdSet<Subject> = world
        .engine
        .conflicts()
        .map(|c| Subject::Pair(c.key.activities()))
        .collect();
    for (&zone_id, zone) in &world.zones {
        for (id, activity) in world.engine.activities() {
            if zone.evaluate(activity).is_some() {
                current.insert(Subject::Zone {
                    activity: id,
                    zone: zone_id,
                });
            }
        }
    }
    let mut live = IdMap::with_capacity_and_hasher(snap.live_conflicts.len(), Default::default());
    let mut by_id = IdMap::with_capacity_and_hasher(snap.live_conflicts.len(), Default::default());
    let mut stale = Vec::new();
    for record in snap.live_conflicts {
        if current.contains(&record.subject) {
            by_id.insert(record.id, record.subject);
        } else {
            stale.push(record.subject);
        }
        live.insert(record.subject, Box::new(record));
    }
    let suppressed = current.into_iter().filter(|s| !live.contains_key(s)).collect();
    let hotline = HotlineState::restore(
        setup.hotline.clone(),
        hotline_records,
        snap.parties.iter().map(|p| p.id),
    )?;
    let ledger = Ledger {
        size: tree.size(),
        next_party: snap.parties.iter().map(|p| p.id.0).max().unwrap_or(0) + 1,
        next_activity: snap.max_activity_id + 1,
        next_zone: snap.max_zone_id + 1,
        next_conflict: snap.max_conflict_id + 1,
        parties: snap
            .parties
            .iter()
            .map(|p| (p.id, PartyKind::parse(&p.kind).unwrap_or(PartyKind::Civil)))
            .collect(),
        party_names: snap.parties.iter().map(|p| p.name.clone()).collect(),
        live_per_party,
        live,
        by_id,
        suppressed,
        hotline,
    };
    Ok(Restored {
        world,
        ledger,
        seal: SealState { tree, signer },
        stale,
    })
}

/// Starts the driver and its committer; returns the handle. The first
/// batch resolves what ended while the service was down.
pub fn start(setup: DriverSetup) -> Result<DriverHandle, StartError> {
    let now = now_ms();
    let Restored {
        world,
        ledger,
        seal,
        stale,
    } = restore(&setup, now)?;
    let world = Arc::new(RwLock::new(world));
    let (commands, inbox) = mpsc::sync_channel(setup.max_pending.max(1));
    // Batches in flight: one committing, one sealed waiting for it, one
    // being sealed, one being built. The driver hands a batch to the
    // sealer only when the sealer takes it (a rendezvous): the sealing of
    // one batch overlaps the building of the next, no more.
    let (jobs, job_inbox) = mpsc::sync_channel::<Job>(1);
    let (seal_jobs, seal_inbox) = mpsc::sync_channel::<SealJob>(0);
    // Emptied lists come back for the next batches (see [`Spare`]).
    let (spare_back, spare_rows) = mpsc::sync_channel(2);
    let (spare_leaves_back, spare_leaves) = mpsc::sync_channel(2);
    let poisoned = Arc::new(AtomicBool::new(false));
    let committed_size = Arc::new(AtomicU64::new(ledger.size));
    let reconciling = Arc::new(AtomicBool::new(false));
    let lost_race = Arc::new(AtomicBool::new(false));
    {
        let store = Arc::clone(&setup.store);
        let hub = Arc::clone(&setup.hub);
        let poisoned = Arc::clone(&poisoned);
        let committed_size = Arc::clone(&committed_size);
        let lost_race = Arc::clone(&lost_race);
        std::thread::Builder::new()
            .name("deconflict-committer".into())
            .spawn(move || {
                commit_loop(
                    job_inbox,
                    store,
                    hub,
                    poisoned,
                    lost_race,
                    committed_size,
                    spare_back,
                )
            })
            .map_err(|e| StartError::Store(StoreError::CommitFailed(e.to_string())))?;
    }
    {
        let sealer = Sealer::new(seal, Arc::clone(&setup.store), Arc::clone(&committed_size));
        let poisoned = Arc::clone(&poisoned);
        std::thread::Builder::new()
            .name("deconflict-sealer".into())
            .spawn(move || sealer.run(seal_inbox, jobs, poisoned, spare_leaves_back))
            .map_err(|e| StartError::Store(StoreError::CommitFailed(e.to_string())))?;
    }
    let handle = DriverHandle {
        commands,
        world: Arc::clone(&world),
        reconciling: Arc::clone(&reconciling),
        queue_limit: setup.max_pending,
    };
    // Only PostgreSQL is shared by several nodes; SQLite keeps no copies.
    let shared_database = setup.store.backend() == Backend::Postgres;
    let mut driver = Driver {
        failures_in_a_row: 0,
        rebuilt_at_size: 0,
        redos_in_a_row: 0,
        in_flight: VecDeque::new(),
        keep_for_redo: shared_database,
        next_poll: shared_database
            .then(|| std::time::Instant::now() + Duration::from_millis(setup.poll_interval_ms)),
        lost_race,
        setup,
        world,
        ledger,
        jobs: seal_jobs,
        spare: spare_rows,
        spare_leaves,
        poisoned,
        committed_size,
        reconciling,
    };
    std::thread::Builder::new()
        .name("deconflict-driver".into())
        .spawn(move || driver.run(inbox, stale))
        .map_err(|e| StartError::Store(StoreError::CommitFailed(e.to_string())))?;
    Ok(handle)
}

/// A committed batch's emptied row and event lists, handed back to the
/// driver for its next batch: a full batch's lists hold thousands of rows
/// and events (megabytes), and fresh ones per batch meant growing them by
/// copies into fresh pages.
#[derive(Default)]
struct Spare {
    rows: Vec<Row>,
    events: Vec<HubEvent>,
}

fn commit_loop(
    jobs: Receiver<Job>,
    store: Arc<Store>,
    hub: Arc<Hub>,
    poisoned: Arc<AtomicBool>,
    lost_race: Arc<AtomicBool>,
    committed_size: Arc<AtomicU64>,
    spare: SyncSender<Spare>,
) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Barrier(done) => {
                let _ = done.send(());
            }
            Job::Commit {
                first_index,
                end_size,
                rows,
                completions,
                events,
                head,
            } => {
                let started = std::time::Instant::now();
                let commands = completions.len();
                let result = match head {
                    Some(head) if !poisoned.load(Ordering::Acquire) => store
                        .write(move |conn| ledger::write_batch(conn, first_index, &rows).map(|()| rows))
                        .map(|rows| (head, rows)),
                    // Built on a batch that did not commit (or could not be
                    // sealed): its first leaf would not follow the log on disk.
                    _ => Err(StoreError::CommitFailed(
                        "an earlier batch failed to commit".into(),
                    )),
                };
                metrics::histogram!("deconflict_commit_seconds").record(started.elapsed().as_secs_f64());
                metrics::histogram!("deconflict_batch_commands").record(commands as f64);
                match result {
                    Ok((head, mut rows)) => {
                        committed_size.store(end_size, Ordering::Release);
                        for complete in completions {
                            complete(Ok(Arc::clone(&head)));
                        }
                        hub.publish(&events);
                        rows.clear();
                        let mut events = events;
                        events.clear();
                        let _ = spare.try_send(Spare { rows, events });
                    }
                    Err(error)
                        if error.is_lost_race()
                            || (lost_race.load(Ordering::Acquire) && poisoned.load(Ordering::Acquire)) =>
                    {
                        // Another node committed first (or this batch was
                        // built on one that lost): nothing is answered; the
                        // driver catches up and redoes the commands, which
                        // it kept. Dropping the completions answers nobody.
                        metrics::counter!("deconflict_batches_lost_race_total").increment(1);
                        tracing::debug!(%error, first_index, "a batch lost the race to another node; redoing it");
                        lost_race.store(true, Ordering::Release);
                        poisoned.store(true, Ordering::Release);
                        drop(completions);
                    }
                    Err(error) => {
                        poisoned.store(true, Ordering::Release);
                        tracing::error!(%error, first_index, "a batch failed to commit; the driver will rebuild from the store");
                        for complete in completions {
                            complete(Err(ApiError::storage(&error)));
                        }
                    }
                }
            }
        }
    }
}

/// The first wait before rebuilding again after repeated failed commits;
/// it doubles up to 64 times this.
const REBUILD_BACKOFF_MS: u64 = 25;

/// A batch handed to the committer, with copies of its commands in case
/// it loses the race to another node and must be redone.
struct InFlight {
    end_size: u64,
    commands: Vec<Command>,
}

struct Driver {
    /// Failed commits since the last one that succeeded.
    failures_in_a_row: u32,
    /// Catch-ups since this node last committed a batch of its own.
    redos_in_a_row: u32,
    /// Batches not yet known to be committed, oldest first (empty unless
    /// `keep_for_redo`).
    in_flight: VecDeque<InFlight>,
    /// Whether other nodes may write the database (PostgreSQL): commands
    /// are then kept until their batch commits.
    keep_for_redo: bool,
    /// When to read the log head next (`None`: never, SQLite).
    next_poll: Option<std::time::Instant>,
    /// Set by the committer with `poisoned` when a batch lost the race.
    lost_race: Arc<AtomicBool>,
    /// The log size at the last rebuild: a larger committed size since
    /// means a commit succeeded.
    rebuilt_at_size: u64,
    setup: DriverSetup,
    world: Arc<RwLock<World>>,
    ledger: Ledger,
    /// To the sealer, which hands each batch on to the committer.
    jobs: SyncSender<SealJob>,
    /// Emptied row and leaf lists of committed (sealed) batches, to reuse.
    spare: Receiver<Spare>,
    spare_leaves: Receiver<Vec<PendingLeaf>>,
    poisoned: Arc<AtomicBool>,
    committed_size: Arc<AtomicU64>,
    reconciling: Arc<AtomicBool>,
}

fn reply_now<T>(reply: Reply<T>, error: ApiError) {
    let _ = reply.send(Err(error));
}

fn completion<T: Send + 'static>(reply: Reply<T>, value: T, log_index: u64) -> Completion {
    Box::new(move |result| {
        let _ = reply.send(result.map(|head| Committed {
            value,
            log_index,
            head,
        }));
    })
}

impl Command {
    /// Whether the command was answered already (refused at once, or its
    /// batch committed): a redo skips it. Commands without an answer (the
    /// performer's reports) never are.
    fn answered(&self) -> bool {
        match self {
            Command::CreateParty { reply, .. } => reply.answered(),
            Command::Notify { reply, .. } | Command::Update { reply, .. } | Command::Cancel { reply, .. } => {
                reply.answered()
            }
            Command::Ack { reply, .. } | Command::Resolve { reply, .. } => reply.answered(),
            Command::CreateZone { reply, .. } => reply.answered(),
            Command::Stop { .. } => false,
            Command::Hotline(command) => command.answered(),
        }
    }
}

fn fail_command(command: Command, error: ApiError) {
    match command {
        Command::CreateParty { reply, .. } => reply_now(reply, error),
        Command::Notify { reply, .. } | Command::Update { reply, .. } | Command::Cancel { reply, .. } => {
            reply_now(reply, error)
        }
        Command::Ack { reply, .. } | Command::Resolve { reply, .. } => reply_now(reply, error),
        Command::CreateZone { reply, .. } => reply_now(reply, error),
        Command::Stop { done } => {
            let _ = done.send(());
        }
        Command::Hotline(command) => command.fail(error),
    }
}

fn resolution_text(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::Cancelled { .. } => "cancelled",
        Resolution::NoLongerConflicting => "no_longer_conflicting",
        Resolution::Expired { .. } => "expired",
    }
}

impl Driver {
    fn run(&mut self, inbox: Receiver<Command>, stale: Stale) {
        if !stale.is_empty() {
            self.run_batch(Vec::new(), stale);
        }
        let tick = Duration::from_millis(self.setup.tick_interval_ms.max(10));
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                if self.lost_race.load(Ordering::Acquire) {
                    self.catch_up();
                } else {
                    self.reconcile();
                }
            }
            let mut wait = self.hotline_wait(tick);
            if let Some(next_poll) = self.next_poll {
                wait = wait.min(next_poll.saturating_duration_since(std::time::Instant::now()));
            }
            let mut commands = match inbox.recv_timeout(wait) {
                Ok(command) => vec![command],
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            while commands.len() < self.setup.max_batch {
                match inbox.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            let stop = commands.iter().position(|c| matches!(c, Command::Stop { .. }));
            let after_stop = stop.map(|at| commands.split_off(at));
            self.run_batch(commands, Vec::new());
            self.poll_log();
            if let Some(rest) = after_stop {
                self.flush_redoing();
                for command in rest {
                    fail_command(command, ApiError::unavailable(&"the service is stopping"));
                }
                return;
            }
        }
        self.flush();
    }

    /// Waits until every accepted command is answered, redoing what lost
    /// the race to another node (before stopping).
    fn flush_redoing(&mut self) {
        self.flush();
        while self.poisoned.load(Ordering::Acquire) && self.lost_race.load(Ordering::Acquire) {
            self.catch_up();
            self.flush();
        }
    }

    /// Waits until the committer has answered every batch handed to it.
    fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.jobs.send(SealJob::Barrier(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Another node appended to the log (a batch of ours lost the race, or
    /// the poll saw the head move): rebuilds from the store, which holds
    /// their leaves, publishes their events here, and redoes the commands
    /// of our batches that did not commit against that state.
    fn catch_up(&mut self) {
        self.flush();
        let committed = self.committed_size.load(Ordering::Acquire);
        if committed > self.rebuilt_at_size {
            self.redos_in_a_row = 0;
        }
        let redo: Vec<Command> = self
            .in_flight
            .drain(..)
            .filter(|b| b.end_size > committed)
            .flat_map(|b| b.commands)
            .filter(|c| !c.answered())
            .collect();
        if !redo.is_empty() {
            self.redos_in_a_row += 1;
            metrics::counter!("deconflict_redone_commands_total").increment(redo.len() as u64);
        }
        let started = std::time::Instant::now();
        match restore(&self.setup, now_ms()) {
            Ok(Restored {
                world,
                ledger,
                seal,
                stale,
            }) => {
                let size = self.install_rebuilt(world, ledger, seal);
                self.lost_race.store(false, Ordering::Release);
                metrics::counter!("deconflict_catch_ups_total").increment(1);
                // A catch-up rebuilds from the whole store: its cost grows
                // with the live rows and the log (docs/DATABASES.md).
                metrics::histogram!("deconflict_catch_up_seconds").record(started.elapsed().as_secs_f64());
                // What the others appended, announced here too.
                self.announce_from_log(committed, size);
                if self.redos_in_a_row > self.setup.max_redos {
                    self.redos_in_a_row = 0;
                    let error = ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "contention",
                        format!(
                            "other nodes on the database committed first {} times in a row \
                             (--max-redos): nothing was changed; try again",
                            self.setup.max_redos
                        ),
                    )
                    .with_retry_after(1);
                    for command in redo {
                        fail_command(command, error.clone());
                    }
                    return;
                }
                let mut redo = redo.into_iter().peekable();
                let mut stale = Some(stale);
                while redo.peek().is_some() || stale.as_ref().is_some_and(|s| !s.is_empty()) {
                    let chunk: Vec<Command> = redo.by_ref().take(self.setup.max_batch.max(1)).collect();
                    self.run_batch(chunk, stale.take().unwrap_or_default());
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot catch up from the store; rebuilding");
                for command in redo {
                    fail_command(command, ApiError::unavailable(&error));
                }
                // Still poisoned: the next turn rebuilds as after a failure.
                self.lost_race.store(false, Ordering::Release);
            }
        }
    }

    /// Every `poll_interval_ms` on a shared database: catches up when
    /// another node has appended to the log, so that its events reach this
    /// node's streams and this node's next batch is built on its state.
    fn poll_log(&mut self) {
        let Some(next_poll) = self.next_poll else {
            return;
        };
        let now = std::time::Instant::now();
        if now < next_poll {
            return;
        }
        self.next_poll = Some(now + Duration::from_millis(self.setup.poll_interval_ms));
        self.flush();
        if self.poisoned.load(Ordering::Acquire) {
            return; // the next turn catches up or rebuilds
        }
        match self.setup.store.read(crate::multinode::log_head) {
            Ok(head) if head > self.ledger.size => self.catch_up(),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the log head"),
        }
    }

    /// Announces to this node's streams what the leaves `[from, to)` say,
    /// in log order: conflict events to the hub, the hotline's deliveries
    /// and notifications to the performer. Those leaves were committed by
    /// other nodes (or by a batch of ours whose commit answered an error
    /// yet happened), so nothing here has announced them. Called with the
    /// state rebuilt at `to`, each leaf once.
    fn announce_from_log(&self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let hotline = &self.ledger.hotline.machine;
        match self
            .setup
            .store
            .read(|db| crate::multinode::announced_between(db, from, to, hotline))
        {
            Ok(announced) => {
                self.setup.hub.publish(&announced.events);
                if !announced.work.is_empty() {
                    self.setup.hotline_sink.send(announced.work);
                }
            }
            Err(error) => tracing::warn!(%error, from, to, "cannot read other nodes' events"),
        }
    }

    /// Puts a state rebuilt from the store in place of ours (the engine's
    /// world, the ledger, the sealer's tree and signer, the committed size)
    /// and clears the poison; returns the log size it holds. Called once
    /// the sealer and the committer are drained ([`Self::flush`]).
    fn install_rebuilt(&mut self, world: World, ledger: Ledger, seal: SealState) -> u64 {
        *self
            .world
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = world;
        self.ledger = ledger;
        // Before any batch built on the rebuilt state: the sealer takes its
        // jobs in order.
        let _ = self.jobs.send(SealJob::Reset(Box::new(seal)));
        let size = self.ledger.size;
        self.committed_size.store(size, Ordering::Release);
        self.rebuilt_at_size = size;
        self.poisoned.store(false, Ordering::Release);
        size
    }

    /// Waits for the committer to drain, then rebuilds everything from the
    /// store: afterwards the state is exactly what was committed.
    fn reconcile(&mut self) {
        self.reconciling.store(true, Ordering::Release);
        metrics::counter!("deconflict_reconciles_total").increment(1);
        self.flush();
        // A disk that stays full or broken fails every batch, and a due
        // hotline timer makes a batch at every turn: back off (writes are
        // refused meanwhile) rather than rebuild in a hot loop. The first
        // failure after a successful commit rebuilds at once.
        if self.committed_size.load(Ordering::Acquire) > self.rebuilt_at_size {
            self.failures_in_a_row = 0;
        }
        if self.failures_in_a_row > 0 {
            let exponent = (self.failures_in_a_row - 1).min(6);
            std::thread::sleep(Duration::from_millis(REBUILD_BACKOFF_MS << exponent));
        }
        self.failures_in_a_row += 1;
        // Every command of a failed batch was answered with the error.
        self.in_flight.clear();
        self.lost_race.store(false, Ordering::Release);
        let committed = self.committed_size.load(Ordering::Acquire);
        loop {
            match restore(&self.setup, now_ms()) {
                Ok(Restored {
                    world,
                    ledger,
                    seal,
                    stale,
                }) => {
                    let size = self.install_rebuilt(world, ledger, seal);
                    self.announce_from_log(committed, size);
                    self.reconciling.store(false, Ordering::Release);
                    tracing::warn!(log_size = self.ledger.size, "rebuilt the state from the store");
                    if !stale.is_empty() {
                        self.run_batch(Vec::new(), stale);
                    }
                    return;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot rebuild from the store; retrying in a second");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn run_batch(&mut self, commands: Vec<Command>, stale: Stale) {
        let committed = self.committed_size.load(Ordering::Acquire);
        while self.in_flight.front().is_some_and(|b| b.end_size <= committed) {
            self.in_flight.pop_front();
        }
        let kept = if self.keep_for_redo {
            commands.clone()
        } else {
            Vec::new()
        };
        let now_ms = now_ms();
        let spare = self.spare.try_recv().unwrap_or_default();
        let mut batch = Batch {
            first_index: self.ledger.size,
            now_ms,
            rows: spare.rows,
            leaves: self.spare_leaves.try_recv().unwrap_or_default(),
            completions: Vec::new(),
            events: spare.events,
            messages_written: HashMap::new(),
        };
        let mut commands = commands.into_iter();
        let shared = Arc::clone(&self.world);
        let outcome = (|| -> Result<(), Fatal> {
            {
                let mut world = shared.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                // Time passes first: what ended leaves before anything new is
                // compared with it.
                world.engine.handle_tick(Timestamp(now_ms));
                self.drain(&mut world, &mut batch)?;
                for subject in stale {
                    self.resolve(&world, &mut batch, subject, "expired")?;
                }
            }
            self.hotline_tick(&mut batch)?;
            for command in commands.by_ref() {
                let mut world = shared.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                self.apply(&mut world, &mut batch, command)?;
            }
            Ok(())
        })();
        if let Err(Fatal(reason)) = outcome {
            tracing::error!(%reason, "abandoning a batch; rebuilding from the store");
            for complete in batch.completions {
                complete(Err(ApiError::unavailable(&reason)));
            }
            for command in commands {
                fail_command(command, ApiError::unavailable(&reason));
            }
            self.poisoned.store(true, Ordering::Release);
            return;
        }
        {
            let world = self.world();
            metrics::gauge!("deconflict_activities").set(world.activities.len() as f64);
            metrics::gauge!("deconflict_open_conflicts").set(self.ledger.live.len() as f64);
        }
        if self.ledger.size == batch.first_index {
            return; // nothing changed: every command was refused or read-only
        }
        let end_size = self.ledger.size;
        if self.keep_for_redo {
            self.in_flight.push_back(InFlight {
                end_size,
                commands: kept,
            });
        }
        let sealing = Sealing {
            first_index: batch.first_index,
            now_ms,
            rows: batch.rows,
            leaves: batch.leaves,
            completions: batch.completions,
            events: batch.events,
        };
        if let Err(mpsc::SendError(SealJob::Seal(sealing))) = self.jobs.send(SealJob::Seal(Box::new(sealing)))
        {
            for complete in sealing.completions {
                complete(Err(ApiError::unavailable(&"the sealer has stopped")));
            }
        }
    }

    fn world(&self) -> RwLockReadGuard<'_, World> {
        self.world
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes one leaf and numbers it (see [`Self::append_leaf`]).
    /// Returns its index.
    fn leaf(
        &mut self,
        batch: &mut Batch,
        kind: &str,
        payload: &Value,
        readers: Vec<u64>,
    ) -> Result<u64, Fatal> {
        let bytes = LeafEvent {
            kind,
            at_ms: batch.now_ms,
            payload,
        }
        .encode()?;
        self.append_leaf(batch, PendingLeaf::Bytes { bytes, readers })
    }

    /// Numbers one leaf and queues it for the sealer, which encodes it (if
    /// it is not yet) and hashes it into the tree. Returns its index.
    fn append_leaf(&mut self, batch: &mut Batch, leaf: PendingLeaf) -> Result<u64, Fatal> {
        let index = self.ledger.size;
        if index == u64::MAX {
            return Err(Fatal::from(deconflict_audit::Error::TreeFull));
        }
        self.ledger.size = index + 1;
        batch.leaves.push(leaf);
        Ok(index)
    }

    /// Records a conflict change: its row, its leaf and its event.
    fn record_conflict(
        &mut self,
        world: &World,
        batch: &mut Batch,
        record: &ConflictRecord,
        leaf_kind: &'static str,
        event_kind: Option<&'static str>,
    ) -> Result<(), Fatal> {
        let index = self.append_leaf(
            batch,
            PendingLeaf::Conflict {
                kind: leaf_kind,
                record: record.clone(),
            },
        )?;
        batch.rows.push(Row::Conflict(record.clone()));
        if let Some(kind) = event_kind {
            batch.events.push(HubEvent {
                kind,
                record: record.clone(),
                full: world.sides_full(&record.subject),
                log_index: index,
            });
        }
        Ok(())
    }

    fn open(
        &mut self,
        world: &World,
        batch: &mut Batch,
        subject: Subject,
        parties: [PartyId; 2],
        finding: Finding,
    ) -> Result<(), Fatal> {
        self.ledger.suppressed.remove(&subject);
        let mut record = unsaved(subject, parties, finding, batch.now_ms);
        record.id = self.ledger.next_conflict;
        self.ledger.next_conflict += 1;
        self.record_conflict(world, batch, &record, "conflict.opened", Some("conflict.opened"))?;
        self.hotline_conflict_opened(batch, record.id, parties)?;
        self.ledger.by_id.insert(record.id, subject);
        self.ledger.live.insert(subject, Box::new(record));
        Ok(())
    }

    /// A live conflict whose finding changed: acknowledgements are reset,
    /// since what was acknowledged is no longer what is. A suppressed one
    /// (resolved by hand) reopens as a new conflict.
    fn change(
        &mut self,
        world: &World,
        batch: &mut Batch,
        subject: Subject,
        parties: [PartyId; 2],
        finding: Finding,
    ) -> Result<(), Fatal> {
        let Some(mut record) = self.ledger.live.get(&subject).map(|r| ConflictRecord::clone(r)) else {
            return self.open(world, batch, subject, parties, finding);
        };
        if record.finding == finding {
            return Ok(());
        }
        record.finding = finding;
        record.state = ConflictState::Open;
        record.acked_ms = [None, None];
        record.updated_at_ms = batch.now_ms;
        self.record_conflict(
            world,
            batch,
            &record,
            "conflict.updated",
            Some("conflict.updated"),
        )?;
        self.ledger.live.insert(subject, Box::new(record));
        Ok(())
    }

    fn resolve(
        &mut self,
        world: &World,
        batch: &mut Batch,
        subject: Subject,
        resolution: &str,
    ) -> Result<(), Fatal> {
        self.ledger.suppressed.remove(&subject);
        let Some(mut record) = self.ledger.live.remove(&subject).map(|r| *r) else {
            return Ok(());
        };
        self.ledger.by_id.remove(&record.id);
        record.state = ConflictState::Resolved;
        record.resolved_at_ms = Some(batch.now_ms);
        record.updated_at_ms = batch.now_ms;
        record.resolution = Some(resolution.to_owned());
        // The hotline's leaves first: a resolve's receipt is the last leaf.
        self.hotline_conflict_over(batch, record.id)?;
        self.record_conflict(
            world,
            batch,
            &record,
            "conflict.resolved",
            Some("conflict.resolved"),
        )
    }

    /// Turns the engine's events into conflict records.
    fn drain(&mut self, world: &mut World, batch: &mut Batch) -> Result<(), Fatal> {
        while let Some(event) = world.engine.poll_event() {
            match event {
                Event::ConflictOpened(c) => self.open(
                    world,
                    batch,
                    Subject::Pair(c.key.activities()),
                    c.parties,
                    c.finding,
                )?,
                Event::ConflictUpdated(c) => self.change(
                    world,
                    batch,
                    Subject::Pair(c.key.activities()),
                    c.parties,
                    c.finding,
                )?,
                Event::ConflictResolved { conflict, resolution } => self.resolve(
                    world,
                    batch,
                    Subject::Pair(conflict.key.activities()),
                    resolution_text(resolution),
                )?,
                Event::ActivityExpired { activity, .. } => {
                    if let Some(meta) = world.activities.remove(&activity) {
                        self.count(meta.party, -1);
                    }
                    self.settle_zones(world, batch, activity, None, "expired")?;
                }
            }
        }
        Ok(())
    }

    fn count(&mut self, party: PartyId, delta: isize) {
        let count = self.ledger.live_per_party.entry(party).or_default();
        *count = count.saturating_add_signed(delta);
    }

    /// Brings the zone conflicts of one activity in line with `activity`
    /// (its current version, or `None` when it is gone).
    fn settle_zones(
        &mut self,
        world: &World,
        batch: &mut Batch,
        id: ActivityId,
        activity: Option<&Activity>,
        gone_reason: &str,
    ) -> Result<(), Fatal> {
        let zone_ids: Vec<ZoneId> = world.zones.keys().copied().collect();
        for zone_id in zone_ids {
            let subject = Subject::Zone {
                activity: id,
                zone: zone_id,
            };
            let zone = &world.zones[&zone_id];
            let finding = activity.and_then(|a| zone.evaluate(a));
            match (finding, activity) {
                (Some(finding), Some(a)) => {
                    if self.ledger.live.contains_key(&subject) {
                        self.change(world, batch, subject, [a.party, zone.owner], finding)?;
                    } else if !self.ledger.suppressed.contains(&subject) {
                        self.open(world, batch, subject, [a.party, zone.owner], finding)?;
                    }
                }
                _ => {
                    let reason = if activity.is_some() {
                        "no_longer_conflicting"
                    } else {
                        gone_reason
                    };
                    self.resolve(world, batch, subject, reason)?;
                }
            }
        }
        Ok(())
    }

    /// The live conflicts of one activity, for its answer: its pairs from
    /// the engine's per-activity index, its zones one by one (never a scan
    /// of every conflict).
    fn conflicts_of(&self, world: &World, id: ActivityId) -> Vec<(ConflictRecord, [bool; 2])> {
        let pairs = world
            .engine
            .conflicts_of(id)
            .map(|c| Subject::Pair(c.key.activities()));
        let zones = world
            .zones
            .keys()
            .map(|&zone| Subject::Zone { activity: id, zone });
        let mut out: Vec<(ConflictRecord, [bool; 2])> = pairs
            .chain(zones)
            .filter_map(|subject| self.ledger.live.get(&subject))
            .map(|r| (ConflictRecord::clone(r), world.sides_full(&r.subject)))
            .collect();
        out.sort_by_key(|(r, _)| r.id);
        out
    }

    /// What a version the engine just took leaves behind, the same for a
    /// notification and an update: its meta, its leaf (from the Feature's
    /// canonical form), its row, the engine's events, its zones, and the
    /// answer with its conflicts.
    fn record_version(
        &mut self,
        world: &mut World,
        batch: &mut Batch,
        taken: TakenVersion,
        reply: Reply<ChangeOutcome>,
    ) -> Result<(), Fatal> {
        let TakenVersion {
            kind,
            id,
            party,
            version,
            window,
            feature_text,
            feature_canonical,
            sharing,
            bounds,
        } = taken;
        world.activities.insert(
            id,
            ActivityMeta {
                party,
                version,
                sharing,
            },
        );
        let index = self.append_leaf(
            batch,
            PendingLeaf::Activity {
                kind,
                id,
                party,
                version,
                sharing,
                feature_canonical,
            },
        )?;
        batch.rows.push(Row::Activity(ActivityRow {
            id,
            party,
            version,
            feature: feature_text,
            at_ms: batch.now_ms,
            sharing: sharing.as_str(),
            start_ms: window.start.unix_ms(),
            end_ms: window.end.map(Timestamp::unix_ms),
            bounds,
        }));
        self.drain(world, batch)?;
        self.settle_zones_of_held(world, batch, id)?;
        let outcome = ChangeOutcome {
            id: id.0,
            version,
            conflicts: self.conflicts_of(world, id),
        };
        batch.completions.push(completion(reply, outcome, index));
        Ok(())
    }

    /// [`Self::settle_zones`] for an activity the engine just took, read
    /// back from the engine (gone from it, it is settled as gone: the
    /// engine's expiry event did that already). Without zones, nothing to do.
    fn settle_zones_of_held(
        &mut self,
        world: &World,
        batch: &mut Batch,
        id: ActivityId,
    ) -> Result<(), Fatal> {
        if world.zones.is_empty() {
            return Ok(());
        }
        self.settle_zones(world, batch, id, world.engine.activity(id), "cancelled")
    }

    /// Finds a live activity `viewer` may change: 404 when they may not see
    /// it (as if it did not exist), 403 when they see it but do not own it.
    fn owned(world: &World, viewer: &Viewer, id: u64) -> Result<(ActivityId, ActivityMeta), ApiError> {
        let id = ActivityId(id);
        let Some(meta) = world.activities.get(&id).copied() else {
            return Err(ApiError::not_found("activity"));
        };
        if meta.party == viewer.party {
            return Ok((id, meta));
        }
        if viewer.broker || meta.sharing == Sharing::Full {
            return Err(ApiError::forbidden(
                "only the party that notified an activity may change it",
            ));
        }
        Err(ApiError::not_found("activity"))
    }

    fn apply(&mut self, world: &mut World, batch: &mut Batch, command: Command) -> Result<(), Fatal> {
        let now = Timestamp(batch.now_ms);
        match command {
            Command::CreateParty {
                name,
                kind,
                token_hash,
                reply,
            } => {
                if self.ledger.party_names.contains(&name) {
                    reply_now(
                        reply,
                        ApiError::conflict(format!("a party named {name:?} exists")),
                    );
                    return Ok(());
                }
                let id = PartyId(self.ledger.next_party);
                self.ledger.next_party += 1;
                let payload = json!({"party": id.0, "name": name, "kind": kind.as_str()});
                let index = self.leaf(batch, "party.created", &payload, vec![id.0])?;
                batch.rows.push(Row::Party {
                    id,
                    name: name.clone(),
                    kind: kind.as_str(),
                    token_hash,
                    at_ms: batch.now_ms,
                });
                self.ledger.party_names.insert(name.clone());
                self.ledger.parties.insert(id, kind);
                self.hotline_register(id);
                batch
                    .completions
                    .push(completion(reply, PartyInfo { id, name, kind }, index));
            }
            Command::Notify {
                viewer,
                submission,
                reply,
            } => {
                let party = submission.activity.party;
                let held = self.ledger.live_per_party.get(&party).copied().unwrap_or(0);
                if held >= self.setup.max_activities_per_party {
                    reply_now(
                        reply,
                        ApiError::new(
                            axum::http::StatusCode::CONFLICT,
                            "limit",
                            format!(
                                "the party holds its limit of {} live activities (--max-activities-per-party); cancel some first",
                                self.setup.max_activities_per_party
                            ),
                        ),
                    );
                    return Ok(());
                }
                let id = ActivityId(self.ledger.next_activity);
                // The engine takes the activity (no copy of its prepared
                // shape); what the row, the leaf and the zones need of it is
                // read before, or from the engine after.
                let Submission {
                    activity,
                    feature_text,
                    feature_canonical,
                    sharing,
                    bounds,
                } = *submission;
                let window = activity.window;
                match world.engine.handle_notify(now, id, activity) {
                    Ok(_) => {}
                    Err(EngineError::Capacity { limit }) => {
                        self.drain(world, batch)?;
                        reply_now(
                            reply,
                            ApiError::new(
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                "capacity",
                                format!("the service holds its limit of {limit} activities"),
                            ),
                        );
                        return Ok(());
                    }
                    Err(other) => return Err(Fatal(format!("engine refused a fresh id: {other}"))),
                }
                self.ledger.next_activity += 1;
                self.count(party, 1);
                let _ = viewer;
                let taken = TakenVersion {
                    kind: "activity.notified",
                    id,
                    party,
                    version: 1,
                    window,
                    feature_text,
                    feature_canonical,
                    sharing,
                    bounds,
                };
                self.record_version(world, batch, taken, reply)?;
            }
            Command::Update {
                viewer,
                id,
                if_match,
                submission,
                reply,
            } => {
                let (id, meta) = match Self::owned(world, &viewer, id) {
                    Ok(found) => found,
                    Err(error) => {
                        reply_now(reply, error);
                        return Ok(());
                    }
                };
                if meta.version != if_match {
                    reply_now(
                        reply,
                        ApiError::new(
                            axum::http::StatusCode::PRECONDITION_FAILED,
                            "stale-version",
                            format!(
                                "If-Match is version {if_match} but the activity is at version {}: fetch it again",
                                meta.version
                            ),
                        ),
                    );
                    return Ok(());
                }
                let version = meta.version + 1;
                let Submission {
                    activity,
                    feature_text,
                    feature_canonical,
                    sharing,
                    bounds,
                } = *submission;
                let window = activity.window;
                match world.engine.handle_update(now, id, activity) {
                    Ok(()) => {}
                    Err(EngineError::UnknownActivity(_)) => {
                        // It ended before now: the tick inside the engine let it go.
                        self.drain(world, batch)?;
                        reply_now(reply, ApiError::not_found("activity"));
                        return Ok(());
                    }
                    Err(other) => return Err(Fatal(format!("engine refused an update: {other}"))),
                }
                // The activity's party never changes: the submission's is
                // the owner's (Self::owned checked it).
                let taken = TakenVersion {
                    kind: "activity.updated",
                    id,
                    party: meta.party,
                    version,
                    window,
                    feature_text,
                    feature_canonical,
                    sharing,
                    bounds,
                };
                self.record_version(world, batch, taken, reply)?;
            }
            Command::Cancel { viewer, id, reply } => {
                let (id, meta) = match Self::owned(world, &viewer, id) {
                    Ok(found) => found,
                    Err(error) => {
                        reply_now(reply, error);
                        return Ok(());
                    }
                };
                match world.engine.handle_cancel(now, id) {
                    Ok(_) => {}
                    Err(EngineError::UnknownActivity(_)) => {
                        self.drain(world, batch)?;
                        reply_now(reply, ApiError::not_found("activity"));
                        return Ok(());
                    }
                    Err(other) => return Err(Fatal(format!("engine refused a cancel: {other}"))),
                }
                let version = meta.version + 1;
                world.activities.remove(&id);
                self.count(meta.party, -1);
                let payload = json!({"activity": id.0, "party": meta.party.0, "version": version});
                let index = self.leaf(
                    batch,
                    "activity.cancelled",
                    &payload,
                    activity_readers(meta.party, meta.sharing),
                )?;
                batch.rows.push(Row::ActivityCancel {
                    id,
                    version,
                    at_ms: batch.now_ms,
                });
                self.drain(world, batch)?;
                self.settle_zones(world, batch, id, None, "cancelled")?;
                let outcome = ChangeOutcome {
                    id: id.0,
                    version,
                    conflicts: Vec::new(),
                };
                batch.completions.push(completion(reply, outcome, index));
            }
            Command::Ack {
                viewer,
                conflict,
                reply,
            } => self.ack_or_resolve(world, batch, viewer, conflict, reply, false)?,
            Command::Resolve {
                viewer,
                conflict,
                reply,
            } => self.ack_or_resolve(world, batch, viewer, conflict, reply, true)?,
            Command::Stop { done } => {
                let _ = done.send(());
            }
            Command::Hotline(command) => self.apply_hotline(batch, command)?,
            Command::CreateZone {
                viewer,
                zone,
                feature,
                reply,
            } => {
                let id = ZoneId(self.ledger.next_zone);
                self.ledger.next_zone += 1;
                let mut stored = feature;
                if let Some(object) = stored.as_object_mut() {
                    object.insert("id".into(), json!(id.0));
                }
                let payload = json!({
                    "zone": id.0,
                    "party": viewer.party.0,
                    "kind": zone.kind.as_str(),
                    "feature": stored,
                });
                let index = self.leaf(batch, "zone.created", &payload, vec![0])?;
                batch.rows.push(Row::Zone {
                    id,
                    party: viewer.party,
                    kind: zone.kind.as_str(),
                    feature: stored.to_string(),
                    at_ms: batch.now_ms,
                });
                let owner = zone.owner;
                let hits: Vec<(ActivityId, PartyId, Finding)> = world
                    .engine
                    .activities()
                    .filter(|(_, a)| !a.window.ended_by(now))
                    .filter_map(|(aid, a)| zone.evaluate(a).map(|f| (aid, a.party, f)))
                    .collect();
                world.zones.insert(id, *zone);
                let mut hits = hits;
                hits.sort_by_key(|(aid, _, _)| *aid);
                for (aid, party, finding) in hits {
                    self.open(
                        world,
                        batch,
                        Subject::Zone {
                            activity: aid,
                            zone: id,
                        },
                        [party, owner],
                        finding,
                    )?;
                }
                let mut conflicts: Vec<(ConflictRecord, [bool; 2])> = self
                    .ledger
                    .live
                    .values()
                    .filter(|r| matches!(r.subject, Subject::Zone { zone, .. } if zone == id))
                    .map(|r| (ConflictRecord::clone(r), world.sides_full(&r.subject)))
                    .collect();
                conflicts.sort_by_key(|(r, _)| r.id);
                let outcome = ChangeOutcome {
                    id: id.0,
                    version: 1,
                    conflicts,
                };
                batch.completions.push(completion(reply, outcome, index));
            }
        }
        Ok(())
    }

    fn ack_or_resolve(
        &mut self,
        world: &World,
        batch: &mut Batch,
        viewer: Viewer,
        conflict: u64,
        reply: Reply<(ConflictRecord, [bool; 2])>,
        resolve: bool,
    ) -> Result<(), Fatal> {
        let Some(subject) = self.ledger.by_id.get(&conflict).copied() else {
            reply_now(reply, ApiError::not_found("open conflict"));
            return Ok(());
        };
        let Some(mut record) = self.ledger.live.get(&subject).map(|r| ConflictRecord::clone(r)) else {
            reply_now(reply, ApiError::not_found("open conflict"));
            return Ok(());
        };
        let Some(side) = record.side_of(viewer.party) else {
            let error = if viewer.broker {
                ApiError::forbidden("only the parties involved acknowledge or resolve a conflict")
            } else {
                ApiError::not_found("open conflict")
            };
            reply_now(reply, error);
            return Ok(());
        };
        let index;
        if resolve {
            // The engine (or the zone) still finds the pair in conflict:
            // keep it quiet unless it changes.
            self.resolve(
                world,
                batch,
                subject,
                &format!("resolved_by_party_{}", viewer.party.0),
            )?;
            self.ledger.suppressed.insert(subject);
            index = self.ledger.size - 1;
            record.state = ConflictState::Resolved;
            record.resolved_at_ms = Some(batch.now_ms);
            record.updated_at_ms = batch.now_ms;
            record.resolution = Some(format!("resolved_by_party_{}", viewer.party.0));
        } else {
            if record.acked_ms[side].is_none() {
                record.acked_ms[side] = Some(batch.now_ms);
                record.updated_at_ms = batch.now_ms;
                if record.acked_ms.iter().all(Option::is_some) {
                    record.state = ConflictState::Acknowledged;
                }
                self.record_conflict(
                    world,
                    batch,
                    &record,
                    "conflict.acknowledged",
                    Some("conflict.updated"),
                )?;
                self.ledger.live.insert(subject, Box::new(record.clone()));
            } else {
                // Acknowledging again changes no state, so no event; it is
                // still logged, which gives the answer its receipt.
                self.record_conflict(world, batch, &record, "conflict.acknowledged", None)?;
            }
            index = self.ledger.size - 1;
            self.hotline_conflict_acked(batch, conflict, viewer.party)?;
        }
        let full = world.sides_full(&record.subject);
        batch.completions.push(completion(reply, (record, full), index));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use deconflict_audit::{consistency_proof, inclusion_proof, verify_inclusion, MemoryStore, Receipt};

    use super::*;

    /// The ids' hasher spreads what the driver keys by: 200,000 pair and
    /// zone subjects of consecutive ids (as the service allocates them)
    /// hash apart, and the bits hashbrown picks buckets with (the low
    /// ones) and control bytes with (the top seven) vary: the buckets used
    /// are near what a random hash fills (~102k of 2^17 for 200,000 keys,
    /// ~140k of 2^18), so the tables do not degrade into long probes.
    #[test]
    fn the_id_hasher_spreads_consecutive_subjects() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<IdHasher>::default();
        let subjects: Vec<Subject> = (1..=100_000_u64)
            .flat_map(|i| {
                [
                    Subject::Pair([ActivityId(i), ActivityId(i + 1 + i % 7)]),
                    Subject::Zone {
                        activity: ActivityId(i),
                        zone: ZoneId(i % 3 + 1),
                    },
                ]
            })
            .collect();
        let hashes: Vec<u64> = subjects.iter().map(|s| build.hash_one(s)).collect();
        let distinct: HashSet<u64> = hashes.iter().copied().collect();
        assert_eq!(distinct.len(), subjects.len(), "subjects collide");
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & ((1 << 17) - 1)).collect();
        assert!(
            buckets.len() > 90_000,
            "{} of 131,072 buckets used",
            buckets.len()
        );
        let tops: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tops.len(), 128, "control bytes");
        let ids: HashSet<u64> = (1..=200_000_u64)
            .map(|id| build.hash_one(id) & ((1 << 18) - 1))
            .collect();
        assert!(
            ids.len() > 120_000,
            "{} of 262,144 buckets used by ids",
            ids.len()
        );
    }

    /// The inline path the sealer replaces: the driver appended each leaf
    /// to its tree and overlay as it went, then signed the batch's head
    /// with the same readers (the code of `run_batch` before the sealer).
    struct Inline {
        tree: Tree,
        signer: CheckpointSigner,
        overlay: BTreeMap<NodeId, Hash>,
    }

    impl Inline {
        fn seal(
            &mut self,
            store: &Store,
            committed: u64,
            now_ms: i64,
            leaves: &[Vec<u8>],
        ) -> (Vec<Row>, SignedHead) {
            let start_tree = self.tree.clone();
            let mut rows = Vec::new();
            for bytes in leaves {
                let appended = self.tree.append(bytes).unwrap();
                rows.push(Row::Leaf {
                    index: appended.index,
                    bytes: bytes.clone(),
                    hash: appended.leaf_hash,
                    readers: vec![appended.index % 3],
                });
                for (id, hash) in appended.nodes {
                    self.overlay.insert(id, hash);
                    rows.push(Row::Node { id, hash });
                }
            }
            self.overlay
                .retain(|id, _| ((id.index + 1) << id.level) > committed);
            let batch_nodes = BatchNodes::new(&start_tree, &rows);
            let reader = BatchNodesFirst {
                batch: &batch_nodes,
                rest: OverlayReader {
                    overlay: &self.overlay,
                    store,
                },
            };
            let note = self.signer.sign_tree(&reader, &self.tree).unwrap();
            rows.push(Row::Checkpoint {
                size: self.tree.size(),
                note: note.clone(),
                at_ms: now_ms,
            });
            let checkpoint = self.signer.last_signed().cloned().unwrap();
            (
                rows,
                SignedHead {
                    note,
                    checkpoint,
                    batch_nodes,
                    paths: InclusionPaths::of_tree(&self.tree),
                },
            )
        }
    }

    /// What `restore` gives the sealer: the tree rebuilt from the stored
    /// leaves and the signer resumed from the stored head.
    fn rebuilt(store: &Store, key: &NoteSigner) -> SealState {
        store
            .read(|db| {
                let note = ledger::latest_checkpoint(db)?.unwrap();
                let signer = CheckpointSigner::resume(key.clone(), &note).unwrap();
                let tree = ledger::rebuild_log(db, signer.last_signed())?.unwrap();
                Ok(SealState { tree, signer })
            })
            .unwrap()
    }

    /// The staged path (the sealer, a stage of its own) gives every batch
    /// the rows, the signed note and the checkpoint the inline path gave,
    /// and receipts (inclusion proofs from the head's `BatchNodes`) equal to
    /// the full tree's: over batches of many sizes, commits that lag the
    /// sealing (the overlay, then the store, serve the older nodes), a
    /// failed commit followed by a reset to the stored state (both paths
    /// rebuilt the same way), and a batch that does not start where the
    /// tree ends, which breaks the sealer until the next reset.
    #[test]
    fn the_sealer_signs_and_proves_as_the_inline_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(
                dir.path().join("sealer.sqlite"),
                deconflict_store::StoreConfig::default(),
            )
            .unwrap(),
        );
        let key = NoteSigner::from_seed("sealer.test", &[7; 32]).unwrap();
        let committed = Arc::new(AtomicU64::new(0));
        let fresh = || SealState {
            tree: Tree::new(),
            signer: CheckpointSigner::new(key.clone()),
        };
        let mut sealer = Sealer::new(fresh(), Arc::clone(&store), Arc::clone(&committed));
        let mut inline = Inline {
            tree: Tree::new(),
            signer: CheckpointSigner::new(key.clone()),
            overlay: BTreeMap::new(),
        };
        let mut all = MemoryStore::new();
        let mut full_tree = Tree::new();
        // Sealed but not committed yet: (first index, rows, end size).
        let mut pending: VecDeque<(u64, Vec<Row>, u64)> = VecDeque::new();
        let commit = |pending: &mut VecDeque<(u64, Vec<Row>, u64)>| {
            let (first, rows, end) = pending.pop_front().unwrap();
            store
                .write(move |db| ledger::write_batch(db, first, &rows))
                .unwrap();
            committed.store(end, Ordering::Release);
        };
        let mut serial = 0u32;
        let sizes = [1usize, 3, 17, 2, 40, 1, 8, 64, 5, 33, 1, 1, 16, 7, 100, 2];
        for (round, &len) in sizes.iter().enumerate() {
            let now_ms = 1_790_000_000_000 + round as i64;
            let leaves: Vec<Vec<u8>> = (0..len)
                .map(|_| {
                    serial += 1;
                    format!(
                        "{{\"leaf\":{serial},\"pad\":\"{}\"}}",
                        "x".repeat(serial as usize % 50)
                    )
                    .into_bytes()
                })
                .collect();
            let first_index = inline.tree.size();
            let mut sealing = Sealing {
                first_index,
                now_ms,
                rows: Vec::new(),
                leaves: leaves
                    .iter()
                    .zip(first_index..)
                    .map(|(bytes, index)| PendingLeaf::Bytes {
                        bytes: bytes.clone(),
                        readers: vec![index % 3],
                    })
                    .collect(),
                completions: Vec::new(),
                events: Vec::new(),
            };
            let (end, head) = sealer.seal(&mut sealing).unwrap();
            let (rows, expected) = inline.seal(&store, committed.load(Ordering::Acquire), now_ms, &leaves);
            assert_eq!(end, first_index + len as u64);
            assert_eq!(head.note, expected.note, "batch {round}");
            assert_eq!(head.checkpoint, expected.checkpoint, "batch {round}");
            assert_eq!(
                format!("{:?}", sealing.rows),
                format!("{rows:?}"),
                "batch {round}"
            );
            assert_eq!(
                format!("{:?}", head.batch_nodes),
                format!("{:?}", expected.batch_nodes)
            );
            for bytes in &leaves {
                all.apply(&full_tree.append(bytes).unwrap());
            }
            for index in first_index..end {
                let proof = inclusion_proof(&head.batch_nodes, index, end).unwrap();
                assert_eq!(proof, inclusion_proof(&all, index, end).unwrap(), "entry {index}");
                let leaf = deconflict_audit::leaf_hash(&leaves[(index - first_index) as usize]);
                verify_inclusion(&leaf, index, end, &proof, &head.checkpoint.root_hash).unwrap();
                // The workers' receipt: the head's shared paths over its nodes.
                let receipt = Receipt::build_with(
                    &head.paths,
                    &head.batch_nodes,
                    index,
                    &head.checkpoint,
                    head.note.clone(),
                )
                .unwrap();
                assert_eq!(
                    receipt,
                    Receipt::build(&all, index, &head.checkpoint, head.note.clone()).unwrap(),
                    "entry {index}"
                );
            }
            pending.push_back((first_index, sealing.rows, end));
            match round % 4 {
                // Commits lag two batches behind, then catch up.
                0 | 1 => {}
                _ => {
                    while !pending.is_empty() {
                        commit(&mut pending);
                    }
                }
            }
            if round == 9 {
                // The batch sealed last fails to commit: both paths start
                // over from the store, as the driver's rebuild does.
                while pending.len() > 1 {
                    commit(&mut pending);
                }
                pending.clear();
                let SealState { tree, signer } = rebuilt(&store, &key);
                inline = Inline {
                    tree,
                    signer,
                    overlay: BTreeMap::new(),
                };
                sealer.reset(rebuilt(&store, &key));
                (full_tree, all) = (Tree::new(), MemoryStore::new());
                let stored: Vec<Vec<u8>> = store
                    .read(|db| {
                        db.query_map(
                            "SELECT leaf FROM log_leaves ORDER BY idx",
                            deconflict_store::params![],
                            |r| r.get_blob(0),
                        )
                    })
                    .unwrap();
                for bytes in &stored {
                    all.apply(&full_tree.append(bytes).unwrap());
                }
                assert_eq!(full_tree, inline.tree);
            }
        }
        // A batch that does not start where the tree ends is refused, and
        // so is every batch after it until a reset.
        let size = inline.tree.size();
        let mut stray = Sealing {
            first_index: size + 1,
            now_ms: 0,
            rows: Vec::new(),
            leaves: vec![PendingLeaf::Bytes {
                bytes: b"stray".to_vec(),
                readers: vec![0],
            }],
            completions: Vec::new(),
            events: Vec::new(),
        };
        assert!(sealer.seal(&mut stray).is_err());
        sealer.broken = true; // as `Sealer::run` marks it
        stray.first_index = size;
        assert!(sealer.seal(&mut stray).is_err());
        while !pending.is_empty() {
            commit(&mut pending);
        }
        sealer.reset(rebuilt(&store, &key));
        assert_eq!(sealer.seal(&mut stray).unwrap().0, size + 1);
    }

    /// The spliced activity leaf is byte for byte the leaf LeafEvent
    /// encodes, for Features whose numbers and strings JCS rewrites.
    #[test]
    fn activity_leaf_bytes_equal_the_encoded_leaf() {
        let features = [
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [5000.0, -0.0]},
                   "properties": {"kind": "site", "radius_m": 1e21, "sharing": "full", "name": "é\u{1F600}\"\\<\n"}}),
            json!({"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[13.1, 52.5], [13.123456789012345, 52.6]]},
                   "properties": {"z": null, "a": [1, 2.5e-7, true], "client_id": "x-1", "\u{e9}": 1}}),
            json!({}),
        ];
        for feature in &features {
            let canonical = deconflict_audit::canonical_json(feature).unwrap();
            for (kind, at_ms, id, party, version) in [
                ("activity.notified", 1_790_000_000_123_i64, 1_u64, 7_u64, 1_u64),
                ("activity.updated", -5, (1 << 53) - 1, 0, 12),
            ] {
                let payload = json!({"activity": id, "party": party, "version": version, "feature": feature});
                let spliced = activity_leaf_bytes(kind, at_ms, id, party, version, &canonical).unwrap();
                crate::jcs::assert_same_leaf(spliced, kind, at_ms, &payload);
            }
        }
        assert!(activity_leaf_bytes("activity.notified", 0, 1 << 53, 1, 1, b"{}").is_err());
        assert!(activity_leaf_bytes("a\"b", 0, 1, 1, 1, b"{}").is_err());
    }

    /// Each leaf the driver hands over unencoded becomes, in the sealer,
    /// the bytes `LeafEvent::encode` gives its payload (the payload the
    /// driver's leaf functions replaced) and its readers: an activity's by
    /// sharing, a conflict's parties, an acknowledgement record's parties
    /// as `leaf_of` names them.
    #[test]
    fn pending_leaves_encode_as_their_payloads() {
        use deconflict_engine::{TimeWindow, ZoneId};
        use deconflict_geodesy::LonLat;
        use deconflict_hotline::{ConflictAck, ConflictId, ConflictParty, Record};
        let at_ms = 1_790_000_000_123_i64;
        let feature = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.5, -0.0]},
                             "properties": {"sharing": "full", "name": "é\"x"}});
        let canonical = deconflict_audit::canonical_json(&feature).unwrap();
        for (sharing, readers) in [(Sharing::Full, vec![0]), (Sharing::NeedToKnow, vec![7])] {
            for (kind, version) in [("activity.notified", 1), ("activity.updated", 4)] {
                let (bytes, got) = PendingLeaf::Activity {
                    kind,
                    id: ActivityId(12),
                    party: PartyId(7),
                    version,
                    sharing,
                    feature_canonical: canonical.clone(),
                }
                .encode(at_ms)
                .unwrap();
                let payload = json!({"activity": 12, "party": 7, "version": version, "feature": feature});
                crate::jcs::assert_same_leaf(bytes, kind, at_ms, &payload);
                assert_eq!(got, readers);
            }
        }
        let finding = Finding {
            window: TimeWindow::new(Timestamp(at_ms), Some(Timestamp(at_ms + 60_000))),
            location: LonLat::new(13.25, 52.5),
            min_distance_m: 12.5,
            required_m: 1e21,
        };
        let mut records = vec![
            unsaved(
                Subject::Pair([ActivityId(3), ActivityId(9)]),
                [PartyId(2), PartyId(5)],
                finding,
                at_ms,
            ),
            unsaved(
                Subject::Zone {
                    activity: ActivityId(4),
                    zone: ZoneId(1),
                },
                [PartyId(6), PartyId(6)],
                finding,
                at_ms,
            ),
        ];
        records[1].state = ConflictState::Resolved;
        records[1].resolution = Some("resolved_by_party_6".into());
        records[1].acked_ms = [Some(at_ms - 1), None];
        for (record, kind) in records.into_iter().zip(["conflict.opened", "conflict.resolved"]) {
            let payload = crate::model::conflict_leaf_payload(&record);
            let parties = vec![record.parties[0].0, record.parties[1].0];
            let (bytes, got) = PendingLeaf::Conflict { kind, record }.encode(at_ms).unwrap();
            crate::jcs::assert_same_leaf(bytes, kind, at_ms, &payload);
            assert_eq!(got, parties);
        }
        let ack = ConflictAck {
            conflict: ConflictId(40),
            required_at: Timestamp(at_ms),
            deadline: Timestamp(at_ms + 300_000),
            parties: vec![
                ConflictParty {
                    party: PartyId(2),
                    acked_at: None,
                    overdue_at: None,
                },
                ConflictParty {
                    party: PartyId(5),
                    acked_at: Some(Timestamp(at_ms)),
                    overdue_at: None,
                },
            ],
            deadline_fired: false,
        };
        let (kind, payload, readers) =
            crate::hotline::leaf_of(&Record::ConflictAck(ack.clone()), None, Timestamp(at_ms));
        let (bytes, got) = PendingLeaf::ConflictAck(ack).encode(at_ms).unwrap();
        crate::jcs::assert_same_leaf(bytes, kind, at_ms, &payload);
        assert_eq!(got, readers);
        let (bytes, got) = PendingLeaf::Bytes {
            bytes: b"{}".to_vec(),
            readers: vec![3],
        }
        .encode(at_ms)
        .unwrap();
        assert_eq!((bytes, got), (b"{}".to_vec(), vec![3]));
    }

    /// `nodes` holds exactly the starting frontier and the rows' nodes: every
    /// id of a tree up to twice `size` (and beyond its levels) looked up as
    /// in one sorted list of them all.
    fn assert_same_nodes(nodes: &BatchNodes, start_tree: &Tree, rows: &[Row], size: u64) {
        let mut all: Vec<(NodeId, Hash)> = Tree::frontier_ids(start_tree.size())
            .into_iter()
            .zip(start_tree.frontier().iter().copied())
            .chain(rows.iter().filter_map(|row| match row {
                Row::Node { id, hash } => Some((*id, *hash)),
                _ => None,
            }))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all.dedup_by_key(|(id, _)| *id);
        let mut ids = Vec::new();
        for level in 0..9u8 {
            for index in 0..=((2 * size) >> level) + 1 {
                ids.push(NodeId::new(level, index));
            }
        }
        ids.push(NodeId::new(0, u64::MAX));
        ids.push(NodeId::new(63, u64::MAX));
        let Ok(got) = nodes.node_hashes(&ids);
        for (id, got) in ids.iter().zip(got) {
            let want = all
                .binary_search_by_key(id, |(node, _)| *node)
                .ok()
                .map(|at| all[at].1);
            assert_eq!(got, want, "node {id}");
        }
    }

    /// For batches of every size from every starting size (and a few
    /// batches of larger trees), the batch's own nodes give each of its
    /// entries the same proof as the full store, also through the head's
    /// shared paths (the receipts' way), and the same consistency proof
    /// from the batch's start.
    #[test]
    fn batch_nodes_prove_every_entry_of_their_batch() {
        let small = (0..40u64).flat_map(|start| (1..40u64).map(move |len| (start, len)));
        let large = [255u64, 1_000, 4_097, 12_345]
            .into_iter()
            .flat_map(|start| [1u64, 2, 7, 31, 64, 333].map(|len| (start, len)));
        for (start, len) in small.chain(large) {
            let (mut tree, mut all) = (Tree::new(), MemoryStore::new());
            let mut rows = Vec::new();
            let mut start_tree = tree.clone();
            for i in 0..start + len {
                if i == start {
                    start_tree = tree.clone();
                }
                let appended = tree.append(&i.to_be_bytes()).unwrap();
                all.apply(&appended);
                if i >= start {
                    rows.extend(appended.nodes.iter().map(|&(id, hash)| Row::Node { id, hash }));
                }
            }
            let ours = BatchNodes::new(&start_tree, &rows);
            assert_same_nodes(&ours, &start_tree, &rows, start + len);
            // Rows in another order (runs broken, nodes repeated) hold
            // the same nodes.
            let mut shuffled = rows.clone();
            shuffled.reverse();
            shuffled.extend(rows.iter().step_by(3).cloned());
            assert_same_nodes(
                &BatchNodes::new(&start_tree, &shuffled),
                &start_tree,
                &rows,
                start + len,
            );
            // The signer's proof from the batch's start needs nothing
            // else either (run_batch reads the store only as a fallback).
            assert_eq!(
                consistency_proof(&ours, start, start + len).unwrap(),
                consistency_proof(&all, start, start + len).unwrap(),
                "consistency {start}..{}",
                start + len
            );
            let paths = InclusionPaths::of_tree(&tree);
            for index in start..start + len {
                let proof = inclusion_proof(&all, index, start + len).unwrap();
                assert_eq!(
                    inclusion_proof(&ours, index, start + len).unwrap(),
                    proof,
                    "entry {index} of the batch {start}..{}",
                    start + len
                );
                assert_eq!(
                    paths.prove(&ours, index).unwrap(),
                    proof,
                    "entry {index} of the batch {start}..{}, shared paths",
                    start + len
                );
            }
        }
    }
}
