//! `/api/v1/keys`: create (the key is in the answer once, never again), list (never the key
//! nor its hash), revoke and rotate the workspace's agentgate keys, with the scopes of
//! `agentgate keys create` in the same words.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Origin};
use super::extract::{invalid, store_failed, ApiError, ApiJson, ApiPath};
use super::scopes::{RoleWord, ScopesBody};
use super::{ApiState, List};
use crate::error::{ErrorBody, GatewayError};
use crate::ids::{KeyId, WorkspaceId};
use crate::keys::{create_key, list_keys, revoke_key, rotate_key, CreatedKey, KeySpec};
use crate::store::{AgentKeyRecord, StoreError};

/// A key as listed: its id, label, role and scopes; never the key or its hash.
#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    /// Always `key`.
    #[schema(example = "key")]
    object: &'static str,
    /// `key_...`, the handle to revoke or rotate it by.
    id: String,
    /// Who holds the key.
    name: String,
    /// The key's first characters, to tell keys apart.
    prefix: String,
    /// What the key is for.
    role: RoleWord,
    /// What the key may do.
    scopes: ScopesBody,
    /// `active`, `expired` or `revoked`.
    status: String,
    /// When it was created (RFC 3339).
    created_at: String,
    /// When it last made a request that was logged (RFC 3339).
    last_used_at: Option<String>,
    /// When it stops working (RFC 3339).
    expires_at: Option<String>,
    /// When it was revoked (RFC 3339).
    revoked_at: Option<String>,
}

impl From<&AgentKeyRecord> for KeyOut {
    fn from(record: &AgentKeyRecord) -> Self {
        let now = crate::time::now_millis();
        let status = match (record.revoked_at, record.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            _ => "active",
        };
        Self {
            object: "key",
            id: record.id.to_string(),
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            role: record.role.into(),
            scopes: ScopesBody::from_scopes(&record.scopes),
            status: status.to_owned(),
            created_at: crate::time::rfc3339(record.created_at),
            last_used_at: record.last_used_at.map(crate::time::rfc3339),
            expires_at: record.expires_at.map(crate::time::rfc3339),
            revoked_at: record.revoked_at.map(crate::time::rfc3339),
        }
    }
}

/// A key just made: the listing's fields plus the key itself, shown this once.
#[derive(Serialize, ToSchema)]
pub struct KeyCreatedOut {
    /// The agentgate key (`agk_...`); store it now, it cannot be read again.
    key: String,
    /// The key's details.
    #[serde(flatten)]
    details: KeyOut,
}

impl From<CreatedKey> for KeyCreatedOut {
    fn from(created: CreatedKey) -> Self {
        Self {
            key: created.key.to_string(),
            details: KeyOut::from(&created.record),
        }
    }
}

/// The body of `POST /api/v1/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// Who holds the key.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// `agent` (default) or `admin`.
    #[serde(default)]
    role: RoleWord,
    /// What the key may do (no restriction when left out).
    #[serde(default)]
    scopes: ScopesBody,
    /// When the key stops working (RFC 3339, in the future).
    expires_at: Option<String>,
}

/// The body of `POST /api/v1/keys/{id}/rotate` (may be left out).
#[derive(Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RotateIn {
    /// When the old key stops working (RFC 3339; default: now), to give agents time to
    /// switch.
    old_expires_at: Option<String>,
}

/// The workspace's keys, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    operation_id = "api.keys.list",
    tag = "keys",
    responses(
        (status = 200, description = "Every key of the workspace", body = List<KeyOut>),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
) -> Result<Json<List<KeyOut>>, ApiError> {
    let records = list_keys(state.store.as_ref(), &key.workspace_id)
        .await
        .map_err(store_failed)?;
    Ok(Json(List::new(
        records.iter().map(KeyOut::from).collect(),
        false,
    )))
}

/// Creates a key; the answer holds the key, once.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    operation_id = "api.keys.create",
    tag = "keys",
    request_body = KeyIn,
    responses(
        (status = 200, description = "The new key, shown once", body = KeyCreatedOut),
        (status = 400, description = "Bad body or scope", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiJson(body): ApiJson<KeyIn>,
) -> Result<Json<KeyCreatedOut>, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        let message = "A key name is 1 to 200 printable characters.".to_owned();
        return Err(invalid("name", message));
    }
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| parse_time("expires_at", t))
        .transpose()?;
    if expires_at.is_some_and(|at| at <= crate::time::now_millis()) {
        return Err(invalid(
            "expires_at",
            "expires_at must be in the future.".into(),
        ));
    }
    let spec = KeySpec {
        name: name.to_owned(),
        role: body.role.into(),
        scopes: body.scopes.into_scopes(state.shared.catalog.catalog())?,
        expires_at,
    };
    let created = create_key(state.store.as_ref(), &key.workspace_id, spec, &origin)
        .await
        .map_err(store_failed)?;
    Ok(Json(created.into()))
}

/// Revokes a key; servers refuse it from their next cache refresh (at once on this one).
#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/revoke",
    operation_id = "api.keys.revoke",
    tag = "keys",
    params(("id" = String, Path, description = "The key's id (key_...)")),
    responses(
        (status = 200, description = "The revoked key", body = KeyOut),
        (status = 400, description = "Undecodable id", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key in this workspace", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyOut>, ApiError> {
    let id = key_id(&id)?;
    match revoke_key(state.store.as_ref(), &key.workspace_id, &id, &origin).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(missing(&id)),
        Err(error) => return Err(store_failed(error)),
    }
    state.shared.keys.clear();
    let record = find_key(&state, &key.workspace_id, &id).await?;
    Ok(Json(KeyOut::from(&record)))
}

/// Rotates a key: a new key with the same name, role and scopes; the old one works until
/// `old_expires_at`.
#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/rotate",
    operation_id = "api.keys.rotate",
    tag = "keys",
    params(("id" = String, Path, description = "The key's id (key_...)")),
    request_body(content = Option<RotateIn>),
    responses(
        (status = 200, description = "The new key, shown once", body = KeyCreatedOut),
        (status = 400, description = "Bad body or id", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No active key with this id in this workspace", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub async fn rotate(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RotateIn>,
) -> Result<Json<KeyCreatedOut>, ApiError> {
    let id = key_id(&id)?;
    let old_expires_at = match body.old_expires_at.as_deref() {
        Some(text) => parse_time("old_expires_at", text)?,
        None => crate::time::now_millis(),
    };
    let created = match rotate_key(
        state.store.as_ref(),
        &key.workspace_id,
        &id,
        old_expires_at,
        &origin,
    )
    .await
    {
        Ok(created) => created,
        Err(StoreError::NotFound) => return Err(missing(&id)),
        Err(error) => return Err(store_failed(error)),
    };
    state.shared.keys.clear();
    Ok(Json(created.into()))
}

/// A key id from the path; anything not shaped like one cannot exist.
fn key_id(text: &str) -> Result<KeyId, ApiError> {
    let id = KeyId::from_stored(text.to_owned());
    let shaped = text.starts_with(KeyId::PREFIX)
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match shaped {
        true => Ok(id),
        false => Err(missing(&id)),
    }
}

/// 404 for a key id this workspace does not have.
fn missing(id: &KeyId) -> ApiError {
    ApiError(GatewayError::ResourceMissing {
        kind: "key",
        id: crate::proxy::target::loggable_raw_path(id.as_str()),
    })
}

async fn find_key(
    state: &ApiState,
    workspace: &WorkspaceId,
    id: &KeyId,
) -> Result<AgentKeyRecord, ApiError> {
    let records = list_keys(state.store.as_ref(), workspace)
        .await
        .map_err(store_failed)?;
    records
        .into_iter()
        .find(|record| &record.id == id)
        .ok_or_else(|| missing(id))
}

/// Unix milliseconds of an RFC 3339 time, or a 400 naming `param`.
pub fn parse_time(param: &str, text: &str) -> Result<i64, ApiError> {
    let bad = || {
        invalid(
            param,
            format!("{param} must be an RFC 3339 time such as 2030-01-31T12:00:00Z."),
        )
    };
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| bad())?;
    let millis = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_millis();
    i64::try_from(millis).map_err(|_| bad())
}
