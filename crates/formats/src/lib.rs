//! Codecs over bytes and JSON values, pure: GeoJSON Features to engine
//! activities, conflicts back to the contract's JSON, RFC 3339 times, and
//! Cursor-on-Target XML (a stream framer, a parser, a writer for alerts).
//!
//! Every rejected value is reported as an RFC 6901 JSON pointer with a
//! message, all of them in one pass. The engine's own validation errors are
//! mapped to pointers here, never retyped, so the engine stays the one place
//! that says what a valid activity is.

mod conflict;
mod cot;
mod error;
mod feature_doc;
mod geojson;
mod time;

pub use conflict::{conflict_json, ConflictNames};
pub use cot::{
    parse_cot, parse_cot_with, write_cot_event, write_pong, ControlKind, CotAlert, CotAlertKind, CotChat,
    CotControl, CotError, CotEvent, CotFramer, CotLimits, CotMessage, FrameError, UNKNOWN_ERROR_M,
};
pub use error::{FormatError, FormatErrors};
pub use feature_doc::{Body, Coordinates, FeatureDoc, Position};
pub use geojson::{activities_from_geojson, activity_from_feature, GeometryKind, ParsedActivity, Sharing};
pub use time::{format_rfc3339, parse_rfc3339, TimeError};
