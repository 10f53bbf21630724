//! The hotline state machine: parties, messages, conflict acknowledgements and
//! the timers that watch their deadlines.
//!
//! Like the engine it is sans-IO: inputs are method calls that take `now`,
//! outputs are return values, [`Action`]s for the driver to perform and
//! [`Record`]s for it to store. It never reads the clock; the driver sleeps
//! until [`Hotline::next_deadline`] and then calls [`Hotline::handle_tick`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use deconflict_engine::{PartyId, Timestamp};

use crate::action::{Action, Event};
use crate::config::{ConfigError, HotlineConfig};
use crate::contacts::PartyContacts;
use crate::error::HotlineError;
use crate::ids::{CallKey, ConflictId, IncidentId, Link, MessageId, Priority, Subject};
use crate::record::{
    after_s, ConflictAck, ConflictParty, Escalation, Incident, Message, Phase, Record, RecordKey,
};

/// A message as the sender asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSpec {
    pub id: MessageId,
    pub from: PartyId,
    pub to: PartyId,
    pub priority: Priority,
    pub body: String,
    /// `None`: the priority's default from [`AckDefaults`](crate::AckDefaults).
    pub ack_within_s: Option<u32>,
    pub link: Option<Link>,
}

/// The answer to an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    Acked,
    /// It was acknowledged before, at `acked_at`; nothing changed. A second
    /// acknowledgement is not an error because clients retry requests whose
    /// answer they did not see, and the second one means the same as the
    /// first.
    AlreadyAcked {
        acked_at: Timestamp,
    },
}

/// What became of a reported webhook outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallReport {
    /// The ladder moved on (success, or failure: retry or next step).
    Applied,
    /// The call is not the one the ladder waits for: it already timed out,
    /// the subject was acknowledged, or the key is unknown. Nothing changed.
    Stale,
}

/// Records that cannot be a hotline's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("record {key}: {reason}")]
    Inconsistent { key: String, reason: &'static str },
}

/// What a timer is for. Ordered so that ties between timers due at the same
/// millisecond are broken the same way on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    AckDeadline(MessageId),
    CotRepeat(MessageId),
    ConflictDeadline(ConflictId),
    Escalation(Subject),
}

/// The hotline between parties' liaison cells. See the crate documentation
/// for the driver's loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Hotline {
    pub(crate) config: HotlineConfig,
    pub(crate) parties: BTreeMap<PartyId, PartyContacts>,
    pub(crate) messages: BTreeMap<MessageId, Message>,
    /// Unacknowledged messages by sender (derived from `messages`).
    pub(crate) open_messages: BTreeMap<PartyId, usize>,
    pub(crate) conflicts: BTreeMap<ConflictId, ConflictAck>,
    pub(crate) escalations: BTreeMap<Subject, Escalation>,
    pub(crate) incidents: BTreeMap<IncidentId, Incident>,
    /// Every pending timer, in firing order; derived from the rows.
    timers: BTreeSet<(Timestamp, Timer)>,
    timer_due: BTreeMap<Timer, Timestamp>,
    pub(crate) actions: VecDeque<Action>,
    records: VecDeque<Record>,
}

impl Hotline {
    pub fn new(config: HotlineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            parties: BTreeMap::new(),
            messages: BTreeMap::new(),
            open_messages: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            escalations: BTreeMap::new(),
            incidents: BTreeMap::new(),
            timers: BTreeSet::new(),
            timer_due: BTreeMap::new(),
            actions: VecDeque::new(),
            records: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &HotlineConfig {
        &self.config
    }

    // ---- outputs -------------------------------------------------------

    /// The next thing for the driver to do, in the order the machine decided.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next state change for the driver to store, in order.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// When [`handle_tick`](Self::handle_tick) must next be called; `None`
    /// when nothing is pending. May be in the past (a deadline passed while
    /// the service was down, or a step with no delay): tick at once.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.first().map(|(due, _)| *due)
    }

    /// Fires every timer due at `now`, earliest first (ties in a fixed
    /// order), including those that firing makes due at `now`. What a late
    /// timer schedules is counted from `now`, not from when it was due, so
    /// that a restart after a long outage does not run whole ladders at once.
    pub fn handle_tick(&mut self, now: Timestamp) {
        while let Some(&(due, timer)) = self.timers.first() {
            if due > now {
                break;
            }
            self.set_timer(timer, None);
            match timer {
                Timer::AckDeadline(id) => self.message_overdue(now, id),
                Timer::CotRepeat(id) => self.repeat_cot(now, id),
                Timer::ConflictDeadline(id) => self.conflict_overdue(now, id),
                Timer::Escalation(subject) => self.escalation_due(now, subject),
            }
        }
    }

    // ---- parties -------------------------------------------------------

    /// Adds a party or replaces its contacts. Every party that sends,
    /// receives or acknowledges must have been set, even with no ladder.
    pub fn set_party(&mut self, party: PartyId, contacts: PartyContacts) -> Result<(), HotlineError> {
        let limits = &self.config.limits;
        if !self.parties.contains_key(&party) && self.parties.len() >= limits.max_parties {
            return Err(HotlineError::TooManyParties {
                max: limits.max_parties,
            });
        }
        contacts.validate(limits, |p| p == party || self.parties.contains_key(&p))?;
        self.records.push_back(Record::Party {
            party,
            contacts: contacts.clone(),
        });
        self.parties.insert(party, contacts);
        Ok(())
    }

    pub fn party(&self, party: PartyId) -> Option<&PartyContacts> {
        self.parties.get(&party)
    }

    // ---- messages ------------------------------------------------------

    /// Sends a message: it is delivered at once (and, if flash, sent as CoT
    /// and repeated), and its deadline starts now.
    pub fn send(&mut self, now: Timestamp, spec: MessageSpec) -> Result<(), HotlineError> {
        let limits = &self.config.limits;
        if !self.parties.contains_key(&spec.from) {
            return Err(HotlineError::UnknownSender { party: spec.from });
        }
        if !self.parties.contains_key(&spec.to) {
            return Err(HotlineError::UnknownRecipient { party: spec.to });
        }
        if spec.from == spec.to {
            return Err(HotlineError::MessageToSelf { party: spec.to });
        }
        if spec.body.trim().is_empty() {
            return Err(HotlineError::EmptyBody);
        }
        if spec.body.len() > limits.max_body_bytes {
            return Err(HotlineError::BodyTooLong {
                len: spec.body.len(),
                max: limits.max_body_bytes,
            });
        }
        if let Some(value) = spec.ack_within_s {
            if value == 0 || value > limits.max_ack_within_s {
                return Err(HotlineError::AckWithinOutOfRange {
                    value,
                    max: limits.max_ack_within_s,
                });
            }
        }
        if let Some(Link::Incident(incident)) = spec.link {
            if !self.incidents.contains_key(&incident) {
                return Err(HotlineError::UnknownIncidentLink { incident });
            }
        }
        if self.messages.contains_key(&spec.id) {
            return Err(HotlineError::DuplicateMessage { id: spec.id });
        }
        if self.open_messages(spec.from) >= limits.max_open_messages_per_party {
            return Err(HotlineError::TooManyOpenMessages {
                party: spec.from,
                max: limits.max_open_messages_per_party,
            });
        }

        let flash = spec.priority == Priority::Flash;
        let message = Message {
            id: spec.id,
            from: spec.from,
            to: spec.to,
            priority: spec.priority,
            body: spec.body,
            link: spec.link,
            sent_at: now,
            ack_within_s: spec
                .ack_within_s
                .or(self.config.ack_within.for_priority(spec.priority)),
            delivered_at: None,
            acked_at: None,
            overdue_at: None,
            cot_sends: u32::from(flash),
            next_cot_at: (flash && self.config.max_flash_repeats > 1)
                .then(|| after_s(now, self.config.flash_repeat_every_s)),
        };
        self.actions.push_back(Action::Deliver {
            message: message.id,
            to: message.to,
        });
        if flash {
            self.actions.push_back(Action::RepeatCot {
                party: message.to,
                message: message.id,
                repeat: 0,
            });
        }
        *self.open_messages.entry(message.from).or_default() += 1;
        let id = message.id;
        self.messages.insert(id, message);
        self.message_changed(id);
        Ok(())
    }

    /// The driver pushed the message to the recipient. Only the first report
    /// counts; later ones change nothing.
    pub fn delivered(&mut self, now: Timestamp, id: MessageId) -> Result<(), HotlineError> {
        let message = self
            .messages
            .get_mut(&id)
            .ok_or(HotlineError::UnknownMessage { id })?;
        if message.delivered_at.is_none() {
            message.delivered_at = Some(now);
            self.message_changed(id);
        }
        Ok(())
    }

    /// One of `party`'s streams (SSE, WebSocket, a TAK client) has just
    /// opened: every message to it that was never delivered (nor
    /// acknowledged) is pushed again, as an [`Action::Deliver`] in id
    /// order, so that a message sent while the party was away reaches it
    /// when it comes back, and `delivered_at` records that moment. Changes
    /// no record; returns the messages queued.
    pub fn redeliver(&mut self, party: PartyId) -> Vec<MessageId> {
        let waiting: Vec<MessageId> = self
            .messages
            .values()
            .filter(|m| m.to == party && m.delivered_at.is_none() && !m.is_acked())
            .map(|m| m.id)
            .collect();
        for &message in &waiting {
            self.actions.push_back(Action::Deliver { message, to: party });
        }
        waiting
    }

    /// The recipient acknowledges. Stops the deadline, the flash repeats and
    /// any ladder at once, and tells the sender. An acknowledgement implies
    /// delivery. Acknowledging twice is answered with
    /// [`AckOutcome::AlreadyAcked`], not an error.
    pub fn ack(&mut self, now: Timestamp, id: MessageId, by: PartyId) -> Result<AckOutcome, HotlineError> {
        let message = self
            .messages
            .get_mut(&id)
            .ok_or(HotlineError::UnknownMessage { id })?;
        if message.to != by {
            return Err(HotlineError::NotRecipient {
                message: id,
                party: by,
                recipient: message.to,
            });
        }
        if let Some(acked_at) = message.acked_at {
            return Ok(AckOutcome::AlreadyAcked { acked_at });
        }
        message.acked_at = Some(now);
        message.delivered_at.get_or_insert(now);
        message.next_cot_at = None;
        let (from, to) = (message.from, message.to);
        if let Some(open) = self.open_messages.get_mut(&from) {
            *open -= 1;
            if *open == 0 {
                self.open_messages.remove(&from);
            }
        }
        self.message_changed(id);
        self.stop_escalation(now, Subject::Message(id));
        self.actions.push_back(Action::Notify {
            to: from,
            event: Event::MessageAcked {
                message: id,
                from,
                to,
                acked_at: now,
            },
        });
        Ok(AckOutcome::Acked)
    }

    pub fn message(&self, id: MessageId) -> Option<&Message> {
        self.messages.get(&id)
    }

    /// Every message, by id.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }

    /// Unacknowledged messages sent by `party`.
    pub fn open_messages(&self, party: PartyId) -> usize {
        self.open_messages.get(&party).copied().unwrap_or(0)
    }

    fn message_overdue(&mut self, now: Timestamp, id: MessageId) {
        let Some(message) = self.messages.get_mut(&id) else {
            return;
        };
        let Some(deadline) = message.deadline() else {
            return;
        };
        if message.is_acked() || message.overdue_at.is_some() {
            return;
        }
        message.overdue_at = Some(now);
        let (from, to, priority) = (message.from, message.to, message.priority);
        self.message_changed(id);
        for side in [from, to] {
            self.actions.push_back(Action::Notify {
                to: side,
                event: Event::MessageOverdue {
                    message: id,
                    from,
                    to,
                    priority,
                    deadline,
                },
            });
        }
        self.start_escalation(now, Subject::Message(id), to, deadline);
    }

    fn repeat_cot(&mut self, now: Timestamp, id: MessageId) {
        let Some(message) = self.messages.get_mut(&id) else {
            return;
        };
        if message.is_acked() || message.next_cot_at.is_none() {
            return;
        }
        let repeat = message.cot_sends;
        message.cot_sends += 1;
        message.next_cot_at = (message.cot_sends < self.config.max_flash_repeats)
            .then(|| after_s(now, self.config.flash_repeat_every_s));
        let party = message.to;
        self.message_changed(id);
        self.actions.push_back(Action::RepeatCot {
            party,
            message: id,
            repeat,
        });
    }

    // ---- conflicts -----------------------------------------------------

    /// A conflict was opened: each of `parties` must acknowledge it within
    /// `conflict_ack_within_s`.
    pub fn require_conflict_ack(
        &mut self,
        now: Timestamp,
        conflict: ConflictId,
        parties: &[PartyId],
    ) -> Result<(), HotlineError> {
        let limits = &self.config.limits;
        if self.conflicts.contains_key(&conflict) {
            return Err(HotlineError::DuplicateConflict { conflict });
        }
        if parties.is_empty() {
            return Err(HotlineError::NoConflictParties);
        }
        if parties.len() > limits.max_conflict_parties {
            return Err(HotlineError::TooMany {
                field: "parties",
                len: parties.len(),
                max: limits.max_conflict_parties,
            });
        }
        for (index, party) in parties.iter().enumerate() {
            if parties[..index].contains(party) {
                return Err(HotlineError::DuplicateParty { index, party: *party });
            }
            if !self.parties.contains_key(party) {
                return Err(HotlineError::UnknownParty { index, party: *party });
            }
        }
        if self.conflicts.len() >= limits.max_open_conflicts {
            return Err(HotlineError::TooManyOpenConflicts {
                max: limits.max_open_conflicts,
            });
        }
        let row = ConflictAck {
            conflict,
            required_at: now,
            deadline: after_s(now, self.config.conflict_ack_within_s),
            parties: parties
                .iter()
                .map(|&party| ConflictParty {
                    party,
                    acked_at: None,
                    overdue_at: None,
                })
                .collect(),
            deadline_fired: false,
        };
        self.conflicts.insert(conflict, row);
        self.conflict_changed(conflict);
        Ok(())
    }

    /// `party` acknowledges the conflict: its ladder (if any) stops at once
    /// and the other parties are told. Twice is [`AckOutcome::AlreadyAcked`].
    pub fn conflict_acked(
        &mut self,
        now: Timestamp,
        conflict: ConflictId,
        party: PartyId,
    ) -> Result<AckOutcome, HotlineError> {
        let row = self
            .conflicts
            .get_mut(&conflict)
            .ok_or(HotlineError::UnknownConflict { conflict })?;
        let entry = row
            .parties
            .iter_mut()
            .find(|p| p.party == party)
            .ok_or(HotlineError::NotInvolved { conflict, party })?;
        if let Some(acked_at) = entry.acked_at {
            return Ok(AckOutcome::AlreadyAcked { acked_at });
        }
        entry.acked_at = Some(now);
        let others: Vec<PartyId> = row.party_ids().into_iter().filter(|&p| p != party).collect();
        self.conflict_changed(conflict);
        self.stop_escalation(now, Subject::Conflict { conflict, party });
        for other in others {
            self.actions.push_back(Action::Notify {
                to: other,
                event: Event::ConflictAcked {
                    conflict,
                    party,
                    acked_at: now,
                },
            });
        }
        Ok(AckOutcome::Acked)
    }

    /// The conflict is over (resolved, cancelled, expired): its deadline and
    /// every ladder about it stop, and its rows are removed.
    pub fn conflict_resolved(&mut self, _now: Timestamp, conflict: ConflictId) -> Result<(), HotlineError> {
        let row = self
            .conflicts
            .remove(&conflict)
            .ok_or(HotlineError::UnknownConflict { conflict })?;
        self.set_timer(Timer::ConflictDeadline(conflict), None);
        self.records.push_back(Record::ConflictRemoved(conflict));
        for party in row.party_ids() {
            let subject = Subject::Conflict { conflict, party };
            if self.escalations.remove(&subject).is_some() {
                self.set_timer(Timer::Escalation(subject), None);
                self.records.push_back(Record::EscalationRemoved(subject));
            }
        }
        Ok(())
    }

    pub fn conflict_ack(&self, conflict: ConflictId) -> Option<&ConflictAck> {
        self.conflicts.get(&conflict)
    }

    fn conflict_overdue(&mut self, now: Timestamp, conflict: ConflictId) {
        let Some(row) = self.conflicts.get_mut(&conflict) else {
            return;
        };
        if row.deadline_fired {
            return;
        }
        row.deadline_fired = true;
        let deadline = row.deadline;
        let everyone = row.party_ids();
        let mut late = Vec::new();
        for entry in row.parties.iter_mut().filter(|p| p.acked_at.is_none()) {
            entry.overdue_at = Some(now);
            late.push(entry.party);
        }
        self.conflict_changed(conflict);
        for party in late {
            for &to in &everyone {
                self.actions.push_back(Action::Notify {
                    to,
                    event: Event::ConflictOverdue {
                        conflict,
                        party,
                        deadline,
                    },
                });
            }
            self.start_escalation(now, Subject::Conflict { conflict, party }, party, deadline);
        }
    }

    // ---- incidents -----------------------------------------------------

    pub fn incident(&self, id: IncidentId) -> Option<&Incident> {
        self.incidents.get(&id)
    }

    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    // ---- escalations ---------------------------------------------------

    pub fn escalation(&self, subject: Subject) -> Option<&Escalation> {
        self.escalations.get(&subject)
    }

    pub fn escalations(&self) -> impl Iterator<Item = &Escalation> {
        self.escalations.values()
    }

    /// The webhook call `call` answered 2xx: the ladder moves to its next
    /// step (after that step's delay).
    pub fn webhook_succeeded(&mut self, now: Timestamp, call: CallKey) -> CallReport {
        if !self.is_current_call(call) {
            return CallReport::Stale;
        }
        self.advance(now, call.subject, call.step);
        CallReport::Applied
    }

    /// The webhook call `call` failed (refused, non-2xx, timed out in the
    /// driver): retried with backoff, or the ladder moves on after the last
    /// attempt.
    pub fn webhook_failed(&mut self, now: Timestamp, call: CallKey) -> CallReport {
        if !self.is_current_call(call) {
            return CallReport::Stale;
        }
        self.call_failed(now, call.subject, call.step, call.attempt);
        CallReport::Applied
    }

    // ---- persistence ---------------------------------------------------

    /// The whole state as records, one per row: what a driver that compacts
    /// its journal writes.
    pub fn snapshot(&self) -> Vec<Record> {
        let parties = self.parties.iter().map(|(&party, contacts)| Record::Party {
            party,
            contacts: contacts.clone(),
        });
        let incidents = self.incidents.values().cloned().map(Record::Incident);
        let messages = self.messages.values().cloned().map(Record::Message);
        let conflicts = self.conflicts.values().cloned().map(Record::ConflictAck);
        let escalations = self.escalations.values().cloned().map(Record::Escalation);
        parties
            .chain(incidents)
            .chain(messages)
            .chain(conflicts)
            .chain(escalations)
            .collect()
    }

    /// Rebuilds a hotline from its rows (a snapshot, a journal of every record
    /// in order, or a snapshot followed by a journal: a later record for a key
    /// replaces an earlier one, a removal deletes it; rows of different keys
    /// may come in any order). Timers are derived from the rows, so a
    /// deadline that passed while the service was down is due at once and
    /// fires at the first [`handle_tick`](Self::handle_tick). Limits are not
    /// re-applied to what was accepted before.
    pub fn restore(
        config: HotlineConfig,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Self, RestoreError> {
        let mut hotline = Self::new(config)?;
        for record in records {
            match record {
                Record::Party { party, contacts } => {
                    hotline.parties.insert(party, contacts);
                }
                Record::Message(message) => {
                    hotline.messages.insert(message.id, message);
                }
                Record::ConflictAck(row) => {
                    hotline.conflicts.insert(row.conflict, row);
                }
                Record::ConflictRemoved(conflict) => {
                    hotline.conflicts.remove(&conflict);
                }
                Record::Escalation(escalation) => {
                    hotline.escalations.insert(escalation.subject, escalation);
                }
                Record::EscalationRemoved(subject) => {
                    hotline.escalations.remove(&subject);
                }
                Record::Incident(incident) => {
                    hotline.incidents.insert(incident.id, incident);
                }
            }
        }
        hotline.check_restored()?;
        let ids: Vec<MessageId> = hotline.messages.keys().copied().collect();
        for id in ids {
            let message = &hotline.messages[&id];
            if !message.is_acked() {
                *hotline.open_messages.entry(message.from).or_default() += 1;
            }
            hotline.sync_message_timers(id);
        }
        let conflicts: Vec<ConflictId> = hotline.conflicts.keys().copied().collect();
        for conflict in conflicts {
            hotline.sync_conflict_timer(conflict);
        }
        let subjects: Vec<Subject> = hotline.escalations.keys().copied().collect();
        for subject in subjects {
            hotline.sync_escalation_timer(subject);
        }
        Ok(hotline)
    }

    /// Refuses rows that refer to what the rows do not hold, so that the
    /// machine's lookups after a restore cannot fail.
    fn check_restored(&self) -> Result<(), RestoreError> {
        let inconsistent = |key: RecordKey, reason| {
            Err(RestoreError::Inconsistent {
                key: key.to_string(),
                reason,
            })
        };
        for message in self.messages.values() {
            if !self.parties.contains_key(&message.from) || !self.parties.contains_key(&message.to) {
                return inconsistent(
                    RecordKey::Message(message.id),
                    "its sender or recipient has no party row",
                );
            }
        }
        for row in self.conflicts.values() {
            if row.parties.iter().any(|p| !self.parties.contains_key(&p.party)) {
                return inconsistent(RecordKey::Conflict(row.conflict), "a party has no party row");
            }
        }
        for escalation in self.escalations.values() {
            let key = RecordKey::Escalation(escalation.subject);
            let owner_matches = match escalation.subject {
                Subject::Message(id) => self.messages.get(&id).map(|m| m.to == escalation.party),
                Subject::Conflict { conflict, party } => self
                    .conflicts
                    .get(&conflict)
                    .map(|c| c.involves(party) && party == escalation.party),
            };
            match owner_matches {
                None => return inconsistent(key, "its subject has no row"),
                Some(false) => return inconsistent(key, "its party is not the one its subject awaits"),
                Some(true) => {}
            }
            let step = match escalation.phase {
                Phase::Waiting { step, .. } | Phase::Calling { step, .. } | Phase::Backoff { step, .. } => {
                    step
                }
                Phase::Exhausted { .. } | Phase::Stopped { .. } => continue,
            };
            if usize::from(step) >= escalation.steps.len() {
                return inconsistent(key, "its step is past the end of its ladder");
            }
        }
        Ok(())
    }

    // ---- bookkeeping ---------------------------------------------------

    /// Writes the message's row and re-derives its timers: every change goes
    /// through here, so the live timers always equal those a restore derives.
    fn message_changed(&mut self, id: MessageId) {
        if let Some(message) = self.messages.get(&id) {
            self.records.push_back(Record::Message(message.clone()));
        }
        self.sync_message_timers(id);
    }

    fn conflict_changed(&mut self, conflict: ConflictId) {
        if let Some(row) = self.conflicts.get(&conflict) {
            self.records.push_back(Record::ConflictAck(row.clone()));
        }
        self.sync_conflict_timer(conflict);
    }

    pub(crate) fn escalation_changed(&mut self, subject: Subject) {
        if let Some(escalation) = self.escalations.get(&subject) {
            self.records.push_back(Record::Escalation(escalation.clone()));
        }
        self.sync_escalation_timer(subject);
    }

    pub(crate) fn record_incident(&mut self, id: IncidentId) {
        if let Some(incident) = self.incidents.get(&id) {
            self.records.push_back(Record::Incident(incident.clone()));
        }
    }

    fn sync_message_timers(&mut self, id: MessageId) {
        let (deadline, cot) = match self.messages.get(&id) {
            Some(message) if !message.is_acked() => (
                message.overdue_at.is_none().then(|| message.deadline()).flatten(),
                message.next_cot_at,
            ),
            _ => (None, None),
        };
        self.set_timer(Timer::AckDeadline(id), deadline);
        self.set_timer(Timer::CotRepeat(id), cot);
    }

    fn sync_conflict_timer(&mut self, conflict: ConflictId) {
        let due = self
            .conflicts
            .get(&conflict)
            .filter(|row| !row.deadline_fired && !row.all_acked())
            .map(|row| row.deadline);
        self.set_timer(Timer::ConflictDeadline(conflict), due);
    }

    fn sync_escalation_timer(&mut self, subject: Subject) {
        let due = self.escalations.get(&subject).and_then(|e| e.phase.due());
        self.set_timer(Timer::Escalation(subject), due);
    }

    fn set_timer(&mut self, timer: Timer, due: Option<Timestamp>) {
        if let Some(old) = self.timer_due.remove(&timer) {
            self.timers.remove(&(old, timer));
        }
        if let Some(due) = due {
            self.timers.insert((due, timer));
            self.timer_due.insert(timer, due);
        }
    }
}
