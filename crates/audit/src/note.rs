//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, in the key
//! formats of Go's `golang.org/x/mod/sumdb/note`.
//!
//! ```text
//! <text ending in a newline>
//!
//! — <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>
//! ```
//!
//! Verifier key: `<name>+<8 hex key ID>+<base64(0x01 || 32-byte public key)>`.
//! Signer key: `PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>`.
//! Key ID: the first 4 bytes (big-endian) of
//! `SHA-256(name || "\n" || 0x01 || public key)`.
//!
//! Written here rather than taken from the `signed_note` crate (a port of the
//! Go package, used in our tests to check interoperability) to keep one
//! version of base64/thiserror in the workspace and errors in our own type;
//! the format is small and the crypto is ed25519-dalek's.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::Error;

/// Signature type byte of Ed25519 in c2sp.org/signed-note.
pub const ALG_ED25519: u8 = 0x01;

/// Largest note we parse: far above any checkpoint, small enough that a
/// hostile peer cannot make us hash megabytes per request.
pub const MAX_NOTE_BYTES: usize = 1_000_000;

/// Most signature lines a note may carry (Go's sumdb/note limit; the spec
/// asks verifiers to accept at least 16).
pub const MAX_SIGNATURES: usize = 100;

const SIGNATURE_PREFIX: &str = "\u{2014} ";
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// `SHA-256(name || "\n" || alg || key)[:4]` as a big-endian u32.
pub fn key_id(name: &str, alg_and_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(alg_and_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Key names: non-empty, no Unicode whitespace, no '+'.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn ed25519_key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut alg_and_key = [0u8; 33];
    alg_and_key[0] = ALG_ED25519;
    alg_and_key[1..].copy_from_slice(key.as_bytes());
    key_id(name, &alg_and_key)
}

/// Splits `name+hex+base64` and checks the parts' syntax.
fn parse_key_parts(text: &str) -> Result<(&str, u32, Vec<u8>), Error> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::MalformedKey("expected NAME+KEYID+KEY"));
    };
    if !is_valid_key_name(name) {
        return Err(Error::BadKeyName);
    }
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::MalformedKey("key ID must be 8 hex digits"));
    }
    let id =
        u32::from_str_radix(id_hex, 16).map_err(|_| Error::MalformedKey("key ID must be 8 hex digits"))?;
    let key = STANDARD
        .decode(key64)
        .map_err(|_| Error::MalformedKey("key is not canonical base64"))?;
    if key.is_empty() {
        return Err(Error::MalformedKey("empty key"));
    }
    Ok((name, id, key))
}

/// A trusted public key: verifies signatures of one name and key ID.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// The verifier of `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, Error> {
        if !is_valid_key_name(name) {
            return Err(Error::BadKeyName);
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key),
            key,
        })
    }

    /// Parses `<name>+<hex key ID>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (name, id, key) = parse_key_parts(text)?;
        if key_id(name, &key) != id {
            return Err(Error::KeyHashMismatch);
        }
        if key[0] != ALG_ED25519 {
            return Err(Error::UnsupportedAlgorithm(key[0]));
        }
        let bytes: &[u8; 32] = key[1..]
            .try_into()
            .map_err(|_| Error::MalformedKey("Ed25519 public key must be 32 bytes"))?;
        let key =
            VerifyingKey::from_bytes(bytes).map_err(|_| Error::MalformedKey("not an Ed25519 public key"))?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `sig` (without the key ID) is this key's signature of `msg`.
    /// Strict Ed25519: no malleable or small-order-key signatures.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match Signature::from_slice(sig) {
            Ok(sig) => self.key.verify_strict(msg, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Display for NoteVerifier {
    /// The verifier key string, as served at `/v1/log/public-key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(key))
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

impl std::str::FromStr for NoteVerifier {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// A private key with its name: signs notes. Its `Debug` hides the key;
/// [`NoteSigner::to_key_string`] is the only way out, for the key file.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl NoteSigner {
    /// The signer of the Ed25519 key with this 32-byte seed (the caller
    /// draws it from a CSPRNG: this crate reads no randomness).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, Error> {
        if !is_valid_key_name(name) {
            return Err(Error::BadKeyName);
        }
        let key = SigningKey::from_bytes(seed);
        Ok(NoteSigner {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`.
    /// A trailing newline (as a key file has) is ignored.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim_end_matches(['\n', '\r']);
        let rest = text
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(Error::MalformedKey("signer key must start with PRIVATE+KEY+"))?;
        let (name, id, key) = parse_key_parts(rest)?;
        if key[0] != ALG_ED25519 {
            return Err(Error::UnsupportedAlgorithm(key[0]));
        }
        let seed: &[u8; 32] = key[1..]
            .try_into()
            .map_err(|_| Error::MalformedKey("Ed25519 seed must be 32 bytes"))?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(Error::KeyHashMismatch);
        }
        Ok(signer)
    }

    /// The signer key string, for the service's key file (keep it 0600).
    pub fn to_key_string(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{PRIVATE_KEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(key)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` and returns the whole signed note. `text` must end with a
    /// newline and be valid note text (no control characters but newline).
    pub fn sign(&self, text: &str) -> Result<String, Error> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id.to_be_bytes());
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({}+{:08x}, key hidden)", self.name, self.key_id)
    }
}

/// Rules shared by note text to sign and notes received: non-empty, ends
/// with a newline, no ASCII control characters but newline, not too big.
fn check_text(text: &str) -> Result<(), Error> {
    if text.len() > MAX_NOTE_BYTES {
        return Err(Error::MalformedNote("note too large"));
    }
    if !text.ends_with('\n') {
        return Err(Error::MalformedNote("text must end with a newline"));
    }
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(Error::MalformedNote("control character in note"));
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A note split into its text and signature lines; nothing verified yet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note's syntax strictly (c2sp.org/signed-note): UTF-8
    /// without control characters but newline; text ending in a newline;
    /// the last blank line before one or more lines `— <name> <base64>`
    /// each ending in a newline; names without spaces or '+'; at least
    /// 4 bytes of key ID and 1 of signature; at most [`MAX_SIGNATURES`].
    pub fn parse(msg: impl AsRef<[u8]>) -> Result<Note, Error> {
        let msg = msg.as_ref();
        if msg.len() > MAX_NOTE_BYTES {
            return Err(Error::MalformedNote("note too large"));
        }
        let msg = std::str::from_utf8(msg).map_err(|_| Error::MalformedNote("note is not UTF-8"))?;
        if msg.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(Error::MalformedNote("control character in note"));
        }
        let split = msg
            .rfind("\n\n")
            .ok_or(Error::MalformedNote("no blank line before the signatures"))?;
        let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
        if sigs.is_empty() {
            return Err(Error::MalformedNote("no signature lines"));
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(Error::MalformedNote("signature line must end with a newline"));
        };
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(Error::MalformedNote("too many signatures"));
            }
            let line = line.strip_prefix(SIGNATURE_PREFIX).ok_or(Error::MalformedNote(
                "signature line must start with an em dash and a space",
            ))?;
            let (name, b64) = line.split_once(' ').ok_or(Error::MalformedNote(
                "signature line needs a name and a signature",
            ))?;
            if !is_valid_key_name(name) {
                return Err(Error::MalformedNote("bad key name in signature line"));
            }
            let blob = STANDARD
                .decode(b64)
                .map_err(|_| Error::MalformedNote("signature is not canonical base64"))?;
            if blob.len() < 5 {
                return Err(Error::MalformedNote("signature too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
                signature: blob[4..].to_vec(),
            });
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }
}

/// A note with at least one verified signature from a trusted key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// The trusted keys `(name, key ID)` whose signatures verified.
    pub verified_by: Vec<(String, u32)>,
    /// Signatures of keys not among the trusted ones (ignored, as the spec
    /// requires; e.g. witness cosignatures or a rotated-out key).
    pub unverified: Vec<NoteSignature>,
}

/// Parses `msg` and verifies it against `trusted` keys: signatures of
/// unknown keys are ignored, a signature of a trusted key that does not
/// verify rejects the note, and at least one trusted signature must verify.
pub fn open_note(msg: impl AsRef<[u8]>, trusted: &[NoteVerifier]) -> Result<VerifiedNote, Error> {
    let note = Note::parse(msg)?;
    let mut verified_by: Vec<(String, u32)> = Vec::new();
    let mut unverified = Vec::new();
    for sig in note.signatures {
        let mut matching = trusted
            .iter()
            .filter(|v| v.name == sig.name && v.key_id == sig.key_id);
        let Some(verifier) = matching.next() else {
            if !unverified.contains(&sig) {
                unverified.push(sig);
            }
            continue;
        };
        if matching.next().is_some() {
            return Err(Error::AmbiguousKey {
                name: sig.name,
                key_id: sig.key_id,
            });
        }
        if !verifier.verify(note.text.as_bytes(), &sig.signature) {
            return Err(Error::InvalidSignature {
                name: sig.name,
                key_id: sig.key_id,
            });
        }
        let who = (sig.name, sig.key_id);
        if !verified_by.contains(&who) {
            verified_by.push(who);
        }
    }
    if verified_by.is_empty() {
        return Err(Error::UnverifiedNote);
    }
    Ok(VerifiedNote {
        text: note.text,
        verified_by,
        unverified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("example.org/log", &[7u8; 32]).unwrap()
    }

    #[test]
    fn key_strings_round_trip() {
        let s = signer();
        let parsed = NoteSigner::parse(&s.to_key_string()).unwrap();
        assert_eq!(parsed.verifier(), s.verifier());
        let v = NoteVerifier::parse(&s.verifier().to_string()).unwrap();
        assert_eq!(v, s.verifier());
        assert!(!format!("{s:?}").contains(&s.to_key_string()[30..]));
    }

    #[test]
    fn sign_then_open() {
        let s = signer();
        let msg = s.sign("hello\n\nworld\n").unwrap();
        let opened = open_note(&msg, &[s.verifier()]).unwrap();
        assert_eq!(opened.text, "hello\n\nworld\n");
        assert_eq!(opened.verified_by, vec![(s.name().to_owned(), s.key_id())]);
        assert!(s.sign("no newline").is_err());
        assert!(s.sign("tab\there\n").is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "a b", "a+b", "a\u{00a0}b", "tab\t"] {
            assert!(NoteSigner::from_seed(name, &[1; 32]).is_err(), "{name:?}");
        }
    }
}
