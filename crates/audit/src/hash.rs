//! SHA-256 hashes and the two RFC 9162 §2.1.1 hash functions.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::Error;

/// Length in bytes of every hash in the log.
pub const HASH_LEN: usize = 32;

/// A SHA-256 output: a leaf hash, a subtree hash or a root hash.
///
/// Text form (Display, serde) is standard padded base64, as in the contract's
/// `leaf_hash` and the checkpoint's root line.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// Parses standard padded base64 of exactly 32 bytes. Rejects anything
    /// else (wrong length, missing padding, non-canonical trailing bits),
    /// so one hash has exactly one text form.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = STANDARD.decode(text).map_err(|_| Error::BadHash)?;
        Self::from_slice(&bytes)
    }

    /// Takes exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| Error::BadHash)
    }

    /// Standard padded base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_base64())
    }
}

impl std::str::FromStr for Hash {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_base64(s)
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// `SHA-256(0x00 || leaf)`: the hash of one log entry (RFC 9162 §2.1.1).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn base64_is_strict() {
        let h = leaf_hash(b"");
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        let text = h.to_base64();
        // Missing padding, extra byte, short, garbage.
        assert!(Hash::from_base64(text.trim_end_matches('=')).is_err());
        assert!(Hash::from_base64(&base64::engine::general_purpose::STANDARD.encode([0u8; 33])).is_err());
        assert!(Hash::from_base64("").is_err());
        assert!(Hash::from_base64("not base64!").is_err());
        // The last character carries 2 unused bits: "V" instead of "U" is
        // another text for the same bytes, which a strict decoder refuses.
        assert_eq!(
            empty_root().to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(Hash::from_base64("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=").is_err());
    }
}
