//! Idempotency for agents. An agent that times out and repeats a POST must not create a
//! second charge; Stripe prevents that when both attempts carry the same `Idempotency-Key`
//! (docs.stripe.com/idempotency), and agents often send none. Per key:
//!
//! - `off`: requests are forwarded as sent.
//! - `require`: a POST without `Idempotency-Key` is refused with 400 before anything is
//!   forwarded.
//! - `derive`: a POST without one gets `agentgate-<hex>`, an HMAC-SHA-256 over the
//!   agentgate key id, method, path and query, `Stripe-Account` and `Stripe-Context`, body
//!   bytes and the current time window. The same call repeated within the window carries
//!   the same key, so Stripe replays the first answer instead of acting twice.
//!
//! A key sent by the caller always wins and is forwarded unchanged. Only POST is concerned:
//! GET and DELETE are idempotent in Stripe's v1 API already.
//!
//! Windows are fixed (`floor(unix time / window)`), not sliding, so the derived key needs
//! no state and every instance derives the same one: a repeat that crosses a window
//! boundary gets a new key and is a new request to Stripe. The chance of that for a retry
//! after `d` seconds is `d / window` (under 0.1 % for an 80 s timeout and 24 h window).
//!
//! The HMAC key comes from the master key (which every instance shares), so nobody
//! without it can compute another agent's derived key and send it explicitly to be handed
//! that agent's saved response.

use std::sync::Arc;
use std::time::Duration;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::IdempotencyMode;
use crate::crypto::MasterKey;
use crate::ids::KeyId;
use crate::time::Clock;
use crate::validation::Violation;

/// The prefix of every derived key, so a derived key is recognisable in Stripe's dashboard
/// and logs.
pub const DERIVED_PREFIX: &str = "agentgate-";

/// Stripe keeps idempotency keys for at least 24 hours; a longer window would promise more
/// than Stripe keeps.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The error code of a POST refused under `require`.
pub const MISSING_CODE: &str = "idempotency_key_missing";

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static STRIPE_ACCOUNT: HeaderName = HeaderName::from_static("stripe-account");
static STRIPE_CONTEXT: HeaderName = HeaderName::from_static("stripe-context");

/// Refuses a POST without `Idempotency-Key` under `require`; needs no body, so it runs
/// before anything is read or counted against a rate limit.
pub fn require(
    mode: IdempotencyMode,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), Violation> {
    match mode {
        IdempotencyMode::Require if applies(method, headers) => Err(Violation {
            code: Some(MISSING_CODE),
            param: None,
            message: "This agentgate key requires an `Idempotency-Key` header on every POST \
                      request. Send a unique value (a V4 UUID, for example) and send the same \
                      value again when you retry the same request."
                .to_owned(),
        }),
        IdempotencyMode::Require | IdempotencyMode::Off | IdempotencyMode::Derive => Ok(()),
    }
}

/// Whether the body must be read to apply the mode to this request: only to derive a key
/// for a POST that has none.
pub fn needs_body(mode: IdempotencyMode, method: &Method, headers: &HeaderMap) -> bool {
    mode == IdempotencyMode::Derive && applies(method, headers)
}

/// A POST without a usable `Idempotency-Key` (an empty one counts as none).
fn applies(method: &Method, headers: &HeaderMap) -> bool {
    let present = headers
        .get(&IDEMPOTENCY_KEY)
        .is_some_and(|value| !value.as_bytes().trim_ascii().is_empty());
    method == Method::POST && !present
}

/// Derives `Idempotency-Key` values: holds the HMAC key, the window and the clock.
pub struct Deriver {
    secret: Zeroizing<[u8; 32]>,
    window: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Deriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deriver")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Deriver {
    /// A deriver whose HMAC key comes from the master key; `window` is how long a repeated
    /// call keeps its key (at least a second).
    pub fn new(master: &MasterKey, window: Duration, clock: Arc<dyn Clock>) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, master.bytes())
            .expand(b"agentgate idempotency key v1", secret.as_mut())
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        Self {
            secret,
            window: window.max(Duration::from_secs(1)),
            clock,
        }
    }

    /// The `Idempotency-Key` to add to the upstream request: a derived one for a POST
    /// without one under `derive`, otherwise none (the caller's, if any, is forwarded as
    /// sent).
    pub fn upstream_key(
        &self,
        mode: IdempotencyMode,
        key_id: &KeyId,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<HeaderValue> {
        if !needs_body(mode, method, headers) {
            return None;
        }
        let window = self.clock.unix().as_nanos() / self.window.as_nanos();
        let header = |name: &HeaderName| headers.get(name).map_or(&[][..], HeaderValue::as_bytes);
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_ref())
            .expect("HMAC takes a key of any length");
        for field in [
            key_id.as_str().as_bytes(),
            method.as_str().as_bytes(),
            path_and_query.as_bytes(),
            header(&STRIPE_ACCOUNT),
            header(&STRIPE_CONTEXT),
            &window.to_be_bytes(),
            body,
        ] {
            // Length-prefixed, so no two different field lists hash the same bytes.
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        let digest = mac.finalize().into_bytes();
        let mut text = String::with_capacity(DERIVED_PREFIX.len() + 2 * digest.len());
        text.push_str(DERIVED_PREFIX);
        for byte in digest {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Some(HeaderValue::try_from(text).expect("a prefix and hex digits make a valid header"))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    const DAY: Duration = Duration::from_secs(86_400);

    fn deriver(at: Duration) -> (Deriver, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(at));
        let master = MasterKey::from_bytes([7; 32]);
        (Deriver::new(&master, DAY, clock.clone()), clock)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    fn derive(
        deriver: &Deriver,
        key: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<HeaderValue> {
        deriver.upstream_key(
            IdempotencyMode::Derive,
            &KeyId::from_stored(key.to_owned()),
            &Method::POST,
            path,
            headers,
            body,
        )
    }

    #[test]
    fn require_refuses_a_post_without_a_key_and_nothing_else() {
        let none = HeaderMap::new();
        let refused = require(IdempotencyMode::Require, &Method::POST, &none).unwrap_err();
        assert_eq!(refused.code, Some(MISSING_CODE));
        assert_eq!(refused.param, None);
        assert!(refused.message.contains("Idempotency-Key"));
        let blank = headers(&[("idempotency-key", " ")]);
        assert!(require(IdempotencyMode::Require, &Method::POST, &blank).is_err());
        let sent = headers(&[("idempotency-key", "k1")]);
        assert!(require(IdempotencyMode::Require, &Method::POST, &sent).is_ok());
        assert!(require(IdempotencyMode::Require, &Method::GET, &none).is_ok());
        assert!(require(IdempotencyMode::Require, &Method::DELETE, &none).is_ok());
        assert!(require(IdempotencyMode::Off, &Method::POST, &none).is_ok());
        assert!(require(IdempotencyMode::Derive, &Method::POST, &none).is_ok());
    }

    #[test]
    fn the_body_is_read_only_to_derive_a_missing_key_for_a_post() {
        let none = HeaderMap::new();
        let sent = headers(&[("idempotency-key", "k1")]);
        assert!(needs_body(IdempotencyMode::Derive, &Method::POST, &none));
        assert!(!needs_body(IdempotencyMode::Derive, &Method::POST, &sent));
        assert!(!needs_body(IdempotencyMode::Derive, &Method::GET, &none));
        assert!(!needs_body(IdempotencyMode::Require, &Method::POST, &none));
        assert!(!needs_body(IdempotencyMode::Off, &Method::POST, &none));
    }

    #[test]
    fn the_same_call_gets_the_same_key_and_any_difference_another() {
        let (deriver, _clock) = deriver(DAY * 20_000);
        let none = HeaderMap::new();
        let first = derive(&deriver, "key_a", "/v1/charges", &none, b"amount=100").unwrap();
        let text = first.to_str().unwrap();
        assert!(text.starts_with(DERIVED_PREFIX));
        assert_eq!(text.len(), DERIVED_PREFIX.len() + 64);
        assert_eq!(
            derive(&deriver, "key_a", "/v1/charges", &none, b"amount=100"),
            Some(first.clone())
        );
        let account = headers(&[("stripe-account", "acct_1")]);
        for other in [
            derive(&deriver, "key_b", "/v1/charges", &none, b"amount=100"),
            derive(&deriver, "key_a", "/v1/refunds", &none, b"amount=100"),
            derive(
                &deriver,
                "key_a",
                "/v1/charges?expand[]=x",
                &none,
                b"amount=100",
            ),
            derive(&deriver, "key_a", "/v1/charges", &none, b"amount=101"),
            derive(&deriver, "key_a", "/v1/charges", &account, b"amount=100"),
        ] {
            assert_ne!(other.unwrap(), first);
        }
    }

    #[test]
    fn the_key_holds_within_a_window_and_changes_at_its_boundary() {
        let start_of_day = DAY * 20_000;
        let (deriver, clock) = deriver(start_of_day);
        let none = HeaderMap::new();
        let first = derive(&deriver, "key_a", "/v1/charges", &none, b"a=1");
        clock.advance(DAY - Duration::from_secs(1));
        assert_eq!(
            derive(&deriver, "key_a", "/v1/charges", &none, b"a=1"),
            first
        );
        clock.advance(Duration::from_secs(1));
        assert_ne!(
            derive(&deriver, "key_a", "/v1/charges", &none, b"a=1"),
            first
        );
    }

    #[test]
    fn another_master_key_derives_other_keys() {
        let clock = Arc::new(ManualClock::at(DAY));
        let one = Deriver::new(&MasterKey::from_bytes([1; 32]), DAY, clock.clone());
        let two = Deriver::new(&MasterKey::from_bytes([2; 32]), DAY, clock);
        let none = HeaderMap::new();
        assert_ne!(
            derive(&one, "key_a", "/v1/charges", &none, b""),
            derive(&two, "key_a", "/v1/charges", &none, b"")
        );
    }

    #[test]
    fn nothing_is_derived_when_the_caller_sent_a_key_or_the_mode_is_not_derive() {
        let (deriver, _clock) = deriver(DAY);
        let sent = headers(&[("idempotency-key", "mine")]);
        assert_eq!(derive(&deriver, "key_a", "/v1/charges", &sent, b""), None);
        let none = HeaderMap::new();
        let id = KeyId::from_stored("key_a".into());
        for (mode, method) in [
            (IdempotencyMode::Derive, Method::GET),
            (IdempotencyMode::Require, Method::POST),
            (IdempotencyMode::Off, Method::POST),
        ] {
            assert_eq!(
                deriver.upstream_key(mode, &id, &method, "/v1/charges", &none, b""),
                None
            );
        }
    }
}
