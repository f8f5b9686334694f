//! Storing, listing and removing connections: the operations the CLI and the management
//! API share. The secret is sealed here, bound to its workspace and row.

use crate::audit::{Change, ChangeOrigin};
use crate::crypto::seal::Sealer;
use crate::crypto::SecretPurpose;
use crate::ids::{ConnectionId, WorkspaceId};
use crate::store::{ConnectionRecord, Store, StoreError};

use super::stripe::{self, StripeSecret};

/// Stores (or replaces) the Stripe key of the named connection and returns the record,
/// which holds only the sealed key and its masked form.
pub async fn set_stripe_connection(
    store: &dyn Store,
    sealer: &Sealer,
    workspace: &WorkspaceId,
    name: &str,
    secret: &StripeSecret,
    origin: &ChangeOrigin,
) -> Result<ConnectionRecord, StoreError> {
    let now = crate::time::now_millis();
    let existing = store.find_connection(workspace, name).await?;
    let (id, created_at, validation) = match existing {
        Some(record) => (record.id, record.created_at, record.validation),
        None => (ConnectionId::generate(), now, true),
    };
    let sealed = sealer.seal(
        SecretPurpose::StripeKey,
        workspace.as_str(),
        id.as_str(),
        secret.expose().as_bytes(),
    );
    let record = ConnectionRecord {
        id,
        workspace_id: workspace.clone(),
        name: name.to_owned(),
        provider: stripe::PROVIDER.to_owned(),
        secret: sealed,
        secret_hint: secret.masked(),
        mode: secret.mode().as_str().to_owned(),
        key_kind: secret.kind().as_str().to_owned(),
        validation,
        created_at,
        updated_at: now,
    };
    let audit = origin.record(workspace, Change::ConnectionSet, name);
    store.save_connection(&record, &audit).await?;
    Ok(record)
}

/// The workspace's connections (metadata only: the secret stays sealed).
pub async fn list_connections(
    store: &dyn Store,
    workspace: &WorkspaceId,
) -> Result<Vec<ConnectionRecord>, StoreError> {
    store.list_connections(workspace).await
}

/// Switches catalog validation of the named connection, for operators who pin a Stripe
/// API version the catalog does not describe.
pub async fn set_connection_validation(
    store: &dyn Store,
    workspace: &WorkspaceId,
    name: &str,
    enabled: bool,
    origin: &ChangeOrigin,
) -> Result<(), StoreError> {
    let audit = origin.record(workspace, Change::ConnectionValidation, name);
    store
        .set_connection_validation(workspace, name, enabled, &audit)
        .await
}

/// Removes the named connection; agents get 404 for it within a second.
pub async fn remove_connection(
    store: &dyn Store,
    workspace: &WorkspaceId,
    name: &str,
    origin: &ChangeOrigin,
) -> Result<(), StoreError> {
    let audit = origin.record(workspace, Change::ConnectionDeleted, name);
    store.delete_connection(workspace, name, &audit).await
}
