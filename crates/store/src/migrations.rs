//! Versioned schema migrations, one list per backend with the same version
//! numbers: `SQLITE_MIGRATIONS[i]` and `POSTGRES_MIGRATIONS[i]` both take
//! the schema from version `i` to `i + 1`, to the same tables and columns in
//! each database's types (`INTEGER`/`BLOB`/`REAL` on SQLite, `BIGINT`/
//! `BYTEA`/`DOUBLE PRECISION` on PostgreSQL). SQLite keeps the version in
//! `user_version`, PostgreSQL in the one-row table `schema_version`. Each
//! migration runs in its own transaction with the version bump, so a crash
//! leaves the schema at one version or the next, never between.

use crate::db::Db;
use crate::{params, Backend, StoreError};

/// Migration 4 on both backends, incident evidence (issue 5): one row per capture (its window, the
/// radius it used, whether it is closed) and the positions it kept. Plain
/// types that mean the same in SQLite and PostgreSQL; booleans as 0/1.
const INCIDENT_EVIDENCE: &str = r#"
    CREATE TABLE incident_evidence (
        incident_id BIGINT NOT NULL PRIMARY KEY,
        from_ms BIGINT NOT NULL,
        to_ms BIGINT NOT NULL,
        radius_m DOUBLE PRECISION NOT NULL,
        complete SMALLINT NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
        -- 1 when --incident-evidence-max-points cut the capture short.
        truncated SMALLINT NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
        started_at_ms BIGINT NOT NULL,
        completed_at_ms BIGINT
    );
    CREATE TABLE incident_evidence_points (
        incident_id BIGINT NOT NULL REFERENCES incident_evidence (incident_id),
        party_id BIGINT NOT NULL,
        uid TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        lon_deg DOUBLE PRECISION NOT NULL,
        lat_deg DOUBLE PRECISION NOT NULL,
        alt_m DOUBLE PRECISION,
        speed_mps DOUBLE PRECISION,
        course_deg DOUBLE PRECISION,
        PRIMARY KEY (incident_id, party_id, uid, time_ms)
    );
    "#;

/// Migration 5 on both backends, the log head (issue 8 part 2): one row
/// holding the audit log's size, which every batch's transaction moves
/// from the size it was built on to its own end with a compare-and-swap
/// (`UPDATE … WHERE size = ?`). Two `serve` processes on one database
/// cannot both append at the same index: the second swap finds 0 rows (or
/// PostgreSQL fails it with `40001`) and that node catches up and redoes
/// its batch. Starts at the stored log's size.
const LOG_HEAD: &str = r#"
    CREATE TABLE log_head (
        id BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
        size BIGINT NOT NULL CHECK (size >= 0)
    );
    INSERT INTO log_head (id, size) SELECT 1, COALESCE(MAX(idx) + 1, 0) FROM log_leaves;
    "#;

/// Migration 6 on both backends: the hotline's two indexes on
/// `(kind, party_from)` and `(kind, party_to)` took an entry for every
/// record, although only messages and incidents name a party there and the
/// bulk of the records (one per opened conflict, its acknowledgement
/// deadline) have NULL in both. Queries used either index only for its
/// `kind` prefix. One partial index over the records that name a party
/// replaces both: two index entries fewer per opened conflict. Queries that
/// use it say `party_from IS NOT NULL` (true of every message and incident),
/// which is how SQLite and PostgreSQL know the partial index applies.
const HOTLINE_PARTIAL_INDEX: &str = r#"
    DROP INDEX hotline_records_from;
    DROP INDEX hotline_records_to;
    CREATE INDEX hotline_records_named ON hotline_records (kind, party_from) WHERE party_from IS NOT NULL;
    "#;

/// Migration 7 on SQLite (issue 3, fewer B-tree inserts per write): who may
/// read a log entry in full becomes a column of the entry
/// (`log_leaves.readers`: party ids joined by commas, `0` for everyone,
/// empty for brokers only) instead of one `log_leaf_readers` row per reader,
/// which took two or three inserts (and a foreign-key lookup each) per leaf;
/// existing rows are copied into the column and the table goes. The two
/// activity indexes no query uses go too (`activities_party`,
/// `activities_live_window`: every read filters by id or scans, checked
/// with `EXPLAIN QUERY PLAN`), each a random insert per notification. And
/// `hotline_records` becomes a `WITHOUT ROWID` table keyed by its record key
/// (`conflict/7`): one B-tree instead of a rowid table plus the key's index.
/// The unique index of live pairs is rebuilt as `(activity_b, activity_a)`:
/// the same constraint, but `activity_b` is the pair's newer activity, as a
/// rule the one just notified, so a new conflict's entry goes at the end of
/// the index instead of into a random page of it (every page a commit
/// touches is written to the WAL whole).
const SQLITE_LEAF_READERS_INLINE: &str = r#"
    ALTER TABLE log_leaves ADD COLUMN readers TEXT NOT NULL DEFAULT '';
    UPDATE log_leaves SET readers = COALESCE(
        (SELECT group_concat(party_id, ',') FROM log_leaf_readers r WHERE r.idx = log_leaves.idx), '');
    DROP TABLE log_leaf_readers;
    DROP INDEX activities_party;
    DROP INDEX activities_live_window;
    DROP INDEX conflicts_live_pair;
    CREATE UNIQUE INDEX conflicts_live_pair ON conflicts (activity_b, activity_a) WHERE state != 'resolved';
    CREATE TABLE hotline_records_keyed (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('party', 'message', 'conflict', 'escalation', 'incident')),
        party_from INTEGER,
        party_to INTEGER,
        record TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO hotline_records_keyed (key, kind, party_from, party_to, record, updated_at_ms)
        SELECT key, kind, party_from, party_to, record, updated_at_ms FROM hotline_records;
    DROP TABLE hotline_records;
    ALTER TABLE hotline_records_keyed RENAME TO hotline_records;
    CREATE INDEX hotline_records_named ON hotline_records (kind, party_from) WHERE party_from IS NOT NULL;
    "#;

/// Migration 7 on PostgreSQL: the same readers column, dropped indexes and
/// live-pair index as [`SQLITE_LEAF_READERS_INLINE`] (a heap table has no `WITHOUT ROWID`;
/// `hotline_records` stays as it is).
const POSTGRES_LEAF_READERS_INLINE: &str = r#"
    ALTER TABLE log_leaves ADD COLUMN readers TEXT NOT NULL DEFAULT '';
    UPDATE log_leaves SET readers = COALESCE(
        (SELECT string_agg(CAST(party_id AS TEXT), ',') FROM log_leaf_readers r WHERE r.idx = log_leaves.idx), '');
    DROP TABLE log_leaf_readers;
    DROP INDEX activities_party;
    DROP INDEX activities_live_window;
    DROP INDEX conflicts_live_pair;
    CREATE UNIQUE INDEX conflicts_live_pair ON conflicts (activity_b, activity_a) WHERE state != 'resolved';
    "#;

/// Migration 8 on both backends (issue 3): the per-party conflict indexes
/// `(party_a, state)` and `(party_b, state)` took two inserts per opened
/// conflict at random places (a party's entries sit together, and parties
/// conflict in any order), so each batch's commit dirtied pages all over
/// both indexes and wrote each one whole to the WAL; and `state` in them
/// moved both entries at every acknowledgement and resolution. They are
/// replaced by indexes keyed by the conflict id's block of
/// [`CONFLICT_ID_BLOCK`] ids first, then the party: ids are allocated in
/// order, so a batch's new entries land in the last block's few pages. A
/// per-party list seeks `(block, party)` once per block (the server's
/// `ledger::conflicts_for`, `WITH RECURSIVE` over the blocks) and filters
/// `state` on the row. The divisor is written out in the index expression
/// and must match the queries' (a test checks the plan uses the index).
const CONFLICT_PARTY_BLOCK_INDEXES: &str = r#"
    DROP INDEX conflicts_party_a;
    DROP INDEX conflicts_party_b;
    CREATE INDEX conflicts_block_party_a ON conflicts ((id / 4096), party_a);
    CREATE INDEX conflicts_block_party_b ON conflicts ((id / 4096), party_b);
    "#;

/// Conflict ids per block of [`CONFLICT_PARTY_BLOCK_INDEXES`]' keys: a
/// per-party list seeks each block once (100 blocks at 400k conflicts), and
/// a batch's new entries spread over the last block's entries only (~4,096
/// entries of ~12 bytes: a dozen pages per index).
pub const CONFLICT_ID_BLOCK: u64 = 4096;

/// Migration 9 on both backends (issue 3): an activity's Feature text was
/// written twice per notification, in `activities.feature` and in its
/// `activity_versions` row (and a third time inside its audit leaf, which
/// must stay: a leaf is proven and served byte for byte). The current
/// version's text is now read from `activity_versions` by `(id, version)`
/// (its primary key), and the column goes: ~0.5 KB less per notification
/// in the table, the WAL and the checkpoint. Every version has been
/// recorded since migration 1; should a row lack its current version's
/// record all the same, it is copied in first, so that no Feature is lost.
const ACTIVITY_FEATURE_IN_VERSIONS: &str = r#"
    INSERT INTO activity_versions (activity_id, version, feature, at_ms)
        SELECT a.id, a.version, a.feature, a.updated_at_ms FROM activities a
        WHERE NOT EXISTS (SELECT 1 FROM activity_versions v WHERE v.activity_id = a.id AND v.version = a.version);
    ALTER TABLE activities DROP COLUMN feature;
    "#;

/// Migration 10 on both backends (issue 3): the zone conflicts' per-party
/// indexes keyed like the pair conflicts' of migration 8, by the id's
/// block of [`CONFLICT_ID_BLOCK`] ids first, then the party: a batch's new
/// entries land in the last block's pages instead of at random places of
/// `(party, state)`, and `state` no longer moves both entries at every
/// acknowledgement and resolution. The server's `ledger::conflicts_for`
/// seeks `(block, party)` per block for both kinds.
const ZONE_CONFLICT_PARTY_BLOCK_INDEXES: &str = r#"
    DROP INDEX zone_conflicts_party_a;
    DROP INDEX zone_conflicts_party_b;
    CREATE INDEX zone_conflicts_block_party_a ON zone_conflicts ((id / 4096), party_a);
    CREATE INDEX zone_conflicts_block_party_b ON zone_conflicts ((id / 4096), party_b);
    "#;

/// SQLite's migrations, in order; `SQLITE_MIGRATIONS[i]` takes the schema from version
/// `i` to `i + 1`. Never edit a released migration: add one.
pub const SQLITE_MIGRATIONS: &[&str] = &[
    // 1: parties, activities with their history, zones, conflicts, the audit log.
    r#"
    CREATE TABLE parties (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('military', 'humanitarian', 'civil', 'broker')),
        -- SHA-256 of the bearer token: a stolen database yields no token.
        token_hash BLOB NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER
    );

    CREATE TABLE activities (
        id INTEGER PRIMARY KEY,
        party_id INTEGER NOT NULL REFERENCES parties (id),
        version INTEGER NOT NULL CHECK (version >= 1),
        -- The accepted GeoJSON Feature, as the service normalised it.
        feature TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        cancelled_at_ms INTEGER
    );
    CREATE INDEX activities_party ON activities (party_id);

    -- Every version ever notified: the timeline replays the day from here.
    CREATE TABLE activity_versions (
        activity_id INTEGER NOT NULL REFERENCES activities (id),
        version INTEGER NOT NULL,
        feature TEXT,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (activity_id, version)
    ) WITHOUT ROWID;

    CREATE TABLE zones (
        id INTEGER PRIMARY KEY,
        party_id INTEGER NOT NULL REFERENCES parties (id),
        kind TEXT NOT NULL CHECK (kind IN ('exclusion', 'demarcation', 'protected')),
        feature TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        cancelled_at_ms INTEGER
    );

    CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        activity_a INTEGER NOT NULL,
        activity_b INTEGER NOT NULL CHECK (activity_a < activity_b),
        party_a INTEGER NOT NULL REFERENCES parties (id),
        party_b INTEGER NOT NULL REFERENCES parties (id),
        state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
        -- The engine's finding (window, distance, required, location) as JSON.
        finding TEXT NOT NULL,
        opened_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        acked_a_at_ms INTEGER,
        acked_b_at_ms INTEGER,
        resolved_at_ms INTEGER,
        resolution TEXT
    );
    -- At most one live conflict per pair; a resolved pair may conflict again.
    CREATE UNIQUE INDEX conflicts_live_pair ON conflicts (activity_a, activity_b) WHERE state != 'resolved';
    CREATE INDEX conflicts_party_a ON conflicts (party_a, state);
    CREATE INDEX conflicts_party_b ON conflicts (party_b, state);

    -- The audit log: leaves in order, completed subtree hashes, signed heads.
    CREATE TABLE log_leaves (
        idx INTEGER PRIMARY KEY,
        leaf BLOB NOT NULL,
        leaf_hash BLOB NOT NULL
    );
    CREATE TABLE log_nodes (
        level INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;
    CREATE TABLE log_checkpoints (
        size INTEGER PRIMARY KEY,
        note TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    "#,
    // 2: what the service filters and redacts by without parsing features,
    // conflicts with zones, and which parties may read each log entry.
    r#"
    ALTER TABLE activities ADD COLUMN sharing TEXT NOT NULL DEFAULT 'need_to_know'
        CHECK (sharing IN ('need_to_know', 'full'));
    ALTER TABLE activities ADD COLUMN start_ms INTEGER NOT NULL DEFAULT 0;
    -- NULL: open-ended (a site).
    ALTER TABLE activities ADD COLUMN end_ms INTEGER;
    -- The footprint's box; west > east when it crosses the antimeridian.
    ALTER TABLE activities ADD COLUMN west_deg REAL NOT NULL DEFAULT -180;
    ALTER TABLE activities ADD COLUMN south_deg REAL NOT NULL DEFAULT -90;
    ALTER TABLE activities ADD COLUMN east_deg REAL NOT NULL DEFAULT 180;
    ALTER TABLE activities ADD COLUMN north_deg REAL NOT NULL DEFAULT 90;
    CREATE INDEX activities_live_window ON activities (start_ms, end_ms) WHERE cancelled_at_ms IS NULL;

    -- A conflict between an activity and a zone. Ids share one sequence
    -- with `conflicts` (the service allocates them), so an id names one
    -- conflict of either kind.
    CREATE TABLE zone_conflicts (
        id INTEGER PRIMARY KEY,
        activity_id INTEGER NOT NULL REFERENCES activities (id),
        zone_id INTEGER NOT NULL REFERENCES zones (id),
        -- The activity's party, then the zone's owner.
        party_a INTEGER NOT NULL REFERENCES parties (id),
        party_b INTEGER NOT NULL REFERENCES parties (id),
        state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
        finding TEXT NOT NULL,
        opened_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        acked_a_at_ms INTEGER,
        acked_b_at_ms INTEGER,
        resolved_at_ms INTEGER,
        resolution TEXT
    );
    CREATE UNIQUE INDEX zone_conflicts_live_pair ON zone_conflicts (activity_id, zone_id) WHERE state != 'resolved';
    CREATE INDEX zone_conflicts_party_a ON zone_conflicts (party_a, state);
    CREATE INDEX zone_conflicts_party_b ON zone_conflicts (party_b, state);

    -- Who may read each log entry in full: party 0 is everyone (zones,
    -- which are shared in full). Brokers read everything.
    CREATE TABLE log_leaf_readers (
        idx INTEGER NOT NULL REFERENCES log_leaves (idx),
        party_id INTEGER NOT NULL,
        PRIMARY KEY (idx, party_id)
    ) WITHOUT ROWID;
    "#,
    // 3: the hotline (issue 5): one row per hotline record key (`message/5`,
    // `conflict/3`, `escalation/message/5`, `incident/7`, `party/2`), the
    // record as JSON, written in the transaction of its audit leaf. The
    // parties are copied out of the JSON so that lists filter in SQL.
    r#"
    CREATE TABLE hotline_records (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('party', 'message', 'conflict', 'escalation', 'incident')),
        -- message: sender and recipient; incident: reporter; otherwise NULL.
        party_from INTEGER,
        party_to INTEGER,
        record TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE INDEX hotline_records_from ON hotline_records (kind, party_from);
    CREATE INDEX hotline_records_to ON hotline_records (kind, party_to);
    "#,
    // 4: incident evidence.
    INCIDENT_EVIDENCE,
    // 5: the log head several nodes swap.
    LOG_HEAD,
    // 6: one partial index for the hotline records that name a party.
    HOTLINE_PARTIAL_INDEX,
    // 7: leaf readers in the leaf's row; two unused indexes dropped.
    SQLITE_LEAF_READERS_INLINE,
    // 8: per-party conflict indexes keyed by id block first.
    CONFLICT_PARTY_BLOCK_INDEXES,
    // 9: an activity's Feature text only in its versions.
    ACTIVITY_FEATURE_IN_VERSIONS,
    // 10: per-party zone conflict indexes keyed by id block first.
    ZONE_CONFLICT_PARTY_BLOCK_INDEXES,
];

/// PostgreSQL's migrations: the same schema as [`SQLITE_MIGRATIONS`],
/// version for version, in SQL that CockroachDB also runs (no `SERIAL`, no
/// PostgreSQL-only types; the JSON documents are `TEXT` so that the bytes
/// the service normalised are the bytes it serves).
pub const POSTGRES_MIGRATIONS: &[&str] = &[
    // 1
    r#"
    CREATE TABLE parties (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('military', 'humanitarian', 'civil', 'broker')),
        token_hash BYTEA NOT NULL UNIQUE,
        created_at_ms BIGINT NOT NULL,
        revoked_at_ms BIGINT
    );

    CREATE TABLE activities (
        id BIGINT PRIMARY KEY,
        party_id BIGINT NOT NULL REFERENCES parties (id),
        version BIGINT NOT NULL CHECK (version >= 1),
        feature TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        cancelled_at_ms BIGINT
    );
    CREATE INDEX activities_party ON activities (party_id);

    CREATE TABLE activity_versions (
        activity_id BIGINT NOT NULL REFERENCES activities (id),
        version BIGINT NOT NULL,
        feature TEXT,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (activity_id, version)
    );

    CREATE TABLE zones (
        id BIGINT PRIMARY KEY,
        party_id BIGINT NOT NULL REFERENCES parties (id),
        kind TEXT NOT NULL CHECK (kind IN ('exclusion', 'demarcation', 'protected')),
        feature TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        cancelled_at_ms BIGINT
    );

    CREATE TABLE conflicts (
        id BIGINT PRIMARY KEY,
        activity_a BIGINT NOT NULL,
        activity_b BIGINT NOT NULL CHECK (activity_a < activity_b),
        party_a BIGINT NOT NULL REFERENCES parties (id),
        party_b BIGINT NOT NULL REFERENCES parties (id),
        state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
        finding TEXT NOT NULL,
        opened_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        acked_a_at_ms BIGINT,
        acked_b_at_ms BIGINT,
        resolved_at_ms BIGINT,
        resolution TEXT
    );
    CREATE UNIQUE INDEX conflicts_live_pair ON conflicts (activity_a, activity_b) WHERE state != 'resolved';
    CREATE INDEX conflicts_party_a ON conflicts (party_a, state);
    CREATE INDEX conflicts_party_b ON conflicts (party_b, state);

    CREATE TABLE log_leaves (
        idx BIGINT PRIMARY KEY,
        leaf BYTEA NOT NULL,
        leaf_hash BYTEA NOT NULL
    );
    CREATE TABLE log_nodes (
        level BIGINT NOT NULL,
        idx BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        PRIMARY KEY (level, idx)
    );
    CREATE TABLE log_checkpoints (
        size BIGINT PRIMARY KEY,
        note TEXT NOT NULL,
        at_ms BIGINT NOT NULL
    );
    "#,
    // 2
    r#"
    ALTER TABLE activities ADD COLUMN sharing TEXT NOT NULL DEFAULT 'need_to_know'
        CHECK (sharing IN ('need_to_know', 'full'));
    ALTER TABLE activities ADD COLUMN start_ms BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE activities ADD COLUMN end_ms BIGINT;
    ALTER TABLE activities ADD COLUMN west_deg DOUBLE PRECISION NOT NULL DEFAULT -180;
    ALTER TABLE activities ADD COLUMN south_deg DOUBLE PRECISION NOT NULL DEFAULT -90;
    ALTER TABLE activities ADD COLUMN east_deg DOUBLE PRECISION NOT NULL DEFAULT 180;
    ALTER TABLE activities ADD COLUMN north_deg DOUBLE PRECISION NOT NULL DEFAULT 90;
    CREATE INDEX activities_live_window ON activities (start_ms, end_ms) WHERE cancelled_at_ms IS NULL;

    CREATE TABLE zone_conflicts (
        id BIGINT PRIMARY KEY,
        activity_id BIGINT NOT NULL REFERENCES activities (id),
        zone_id BIGINT NOT NULL REFERENCES zones (id),
        party_a BIGINT NOT NULL REFERENCES parties (id),
        party_b BIGINT NOT NULL REFERENCES parties (id),
        state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
        finding TEXT NOT NULL,
        opened_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        acked_a_at_ms BIGINT,
        acked_b_at_ms BIGINT,
        resolved_at_ms BIGINT,
        resolution TEXT
    );
    CREATE UNIQUE INDEX zone_conflicts_live_pair ON zone_conflicts (activity_id, zone_id) WHERE state != 'resolved';
    CREATE INDEX zone_conflicts_party_a ON zone_conflicts (party_a, state);
    CREATE INDEX zone_conflicts_party_b ON zone_conflicts (party_b, state);

    CREATE TABLE log_leaf_readers (
        idx BIGINT NOT NULL REFERENCES log_leaves (idx),
        party_id BIGINT NOT NULL,
        PRIMARY KEY (idx, party_id)
    );
    "#,
    // 3
    r#"
    CREATE TABLE hotline_records (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('party', 'message', 'conflict', 'escalation', 'incident')),
        party_from BIGINT,
        party_to BIGINT,
        record TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    );
    CREATE INDEX hotline_records_from ON hotline_records (kind, party_from);
    CREATE INDEX hotline_records_to ON hotline_records (kind, party_to);
    "#,
    // 4: the same as SQLite's.
    INCIDENT_EVIDENCE,
    // 5: the same as SQLite's.
    LOG_HEAD,
    // 6: the same as SQLite's.
    HOTLINE_PARTIAL_INDEX,
    // 7: leaf readers in the leaf's row; two unused indexes dropped.
    POSTGRES_LEAF_READERS_INLINE,
    // 8: the same as SQLite's.
    CONFLICT_PARTY_BLOCK_INDEXES,
    // 9: the same as SQLite's.
    ACTIVITY_FEATURE_IN_VERSIONS,
    // 10: the same as SQLite's.
    ZONE_CONFLICT_PARTY_BLOCK_INDEXES,
];

/// The migrations of `backend`.
pub fn migrations(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    }
}

/// The version table on PostgreSQL; creating it is idempotent, so two
/// processes starting at once both succeed.
const POSTGRES_VERSION_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS schema_version (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
";

/// The schema version of an open database.
pub fn schema_version(db: &mut Db<'_>) -> Result<u32, StoreError> {
    let version = match db.backend() {
        Backend::Sqlite => db.query_one("PRAGMA user_version", params![], |r| r.get_i64(0))?,
        Backend::Postgres => db
            .query_opt(
                "SELECT version FROM schema_version WHERE id = 1",
                params![],
                |r| r.get_i64(0),
            )?
            .unwrap_or(0),
    };
    Ok(version.max(0) as u32)
}

/// Brings the schema up to date. Refuses a database newer than this build,
/// which would otherwise be silently misread.
pub(crate) fn migrate(db: &mut Db<'_>) -> Result<(), StoreError> {
    let list = migrations(db.backend());
    if db.backend() == Backend::Postgres {
        db.execute_batch(POSTGRES_VERSION_TABLE)?;
    }
    let current = schema_version(db)? as usize;
    if current > list.len() {
        return Err(StoreError::SchemaTooNew {
            found: current as u32,
            known: list.len() as u32,
        });
    }
    for (i, sql) in list.iter().enumerate().skip(current) {
        let version = (i + 1) as i64;
        match db.backend() {
            Backend::Sqlite => {
                db.execute_batch("BEGIN IMMEDIATE")?;
                let applied = db
                    .execute_batch(sql)
                    .and_then(|()| db.execute_batch(&format!("PRAGMA user_version = {version}")))
                    .and_then(|()| db.execute_batch("COMMIT"));
                if let Err(error) = applied {
                    let _ = db.execute_batch("ROLLBACK");
                    return Err(error);
                }
            }
            Backend::Postgres => {
                // The row lock orders concurrent starters: the second one
                // waits, then sees the new version and skips.
                db.execute_batch("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
                let applied = db
                    .query_one(
                        "SELECT version FROM schema_version WHERE id = 1 FOR UPDATE",
                        params![],
                        |r| r.get_i64(0),
                    )
                    .and_then(|found| {
                        if found >= version {
                            return Ok(());
                        }
                        db.execute_batch(sql)?;
                        db.execute(
                            "UPDATE schema_version SET version = ?1 WHERE id = 1",
                            params![version],
                        )?;
                        Ok(())
                    })
                    .and_then(|()| db.execute_batch("COMMIT"));
                if let Err(error) = applied {
                    let _ = db.execute_batch("ROLLBACK");
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn both_backends_have_the_same_versions() {
        assert_eq!(SQLITE_MIGRATIONS.len(), POSTGRES_MIGRATIONS.len());
    }

    #[test]
    fn a_version_1_database_with_data_migrates_to_the_latest() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SQLITE_MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) VALUES (1, 'blue', 'military', x'00', 0);
             INSERT INTO activities (id, party_id, version, feature, created_at_ms, updated_at_ms)
             VALUES (1, 1, 1, '{}', 0, 0);",
        )
        .unwrap();
        let mut db = Db::sqlite(&conn);
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
        // Rows written before the migration read with the new columns'
        // defaults: need-to-know, and a box that covers everything.
        let (sharing, west): (String, f64) = conn
            .query_row("SELECT sharing, west_deg FROM activities WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((sharing.as_str(), west), ("need_to_know", -180.0));
        // Migration 6: one partial index for the hotline records that name
        // a party, which the queries that say so use.
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT key FROM hotline_records \
                 WHERE kind = 'incident' AND party_from IS NOT NULL",
            )
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("hotline_records_named")),
            "{plan:?}"
        );
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'hotline_records' \
                 AND name IN ('hotline_records_from', 'hotline_records_to')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0, "the full indexes are gone");
        // Migrating again changes nothing.
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
    }

    /// An in-memory SQLite database with the first `version` migrations applied, as a database
    /// written by that version of deconflict would be.
    fn sqlite_at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &SQLITE_MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64).unwrap();
        conn
    }

    /// A fresh PostgreSQL database with the first `version` migrations applied, or `None` (the
    /// reason printed) when no test server is configured.
    fn postgres_at_version(test: &str, database: &str, version: usize) -> Option<crate::db::PgConn> {
        let admin = crate::testing::test_database_url_or_skip(test)?;
        let url = crate::testing::create_test_database(&admin, database).unwrap();
        let mut conn = crate::db::PgConn::connect(&url).unwrap();
        let mut db = Db::postgres(&mut conn);
        db.execute_batch(POSTGRES_VERSION_TABLE).unwrap();
        for sql in &POSTGRES_MIGRATIONS[..version] {
            db.execute_batch(sql).unwrap();
        }
        db.execute_batch(&format!(
            "UPDATE schema_version SET version = {version} WHERE id = 1"
        ))
        .unwrap();
        Some(conn)
    }

    #[test]
    fn migration_7_moves_leaf_readers_into_the_leaf_row_and_keeps_hotline_records() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        for sql in &SQLITE_MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        conn.execute_batch(
            "INSERT INTO log_leaves (idx, leaf, leaf_hash) VALUES (0, x'01', x'02'), (1, x'03', x'04'), (2, x'05', x'06');
             INSERT INTO log_leaf_readers (idx, party_id) VALUES (0, 0), (1, 3), (1, 12);
             INSERT INTO hotline_records (key, kind, party_from, party_to, record, updated_at_ms)
             VALUES ('conflict/4', 'conflict', NULL, NULL, '{\"a\":1}', 5),
                    ('message/2', 'message', 3, 12, '{\"b\":2}', 6);",
        )
        .unwrap();
        let mut db = Db::sqlite(&conn);
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
        let readers: Vec<(i64, String)> = conn
            .prepare("SELECT idx, readers FROM log_leaves ORDER BY idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut second: Vec<&str> = readers[1].1.split(',').collect();
        second.sort_unstable();
        assert_eq!(
            (readers[0].1.as_str(), second, readers[2].1.as_str()),
            ("0", vec!["12", "3"], "")
        );
        let gone: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN \
                 ('log_leaf_readers', 'activities_party', 'activities_live_window')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0, "the readers table and the unused indexes are gone");
        let records: Vec<(String, String, Option<i64>)> = conn
            .prepare("SELECT key, record, party_to FROM hotline_records ORDER BY key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            records,
            [
                ("conflict/4".to_owned(), r#"{"a":1}"#.to_owned(), None),
                ("message/2".to_owned(), r#"{"b":2}"#.to_owned(), Some(12))
            ]
        );
        let table: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'hotline_records'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(table.contains("WITHOUT ROWID"), "{table}");
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT key FROM hotline_records WHERE kind = 'message' AND party_from IS NOT NULL",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("hotline_records_named"), "{plan}");
        // The live-pair index, keyed newer activity first, still refuses a
        // second live conflict of one pair and takes one once it resolved.
        conn.execute_batch(
            "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) VALUES (1, 'blue', 'military', x'00', 0);
             INSERT INTO conflicts (id, activity_a, activity_b, party_a, party_b, state, finding, opened_at_ms, updated_at_ms)
             VALUES (1, 4, 9, 1, 1, 'open', '{}', 0, 0);",
        )
        .unwrap();
        let second = "INSERT INTO conflicts (id, activity_a, activity_b, party_a, party_b, state, finding, opened_at_ms, \
                      updated_at_ms) VALUES (2, 4, 9, 1, 1, 'open', '{}', 0, 0)";
        assert!(conn.execute(second, []).is_err(), "one live conflict per pair");
        conn.execute("UPDATE conflicts SET state = 'resolved' WHERE id = 1", [])
            .unwrap();
        conn.execute(second, []).unwrap();
    }

    /// Conflicts 1, 4,096 and 9,000 between parties 1 and 2 (two resolved).
    const CONFLICT_ROWS: &str = "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) \
        VALUES (1, 'blue', 'military', x'01', 0), (2, 'red', 'military', x'02', 0);
        INSERT INTO conflicts (id, activity_a, activity_b, party_a, party_b, state, finding, opened_at_ms, updated_at_ms)
        VALUES (1, 1, 2, 1, 2, 'open', '{}', 0, 0), (4096, 3, 4, 2, 1, 'resolved', '{}', 0, 0),
               (9000, 5, 6, 1, 2, 'resolved', '{}', 0, 0);";

    /// The names of `table`'s indexes in SQLite, in order.
    fn index_names(conn: &Connection, table: &str) -> Vec<String> {
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 ORDER BY name")
            .unwrap()
            .query_map([table], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn migration_8_keys_the_party_conflict_indexes_by_id_block() {
        let conn = sqlite_at_version(7);
        conn.execute_batch(CONFLICT_ROWS).unwrap();
        let mut db = Db::sqlite(&conn);
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
        let indexes = index_names(&conn, "conflicts");
        assert_eq!(
            indexes,
            [
                "conflicts_block_party_a",
                "conflicts_block_party_b",
                "conflicts_live_pair"
            ]
        );
        // The rows are indexed: a seek by block and party finds them.
        let block = CONFLICT_ID_BLOCK as i64;
        let seek = "SELECT id FROM conflicts WHERE (id / 4096) = ?1 AND party_b = ?2";
        let plan: String = conn
            .query_row(&format!("EXPLAIN QUERY PLAN {seek}"), (1, 1), |r| r.get(3))
            .unwrap();
        assert!(plan.contains("conflicts_block_party_b"), "{plan}");
        let found: i64 = conn.query_row(seek, (4096 / block, 1), |r| r.get(0)).unwrap();
        assert_eq!(found, 4096);
        let found: i64 = conn
            .query_row(
                "SELECT id FROM conflicts WHERE (id / 4096) = ?1 AND party_a = ?2",
                (9000 / block, 1),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 9000);
    }

    #[test]
    fn on_postgres_migration_8_keys_the_party_conflict_indexes_by_id_block() {
        assert_postgres_keys_party_indexes_by_block(
            "migration 8",
            "migration8",
            7,
            "conflicts",
            CONFLICT_ROWS,
        );
    }

    /// On PostgreSQL at `version`, with `rows` (conflict 9,000 between
    /// parties 1 and 2 among them) in `table`: the migrations that follow
    /// replace `{table}_party_a/b` by the `{table}_block_party_a/b` indexes
    /// on `(id / 4096)`, and party 1's conflict is found by its block.
    fn assert_postgres_keys_party_indexes_by_block(
        migration: &str,
        database: &str,
        version: usize,
        table: &str,
        rows: &str,
    ) {
        let Some(mut conn) = postgres_at_version(&format!("{migration} on PostgreSQL"), database, version)
        else {
            return;
        };
        let mut db = Db::postgres(&mut conn);
        db.execute_batch(&rows.replace("x'01'", "'\\x01'").replace("x'02'", "'\\x02'"))
            .unwrap();
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
        let found = db
            .query_map(
                &format!("SELECT id FROM {table} WHERE (id / 4096) = ?1 AND party_a = ?2 ORDER BY id"),
                params![9000 / CONFLICT_ID_BLOCK as i64, 1i64],
                |r| r.get_i64(0),
            )
            .unwrap();
        assert_eq!(found, [9000]);
        // The old indexes' names are free again, the new ones taken.
        db.execute_batch(&format!(
            "CREATE INDEX {table}_party_a ON {table} (party_a);
             CREATE INDEX {table}_party_b ON {table} (party_b);"
        ))
        .expect("the old indexes are gone");
        assert!(db
            .execute_batch(&format!(
                "CREATE INDEX {table}_block_party_a ON {table} (party_a)"
            ))
            .is_err());
    }

    /// Zone conflicts 1, 4,096 and 9,000 between parties 1 and 2 (two
    /// resolved), over activities 1–3 and zone 1.
    const ZONE_CONFLICT_ROWS: &str = "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) \
        VALUES (1, 'blue', 'military', x'01', 0), (2, 'red', 'military', x'02', 0);
        INSERT INTO activities (id, party_id, version, created_at_ms, updated_at_ms)
        VALUES (1, 1, 1, 0, 0), (2, 2, 1, 0, 0), (3, 1, 1, 0, 0);
        INSERT INTO zones (id, party_id, kind, feature, created_at_ms) VALUES (1, 2, 'exclusion', '{}', 0);
        INSERT INTO zone_conflicts (id, activity_id, zone_id, party_a, party_b, state, finding, opened_at_ms, updated_at_ms)
        VALUES (1, 1, 1, 1, 2, 'open', '{}', 0, 0), (4096, 2, 1, 2, 1, 'resolved', '{}', 0, 0),
               (9000, 3, 1, 1, 2, 'resolved', '{}', 0, 0);";

    #[test]
    fn migration_10_keys_the_party_zone_conflict_indexes_by_id_block() {
        let conn = sqlite_at_version(9);
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(ZONE_CONFLICT_ROWS).unwrap();
        let mut db = Db::sqlite(&conn);
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
        let indexes = index_names(&conn, "zone_conflicts");
        assert_eq!(
            indexes,
            [
                "zone_conflicts_block_party_a",
                "zone_conflicts_block_party_b",
                "zone_conflicts_live_pair"
            ]
        );
        // The rows are indexed: a seek by block and party finds them.
        let block = CONFLICT_ID_BLOCK as i64;
        for (side, id, party) in [("a", 9000, 1), ("b", 4096, 1), ("b", 1, 2)] {
            let seek = format!("SELECT id FROM zone_conflicts WHERE (id / 4096) = ?1 AND party_{side} = ?2");
            let plan: String = conn
                .query_row(&format!("EXPLAIN QUERY PLAN {seek}"), (1, 1), |r| r.get(3))
                .unwrap();
            assert!(
                plan.contains(&format!("zone_conflicts_block_party_{side}")),
                "{plan}"
            );
            let found: i64 = conn.query_row(&seek, (id / block, party), |r| r.get(0)).unwrap();
            assert_eq!(found, id);
        }
    }

    #[test]
    fn on_postgres_migration_10_keys_the_party_zone_conflict_indexes_by_id_block() {
        assert_postgres_keys_party_indexes_by_block(
            "migration 10",
            "migration10",
            9,
            "zone_conflicts",
            ZONE_CONFLICT_ROWS,
        );
    }

    /// Activity 1 at version 2 with both versions recorded, activity 2 at
    /// version 1 whose version record is missing, party 1.
    const ACTIVITY_ROWS: &str = "INSERT INTO parties (id, name, kind, token_hash, created_at_ms) \
        VALUES (1, 'blue', 'military', x'01', 0);
        INSERT INTO activities (id, party_id, version, feature, created_at_ms, updated_at_ms)
        VALUES (1, 1, 2, '{\"v\":2}', 0, 5), (2, 1, 1, '{\"only\":1}', 0, 7);
        INSERT INTO activity_versions (activity_id, version, feature, at_ms)
        VALUES (1, 1, '{\"v\":1}', 0), (1, 2, '{\"v\":2}', 5);";

    const CURRENT_FEATURES: &str = "SELECT a.id, v.feature, v.at_ms FROM activities a \
        JOIN activity_versions v ON v.activity_id = a.id AND v.version = a.version ORDER BY a.id";

    #[test]
    fn migration_9_keeps_an_activitys_feature_only_in_its_versions() {
        let conn = sqlite_at_version(8);
        conn.execute_batch(ACTIVITY_ROWS).unwrap();
        let mut db = Db::sqlite(&conn);
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
        let current: Vec<(i64, String, i64)> = conn
            .prepare(CURRENT_FEATURES)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            current,
            [
                (1, r#"{"v":2}"#.to_owned(), 5),
                (2, r#"{"only":1}"#.to_owned(), 7)
            ]
        );
        let versions: i64 = conn
            .query_row("SELECT count(*) FROM activity_versions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(versions, 3, "the older version stays, the missing one was added");
        assert!(
            conn.prepare("SELECT feature FROM activities").is_err(),
            "the column is gone"
        );
    }

    #[test]
    fn on_postgres_migration_9_keeps_an_activitys_feature_only_in_its_versions() {
        let Some(mut conn) = postgres_at_version("migration 9 on PostgreSQL", "migration9", 8) else {
            return;
        };
        let mut db = Db::postgres(&mut conn);
        db.execute_batch(&ACTIVITY_ROWS.replace("x'01'", "'\\x01'"))
            .unwrap();
        migrate(&mut db).unwrap();
        assert_eq!(schema_version(&mut db).unwrap() as usize, SQLITE_MIGRATIONS.len());
        let current = db
            .query_map(CURRENT_FEATURES, params![], |r| {
                Ok((r.get_i64(0)?, r.get_text(1)?, r.get_i64(2)?))
            })
            .unwrap();
        assert_eq!(
            current,
            [
                (1, r#"{"v":2}"#.to_owned(), 5),
                (2, r#"{"only":1}"#.to_owned(), 7)
            ]
        );
        assert!(db.execute_batch("SELECT feature FROM activities").is_err());
    }

    #[test]
    fn on_postgres_migration_7_moves_leaf_readers_into_the_leaf_row() {
        let Some(admin) = crate::testing::test_database_url_or_skip("migration 7 on PostgreSQL") else {
            return;
        };
        let url = crate::testing::create_test_database(&admin, "migration7").unwrap();
        let mut conn = crate::db::PgConn::connect(&url).unwrap();
        let mut db = Db::postgres(&mut conn);
        db.execute_batch(POSTGRES_VERSION_TABLE).unwrap();
        for sql in &POSTGRES_MIGRATIONS[..6] {
            db.execute_batch(sql).unwrap();
        }
        db.execute_batch(
            "UPDATE schema_version SET version = 6 WHERE id = 1;
             INSERT INTO log_leaves (idx, leaf, leaf_hash) VALUES (0, '\\x01', '\\x02'), (1, '\\x03', '\\x04'), (2, '\\x05', '\\x06');
             INSERT INTO log_leaf_readers (idx, party_id) VALUES (0, 0), (1, 3), (1, 12);",
        )
        .unwrap();
        migrate(&mut db).unwrap();
        assert_eq!(
            schema_version(&mut db).unwrap() as usize,
            POSTGRES_MIGRATIONS.len()
        );
        let readers = db
            .query_map("SELECT readers FROM log_leaves ORDER BY idx", params![], |r| {
                r.get_text(0)
            })
            .unwrap();
        let mut second: Vec<&str> = readers[1].split(',').collect();
        second.sort_unstable();
        assert_eq!(
            (readers[0].as_str(), second, readers[2].as_str()),
            ("0", vec!["12", "3"], "")
        );
        // Without catalog queries (the store uses none): the table no
        // longer answers, and the indexes' names are free again.
        assert!(db.execute_batch("SELECT 1 FROM log_leaf_readers").is_err());
        db.execute_batch(
            "CREATE INDEX activities_party ON activities (party_id);
             CREATE INDEX activities_live_window ON activities (start_ms);",
        )
        .expect("the unused indexes are gone");
    }
}
