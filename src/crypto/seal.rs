//! Authenticated encryption of stored secrets (AES-256-GCM, RustCrypto).
//!
//! A sealed value is `version (1) | key id (4) | nonce (12) | ciphertext + tag`. The nonce is
//! fresh and random for every seal; the key id names the master key that sealed it, so
//! `agentgate master-key rotate` knows what to re-seal and a sealer holding several keys
//! knows which one opens it; the associated data binds the ciphertext to its
//! purpose, workspace and row, so a ciphertext copied to another row or tenant fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::{MasterKey, MasterKeySource};

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

/// One master key's derived encryption key and id.
struct DataKey {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_LEN],
}

impl DataKey {
    fn derive(master: &MasterKey) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, master.bytes());
        let mut data_key = Zeroizing::new([0u8; 32]);
        hkdf.expand(b"agentgate seal aes-256-gcm v1", data_key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut id = [0u8; KEY_ID_LEN];
        hkdf.expand(b"agentgate master key id v1", &mut id)
            .expect("4 bytes is a valid HKDF-SHA256 output length");
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key.as_ref()));
        Self { cipher, id }
    }
}

/// The keys a sealer holds: the current one seals, every one opens what it sealed.
struct Keyring {
    current: Arc<DataKey>,
    others: Vec<Arc<DataKey>>,
}

impl Keyring {
    fn find(&self, id: Option<[u8; KEY_ID_LEN]>) -> Option<Arc<DataKey>> {
        let id = id?;
        std::iter::once(&self.current)
            .chain(&self.others)
            .find(|key| key.id == id)
            .cloned()
    }
}

/// Seals and opens secrets with data keys derived from master keys (HKDF-SHA256). It seals
/// with the current master key and opens with any key it holds (chosen by the key id in the
/// ciphertext), so secrets stay readable while `agentgate master-key rotate` re-seals them.
/// A sealer built with [`Sealer::watching`] re-reads its key file when the file changes, so
/// a running server learns the new key of a rotation without a restart.
pub struct Sealer {
    keys: RwLock<Keyring>,
    watch: Option<KeyFileWatch>,
}

/// The key file a sealer re-reads, and the modification time it last read.
struct KeyFileWatch {
    path: PathBuf,
    seen: Mutex<Option<SystemTime>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(key id {})", self.key_id_hex())
    }
}

impl Sealer {
    /// Derives the encryption key and the key id from the master key.
    pub fn new(master: &MasterKey) -> Self {
        Self::with_previous(master, &[])
    }

    /// A sealer that seals with `current` and also opens what `previous` keys sealed.
    pub fn with_previous(current: &MasterKey, previous: &[MasterKey]) -> Self {
        Self {
            keys: RwLock::new(Keyring {
                current: Arc::new(DataKey::derive(current)),
                others: previous
                    .iter()
                    .map(|k| Arc::new(DataKey::derive(k)))
                    .collect(),
            }),
            watch: None,
        }
    }

    /// Re-reads `path` (the key file the keys came from) whenever its modification time
    /// changes: before sealing, and when a ciphertext names a key this sealer lacks. The
    /// file's first key becomes the current one; keys held before stay usable for opening.
    pub fn watching(mut self, path: PathBuf) -> Self {
        let seen = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        self.watch = Some(KeyFileWatch {
            path,
            seen: Mutex::new(seen),
        });
        self
    }

    /// The current master key's id as hex, safe to show and log.
    pub fn key_id_hex(&self) -> String {
        hex(&self.read().current.id)
    }

    /// Whether `sealed` was sealed with the current master key.
    pub fn is_current(&self, sealed: &Sealed) -> bool {
        sealed.key_id() == Some(self.read().current.id)
    }

    /// Encrypts `plaintext` for one row of one workspace, with a fresh random nonce.
    pub fn seal(
        &self,
        purpose: SecretPurpose,
        workspace: &str,
        row: &str,
        plaintext: &[u8],
    ) -> Sealed {
        self.reload_if_changed();
        let key = self.read().current.clone();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(purpose, workspace, row);
        let ciphertext = key
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
        out.extend_from_slice(&key.id);
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
        let found = self.read().find(sealed.key_id());
        let key = match found {
            Some(key) => key,
            None if self.reload_if_changed() => self
                .read()
                .find(sealed.key_id())
                .ok_or(SealError::WrongKey)?,
            None => return Err(SealError::WrongKey),
        };
        let nonce = Nonce::from_slice(&bytes[1 + KEY_ID_LEN..HEADER_LEN]);
        let aad = associated_data(purpose, workspace, row);
        key.cipher
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the watched key file if it changed since the last read; whether it did.
    fn reload_if_changed(&self) -> bool {
        let Some(watch) = &self.watch else {
            return false;
        };
        let modified = std::fs::metadata(&watch.path)
            .and_then(|m| m.modified())
            .ok();
        let mut seen = watch.seen.lock().unwrap_or_else(|e| e.into_inner());
        if modified.is_none() || *seen == modified {
            return false;
        }
        *seen = modified;
        let source = MasterKeySource::File {
            path: watch.path.clone(),
            create_if_missing: false,
        };
        let loaded = match MasterKey::load_all(source) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(%error, "the changed master key file could not be read; keeping the keys loaded before");
                return false;
            }
        };
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut held: Vec<Arc<DataKey>> = loaded
            .iter()
            .map(|k| Arc::new(DataKey::derive(k)))
            .collect();
        for key in std::iter::once(&keys.current).chain(&keys.others) {
            if !held.iter().any(|k| k.id == key.id) {
                held.push(key.clone());
            }
        }
        let current = held.remove(0);
        tracing::info!(key_id = %hex(&current.id), "re-read the master key file");
        *keys = Keyring {
            current,
            others: held,
        };
        true
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    fn a_watching_sealer_learns_a_new_first_key_and_keeps_opening_old_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let old = MasterKey::from_bytes([1; 32]);
        let new = MasterKey::from_bytes([2; 32]);
        MasterKey::write_key_file(&path, &[&old]).unwrap();
        let sealer = Sealer::new(&old).watching(path.clone());
        let before = sealer.seal(SecretPurpose::StripeKey, "w", "r", b"x");
        let by_new = Sealer::new(&new).seal(SecretPurpose::StripeKey, "w", "r2", b"y");
        assert!(matches!(
            sealer.open(SecretPurpose::StripeKey, "w", "r2", &by_new),
            Err(SealError::WrongKey)
        ));
        std::thread::sleep(std::time::Duration::from_millis(20));
        MasterKey::write_key_file(&path, &[&new]).unwrap();
        let opened = sealer
            .open(SecretPurpose::StripeKey, "w", "r2", &by_new)
            .unwrap();
        assert_eq!(opened.as_slice(), b"y");
        let after = sealer.seal(SecretPurpose::StripeKey, "w", "r3", b"z");
        assert!(Sealer::new(&new).is_current(&after));
        assert!(sealer
            .open(SecretPurpose::StripeKey, "w", "r", &before)
            .is_ok());
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
