//! `/api/v1/webhooks`: the workspace's webhook endpoints as `agentgate webhooks` manages
//! them (`docs/webhooks.md`): list, create, show, delete, add a signing secret, register in
//! Stripe. Signing secrets go in, never out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Origin};
use super::extract::{invalid, store_failed, ApiError, ApiJson, ApiPath};
use super::{ApiState, List};
use crate::audit::Change;
use crate::error::{ErrorBody, GatewayError};
use crate::proxy::client::Upstream;
use crate::store::{StoreError, WebhookEndpointRecord};
use crate::webhooks::endpoints::{self, SigningSecret, WebhookError};

/// A webhook endpoint (never its secrets).
#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    /// Always `webhook_endpoint`.
    #[schema(example = "webhook_endpoint")]
    object: &'static str,
    /// `whe_...`, unguessable: part of the ingest URL.
    id: String,
    /// The URL to register in Stripe.
    url: String,
    /// The connection whose Stripe account sends the events.
    connection: String,
    /// Event types kept; empty for all (others are acknowledged and dropped).
    events: Vec<String>,
    /// Stripe's id of the endpoint (`we_...`) once registered through agentgate.
    stripe_endpoint_id: Option<String>,
    /// When it was created (RFC 3339).
    created_at: String,
}

impl EndpointOut {
    fn new(record: &WebhookEndpointRecord, public_url: &str) -> Self {
        Self {
            object: "webhook_endpoint",
            id: record.id.to_string(),
            url: endpoints::ingest_url(public_url, &record.id),
            connection: record.connection.clone(),
            events: record.event_types.clone(),
            stripe_endpoint_id: record.stripe_endpoint_id.clone(),
            created_at: crate::time::rfc3339(record.created_at),
        }
    }
}

/// The body of `POST /api/v1/webhooks`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// The connection whose Stripe account sends the events (default `stripe`).
    #[serde(default = "default_connection")]
    connection: String,
    /// Event types to keep (default: all).
    #[serde(default)]
    events: Vec<String>,
}

fn default_connection() -> String {
    "stripe".to_owned()
}

/// The body of `POST /api/v1/webhooks/{id}/secrets`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretIn {
    /// The endpoint's Stripe signing secret (`whsec_...`).
    secret: String,
    /// Seconds after which the endpoint's other secrets stop verifying (a roll); left out,
    /// they stay active.
    expire_others_in_seconds: Option<u64>,
}

/// What adding a secret answers (never the secret).
#[derive(Serialize, ToSchema)]
pub struct SecretAddedOut {
    /// Always `webhook_secret`.
    #[schema(example = "webhook_secret")]
    object: &'static str,
    /// The secret's row id.
    id: String,
    /// The endpoint it verifies for.
    endpoint: String,
}

/// What a registration answers.
#[derive(Serialize, ToSchema)]
pub struct RegisteredOut {
    /// The endpoint, now with Stripe's id.
    #[serde(flatten)]
    endpoint: EndpointOut,
}

/// What a deletion answers.
#[derive(Serialize, ToSchema)]
pub struct EndpointDeletedOut {
    /// Always `webhook_endpoint`.
    object: &'static str,
    /// The removed endpoint.
    id: String,
    /// Always true.
    deleted: bool,
}

fn missing(id: &str) -> ApiError {
    ApiError(GatewayError::ResourceMissing {
        kind: "webhook endpoint",
        id: id
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(80)
            .collect(),
    })
}

fn refused(error: WebhookError, id: &str) -> ApiError {
    match error {
        WebhookError::NotFound => missing(id),
        WebhookError::UnknownConnection(name) => ApiError(GatewayError::UnknownConnection(name)),
        WebhookError::InvalidSecret => invalid("secret", WebhookError::InvalidSecret.to_string()),
        WebhookError::InvalidEventType(t) => {
            invalid("events", format!("Invalid event type {t:?}."))
        }
        WebhookError::Stripe(message) => {
            tracing::warn!(%message, "webhook endpoint registration in Stripe failed");
            ApiError(GatewayError::UpstreamUnreachable)
        }
        WebhookError::Undecryptable => {
            tracing::error!("a connection's Stripe key could not be decrypted");
            ApiError(GatewayError::Internal)
        }
        WebhookError::Store(error) => store_failed(error),
    }
}

/// The workspace's webhook endpoints, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "api.webhooks.list",
    tag = "webhooks",
    responses(
        (status = 200, description = "Every endpoint of the workspace", body = List<EndpointOut>),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
) -> Result<Json<List<EndpointOut>>, ApiError> {
    let records = state
        .store
        .list_webhook_endpoints(&key.workspace_id)
        .await
        .map_err(store_failed)?;
    let data = records
        .iter()
        .map(|r| EndpointOut::new(r, &state.webhooks.public_url))
        .collect();
    Ok(Json(List::new(data, false)))
}

/// Mints an endpoint with an unguessable id; its `url` is what to register in Stripe.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "api.webhooks.create",
    tag = "webhooks",
    request_body = EndpointIn,
    responses(
        (status = 200, description = "The new endpoint", body = EndpointOut),
        (status = 400, description = "Bad body or event type", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiJson(body): ApiJson<EndpointIn>,
) -> Result<Json<EndpointOut>, ApiError> {
    let record = endpoints::create_endpoint(
        state.store.as_ref(),
        &key.workspace_id,
        &body.connection,
        &body.events,
        &origin,
    )
    .await
    .map_err(|e| refused(e, ""))?;
    Ok(Json(EndpointOut::new(&record, &state.webhooks.public_url)))
}

/// One endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}",
    operation_id = "api.webhooks.show",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (whe_...)")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointOut),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointOut>, ApiError> {
    let record = endpoints::find_endpoint(state.store.as_ref(), &key.workspace_id, &id)
        .await
        .map_err(|e| refused(e, &id))?;
    Ok(Json(EndpointOut::new(&record, &state.webhooks.public_url)))
}

/// Removes the endpoint and its secrets; its ingest URL answers 404 from now on.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    operation_id = "api.webhooks.delete",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (whe_...)")),
    responses(
        (status = 200, description = "Removed", body = EndpointDeletedOut),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointDeletedOut>, ApiError> {
    let record = endpoints::find_endpoint(state.store.as_ref(), &key.workspace_id, &id)
        .await
        .map_err(|e| refused(e, &id))?;
    match state
        .store
        .delete_webhook_endpoint(
            &key.workspace_id,
            &record.id,
            &origin.record(
                &key.workspace_id,
                Change::EndpointDeleted,
                &record.connection,
            ),
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(missing(&id)),
        Err(error) => return Err(store_failed(error)),
    }
    Ok(Json(EndpointDeletedOut {
        object: "webhook_endpoint",
        id,
        deleted: true,
    }))
}

/// Adds a Stripe signing secret; the endpoint's other secrets stay active (a roll) unless
/// `expire_others_in_seconds` ends them.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/secrets",
    operation_id = "api.webhooks.add_secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (whe_...)")),
    request_body = SecretIn,
    responses(
        (status = 200, description = "Added (the secret is never shown)", body = SecretAddedOut),
        (status = 400, description = "Not a whsec_ secret", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorBody),
    )
)]
pub async fn add_secret(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SecretIn>,
) -> Result<Json<SecretAddedOut>, ApiError> {
    let record = endpoints::find_endpoint(state.store.as_ref(), &key.workspace_id, &id)
        .await
        .map_err(|e| refused(e, &id))?;
    let secret =
        SigningSecret::parse(&zeroize::Zeroizing::new(body.secret)).map_err(|e| refused(e, &id))?;
    let expire = body.expire_others_in_seconds.map(Duration::from_secs);
    let secret_id = endpoints::add_secret(
        state.store.as_ref(),
        &state.sealer,
        &record,
        &secret,
        expire,
        &origin,
    )
    .await
    .map_err(|e| refused(e, &id))?;
    Ok(Json(SecretAddedOut {
        object: "webhook_secret",
        id: secret_id,
        endpoint: id,
    }))
}

/// Creates the endpoint in Stripe through its connection and stores the signing secret
/// Stripe returns.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/register",
    operation_id = "api.webhooks.register",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (whe_...)")),
    responses(
        (status = 200, description = "Registered; Stripe's id recorded", body = RegisteredOut),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorBody),
        (status = 502, description = "Stripe refused or could not be reached", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RegisteredOut>, ApiError> {
    let record = endpoints::find_endpoint(state.store.as_ref(), &key.workspace_id, &id)
        .await
        .map_err(|e| refused(e, &id))?;
    let upstream = Upstream::new(state.webhooks.upstream.clone());
    let stripe_id = endpoints::register(
        state.store.clone(),
        state.sealer.clone(),
        &upstream,
        &record,
        &state.webhooks.public_url,
        &origin,
    )
    .await
    .map_err(|e| refused(e, &id))?;
    let mut endpoint = EndpointOut::new(&record, &state.webhooks.public_url);
    endpoint.stripe_endpoint_id = Some(stripe_id);
    Ok(Json(RegisteredOut { endpoint }))
}
