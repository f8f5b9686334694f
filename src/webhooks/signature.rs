//! Stripe's webhook signature (`../shared/stripe/NOTES.md` §9): the `Stripe-Signature`
//! header `t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]` carries HMAC-SHA256 signatures of
//! `"{t}.{raw body}"` keyed with the endpoint's `whsec_...` secret (the whole string).
//! Any `v1` that matches any active secret is accepted (several appear while a secret is
//! rolled); other schemes (`v0`, test schemes) are ignored, as Stripe's SDKs do. Unlike
//! Python's SDK, a timestamp too far in the future is refused as well as a stale one, so a
//! captured signature cannot be used later by pre-dating the clock.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far the signed timestamp may be from our clock (Stripe's SDKs: 300 s).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The only scheme checked; Stripe signs with it and its SDKs verify only it.
const SCHEME: &str = "v1";

/// Why a signature was refused; the message is safe to send back (it names no secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("No Stripe-Signature header was sent.")]
    Missing,
    /// The header has no (or an unreadable) `t=` timestamp.
    #[error("The Stripe-Signature header has no valid timestamp.")]
    NoTimestamp,
    /// The header has no `v1=` signature.
    #[error("The Stripe-Signature header has no v1 signature.")]
    NoV1,
    /// No `v1` signature matches the payload under any active secret.
    #[error("No signature matches the payload for any signing secret of this endpoint.")]
    Mismatch,
    /// The signed timestamp is older than the tolerance.
    #[error("The signature timestamp is outside the tolerance (too old).")]
    Stale,
    /// The signed timestamp is further ahead of our clock than the tolerance.
    #[error("The signature timestamp is outside the tolerance (in the future).")]
    Future,
}

impl SignatureError {
    /// A short stable code for the error body and logs.
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::NoTimestamp => "signature_timestamp_missing",
            SignatureError::NoV1 => "signature_v1_missing",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::Stale => "signature_timestamp_stale",
            SignatureError::Future => "signature_timestamp_future",
        }
    }
}

/// The parts of a `Stripe-Signature` header that matter.
#[derive(Debug, PartialEq, Eq)]
struct Header<'a> {
    timestamp: i64,
    v1: Vec<&'a str>,
}

/// Parses `t=...,v1=...`: the first `t` wins (as in Stripe's SDKs), pairs without `=` and
/// unknown schemes are ignored.
fn parse(header: &str) -> Result<Header<'_>, SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for pair in header.split(',') {
        let Some((key, value)) = pair.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::NoTimestamp)?,
                )
            }
            SCHEME => v1.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::NoTimestamp)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    Ok(Header { timestamp, v1 })
}

/// The hex `v1` signature of `payload` at `timestamp` under `secret`: what Stripe sends,
/// and what tests and the benchmark sign with.
pub fn sign(secret: &[u8], timestamp: i64, payload: &[u8]) -> String {
    mac(secret, timestamp, payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mac(secret: &[u8], timestamp: i64, payload: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// Decodes 64 lowercase hex digits; anything else matches nothing.
fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        // Lowercase only, as Stripe sends and its SDKs compare (as text).
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = digit(pair[0])? * 16 + digit(pair[1])?;
    }
    Some(out)
}

/// Checks the header against the raw body with each secret; `Ok` with the signed
/// timestamp when some `v1` matches some secret and the timestamp is within `tolerance`
/// of `now` (Unix seconds) either way. Every comparison is constant time.
pub fn verify<S: AsRef<[u8]>>(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[S],
    now: i64,
    tolerance: Duration,
) -> Result<i64, SignatureError> {
    let header = parse(header.ok_or(SignatureError::Missing)?)?;
    let given: Vec<[u8; 32]> = header.v1.iter().filter_map(|v| decode_hex(v)).collect();
    let mut matched = false;
    for secret in secrets {
        let expected = mac(secret.as_ref(), header.timestamp, payload);
        for signature in &given {
            matched |= bool::from(expected.ct_eq(signature));
        }
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if header.timestamp < now.saturating_sub(tolerance) {
        return Err(SignatureError::Stale);
    }
    if header.timestamp > now.saturating_add(tolerance) {
        return Err(SignatureError::Future);
    }
    Ok(header.timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";

    #[test]
    fn parses_several_v1_and_ignores_other_schemes() {
        let header = parse("t=12,v1=aa,v0=bb,v1=cc,junk,x=y").unwrap();
        assert_eq!(header.timestamp, 12);
        assert_eq!(header.v1, vec!["aa", "cc"]);
        assert_eq!(parse("v1=aa"), Err(SignatureError::NoTimestamp));
        assert_eq!(parse("t=x,v1=aa"), Err(SignatureError::NoTimestamp));
        assert_eq!(parse("t=1,v0=aa"), Err(SignatureError::NoV1));
    }

    #[test]
    fn a_signature_made_here_verifies_within_the_tolerance_only() {
        let body = br#"{"id":"evt_1","type":"customer.created"}"#;
        let header = format!("t=1000,v1={}", sign(SECRET, 1000, body));
        let check = |now| verify(Some(&header), body, &[SECRET], now, DEFAULT_TOLERANCE);
        assert_eq!(check(1000), Ok(1000));
        assert_eq!(check(1300), Ok(1000));
        assert_eq!(check(1301), Err(SignatureError::Stale));
        assert_eq!(check(699), Err(SignatureError::Future));
        let wrong = verify(
            Some(&header),
            body,
            &[b"whsec_other"],
            1000,
            DEFAULT_TOLERANCE,
        );
        assert_eq!(wrong, Err(SignatureError::Mismatch));
        assert_eq!(
            verify(None, body, &[SECRET], 1000, DEFAULT_TOLERANCE),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn any_active_secret_may_match() {
        let body = b"{}";
        let header = format!("t=5,v1={}", sign(b"whsec_new", 5, body));
        let secrets: [&[u8]; 2] = [b"whsec_old", b"whsec_new"];
        assert_eq!(
            verify(Some(&header), body, &secrets, 5, DEFAULT_TOLERANCE),
            Ok(5)
        );
    }

    #[test]
    fn malformed_hex_matches_nothing() {
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(&"g".repeat(64)), None);
        assert_eq!(decode_hex(&"0f".repeat(32)), Some([15; 32]));
        assert_eq!(decode_hex(&"0F".repeat(32)), None);
    }
}
