//! `/api/v1/connections`: the workspace's Stripe keys, set from a JSON body and sealed as
//! the CLI's `connections set` seals them, and read back as metadata only (mode, key type,
//! the masked key); the key itself is never returned.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroize;

use super::auth::{Admin, Origin};
use super::extract::{invalid, store_failed, ApiError, ApiJson, ApiPath};
use super::{ApiState, List};
use crate::connections::stripe::StripeSecret;
use crate::connections::{list_connections, remove_connection, set_stripe_connection};
use crate::error::{ErrorBody, GatewayError};
use crate::proxy::is_connection_name;
use crate::store::{ConnectionRecord, StoreError};

/// A connection's metadata; the Stripe key stays sealed in the store.
#[derive(Serialize, ToSchema)]
pub struct ConnectionOut {
    /// Always `connection`.
    #[schema(example = "connection")]
    object: &'static str,
    /// `conn_...`
    id: String,
    /// The name agents use in `/v1/connections/{name}/...`.
    name: String,
    /// The provider (`stripe`).
    provider: String,
    /// `test` or `live`.
    mode: String,
    /// `secret` (sk_) or `restricted` (rk_).
    key_type: String,
    /// The masked key (`sk_test_…4242`).
    secret_hint: String,
    /// The key's last four characters.
    last4: String,
    /// Whether listed operations are validated before they are forwarded.
    validation: bool,
    /// When the connection was created (RFC 3339).
    created_at: String,
    /// When its key was last set (RFC 3339).
    updated_at: String,
}

impl From<ConnectionRecord> for ConnectionOut {
    fn from(record: ConnectionRecord) -> Self {
        let last4 = record.secret_hint.chars().rev().take(4).collect::<Vec<_>>();
        Self {
            object: "connection",
            id: record.id.to_string(),
            name: record.name,
            provider: record.provider,
            mode: record.mode,
            key_type: record.key_kind,
            last4: last4.into_iter().rev().collect(),
            secret_hint: record.secret_hint,
            validation: record.validation,
            created_at: crate::time::rfc3339(record.created_at),
            updated_at: crate::time::rfc3339(record.updated_at),
        }
    }
}

/// The body of `PUT /api/v1/connections/{name}`; the key is wiped from memory when the
/// body is dropped.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionIn {
    /// The Stripe secret or restricted key (sk_test_, sk_live_, rk_test_, rk_live_).
    #[schema(write_only, pattern = "^[sr]k_(test|live)_[A-Za-z0-9_]{3,247}$")]
    secret_key: String,
}

impl Drop for ConnectionIn {
    fn drop(&mut self) {
        self.secret_key.zeroize();
    }
}

/// The workspace's connections, by name.
#[utoipa::path(
    get,
    path = "/api/v1/connections",
    operation_id = "api.connections.list",
    tag = "connections",
    responses(
        (status = 200, description = "Every connection of the workspace", body = List<ConnectionOut>),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
) -> Result<Json<List<ConnectionOut>>, ApiError> {
    let records = list_connections(state.store.as_ref(), &key.workspace_id)
        .await
        .map_err(store_failed)?;
    let data = records.into_iter().map(ConnectionOut::from).collect();
    Ok(Json(List::new(data, false)))
}

/// One connection's metadata.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{name}",
    operation_id = "api.connections.retrieve",
    tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    responses(
        (status = 200, description = "The connection", body = ConnectionOut),
        (status = 400, description = "Undecodable name", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such connection in this workspace", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let missing = || ApiError(GatewayError::UnknownConnection(loggable(&name)));
    if !is_connection_name(&name) {
        return Err(missing());
    }
    let record = state
        .store
        .find_connection(&key.workspace_id, &name)
        .await
        .map_err(store_failed)?
        .ok_or_else(missing)?;
    Ok(Json(record.into()))
}

/// Stores or replaces the connection's Stripe key. Nothing is sent to Stripe; agents use
/// the new key from their next request.
#[utoipa::path(
    put,
    path = "/api/v1/connections/{name}",
    operation_id = "api.connections.set",
    tag = "connections",
    params(("name" = String, Path, description = "Connection name: 1 to 64 letters, digits, '-' or '_'")),
    request_body = ConnectionIn,
    responses(
        (status = 200, description = "The connection as stored (metadata only)", body = ConnectionOut),
        (status = 400, description = "Bad name, body or key", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub async fn set(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ConnectionIn>,
) -> Result<Json<ConnectionOut>, ApiError> {
    if !is_connection_name(&name) {
        let message = "A connection name is 1 to 64 letters, digits, '-' or '_'.";
        return Err(invalid("name", message.into()));
    }
    let secret = StripeSecret::parse(&body.secret_key)
        .map_err(|error| invalid("secret_key", format!("Invalid secret_key: {error}.")))?;
    drop(body);
    let record = set_stripe_connection(
        state.store.as_ref(),
        &state.sealer,
        &key.workspace_id,
        &name,
        &secret,
        &origin,
    )
    .await
    .map_err(store_failed)?;
    state.shared.connections.clear();
    Ok(Json(record.into()))
}

/// Removes the connection; agents get 404 for it from their next request.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{name}",
    operation_id = "api.connections.delete",
    tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    responses(
        (status = 200, description = "Removed", body = DeletedOut),
        (status = 400, description = "Undecodable name", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such connection in this workspace", body = ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DeletedOut>, ApiError> {
    let missing = || ApiError(GatewayError::UnknownConnection(loggable(&name)));
    if !is_connection_name(&name) {
        return Err(missing());
    }
    match remove_connection(state.store.as_ref(), &key.workspace_id, &name, &origin).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(missing()),
        Err(error) => return Err(store_failed(error)),
    }
    state.shared.connections.clear();
    Ok(Json(DeletedOut {
        object: "connection",
        name,
        deleted: true,
    }))
}

/// What a deletion answers, in Stripe's manner.
#[derive(Serialize, ToSchema)]
pub struct DeletedOut {
    /// Always `connection`.
    #[schema(example = "connection")]
    object: &'static str,
    /// The removed connection's name.
    name: String,
    /// Always `true`.
    deleted: bool,
}

/// A caller-sent name as an error message may echo it.
fn loggable(name: &str) -> String {
    crate::proxy::target::loggable_raw_path(name)
}
