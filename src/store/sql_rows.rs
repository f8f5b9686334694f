//! How rows come back from either database, and how they become domain records.

use crate::crypto::Sealed;
use crate::ids::{ConnectionId, KeyId, WorkspaceId};
use crate::policy::{Role, Scopes};

use super::rows::{AgentKeyRecord, ConnectionRecord, RequestLogEntry, RequestLogRecord, Workspace};

#[derive(sqlx::FromRow)]
pub(super) struct WorkspaceRow {
    id: String,
    name: String,
    created_at: i64,
}

impl From<WorkspaceRow> for Workspace {
    fn from(row: WorkspaceRow) -> Self {
        Workspace {
            id: WorkspaceId::from_stored(row.id),
            name: row.name,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ConnectionRow {
    id: String,
    workspace_id: String,
    name: String,
    provider: String,
    secret: Vec<u8>,
    secret_hint: String,
    mode: String,
    key_kind: String,
    validation: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<ConnectionRow> for ConnectionRecord {
    fn from(row: ConnectionRow) -> Self {
        ConnectionRecord {
            id: ConnectionId::from_stored(row.id),
            workspace_id: WorkspaceId::from_stored(row.workspace_id),
            name: row.name,
            provider: row.provider,
            secret: Sealed::from_stored(row.secret),
            secret_hint: row.secret_hint,
            mode: row.mode,
            key_kind: row.key_kind,
            validation: row.validation,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    id: String,
    workspace_id: String,
    name: String,
    prefix: String,
    hash: Vec<u8>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    role: String,
    scopes: String,
    expires_at: Option<i64>,
}

impl From<KeyRow> for AgentKeyRecord {
    fn from(row: KeyRow) -> Self {
        AgentKeyRecord {
            id: KeyId::from_stored(row.id),
            workspace_id: WorkspaceId::from_stored(row.workspace_id),
            name: row.name,
            prefix: row.prefix,
            hash: row.hash,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            role: Role::from_stored(&row.role),
            // Scopes that do not parse would widen the key; deny-all is the safe reading.
            scopes: serde_json::from_str(&row.scopes).unwrap_or_else(|_| Scopes::deny_all()),
            expires_at: row.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RequestLogRow {
    id: i64,
    created_at: i64,
    workspace_id: String,
    request_id: String,
    key_id: String,
    connection: String,
    method: String,
    path: String,
    status: i32,
    latency_us: i64,
    stripe_request_id: Option<String>,
    idempotency_key: Option<String>,
    outcome: String,
    operation: Option<String>,
    reason: Option<String>,
    via: String,
    client: Option<String>,
    instance: Option<String>,
}

impl From<RequestLogRow> for RequestLogRecord {
    fn from(row: RequestLogRow) -> Self {
        RequestLogRecord {
            id: row.id,
            instance: row.instance,
            entry: RequestLogEntry {
                created_at: row.created_at,
                workspace_id: WorkspaceId::from_stored(row.workspace_id),
                request_id: row.request_id,
                key_id: KeyId::from_stored(row.key_id),
                connection: row.connection,
                method: row.method.into(),
                path: row.path,
                status: u16::try_from(row.status).unwrap_or(0),
                latency_us: row.latency_us,
                stripe_request_id: row.stripe_request_id,
                idempotency_key: row.idempotency_key,
                outcome: row.outcome.into(),
                operation: row.operation,
                reason: row.reason,
                via: row.via.into(),
                // Written by agentgate from an address; anything else is no address.
                client: row.client.and_then(|text| text.parse().ok()),
            },
        }
    }
}
