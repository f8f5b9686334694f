//! `/api/v1/webhooks/{id}/destinations` and `/api/v1/destinations/{id}`:
//! push destinations as the CLI's `destinations` commands manage them (`docs/push.md`).
//! The signing secret is in the creation answer only.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Origin};
use super::extract::{invalid, store_failed, ApiError, ApiJson, ApiPath};
use super::{ApiState, List};
use crate::error::{ErrorBody, GatewayError};
use crate::ids::{DestinationId, EndpointId};
use crate::store::push::{AttemptRecord, DestinationRecord};
use crate::webhooks::push::{self, DestinationSpec, PushError};

/// A push destination (never its secret, except `secret` in the creation answer).
#[derive(Serialize, ToSchema)]
pub struct DestinationOut {
    /// Always `push_destination`.
    #[schema(example = "push_destination")]
    object: &'static str,
    /// `dst_...`
    id: String,
    /// The webhook endpoint whose events it receives (`whe_...`).
    endpoint: String,
    /// Where events are POSTed.
    url: String,
    /// Event types pushed; empty for all.
    events: Vec<String>,
    /// Whether loopback and private addresses are allowed.
    allow_private: bool,
    /// `enabled` or `disabled`.
    state: &'static str,
    /// When attempts started failing without a success since (RFC 3339).
    failing_since: Option<String>,
    /// When it was created (RFC 3339).
    created_at: String,
    /// The Standard Webhooks signing secret (`whsec_...`), in the creation answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<DestinationRecord> for DestinationOut {
    fn from(record: DestinationRecord) -> Self {
        Self {
            object: "push_destination",
            id: record.id.to_string(),
            endpoint: record.endpoint_id.to_string(),
            url: record.url,
            events: record.event_types,
            allow_private: record.allow_private,
            state: record.state.as_str(),
            failing_since: record.failing_since.map(crate::time::rfc3339),
            created_at: crate::time::rfc3339(record.created_at),
            secret: None,
        }
    }
}

/// The body of a destination's creation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationIn {
    /// Where to POST events (`http` or `https`).
    url: String,
    /// Event types to push (default: all).
    #[serde(default)]
    events: Vec<String>,
    /// Allow loopback, private and link-local addresses (cloud metadata stays refused).
    /// Refused unless the server runs with `--api-allow-private-destinations`.
    #[serde(default)]
    allow_private: bool,
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
pub struct AttemptOut {
    /// Always `push_attempt`.
    #[schema(example = "push_attempt")]
    object: &'static str,
    /// The delivery (`dlv_...`); its attempts share it.
    delivery: String,
    /// Stripe's event id, also the `webhook-id` sent.
    event: String,
    /// When the attempt started (RFC 3339).
    attempted_at: String,
    /// The HTTP status answered, if any.
    status: Option<u16>,
    /// Time to the answer or the failure.
    latency_ms: i64,
    /// Why it failed, if it did.
    error: Option<String>,
    /// The delivery's state now: `pending`, `succeeded` or `failed`.
    delivery_state: &'static str,
}

impl From<AttemptRecord> for AttemptOut {
    fn from(record: AttemptRecord) -> Self {
        Self {
            object: "push_attempt",
            delivery: record.delivery_id.to_string(),
            event: record.event_id,
            attempted_at: crate::time::rfc3339(record.attempted_at),
            status: record.status,
            latency_ms: record.latency_ms,
            error: record.error,
            delivery_state: record.delivery_state.as_str(),
        }
    }
}

/// What a deletion answers, in Stripe's manner.
#[derive(Serialize, ToSchema)]
pub struct DestinationDeletedOut {
    /// Always `push_destination`.
    #[schema(example = "push_destination")]
    object: &'static str,
    /// The removed destination's id.
    id: String,
    /// Always `true`.
    deleted: bool,
}

/// Maps a push failure to its answer; store failures are logged once, in `store_failed`.
fn push_failed(error: PushError, id: &str) -> ApiError {
    let missing = |kind| {
        ApiError(GatewayError::ResourceMissing {
            kind,
            id: crate::proxy::target::loggable_raw_path(id),
        })
    };
    match error {
        PushError::Url(refused) => invalid("url", format!("Refused URL: {refused}.")),
        PushError::InvalidEventType(t) => invalid("events", format!("Invalid event type {t:?}.")),
        PushError::EndpointNotFound => missing("webhook endpoint"),
        PushError::DestinationNotFound => missing("push destination"),
        error @ (PushError::DestinationDisabled
        | PushError::NoEvents
        | PushError::TooManyEvents) => invalid("destination", error.to_string()),
        PushError::SecretUnreadable => {
            tracing::error!("a push destination secret does not open with this master key");
            ApiError(GatewayError::Internal)
        }
        PushError::Store(error) => store_failed(error),
    }
}

/// The endpoint's push destinations, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/destinations",
    operation_id = "api.push_destinations.list",
    tag = "push",
    params(("id" = String, Path, description = "Webhook endpoint id (whe_...)")),
    responses(
        (status = 200, description = "The endpoint's destinations", body = List<DestinationOut>),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such webhook endpoint in this workspace", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    ApiPath(endpoint): ApiPath<String>,
) -> Result<Json<List<DestinationOut>>, ApiError> {
    let endpoint = EndpointId::from_stored(endpoint);
    let records = push::list_destinations(state.store.as_ref(), &key.workspace_id, Some(&endpoint))
        .await
        .map_err(|e| push_failed(e, endpoint.as_str()))?;
    let data = records.into_iter().map(DestinationOut::from).collect();
    Ok(Json(List::new(data, false)))
}

/// Adds a destination; the answer holds its signing secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/destinations",
    operation_id = "api.push_destinations.create",
    tag = "push",
    params(("id" = String, Path, description = "Webhook endpoint id (whe_...)")),
    request_body = DestinationIn,
    responses(
        (status = 200, description = "The destination, with its secret", body = DestinationOut),
        (status = 400, description = "Bad body, event type, or a refused URL", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such webhook endpoint in this workspace", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(endpoint): ApiPath<String>,
    ApiJson(body): ApiJson<DestinationIn>,
) -> Result<Json<DestinationOut>, ApiError> {
    if body.allow_private && !state.webhooks.allow_private_destinations {
        return Err(invalid(
            "allow_private",
            "Private push destinations are the operator's to allow: use `agentgate destinations add --allow-private` or the dashboard, or start the server with --api-allow-private-destinations.".to_owned(),
        ));
    }
    let spec = DestinationSpec {
        endpoint: EndpointId::from_stored(endpoint.clone()),
        url: body.url,
        event_types: body.events,
        allow_private: body.allow_private,
    };
    let created = push::create_destination(
        state.store.as_ref(),
        &state.sealer,
        &key.workspace_id,
        spec,
        crate::time::now_millis(),
        &origin,
    )
    .await
    .map_err(|e| push_failed(e, &endpoint))?;
    let mut out = DestinationOut::from(created.record);
    out.secret = Some(created.secret.to_string());
    Ok(Json(out))
}

/// Removes a destination with its deliveries and attempt log.
#[utoipa::path(
    delete,
    path = "/api/v1/destinations/{id}",
    operation_id = "api.push_destinations.delete",
    tag = "push",
    params(("id" = String, Path, description = "Destination id (dst_...)")),
    responses(
        (status = 200, description = "Removed", body = DestinationDeletedOut),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such destination in this workspace", body = ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    Origin(origin): Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DestinationDeletedOut>, ApiError> {
    let destination = DestinationId::from_stored(id.clone());
    push::remove_destination(
        state.store.as_ref(),
        &key.workspace_id,
        &destination,
        &origin,
    )
    .await
    .map_err(|e| push_failed(e, &id))?;
    Ok(Json(DestinationDeletedOut {
        object: "push_destination",
        id,
        deleted: true,
    }))
}

/// The newest 100 delivery attempts to a destination, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/destinations/{id}/attempts",
    operation_id = "api.push_destinations.attempts",
    tag = "push",
    params(("id" = String, Path, description = "Destination id (dst_...)")),
    responses(
        (status = 200, description = "The attempt log", body = List<AttemptOut>),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such destination in this workspace", body = ErrorBody),
    )
)]
pub async fn attempts(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<List<AttemptOut>>, ApiError> {
    let destination = DestinationId::from_stored(id.clone());
    let records = push::list_attempts(state.store.as_ref(), &key.workspace_id, &destination, 100)
        .await
        .map_err(|e| push_failed(e, &id))?;
    let data = records.into_iter().map(AttemptOut::from).collect();
    Ok(Json(List::new(data, false)))
}
