//! Connections: named provider credentials of a workspace. This module stores them sealed,
//! and resolves a connection name to the ready-to-inject credential for the proxy, from
//! memory in steady state.

mod manage;
pub mod stripe;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::HeaderValue;
use zeroize::Zeroizing;

use crate::crypto::seal::Sealer;
use crate::crypto::SecretPurpose;
use crate::ids::{ConnectionId, WorkspaceId};
use crate::store::{ConnectionRecord, Store, StoreError};
pub use manage::{
    list_connections, remove_connection, set_connection_validation, set_stripe_connection,
};

/// A connection ready for the proxy: the `Authorization` value to inject.
pub struct ResolvedConnection {
    /// The connection's id.
    pub id: ConnectionId,
    /// Its name, shared with metric labels.
    pub name: Arc<str>,
    /// `Bearer <stripe key>`, marked sensitive; its bytes are zeroized when the last clone
    /// is dropped (copies hyper makes while writing a request are not under our control).
    pub authorization: HeaderValue,
    /// The masked key (`sk_test_…4242`), for dry runs.
    pub secret_hint: Arc<str>,
    /// Whether listed operations are validated against the catalog.
    pub validation: bool,
    /// Whether the stored key is a live-mode key.
    pub live: bool,
}

impl std::fmt::Debug for ResolvedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResolvedConnection({})", self.id)
    }
}

/// Why a connection could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The store could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sealed secret did not open: another master key, tampering, or a row copied from
    /// elsewhere. Nothing may be forwarded.
    #[error("the stored secret of connection {0} could not be decrypted")]
    Undecryptable(ConnectionId),
}

type Entries = HashMap<WorkspaceId, HashMap<String, Option<Arc<ResolvedConnection>>>>;

/// Cached name-to-credential lookups, emptied whenever the store's generation moves.
pub struct ConnectionResolver {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    entries: RwLock<Entries>,
    /// Moves on every `clear`, so a lookup that raced with a change is not cached.
    epoch: AtomicU64,
}

impl ConnectionResolver {
    /// An empty cache in front of the store.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Self {
        Self {
            store,
            sealer,
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// The workspace's connection with this name, or `None` if it has none.
    pub async fn resolve(
        &self,
        workspace: &WorkspaceId,
        name: &str,
    ) -> Result<Option<Arc<ResolvedConnection>>, ResolveError> {
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(workspace.as_str())
            .and_then(|names| names.get(name).cloned());
        if let Some(entry) = cached {
            return Ok(entry);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let resolved = match self.store.find_connection(workspace, name).await? {
            Some(record) => Some(Arc::new(self.unseal(&record)?)),
            None => None,
        };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::SeqCst) == epoch {
            entries
                .entry(workspace.clone())
                .or_default()
                .insert(name.to_owned(), resolved.clone());
        }
        Ok(resolved)
    }

    /// Forgets everything; the next request asks the store again.
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    fn unseal(&self, record: &ConnectionRecord) -> Result<ResolvedConnection, ResolveError> {
        let undecryptable = || ResolveError::Undecryptable(record.id.clone());
        let secret = self
            .sealer
            .open(
                SecretPurpose::StripeKey,
                record.workspace_id.as_str(),
                record.id.as_str(),
                &record.secret,
            )
            .map_err(|_| undecryptable())?;
        let mut value = Zeroizing::new(Vec::with_capacity(7 + secret.len()));
        value.extend_from_slice(b"Bearer ");
        value.extend_from_slice(&secret);
        let mut authorization = HeaderValue::from_maybe_shared(Bytes::from_owner(value))
            .map_err(|_| undecryptable())?;
        authorization.set_sensitive(true);
        Ok(ResolvedConnection {
            id: record.id.clone(),
            name: Arc::from(record.name.as_str()),
            authorization,
            secret_hint: Arc::from(record.secret_hint.as_str()),
            validation: record.validation,
            live: record.mode == "live",
        })
    }
}
