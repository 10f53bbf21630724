//! Append-only Merkle audit log (RFC 9162), C2SP signed checkpoints and receipts.

mod error;
pub mod hash;
pub mod proof;
pub mod tree;

pub use error::Error;
pub use hash::{empty_root, leaf_hash, node_hash, Hash, HASH_LEN};
pub use proof::{consistency_proof, inclusion_proof, verify_consistency, verify_inclusion};
pub use tree::{root_at, Appended, HashReader, MemoryLog, MemoryStore, NodeId, Tree};
