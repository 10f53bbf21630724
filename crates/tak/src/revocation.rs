//! Cutting a party off: its certificates issued up to a moment are refused
//! from then on, and its open connections are closed
//! ([`crate::TakOutbound::close_party`]).
//!
//! A certificate is refused by when it was issued, not by its serial: the
//! CA keeps no list of what it issued, and a revoked party's devices may
//! hold any number of certificates. When the admin lets the party back in,
//! certificates issued after the revocation work; the old ones never again.
//! X.509 times have whole seconds, so a certificate issued in the same
//! second as the revocation is refused too: whoever issues one right after
//! a revocation waits for the next second ([`Revocations::issue_after_ms`]).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use deconflict_engine::PartyId;

/// Which parties' certificates are refused, up to when they were issued.
/// Cheap to clone; every clone shares the same list (one per server, given
/// to each listener).
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    /// Party → the revocation's time, Unix milliseconds (the latest one).
    revoked_at_ms: Arc<RwLock<HashMap<PartyId, i64>>>,
}

impl Revocations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses, from now on, every certificate of `party` issued at or
    /// before `at_unix_ms`. An earlier revocation than one already recorded
    /// changes nothing.
    pub fn revoke(&self, party: PartyId, at_unix_ms: i64) {
        let mut revoked = self.revoked_at_ms.write().unwrap_or_else(PoisonError::into_inner);
        let entry = revoked.entry(party).or_insert(at_unix_ms);
        *entry = (*entry).max(at_unix_ms);
    }

    /// Whether a certificate of `party` issued at `issued_at_unix_s` (see
    /// [`crate::certificate_issued_at`]) is still honoured.
    pub fn admits(&self, party: PartyId, issued_at_unix_s: i64) -> bool {
        let revoked = self.revoked_at_ms.read().unwrap_or_else(PoisonError::into_inner);
        match revoked.get(&party) {
            None => true,
            Some(&at_ms) => issued_at_unix_s.saturating_mul(1_000) > at_ms,
        }
    }

    /// The first Unix millisecond at which a certificate issued for `party`
    /// is honoured despite its revocations: the start of the second after
    /// the latest one (`None`: never revoked).
    pub fn issue_after_ms(&self, party: PartyId) -> Option<i64> {
        let revoked = self.revoked_at_ms.read().unwrap_or_else(PoisonError::into_inner);
        revoked
            .get(&party)
            .map(|&at_ms| (at_ms.div_euclid(1_000) + 1) * 1_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_issued_up_to_the_revocation_second_are_refused() {
        let revocations = Revocations::new();
        let (blue, red) = (PartyId(1), PartyId(2));
        assert!(revocations.admits(blue, 1_000));
        assert_eq!(revocations.issue_after_ms(blue), None);
        revocations.revoke(blue, 5_000_250);
        assert!(!revocations.admits(blue, 4_000), "issued long before");
        assert!(
            !revocations.admits(blue, 5_000),
            "issued in the revocation's second"
        );
        assert!(revocations.admits(blue, 5_001), "issued the second after");
        assert!(revocations.admits(red, 4_000), "another party is untouched");
        assert_eq!(revocations.issue_after_ms(blue), Some(5_001_000));
        // An older revocation replayed (a restart's load) keeps the newer one.
        revocations.revoke(blue, 1_000);
        assert!(!revocations.admits(blue, 5_000));
        revocations.revoke(blue, 9_000_000);
        assert!(!revocations.admits(blue, 5_001));
        assert!(revocations.admits(blue, 9_001));
    }
}
