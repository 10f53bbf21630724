//! The crate's one error type.
//!
//! Everything that comes from the network (proofs, notes, keys, receipts)
//! is checked and refused with one of these; nothing here panics on input.

use crate::tree::NodeId;

/// Why an audit operation failed. New kinds may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- Merkle tree and proofs -------------------------------------------
    /// A leaf index that is not inside the tree it is proved against.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A consistency proof asked from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeDecreased { old: u64, new: u64 },
    /// A proof with the wrong number of hashes for its sizes.
    #[error("proof has {got} hashes where {want} are needed")]
    ProofLength { got: usize, want: usize },
    /// A well-formed proof whose hashes do not lead to the given root(s).
    #[error("proof does not match the root hash")]
    RootMismatch,
    /// A hash that is not 32 bytes (or not canonical base64).
    #[error("a hash must be 32 bytes in canonical padded base64")]
    BadHash,
    /// The tree cannot take another leaf (2^64 - 1 leaves).
    #[error("the tree is full")]
    TreeFull,
    /// The tree is asked about a size it has not reached.
    #[error("tree size {asked} is beyond the tree's size {size}")]
    SizeBeyondTree { asked: u64, size: u64 },
    /// The store did not have a node that a complete tree of the asked size has.
    #[error("stored node {0} is missing")]
    MissingNode(NodeId),
    /// The store reported an error of its own.
    #[error("reading stored hashes")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    // --- Keys and signed notes --------------------------------------------
    /// A verifier or signer key string that does not parse.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A key string whose key hash does not match its name and key.
    #[error("key hash does not match the key's name and public key")]
    KeyHashMismatch,
    /// A key of an algorithm other than Ed25519 (0x01).
    #[error("unsupported signature algorithm 0x{0:02x}")]
    UnsupportedAlgorithm(u8),
    /// A key name that is empty or has whitespace or '+'.
    #[error("key name must be non-empty without spaces or '+'")]
    BadKeyName,
    /// A note that does not follow c2sp.org/signed-note.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// A signature line from a known key whose signature does not verify.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    /// A note with no signature from any of the trusted keys.
    #[error("note has no verifiable signature")]
    UnverifiedNote,
    /// Two trusted keys with the same name and key hash.
    #[error("ambiguous key {name}+{key_id:08x}")]
    AmbiguousKey { name: String, key_id: u32 },

    // --- Checkpoints and receipts -------------------------------------------
    /// A note body that is not a c2sp.org/tlog-checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A checkpoint of another log.
    #[error("checkpoint origin {found:?} is not {expected:?}")]
    OriginMismatch { expected: String, found: String },
    /// Two tree heads that are not one the prefix of the other.
    #[error("tree head of size {new_size} is not an extension of the one of size {old_size}")]
    Inconsistent {
        old_size: u64,
        new_size: u64,
        #[source]
        source: Box<Error>,
    },
    /// Leaf bytes that do not hash to the receipt's leaf hash.
    #[error("leaf bytes do not hash to the receipt's leaf hash")]
    LeafMismatch,

    // --- Leaf encoding -------------------------------------------------------
    /// A leaf event that cannot be encoded canonically.
    #[error("leaf event cannot be encoded: {0}")]
    Encoding(String),
}
