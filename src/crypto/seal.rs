//! Authenticated encryption of stored secrets (AES-256-GCM, RustCrypto).
//!
//! A sealed value is `version (1) | key id (4) | nonce (12) | ciphertext + tag`. The nonce is
//! fresh and random for every seal; the key id names the master key that sealed it, so a
//! later key rotation knows what to re-seal; the associated data binds the ciphertext to its
//! purpose, workspace and row, so a ciphertext copied to another row or tenant fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::MasterKey;

const FORMAT_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// What a sealed secret is for; part of the associated data, so a webhook secret cannot be
/// passed off as a Stripe key.
#[derive(Clone, Copy, Debug)]
pub enum SecretPurpose {
    /// A Stripe API key of a connection.
    StripeKey,
    /// The known value that proves a database was written with this master key.
    MasterKeyCheck,
    /// A Stripe webhook endpoint's signing secret (`whsec_...`).
    WebhookSecret,
    /// A push destination's signing secret (Standard Webhooks `whsec_...`), made by us.
    PushSecret,
}

impl SecretPurpose {
    fn label(self) -> &'static str {
        match self {
            SecretPurpose::StripeKey => "stripe-key",
            SecretPurpose::MasterKeyCheck => "master-key-check",
            SecretPurpose::WebhookSecret => "webhook-secret",
            SecretPurpose::PushSecret => "push-secret",
        }
    }
}

/// Ciphertext as stored. The store accepts secrets only in this form, so plaintext cannot
/// reach a row by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl Sealed {
    /// Wraps bytes read back from the store.
    pub fn from_stored(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id of the master key that sealed this value, if the header is well formed.
    pub fn key_id(&self) -> Option<[u8; KEY_ID_LEN]> {
        self.0.get(1..1 + KEY_ID_LEN)?.try_into().ok()
    }
}

/// Why a sealed value could not be opened. Deliberately carries no detail: a tag failure
/// on a tampered, moved or foreign-key ciphertext all look the same.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Sealed by a different master key than the one loaded.
    #[error("the value was sealed with a different master key")]
    WrongKey,
    /// Truncated, tampered with, or bound to another row.
    #[error("the sealed value failed authentication")]
    Corrupt,
}

/// Seals and opens secrets with a data key derived from the master key (HKDF-SHA256).
pub struct Sealer {
    cipher: Aes256Gcm,
    key_id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(key id {})", self.key_id_hex())
    }
}

impl Sealer {
    /// Derives the encryption key and the key id from the master key.
    pub fn new(master: &MasterKey) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, master.bytes());
        let mut data_key = Zeroizing::new([0u8; 32]);
        hkdf.expand(b"agentgate seal aes-256-gcm v1", data_key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut key_id = [0u8; KEY_ID_LEN];
        hkdf.expand(b"agentgate master key id v1", &mut key_id)
            .expect("4 bytes is a valid HKDF-SHA256 output length");
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key.as_ref()));
        Self { cipher, key_id }
    }

    /// The master key's id as hex, safe to show and log.
    pub fn key_id_hex(&self) -> String {
        self.key_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Encrypts `plaintext` for one row of one workspace, with a fresh random nonce.
    pub fn seal(
        &self,
        purpose: SecretPurpose,
        workspace: &str,
        row: &str,
        plaintext: &[u8],
    ) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(purpose, workspace, row);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption cannot fail for inputs under 64 GiB");
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Sealed(out)
    }

    /// Decrypts a value sealed for exactly this purpose, workspace and row.
    pub fn open(
        &self,
        purpose: SecretPurpose,
        workspace: &str,
        row: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let bytes = sealed.as_bytes();
        if bytes.len() < HEADER_LEN || bytes[0] != FORMAT_VERSION {
            return Err(SealError::Corrupt);
        }
        if sealed.key_id() != Some(self.key_id) {
            return Err(SealError::WrongKey);
        }
        let nonce = Nonce::from_slice(&bytes[1 + KEY_ID_LEN..HEADER_LEN]);
        let aad = associated_data(purpose, workspace, row);
        self.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &bytes[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }
}

fn associated_data(purpose: SecretPurpose, workspace: &str, row: &str) -> Vec<u8> {
    format!("agentgate/v1|{}|{workspace}|{row}", purpose.label()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&MasterKey::from_bytes([42; 32]))
    }

    #[test]
    fn opens_what_it_sealed_for_the_same_row() {
        let sealer = sealer();
        let sealed = sealer.seal(SecretPurpose::StripeKey, "ws_a", "conn_1", b"sk_test_x");
        let opened = sealer
            .open(SecretPurpose::StripeKey, "ws_a", "conn_1", &sealed)
            .unwrap();
        assert_eq!(opened.as_slice(), b"sk_test_x");
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_or_workspace_fails() {
        let sealer = sealer();
        let sealed = sealer.seal(SecretPurpose::StripeKey, "ws_a", "conn_1", b"sk_test_x");
        assert!(sealer
            .open(SecretPurpose::StripeKey, "ws_b", "conn_1", &sealed)
            .is_err());
        assert!(sealer
            .open(SecretPurpose::StripeKey, "ws_a", "conn_2", &sealed)
            .is_err());
        assert!(sealer
            .open(SecretPurpose::MasterKeyCheck, "ws_a", "conn_1", &sealed)
            .is_err());
    }

    #[test]
    fn any_flipped_byte_fails_to_open() {
        let sealer = sealer();
        let sealed = sealer.seal(SecretPurpose::StripeKey, "ws_a", "conn_1", b"sk_test_x");
        for i in 0..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            let tampered = Sealed::from_stored(bytes);
            assert!(
                sealer
                    .open(SecretPurpose::StripeKey, "ws_a", "conn_1", &tampered)
                    .is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn another_master_key_is_recognised_by_its_key_id() {
        let sealed = sealer().seal(SecretPurpose::StripeKey, "ws_a", "conn_1", b"x");
        let other = Sealer::new(&MasterKey::from_bytes([1; 32]));
        let error = other
            .open(SecretPurpose::StripeKey, "ws_a", "conn_1", &sealed)
            .unwrap_err();
        assert!(matches!(error, SealError::WrongKey));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let sealer = sealer();
        let nonces: std::collections::HashSet<Vec<u8>> = (0..10_000)
            .map(|_| {
                sealer
                    .seal(SecretPurpose::StripeKey, "w", "r", b"x")
                    .as_bytes()[5..17]
                    .to_vec()
            })
            .collect();
        assert_eq!(nonces.len(), 10_000);
    }
}
