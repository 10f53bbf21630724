//! Tree heads as c2sp.org/tlog-checkpoint signed notes, the client's "only
//! grew" check, and a signer that refuses to sign a fork.
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <base64 root hash>
//! [extension lines]
//!
//! — <key name> <base64 signature>
//! ```
//!
//! The log's key name is its origin: [`verify_checkpoint`] requires it, so a
//! checkpoint of one log cannot pass for another's under a shared key.

use crate::hash::Hash;
use crate::note::{open_note, NoteSigner, NoteVerifier};
use crate::proof::{consistency_proof, verify_consistency};
use crate::tree::{HashReader, Tree};
use crate::Error;

/// A tree head: which log, how many leaves, and their Merkle tree head.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root_hash: Hash,
    /// Opaque extension lines (not recommended by the spec; we write none).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    pub fn new(origin: impl Into<String>, size: u64, root_hash: Hash) -> Self {
        Checkpoint {
            origin: origin.into(),
            size,
            root_hash,
            extensions: Vec::new(),
        }
    }

    /// The head of `tree` under `origin`.
    pub fn of_tree(origin: impl Into<String>, tree: &Tree) -> Self {
        Checkpoint::new(origin, tree.size(), tree.root())
    }

    /// The note text: origin, size, root, extensions, each ending in a newline.
    pub fn to_text(&self) -> Result<String, Error> {
        let line_ok = |l: &str| !l.is_empty() && !l.bytes().any(|b| b < 0x20);
        if !line_ok(&self.origin) {
            return Err(Error::MalformedCheckpoint("origin must be one non-empty line"));
        }
        if !self.extensions.iter().all(|l| line_ok(l)) {
            return Err(Error::MalformedCheckpoint(
                "extension lines must be non-empty single lines",
            ));
        }
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, self.root_hash);
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        Ok(text)
    }

    /// Parses note text strictly: at least three lines, non-empty origin,
    /// size in decimal without leading zeros, root hash of 32 bytes in
    /// canonical base64, non-empty extension lines, final newline.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let body = text
            .strip_suffix('\n')
            .ok_or(Error::MalformedCheckpoint("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(Error::MalformedCheckpoint(
                "needs origin, size and root hash lines",
            ));
        };
        if origin.is_empty() {
            return Err(Error::MalformedCheckpoint("empty origin"));
        }
        let size_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size: u64 = size
            .parse()
            .ok()
            .filter(|_| size_ok)
            .ok_or(Error::MalformedCheckpoint(
                "tree size must be decimal without leading zeros",
            ))?;
        let root_hash = Hash::from_base64(root)
            .map_err(|_| Error::MalformedCheckpoint("root hash must be 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(Error::MalformedCheckpoint("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root_hash,
            extensions,
        })
    }
}

/// Signs a checkpoint with the log's key. Its origin must be the key's name.
///
/// This does not check consistency with earlier heads: a service signs
/// through [`CheckpointSigner`], which does.
pub fn sign_checkpoint(checkpoint: &Checkpoint, signer: &NoteSigner) -> Result<String, Error> {
    if checkpoint.origin != signer.name() {
        return Err(Error::OriginMismatch {
            expected: signer.name().to_owned(),
            found: checkpoint.origin.clone(),
        });
    }
    signer.sign(&checkpoint.to_text()?)
}

/// Verifies a signed checkpoint against the log's public key and returns
/// the tree head. The origin must equal the key's name; other signatures
/// (e.g. witnesses) are ignored.
pub fn verify_checkpoint(note: impl AsRef<[u8]>, verifier: &NoteVerifier) -> Result<Checkpoint, Error> {
    let opened = open_note(note, std::slice::from_ref(verifier))?;
    let checkpoint = Checkpoint::parse(&opened.text)?;
    if checkpoint.origin != verifier.name() {
        return Err(Error::OriginMismatch {
            expected: verifier.name().to_owned(),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}

/// Whether `new` is `old` with zero or more leaves appended, as shown by the
/// consistency proof `proof` (from `old.size` to `new.size`). Any failure,
/// including a smaller size or a same-size head with another root, is
/// [`Error::Inconsistent`]; another origin is [`Error::OriginMismatch`].
pub fn check_growth(old: &Checkpoint, new: &Checkpoint, proof: &[Hash]) -> Result<(), Error> {
    if old.origin != new.origin {
        return Err(Error::OriginMismatch {
            expected: old.origin.clone(),
            found: new.origin.clone(),
        });
    }
    verify_consistency(old.size, new.size, &old.root_hash, &new.root_hash, proof).map_err(|e| {
        Error::Inconsistent {
            old_size: old.size,
            new_size: new.size,
            source: Box::new(e),
        }
    })
}

/// The client's check (`deconflict log verify`): `new_note` is a validly
/// signed checkpoint of the same log that only grew since the already
/// verified `old`. Returns the new tree head to save for next time.
pub fn verify_growth(
    old: &Checkpoint,
    new_note: impl AsRef<[u8]>,
    proof: &[Hash],
    verifier: &NoteVerifier,
) -> Result<Checkpoint, Error> {
    let new = verify_checkpoint(new_note, verifier)?;
    check_growth(old, &new, proof)?;
    Ok(new)
}

/// The log's signing key together with the last tree head it signed. It
/// signs a new head only with a consistency proof from the last one, so the
/// log can never sign two heads that are not one the prefix of the other
/// (c2sp.org/tlog-checkpoint: "a log MUST NOT sign any checkpoint which is
/// inconsistent with any checkpoint it previously signed").
///
/// The service persists each signed note in the same transaction as the
/// state it commits, and restarts with [`CheckpointSigner::resume`].
#[derive(Debug)]
pub struct CheckpointSigner {
    signer: NoteSigner,
    last: Option<Checkpoint>,
}

impl CheckpointSigner {
    /// A signer that has signed nothing yet: its first head may be any size.
    pub fn new(signer: NoteSigner) -> Self {
        CheckpointSigner { signer, last: None }
    }

    /// A signer that continues from the signed note it issued last. The
    /// note must verify under the signer's own key.
    pub fn resume(signer: NoteSigner, last_signed_note: impl AsRef<[u8]>) -> Result<Self, Error> {
        let last = verify_checkpoint(last_signed_note, &signer.verifier())?;
        Ok(CheckpointSigner {
            signer,
            last: Some(last),
        })
    }

    /// The last tree head signed (or resumed from).
    pub fn last_signed(&self) -> Option<&Checkpoint> {
        self.last.as_ref()
    }

    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// Signs `next` if `proof` shows it extends the last signed head (an
    /// empty proof for the same head, or for the first one). Refuses, and
    /// keeps the last head, otherwise.
    pub fn sign(&mut self, next: Checkpoint, proof_from_last: &[Hash]) -> Result<String, Error> {
        if let Some(last) = &self.last {
            check_growth(last, &next, proof_from_last)?;
        }
        let note = sign_checkpoint(&next, &self.signer)?;
        self.last = Some(next);
        Ok(note)
    }

    /// Signs the head of `tree`, taking the consistency proof from the
    /// store. The store's old nodes are checked against the last signed
    /// root, so a store that lost or rewrote history cannot get signed.
    pub fn sign_tree<R: HashReader + ?Sized>(&mut self, reader: &R, tree: &Tree) -> Result<String, Error> {
        let next = Checkpoint::of_tree(self.signer.name(), tree);
        let proof = match &self.last {
            Some(last) if last.size <= tree.size() => consistency_proof(reader, last.size, tree.size())?,
            Some(last) => {
                return Err(Error::Inconsistent {
                    old_size: last.size,
                    new_size: tree.size(),
                    source: Box::new(Error::SizeDecreased {
                        old: last.size,
                        new: tree.size(),
                    }),
                })
            }
            None => Vec::new(),
        };
        self.sign(next, &proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn text_round_trip() {
        let mut cp = Checkpoint::new("example.org/log", 42, leaf_hash(b"x"));
        assert_eq!(Checkpoint::parse(&cp.to_text().unwrap()).unwrap(), cp);
        cp.extensions.push("ext line".into());
        assert_eq!(Checkpoint::parse(&cp.to_text().unwrap()).unwrap(), cp);
    }

    #[test]
    fn strict_parse() {
        let root = leaf_hash(b"x").to_base64();
        let ok = format!("o\n7\n{root}\n");
        assert!(Checkpoint::parse(&ok).is_ok());
        assert_eq!(Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size, 0);
        for bad in [
            format!("o\n7\n{root}"),
            format!("\n7\n{root}\n"),
            format!("o\n07\n{root}\n"),
            format!("o\n+7\n{root}\n"),
            format!("o\n-7\n{root}\n"),
            format!("o\n 7\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n7\n{}\n", &root[1..]),
            format!("o\n7\n{root}\n\n"),
            "o\n7\n".to_owned(),
            String::new(),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
