//! Append-only Merkle audit log (RFC 9162), C2SP signed checkpoints and
//! receipts.
//!
//! Every notification, acknowledgement and message of the service becomes a
//! leaf of one Merkle tree; the service signs the tree head as a
//! c2sp.org/tlog-checkpoint, and anyone with the log's public key can check
//! that an entry is in the log ([`verify_receipt`]) and that the log only
//! grew since a checkpoint they saved ([`verify_growth`]).
//!
//! **Architecture invariant:** pure. No IO, no clock, no randomness, no
//! async: timestamps and key seeds are passed in, stored nodes are read
//! through [`HashReader`], and nodes to store come back from
//! [`Tree::append`] for the caller to write in the same transaction as the
//! state change they record.
//!
//! **API boundary:** bytes and strings in, typed [`Error`]s out; nothing
//! here panics on what the network sends (proofs, notes, keys, receipts).
//!
//! Map:
//! - [`hash`]: SHA-256, leaf and node hashes.
//! - [`tree`]: node addressing (`level`, `index`) of write-once perfect
//!   subtrees, the [`HashReader`] store trait, the O(log n) frontier.
//! - [`proof`]: inclusion and consistency proofs, generated from stored
//!   nodes and verified as RFC 9162 §2.1.3.2 and §2.1.4.2 say.
//! - [`note`]: C2SP signed notes with Ed25519, Go `sumdb/note` key formats.
//! - [`checkpoint`]: tree heads as notes; growth checks; [`CheckpointSigner`]
//!   that never signs a fork.
//! - [`receipt`]: offline-verifiable receipts.
//! - [`leaf`]: events as RFC 8785 canonical JSON leaves.
//!
//! The whole flow, with the in-memory store standing in for the database:
//!
//! ```
//! use deconflict_audit::*;
//!
//! // Server side. The seed comes from a CSPRNG once, then from the key file.
//! let signer = NoteSigner::from_seed("deconflict.example/log", &[7; 32])?;
//! let key_file = signer.to_key_string(); // "PRIVATE+KEY+deconflict.example/log+…"
//! let public_key = signer.verifier().to_string(); // served at /v1/log/public-key
//! let mut heads = CheckpointSigner::new(NoteSigner::parse(&key_file)?);
//!
//! let mut log = MemoryLog::new();
//! let payload = serde_json::json!({"activity": "a1", "party": "blue"});
//! let leaf = LeafEvent { kind: "activity.notified", at_ms: 1_700_000_000_000, payload: &payload }
//!     .encode()?;
//! let appended = log.tree.append(&leaf)?; // appended.nodes go to the store…
//! log.store.apply(&appended); // …in the same transaction as the activity
//! let note = heads.sign_tree(&log.store, &log.tree)?; // /v1/log/checkpoint
//! let checkpoint = heads.last_signed().unwrap().clone();
//! let receipt = Receipt::build(&log.store, appended.index, &checkpoint, note)?;
//!
//! // Client side, offline: only the public key is needed.
//! let verifier = NoteVerifier::parse(&public_key)?;
//! let verified = verify_receipt(&receipt, Some(&leaf), &verifier)?;
//! assert_eq!(verified.checkpoint.size, 1);
//!
//! // Later: the log only grew since the saved checkpoint.
//! log.append(b"another entry")?;
//! let newer = heads.sign_tree(&log.store, &log.tree)?;
//! let proof = consistency_proof(&log.store, verified.checkpoint.size, log.tree.size())?;
//! let saved = verify_growth(&verified.checkpoint, &newer, &proof, &verifier)?;
//! assert_eq!(saved.size, 2);
//! # Ok::<(), deconflict_audit::Error>(())
//! ```

pub mod checkpoint;
mod error;
pub mod hash;
pub mod leaf;
pub mod note;
pub mod proof;
pub mod receipt;
pub mod tree;

pub use checkpoint::{
    check_growth, sign_checkpoint, verify_checkpoint, verify_growth, Checkpoint, CheckpointSigner,
};
pub use error::Error;
pub use hash::{empty_root, leaf_hash, node_hash, Hash, HASH_LEN};
pub use leaf::{canonical_json, LeafEvent};
pub use note::{open_note, Note, NoteSignature, NoteSigner, NoteVerifier, VerifiedNote};
pub use proof::{consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, InclusionPaths};
pub use receipt::{verify_receipt, Receipt, VerifiedReceipt};
pub use tree::{root_at, Appended, HashReader, MemoryLog, MemoryStore, NodeId, Tree};
