//! Creating, listing and revoking keys: the operations the CLI and the management API share.

use zeroize::Zeroizing;

use super::format;
use crate::ids::{KeyId, WorkspaceId};
use crate::store::{AgentKeyRecord, Store, StoreError};

/// A key just created: the record as stored and the key text, which exists only here.
pub struct CreatedKey {
    /// What the store now holds (the hash, never the key).
    pub record: AgentKeyRecord,
    /// The key itself, to be shown once.
    pub key: Zeroizing<String>,
}

/// Mints a key in the workspace and stores its hash.
pub async fn create_key(
    store: &dyn Store,
    workspace: &WorkspaceId,
    name: &str,
) -> Result<CreatedKey, StoreError> {
    let generated = format::generate();
    let record = AgentKeyRecord {
        id: KeyId::generate(),
        workspace_id: workspace.clone(),
        name: name.to_owned(),
        prefix: generated.prefix.clone(),
        hash: generated.hash.to_vec(),
        created_at: crate::time::now_millis(),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_key(&record).await?;
    Ok(CreatedKey {
        record,
        key: generated.text,
    })
}

/// The workspace's keys, oldest first.
pub async fn list_keys(
    store: &dyn Store,
    workspace: &WorkspaceId,
) -> Result<Vec<AgentKeyRecord>, StoreError> {
    store.list_keys(workspace).await
}

/// Revokes a key; running servers refuse it within a second.
pub async fn revoke_key(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &KeyId,
) -> Result<(), StoreError> {
    store
        .revoke_key(workspace, id, crate::time::now_millis())
        .await
}
