//! Persistence: the rows one batch writes, loading the state at start, and
//! the read queries. Every SQL statement of the service is here, written
//! once for both backends in the portable subset `deconflict_store::Db`
//! documents (numbered parameters, 64-bit integers, typed NULL checks).

use deconflict_audit::{Hash, HashReader, NodeId};
use deconflict_engine::{ActivityId, PartyId, ZoneId};
use deconflict_geodesy::GeoBounds;
use deconflict_store::{params, Db, Row as DbRow, StoreError, Value as SqlValue};
use serde_json::Value;
use std::collections::HashMap;

use crate::model::{finding_from_json, finding_to_json, ConflictRecord, ConflictState, Subject, Viewer};

/// One row change of a batch. A batch is written in one transaction, in
/// order, together with its log leaves, nodes and checkpoint.
#[derive(Debug, Clone)]
pub enum Row {
    Party {
        id: PartyId,
        name: String,
        kind: &'static str,
        token_hash: [u8; 32],
        at_ms: i64,
    },
    Activity(ActivityRow),
    ActivityCancel {
        id: ActivityId,
        version: u64,
        at_ms: i64,
    },
    Zone {
        id: ZoneId,
        party: PartyId,
        kind: &'static str,
        feature: String,
        at_ms: i64,
    },
    Conflict(ConflictRecord),
    Leaf {
        index: u64,
        bytes: Vec<u8>,
        hash: Hash,
        /// Parties that may read it in full; 0 is everyone.
        readers: Vec<u64>,
    },
    Node {
        id: NodeId,
        hash: Hash,
    },
    Checkpoint {
        size: u64,
        note: String,
        at_ms: i64,
    },
    /// A hotline record's row (issue 5).
    Hotline(crate::hotline::store::HotlineRow),
}

/// An activity's new version (its first or a later one).
#[derive(Debug, Clone)]
pub struct ActivityRow {
    pub id: ActivityId,
    pub party: PartyId,
    pub version: u64,
    pub feature: String,
    pub at_ms: i64,
    pub sharing: &'static str,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub bounds: GeoBounds,
}

fn sql_u64(value: u64) -> i64 {
    // Ids, versions and indexes are allocated from 1 (or 0) upwards one by
    // one; they never approach 2^63.
    value as i64
}

/// Writes a batch. Its first statement moves the one-row log head from
/// `first_index` (the size the batch was built on) to the batch's end: a
/// compare-and-swap. It refuses (rolling back) with
/// [`StoreError::LostRace`] unless the log in the database ends exactly
/// where the batch's first leaf goes: the tree the driver appended to must
/// be the tree on disk, so a batch built on top of one that failed can
/// never commit, and when several `serve` processes share the database
/// only one of two batches built on the same log commits; the other node
/// catches up and redoes its commands (see `crate::multinode`). Swapping
/// first takes the head row's lock at once, so the loser waits for the
/// winner's commit and then fails the swap rather than writing rows for
/// nothing.
pub fn write_batch(db: &mut Db<'_>, first_index: u64, rows: &[Row]) -> Result<(), StoreError> {
    let leaves = rows.iter().filter(|row| matches!(row, Row::Leaf { .. })).count() as u64;
    let swapped = db.execute(
        "UPDATE log_head SET size = ?2 WHERE id = 1 AND size = ?1",
        params![sql_u64(first_index), sql_u64(first_index + leaves)],
    )?;
    if swapped != 1 {
        let stored = db.query_one("SELECT size FROM log_head WHERE id = 1", params![], |r| {
            r.get_i64(0)
        })?;
        return Err(StoreError::LostRace(format!(
            "the log on disk has {stored} entries, the batch starts at {first_index}"
        )));
    }
    // Leaves and nodes reference nothing and are never written twice, so
    // they go last, several rows per statement; the other rows keep their
    // order (a conflict's upserts, a party before its activities).
    let mut leaves = Vec::new();
    let mut nodes = Vec::new();
    // Activity versions reference their activity's row, written in order
    // below, and nothing references them: they go after the other rows,
    // several per statement too. `None`: a cancellation.
    let mut versions: Vec<(i64, i64, Option<&str>, i64)> = Vec::new();
    // Conflict and hotline rows reference only rows written in the loop
    // (parties, activities, zones) and nothing references them: they go
    // after it, several per statement (see [`write_conflicts`]).
    let mut conflicts: Vec<&ConflictRecord> = Vec::new();
    let mut hotline: Vec<&crate::hotline::store::HotlineRow> = Vec::new();
    for row in rows {
        match row {
            Row::Activity(a) => {
                write_row(db, row)?;
                versions.push((
                    sql_u64(a.id.0),
                    sql_u64(a.version),
                    Some(a.feature.as_str()),
                    a.at_ms,
                ));
            }
            Row::ActivityCancel { id, version, at_ms } => {
                write_row(db, row)?;
                versions.push((sql_u64(id.0), sql_u64(*version), None, *at_ms));
            }
            Row::Leaf {
                index,
                bytes,
                hash,
                readers,
            } => leaves.push((
                sql_u64(*index),
                bytes.as_slice(),
                &hash.0[..],
                readers_text(readers),
            )),
            // A low node is recomputed from its leaves when read (see
            // [`STORED_NODE_MIN_LEVEL`]); the batch still carries it for
            // the receipts built from memory.
            Row::Node { id, .. } if id.level < STORED_NODE_MIN_LEVEL => {}
            Row::Node { id, hash } => nodes.push((i64::from(id.level), sql_u64(id.index), &hash.0[..])),
            Row::Conflict(c) => conflicts.push(c),
            Row::Hotline(h) => hotline.push(h),
            _ => write_row(db, row)?,
        }
    }
    write_conflicts(db, &conflicts)?;
    crate::hotline::store::write_many(db, &hotline)?;
    insert_many(db, &VERSION_INSERT, &versions, |(id, version, feature, at_ms)| {
        [
            SqlValue::Int(*id),
            SqlValue::Int(*version),
            feature.map_or(SqlValue::Null, SqlValue::Text),
            SqlValue::Int(*at_ms),
        ]
    })?;
    insert_many(db, &LEAF_INSERT, &leaves, |(index, bytes, hash, readers)| {
        [
            SqlValue::Int(*index),
            SqlValue::Blob(bytes),
            SqlValue::Blob(hash),
            SqlValue::Text(readers),
        ]
    })?;
    insert_many(db, &NODE_INSERT, &nodes, |(level, index, hash)| {
        [SqlValue::Int(*level), SqlValue::Int(*index), SqlValue::Blob(hash)]
    })?;
    Ok(())
}

/// Who may read a leaf in full, as `log_leaves.readers` holds it (migration
/// 7): party ids joined by commas, `0` for everyone, empty for brokers only.
pub fn readers_text(readers: &[u64]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(readers.len() * 4);
    for (i, party) in readers.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        // Writing into a String cannot fail.
        let _ = write!(text, "{party}");
    }
    text
}

/// An `INSERT … VALUES (…), (…), …` statement for each chunk size
/// [`INSERT_CHUNKS`] names, made once. Fewer statement executions per batch:
/// SQLite steps one statement per chunk instead of one per row, and
/// PostgreSQL takes one round trip.
pub(crate) struct MultiInsert {
    head: &'static str,
    /// What follows the rows (an `ON CONFLICT` clause), or "".
    tail: &'static str,
    columns: usize,
    statements: std::sync::OnceLock<Vec<String>>,
}

/// Rows per statement, largest first: a batch's rows are cut greedily, so
/// at most `INSERT_CHUNKS.len()` distinct statements are prepared (and
/// cached) per table.
const INSERT_CHUNKS: [usize; 4] = [64, 16, 4, 1];

impl MultiInsert {
    const fn new(head: &'static str, columns: usize) -> Self {
        Self::with_tail(head, "", columns)
    }

    pub(crate) const fn with_tail(head: &'static str, tail: &'static str, columns: usize) -> Self {
        Self {
            head,
            tail,
            columns,
            statements: std::sync::OnceLock::new(),
        }
    }

    fn sql(&self, chunk: usize) -> &str {
        let statements = self.statements.get_or_init(|| {
            INSERT_CHUNKS
                .iter()
                .map(|&rows| {
                    let mut sql = String::from(self.head);
                    sql.push_str(" VALUES ");
                    for row in 0..rows {
                        if row > 0 {
                            sql.push_str(", ");
                        }
                        sql.push('(');
                        for column in 0..self.columns {
                            if column > 0 {
                                sql.push_str(", ");
                            }
                            sql.push_str(&format!("?{}", row * self.columns + column + 1));
                        }
                        sql.push(')');
                    }
                    sql.push_str(self.tail);
                    sql
                })
                .collect()
        });
        let position = INSERT_CHUNKS.iter().position(|&rows| rows == chunk).unwrap_or(0);
        &statements[position]
    }
}

static LEAF_INSERT: MultiInsert =
    MultiInsert::new("INSERT INTO log_leaves (idx, leaf, leaf_hash, readers)", 4);
static VERSION_INSERT: MultiInsert = MultiInsert::new(
    "INSERT INTO activity_versions (activity_id, version, feature, at_ms)",
    4,
);
static NODE_INSERT: MultiInsert = MultiInsert::new("INSERT INTO log_nodes (level, idx, hash)", 3);

/// Inserts `items` with `insert`'s statements, `values` giving each item's
/// column values in order.
pub(crate) fn insert_many<T, const N: usize>(
    db: &mut Db<'_>,
    insert: &MultiInsert,
    items: &[T],
    values: impl for<'v> Fn(&'v T) -> [SqlValue<'v>; N],
) -> Result<(), StoreError> {
    debug_assert_eq!(insert.columns, N);
    let mut rest = items;
    let mut params: Vec<SqlValue<'_>> = Vec::with_capacity(INSERT_CHUNKS[0] * N);
    while !rest.is_empty() {
        let chunk = INSERT_CHUNKS
            .iter()
            .copied()
            .find(|&rows| rows <= rest.len())
            .unwrap_or(1);
        let (now, later) = rest.split_at(chunk);
        params.clear();
        for item in now {
            params.extend(values(item));
        }
        db.execute(insert.sql(chunk), &params)?;
        rest = later;
    }
    Ok(())
}

fn write_row(db: &mut Db<'_>, row: &Row) -> Result<(), StoreError> {
    match row {
        Row::Party {
            id,
            name,
            kind,
            token_hash,
            at_ms,
        } => {
            db.execute(
                "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sql_u64(id.0), name, kind, &token_hash[..], *at_ms],
            )?;
        }
        Row::Activity(a) => {
            let b = &a.bounds;
            if a.version == 1 {
                db.execute(
                    "INSERT INTO activities (id, party_id, version, created_at_ms, updated_at_ms, \
                     sharing, start_ms, end_ms, west_deg, south_deg, east_deg, north_deg) \
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        sql_u64(a.id.0),
                        sql_u64(a.party.0),
                        sql_u64(a.version),
                        a.at_ms,
                        a.sharing,
                        a.start_ms,
                        a.end_ms,
                        b.west_deg,
                        b.south_deg,
                        b.east_deg,
                        b.north_deg
                    ],
                )?;
            } else {
                db.execute(
                    "UPDATE activities SET version = ?2, updated_at_ms = ?3, sharing = ?4, \
                     start_ms = ?5, end_ms = ?6, west_deg = ?7, south_deg = ?8, east_deg = ?9, north_deg = ?10 \
                     WHERE id = ?1",
                    params![
                        sql_u64(a.id.0),
                        sql_u64(a.version),
                        a.at_ms,
                        a.sharing,
                        a.start_ms,
                        a.end_ms,
                        b.west_deg,
                        b.south_deg,
                        b.east_deg,
                        b.north_deg
                    ],
                )?;
            }
            // Its version row (which holds the Feature text, migration 9)
            // is inserted by `write_batch` with the others.
        }
        Row::ActivityCancel { id, version, at_ms } => {
            db.execute(
                "UPDATE activities SET cancelled_at_ms = ?2, version = ?3 WHERE id = ?1",
                params![sql_u64(id.0), *at_ms, sql_u64(*version)],
            )?;
            // A cancellation is a version with no feature, inserted by
            // `write_batch` with the others.
        }
        Row::Zone {
            id,
            party,
            kind,
            feature,
            at_ms,
        } => {
            db.execute(
                "INSERT INTO zones (id, party_id, kind, feature, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sql_u64(id.0), sql_u64(party.0), kind, feature, *at_ms],
            )?;
        }
        // Written by `write_batch`, several per statement.
        Row::Conflict(_) | Row::Hotline(_) | Row::Leaf { .. } | Row::Node { .. } => {}
        Row::Checkpoint { size, note, at_ms } => {
            db.execute(
                "INSERT INTO log_checkpoints (size, note, at_ms) VALUES (?1, ?2, ?3)",
                params![sql_u64(*size), note, *at_ms],
            )?;
        }
    }
    Ok(())
}

/// A conflict's upsert, one statement per table and chunk size (prepared
/// once per connection): `VALUES` of up to [`INSERT_CHUNKS`]`[0]` rows,
/// then the update of an existing row by id.
macro_rules! conflict_upsert {
    ($table:literal, $col_a:literal, $col_b:literal) => {
        MultiInsert::with_tail(
            concat!(
                "INSERT INTO ",
                $table,
                " (id, ",
                $col_a,
                ", ",
                $col_b,
                ", party_a, party_b, state, finding, opened_at_ms, updated_at_ms, \
                 acked_a_at_ms, acked_b_at_ms, resolved_at_ms, resolution)"
            ),
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state, finding = excluded.finding, \
             updated_at_ms = excluded.updated_at_ms, acked_a_at_ms = excluded.acked_a_at_ms, \
             acked_b_at_ms = excluded.acked_b_at_ms, resolved_at_ms = excluded.resolved_at_ms, \
             resolution = excluded.resolution",
            13,
        )
    };
}
static PAIR_CONFLICT_UPSERT: MultiInsert = conflict_upsert!("conflicts", "activity_a", "activity_b");
static ZONE_CONFLICT_UPSERT: MultiInsert = conflict_upsert!("zone_conflicts", "activity_id", "zone_id");

/// The stored finding's JSON, the same text as
/// `model::finding_to_json(..).to_string()` (members in the same, sorted,
/// order; tested) serialized straight from the fields instead of through a
/// `Value` map per conflict.
#[derive(serde::Serialize)]
struct StoredFinding {
    end_ms: Option<i64>,
    lat_deg: f64,
    lon_deg: f64,
    min_distance_m: f64,
    required_m: f64,
    start_ms: i64,
}

fn finding_text(finding: &deconflict_engine::Finding) -> String {
    let stored = StoredFinding {
        end_ms: finding.window.end.map(|end| end.unix_ms()),
        lat_deg: finding.location.lat_deg,
        lon_deg: finding.location.lon_deg,
        min_distance_m: finding.min_distance_m,
        required_m: finding.required_m,
        start_ms: finding.window.start.unix_ms(),
    };
    // Serializing plain numbers cannot fail.
    serde_json::to_string(&stored).unwrap_or_else(|_| finding_to_json(finding).to_string())
}

/// Writes a batch's conflict records: each conflict's last record of the
/// batch, several per statement.
///
/// The same rows as one upsert per record in order: an upsert changes only
/// `state`, `finding`, the times and `resolution` of an existing row, and
/// the other columns (sides, parties, opening time) never change for an
/// id, so the last record of an id is what its row ends as. PostgreSQL
/// refuses a statement that touches one row twice, hence one record per
/// id. Ids are written in the order they first appear: the unique index
/// of live pairs (at most one live conflict per pair) then holds at every
/// row, as it did record by record, since a pair's new conflict is opened
/// only after its previous one was resolved, whose id appeared before.
fn write_conflicts(db: &mut Db<'_>, records: &[&ConflictRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut pairs: Vec<(&ConflictRecord, String)> = Vec::with_capacity(records.len());
    let mut zones: Vec<(&ConflictRecord, String)> = Vec::new();
    // Where a (kind, id)'s record sits in `pairs` or `zones`.
    let mut slots: HashMap<(bool, u64), usize> = HashMap::with_capacity(records.len());
    for &record in records {
        let zone = matches!(record.subject, Subject::Zone { .. });
        let list = if zone { &mut zones } else { &mut pairs };
        let entry = (record, finding_text(&record.finding));
        match slots.entry((zone, record.id)) {
            std::collections::hash_map::Entry::Occupied(slot) => list[*slot.get()] = entry,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(list.len());
                list.push(entry);
            }
        }
    }
    for (insert, list) in [(&PAIR_CONFLICT_UPSERT, &pairs), (&ZONE_CONFLICT_UPSERT, &zones)] {
        insert_many(db, insert, list, |(c, finding)| {
            let (a, b) = match c.subject {
                Subject::Pair([a, b]) => (a.0, b.0),
                Subject::Zone { activity, zone } => (activity.0, zone.0),
            };
            [
                SqlValue::Int(sql_u64(c.id)),
                SqlValue::Int(sql_u64(a)),
                SqlValue::Int(sql_u64(b)),
                SqlValue::Int(sql_u64(c.parties[0].0)),
                SqlValue::Int(sql_u64(c.parties[1].0)),
                SqlValue::Text(c.state.as_str()),
                SqlValue::Text(finding),
                SqlValue::Int(c.opened_at_ms),
                SqlValue::Int(c.updated_at_ms),
                opt_int(c.acked_ms[0]),
                opt_int(c.acked_ms[1]),
                opt_int(c.resolved_at_ms),
                c.resolution.as_deref().map_or(SqlValue::Null, SqlValue::Text),
            ]
        })?;
    }
    Ok(())
}

pub(crate) fn opt_int(value: Option<i64>) -> SqlValue<'static> {
    value.map_or(SqlValue::Null, SqlValue::Int)
}

/// Tree nodes below this level are not stored: a proof recomputes one from
/// its at most `2^(STORED_NODE_MIN_LEVEL - 1)` leaf hashes in `log_leaves`
/// (one range read), so an append writes ~`2^(1 - STORED_NODE_MIN_LEVEL)`
/// node rows instead of ~2 (level 0 was a copy of the leaf hash). Rows of
/// lower levels written before this change are left in place and unused.
pub const STORED_NODE_MIN_LEVEL: u8 = 4;

/// Reads node hashes for proofs and the signer: stored rows from level
/// [`STORED_NODE_MIN_LEVEL`] up, lower ones folded from their leaf hashes.
/// (`HashReader` takes `&self`; a database connection reads through
/// `&mut`.)
#[derive(Debug)]
pub struct NodeReader<'d, 'c>(std::cell::RefCell<&'d mut Db<'c>>);

impl<'d, 'c> NodeReader<'d, 'c> {
    pub fn new(db: &'d mut Db<'c>) -> Self {
        NodeReader(std::cell::RefCell::new(db))
    }
}

impl HashReader for NodeReader<'_, '_> {
    type Error = StoreError;

    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error> {
        let mut db = self.0.borrow_mut();
        ids.iter()
            .map(|id| {
                if id.level < STORED_NODE_MIN_LEVEL {
                    return low_node_hash(&mut db, *id);
                }
                let blob = db.query_opt(
                    "SELECT hash FROM log_nodes WHERE level = ?1 AND idx = ?2",
                    params![id.level, sql_u64(id.index)],
                    |r| r.get_blob(0),
                )?;
                Ok(blob.and_then(|b| Hash::from_slice(&b).ok()))
            })
            .collect()
    }
}

/// The hash of the perfect subtree `id` (below
/// [`STORED_NODE_MIN_LEVEL`]) folded from its stored leaf hashes; `None`
/// when one of its leaves is missing (the node is not complete) or a stored
/// leaf hash is malformed.
fn low_node_hash(db: &mut Db<'_>, id: NodeId) -> Result<Option<Hash>, StoreError> {
    let width = 1u64 << id.level;
    let first = id.index.saturating_mul(width);
    let mut level: Vec<Hash> = Vec::with_capacity(width as usize);
    let mut malformed = false;
    db.query_each(
        "SELECT leaf_hash FROM log_leaves WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        params![sql_u64(first), sql_u64(first.saturating_add(width))],
        |row| {
            match Hash::from_slice(&row.get_blob(0)?) {
                Ok(hash) => level.push(hash),
                Err(_) => malformed = true,
            }
            Ok(!malformed)
        },
    )?;
    if malformed || level.len() as u64 != width {
        return Ok(None);
    }
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| deconflict_audit::node_hash(&pair[0], &pair[1]))
            .collect();
    }
    Ok(level.pop())
}

/// A stored party.
#[derive(Debug, Clone)]
pub struct PartyRow {
    pub id: PartyId,
    pub name: String,
    pub kind: String,
    pub token_hash: [u8; 32],
    /// The party's latest token revocation (Unix ms): its TAK certificates
    /// issued up to then are refused. The party stays (its data, and a
    /// token rotated afterwards, still work).
    pub revoked_at_ms: Option<i64>,
}

/// A stored, live activity.
#[derive(Debug, Clone)]
pub struct StoredActivity {
    pub id: ActivityId,
    pub party: PartyId,
    pub version: u64,
    pub sharing: String,
    pub feature: Value,
    pub end_ms: Option<i64>,
}

/// Everything the driver rebuilds its state from.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub parties: Vec<PartyRow>,
    /// Not cancelled and not ended at `now`.
    pub activities: Vec<StoredActivity>,
    pub zones: Vec<(ZoneId, PartyId, Value)>,
    /// Open or acknowledged, of both kinds.
    pub live_conflicts: Vec<ConflictRecord>,
    pub max_activity_id: u64,
    pub max_zone_id: u64,
    pub max_conflict_id: u64,
    pub log_size: u64,
    pub last_checkpoint: Option<String>,
}

fn get_u64(row: &DbRow<'_>, i: usize) -> Result<u64, StoreError> {
    row.get_u64(i)
}

fn parse_json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Rejected(format!("stored JSON does not parse: {e}")))
}

/// Replaces party `id`'s token digest (rotation or revocation); false when
/// there is no such party.
pub fn set_token_hash(db: &mut Db<'_>, id: PartyId, token_hash: [u8; 32]) -> Result<bool, StoreError> {
    let changed = db.execute(
        "UPDATE parties SET token_hash = ?1 WHERE id = ?2",
        params![&token_hash[..], sql_u64(id.0)],
    )?;
    Ok(changed == 1)
}

/// Revokes party `id`'s token: stores the digest of a token nobody holds
/// and the revocation's time (which refuses its TAK certificates issued
/// until then). False when no such party exists.
pub fn revoke_token(
    db: &mut Db<'_>,
    id: PartyId,
    token_hash: [u8; 32],
    at_ms: i64,
) -> Result<bool, StoreError> {
    let changed = db.execute(
        "UPDATE parties SET token_hash = ?1, revoked_at_ms = ?2 WHERE id = ?3",
        params![&token_hash[..], at_ms, sql_u64(id.0)],
    )?;
    Ok(changed == 1)
}

/// Every party, revoked ones included (a revoked party keeps its data and
/// comes back when the admin rotates it a new token).
pub fn parties(db: &mut Db<'_>) -> Result<Vec<PartyRow>, StoreError> {
    db.query_map(
        "SELECT id, name, kind, token_hash, revoked_at_ms FROM parties ORDER BY id",
        params![],
        |row| {
            Ok(PartyRow {
                id: PartyId(get_u64(row, 0)?),
                name: row.get_text(1)?,
                kind: row.get_text(2)?,
                token_hash: row
                    .get_blob(3)?
                    .try_into()
                    .map_err(|_| StoreError::Rejected("a stored token hash is not 32 bytes".into()))?,
                revoked_at_ms: row.get_opt_i64(4)?,
            })
        },
    )
}

fn max_id(db: &mut Db<'_>, sql: &str) -> Result<u64, StoreError> {
    db.query_one(sql, params![], |r| get_u64(r, 0))
}

pub fn load(db: &mut Db<'_>, now_ms: i64) -> Result<Snapshot, StoreError> {
    let mut snap = Snapshot {
        parties: parties(db)?,
        ..Snapshot::default()
    };
    snap.activities = db.query_map(
        "SELECT a.id, a.party_id, a.version, a.sharing, v.feature, a.end_ms FROM activities a \
         JOIN activity_versions v ON v.activity_id = a.id AND v.version = a.version \
         WHERE a.cancelled_at_ms IS NULL AND (a.end_ms IS NULL OR a.end_ms > ?1) ORDER BY a.id",
        params![now_ms],
        |row| {
            Ok(StoredActivity {
                id: ActivityId(get_u64(row, 0)?),
                party: PartyId(get_u64(row, 1)?),
                version: get_u64(row, 2)?,
                sharing: row.get_text(3)?,
                feature: parse_json(&row.get_text(4)?)?,
                end_ms: row.get_opt_i64(5)?,
            })
        },
    )?;
    snap.zones = db.query_map(
        "SELECT id, party_id, feature FROM zones WHERE cancelled_at_ms IS NULL ORDER BY id",
        params![],
        |row| {
            Ok((
                ZoneId(get_u64(row, 0)?),
                PartyId(get_u64(row, 1)?),
                parse_json(&row.get_text(2)?)?,
            ))
        },
    )?;
    let live = "WHERE c.state != 'resolved'";
    snap.live_conflicts = read_conflict_rows(db, [live, live], params![])?
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    snap.max_activity_id = max_id(db, "SELECT COALESCE(MAX(id), 0) FROM activities")?;
    snap.max_zone_id = max_id(db, "SELECT COALESCE(MAX(id), 0) FROM zones")?;
    // The two kinds share one id sequence.
    snap.max_conflict_id = max_id(db, "SELECT COALESCE(MAX(id), 0) FROM conflicts")?
        .max(max_id(db, "SELECT COALESCE(MAX(id), 0) FROM zone_conflicts")?);
    snap.log_size = max_id(db, "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves")?;
    snap.last_checkpoint = latest_checkpoint(db)?;
    Ok(snap)
}

/// Conflicts of both kinds matching `filters` (WHERE clauses over alias
/// `c`: the first for pairs of activities, the second for zone conflicts,
/// with the same arguments), each with whether its sides are shared in
/// full.
pub fn read_conflict_rows(
    db: &mut Db<'_>,
    filters: [&str; 2],
    args: &[SqlValue<'_>],
) -> Result<Vec<(ConflictRecord, [bool; 2])>, StoreError> {
    let mut out = Vec::new();
    for (zone, filter) in [(false, filters[0]), (true, filters[1])] {
        let sql = if zone {
            format!(
                "SELECT c.id, c.activity_id, c.zone_id, c.party_a, c.party_b, c.state, c.finding, c.opened_at_ms, \
                 c.updated_at_ms, c.acked_a_at_ms, c.acked_b_at_ms, c.resolved_at_ms, c.resolution, \
                 a.sharing = 'full', TRUE \
                 FROM zone_conflicts c JOIN activities a ON a.id = c.activity_id {filter} ORDER BY c.id"
            )
        } else {
            format!(
                "SELECT c.id, c.activity_a, c.activity_b, c.party_a, c.party_b, c.state, c.finding, c.opened_at_ms, \
                 c.updated_at_ms, c.acked_a_at_ms, c.acked_b_at_ms, c.resolved_at_ms, c.resolution, \
                 a.sharing = 'full', b.sharing = 'full' \
                 FROM conflicts c JOIN activities a ON a.id = c.activity_a JOIN activities b ON b.id = c.activity_b \
                 {filter} ORDER BY c.id"
            )
        };
        let rows = db.query_map(&sql, args, |row| {
            let (x, y) = (get_u64(row, 1)?, get_u64(row, 2)?);
            let subject = if zone {
                Subject::Zone {
                    activity: ActivityId(x),
                    zone: ZoneId(y),
                }
            } else {
                Subject::Pair([ActivityId(x), ActivityId(y)])
            };
            let state = row.get_text(5)?;
            let finding = row.get_text(6)?;
            let record = ConflictRecord {
                id: get_u64(row, 0)?,
                subject,
                parties: [PartyId(get_u64(row, 3)?), PartyId(get_u64(row, 4)?)],
                finding: finding_from_json(&parse_json(&finding)?)
                    .ok_or_else(|| StoreError::Rejected("a stored finding is malformed".into()))?,
                state: ConflictState::parse(&state).ok_or_else(|| {
                    StoreError::Rejected(format!("unknown stored conflict state {state:?}"))
                })?,
                opened_at_ms: row.get_i64(7)?,
                updated_at_ms: row.get_i64(8)?,
                acked_ms: [row.get_opt_i64(9)?, row.get_opt_i64(10)?],
                resolved_at_ms: row.get_opt_i64(11)?,
                resolution: row.get_opt_text(12)?,
            };
            Ok((record, [row.get_bool(13)?, row.get_bool(14)?]))
        })?;
        out.extend(rows);
    }
    out.sort_by_key(|(c, _)| c.id);
    Ok(out)
}

/// The conflicts `viewer` may see, optionally in one state.
pub fn conflicts_for(
    db: &mut Db<'_>,
    viewer: &Viewer,
    state: Option<ConflictState>,
) -> Result<Vec<(ConflictRecord, [bool; 2])>, StoreError> {
    let party = sql_u64(viewer.party.0);
    let mut pair_clauses = Vec::new();
    let mut zone_clauses = Vec::new();
    let mut args: Vec<SqlValue<'_>> = Vec::new();
    if !viewer.broker {
        pair_clauses.push(PARTY_PAIR_CONFLICTS.to_owned());
        zone_clauses.push(PARTY_ZONE_CONFLICTS.to_owned());
        args.push(SqlValue::Int(party));
    }
    if let Some(state) = state {
        let clause = format!("c.state = ?{}", args.len() + 1);
        pair_clauses.push(clause.clone());
        zone_clauses.push(clause);
        args.push(SqlValue::Text(state.as_str()));
    }
    let filter = |clauses: Vec<String>| {
        if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        }
    };
    read_conflict_rows(db, [&filter(pair_clauses), &filter(zone_clauses)], &args)
}

/// Pair conflicts involving party `?1`, through the indexes keyed by id
/// block then party (migration 8, `deconflict_store::CONFLICT_ID_BLOCK`
/// ids per block, written out as `4096` here as in the indexes'
/// expression): one seek per block and side instead of a scan (`CROSS
/// JOIN` keeps SQLite from scanning the index and probing the blocks; on
/// PostgreSQL it is a plain join). The blocks
/// are counted from the largest id, so a list costs one seek per 4,096
/// conflicts ever opened plus the party's own rows.
const PARTY_PAIR_CONFLICTS: &str = "c.id IN (WITH RECURSIVE conflict_blocks (n) AS ( \
     SELECT 0 UNION ALL SELECT n + 1 FROM conflict_blocks \
     WHERE n < (SELECT COALESCE(MAX(id), 0) / 4096 FROM conflicts)) \
     SELECT x.id FROM conflict_blocks k CROSS JOIN conflicts x WHERE (x.id / 4096) = k.n AND x.party_a = ?1 \
     UNION ALL \
     SELECT x.id FROM conflict_blocks k CROSS JOIN conflicts x WHERE (x.id / 4096) = k.n AND x.party_b = ?1)";

/// Zone conflicts involving party `?1`, sought like
/// [`PARTY_PAIR_CONFLICTS`] through the zone table's indexes keyed by id
/// block then party (migration 10). Ids share one sequence with the pair
/// conflicts, so the blocks are counted to the zone table's largest id.
const PARTY_ZONE_CONFLICTS: &str = "c.id IN (WITH RECURSIVE conflict_blocks (n) AS ( \
     SELECT 0 UNION ALL SELECT n + 1 FROM conflict_blocks \
     WHERE n < (SELECT COALESCE(MAX(id), 0) / 4096 FROM zone_conflicts)) \
     SELECT x.id FROM conflict_blocks k CROSS JOIN zone_conflicts x WHERE (x.id / 4096) = k.n AND x.party_a = ?1 \
     UNION ALL \
     SELECT x.id FROM conflict_blocks k CROSS JOIN zone_conflicts x WHERE (x.id / 4096) = k.n AND x.party_b = ?1)";

/// One conflict by id (either kind).
pub fn conflict_by_id(db: &mut Db<'_>, id: u64) -> Result<Option<(ConflictRecord, [bool; 2])>, StoreError> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    Ok(
        read_conflict_rows(db, ["WHERE c.id = ?1", "WHERE c.id = ?1"], params![id])?
            .into_iter()
            .next(),
    )
}

/// A stored activity with what the service needs to answer for it.
#[derive(Debug, Clone)]
pub struct ActivityView {
    pub id: ActivityId,
    pub party: PartyId,
    pub version: u64,
    pub sharing: String,
    pub feature: Value,
}

impl ActivityView {
    pub fn visible_to(&self, viewer: &Viewer) -> bool {
        viewer.broker || viewer.party == self.party || self.sharing == "full"
    }

    /// The Feature as served: the stored one with its id, version and party.
    pub fn to_feature(&self) -> Value {
        let mut feature = self.feature.clone();
        if let Some(object) = feature.as_object_mut() {
            object.insert("id".into(), Value::from(self.id.0));
            if let Some(Value::Object(properties)) = object.get_mut("properties") {
                properties.insert("version".into(), Value::from(self.version));
                properties.insert("party".into(), Value::from(self.party.0));
            }
        }
        feature
    }
}

fn activity_view(row: &DbRow<'_>) -> Result<ActivityView, StoreError> {
    Ok(ActivityView {
        id: ActivityId(get_u64(row, 0)?),
        party: PartyId(get_u64(row, 1)?),
        version: get_u64(row, 2)?,
        sharing: row.get_text(3)?,
        feature: parse_json(&row.get_text(4)?)?,
    })
}

/// A live (not cancelled) activity.
pub fn activity(db: &mut Db<'_>, id: u64) -> Result<Option<ActivityView>, StoreError> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    db.query_opt(
        "SELECT a.id, a.party_id, a.version, a.sharing, v.feature FROM activities a \
         JOIN activity_versions v ON v.activity_id = a.id AND v.version = a.version \
         WHERE a.id = ?1 AND a.cancelled_at_ms IS NULL",
        params![id],
        activity_view,
    )
}

/// The filter of `GET /v1/activities`.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub bbox: Option<GeoBounds>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only ids above this (paging).
    pub after: u64,
    pub limit: usize,
}

/// Live activities `viewer` may see that meet the filter, by id.
pub fn list_activities(
    db: &mut Db<'_>,
    viewer: &Viewer,
    filter: &ActivityFilter,
) -> Result<Vec<ActivityView>, StoreError> {
    let (south, north) = filter
        .bbox
        .map_or((None, None), |b| (Some(b.south_deg), Some(b.north_deg)));
    let mut out = Vec::new();
    db.query_each(
        "SELECT a.id, a.party_id, a.version, a.sharing, v.feature, a.west_deg, a.south_deg, a.east_deg, a.north_deg \
         FROM activities a JOIN activity_versions v ON v.activity_id = a.id AND v.version = a.version \
         WHERE a.cancelled_at_ms IS NULL AND a.id > ?1 \
         AND (?2 OR a.party_id = ?3 OR a.sharing = 'full') \
         AND (CAST(?4 AS BIGINT) IS NULL OR a.end_ms IS NULL OR a.end_ms > ?4) \
         AND (CAST(?5 AS BIGINT) IS NULL OR a.start_ms < ?5) \
         AND (CAST(?6 AS DOUBLE PRECISION) IS NULL OR (a.south_deg <= ?7 AND a.north_deg >= ?6)) \
         ORDER BY a.id",
        params![
            sql_u64(filter.after),
            viewer.broker,
            sql_u64(viewer.party.0),
            filter.from_ms,
            filter.to_ms,
            south,
            north
        ],
        |row| {
            if out.len() >= filter.limit {
                return Ok(false);
            }
            if let Some(bbox) = &filter.bbox {
                // Longitude is checked here: boxes may cross the antimeridian.
                let own = GeoBounds {
                    west_deg: row.get_f64(5)?,
                    south_deg: row.get_f64(6)?,
                    east_deg: row.get_f64(7)?,
                    north_deg: row.get_f64(8)?,
                };
                if !own.intersects(bbox) {
                    return Ok(true);
                }
            }
            out.push(activity_view(row)?);
            Ok(true)
        },
    )?;
    Ok(out)
}

/// Zones, all visible to every party.
pub fn list_zones(db: &mut Db<'_>) -> Result<Vec<(ZoneId, PartyId, String, Value)>, StoreError> {
    db.query_map(
        "SELECT id, party_id, kind, feature FROM zones WHERE cancelled_at_ms IS NULL ORDER BY id",
        params![],
        |row| {
            Ok((
                ZoneId(get_u64(row, 0)?),
                PartyId(get_u64(row, 1)?),
                row.get_text(2)?,
                parse_json(&row.get_text(3)?)?,
            ))
        },
    )
}

/// A log entry as a reader may see it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: u64,
    pub leaf_hash: Hash,
    /// The exact leaf bytes, when the reader may see them.
    pub leaf: Option<Vec<u8>>,
}

/// Entries `[from, to)`: full leaves of those `viewer` may read, hashes of
/// the rest.
pub fn entries(db: &mut Db<'_>, viewer: &Viewer, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
    let reader_pattern = format!("%,{},%", viewer.party.0);
    db.query_map(
        // `readers` is a comma-separated list (migration 7): framed in
        // commas, a party is in it exactly when `,party,` occurs.
        "SELECT l.idx, l.leaf_hash, CASE WHEN ?3 OR (',' || l.readers || ',') LIKE '%,0,%' \
         OR (',' || l.readers || ',') LIKE ?4 THEN l.leaf END \
         FROM log_leaves l WHERE l.idx >= ?1 AND l.idx < ?2 ORDER BY l.idx",
        params![sql_u64(from), sql_u64(to), viewer.broker, &reader_pattern],
        |row| {
            Ok(Entry {
                index: get_u64(row, 0)?,
                leaf_hash: Hash::from_slice(&row.get_blob(1)?)
                    .map_err(|_| StoreError::Rejected("a stored leaf hash is malformed".into()))?,
                leaf: row.get_opt_blob(2)?,
            })
        },
    )
}

/// The latest signed checkpoint.
pub fn latest_checkpoint(db: &mut Db<'_>) -> Result<Option<String>, StoreError> {
    db.query_opt(
        "SELECT note FROM log_checkpoints ORDER BY size DESC LIMIT 1",
        params![],
        |r| r.get_text(0),
    )
}

/// Why the stored audit log cannot be served: its rows do not reproduce
/// the tree head the service signed last. The service then refuses to
/// start rather than sign a head inconsistent with one it already issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogDefect {
    #[error("leaf {expected} is missing (the next stored leaf is {found})")]
    MissingLeaf { expected: u64, found: u64 },
    #[error("leaf {index}: its bytes do not hash to its stored leaf hash")]
    LeafBytes { index: u64 },
    #[error("leaf {index}: its stored leaf hash is not 32 bytes")]
    MalformedLeafHash { index: u64 },
    #[error("{leaves} leaves are stored but no signed checkpoint")]
    NoCheckpoint { leaves: u64 },
    #[error("{leaves} leaves are stored but the latest signed checkpoint has {signed}")]
    SizeMismatch { leaves: u64, signed: u64 },
    #[error("the {size} stored leaves hash to another root than the latest signed checkpoint's")]
    RootMismatch { size: u64 },
    #[error("stored tree node {node} differs from the one rebuilt from the leaves")]
    NodeMismatch { node: NodeId },
}

/// Rebuilds the tree from every stored leaf (re-hashing each leaf's bytes)
/// and checks it against the latest signed head `signed`: same size, same
/// root, and stored nodes that agree with the leaves (the frontier the
/// driver appends to; nodes below [`STORED_NODE_MIN_LEVEL`] are read from
/// the leaves themselves). One pass over the leaves.
///
/// The outer error is the database's; the inner one names the defect.
pub fn rebuild_log(
    db: &mut Db<'_>,
    signed: Option<&deconflict_audit::Checkpoint>,
) -> Result<Result<deconflict_audit::Tree, LogDefect>, StoreError> {
    let mut tree = deconflict_audit::Tree::new();
    let mut defect = None;
    db.query_each(
        "SELECT idx, leaf, leaf_hash FROM log_leaves ORDER BY idx",
        params![],
        |row| {
            let index = get_u64(row, 0)?;
            if index != tree.size() {
                defect = Some(LogDefect::MissingLeaf {
                    expected: tree.size(),
                    found: index,
                });
                return Ok(false);
            }
            let bytes = row.get_blob(1)?;
            let Ok(stored) = Hash::from_slice(&row.get_blob(2)?) else {
                defect = Some(LogDefect::MalformedLeafHash { index });
                return Ok(false);
            };
            let appended = tree
                .append(&bytes)
                .map_err(|e| StoreError::Rejected(e.to_string()))?;
            if appended.leaf_hash != stored {
                defect = Some(LogDefect::LeafBytes { index });
                return Ok(false);
            }
            Ok(true)
        },
    )?;
    if let Some(defect) = defect {
        return Ok(Err(defect));
    }
    let leaves = tree.size();
    match signed {
        None if leaves > 0 => return Ok(Err(LogDefect::NoCheckpoint { leaves })),
        None => {}
        Some(head) if head.size != leaves => {
            return Ok(Err(LogDefect::SizeMismatch {
                leaves,
                signed: head.size,
            }))
        }
        Some(head) if head.root_hash != tree.root() => {
            return Ok(Err(LogDefect::RootMismatch { size: leaves }))
        }
        Some(_) => {}
    }
    // The leaves hold; now the nodes proofs are served from (those below
    // STORED_NODE_MIN_LEVEL are folded from the leaves just checked).
    let ids = deconflict_audit::Tree::frontier_ids(leaves);
    let stored = NodeReader::new(db).node_hashes(&ids)?;
    for ((id, stored), rebuilt) in ids.iter().zip(stored).zip(tree.frontier()) {
        if stored.as_ref() != Some(rebuilt) {
            return Ok(Err(LogDefect::NodeMismatch { node: *id }));
        }
    }
    Ok(Ok(tree))
}

/// One recorded version of an activity: its Feature as notified then
/// (`None`: the cancellation), and when it was recorded.
#[derive(Debug, Clone)]
pub struct ActivityVersion {
    pub id: ActivityId,
    pub party: PartyId,
    pub version: u64,
    pub at_ms: i64,
    pub feature: Option<Value>,
}

/// Every version recorded before `to_ms` (all, if `None`) of the
/// activities `viewer` may see, by activity then version, at most `limit`
/// (`None` when more match). Another party's version is shown only when the
/// activity is shared in full now and that version was too.
pub fn activity_versions(
    db: &mut Db<'_>,
    viewer: &Viewer,
    to_ms: Option<i64>,
    limit: usize,
) -> Result<Option<Vec<ActivityVersion>>, StoreError> {
    let mut out = Vec::new();
    let mut over_limit = false;
    db.query_each(
        "SELECT v.activity_id, a.party_id, v.version, v.at_ms, v.feature \
         FROM activity_versions v JOIN activities a ON a.id = v.activity_id \
         WHERE (?1 OR a.party_id = ?2 OR a.sharing = 'full') AND (CAST(?3 AS BIGINT) IS NULL OR v.at_ms < ?3) \
         ORDER BY v.activity_id, v.version",
        params![viewer.broker, sql_u64(viewer.party.0), to_ms],
        |row| {
            let party = PartyId(get_u64(row, 1)?);
            let feature = row.get_opt_text(4)?;
            let feature = feature.as_deref().map(parse_json).transpose()?;
            let own = viewer.broker || party == viewer.party;
            let shared_then = feature
                .as_ref()
                .is_none_or(|f| f.pointer("/properties/sharing").and_then(Value::as_str) == Some("full"));
            if !own && !shared_then {
                return Ok(true);
            }
            if out.len() == limit {
                over_limit = true;
                return Ok(false);
            }
            out.push(ActivityVersion {
                id: ActivityId(get_u64(row, 0)?),
                party,
                version: get_u64(row, 2)?,
                at_ms: row.get_i64(3)?,
                feature,
            });
            Ok(true)
        },
    )?;
    Ok((!over_limit).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deconflict_store::rusqlite::Connection;
    use std::collections::HashSet;

    const FINDING: &str =
        r#"{"start_ms":0,"end_ms":null,"min_distance_m":1.0,"required_m":2.0,"lon_deg":0.0,"lat_deg":0.0}"#;

    /// An in-memory database at the latest schema with parties 1–3 and pair
    /// conflicts `(id, party_a, party_b, state)`.
    fn database(conflicts: &[(u64, u64, u64, &str)]) -> Connection {
        database_at(deconflict_store::SQLITE_MIGRATIONS.len(), conflicts)
    }

    /// [`database`] at schema version `version`.
    fn database_at(version: usize, conflicts: &[(u64, u64, u64, &str)]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &deconflict_store::SQLITE_MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        for party in 1..=3 {
            conn.execute(
                "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) VALUES (?1, ?2, 'military', ?3, 0)",
                (party, format!("p{party}"), vec![party as u8]),
            )
            .unwrap();
        }
        for &(id, a, b, state) in conflicts {
            // Each conflict between two activities of its own, party_a's
            // and party_b's.
            let (activity_a, activity_b) = (2 * id as i64, 2 * id as i64 + 1);
            for (activity, party) in [(activity_a, a), (activity_b, b)] {
                conn.execute(
                    "INSERT INTO activities (id, party_id, version, created_at_ms, updated_at_ms) \
                     VALUES (?1, ?2, 1, 0, 0)",
                    (activity, party as i64),
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO conflicts (id, activity_a, activity_b, party_a, party_b, state, finding, \
                 opened_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0)",
                (
                    id as i64, activity_a, activity_b, a as i64, b as i64, state, FINDING,
                ),
            )
            .unwrap();
        }
        conn
    }

    fn ids(conn: &Connection, party: u64, broker: bool, state: Option<ConflictState>) -> Vec<u64> {
        let viewer = Viewer {
            party: PartyId(party),
            broker,
        };
        conflicts_for(&mut Db::sqlite(conn), &viewer, state)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c.id)
            .collect()
    }

    #[test]
    fn a_party_lists_its_pair_conflicts_in_every_id_block() {
        let block = deconflict_store::CONFLICT_ID_BLOCK;
        // Ids in the first block, on both sides of each block boundary, in
        // a block of its own far out, with each party on either side and a
        // party in conflict with itself.
        let conn = database(&[
            (1, 1, 2, "open"),
            (block - 1, 2, 1, "resolved"),
            (block, 1, 1, "acknowledged"),
            (block + 1, 2, 3, "open"),
            (2 * block, 3, 1, "open"),
            (9 * block + 17, 1, 3, "resolved"),
        ]);
        assert_eq!(
            ids(&conn, 1, false, None),
            [1, block - 1, block, 2 * block, 9 * block + 17]
        );
        assert_eq!(ids(&conn, 2, false, None), [1, block - 1, block + 1]);
        assert_eq!(ids(&conn, 3, false, None), [block + 1, 2 * block, 9 * block + 17]);
        assert_eq!(
            ids(&conn, 1, false, Some(ConflictState::Resolved)),
            [block - 1, 9 * block + 17]
        );
        assert_eq!(
            ids(&conn, 3, false, Some(ConflictState::Open)),
            [block + 1, 2 * block]
        );
        assert_eq!(ids(&conn, 2, true, None).len(), 6, "a broker sees every conflict");
        let empty = database(&[]);
        assert!(ids(&empty, 1, false, None).is_empty());
    }

    /// The rows conflict records left before they were written several per
    /// statement: one upsert per record, in order, with the statement
    /// `write_conflict` ran then.
    fn write_one_by_one(conn: &Connection, records: &[ConflictRecord]) {
        for c in records {
            let (table, a, b, x, y) = match c.subject {
                Subject::Pair([a, b]) => ("conflicts", "activity_a", "activity_b", a.0, b.0),
                Subject::Zone { activity, zone } => {
                    ("zone_conflicts", "activity_id", "zone_id", activity.0, zone.0)
                }
            };
            let sql = format!(
                "INSERT INTO {table} (id, {a}, {b}, party_a, party_b, state, finding, opened_at_ms, updated_at_ms, \
                 acked_a_at_ms, acked_b_at_ms, resolved_at_ms, resolution) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, finding = excluded.finding, \
                 updated_at_ms = excluded.updated_at_ms, acked_a_at_ms = excluded.acked_a_at_ms, \
                 acked_b_at_ms = excluded.acked_b_at_ms, resolved_at_ms = excluded.resolved_at_ms, \
                 resolution = excluded.resolution"
            );
            conn.execute(
                &sql,
                deconflict_store::rusqlite::params![
                    c.id as i64,
                    x as i64,
                    y as i64,
                    c.parties[0].0 as i64,
                    c.parties[1].0 as i64,
                    c.state.as_str(),
                    finding_to_json(&c.finding).to_string(),
                    c.opened_at_ms,
                    c.updated_at_ms,
                    c.acked_ms[0],
                    c.acked_ms[1],
                    c.resolved_at_ms,
                    c.resolution.as_deref(),
                ],
            )
            .unwrap();
        }
    }

    fn dump(conn: &Connection, table: &str) -> Vec<Vec<deconflict_store::rusqlite::types::Value>> {
        let mut statement = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
            .unwrap();
        let columns = statement.column_count();
        statement
            .query_map([], |row| (0..columns).map(|i| row.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Conflict records written several per statement, each id's last
    /// record once, leave the same rows as one upsert per record in order:
    /// random batches (up to 200 records, across the statements' chunk
    /// sizes) of opens, changes, acknowledgements and resolutions over a
    /// few pairs and zones, so that a batch often updates a conflict
    /// several times, resolves a pair and opens it again (the unique
    /// index of live pairs fails a wrong order), and updates rows of
    /// earlier batches.
    /// 40 random batches (up to 200 records each, across the statements'
    /// chunk sizes) of opens, changes, acknowledgements and resolutions over
    /// activities 1–8 (party `id % 3 + 1`) and zones 1–2 (party 1's), as the
    /// driver makes them: a batch often updates a conflict several times,
    /// resolves a pair and opens it again (the unique index of live pairs
    /// fails a wrong order), and updates rows of earlier batches.
    fn random_conflict_batches() -> Vec<Vec<ConflictRecord>> {
        use deconflict_engine::{Finding, TimeWindow, Timestamp};
        use deconflict_geodesy::LonLat;
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut draw = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let party = |activity: u64| PartyId(activity % 3 + 1);
        let mut live: HashMap<Subject, ConflictRecord> = HashMap::new();
        let mut next_id = 1;
        let mut batches = Vec::new();
        for batch in 0..40_i64 {
            let mut records = Vec::new();
            for step in 0..1 + draw(200) as i64 {
                let now = batch * 1_000 + step;
                let activity = ActivityId(1 + draw(8));
                let (subject, parties) = if draw(4) == 0 {
                    let zone = ZoneId(1 + draw(2));
                    (Subject::Zone { activity, zone }, [party(activity.0), PartyId(1)])
                } else {
                    let other = ActivityId(1 + draw(8));
                    if other == activity {
                        continue;
                    }
                    let pair = [activity.min(other), activity.max(other)];
                    (Subject::Pair(pair), [party(pair[0].0), party(pair[1].0)])
                };
                let finding = Finding {
                    window: TimeWindow::new(
                        Timestamp(now),
                        (draw(2) == 0).then_some(Timestamp(now + 60_000)),
                    ),
                    min_distance_m: draw(10_000) as f64 / 7.0,
                    required_m: 5_000.0,
                    location: LonLat::new(draw(360) as f64 - 180.0, draw(180) as f64 / 3.0 - 30.0),
                };
                let record = match live.remove(&subject) {
                    None => {
                        next_id += 1;
                        ConflictRecord {
                            id: next_id,
                            subject,
                            parties,
                            finding,
                            state: ConflictState::Open,
                            acked_ms: [None, None],
                            opened_at_ms: now,
                            updated_at_ms: now,
                            resolved_at_ms: None,
                            resolution: None,
                        }
                    }
                    Some(mut record) => {
                        record.updated_at_ms = now;
                        match draw(3) {
                            0 => {
                                record.finding = finding;
                                record.state = ConflictState::Open;
                                record.acked_ms = [None, None];
                            }
                            1 => {
                                record.acked_ms[draw(2) as usize] = Some(now);
                                record.state = ConflictState::Acknowledged;
                            }
                            _ => {
                                record.state = ConflictState::Resolved;
                                record.resolved_at_ms = Some(now);
                                record.resolution = Some("no_longer_conflicting".into());
                            }
                        }
                        record
                    }
                };
                if record.state != ConflictState::Resolved {
                    live.insert(subject, record.clone());
                }
                records.push(record);
            }
            batches.push(records);
        }
        batches
    }

    /// The parents conflict rows reference: activities 1–8 and zones 1–2.
    const CONFLICT_PARENTS: &str =
        "INSERT INTO activities (id, party_id, version, created_at_ms, updated_at_ms) \
        VALUES (1, 2, 1, 0, 0), (2, 3, 1, 0, 0), (3, 1, 1, 0, 0), (4, 2, 1, 0, 0), (5, 3, 1, 0, 0), \
        (6, 1, 1, 0, 0), (7, 2, 1, 0, 0), (8, 3, 1, 0, 0); \
        INSERT INTO zones (id, party_id, kind, feature, created_at_ms) \
        VALUES (1, 1, 'exclusion', '{}', 0), (2, 1, 'exclusion', '{}', 0);";

    /// Conflict records written several per statement, each id's last
    /// record once, leave the same rows as one upsert per record in order,
    /// over [`random_conflict_batches`].
    #[test]
    fn conflicts_written_several_per_statement_end_as_one_upsert_per_record() {
        let [fast, slow] = [database(&[]), database(&[])];
        for conn in [&fast, &slow] {
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            conn.execute_batch(CONFLICT_PARENTS).unwrap();
        }
        let mut shapes = [0_usize; 3];
        for (batch, records) in random_conflict_batches().iter().enumerate() {
            let ids: HashSet<u64> = records.iter().map(|r| r.id).collect();
            shapes[0] += usize::from(ids.len() < records.len());
            shapes[1] += usize::from(records.len() > INSERT_CHUNKS[0]);
            shapes[2] += usize::from(records.iter().enumerate().any(|(i, r)| {
                r.state == ConflictState::Resolved
                    && records[i..]
                        .iter()
                        .any(|later| later.subject == r.subject && later.id != r.id)
            }));
            write_conflicts(&mut Db::sqlite(&fast), &records.iter().collect::<Vec<_>>()).unwrap();
            write_one_by_one(&slow, records);
            for table in ["conflicts", "zone_conflicts"] {
                assert_eq!(
                    dump(&fast, table),
                    dump(&slow, table),
                    "{table} after batch {batch}"
                );
            }
        }
        assert!(shapes.iter().all(|&n| n > 5), "the batches' shapes: {shapes:?}");
        assert!(dump(&fast, "zone_conflicts").len() > 10);
    }

    /// The same on PostgreSQL (which refuses a statement touching a row
    /// twice, and checks the live-pair index row by row): the conflicts it
    /// reads back after each batch are those of SQLite written one record
    /// at a time. Skipped without a test server.
    #[test]
    fn on_postgres_conflicts_written_several_per_statement_end_as_one_upsert_per_record() {
        let Some(admin) =
            deconflict_store::testing::test_database_url_or_skip("multi-row conflict upserts on PostgreSQL")
        else {
            return;
        };
        let url = deconflict_store::testing::create_test_database(&admin, "ledger_conflict_upserts").unwrap();
        let store = deconflict_store::Store::open_database(
            &deconflict_store::Database::Postgres(url),
            deconflict_store::StoreConfig::default(),
        )
        .unwrap();
        store
            .write(|db| {
                db.execute_batch(
                    "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) VALUES \
                     (1, 'p1', 'military', '\\x01', 0), (2, 'p2', 'military', '\\x02', 0), \
                     (3, 'p3', 'military', '\\x03', 0)",
                )?;
                db.execute_batch(CONFLICT_PARENTS)
            })
            .unwrap();
        let slow = database(&[]);
        slow.execute_batch(CONFLICT_PARENTS).unwrap();
        let everything = |db: &mut Db<'_>| read_conflict_rows(db, ["", ""], &[]);
        for (batch, records) in random_conflict_batches().into_iter().enumerate() {
            write_one_by_one(&slow, &records);
            store
                .write(move |db| write_conflicts(db, &records.iter().collect::<Vec<_>>()))
                .unwrap();
            let expected = everything(&mut Db::sqlite(&slow)).unwrap();
            assert_eq!(store.read(everything).unwrap(), expected, "after batch {batch}");
        }
    }

    /// Adds zone conflicts `(id, party_a, party_b, state)`, each of an
    /// activity of its own (party_a's) with zone 1 (party_b's).
    fn add_zone_conflicts(conn: &Connection, conflicts: &[(u64, u64, u64, &str)]) {
        for &(id, a, b, state) in conflicts {
            let zone = 1_000_000 + id as i64;
            let activity = 3 * id as i64 + 1_000_000;
            conn.execute(
                "INSERT INTO zones (id, party_id, kind, feature, created_at_ms) VALUES (?1, ?2, 'exclusion', '{}', 0)",
                (zone, b as i64),
            )
            .unwrap();
            conn.execute(
                "INSERT INTO activities (id, party_id, version, created_at_ms, updated_at_ms) VALUES (?1, ?2, 1, 0, 0)",
                (activity, a as i64),
            )
            .unwrap();
            conn.execute(
                "INSERT INTO zone_conflicts (id, activity_id, zone_id, party_a, party_b, state, finding, \
                 opened_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0)",
                (id as i64, activity, zone, a as i64, b as i64, state, FINDING),
            )
            .unwrap();
        }
    }

    /// Zone conflicts in the first block, on both sides of block
    /// boundaries and far out, with each party on either side (and one
    /// with itself), among pair conflicts whose ids interleave (one
    /// sequence).
    const ZONE_CONFLICTS: [(u64, u64, u64, &str); 6] = [
        (2, 2, 1, "open"),
        (4_095, 1, 3, "acknowledged"),
        (4_096, 3, 3, "open"),
        (4_097, 1, 2, "resolved"),
        (8_192, 2, 3, "open"),
        (11 * 4_096 + 5, 3, 1, "resolved"),
    ];

    #[test]
    fn a_party_lists_its_zone_conflicts_in_every_id_block() {
        let conn = database(&[(1, 1, 2, "open"), (4_098, 2, 3, "open")]);
        add_zone_conflicts(&conn, &ZONE_CONFLICTS);
        assert_eq!(ids(&conn, 1, false, None), [1, 2, 4_095, 4_097, 11 * 4_096 + 5]);
        assert_eq!(ids(&conn, 2, false, None), [1, 2, 4_097, 4_098, 8_192]);
        assert_eq!(
            ids(&conn, 3, false, None),
            [4_095, 4_096, 4_098, 8_192, 11 * 4_096 + 5]
        );
        assert_eq!(
            ids(&conn, 3, false, Some(ConflictState::Open)),
            [4_096, 4_098, 8_192]
        );
        assert_eq!(
            ids(&conn, 1, false, Some(ConflictState::Resolved)),
            [4_097, 11 * 4_096 + 5]
        );
        assert_eq!(ids(&conn, 2, true, None).len(), 8, "a broker sees every conflict");
        assert_party_list_seeks_block_indexes(&conn, "zone_conflicts", PARTY_ZONE_CONFLICTS);
    }

    /// A database written before migration 10 lists every party's
    /// conflicts (each state, and a broker's) the same before it upgrades
    /// (the queries then scan) and after.
    #[test]
    fn a_version_9_database_upgrades_and_lists_the_same_conflicts() {
        let conn = database_at(9, &[(1, 1, 2, "open"), (4_098, 2, 3, "resolved")]);
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        add_zone_conflicts(&conn, &ZONE_CONFLICTS);
        let lists = |conn: &Connection| {
            let mut all = Vec::new();
            for party in 1..=3 {
                for broker in [false, true] {
                    for state in [None, Some(ConflictState::Open), Some(ConflictState::Resolved)] {
                        let viewer = Viewer {
                            party: PartyId(party),
                            broker,
                        };
                        let listed: Vec<(u64, [bool; 2], ConflictState, [PartyId; 2])> =
                            conflicts_for(&mut Db::sqlite(conn), &viewer, state)
                                .unwrap()
                                .into_iter()
                                .map(|(c, full)| (c.id, full, c.state, c.parties))
                                .collect();
                        all.push(listed);
                    }
                }
            }
            all
        };
        let before = lists(&conn);
        assert!(before.iter().map(Vec::len).sum::<usize>() > 20);
        conn.execute_batch(deconflict_store::SQLITE_MIGRATIONS[9])
            .unwrap();
        assert_eq!(lists(&conn), before);
    }

    #[test]
    fn the_stored_finding_text_is_the_models_json() {
        use deconflict_engine::{Finding, TimeWindow, Timestamp};
        use deconflict_geodesy::LonLat;
        for (end, distance) in [
            (None, 0.0),
            (Some(1_795_538_916_704), 123.456_789_012_345),
            (Some(-5), 1e-7),
        ] {
            let finding = Finding {
                window: TimeWindow::new(Timestamp(1_795_538_000_000), end.map(Timestamp)),
                min_distance_m: distance,
                required_m: 5_000.5,
                location: LonLat::new(-179.999_999_999_9, 0.1 + 0.2),
            };
            assert_eq!(finding_text(&finding), finding_to_json(&finding).to_string());
        }
    }

    #[test]
    fn a_party_list_seeks_the_block_indexes_instead_of_scanning_conflicts() {
        let conn = database(&[(1, 1, 2, "open")]);
        assert_party_list_seeks_block_indexes(&conn, "conflicts", PARTY_PAIR_CONFLICTS);
    }

    /// SQLite's plan for party 1's list of `table` (filtered by `party_filter`)
    /// seeks both of its `{table}_block_party_*` indexes and scans no conflict
    /// table: a list costs the party's rows, not the table's.
    fn assert_party_list_seeks_block_indexes(conn: &Connection, table: &str, party_filter: &str) {
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT c.id FROM {table} c WHERE {party_filter}"
            ))
            .unwrap()
            .query_map([1], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for side in ["a", "b"] {
            let index = format!("{table}_block_party_{side}");
            assert!(
                plan.iter()
                    .any(|step| step.contains(&index) && step.contains("party_")),
                "{index} not used: {plan:#?}"
            );
        }
        assert!(
            !plan.iter().any(|step| {
                let scanned = step.strip_prefix("SCAN ").and_then(|rest| rest.split(' ').next());
                matches!(scanned, Some(name) if name == "c" || name == "x" || name == table)
            }),
            "a scan of {table}: {plan:#?}"
        );
    }
}
