//! Several `deconflict serve` processes on one database (issue 8 part 2):
//! the pieces the driver uses to behave as one service.
//!
//! - **One log order, no missed conflict.** Every batch's transaction
//!   swaps the one-row `log_head` from the size the batch was built on to
//!   its end (`ledger::write_batch`). When two nodes build on the same
//!   size, one swap wins; the other transaction finds 0 rows (or
//!   PostgreSQL fails it with `40001`) and writes nothing. That node's
//!   driver then *catches up*: it rebuilds engine, tree, conflicts and
//!   signer from the store (the same `restore` as after a failed commit),
//!   which now holds the winner's leaves, publishes the winner's events,
//!   and redoes the commands of its lost batches against that state, so a
//!   conflict with the winner's activity is found and committed. The
//!   commands wait meanwhile (nothing is answered until its batch commits).
//! - **Events on any node.** Each node polls the log head every
//!   `--poll-interval-ms`; when another node has appended, it catches up
//!   the same way and publishes the conflict events of those leaves to its
//!   hub with their log index as the SSE id.
//! - **Timers once.** Hotline deadlines and activity ends are evaluated by
//!   every node's driver, but what they change is written through the same
//!   swap and their actions are performed only after the commit: the node
//!   that loses redoes its batch on the winner's state, where the deadline
//!   has already fired, so it fires once.

use deconflict_store::{params, Db, StoreError};
use serde_json::Value;

use crate::auth::{token_hash, Caller};
use crate::hub::HubEvent;
use crate::ledger;
use crate::model::{finding_from_json, ConflictState, PartyInfo, PartyKind, Subject};
use crate::state::AppState;
use deconflict_engine::{ActivityId, PartyId, ZoneId};

/// The shortest `--poll-interval-ms`: below it the polls themselves load
/// the database.
pub const MIN_POLL_INTERVAL_MS: u64 = 10;
/// The longest `--poll-interval-ms` (a minute): how stale another node's
/// events may reach a stream at worst.
pub const MAX_POLL_INTERVAL_MS: u64 = 60_000;
/// The default: another node's conflict reaches a stream here within a
/// quarter of a second.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 250;
/// The default of `--max-redos`: catch-ups in a row without one commit of
/// this node's own before its waiting commands are refused (503).
pub const DEFAULT_MAX_REDOS: u32 = 64;

/// Why a poll interval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--poll-interval-ms must be between {MIN_POLL_INTERVAL_MS} and {MAX_POLL_INTERVAL_MS}, not {0}")]
pub struct PollIntervalOutOfRange(pub u64);

/// Checks a `--poll-interval-ms`.
pub fn check_poll_interval(ms: u64) -> Result<u64, PollIntervalOutOfRange> {
    if (MIN_POLL_INTERVAL_MS..=MAX_POLL_INTERVAL_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(PollIntervalOutOfRange(ms))
    }
}

fn sql_u64(value: u64) -> i64 {
    // Log sizes count leaves one by one; they never approach 2^63.
    value as i64
}

/// The committed log size, as the swap keeps it.
pub fn log_head(db: &mut Db<'_>) -> Result<u64, StoreError> {
    db.query_one("SELECT size FROM log_head WHERE id = 1", params![], |r| {
        r.get_u64(0)
    })
}

/// Moves a head that disagrees with the stored leaves (only an operator's
/// edit of the database does that: each batch moves both in one
/// transaction) to the leaves' count, which the driver has just checked
/// against the latest signed checkpoint. A swap too: a concurrent commit
/// wins and this fails.
pub fn repair_head(db: &mut Db<'_>, seen: u64, leaves: u64) -> Result<(), StoreError> {
    let moved = db.execute(
        "UPDATE log_head SET size = ?2 WHERE id = 1 AND size = ?1",
        params![sql_u64(seen), sql_u64(leaves)],
    )?;
    if moved == 1 {
        Ok(())
    } else {
        Err(StoreError::LostRace(format!(
            "the log head moved from {seen} while it was being repaired"
        )))
    }
}

/// The conflict events of the leaves `[from, to)`, which other nodes
/// wrote, as this node's hub publishes them: the conflict as that leaf
/// recorded it, with the time it opened and its sides' sharing read from
/// the conflict's row.
pub fn events_between(db: &mut Db<'_>, from: u64, to: u64) -> Result<Vec<HubEvent>, StoreError> {
    let leaves = db.query_map(
        "SELECT idx, leaf FROM log_leaves WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        params![sql_u64(from), sql_u64(to)],
        |row| Ok((row.get_u64(0)?, row.get_blob(1)?)),
    )?;
    let mut events = Vec::new();
    for (index, bytes) in leaves {
        let Ok(leaf) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let Some(kind) = event_kind(&leaf) else {
            continue;
        };
        let Some(event) = conflict_event(db, kind, index, &leaf)? else {
            continue;
        };
        events.push(event);
    }
    Ok(events)
}

/// The event a conflict leaf announces, as the driver that wrote it
/// announced it: an acknowledgement is an update only when it changed an
/// acknowledgement (a repeated one is logged, not announced).
fn event_kind(leaf: &Value) -> Option<&'static str> {
    let at_ms = leaf.get("at_ms")?.as_i64()?;
    match leaf.get("kind")?.as_str()? {
        "conflict.opened" => Some("conflict.opened"),
        "conflict.updated" => Some("conflict.updated"),
        "conflict.resolved" => Some("conflict.resolved"),
        "conflict.acknowledged" => {
            let acked = leaf.pointer("/payload/acked_ms")?.as_array()?;
            acked
                .iter()
                .any(|at| at.as_i64() == Some(at_ms))
                .then_some("conflict.updated")
        }
        _ => None,
    }
}

fn conflict_event(
    db: &mut Db<'_>,
    kind: &'static str,
    index: u64,
    leaf: &Value,
) -> Result<Option<HubEvent>, StoreError> {
    let Some(payload) = leaf.get("payload") else {
        return Ok(None);
    };
    let Some(at_ms) = leaf.get("at_ms").and_then(Value::as_i64) else {
        return Ok(None);
    };
    let Some(id) = payload.get("conflict").and_then(Value::as_u64) else {
        return Ok(None);
    };
    // The row gives what the leaf does not hold: when the conflict opened,
    // and whether each side is shared in full.
    let Some((mut record, full)) = ledger::conflict_by_id(db, id)? else {
        return Ok(None);
    };
    let number = |v: &Value| v.as_u64();
    let activities: Vec<u64> = payload
        .get("activities")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(number).collect())
        .unwrap_or_default();
    let subject = match (payload.get("zone").and_then(Value::as_u64), activities.as_slice()) {
        (Some(zone), [activity]) => Subject::Zone {
            activity: ActivityId(*activity),
            zone: ZoneId(zone),
        },
        (None, [a, b]) => Subject::Pair([ActivityId(*a), ActivityId(*b)]),
        _ => return Ok(None),
    };
    let parties: Vec<u64> = payload
        .get("parties")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(number).collect())
        .unwrap_or_default();
    let [party_a, party_b] = parties.as_slice() else {
        return Ok(None);
    };
    let Some(state) = payload
        .get("state")
        .and_then(Value::as_str)
        .and_then(ConflictState::parse)
    else {
        return Ok(None);
    };
    let Some(finding) = payload.get("finding").and_then(finding_from_json) else {
        return Ok(None);
    };
    let acked = |i: usize| payload.pointer(&format!("/acked_ms/{i}")).and_then(Value::as_i64);
    record.subject = subject;
    record.parties = [PartyId(*party_a), PartyId(*party_b)];
    record.state = state;
    record.finding = finding;
    record.acked_ms = [acked(0), acked(1)];
    record.updated_at_ms = at_ms;
    record.resolved_at_ms = (state == ConflictState::Resolved).then_some(at_ms);
    record.resolution = payload
        .get("resolution")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Some(HubEvent {
        kind,
        record,
        full,
        log_index: index,
    }))
}

fn party_info(row: &ledger::PartyRow) -> Option<PartyInfo> {
    Some(PartyInfo {
        id: row.id,
        name: row.name.clone(),
        kind: PartyKind::parse(&row.kind)?,
    })
}

/// A token this node does not know, looked up in a shared (PostgreSQL)
/// database: its party may have been created through another node. Found,
/// it is remembered.
pub async fn identify_from_store(state: &AppState, token: &str) -> Option<Caller> {
    if state.store.backend() != deconflict_store::Backend::Postgres {
        return None;
    }
    let digest = token_hash(token);
    let store = std::sync::Arc::clone(&state.store);
    let found = tokio::task::spawn_blocking(move || {
        store.read(|db| {
            db.query_opt(
                "SELECT id, name, kind FROM parties WHERE token_hash = ?1",
                params![&digest[..]],
                |row| Ok((row.get_u64(0)?, row.get_text(1)?, row.get_text(2)?)),
            )
        })
    })
    .await
    .ok()?
    .ok()??;
    let party = PartyInfo {
        id: PartyId(found.0),
        name: found.1,
        kind: PartyKind::parse(&found.2)?,
    };
    state.directory.add(digest, party.clone());
    Some(Caller::Party(party))
}

/// On a shared (PostgreSQL) database, reloads the token directory from the
/// store every `poll_interval_ms`, so that a token rotated or revoked
/// through another node stops working here within one interval. Ends when
/// the service's state is dropped.
pub fn spawn_directory_reload(state: &AppState) {
    if state.store.backend() != deconflict_store::Backend::Postgres {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = state.downgrade();
    let interval = std::time::Duration::from_millis(state.config.poll_interval_ms);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let store = std::sync::Arc::clone(&inner.store);
            let rows = tokio::task::spawn_blocking(move || store.read(ledger::parties)).await;
            match rows {
                Ok(Ok(rows)) => inner.directory.reload(
                    rows.iter()
                        .filter_map(|row| Some((row.token_hash, party_info(row)?))),
                ),
                Ok(Err(error)) => tracing::warn!(%error, "cannot reload the parties' tokens"),
                Err(_) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_poll_interval_is_bounded() {
        assert_eq!(
            check_poll_interval(MIN_POLL_INTERVAL_MS),
            Ok(MIN_POLL_INTERVAL_MS)
        );
        assert_eq!(
            check_poll_interval(MAX_POLL_INTERVAL_MS),
            Ok(MAX_POLL_INTERVAL_MS)
        );
        assert_eq!(
            check_poll_interval(DEFAULT_POLL_INTERVAL_MS),
            Ok(DEFAULT_POLL_INTERVAL_MS)
        );
        let refused = check_poll_interval(MIN_POLL_INTERVAL_MS - 1).unwrap_err();
        assert!(refused.to_string().contains("--poll-interval-ms"), "{refused}");
        assert!(check_poll_interval(MAX_POLL_INTERVAL_MS + 1).is_err());
    }

    #[test]
    fn only_a_changed_acknowledgement_is_an_update() {
        let first = json!({"at_ms": 5, "kind": "conflict.acknowledged", "payload": {"acked_ms": [5, null]}});
        let repeat = json!({"at_ms": 9, "kind": "conflict.acknowledged", "payload": {"acked_ms": [5, null]}});
        assert_eq!(event_kind(&first), Some("conflict.updated"));
        assert_eq!(event_kind(&repeat), None);
        let opened = json!({"at_ms": 1, "kind": "conflict.opened", "payload": {}});
        assert_eq!(event_kind(&opened), Some("conflict.opened"));
        let notified = json!({"at_ms": 1, "kind": "activity.notified", "payload": {}});
        assert_eq!(event_kind(&notified), None);
    }
}
