//! The hotline's way to TAK clients: messages, flash repeats and ladder
//! alerts as GeoChat (CoT `b-t-f`) to every connected client of the
//! recipient party.
//!
//! **Why GeoChat.** A hotline message is text for a person to read and
//! answer, and chat is where every TAK client (ATAK, WinTAK, iTAK, pytak
//! scripts) shows text and notifies its user; it needs no place, where an
//! alarm (`b-a-…`) would draw a marker at a made-up point. The TAK repeater
//! convention (TAK Server re-sends an emergency at an interval until it is
//! cancelled) is kept by sending each flash repeat as a *new* chat line
//! (uid `…flash-{id}-r{n}`), since clients file a chat line by uid and
//! would silently replace a line with the same uid. The repeats stop when
//! the machine sees the acknowledgement, which is made on the hotline
//! (HTTP), not by a TAK read receipt: the proof of acknowledgement is the
//! audit log's entry.

use std::sync::{Arc, Mutex};

use deconflict_engine::{PartyId, Timestamp};
use deconflict_formats::CotChat;
use deconflict_hotline::{Message, Subject};
use deconflict_tak::TakOutbound;

use crate::driver::now_ms;
use crate::hotline::HotlineHook;

/// The uid and callsign deconflict chats under.
pub const CHAT_SENDER_UID: &str = "deconflict-hotline";
pub const CHAT_SENDER_CALLSIGN: &str = "deconflict hotline";
/// How long a client keeps a chat event before it is stale.
const CHAT_STALE_MS: i64 = 10 * 60 * 1000;

/// [`HotlineHook`] over the service's TAK listeners.
#[derive(Debug, Clone)]
pub struct TakHotlineHook {
    tak: Arc<Mutex<Vec<TakOutbound>>>,
}

impl TakHotlineHook {
    pub fn new(live: &super::LiveHandle) -> Self {
        Self {
            tak: Arc::clone(&live.tak),
        }
    }

    /// Queues one chat line on every connection of `party`; returns how
    /// many took it.
    fn chat(&self, party: PartyId, message_uid: String, text: String) -> usize {
        let now = Timestamp(now_ms());
        let chat = CotChat {
            sender_uid: CHAT_SENDER_UID.to_owned(),
            sender_callsign: CHAT_SENDER_CALLSIGN.to_owned(),
            chatroom: format!("party-{}", party.0),
            message_uid,
            text,
            time: now,
            stale: Timestamp(now.0.saturating_add(CHAT_STALE_MS)),
        };
        let document: deconflict_tak::CotBytes = chat.to_xml().into_bytes().into();
        let listeners = self.tak.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let queued: usize = listeners
            .iter()
            .map(|out| out.send_to_party(party, Arc::clone(&document)).queued)
            .sum();
        metrics::counter!("deconflict_hotline_cot_sent_total").increment(queued as u64);
        queued
    }
}

/// The chat text of a message: who sent it, how urgent, how to answer.
fn message_text(message: &Message, label: &str) -> String {
    format!(
        "{label} from party {}: {} (hotline message {}; acknowledge it on the hotline)",
        message.from.0, message.body, message.id.0
    )
}

impl HotlineHook for TakHotlineHook {
    fn deliver(&self, party: PartyId, message: &Message) -> usize {
        let label = message.priority.as_str().to_uppercase();
        self.chat(
            party,
            format!("message-{}", message.id.0),
            message_text(message, &label),
        )
    }

    fn repeat_flash(&self, party: PartyId, message: &Message, repeat: u32) -> usize {
        let label = if repeat == 0 {
            "FLASH".to_owned()
        } else {
            format!("FLASH (repeat {repeat})")
        };
        self.chat(
            party,
            format!("flash-{}-r{repeat}", message.id.0),
            message_text(message, &label),
        )
    }

    fn alert(&self, party: PartyId, subject: Subject, step: u16) {
        let (what, uid) = match subject {
            Subject::Message(id) => (format!("hotline message {}", id.0), format!("m{}", id.0)),
            Subject::Conflict { conflict, .. } => {
                (format!("conflict {}", conflict.0), format!("c{}", conflict.0))
            }
        };
        self.chat(
            party,
            format!("escalation-{uid}-s{step}"),
            format!("ESCALATION (step {step}): your party has not acknowledged {what}; acknowledge it on the hotline"),
        );
    }
}
