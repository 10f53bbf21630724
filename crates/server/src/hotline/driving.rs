//! The driver's side of the hotline (a child module of `driver`, so that it
//! shares the batch): every call into the machine is followed by
//! [`Driver::drain_hotline`], which turns each record into a
//! `hotline_records` row plus an audit leaf in the current batch (one
//! transaction), and schedules the machine's actions to be performed only
//! once that batch has committed.

use std::time::Duration;

use deconflict_engine::{PartyId, Timestamp};
use deconflict_hotline::{AckOutcome, Action, ConflictAck, ConflictId, HotlineError, MessageId, Record};
use serde_json::json;

use super::{completion, now_ms, reply_now, Batch, Driver, Fatal, PendingLeaf};
use crate::hotline::store::HotlineRow;
use crate::hotline::{leaf_of, problem, render_message, HotlineCommand, Work};
use crate::jcs::Jcs;
use crate::ledger::Row;
use crate::problem::ApiError;

impl Driver {
    /// Writes the hotline's pending records (row and leaf each) into the
    /// batch, and queues its actions for after the commit. Returns the
    /// index of the first leaf written.
    pub(super) fn drain_hotline(&mut self, batch: &mut Batch) -> Result<Option<u64>, Fatal> {
        let now = Timestamp(batch.now_ms);
        let mut first = None;
        while let Some(record) = self.ledger.hotline.machine.poll_record() {
            let earlier = match &record {
                Record::Message(message) => batch.messages_written.get(&message.id),
                _ => None,
            };
            let (index, row) = match record {
                // One per opened conflict: its row written directly and its
                // leaf by the sealer (the same bytes as `HotlineRow::of` and
                // as `leaf_of`'s payload encoded, tested beside each).
                Record::ConflictAck(ack) => {
                    let row = HotlineRow::conflict_ack(&ack, batch.now_ms);
                    (self.append_leaf(batch, PendingLeaf::ConflictAck(ack))?, row)
                }
                record => {
                    let (kind, payload, readers) = leaf_of(&record, earlier, now);
                    if let Record::Message(message) = &record {
                        batch.messages_written.insert(message.id, message.clone());
                    }
                    let index = self.leaf(batch, kind, &payload, readers)?;
                    (index, HotlineRow::of(&record, batch.now_ms))
                }
            };
            first.get_or_insert(index);
            batch.rows.push(Row::Hotline(row));
        }
        let mut work = Vec::new();
        while let Some(action) = self.ledger.hotline.machine.poll_action() {
            let message = match &action {
                Action::Deliver { message, .. } | Action::RepeatCot { message, .. } => {
                    self.ledger.hotline.machine.message(*message).cloned()
                }
                _ => None,
            };
            work.push(Work { action, message });
        }
        if !work.is_empty() {
            let sink = self.setup.hotline_sink.clone();
            // Completions run after the commit (and not at all, with an
            // error, when it fails: the rebuilt machine redoes what is due).
            batch.completions.push(Box::new(move |committed| {
                if committed.is_ok() {
                    sink.send(work);
                }
            }));
        }
        Ok(first)
    }

    /// Fires the hotline's timers due at the batch's time.
    pub(super) fn hotline_tick(&mut self, batch: &mut Batch) -> Result<(), Fatal> {
        self.ledger.hotline.machine.handle_tick(Timestamp(batch.now_ms));
        self.drain_hotline(batch).map(|_| ())
    }

    /// How long the driver may wait for a command: until the next hotline
    /// deadline, at most `tick`.
    pub(super) fn hotline_wait(&self, tick: Duration) -> Duration {
        match self.ledger.hotline.machine.next_deadline() {
            None => tick,
            Some(due) => {
                let ms = (due.unix_ms() - now_ms()).max(0) as u64;
                tick.min(Duration::from_millis(ms))
            }
        }
    }

    /// A new party of the service is a party of the hotline (no ladder).
    pub(super) fn hotline_register(&mut self, party: PartyId) {
        self.ledger.hotline.register(party);
    }

    /// A conflict opened: every party involved must acknowledge it.
    pub(super) fn hotline_conflict_opened(
        &mut self,
        batch: &mut Batch,
        conflict: u64,
        parties: [PartyId; 2],
    ) -> Result<(), Fatal> {
        let mut list = vec![parties[0]];
        if parties[1] != parties[0] {
            list.push(parties[1]);
        }
        let now = Timestamp(batch.now_ms);
        if let Err(error) = self
            .ledger
            .hotline
            .machine
            .require_conflict_ack(now, ConflictId(conflict), &list)
        {
            // The conflict itself stands; only its acknowledgement deadline
            // is not watched (a limit of the hotline was reached).
            tracing::warn!(%error, conflict, "the hotline does not watch this conflict's acknowledgement");
        }
        self.drain_hotline(batch).map(|_| ())
    }

    /// A party acknowledged a conflict: its ladder stops.
    pub(super) fn hotline_conflict_acked(
        &mut self,
        batch: &mut Batch,
        conflict: u64,
        party: PartyId,
    ) -> Result<(), Fatal> {
        let now = Timestamp(batch.now_ms);
        // Conflicts opened before the hotline was wired have no row: nothing
        // to stop.
        let _ = self
            .ledger
            .hotline
            .machine
            .conflict_acked(now, ConflictId(conflict), party);
        self.drain_hotline(batch).map(|_| ())
    }

    /// A conflict is over: its deadline and ladders stop.
    pub(super) fn hotline_conflict_over(&mut self, batch: &mut Batch, conflict: u64) -> Result<(), Fatal> {
        let now = Timestamp(batch.now_ms);
        let _ = self
            .ledger
            .hotline
            .machine
            .conflict_resolved(now, ConflictId(conflict));
        self.drain_hotline(batch).map(|_| ())
    }

    pub(super) fn apply_hotline(&mut self, batch: &mut Batch, command: HotlineCommand) -> Result<(), Fatal> {
        let now = Timestamp(batch.now_ms);
        match command {
            HotlineCommand::Send {
                viewer,
                mut spec,
                reply,
            } => {
                spec.id = MessageId(self.ledger.hotline.next_message);
                spec.from = viewer.party;
                let id = spec.id;
                if let Err(error) = self.ledger.hotline.machine.send(now, spec) {
                    reply_now(reply, problem(&error));
                    return Ok(());
                }
                self.ledger.hotline.next_message += 1;
                let index = self
                    .drain_hotline(batch)?
                    .ok_or_else(|| Fatal("a sent message wrote no record".into()))?;
                let message = self
                    .ledger
                    .hotline
                    .machine
                    .message(id)
                    .cloned()
                    .ok_or_else(|| Fatal("a sent message is not held".into()))?;
                batch.completions.push(completion(reply, message, index));
            }
            HotlineCommand::Ack {
                viewer,
                message,
                reply,
            } => {
                let id = MessageId(message);
                let outcome = match self.ledger.hotline.machine.ack(now, id, viewer.party) {
                    Ok(outcome) => outcome,
                    Err(HotlineError::NotRecipient { .. }) => {
                        let sender = self
                            .ledger
                            .hotline
                            .machine
                            .message(id)
                            .is_some_and(|m| m.from == viewer.party);
                        // Only those who may see the message learn that it
                        // exists.
                        let error = if sender || viewer.broker {
                            ApiError::forbidden("only the recipient acknowledges a message")
                        } else {
                            ApiError::not_found("message")
                        };
                        reply_now(reply, error);
                        return Ok(());
                    }
                    Err(HotlineError::UnknownMessage { .. }) => {
                        reply_now(reply, ApiError::not_found("message"));
                        return Ok(());
                    }
                    Err(error) => {
                        reply_now(reply, problem(&error));
                        return Ok(());
                    }
                };
                let found = self
                    .ledger
                    .hotline
                    .machine
                    .message(id)
                    .cloned()
                    .ok_or_else(|| Fatal("an acknowledged message is not held".into()))?;
                let index = match self.drain_hotline(batch)? {
                    Some(index) => index,
                    // Acknowledging again changes nothing; it is still
                    // logged, which gives the answer its receipt.
                    None => self.leaf(
                        batch,
                        "message.acknowledged",
                        &json!({"again": true, "message": render_message(&found)}),
                        vec![found.from.0, found.to.0],
                    )?,
                };
                let again = matches!(outcome, AckOutcome::AlreadyAcked { .. });
                batch.completions.push(completion(reply, (found, again), index));
            }
            HotlineCommand::Report {
                viewer,
                mut spec,
                reply,
            } => {
                spec.id = deconflict_hotline::IncidentId(self.ledger.hotline.next_incident);
                spec.reporter = viewer.party;
                let id = spec.id;
                if let Err(error) = self.ledger.hotline.machine.report_incident(now, spec) {
                    reply_now(reply, problem(&error));
                    return Ok(());
                }
                self.ledger.hotline.next_incident += 1;
                let index = self
                    .drain_hotline(batch)?
                    .ok_or_else(|| Fatal("a reported incident wrote no record".into()))?;
                let incident = self
                    .ledger
                    .hotline
                    .machine
                    .incident(id)
                    .cloned()
                    .ok_or_else(|| Fatal("a reported incident is not held".into()))?;
                batch.completions.push(completion(reply, incident, index));
            }
            HotlineCommand::SetEscalation {
                party,
                contacts,
                reply,
            } => {
                if !self.ledger.parties.contains_key(&party) {
                    reply_now(reply, ApiError::not_found("party"));
                    return Ok(());
                }
                if let Err(error) = self.ledger.hotline.machine.set_party(party, contacts.clone()) {
                    reply_now(reply, problem(&error));
                    return Ok(());
                }
                let index = self
                    .drain_hotline(batch)?
                    .ok_or_else(|| Fatal("escalation contacts wrote no record".into()))?;
                batch.completions.push(completion(reply, contacts, index));
            }
            HotlineCommand::Delivered { message } => {
                // Unknown ids cannot come from the performer; nothing to do.
                let _ = self.ledger.hotline.machine.delivered(now, message);
                self.drain_hotline(batch)?;
            }
            HotlineCommand::StreamOpened { party } => {
                let waiting = self.ledger.hotline.machine.redeliver(party);
                if !waiting.is_empty() {
                    // The deliveries are performed after this batch commits
                    // (so never before the sends they repeat), and a batch
                    // commits only with a leaf: the redelivery is logged.
                    let ids: Vec<u64> = waiting.iter().map(|m| m.0).collect();
                    self.leaf(
                        batch,
                        "message.redelivery",
                        &json!({"party": party.0, "messages": ids}),
                        vec![party.0],
                    )?;
                    self.drain_hotline(batch)?;
                }
            }
            HotlineCommand::WebhookOutcome { call, succeeded } => {
                let machine = &mut self.ledger.hotline.machine;
                if succeeded {
                    machine.webhook_succeeded(now, call);
                } else {
                    machine.webhook_failed(now, call);
                }
                self.drain_hotline(batch)?;
            }
        }
        Ok(())
    }
}

/// The leaf `leaf_of` gives a conflict's acknowledgement record
/// (`hotline.conflict_ack`, the record as serde writes it), encoded, but
/// written directly in JCS order (see `crate::jcs`).
pub(super) fn conflict_ack_leaf_bytes(
    ack: &ConflictAck,
    at_ms: i64,
) -> Result<Vec<u8>, deconflict_audit::Error> {
    let mut jcs = Jcs::leaf("hotline.conflict_ack", at_ms, 256)?;
    jcs.raw(b"{\"conflict_ack\":{\"conflict\":");
    jcs.uint(ack.conflict.0)?;
    jcs.raw(b",\"deadline\":");
    jcs.int(ack.deadline.0)?;
    jcs.raw(b",\"deadline_fired\":");
    jcs.bool(ack.deadline_fired);
    jcs.raw(b",\"parties\":[");
    for (at, party) in ack.parties.iter().enumerate() {
        if at > 0 {
            jcs.raw(b",");
        }
        jcs.raw(b"{\"acked_at\":");
        jcs.opt_int(party.acked_at.map(|t| t.0))?;
        jcs.raw(b",\"overdue_at\":");
        jcs.opt_int(party.overdue_at.map(|t| t.0))?;
        jcs.raw(b",\"party\":");
        jcs.uint(party.party.0)?;
        jcs.raw(b"}");
    }
    jcs.raw(b"],\"required_at\":");
    jcs.int(ack.required_at.0)?;
    jcs.raw(b"}}");
    Ok(jcs.end_leaf())
}

#[cfg(test)]
mod tests {
    use deconflict_hotline::ConflictParty;

    use super::*;

    /// The directly written acknowledgement leaf is byte for byte the
    /// leaf of `leaf_of`'s payload (so a field added to the record fails
    /// here), with its readers, for any number of parties and every
    /// optional member.
    #[test]
    fn conflict_ack_leaf_bytes_equal_leaf_of() {
        for parties in 0..4_u64 {
            for variant in 0..4_i64 {
                let ack = ConflictAck {
                    conflict: ConflictId(variant as u64 * 1_000 + parties),
                    required_at: Timestamp(1_790_000_000_000 + variant),
                    deadline: Timestamp(-variant),
                    parties: (0..parties)
                        .map(|p| ConflictParty {
                            party: PartyId(p * 7),
                            acked_at: (variant % 2 == 1).then_some(Timestamp(p as i64 - 3)),
                            overdue_at: (variant >= 2).then_some(Timestamp(1_790_000_000_999)),
                        })
                        .collect(),
                    deadline_fired: variant == 3,
                };
                let at_ms = 1_790_000_000_123 - variant * 10_000_000;
                let record = Record::ConflictAck(ack.clone());
                let (kind, payload, readers) = leaf_of(&record, None, Timestamp(at_ms));
                let direct = conflict_ack_leaf_bytes(&ack, at_ms).unwrap();
                crate::jcs::assert_same_leaf(direct, kind, at_ms, &payload);
                let direct_readers: Vec<u64> = ack.parties.iter().map(|p| p.party.0).collect();
                assert_eq!(direct_readers, readers);
            }
        }
        let beyond = ConflictAck {
            conflict: ConflictId(1 << 53),
            required_at: Timestamp(0),
            deadline: Timestamp(0),
            parties: Vec::new(),
            deadline_fired: false,
        };
        assert!(conflict_ack_leaf_bytes(&beyond, 0).is_err());
    }
}
