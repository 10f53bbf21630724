//! Append-only Merkle audit log (RFC 9162), C2SP signed checkpoints and receipts.
