//! Proof that a database was written with the loaded master key: a known value sealed on
//! first start and opened on every later one. Starting with another key would otherwise
//! serve 500s for every stored secret, or seal new ones no other instance can read.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::seal::{Sealed, Sealer};
use super::SecretPurpose;
use crate::store::{Store, StoreError};

const SETTING: &str = "master_key_check";
const KNOWN_VALUE: &[u8] = b"agentgate master key check";

/// Why the master key was refused for this database.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyCheckError {
    /// The database was written with another master key.
    #[error("the master key (id {loaded}) does not match the key this database was written with; start with the original key (AGENTGATE_MASTER_KEY or --master-key-file)")]
    Mismatch {
        /// The loaded key's id.
        loaded: String,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records the key's proof on a new database, or checks it on an existing one.
pub async fn verify_master_key(
    store: &dyn Store,
    sealer: &Sealer,
) -> Result<(), MasterKeyCheckError> {
    if let Some(stored) = store.get_setting(SETTING).await? {
        return check(&stored, sealer);
    }
    let sealed = sealer.seal(SecretPurpose::MasterKeyCheck, "-", SETTING, KNOWN_VALUE);
    match store
        .insert_setting(SETTING, &STANDARD.encode(sealed.as_bytes()))
        .await
    {
        Ok(()) => Ok(()),
        // Another instance recorded its proof first: ours must match it.
        Err(StoreError::Conflict { .. }) => match store.get_setting(SETTING).await? {
            Some(stored) => check(&stored, sealer),
            None => Err(StoreError::NotFound.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// Re-seals the stored proof with the sealer's current key if another key sealed it;
/// whether it changed. Part of `master-key rotate`.
pub async fn reseal_check(store: &dyn Store, sealer: &Sealer) -> Result<bool, MasterKeyCheckError> {
    let Some(stored) = store.get_setting(SETTING).await? else {
        return Ok(false);
    };
    check(&stored, sealer)?;
    let sealed = Sealed::from_stored(STANDARD.decode(&stored).unwrap_or_default());
    if sealer.is_current(&sealed) {
        return Ok(false);
    }
    let fresh = sealer.seal(SecretPurpose::MasterKeyCheck, "-", SETTING, KNOWN_VALUE);
    Ok(store
        .replace_setting(SETTING, &stored, &STANDARD.encode(fresh.as_bytes()))
        .await?)
}

fn check(stored: &str, sealer: &Sealer) -> Result<(), MasterKeyCheckError> {
    let mismatch = || MasterKeyCheckError::Mismatch {
        loaded: sealer.key_id_hex(),
    };
    let sealed = Sealed::from_stored(STANDARD.decode(stored).map_err(|_| mismatch())?);
    match sealer.open(SecretPurpose::MasterKeyCheck, "-", SETTING, &sealed) {
        Ok(value) if value.as_slice() == KNOWN_VALUE => Ok(()),
        _ => Err(mismatch()),
    }
}
