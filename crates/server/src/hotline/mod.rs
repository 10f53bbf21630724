//! The hotline (issue 5) wired into the service: messages between parties
//! with acknowledgement deadlines, the acknowledgement of new conflicts,
//! escalation ladders and incidents.
//!
//! The sans-IO machine ([`deconflict_hotline::Hotline`]) lives inside the
//! driver thread, next to the engine (`driver` calls it
//! through [`HotlineCommand`], and ticks it in every batch). Every
//! [`Record`] it emits becomes a `hotline_records` row *and* an audit leaf
//! in the same batch, hence the same transaction (see `driving.rs`). Its
//! [`Action`]s are handed, once the batch has committed, to the performer
//! (a tokio task started by [`crate::serve`]): deliveries and notifications
//! go to the hub (SSE), webhook calls go out with reqwest and their outcome
//! comes back as a command, CoT actions go to the [`HotlineHook`] that the
//! TAK wiring installs (and to the hub as events meanwhile).
//!
//! On start the machine is rebuilt with `Hotline::restore` from the rows:
//! a deadline that passed while the service was down is due at once, and
//! the driver's first wait is zero.

pub mod store;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use deconflict_engine::{PartyId, Timestamp};
use deconflict_formats::format_rfc3339;
use deconflict_hotline::{
    Action, CallKey, Contact, ErrorClass, Event, Hotline, HotlineConfig, HotlineError, Incident,
    IncidentSpec, LadderStep, Link, Message, MessageId, MessageSpec, PartyContacts, Priority, Record,
    RestoreError, Subject, SIGNATURE_HEADER,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::driver::{Command, Reply};
use crate::model::Viewer;
use crate::problem::{ApiError, FieldProblem};
use crate::state::AppState;

/// What handlers (and the performer) ask of the hotline, through the driver.
#[derive(Debug, Clone)]
pub enum HotlineCommand {
    /// `spec.id` and `spec.from` are set by the driver.
    Send {
        viewer: Viewer,
        spec: MessageSpec,
        reply: Reply<Message>,
    },
    /// The answer says whether it had been acknowledged before.
    Ack {
        viewer: Viewer,
        message: u64,
        reply: Reply<(Message, bool)>,
    },
    /// `spec.id` and `spec.reporter` are set by the driver.
    Report {
        viewer: Viewer,
        spec: IncidentSpec,
        reply: Reply<Incident>,
    },
    SetEscalation {
        party: PartyId,
        contacts: PartyContacts,
        reply: Reply<PartyContacts>,
    },
    /// The performer pushed the message to at least one of the recipient's
    /// streams.
    Delivered { message: MessageId },
    /// One of `party`'s streams opened (SSE, WebSocket, a TAK client):
    /// push again what was never delivered to it.
    StreamOpened { party: PartyId },
    /// A webhook call's outcome.
    WebhookOutcome { call: CallKey, succeeded: bool },
}

impl HotlineCommand {
    /// Whether the command was answered already (a redo skips it).
    pub fn answered(&self) -> bool {
        match self {
            HotlineCommand::Send { reply, .. } => reply.answered(),
            HotlineCommand::Ack { reply, .. } => reply.answered(),
            HotlineCommand::Report { reply, .. } => reply.answered(),
            HotlineCommand::SetEscalation { reply, .. } => reply.answered(),
            HotlineCommand::Delivered { .. }
            | HotlineCommand::StreamOpened { .. }
            | HotlineCommand::WebhookOutcome { .. } => false,
        }
    }

    /// Answers a command the driver will not run.
    pub fn fail(self, error: ApiError) {
        match self {
            HotlineCommand::Send { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            HotlineCommand::Ack { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            HotlineCommand::Report { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            HotlineCommand::SetEscalation { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            HotlineCommand::Delivered { .. }
            | HotlineCommand::StreamOpened { .. }
            | HotlineCommand::WebhookOutcome { .. } => {}
        }
    }
}

/// The machine and the ids the driver allocates for it.
#[derive(Debug)]
pub struct HotlineState {
    pub machine: Hotline,
    pub next_message: u64,
    pub next_incident: u64,
}

impl HotlineState {
    /// Rebuilds the machine from its rows. Every party of the service is a
    /// party of the hotline: a party row is written only when contacts are
    /// set, so each party starts as an empty ladder that its stored row (a
    /// later record for the same key) replaces.
    pub fn restore(
        config: HotlineConfig,
        records: Vec<Record>,
        parties: impl IntoIterator<Item = PartyId>,
    ) -> Result<Self, RestoreError> {
        let defaults = parties.into_iter().map(|party| Record::Party {
            party,
            contacts: PartyContacts::default(),
        });
        let machine = Hotline::restore(config, defaults.chain(records))?;
        let next_message = machine.messages().map(|m| m.id.0).max().unwrap_or(0) + 1;
        let next_incident = machine.incidents().map(|i| i.id.0).max().unwrap_or(0) + 1;
        Ok(Self {
            machine,
            next_message,
            next_incident,
        })
    }

    /// Makes `party` known to the machine with no ladder, writing nothing:
    /// "no row" already means "no ladder" on restore. Must be called with
    /// the record queue drained (the driver drains after every call).
    pub fn register(&mut self, party: PartyId) {
        if self.machine.party(party).is_some() {
            return;
        }
        if let Err(error) = self.machine.set_party(party, PartyContacts::default()) {
            tracing::error!(%error, party = party.0, "the hotline cannot hold another party");
        }
        while self.machine.poll_record().is_some() {}
    }
}

/// Maps a refused hotline command to a problem: the class chooses the
/// status, the pointer names the field.
pub fn problem(error: &HotlineError) -> ApiError {
    let (status, slug) = match error.class() {
        ErrorClass::BadInput => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        ErrorClass::NotFound => (StatusCode::NOT_FOUND, "not-found"),
        ErrorClass::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorClass::Duplicate => (StatusCode::CONFLICT, "conflict"),
        ErrorClass::LimitReached => (StatusCode::TOO_MANY_REQUESTS, "limit"),
    };
    let detail = error.to_string();
    let api = ApiError::new(status, slug, detail.clone());
    match error.pointer() {
        Some(pointer) => api.with_errors(vec![FieldProblem {
            pointer,
            message: detail,
        }]),
        None => api,
    }
}

fn time(at: Timestamp) -> Value {
    json!(format_rfc3339(at))
}

fn opt_time(at: Option<Timestamp>) -> Value {
    at.map_or(Value::Null, time)
}

/// A message as the API shows it.
pub fn render_message(message: &Message) -> Value {
    let (conflict_id, incident_id) = match message.link {
        Some(Link::Conflict(c)) => (Some(c.0), None),
        Some(Link::Incident(i)) => (None, Some(i.0)),
        None => (None, None),
    };
    json!({
        "id": message.id.0,
        "from": message.from.0,
        "to": message.to.0,
        "priority": message.priority.as_str(),
        "body": message.body,
        "state": message.state().as_str(),
        "conflict_id": conflict_id,
        "incident_id": incident_id,
        "sent_at": time(message.sent_at),
        "ack_within_s": message.ack_within_s,
        "ack_deadline": opt_time(message.deadline()),
        "delivered_at": opt_time(message.delivered_at),
        "acked_at": opt_time(message.acked_at),
        "overdue_at": opt_time(message.overdue_at),
    })
}

/// An incident as the API shows it.
pub fn render_incident(incident: &Incident) -> Value {
    json!({
        "id": incident.id.0,
        "reporter": incident.reporter.0,
        "time": time(incident.occurred_at),
        "reported_at": time(incident.reported_at),
        "lon": incident.lon_deg,
        "lat": incident.lat_deg,
        "location": {"type": "Point", "coordinates": [incident.lon_deg, incident.lat_deg]},
        "parties": incident.parties.iter().map(|p| p.0).collect::<Vec<_>>(),
        "description": incident.description,
        "activities": incident.activities.iter().map(|a| a.0).collect::<Vec<_>>(),
        "messages": incident.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
        "entities": incident.entities,
        "evidence": {"from": time(incident.evidence_from), "to": time(incident.evidence_to)},
    })
}

/// A ladder as the API and the audit log show it: never the secrets.
pub fn render_ladder(contacts: &PartyContacts) -> Value {
    Value::Array(
        contacts
            .escalation
            .iter()
            .map(|LadderStep { delay_s, contact }| match contact {
                Contact::Webhook { url, .. } => json!({"delay_s": delay_s, "kind": "webhook", "url": url}),
                Contact::Party { party } => json!({"delay_s": delay_s, "kind": "party", "party": party.0}),
                Contact::Tak => json!({"delay_s": delay_s, "kind": "tak"}),
            })
            .collect(),
    )
}

fn render_subject(subject: Subject) -> Value {
    match subject {
        Subject::Message(id) => json!({"message": id.0}),
        Subject::Conflict { conflict, party } => json!({"conflict": conflict.0, "party": party.0}),
    }
}

/// An event's `data` on `/v1/events`.
pub fn render_event(event: &Event) -> Value {
    match *event {
        Event::MessageAcked {
            message,
            from,
            to,
            acked_at,
        } => json!({"message": message.0, "from": from.0, "to": to.0, "acked_at": time(acked_at)}),
        Event::MessageOverdue {
            message,
            from,
            to,
            priority,
            deadline,
        } => json!({
            "message": message.0, "from": from.0, "to": to.0,
            "priority": priority.as_str(), "deadline": time(deadline),
        }),
        Event::ConflictAcked {
            conflict,
            party,
            acked_at,
        } => json!({"conflict": conflict.0, "party": party.0, "acked_at": time(acked_at)}),
        Event::ConflictOverdue {
            conflict,
            party,
            deadline,
        } => json!({"conflict": conflict.0, "party": party.0, "deadline": time(deadline)}),
        Event::Escalated {
            subject,
            party,
            step,
            deadline,
        } => json!({
            "subject": render_subject(subject), "party": party.0, "step": step, "deadline": time(deadline),
        }),
        Event::EscalationExhausted { subject, party } => {
            json!({"subject": render_subject(subject), "party": party.0})
        }
        Event::Incident {
            incident,
            reporter,
            occurred_at,
        } => json!({"incident": incident.0, "reporter": reporter.0, "time": time(occurred_at)}),
    }
}

/// The audit leaf of a record: its kind, payload and readers (parties that
/// may read it in full; brokers read everything). The payload is the row as
/// written, except that webhook secrets never enter the log. `earlier` is
/// the same message's record written before in this batch, if any: a
/// message's kind is the field this record set at `now`, and one batch can
/// write a message twice in the same millisecond (a flash repeat that falls
/// due with its deadline), so what the earlier record already set is not
/// this one's change.
pub fn leaf_of(
    record: &Record,
    earlier: Option<&Message>,
    now: Timestamp,
) -> (&'static str, Value, Vec<u64>) {
    let row = || serde_json::to_value(record).unwrap_or(Value::Null);
    match record {
        Record::Party { party, contacts } => (
            "hotline.escalation_set",
            json!({"party": party.0, "escalation": render_ladder(contacts)}),
            vec![party.0],
        ),
        Record::Message(message) => {
            let set_now = |at: Option<Timestamp>, field: fn(&Message) -> Option<Timestamp>| {
                at == Some(now) && earlier.and_then(field) != Some(now)
            };
            let kind = if set_now(message.acked_at, |m| m.acked_at) {
                "message.acknowledged"
            } else if set_now(message.overdue_at, |m| m.overdue_at) {
                "message.overdue"
            } else if set_now(message.delivered_at, |m| m.delivered_at) {
                "message.delivered"
            } else if earlier.is_none() && message.sent_at == now && message.delivered_at.is_none() {
                "message.sent"
            } else {
                "message.repeated"
            };
            (kind, row(), vec![message.from.0, message.to.0])
        }
        Record::ConflictAck(ack) => (
            "hotline.conflict_ack",
            row(),
            ack.parties.iter().map(|p| p.party.0).collect(),
        ),
        Record::ConflictRemoved(_) => ("hotline.conflict_ack_removed", row(), Vec::new()),
        Record::Escalation(escalation) => {
            // The row keeps the ladder as it was when the deadline passed,
            // webhook secrets included (the performer signs with them after
            // a restart); brokers read every leaf, so the leaf drops them.
            let mut payload = row();
            if let Some(steps) = payload
                .pointer_mut("/escalation/steps")
                .and_then(Value::as_array_mut)
            {
                for step in steps {
                    if let Some(webhook) = step
                        .pointer_mut("/contact/webhook")
                        .and_then(Value::as_object_mut)
                    {
                        webhook.remove("secret");
                    }
                }
            }
            ("hotline.escalation", payload, vec![escalation.party.0])
        }
        Record::EscalationRemoved(_) => ("hotline.escalation_removed", row(), Vec::new()),
        Record::Incident(incident) => {
            let mut readers: Vec<u64> = incident.parties.iter().map(|p| p.0).collect();
            if !readers.contains(&incident.reporter.0) {
                readers.push(incident.reporter.0);
            }
            ("incident.reported", row(), readers)
        }
    }
}

/// One action to perform after its batch committed, with the message it is
/// about (the performer has no access to the machine).
#[derive(Debug, Clone)]
pub struct Work {
    pub action: Action,
    pub message: Option<Message>,
}

/// The driver's end of the action queue.
#[derive(Debug, Clone)]
pub struct HotlineSink(mpsc::Sender<Vec<Work>>);

impl HotlineSink {
    /// Hands a committed batch's actions over; never waits (it runs on the
    /// committer thread). A full queue drops them and counts it: a lost
    /// webhook call times out and is retried, a lost delivery leaves the
    /// message `sent` (it is still listed and can be acknowledged).
    pub fn send(&self, work: Vec<Work>) {
        if self.0.try_send(work).is_err() {
            metrics::counter!("deconflict_hotline_actions_dropped_total").increment(1);
            tracing::warn!(
                "the hotline action queue is full or closed (--hotline-action-queue); actions dropped"
            );
        }
    }
}

/// Where the hotline reaches TAK clients: the serving path installs the
/// TAK wiring ([`crate::live::TakHotlineHook`]) when the performer starts;
/// a test may install its own with [`HotlineRuntime::set_hook`]. CoT
/// actions are hub events as well (`message.flash`,
/// `escalation.tak_alert`), so that web clients see them.
pub trait HotlineHook: Send + Sync {
    /// A message (not flash: flash messages go out by
    /// [`Self::repeat_flash`]) to `party`'s TAK clients; returns how many
    /// clients it was queued for (more than none counts as delivered).
    fn deliver(&self, party: PartyId, message: &Message) -> usize {
        let _ = (party, message);
        0
    }
    /// A flash message to send (again) to `party`'s TAK clients; returns
    /// how many clients it was queued for.
    fn repeat_flash(&self, party: PartyId, message: &Message, repeat: u32) -> usize;
    /// A ladder step: alert `party`'s TAK clients that `subject` is overdue.
    fn alert(&self, party: PartyId, subject: Subject, step: u16);
}

/// The performer's side: the queue's receiving end (taken once by
/// [`start_performer`]), the hook, the webhook client.
pub struct HotlineRuntime {
    queue: Mutex<Option<mpsc::Receiver<Vec<Work>>>>,
    hook: RwLock<Option<Arc<dyn HotlineHook>>>,
    client: reqwest::Client,
    webhook_timeout: Duration,
}

impl std::fmt::Debug for HotlineRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotlineRuntime")
            .field("webhook_timeout", &self.webhook_timeout)
            .finish_non_exhaustive()
    }
}

/// The action queue of `capacity` batches, for the driver and the performer.
pub fn channel(config: &HotlineConfig, capacity: usize) -> (HotlineSink, HotlineRuntime) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    // The HTTP call gives up a little before the machine counts the call
    // as failed, so that the outcome it reports is normally the one used.
    let timeout_ms = u64::from(config.webhook_timeout_s) * 900;
    (
        HotlineSink(sender),
        HotlineRuntime {
            queue: Mutex::new(Some(receiver)),
            hook: RwLock::new(None),
            client: reqwest::Client::new(),
            webhook_timeout: Duration::from_millis(timeout_ms.max(100)),
        },
    )
}

impl HotlineRuntime {
    /// Installs where CoT actions go (the TAK wiring).
    pub fn set_hook(&self, hook: Arc<dyn HotlineHook>) {
        *self
            .hook
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hook);
    }

    pub(crate) fn hook(&self) -> Option<Arc<dyn HotlineHook>> {
        self.hook
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Starts the performer on the current tokio runtime (once: later calls do
/// nothing).
pub fn start_performer(state: &AppState) {
    let Some(mut queue) = state
        .hotline
        .queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    else {
        return;
    };
    if state.hotline.hook().is_none() {
        state
            .hotline
            .set_hook(Arc::new(crate::live::TakHotlineHook::new(&state.live)));
    }
    // A TAK client that connects gets what was never delivered to its
    // party, like a new SSE or WebSocket stream (see `stream_opened`).
    let mut connected = state.live.tak_connected();
    let relay = state.clone();
    tokio::spawn(async move {
        loop {
            match connected.recv().await {
                Ok(party) => stream_opened(&relay, party),
                // Missed notices: those parties get their messages at their
                // next stream, or by listing them.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "TAK connection notices missed; redelivery waits for the next stream"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let state = state.clone();
    tokio::spawn(async move {
        while let Some(batch) = queue.recv().await {
            for work in batch {
                perform(&state, work);
            }
        }
    });
}

/// One of `party`'s streams just opened (SSE and WebSocket call this once
/// subscribed, the TAK wiring when a client connects): the driver pushes
/// again every message to the party that was never delivered.
pub fn stream_opened(state: &AppState, party: PartyId) {
    submit(state, HotlineCommand::StreamOpened { party });
}

fn submit(state: &AppState, command: HotlineCommand) {
    if let Err(error) = state.driver.submit(Command::Hotline(command)) {
        // The machine recovers: a webhook call without an outcome times
        // out, an undelivered message stays `sent`.
        tracing::warn!(%error, "cannot report a hotline outcome to the driver");
    }
}

fn perform(state: &AppState, work: Work) {
    let hub = &state.hub;
    match work.action {
        Action::Deliver { message, to } => {
            let Some(found) = work.message else {
                return;
            };
            let mut reached = hub.publish_to(&[to], "message", &render_message(&found));
            // Flash messages reach TAK clients by their repeats.
            if found.priority != Priority::Flash {
                if let Some(hook) = state.hotline.hook() {
                    reached += hook.deliver(to, &found);
                }
            }
            if reached > 0 {
                submit(state, HotlineCommand::Delivered { message });
            }
        }
        Action::Notify { to, event } => {
            hub.publish_to(&[to], event.type_name(), &render_event(&event));
        }
        Action::CallWebhook {
            call,
            url,
            payload,
            signature,
        } => {
            let state = state.clone();
            tokio::spawn(async move {
                let outcome = state
                    .hotline
                    .client
                    .post(&url)
                    .timeout(state.hotline.webhook_timeout)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature)
                    .body(payload)
                    .send()
                    .await;
                let succeeded = match outcome {
                    Ok(response) => response.status().is_success(),
                    Err(error) => {
                        tracing::info!(%error, delivery = %call, "webhook call failed");
                        false
                    }
                };
                metrics::counter!("deconflict_hotline_webhook_calls_total", "ok" => succeeded.to_string())
                    .increment(1);
                submit(&state, HotlineCommand::WebhookOutcome { call, succeeded });
            });
        }
        Action::RepeatCot {
            party,
            message,
            repeat,
        } => {
            if let (Some(hook), Some(found)) = (state.hotline.hook(), &work.message) {
                // A TAK client that got it is a delivery too (the machine
                // counts only the first).
                if hook.repeat_flash(party, found, repeat) > 0 && found.delivered_at.is_none() {
                    submit(state, HotlineCommand::Delivered { message });
                }
            }
            hub.publish_to(
                &[party],
                "message.flash",
                &json!({"message": message.0, "repeat": repeat}),
            );
        }
        Action::AlertCot { party, subject, step } => {
            if let Some(hook) = state.hotline.hook() {
                hook.alert(party, subject, step);
            }
            hub.publish_to(
                &[party],
                "escalation.tak_alert",
                &json!({"subject": render_subject(subject), "party": party.0, "step": step}),
            );
        }
        Action::PreserveTracks {
            incident,
            entities,
            from,
            to,
        } => {
            // The track thread reads the committed incident (its uids,
            // activities, parties, place and window) and captures its
            // evidence from the recent-history ring and later reports.
            state.live.capture_evidence(incident);
            tracing::info!(incident = incident.0, entities = entities.len(), %from, %to, "incident evidence capture");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u64, from: u64, to: u64, body: &str) -> MessageSpec {
        MessageSpec {
            id: MessageId(id),
            from: PartyId(from),
            to: PartyId(to),
            // No CoT repeats: the first timer is the deadline.
            priority: Priority::Priority,
            body: body.into(),
            ack_within_s: None,
            link: None,
        }
    }

    #[test]
    fn refusals_map_to_a_status_and_the_field() {
        let mut hotline = HotlineState::restore(HotlineConfig::default(), Vec::new(), [PartyId(1)]).unwrap();
        let now = Timestamp(1_000);
        let to_self = hotline.machine.send(now, spec(1, 1, 1, "hi")).unwrap_err();
        let answer = problem(&to_self);
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.0.errors[0].pointer, "/to");
        let unknown = hotline.machine.ack(now, MessageId(9), PartyId(1)).unwrap_err();
        let answer = problem(&unknown);
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        assert!(answer.0.errors.is_empty(), "no field: the target is missing");
    }

    #[test]
    fn restore_registers_every_party_silently_and_continues_the_ids() {
        let mut first =
            HotlineState::restore(HotlineConfig::default(), Vec::new(), [PartyId(1), PartyId(2)]).unwrap();
        assert!(
            first.machine.poll_record().is_none(),
            "registering writes nothing"
        );
        first
            .machine
            .send(Timestamp(0), spec(7, 1, 2, "confirm the corridor"))
            .unwrap();
        let rows: Vec<Record> = std::iter::from_fn(|| first.machine.poll_record()).collect();
        let again = HotlineState::restore(
            HotlineConfig::default(),
            rows,
            [PartyId(1), PartyId(2), PartyId(3)],
        )
        .unwrap();
        assert_eq!(again.next_message, 8);
        assert_eq!(again.next_incident, 1);
        assert!(again.machine.party(PartyId(3)).is_some());
        assert_eq!(
            again.machine.next_deadline(),
            Some(Timestamp(300_000)),
            "the deadline is derived from the row"
        );
    }

    #[test]
    fn a_second_write_of_a_message_in_the_same_millisecond_is_named_by_its_own_change() {
        // A flash message whose deadline and next CoT repeat fall due
        // together: the machine writes it overdue, then repeated, at once.
        let now = Timestamp(60_000);
        let overdue = Message {
            id: MessageId(9),
            from: PartyId(1),
            to: PartyId(2),
            priority: Priority::Flash,
            body: "hold".into(),
            link: None,
            sent_at: Timestamp(0),
            ack_within_s: Some(60),
            delivered_at: Some(Timestamp(5)),
            acked_at: None,
            overdue_at: Some(now),
            cot_sends: 2,
            next_cot_at: Some(now),
        };
        let repeated = Message {
            cot_sends: 3,
            next_cot_at: Some(Timestamp(90_000)),
            ..overdue.clone()
        };
        let first = leaf_of(&Record::Message(overdue.clone()), None, now);
        let second = leaf_of(&Record::Message(repeated.clone()), Some(&overdue), now);
        assert_eq!((first.0, second.0), ("message.overdue", "message.repeated"));
        // Alone in its batch, the same record is named as before.
        assert_eq!(
            leaf_of(&Record::Message(repeated), None, now).0,
            "message.overdue"
        );
    }

    #[test]
    fn leaves_never_hold_a_webhook_secret_and_name_the_change() {
        let secret = "s3cret-s3cret-s3cret-s3cret";
        let contacts = PartyContacts {
            escalation: vec![LadderStep {
                delay_s: 0,
                contact: Contact::Webhook {
                    url: "https://hq.example/hook".into(),
                    secret: secret.into(),
                },
            }],
        };
        let record = Record::Party {
            party: PartyId(2),
            contacts,
        };
        let (kind, payload, readers) = leaf_of(&record, None, Timestamp(0));
        assert_eq!(kind, "hotline.escalation_set");
        let Record::Party { contacts, .. } = &record else {
            unreachable!()
        };
        let escalation = Record::Escalation(deconflict_hotline::Escalation {
            subject: deconflict_hotline::Subject::Message(MessageId(7)),
            party: PartyId(2),
            deadline: Timestamp(1_000),
            overdue_at: Timestamp(1_000),
            steps: contacts.escalation.clone(),
            phase: deconflict_hotline::Phase::Waiting {
                step: 0,
                due: Timestamp(1_000),
            },
        });
        let (escalation_kind, escalation_payload, _) = leaf_of(&escalation, None, Timestamp(1_000));
        assert_eq!(escalation_kind, "hotline.escalation");
        assert!(
            !escalation_payload.to_string().contains(secret),
            "{escalation_payload}"
        );
        assert_eq!(
            escalation_payload["escalation"]["steps"][0]["contact"]["webhook"]["url"],
            "https://hq.example/hook"
        );
        // Another node reads the leaf back as a record (its replay needs the
        // ladder's shape, never the secret).
        let read_back: Record = serde_json::from_value(escalation_payload).unwrap();
        let Record::Escalation(read_back) = read_back else {
            panic!("{read_back:?}")
        };
        assert!(matches!(
            &read_back.steps[0].contact,
            Contact::Webhook { secret, .. } if secret.is_empty()
        ));
        assert!(!payload.to_string().contains(secret), "{payload}");
        assert_eq!(payload["escalation"][0]["url"], "https://hq.example/hook");
        assert_eq!(readers, vec![2]);

        let mut hotline =
            HotlineState::restore(HotlineConfig::default(), Vec::new(), [PartyId(1), PartyId(2)]).unwrap();
        hotline
            .machine
            .send(Timestamp(5), spec(1, 1, 2, "hello"))
            .unwrap();
        let sent = hotline.machine.poll_record().unwrap();
        assert_eq!(leaf_of(&sent, None, Timestamp(5)).0, "message.sent");
        hotline.machine.handle_tick(Timestamp(300_005));
        let overdue = hotline.machine.poll_record().unwrap();
        let (kind, _, readers) = leaf_of(&overdue, None, Timestamp(300_005));
        assert_eq!(kind, "message.overdue");
        assert_eq!(readers, vec![1, 2]);
    }
}
