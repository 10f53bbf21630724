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
//!   the same way and announces what those leaves say, once per node, in
//!   log order ([`announced_between`]): their conflict events go to its
//!   hub with their log index as the SSE id, and the hotline's deliveries
//!   and notifications, derived from the hotline leaves ([`hotline_work`]),
//!   go to its performer, which pushes them to this node's streams and TAK
//!   clients and reports a delivery as on the committing node. Webhook
//!   calls and evidence capture are performed once, by the committing node.
//! - **Timers once.** Hotline deadlines and activity ends are evaluated by
//!   every node's driver, but what they change is written through the same
//!   swap and their actions are performed only after the commit: the node
//!   that loses redoes its batch on the winner's state, where the deadline
//!   has already fired, so it fires once.

use deconflict_engine::Timestamp;
use deconflict_hotline::{
    Action, ConflictParty, Contact, Event as HotlineEvent, Hotline, Phase, Priority, Record, RecordKey,
    Subject as HotlineSubject,
};
use deconflict_store::{params, Db, StoreError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

use crate::auth::{token_hash, Caller};
use crate::hotline::Work;
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

/// What the leaves `[from, to)`, which other nodes wrote, announce to this
/// node's parties: the conflict events for the hub (in log order, the log
/// index as SSE id) and the hotline's deliveries and notifications for the
/// performer (in log order).
#[derive(Debug, Default)]
pub struct Announced {
    pub events: Vec<HubEvent>,
    pub work: Vec<Work>,
}

/// Reads the leaves `[from, to)` and derives what they announce: the
/// conflict as each conflict leaf recorded it (with the time it opened and
/// its sides' sharing read from the conflict's row), and the hotline's
/// party-facing actions from each hotline leaf ([`HotlineReplay`], looked
/// up in `hotline`, the machine rebuilt at `to`).
pub fn announced_between(
    db: &mut Db<'_>,
    from: u64,
    to: u64,
    hotline: &Hotline,
) -> Result<Announced, StoreError> {
    let leaves = db.query_map(
        "SELECT idx, leaf FROM log_leaves WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        params![sql_u64(from), sql_u64(to)],
        |row| Ok((row.get_u64(0)?, row.get_blob(1)?)),
    )?;
    let mut announced = Announced::default();
    let mut replay = HotlineReplay::default();
    for (index, bytes) in leaves {
        let Ok(leaf) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        announced.work.extend(replay.work(&leaf, hotline));
        let Some(kind) = event_kind(&leaf) else {
            continue;
        };
        let Some(event) = conflict_event(db, kind, index, &leaf)? else {
            continue;
        };
        announced.events.push(event);
    }
    Ok(announced)
}

/// Derives, leaf by leaf in log order, the actions of the hotline machine
/// that reach parties (deliveries, notifications, CoT repeats and ladder
/// alerts) which the node that wrote the leaves performed on its own
/// streams, so that this node performs them on its streams too. Each
/// hotline leaf is one record of one machine transition, stamped with its
/// batch's time; the transition shows in the record: compared with the
/// record of the same row earlier in the range (one batch may change a row
/// twice at the same time: a flash message's repeat falls due with its
/// deadline), or, for the first, by the time field equal to the leaf's
/// `at_ms` (which the leaf's kind names) or the ladder step it moved past.
/// A range always holds whole batches (a batch commits all its leaves or
/// none).
///
/// Never derived: webhook calls and evidence capture (done once, by the
/// node that committed them) and redeliveries (`message.redelivery`: they
/// answer a stream that opened on the committing node; a stream opening
/// here gets its own). `hotline` is the machine rebuilt after the range; it
/// names the sides of a ladder's subject, as the committing machine did.
#[derive(Debug, Default)]
pub struct HotlineReplay {
    /// The last record of each row seen in the range.
    last: HashMap<RecordKey, Record>,
}

impl HotlineReplay {
    /// The actions `leaf` announces (none for a leaf that is not a
    /// hotline record).
    pub fn work(&mut self, leaf: &Value, hotline: &Hotline) -> Vec<Work> {
        let (Some(kind), Some(at_ms), Some(payload)) = (
            leaf.get("kind").and_then(Value::as_str),
            leaf.get("at_ms").and_then(Value::as_i64),
            leaf.get("payload"),
        ) else {
            return Vec::new();
        };
        // Not a record (a repeated acknowledgement, a redelivery, a
        // conflict leaf): nothing of the hotline's to announce.
        let Ok(record) = Record::deserialize(payload) else {
            return Vec::new();
        };
        let prior = self.last.insert(record.key(), record.clone());
        hotline_work(kind, Timestamp(at_ms), record, prior, hotline)
    }
}

fn hotline_work(
    kind: &str,
    now: Timestamp,
    record: Record,
    prior: Option<Record>,
    hotline: &Hotline,
) -> Vec<Work> {
    let mut work = Vec::new();
    match record {
        Record::Message(message) => {
            let (id, from, to) = (message.id, message.from, message.to);
            let (sent, acked, overdue, repeated) = match &prior {
                Some(Record::Message(before)) => (
                    false,
                    before.acked_at.is_none() && message.acked_at.is_some(),
                    before.overdue_at.is_none() && message.overdue_at.is_some(),
                    message.cot_sends > before.cot_sends,
                ),
                _ => (
                    kind == "message.sent",
                    kind == "message.acknowledged",
                    kind == "message.overdue",
                    // A flash repeat: `cot_sends` counts the sends so far.
                    kind == "message.repeated" && message.cot_sends > 0,
                ),
            };
            if sent {
                work.push(Work {
                    action: Action::Deliver { message: id, to },
                    message: Some(message.clone()),
                });
                if message.priority == Priority::Flash {
                    work.push(Work {
                        action: Action::RepeatCot {
                            party: to,
                            message: id,
                            repeat: 0,
                        },
                        message: Some(message.clone()),
                    });
                }
            }
            if acked {
                notify(
                    &mut work,
                    from,
                    HotlineEvent::MessageAcked {
                        message: id,
                        from,
                        to,
                        acked_at: message.acked_at.unwrap_or(now),
                    },
                );
            }
            if let (true, Some(deadline)) = (overdue, message.deadline()) {
                for side in [from, to] {
                    notify(
                        &mut work,
                        side,
                        HotlineEvent::MessageOverdue {
                            message: id,
                            from,
                            to,
                            priority: message.priority,
                            deadline,
                        },
                    );
                }
            }
            if repeated && !sent {
                work.push(Work {
                    action: Action::RepeatCot {
                        party: to,
                        message: id,
                        repeat: message.cot_sends - 1,
                    },
                    message: Some(message),
                });
            }
        }
        Record::ConflictAck(row) => {
            let before = match &prior {
                Some(Record::ConflictAck(before)) => Some(before),
                _ => None,
            };
            // Whether `party`'s field moved in this record: unset before
            // it, or, first in the range, set to the leaf's time.
            let moved =
                |party: PartyId, at: Option<Timestamp>, field: fn(&ConflictParty) -> Option<Timestamp>| {
                    match before {
                        Some(before) => {
                            at.is_some()
                                && before
                                    .parties
                                    .iter()
                                    .find(|p| p.party == party)
                                    .is_some_and(|p| field(p).is_none())
                        }
                        None => at == Some(now),
                    }
                };
            let everyone = row.party_ids();
            for acked in row
                .parties
                .iter()
                .filter(|p| moved(p.party, p.acked_at, |p| p.acked_at))
            {
                for &other in everyone.iter().filter(|&&p| p != acked.party) {
                    notify(
                        &mut work,
                        other,
                        HotlineEvent::ConflictAcked {
                            conflict: row.conflict,
                            party: acked.party,
                            acked_at: acked.acked_at.unwrap_or(now),
                        },
                    );
                }
            }
            if row.deadline_fired {
                for late in row
                    .parties
                    .iter()
                    .filter(|p| moved(p.party, p.overdue_at, |p| p.overdue_at))
                {
                    for &to in &everyone {
                        notify(
                            &mut work,
                            to,
                            HotlineEvent::ConflictOverdue {
                                conflict: row.conflict,
                                party: late.party,
                                deadline: row.deadline,
                            },
                        );
                    }
                }
            }
        }
        Record::Escalation(escalation) => {
            let (subject, party) = (escalation.subject, escalation.party);
            // A ladder is written waiting at step k > 0, or exhausted, only
            // when the step before was just worked.
            let worked = match escalation.phase {
                Phase::Waiting { step, .. } => step.checked_sub(1),
                Phase::Exhausted { .. } => u16::try_from(escalation.steps.len())
                    .ok()
                    .and_then(|n| n.checked_sub(1)),
                _ => None,
            };
            let contact =
                worked.and_then(|step| Some((step, &escalation.steps.get(usize::from(step))?.contact)));
            match contact {
                Some((step, Contact::Party { party: contact })) => notify(
                    &mut work,
                    *contact,
                    HotlineEvent::Escalated {
                        subject,
                        party,
                        step,
                        deadline: escalation.deadline,
                    },
                ),
                Some((step, Contact::Tak)) => work.push(Work {
                    action: Action::AlertCot { party, subject, step },
                    message: None,
                }),
                // The webhook was called by the committing node.
                Some((_, Contact::Webhook { .. })) | None => {}
            }
            if matches!(escalation.phase, Phase::Exhausted { .. }) {
                let sides = match subject {
                    HotlineSubject::Message(id) => hotline
                        .message(id)
                        .map(|m| vec![m.from, m.to])
                        .unwrap_or_default(),
                    HotlineSubject::Conflict { conflict, party } => hotline
                        .conflict_ack(conflict)
                        .map(|c| c.party_ids())
                        .unwrap_or_else(|| vec![party]),
                };
                for side in sides {
                    notify(
                        &mut work,
                        side,
                        HotlineEvent::EscalationExhausted { subject, party },
                    );
                }
            }
        }
        Record::Incident(incident) => {
            for &to in incident.parties.iter().filter(|&&p| p != incident.reporter) {
                notify(
                    &mut work,
                    to,
                    HotlineEvent::Incident {
                        incident: incident.id,
                        reporter: incident.reporter,
                        occurred_at: incident.occurred_at,
                    },
                );
            }
        }
        Record::Party { .. } | Record::ConflictRemoved(_) | Record::EscalationRemoved(_) => {}
    }
    work
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

/// A hotline event for one party, as the machine's `Action::Notify`.
fn notify(work: &mut Vec<Work>, to: PartyId, event: HotlineEvent) {
    work.push(Work {
        action: Action::Notify { to, event },
        message: None,
    });
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

    use deconflict_engine::ActivityId as EngineActivity;
    use deconflict_hotline::{
        ConflictId, HotlineConfig, IncidentId, IncidentSpec, LadderStep, MessageId, MessageSpec,
        PartyContacts,
    };

    /// Runs a real hotline machine through messages (routine and flash),
    /// acknowledgements, missed deadlines, a conflict's acknowledgements,
    /// ladders of every contact kind (a webhook that fails once) and an
    /// incident; after every call, turns each record into its leaf as the
    /// driver writes it, and checks that the actions derived from the
    /// leaves are exactly the machine's party-facing actions, in order.
    #[test]
    fn the_leaves_give_the_hotline_actions_that_reach_parties() {
        let (us, ru, hq) = (PartyId(1), PartyId(2), PartyId(3));
        let mut machine = Hotline::restore(HotlineConfig::default(), Vec::new()).unwrap();
        let ladder = PartyContacts {
            escalation: vec![
                LadderStep {
                    delay_s: 0,
                    contact: Contact::Webhook {
                        url: "https://hq.example/hook".into(),
                        secret: "s3cret-s3cret-s3cret-s3cret".into(),
                    },
                },
                LadderStep {
                    delay_s: 5,
                    contact: Contact::Party { party: hq },
                },
                LadderStep {
                    delay_s: 5,
                    contact: Contact::Tak,
                },
            ],
        };
        machine.set_party(hq, PartyContacts::default()).unwrap();
        machine.set_party(us, ladder.clone()).unwrap();
        machine.set_party(ru, ladder).unwrap();

        let t0 = 1_900_000_000_000;
        let mut checked = std::collections::BTreeMap::<String, usize>::new();
        let mut failed_once = false;
        let mut compare = |machine: &mut Hotline, now: i64| -> Vec<Action> {
            let mut derived = Vec::new();
            // One call's records are one batch: a replay per batch.
            let mut replay = HotlineReplay::default();
            let mut written = std::collections::HashMap::new();
            while let Some(record) = machine.poll_record() {
                let earlier = match &record {
                    Record::Message(message) => written.insert(message.id, message.clone()),
                    _ => None,
                };
                let (kind, payload, _) = crate::hotline::leaf_of(&record, earlier.as_ref(), Timestamp(now));
                let bytes = deconflict_audit::LeafEvent {
                    kind,
                    at_ms: now,
                    payload: &payload,
                }
                .encode()
                .unwrap();
                let leaf: Value = serde_json::from_slice(&bytes).unwrap();
                derived.extend(replay.work(&leaf, machine).into_iter().map(|w| w.action));
            }
            let actions: Vec<Action> = std::iter::from_fn(|| machine.poll_action()).collect();
            let reaching: Vec<Action> = actions
                .iter()
                .filter(|a| !matches!(a, Action::CallWebhook { .. } | Action::PreserveTracks { .. }))
                .cloned()
                .collect();
            assert_eq!(derived, reaching, "at {now}");
            for action in &reaching {
                let name = match action {
                    Action::Notify { event, .. } => event.type_name(),
                    Action::Deliver { .. } => "deliver",
                    Action::RepeatCot { .. } => "repeat_cot",
                    Action::AlertCot { .. } => "alert_cot",
                    _ => "other",
                };
                *checked.entry(name.to_owned()).or_default() += 1;
            }
            actions
        };
        let message = |id: u64, from: PartyId, to: PartyId, priority: Priority| MessageSpec {
            id: MessageId(id),
            from,
            to,
            priority,
            body: format!("message {id}"),
            ack_within_s: Some(60),
            link: None,
        };
        let mut now = t0;
        machine
            .send(Timestamp(now), message(1, us, ru, Priority::Routine))
            .unwrap();
        compare(&mut machine, now);
        machine
            .send(Timestamp(now), message(2, ru, us, Priority::Flash))
            .unwrap();
        compare(&mut machine, now);
        machine
            .require_conflict_ack(Timestamp(now), ConflictId(7), &[us, ru])
            .unwrap();
        compare(&mut machine, now);
        now += 1_000;
        machine.delivered(Timestamp(now), MessageId(1)).unwrap();
        compare(&mut machine, now);
        machine.conflict_acked(Timestamp(now), ConflictId(7), ru).unwrap();
        compare(&mut machine, now);
        machine
            .report_incident(
                Timestamp(now),
                IncidentSpec {
                    id: IncidentId(1),
                    reporter: us,
                    occurred_at: Timestamp(now - 120_000),
                    lon_deg: 41.23,
                    lat_deg: 36.78,
                    parties: vec![us, ru, hq],
                    description: "Warning shots near the oil field".into(),
                    activities: vec![EngineActivity(11)],
                    messages: vec![MessageId(1)],
                    entities: vec![],
                },
            )
            .unwrap();
        compare(&mut machine, now);
        // Time runs: flash repeats, both messages' deadlines, the
        // conflict's, and the ladders to their end; the webhook's first
        // call fails, its retry succeeds.
        for _ in 0..2_000 {
            now += 1_000;
            if now == t0 + 90_000 {
                machine.ack(Timestamp(now), MessageId(2), us).unwrap();
                compare(&mut machine, now);
            }
            machine.handle_tick(Timestamp(now));
            for action in compare(&mut machine, now) {
                if let Action::CallWebhook { call, .. } = action {
                    if failed_once {
                        machine.webhook_succeeded(Timestamp(now), call);
                    } else {
                        machine.webhook_failed(Timestamp(now), call);
                        failed_once = true;
                    }
                    compare(&mut machine, now);
                }
            }
        }
        for kind in [
            "deliver",
            "repeat_cot",
            "alert_cot",
            "message.acked",
            "message.overdue",
            "conflict.acked",
            "conflict.overdue",
            "escalation",
            "escalation.exhausted",
            "incident",
        ] {
            assert!(
                checked.contains_key(kind),
                "never exercised: {kind} ({checked:?})"
            );
        }
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
