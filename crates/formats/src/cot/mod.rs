//! Cursor-on-Target (CoT) XML, as TAK clients speak it over a stream.
//!
//! TAK's streaming protocol (version 0, "XML") is nothing but CoT `<event>`
//! documents written one after another on a TCP or TLS stream, each
//! optionally preceded by an XML declaration; readers split the stream on
//! `</event>` (pytak's `readuntil(b"</event>")`, TAK Server's decoder). Three
//! pieces, all pure and over bytes:
//!
//! - [`CotFramer`] cuts a byte stream into `<event>…</event>` documents,
//!   bounded by [`CotLimits::max_event_bytes`], and resynchronises after
//!   garbage or an oversize event so one bad event never kills a stream.
//! - [`parse_cot`] turns one document into a [`CotMessage`]: a typed
//!   [`CotEvent`], or a [`CotControl`] for the protocol's pings and
//!   negotiation; errors name the attribute (`point/@lat`).
//! - [`write_cot_event`] and [`CotAlert::to_xml`] write events back for TAK
//!   clients, escaped, and always parse back to what was written.

mod event;
mod framer;
mod write;

pub use event::{parse_cot, parse_cot_with, ControlKind, CotControl, CotError, CotEvent, CotMessage};
pub use framer::{CotFramer, FrameError};
pub use write::{write_cot_event, write_pong, CotAlert, CotAlertKind, CotChat};

/// CoT's "unknown" for `hae`, `ce` and `le`.
pub const UNKNOWN_ERROR_M: f64 = 9_999_999.0;

/// Size limits for CoT input. Every one is checked and has a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CotLimits {
    /// The longest `<event>…</event>` document accepted, in bytes. ATAK's
    /// position reports are under 1 KiB; a route or a shape with many
    /// points is a few tens of KiB.
    pub max_event_bytes: usize,
    /// The longest attribute value or `remarks` text, in bytes.
    pub max_text_bytes: usize,
}

impl Default for CotLimits {
    fn default() -> Self {
        CotLimits {
            max_event_bytes: 64 * 1024,
            max_text_bytes: 4 * 1024,
        }
    }
}
