//! Turns a presented key into the key record it belongs to, from memory in steady state.
//!
//! The cache maps a key's SHA-256 to what the store said about it, including "unknown"
//! (bounded), and is emptied whenever the store's generation moves (a key created or
//! revoked, on any instance or from the CLI), which the app's watcher checks several times a
//! second. Looking up by a hash of 190 random bits leaks nothing through timing; the final
//! comparison with the stored hash is constant-time anyway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;

use super::format::{self, KeyHash};
use crate::ids::{KeyId, WorkspaceId};
use crate::policy::{Role, Scopes};
use crate::store::{Store, StoreError};

/// At most this many unknown-but-well-formed keys are remembered between invalidations.
const MAX_UNKNOWN_ENTRIES: usize = 10_000;

/// An authenticated caller: which key, in which workspace, allowed to do what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedKey {
    /// The key's public id.
    pub id: KeyId,
    /// The workspace everything this caller names is looked up in.
    pub workspace_id: WorkspaceId,
    /// What the key is for.
    pub role: Role,
    /// What the key may do.
    pub scopes: Scopes,
    /// When the key stops working (Unix milliseconds).
    pub expires_at: Option<i64>,
}

/// Why a presented key was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No key presented.
    #[error("no key presented")]
    Missing,
    /// Malformed, bad checksum, or unknown.
    #[error("invalid key")]
    Invalid,
    /// Revoked by an operator; the key is known, so the refusal can be recorded under it.
    #[error("revoked key")]
    Revoked(Arc<AuthenticatedKey>),
    /// Past its expiry time (after a rotation, or as created).
    #[error("expired key")]
    Expired(Arc<AuthenticatedKey>),
    /// The store could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
enum Entry {
    Active(Arc<AuthenticatedKey>),
    Revoked(Arc<AuthenticatedKey>),
    Unknown,
}

/// Cached key lookups shared by every request.
pub struct KeyAuthenticator {
    store: Arc<dyn Store>,
    entries: RwLock<HashMap<KeyHash, Entry>>,
    /// Moves on every `clear`, so a lookup that raced with a change is not cached.
    epoch: AtomicU64,
}

impl KeyAuthenticator {
    /// An empty cache in front of the store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// Authenticates a presented key: format and checksum first, then memory, then the store.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
    ) -> Result<Arc<AuthenticatedKey>, AuthError> {
        let presented = presented.ok_or(AuthError::Missing)?;
        let hash = format::parse(presented).map_err(|_| AuthError::Invalid)?;
        let cached = self.read_entries().get(&hash).cloned();
        let entry = match cached {
            Some(entry) => entry,
            None => self.load(&hash).await?,
        };
        match entry {
            Entry::Active(key)
                if key
                    .expires_at
                    .is_some_and(|at| at <= crate::time::now_millis()) =>
            {
                Err(AuthError::Expired(key))
            }
            Entry::Active(key) => Ok(key),
            Entry::Revoked(key) => Err(AuthError::Revoked(key)),
            Entry::Unknown => Err(AuthError::Invalid),
        }
    }

    /// Forgets everything; the next request of each key asks the store again.
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    async fn load(&self, hash: &KeyHash) -> Result<Entry, AuthError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let record = self.store.find_key_by_hash(hash).await?;
        let entry = match record {
            Some(record) if bool::from(record.hash.as_slice().ct_eq(hash)) => {
                let revoked = record.revoked_at.is_some();
                let key = Arc::new(AuthenticatedKey {
                    id: record.id,
                    workspace_id: record.workspace_id,
                    role: record.role,
                    scopes: record.scopes,
                    expires_at: record.expires_at,
                });
                if revoked {
                    Entry::Revoked(key)
                } else {
                    Entry::Active(key)
                }
            }
            _ => Entry::Unknown,
        };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let full = entries.len() >= MAX_UNKNOWN_ENTRIES;
        let current = self.epoch.load(Ordering::SeqCst) == epoch;
        if current && !(full && matches!(entry, Entry::Unknown)) {
            entries.insert(*hash, entry.clone());
        }
        Ok(entry)
    }

    fn read_entries(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyHash, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }
}
