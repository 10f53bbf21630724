//! The hotline's rows (`hotline_records`, migration 3): one per record key,
//! the record as JSON, written by the driver's batch beside its leaf.

use deconflict_hotline::{ConflictAck, Incident, Message, Record};
use std::collections::hash_map::{Entry, HashMap};

use deconflict_store::{params, Db, StoreError, Value as SqlValue};

use crate::ledger::{insert_many, opt_int, MultiInsert};

use crate::model::Viewer;

/// One row change: an upsert, or a delete when `record` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotlineRow {
    pub key: String,
    pub kind: &'static str,
    pub party_from: Option<u64>,
    pub party_to: Option<u64>,
    pub record: Option<String>,
    pub at_ms: i64,
}

impl HotlineRow {
    pub fn of(record: &Record, at_ms: i64) -> Self {
        let key = record.key().to_string();
        let (kind, party_from, party_to) = match record {
            Record::Party { .. } => ("party", None, None),
            Record::Message(m) => ("message", Some(m.from.0), Some(m.to.0)),
            Record::ConflictAck(_) | Record::ConflictRemoved(_) => ("conflict", None, None),
            Record::Escalation(_) | Record::EscalationRemoved(_) => ("escalation", None, None),
            Record::Incident(i) => ("incident", Some(i.reporter.0), None),
        };
        let record = (!record.is_removal()).then(|| {
            // Records hold plain data; serializing cannot fail.
            serde_json::to_string(record).unwrap_or_default()
        });
        Self {
            key,
            kind,
            party_from,
            party_to,
            record,
            at_ms,
        }
    }
}

impl HotlineRow {
    /// [`HotlineRow::of`] a conflict's acknowledgement record (one per
    /// opened conflict), its text written directly: the same bytes as
    /// `serde_json::to_string` of the record (members in declaration
    /// order, tested below), without serde's walk on the driver's thread.
    pub fn conflict_ack(ack: &ConflictAck, at_ms: i64) -> Self {
        use std::fmt::Write as _;
        fn opt(text: &mut String, value: Option<i64>) {
            match value {
                Some(value) => {
                    let _ = write!(text, "{value}");
                }
                None => text.push_str("null"),
            }
        }
        let mut text = String::with_capacity(96 + 64 * ack.parties.len());
        let _ = write!(
            text,
            "{{\"conflict_ack\":{{\"conflict\":{},\"required_at\":{},\"deadline\":{},\"parties\":[",
            ack.conflict.0, ack.required_at.0, ack.deadline.0
        );
        for (at, party) in ack.parties.iter().enumerate() {
            if at > 0 {
                text.push(',');
            }
            let _ = write!(text, "{{\"party\":{},\"acked_at\":", party.party.0);
            opt(&mut text, party.acked_at.map(|t| t.0));
            text.push_str(",\"overdue_at\":");
            opt(&mut text, party.overdue_at.map(|t| t.0));
            text.push('}');
        }
        let _ = write!(text, "],\"deadline_fired\":{}}}}}", ack.deadline_fired);
        Self {
            key: format!("conflict/{}", ack.conflict.0),
            kind: "conflict",
            party_from: None,
            party_to: None,
            record: Some(text),
            at_ms,
        }
    }
}

fn sql(value: u64) -> i64 {
    value as i64
}

/// The upsert of hotline rows, several per statement.
static UPSERT: MultiInsert = MultiInsert::with_tail(
    "INSERT INTO hotline_records (key, kind, party_from, party_to, record, updated_at_ms)",
    " ON CONFLICT (key) DO UPDATE SET record = excluded.record, updated_at_ms = excluded.updated_at_ms",
    6,
);

/// Writes a batch's row changes (inside its transaction): each key's last
/// change, upserts several per statement.
///
/// The same rows as one change per row in order: a key's row ends as its
/// last change made it (an upsert keeps `kind` and the parties of an
/// existing row, which a key's records never change), rows of different
/// keys are independent, and PostgreSQL refuses a statement that touches
/// one row twice, hence one change per key.
pub fn write_many(db: &mut Db<'_>, rows: &[&HotlineRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut last: Vec<&HotlineRow> = Vec::with_capacity(rows.len());
    let mut slots: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for &row in rows {
        match slots.entry(row.key.as_str()) {
            Entry::Occupied(slot) => last[*slot.get()] = row,
            Entry::Vacant(slot) => {
                slot.insert(last.len());
                last.push(row);
            }
        }
    }
    let (upserts, deletes): (Vec<&HotlineRow>, Vec<&HotlineRow>) =
        last.into_iter().partition(|row| row.record.is_some());
    for row in deletes {
        db.execute("DELETE FROM hotline_records WHERE key = ?1", params![&row.key])?;
    }
    insert_many(db, &UPSERT, &upserts, |row| {
        [
            SqlValue::Text(&row.key),
            SqlValue::Text(row.kind),
            opt_int(row.party_from.map(sql)),
            opt_int(row.party_to.map(sql)),
            row.record.as_deref().map_or(SqlValue::Null, SqlValue::Text),
            SqlValue::Int(row.at_ms),
        ]
    })
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Rejected(format!("hotline row {key} does not parse: {e}")))
}

/// Every row, for `Hotline::restore`.
pub fn load_records(db: &mut Db<'_>) -> Result<Vec<Record>, StoreError> {
    db.query_map(
        "SELECT key, record FROM hotline_records ORDER BY key",
        params![],
        |row| parse(&row.get_text(0)?, &row.get_text(1)?),
    )
}

fn message_of(key: &str, text: &str) -> Result<Message, StoreError> {
    match parse(key, text)? {
        Record::Message(message) => Ok(message),
        _ => Err(StoreError::Rejected(format!(
            "hotline row {key} is not a message"
        ))),
    }
}

/// Messages sent or received by the viewer (every message, for a broker),
/// by id, at most `limit`. (`party_from IS NOT NULL`, true of every
/// message, lets the partial index of migration 6 serve the query.)
pub fn messages_for(db: &mut Db<'_>, viewer: &Viewer, limit: usize) -> Result<Vec<Message>, StoreError> {
    db.query_map(
        "SELECT key, record FROM hotline_records WHERE kind = 'message' AND party_from IS NOT NULL \
         AND (?1 OR party_from = ?2 OR party_to = ?2) ORDER BY CAST(substr(key, 9) AS BIGINT) LIMIT ?3",
        params![
            viewer.broker,
            sql(viewer.party.0),
            limit.min(i64::MAX as usize) as i64
        ],
        |row| message_of(&row.get_text(0)?, &row.get_text(1)?),
    )
}

/// One message, whoever may see it.
pub fn message(db: &mut Db<'_>, id: u64) -> Result<Option<Message>, StoreError> {
    let key = format!("message/{id}");
    let text = db.query_opt(
        "SELECT record FROM hotline_records WHERE key = ?1",
        params![&key],
        |r| r.get_text(0),
    )?;
    text.map(|t| message_of(&key, &t)).transpose()
}

/// Incidents the viewer reported or is named in (all, for a broker), by id,
/// at most `limit`.
pub fn incidents_for(db: &mut Db<'_>, viewer: &Viewer, limit: usize) -> Result<Vec<Incident>, StoreError> {
    let rows = db.query_map(
        // `party_from IS NOT NULL` (the reporter) selects the partial index.
        "SELECT key, record FROM hotline_records WHERE kind = 'incident' AND party_from IS NOT NULL",
        params![],
        |row| Ok((row.get_text(0)?, row.get_text(1)?)),
    )?;
    let mut out = Vec::new();
    for (key, text) in rows {
        let Record::Incident(incident) = parse(&key, &text)? else {
            return Err(StoreError::Rejected(format!(
                "hotline row {key} is not an incident"
            )));
        };
        if viewer.broker || incident.reporter == viewer.party || incident.parties.contains(&viewer.party) {
            out.push(incident);
        }
    }
    out.sort_by_key(|i| i.id);
    out.truncate(limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deconflict_engine::{PartyId, Timestamp};
    use deconflict_hotline::{Hotline, HotlineConfig, MessageId, MessageSpec, PartyContacts, Priority};
    use std::collections::HashSet;

    #[test]
    fn rows_round_trip_and_lists_filter_by_party() {
        let conn = deconflict_store::rusqlite::Connection::open_in_memory().unwrap();
        for sql in deconflict_store::SQLITE_MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
        let mut db = Db::sqlite(&conn);
        let conn = &mut db;
        let mut hotline = Hotline::new(HotlineConfig::default()).unwrap();
        for party in 1..=3 {
            hotline
                .set_party(PartyId(party), PartyContacts::default())
                .unwrap();
        }
        for (id, from, to) in [(1, 1, 2), (2, 2, 3), (10, 3, 1)] {
            hotline
                .send(
                    Timestamp(0),
                    MessageSpec {
                        id: MessageId(id),
                        from: PartyId(from),
                        to: PartyId(to),
                        priority: Priority::Routine,
                        body: format!("message {id}"),
                        ack_within_s: None,
                        link: None,
                    },
                )
                .unwrap();
        }
        while let Some(record) = hotline.poll_record() {
            write_many(conn, &[&HotlineRow::of(&record, 0)]).unwrap();
        }
        let restored = Hotline::restore(HotlineConfig::default(), load_records(conn).unwrap()).unwrap();
        assert_eq!(restored.snapshot(), hotline.snapshot());
        let viewer = |party, broker| Viewer {
            party: PartyId(party),
            broker,
        };
        let mut ids = |v: Viewer, limit| -> Vec<u64> {
            messages_for(conn, &v, limit)
                .unwrap()
                .iter()
                .map(|m| m.id.0)
                .collect()
        };
        assert_eq!(ids(viewer(1, false), 10), [1, 10], "by id, not by key text");
        assert_eq!(ids(viewer(3, false), 10), [2, 10]);
        assert_eq!(
            ids(viewer(4, true), 2),
            [1, 2],
            "a broker sees all, up to the limit"
        );
        assert_eq!(message(conn, 2).unwrap().unwrap().body, "message 2");
        assert!(message(conn, 99).unwrap().is_none());
    }

    /// Rows written several per statement, each key's last change once,
    /// end as one change per row in order with the statements `write` ran
    /// before: random batches (up to 200 rows, across the statement's chunk
    /// sizes) of upserts and deletes over a few keys of each kind, so that
    /// a batch often writes a key several times, deletes and writes it
    /// again, and changes rows of earlier batches.
    #[test]
    fn rows_written_several_per_statement_end_as_one_change_per_row() {
        use deconflict_store::rusqlite::Connection;
        fn one_by_one(conn: &Connection, rows: &[HotlineRow]) {
            for row in rows {
                match &row.record {
                    Some(record) => conn
                        .execute(
                            "INSERT INTO hotline_records (key, kind, party_from, party_to, record, updated_at_ms) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                             ON CONFLICT (key) DO UPDATE SET record = excluded.record, updated_at_ms = excluded.updated_at_ms",
                            deconflict_store::rusqlite::params![
                                row.key,
                                row.kind,
                                row.party_from.map(sql),
                                row.party_to.map(sql),
                                record,
                                row.at_ms
                            ],
                        )
                        .unwrap(),
                    None => conn
                        .execute("DELETE FROM hotline_records WHERE key = ?1", [&row.key])
                        .unwrap(),
                };
            }
        }
        fn dump(conn: &Connection) -> Vec<Vec<deconflict_store::rusqlite::types::Value>> {
            let mut statement = conn
                .prepare("SELECT * FROM hotline_records ORDER BY key")
                .unwrap();
            statement
                .query_map([], |row| (0..6).map(|i| row.get(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        let [fast, slow] = [(); 2].map(|()| {
            let conn = Connection::open_in_memory().unwrap();
            for sql in deconflict_store::SQLITE_MIGRATIONS {
                conn.execute_batch(sql).unwrap();
            }
            conn
        });
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut draw = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let (mut repeated, mut long, mut deleted) = (0, 0, 0);
        for batch in 0..40_i64 {
            let rows: Vec<HotlineRow> = (0..1 + draw(200) as i64)
                .map(|step| {
                    let n = draw(12);
                    let (kind, party_from, party_to) = match n % 3 {
                        0 => ("conflict", None, None),
                        1 => ("message", Some(n % 4 + 1), Some(n % 5 + 1)),
                        _ => ("incident", Some(n % 4 + 1), None),
                    };
                    HotlineRow {
                        key: format!("{kind}/{n}"),
                        kind,
                        party_from,
                        party_to,
                        record: (draw(5) != 0).then(|| format!("{{\"v\":{}}}", draw(1_000))),
                        at_ms: batch * 1_000 + step,
                    }
                })
                .collect();
            let keys: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
            repeated += usize::from(keys.len() < rows.len());
            long += usize::from(rows.len() > 64);
            deleted += usize::from(rows.iter().any(|r| r.record.is_none()));
            write_many(&mut Db::sqlite(&fast), &rows.iter().collect::<Vec<_>>()).unwrap();
            one_by_one(&slow, &rows);
            assert_eq!(dump(&fast), dump(&slow), "after batch {batch}");
        }
        assert!(
            repeated > 5 && long > 5 && deleted > 5,
            "{repeated} {long} {deleted}"
        );
        assert!(dump(&fast).len() > 5);
    }

    /// The directly written acknowledgement row is the row `of` gives for
    /// the record (its text byte for byte serde's), for any number of
    /// parties, every optional member and integers beyond 2^53.
    #[test]
    fn conflict_ack_row_equals_the_serde_row() {
        use deconflict_hotline::{ConflictId, ConflictParty};
        for parties in 0..4_u64 {
            for variant in 0..5_i64 {
                let ack = ConflictAck {
                    conflict: ConflictId(if variant == 4 {
                        u64::MAX
                    } else {
                        variant as u64 * 1_000 + parties
                    }),
                    required_at: Timestamp(if variant == 4 {
                        i64::MIN
                    } else {
                        1_790_000_000_000 + variant
                    }),
                    deadline: Timestamp(-variant),
                    parties: (0..parties)
                        .map(|p| ConflictParty {
                            party: PartyId(p * 7 + 1),
                            acked_at: (variant % 2 == 1).then_some(Timestamp(p as i64 - 3)),
                            overdue_at: (variant >= 2).then_some(Timestamp(i64::MAX - p as i64)),
                        })
                        .collect(),
                    deadline_fired: variant == 3,
                };
                let at_ms = 1_790_000_000_123 - variant;
                let direct = HotlineRow::conflict_ack(&ack, at_ms);
                assert_eq!(direct, HotlineRow::of(&Record::ConflictAck(ack), at_ms));
            }
        }
    }
}
