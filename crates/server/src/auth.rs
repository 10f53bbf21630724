//! Bearer tokens: made from 256 random bits, stored only as SHA-256,
//! checked in constant time; the caller extractor.
//!
//! Parties are found by the SHA-256 of the presented token. Looking a
//! digest up in a map can only leak timing about the digest, never about
//! the token (finding a token from its digest is preimage resistance);
//! the final comparison is constant-time all the same.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use deconflict_engine::PartyId;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{PartyInfo, Viewer};
use crate::problem::ApiError;
use crate::state::AppState;

/// A new bearer token: 32 bytes from the OS's CSPRNG, URL-safe base64.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("dcf_{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who holds which token (by digest).
#[derive(Debug)]
pub struct Directory {
    admin_hash: [u8; 32],
    parties: RwLock<HashMap<[u8; 32], PartyInfo>>,
}

impl Directory {
    pub fn new(admin_hash: [u8; 32]) -> Self {
        Self {
            admin_hash,
            parties: RwLock::new(HashMap::new()),
        }
    }

    pub fn add(&self, token_hash: [u8; 32], party: PartyInfo) {
        if let Ok(mut parties) = self.parties.write() {
            parties.insert(token_hash, party);
        }
    }

    /// Gives party `id` the token whose digest is `token_hash` and forgets
    /// its old one, so the old token answers 401 from the next request on.
    /// Returns false when no such party is known.
    pub fn replace_token(&self, id: PartyId, token_hash: [u8; 32]) -> bool {
        let Ok(mut parties) = self.parties.write() else {
            return false;
        };
        let Some(old) = parties.iter().find(|(_, p)| p.id == id).map(|(hash, _)| *hash) else {
            return false;
        };
        let Some(party) = parties.remove(&old) else {
            return false;
        };
        parties.insert(token_hash, party);
        true
    }

    fn identify(&self, token: &str) -> Option<Caller> {
        let digest = token_hash(token);
        if bool::from(digest.ct_eq(&self.admin_hash)) {
            return Some(Caller::Admin);
        }
        let parties = self.parties.read().ok()?;
        let (stored, party) = parties.get_key_value(&digest)?;
        bool::from(stored.ct_eq(&digest)).then(|| Caller::Party(party.clone()))
    }

    /// Replaces every party's token with what the store holds now (several
    /// nodes on one database: a party created, rotated or revoked through
    /// another node). A party whose token digest changed loses the old one.
    pub fn reload(&self, stored: impl IntoIterator<Item = ([u8; 32], PartyInfo)>) {
        let fresh: HashMap<[u8; 32], PartyInfo> = stored.into_iter().collect();
        if let Ok(mut parties) = self.parties.write() {
            *parties = fresh;
        }
    }

    pub fn party(&self, id: PartyId) -> Option<PartyInfo> {
        let parties = self.parties.read().ok()?;
        parties.values().find(|p| p.id == id).cloned()
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Party(PartyInfo),
}

impl Caller {
    fn rate_key(&self) -> u64 {
        match self {
            // Party ids start at 1.
            Caller::Admin => 0,
            Caller::Party(p) => p.id.0,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        let caller = match state.directory.identify(token) {
            Some(caller) => caller,
            // A party created through another node on the same database.
            None => crate::multinode::identify_from_store(state, token)
                .await
                .ok_or_else(ApiError::unauthorized)?,
        };
        state.rate.check(caller.rate_key())?;
        Ok(caller)
    }
}

/// A caller that must be a party (the admin token only creates parties).
#[derive(Debug, Clone)]
pub struct Party(pub PartyInfo);

impl Party {
    pub fn viewer(&self) -> Viewer {
        self.0.viewer()
    }
}

impl FromRequestParts<AppState> for Party {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Party(info) => Ok(Party(info)),
            Caller::Admin => Err(ApiError::forbidden(
                "the admin token only creates parties: use a party's token",
            )),
        }
    }
}

/// The admin.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Admin => Ok(Admin),
            Caller::Party(_) => Err(ApiError::forbidden("only the admin token creates parties")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PartyKind;

    #[test]
    fn tokens_are_long_random_and_known_only_by_digest() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        // 32 bytes in unpadded base64 are 43 characters.
        assert_eq!(a.len(), "dcf_".len() + 43);
        let directory = Directory::new(token_hash("admin-secret"));
        let party = PartyInfo {
            id: PartyId(1),
            name: "blue".into(),
            kind: PartyKind::Military,
        };
        directory.add(token_hash(&a), party.clone());
        assert_eq!(directory.identify(&a), Some(Caller::Party(party.clone())));
        assert_eq!(directory.identify("admin-secret"), Some(Caller::Admin));
        assert_eq!(directory.identify(&b), None);
        assert_eq!(directory.identify(""), None);
        // Rotation: the new token works at once, the old one never again.
        assert!(directory.replace_token(PartyId(1), token_hash(&b)));
        assert_eq!(directory.identify(&a), None);
        assert_eq!(directory.identify(&b), Some(Caller::Party(party)));
        assert!(!directory.replace_token(PartyId(9), token_hash(&a)));
    }
}
