//! The TAK transport of deconflict: Cursor-on-Target over TLS with client
//! certificates, as TAK clients (ATAK, WinTAK, iTAK, pytak) expect from a TAK
//! server on port 8089.
//!
//! A driver library: it owns sockets, TLS and the clock, and nothing about
//! deconfliction. The server wires it to the engine:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use deconflict_engine::PartyId;
//! use deconflict_tak::{CertificateAuthority, TakConfig, TakLimits, TakListener, TakTransport};
//!
//! let ca = CertificateAuthority::load_or_create("data/tak".as_ref())?;
//! // `deconflict party add` hands these PEM files to the party.
//! let credentials = ca.issue_client(PartyId(7), "Blue Force")?;
//! let server = ca.issue_server(&["tak.example.org".to_owned()])?;
//! let (events, mut received) = tokio::sync::mpsc::channel(4096);
//! let listener = TakListener::bind(
//!     TakConfig {
//!         listen_addr: "0.0.0.0:8089".parse()?,
//!         transport: TakTransport::Tls(ca.tls_server_config(&server)?),
//!         limits: TakLimits::default(),
//!         revocations: deconflict_tak::Revocations::new(),
//!     },
//!     events,
//! )
//! .await?;
//! let outbound = listener.outbound();
//! while let Some(inbound) = received.recv().await {
//!     // inbound.party sent inbound.event: a position report for the engine.
//!     // Alerts go back as CoT to every connected client of a party:
//!     let alert = deconflict_formats::CotAlert {
//!         uid: "deconflict-alert-1".to_owned(),
//!         kind: deconflict_formats::CotAlertKind::Custom,
//!         title: "PROXIMITY".to_owned(),
//!         text: format!("{} is within 1 km of another party's unit", inbound.event.uid),
//!         lat_deg: inbound.event.lat_deg,
//!         lon_deg: inbound.event.lon_deg,
//!         hae_m: inbound.event.hae_m,
//!         time: inbound.event.time,
//!         stale: inbound.event.stale,
//!         subject_uid: Some(inbound.event.uid.clone()),
//!     };
//!     outbound.send_to_party(inbound.party, alert.to_xml().into_bytes().into());
//! }
//! # Ok(()) }
//! ```
//!
//! Framing and parsing are `deconflict_formats`' pure CoT codec; this crate
//! only moves bytes.

mod ca;
mod listener;
mod outbound;
mod revocation;

pub use ca::{
    certificate_issued_at, party_of_certificate, CaError, CertificateAuthority, ClientCredentials,
    CredentialFiles, PartyCertError, Pkcs12Encryption, ServerCredentials, DEFAULT_LEAF_VALIDITY_DAYS,
    MAX_PARTY_NAME_CHARS, PARTY_URI_PREFIX,
};
pub use listener::{TakConfig, TakError, TakInbound, TakLimits, TakListener, TakStats, TakTransport};
pub use outbound::{ConnectionId, CotBytes, Delivery, TakOutbound};
pub use revocation::Revocations;
