//! A party's escalation ladder: whom to contact, in which order, how long
//! after the previous step, when one of its messages or conflicts goes
//! unacknowledged.

use std::fmt;

use deconflict_engine::PartyId;

use crate::config::Limits;
use crate::error::HotlineError;

/// One way to reach a party when it does not acknowledge.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Contact {
    /// POST a JSON payload signed with HMAC-SHA256 under `secret` (see
    /// [`sign_payload`](crate::sign_payload)); failures are retried with
    /// backoff before the ladder moves on.
    Webhook {
        url: String,
        /// Absent from audit leaves (which every broker reads): a record
        /// read back from a leaf has an empty secret, never used to sign.
        #[cfg_attr(feature = "serde", serde(default))]
        secret: String,
    },
    /// Tell another party (a higher headquarters, the broker) with an
    /// `escalation` event.
    Party {
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_engine::party"))]
        party: PartyId,
    },
    /// Alert the escalated party's TAK clients with a CoT event.
    Tak,
}

impl fmt::Debug for Contact {
    /// Never prints a webhook secret: configurations end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("secret", &"<redacted>")
                .finish(),
            Contact::Party { party } => f.debug_struct("Party").field("party", party).finish(),
            Contact::Tak => f.write_str("Tak"),
        }
    }
}

/// One rung of a ladder: `delay_s` after the previous step finished (after
/// the deadline passed, for the first step), contact `contact`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LadderStep {
    pub delay_s: u32,
    pub contact: Contact,
}

/// How a party is reached beyond its own SSE stream. An escalation copies the
/// ladder when it starts, so changing contacts never disturbs a ladder in
/// progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PartyContacts {
    pub escalation: Vec<LadderStep>,
}

impl PartyContacts {
    /// Checks the ladder against `limits`; `is_party` says whether a contact
    /// party exists.
    pub(crate) fn validate(
        &self,
        limits: &Limits,
        is_party: impl Fn(PartyId) -> bool,
    ) -> Result<(), HotlineError> {
        if self.escalation.len() > limits.max_ladder_steps {
            return Err(HotlineError::TooManyLadderSteps {
                len: self.escalation.len(),
                max: limits.max_ladder_steps,
            });
        }
        for (step, rung) in self.escalation.iter().enumerate() {
            if rung.delay_s > limits.max_step_delay_s {
                return Err(HotlineError::StepDelayTooLong {
                    step,
                    value: rung.delay_s,
                    max: limits.max_step_delay_s,
                });
            }
            match &rung.contact {
                Contact::Webhook { url, secret } => {
                    check_url(url, limits.max_url_bytes)
                        .map_err(|reason| HotlineError::BadWebhookUrl { step, reason })?;
                    if !(limits.min_secret_bytes..=limits.max_secret_bytes).contains(&secret.len()) {
                        return Err(HotlineError::BadWebhookSecret {
                            step,
                            len: secret.len(),
                            min: limits.min_secret_bytes,
                            max: limits.max_secret_bytes,
                        });
                    }
                }
                Contact::Party { party } => {
                    if !is_party(*party) {
                        return Err(HotlineError::UnknownContactParty { step, party: *party });
                    }
                }
                Contact::Tak => {}
            }
        }
        Ok(())
    }
}

/// A light check that catches typing mistakes; the driver's HTTP client is
/// the real parser. Only `http` and `https`: a webhook is an HTTP POST.
fn check_url(url: &str, max_bytes: usize) -> Result<(), &'static str> {
    if url.len() > max_bytes {
        return Err("the URL is longer than the limit (limits.max_url_bytes)");
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the URL must start with https:// or http://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains spaces or control characters");
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("the URL has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str, secret: &str) -> PartyContacts {
        PartyContacts {
            escalation: vec![LadderStep {
                delay_s: 0,
                contact: Contact::Webhook {
                    url: url.into(),
                    secret: secret.into(),
                },
            }],
        }
    }

    const SECRET: &str = "0123456789abcdef";

    #[test]
    fn urls_are_checked_for_scheme_host_and_spaces() {
        let limits = Limits::default();
        let check = |url: &str| webhook(url, SECRET).validate(&limits, |_| true);
        assert_eq!(check("https://ops.example/hooks/1?x=1"), Ok(()));
        assert_eq!(check("http://127.0.0.1:8080/"), Ok(()));
        for bad in [
            "ftp://x/",
            "https://",
            "https:///path",
            "https://a b/",
            "example.org",
            "https://:80/",
        ] {
            assert!(
                matches!(check(bad), Err(HotlineError::BadWebhookUrl { step: 0, .. })),
                "{bad} was accepted"
            );
        }
        let long = format!("https://x/{}", "a".repeat(limits.max_url_bytes));
        assert!(matches!(check(&long), Err(HotlineError::BadWebhookUrl { .. })));
    }

    #[test]
    fn secrets_must_have_the_configured_length() {
        let limits = Limits::default();
        let short = webhook("https://x/", "short").validate(&limits, |_| true);
        assert_eq!(
            short,
            Err(HotlineError::BadWebhookSecret {
                step: 0,
                len: 5,
                min: 16,
                max: 256
            })
        );
        assert_eq!(
            short.unwrap_err().pointer().as_deref(),
            Some("/escalation/0/secret")
        );
        let long = webhook("https://x/", &"s".repeat(257)).validate(&limits, |_| true);
        assert!(matches!(
            long,
            Err(HotlineError::BadWebhookSecret { len: 257, .. })
        ));
    }

    #[test]
    fn ladder_length_delays_and_contact_parties_are_limited() {
        let limits = Limits {
            max_ladder_steps: 2,
            max_step_delay_s: 60,
            ..Limits::default()
        };
        let step = |delay_s, contact| LadderStep { delay_s, contact };
        let three = PartyContacts {
            escalation: vec![step(0, Contact::Tak); 3],
        };
        assert_eq!(
            three.validate(&limits, |_| true),
            Err(HotlineError::TooManyLadderSteps { len: 3, max: 2 })
        );
        let slow = PartyContacts {
            escalation: vec![step(0, Contact::Tak), step(61, Contact::Tak)],
        };
        assert_eq!(
            slow.validate(&limits, |_| true),
            Err(HotlineError::StepDelayTooLong {
                step: 1,
                value: 61,
                max: 60
            })
        );
        let stranger = PartyContacts {
            escalation: vec![step(0, Contact::Party { party: PartyId(9) })],
        };
        assert_eq!(
            stranger.validate(&limits, |p| p != PartyId(9)),
            Err(HotlineError::UnknownContactParty {
                step: 0,
                party: PartyId(9)
            })
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let text = format!("{:?}", webhook("https://x/", SECRET));
        assert!(text.contains("https://x/"));
        assert!(!text.contains(SECRET), "{text}");
    }
}
