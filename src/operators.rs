//! Operators: the people who sign in to the dashboard. Owns password hashing (Argon2id),
//! the sign-in check, and the one-time setup link `serve` prints when nobody can sign in
//! yet. Shared by the CLI (`agentgate operators ...`) and the dashboard; never sees HTTP
//! types, and never stores or logs a password or a token, only their hashes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::installation_audit::{Action, InstallationOrigin};
use crate::store::{OperatorRecord, Store, StoreError};

/// Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask for more).
pub const MIN_PASSWORD_LEN: usize = 12;

/// Longest password accepted, so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// How long a setup link printed by `serve` stays usable.
pub const SETUP_LINK_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Why an operator could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The name breaks the naming rule.
    #[error("an operator name is 1 to 64 letters, digits, '.', '@', '-' or '_'")]
    InvalidName,
    /// The password is too short or too long.
    #[error("a password is {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    WeakPassword,
    /// Another operator has this name.
    #[error("an operator with this name exists already")]
    NameTaken,
    /// No operator has this name.
    #[error("no operator with this name")]
    NotFound,
    /// Hashing failed (should not happen with valid parameters).
    #[error("password hashing failed")]
    Hash,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OperatorError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => OperatorError::NameTaken,
            StoreError::NotFound => OperatorError::NotFound,
            other => OperatorError::Store(other),
        }
    }
}

/// Checks an operator name: short, printable, no spaces (it appears in the nav).
pub fn check_name(name: &str) -> Result<(), OperatorError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_');
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(OperatorError::InvalidName);
    }
    Ok(())
}

/// Checks a password's length (in characters).
pub fn check_password(password: &str) -> Result<(), OperatorError> {
    let len = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        return Err(OperatorError::WeakPassword);
    }
    Ok(())
}

/// Hashes a password with Argon2id (the crate's defaults: RFC 9106's second recommended
/// option, 19 MiB, 2 passes), as a PHC string with its own salt.
pub fn hash_password(password: &str) -> Result<String, OperatorError> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|_| OperatorError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| OperatorError::Hash)
}

/// Whether `password` matches the PHC string (constant time inside argon2).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash no password matches, verified against when the name is unknown so that an
/// unknown name costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token()).expect("hashing a random token"))
}

/// Creates an operator with a checked name and password, recorded as asked by `origin`.
pub async fn create_operator(
    store: &dyn Store,
    name: &str,
    password: &str,
    origin: &InstallationOrigin,
) -> Result<OperatorRecord, OperatorError> {
    check_name(name)?;
    check_password(password)?;
    let password_hash = hash_blocking(password.to_owned()).await?;
    let record = OperatorRecord {
        id: format!("op_{}", &random_token()[..22]),
        name: name.to_owned(),
        password_hash,
        created_at: crate::time::now_millis(),
    };
    let audit = origin.applied(Action::OperatorCreated, name);
    store.insert_operator(&record, &audit).await?;
    Ok(record)
}

/// Sets a new password and ends every session of the operator, recorded as asked by
/// `origin`.
pub async fn reset_password(
    store: &dyn Store,
    name: &str,
    password: &str,
    origin: &InstallationOrigin,
) -> Result<(), OperatorError> {
    check_password(password)?;
    let hash = hash_blocking(password.to_owned()).await?;
    let audit = origin.applied(Action::PasswordReset, name);
    store.set_operator_password(name, &hash, &audit).await?;
    Ok(())
}

/// What a sign-in attempt found. The browser is told the same for both refusals; the
/// installation's audit records which it was.
#[derive(Debug)]
pub enum SignIn {
    /// The name and password are this operator's.
    Accepted(OperatorRecord),
    /// The name is this operator's; the password is not.
    WrongPassword(OperatorRecord),
    /// No operator has the name.
    UnknownName,
}

/// Checks a name and password, in about the same time whether the name is unknown or the
/// password wrong.
pub async fn authenticate(
    store: Arc<dyn Store>,
    name: &str,
    password: &str,
) -> Result<SignIn, StoreError> {
    let found = if check_name(name).is_ok() {
        store.find_operator_by_name(name).await?
    } else {
        None
    };
    let hash = found
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |o| o.password_hash.clone());
    let password = zeroize::Zeroizing::new(password.to_owned());
    let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    Ok(match found {
        Some(operator) if matches => SignIn::Accepted(operator),
        Some(operator) => SignIn::WrongPassword(operator),
        None => SignIn::UnknownName,
    })
}

/// When no operator exists, stores a fresh setup token (hashed, usable once, for
/// [`SETUP_LINK_LIFETIME`]) and returns the link to print; `None` when someone can sign in.
pub async fn issue_setup_link(
    store: &dyn Store,
    public_url: &str,
) -> Result<Option<String>, StoreError> {
    if store.count_operators().await? > 0 {
        return Ok(None);
    }
    let token = random_token();
    let now = crate::time::now_millis();
    let lifetime = i64::try_from(SETUP_LINK_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    store
        .insert_setup_token(&token_hash(&token), now, now + lifetime)
        .await?;
    Ok(Some(format!(
        "{}/setup/{token}",
        public_url.trim_end_matches('/')
    )))
}

/// 32 random bytes, base64url without padding: session, setup and pre-sign-in tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The hex SHA-256 of a token: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hashes on the blocking pool: Argon2id takes tens of milliseconds of CPU on purpose.
async fn hash_blocking(password: String) -> Result<String, OperatorError> {
    let password = zeroize::Zeroizing::new(password);
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| OperatorError::Hash)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_another_does_not() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterz"));
    }

    #[test]
    fn short_passwords_and_odd_names_are_refused() {
        assert!(check_password("elevenchars").is_err());
        assert!(check_password("twelve chars").is_ok());
        assert!(check_name("ada").is_ok());
        assert!(check_name("a b").is_err());
        assert!(check_name("<script>").is_err());
    }

    #[test]
    fn token_hashes_are_hex_sha256() {
        assert_eq!(token_hash("abc").len(), 64);
        assert_ne!(random_token(), random_token());
    }
}
