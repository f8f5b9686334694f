//! Standard Webhooks signatures (standard-webhooks/standard-webhooks, `spec/standard-webhooks.md`):
//! a destination's secret is `whsec_` + base64 of random bytes; each request carries
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 of
//! HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed with the decoded secret>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// What every destination secret starts with, as the specification's libraries expect.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// The header names, lower case as HTTP/2 and the specification write them.
pub const HEADER_ID: &str = "webhook-id";
/// See [`HEADER_ID`].
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// See [`HEADER_ID`].
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// A destination's signing secret. Its `Debug` shows only the kind; the text is exposed
/// once, when the destination is created, and otherwise only sealed.
pub struct DestinationSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for DestinationSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("whsec_***")
    }
}

/// The stored text is not a `whsec_` secret (a corrupt row or a foreign value).
#[derive(Debug, thiserror::Error)]
#[error("not a whsec_ secret of 24 to 64 base64-encoded bytes")]
pub struct SecretFormatError;

impl DestinationSecret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads the `whsec_...` text back (after unsealing).
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretFormatError)?;
        let bytes = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| SecretFormatError)?);
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretFormatError);
        }
        Ok(Self(bytes))
    }

    /// The `whsec_...` text: to seal, and to show the operator once.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(&*self.0)))
    }

    /// The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256>` over
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks test suite (its libraries' shared vector).
    #[test]
    fn signs_the_specification_example() {
        let secret = DestinationSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_round_trip_and_hide_in_debug() {
        let secret = DestinationSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        let again = DestinationSecret::parse(&text).unwrap();
        assert_eq!(secret.sign("a", 1, b"x"), again.sign("a", 1, b"x"));
        assert_eq!(format!("{secret:?}"), "whsec_***");
        assert!(DestinationSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(DestinationSecret::parse("sk_test_x").is_err());
    }
}
