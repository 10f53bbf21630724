//! `deconflict receipt verify`: offline proof that an entry is in the log,
//! from the receipt the server returned and the log's public key alone.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Args;
use deconflict_audit::{leaf_hash, verify_receipt, Error as AuditError, Receipt};
use serde_json::Value;

use crate::log::parse_key;

#[derive(Debug, Args)]
pub struct ReceiptVerifyArgs {
    /// The server's whole 2xx answer (with its `receipt`), or the bare
    /// receipt `{log_index, leaf_hash, checkpoint, inclusion_proof}`.
    receipt: PathBuf,
    /// The log's verifier key `NAME+HASH+BASE64`, or a file holding it.
    #[arg(long, value_name = "KEY")]
    public_key: String,
    /// The entry's leaf: its exact bytes, or their base64 (as
    /// /v1/log/entries gives it). Also taken from a `leaf` field beside the
    /// receipt.
    #[arg(long, value_name = "FILE")]
    leaf: Option<PathBuf>,
}

/// The receipt object, from the whole answer or bare, and an embedded
/// `leaf` (base64) if there is one.
fn receipt_of(document: &Value, path: &Path) -> Result<(Receipt, Option<Vec<u8>>)> {
    let object = match document.get("receipt") {
        Some(inner) if inner.is_object() => inner,
        _ => document,
    };
    let receipt: Receipt = serde_json::from_value(object.clone()).with_context(|| {
        format!(
            "{}: not a receipt (needs log_index, leaf_hash, checkpoint, inclusion_proof)",
            path.display()
        )
    })?;
    let embedded = object
        .get("leaf")
        .or_else(|| document.get("leaf"))
        .filter(|l| !l.is_null())
        .map(|l| {
            l.as_str()
                .and_then(|l| STANDARD.decode(l).ok())
                .with_context(|| format!("{}: `leaf` is not base64", path.display()))
        })
        .transpose()?;
    Ok((receipt, embedded))
}

/// The leaf's exact bytes from FILE: the file itself when it hashes to
/// `want`, otherwise its trimmed content read as base64 when that does.
/// Anything else is returned raw and fails the leaf check.
fn leaf_from_file(path: &Path, receipt: &Receipt) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if leaf_hash(&raw) == receipt.leaf_hash {
        return Ok(raw);
    }
    let decoded = std::str::from_utf8(&raw)
        .ok()
        .and_then(|text| STANDARD.decode(text.trim()).ok());
    Ok(match decoded {
        Some(bytes) if leaf_hash(&bytes) == receipt.leaf_hash => bytes,
        _ => raw,
    })
}

pub fn verify(args: &ReceiptVerifyArgs) -> Result<()> {
    let verifier = parse_key(&args.public_key)?;
    let text = std::fs::read_to_string(&args.receipt)
        .with_context(|| format!("cannot read {}", args.receipt.display()))?;
    let document: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", args.receipt.display()))?;
    let (receipt, embedded) = receipt_of(&document, &args.receipt)?;
    let leaf = match &args.leaf {
        Some(path) => Some(leaf_from_file(path, &receipt)?),
        None => embedded,
    };
    let verified = verify_receipt(&receipt, leaf.as_deref(), &verifier).map_err(|e| {
        let check = match e {
            AuditError::LeafMismatch => "leaf check",
            AuditError::InvalidSignature { .. }
            | AuditError::UnverifiedNote
            | AuditError::MalformedNote(_)
            | AuditError::MalformedCheckpoint(_)
            | AuditError::OriginMismatch { .. } => "checkpoint signature check",
            _ => "inclusion proof check",
        };
        anyhow!("receipt of entry {}: {check}: {e}", receipt.log_index)
    })?;
    println!(
        "receipt verified: entry {} (leaf hash {}) is in the log {} of size {}, checkpoint signed by its key{}",
        verified.log_index,
        verified.leaf_hash,
        verified.checkpoint.origin,
        verified.checkpoint.size,
        if leaf.is_some() {
            "; the leaf's bytes hash to it"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bare() -> Value {
        json!({
            "log_index": 0,
            "leaf_hash": leaf_hash(b"entry").to_base64(),
            "checkpoint": "o\n1\nAAAA\n",
            "inclusion_proof": [],
        })
    }

    #[test]
    fn a_receipt_is_read_bare_or_from_the_whole_answer() {
        let path = Path::new("r.json");
        let (receipt, leaf) = receipt_of(&bare(), path).unwrap();
        assert_eq!(receipt.leaf_hash, leaf_hash(b"entry"));
        assert!(leaf.is_none());
        let answer = json!({"id": 1, "receipt": bare(), "leaf": STANDARD.encode(b"entry")});
        let (from_answer, leaf) = receipt_of(&answer, path).unwrap();
        assert_eq!(from_answer, receipt);
        assert_eq!(leaf.as_deref(), Some(&b"entry"[..]));
        let error = receipt_of(&json!({"id": 1}), path).unwrap_err();
        assert!(format!("{error:#}").contains("not a receipt"));
        let bad_leaf = json!({"receipt": bare(), "leaf": 5});
        assert!(format!("{:#}", receipt_of(&bad_leaf, path).unwrap_err()).contains("`leaf`"));
    }

    #[test]
    fn a_leaf_file_is_bytes_or_base64() {
        let (receipt, _) = receipt_of(&bare(), Path::new("r.json")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, b"entry").unwrap();
        assert_eq!(leaf_from_file(&raw, &receipt).unwrap(), b"entry");
        let encoded = dir.path().join("b64");
        std::fs::write(&encoded, format!("{}\n", STANDARD.encode(b"entry"))).unwrap();
        assert_eq!(leaf_from_file(&encoded, &receipt).unwrap(), b"entry");
        let other = dir.path().join("other");
        std::fs::write(&other, b"another").unwrap();
        assert_eq!(leaf_from_file(&other, &receipt).unwrap(), b"another");
    }
}
