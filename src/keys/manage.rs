//! Creating, listing and revoking keys: the operations the CLI and the management API share.

use zeroize::Zeroizing;

use super::format;
use crate::audit::{Change, ChangeOrigin};
use crate::ids::{KeyId, WorkspaceId};
use crate::policy::{Role, Scopes};
use crate::store::{AgentKeyRecord, Store, StoreError};

/// A key just created: the record as stored and the key text, which exists only here.
pub struct CreatedKey {
    /// What the store now holds (the hash, never the key).
    pub record: AgentKeyRecord,
    /// The key itself, to be shown once.
    pub key: Zeroizing<String>,
}

/// What a new key is: its name, role, scopes and expiry.
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    /// Who holds the key.
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// What it may do.
    pub scopes: Scopes,
    /// When it stops working (Unix milliseconds), if ever.
    pub expires_at: Option<i64>,
}

impl KeySpec {
    /// An unrestricted agent key.
    pub fn agent(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

/// Mints a key in the workspace and stores its hash.
pub async fn create_key(
    store: &dyn Store,
    workspace: &WorkspaceId,
    spec: KeySpec,
    origin: &ChangeOrigin,
) -> Result<CreatedKey, StoreError> {
    let created = mint(workspace, spec);
    let audit = origin.record(workspace, Change::KeyCreated, "");
    store.insert_key(&created.record, &audit).await?;
    Ok(created)
}

/// A new key to `spec`, not yet stored.
fn mint(workspace: &WorkspaceId, spec: KeySpec) -> CreatedKey {
    let generated = format::generate();
    let record = AgentKeyRecord {
        id: KeyId::generate(),
        workspace_id: workspace.clone(),
        name: spec.name,
        prefix: generated.prefix.clone(),
        hash: generated.hash.to_vec(),
        created_at: crate::time::now_millis(),
        last_used_at: None,
        revoked_at: None,
        role: spec.role,
        scopes: spec.scopes,
        expires_at: spec.expires_at,
    };
    CreatedKey {
        record,
        key: generated.text,
    }
}

/// The workspace's keys, oldest first.
pub async fn list_keys(
    store: &dyn Store,
    workspace: &WorkspaceId,
) -> Result<Vec<AgentKeyRecord>, StoreError> {
    store.list_keys(workspace).await
}

/// Rotates a key: a new key with the same name, role and scopes, while the old one keeps
/// working until `old_expires_at` (Unix milliseconds; now or later). Both happen in one
/// transaction, or neither.
pub async fn rotate_key(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &KeyId,
    old_expires_at: i64,
    origin: &ChangeOrigin,
) -> Result<CreatedKey, StoreError> {
    let old = store
        .list_keys(workspace)
        .await?
        .into_iter()
        .find(|key| &key.id == id && key.revoked_at.is_none())
        .ok_or(StoreError::NotFound)?;
    let created = mint(
        workspace,
        KeySpec {
            name: old.name,
            role: old.role,
            scopes: old.scopes,
            expires_at: None,
        },
    );
    let expiry = old
        .expires_at
        .map_or(old_expires_at, |at| at.min(old_expires_at));
    let audit = origin.record(workspace, Change::KeyRotated, "");
    store
        .rotate_key(&created.record, id, expiry, &audit)
        .await?;
    Ok(created)
}

/// Revokes a key; running servers refuse it within a second.
pub async fn revoke_key(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &KeyId,
    origin: &ChangeOrigin,
) -> Result<(), StoreError> {
    let audit = origin.record(workspace, Change::KeyRevoked, "");
    store
        .revoke_key(workspace, id, crate::time::now_millis(), &audit)
        .await
}
