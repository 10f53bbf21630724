//! Receipts: what the service hands a party when its notification is
//! logged, enough to prove offline that it was made.
//!
//! The contract's `receipt` is `{log_index, leaf_hash, checkpoint}`; we add
//! `inclusion_proof` so a receipt verifies with nothing but the log's public
//! key. A receipt without it (the contract's older form) still parses, but
//! only verifies for a one-leaf tree; fetch the proof from
//! `/v1/log/proof/inclusion` for the rest.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{verify_checkpoint, Checkpoint};
use crate::hash::{leaf_hash, Hash};
use crate::note::NoteVerifier;
use crate::proof::{inclusion_proof, verify_inclusion, InclusionPaths};
use crate::tree::{read_all, HashReader, NodeId};
use crate::Error;

/// Proof that one entry is in the log under a signed tree head.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Receipt {
    /// The entry's index in the log.
    pub log_index: u64,
    /// RFC 9162 leaf hash of the entry's exact bytes.
    pub leaf_hash: Hash,
    /// The signed checkpoint (C2SP signed note) of a tree that includes it.
    pub checkpoint: String,
    /// RFC 9162 inclusion proof of `leaf_hash` at `log_index` in that tree.
    #[serde(default)]
    pub inclusion_proof: Vec<Hash>,
}

impl Receipt {
    /// Builds the receipt of entry `log_index` under the signed
    /// `checkpoint_note` whose head is `checkpoint`, reading the leaf hash
    /// and the proof from the store.
    pub fn build<R: HashReader + ?Sized>(
        reader: &R,
        log_index: u64,
        checkpoint: &Checkpoint,
        checkpoint_note: String,
    ) -> Result<Self, Error> {
        let proof = inclusion_proof(reader, log_index, checkpoint.size)?;
        let leaf = read_all(reader, &[NodeId::leaf(log_index)])?[0];
        Ok(Receipt {
            log_index,
            leaf_hash: leaf,
            checkpoint: checkpoint_note,
            inclusion_proof: proof,
        })
    }

    /// [`Receipt::build`] with the proof's shared part from `paths` (the
    /// same receipt, with less hashing and one read): for the many
    /// receipts of one head. Paths of another size than the checkpoint's
    /// are not used.
    pub fn build_with<R: HashReader + ?Sized>(
        paths: &InclusionPaths,
        reader: &R,
        log_index: u64,
        checkpoint: &Checkpoint,
        checkpoint_note: String,
    ) -> Result<Self, Error> {
        if paths.size() != checkpoint.size {
            return Self::build(reader, log_index, checkpoint, checkpoint_note);
        }
        let (proof, leaf) = paths.prove_reading(reader, log_index, Some(NodeId::leaf(log_index)))?;
        let Some(leaf) = leaf else {
            return Err(Error::MissingNode(NodeId::leaf(log_index)));
        };
        Ok(Receipt {
            log_index,
            leaf_hash: leaf,
            checkpoint: checkpoint_note,
            inclusion_proof: proof,
        })
    }
}

/// A receipt that verified.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedReceipt {
    pub log_index: u64,
    pub leaf_hash: Hash,
    /// The signed tree head that includes the entry.
    pub checkpoint: Checkpoint,
}

/// Verifies a receipt offline: the checkpoint is signed by the log's key,
/// the leaf hash is at `log_index` in that tree, and, when the entry's
/// bytes are given, they hash to the receipt's leaf hash.
pub fn verify_receipt(
    receipt: &Receipt,
    leaf_bytes: Option<&[u8]>,
    verifier: &NoteVerifier,
) -> Result<VerifiedReceipt, Error> {
    let checkpoint = verify_checkpoint(&receipt.checkpoint, verifier)?;
    if let Some(bytes) = leaf_bytes {
        if leaf_hash(bytes) != receipt.leaf_hash {
            return Err(Error::LeafMismatch);
        }
    }
    verify_inclusion(
        &receipt.leaf_hash,
        receipt.log_index,
        checkpoint.size,
        &receipt.inclusion_proof,
        &checkpoint.root_hash,
    )?;
    Ok(VerifiedReceipt {
        log_index: receipt.log_index,
        leaf_hash: receipt.leaf_hash,
        checkpoint,
    })
}
