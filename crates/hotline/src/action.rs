//! What the machine asks the driver to do, and the events it tells parties.

use deconflict_engine::{PartyId, Timestamp};

use crate::ids::{CallKey, ConflictId, IncidentId, MessageId, Priority, Subject};

/// Something for the driver to do, drained with
/// [`Hotline::poll_action`](crate::Hotline::poll_action). The driver should
/// write the records of the same call first: an action lost in a crash is
/// either repeated by the machine (webhook calls time out and are retried) or
/// recoverable from the rows (undelivered messages have no `delivered_at`).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Push the message to the recipient (SSE/WebSocket `message` event),
    /// then report [`Hotline::delivered`](crate::Hotline::delivered).
    Deliver { message: MessageId, to: PartyId },
    /// Send the flash message as CoT to the party's TAK clients. `repeat` is
    /// 0 for the first send.
    RepeatCot {
        party: PartyId,
        message: MessageId,
        repeat: u32,
    },
    /// A ladder step: alert the party's TAK clients that `subject` is
    /// overdue.
    AlertCot {
        party: PartyId,
        subject: Subject,
        step: u16,
    },
    /// POST `payload` (JSON) to `url` with the header
    /// [`SIGNATURE_HEADER`](crate::SIGNATURE_HEADER)`: signature`, then
    /// report [`Hotline::webhook_succeeded`](crate::Hotline::webhook_succeeded)
    /// (any 2xx) or [`Hotline::webhook_failed`](crate::Hotline::webhook_failed)
    /// with `call`, within `webhook_timeout_s`.
    CallWebhook {
        call: CallKey,
        url: String,
        payload: Vec<u8>,
        signature: String,
    },
    /// Keep the track history of the units involved in the incident over
    /// `[from, to]` as evidence: the `entities` listed, and whatever else the
    /// driver's rule finds (the service adds the incident's parties' units
    /// near its place or on its activities). `to` may be in the future: keep
    /// what arrives until then. Made for every incident.
    PreserveTracks {
        incident: IncidentId,
        entities: Vec<String>,
        from: Timestamp,
        to: Timestamp,
    },
    /// Tell party `to` (SSE/WebSocket event of type `event.type_name()`).
    Notify { to: PartyId, event: Event },
}

/// An event for a party's event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// To the sender.
    MessageAcked {
        message: MessageId,
        from: PartyId,
        to: PartyId,
        acked_at: Timestamp,
    },
    /// To both sides.
    MessageOverdue {
        message: MessageId,
        from: PartyId,
        to: PartyId,
        priority: Priority,
        deadline: Timestamp,
    },
    /// To the other parties of the conflict.
    ConflictAcked {
        conflict: ConflictId,
        party: PartyId,
        acked_at: Timestamp,
    },
    /// To every party of the conflict: `party` did not acknowledge in time.
    ConflictOverdue {
        conflict: ConflictId,
        party: PartyId,
        deadline: Timestamp,
    },
    /// To a further contact of `party` (a ladder step): `party` has not
    /// acknowledged `subject`.
    Escalated {
        subject: Subject,
        party: PartyId,
        step: u16,
        deadline: Timestamp,
    },
    /// To both sides: the whole ladder was worked and nobody acknowledged.
    EscalationExhausted { subject: Subject, party: PartyId },
    /// To each party named in the incident, other than the reporter.
    Incident {
        incident: IncidentId,
        reporter: PartyId,
        occurred_at: Timestamp,
    },
}

impl Event {
    /// The event's `type` on `/v1/events`.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Event::MessageAcked { .. } => "message.acked",
            Event::MessageOverdue { .. } => "message.overdue",
            Event::ConflictAcked { .. } => "conflict.acked",
            Event::ConflictOverdue { .. } => "conflict.overdue",
            Event::Escalated { .. } => "escalation",
            Event::EscalationExhausted { .. } => "escalation.exhausted",
            Event::Incident { .. } => "incident",
        }
    }
}
