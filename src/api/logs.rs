//! `GET /api/v1/logs`: the workspace's request log (data plane and management actions,
//! refusals with their reason), newest first, filtered and paged by cursor as Stripe lists
//! are.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::extract::{invalid, store_failed, ApiError, ApiQuery};
use super::keys::parse_time;
use super::{ApiState, List};
use crate::error::ErrorBody;
use crate::ids::KeyId;
use crate::store::{LogQuery, RequestLogRecord};

/// Page size when `limit` is not given, as in Stripe's lists.
const DEFAULT_LIMIT: i64 = 10;
/// Largest page.
const MAX_LIMIT: i64 = 100;

/// Which entries to list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only entries made with this key (`key_...`).
    key: Option<String>,
    /// Only entries answered with this HTTP status.
    #[param(minimum = 100, maximum = 599)]
    status: Option<u16>,
    /// Only entries of this operation (`customers.create`, `api.keys.create`).
    operation: Option<String>,
    /// Only entries with this Stripe request id (`req_...`): a forwarded call's, and the
    /// webhook deliveries of the events it caused.
    stripe_request_id: Option<String>,
    /// Only entries written by this instance (its `--instance` name).
    instance: Option<String>,
    /// Only entries at or after this time: RFC 3339, or Unix milliseconds.
    since: Option<String>,
    /// Only entries before this time: RFC 3339, or Unix milliseconds.
    until: Option<String>,
    /// A cursor: the `id` of the last entry of the previous page.
    starting_after: Option<i64>,
    /// Entries per page, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// One request log entry. Never a secret, a body, or a query string's values.
#[derive(Serialize, ToSchema)]
pub struct LogEntryOut {
    /// Position in the log; pass it as `starting_after` to read on.
    id: i64,
    /// Always `request_log_entry`.
    #[schema(example = "request_log_entry")]
    object: &'static str,
    /// When the request arrived (RFC 3339).
    created_at: String,
    /// agentgate's request id (`Agentgate-Request-Id`).
    request_id: String,
    /// The key that made the request; for a management change, who made it: an admin
    /// key's id, `cli`, or `operator:NAME`; for a webhook delivery, the endpoint's id.
    key_id: String,
    /// The connection named, or empty.
    connection: String,
    /// HTTP method.
    method: String,
    /// Path, with the query's parameter names but none of its values.
    path: String,
    /// Status sent to the caller.
    status: u16,
    /// Time to the response headers, in microseconds.
    latency_us: i64,
    /// Stripe's `Request-Id`, when Stripe answered.
    stripe_request_id: Option<String>,
    /// The caller's `Idempotency-Key`, when sent.
    idempotency_key: Option<String>,
    /// `forwarded`, `applied` (a management change), `dry_run`, or who was at fault.
    outcome: String,
    /// The catalog or management operation, when known.
    operation: Option<String>,
    /// Why agentgate refused (`agentgate_scope_denied operation`), when it did.
    reason: Option<String>,
    /// How the request arrived: `http`, or `mcp` for a tool call over MCP; `api`, `cli` or
    /// `dashboard` for a management change or refusal; `webhook` for Stripe's delivery of
    /// an event.
    via: String,
    /// The address the request came from, as agentgate's listener saw it (behind a reverse
    /// proxy, the proxy's); absent for the CLI's changes.
    #[schema(example = "127.0.0.1")]
    client: Option<String>,
    /// The instance that served the request or made the change (its `--instance` name);
    /// absent for the CLI's changes.
    #[schema(example = "gw-1")]
    instance: Option<String>,
}

impl From<RequestLogRecord> for LogEntryOut {
    fn from(record: RequestLogRecord) -> Self {
        let entry = record.entry;
        Self {
            id: record.id,
            object: "request_log_entry",
            created_at: crate::time::rfc3339(entry.created_at),
            request_id: entry.request_id,
            key_id: entry.key_id.to_string(),
            connection: entry.connection,
            method: entry.method.into_owned(),
            path: entry.path,
            status: entry.status,
            latency_us: entry.latency_us,
            stripe_request_id: entry.stripe_request_id,
            idempotency_key: entry.idempotency_key,
            outcome: entry.outcome.into_owned(),
            operation: entry.operation,
            reason: entry.reason,
            via: entry.via.into_owned(),
            client: entry.client.map(|ip| ip.to_string()),
            instance: record.instance,
        }
    }
}

/// The workspace's request log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/logs",
    operation_id = "api.logs.list",
    tag = "logs",
    params(LogParams),
    responses(
        (status = 200, description = "One page of entries, newest first", body = List<LogEntryOut>),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<Json<List<LogEntryOut>>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}."),
        ));
    }
    let query = LogQuery {
        limit: limit + 1,
        before_id: params.starting_after,
        key_id: params.key.map(KeyId::from_stored),
        status: params.status,
        operation: params.operation,
        stripe_request_id: params.stripe_request_id,
        instance: params.instance,
        since: params
            .since
            .as_deref()
            .map(|t| time_param("since", t))
            .transpose()?,
        until: params
            .until
            .as_deref()
            .map(|t| time_param("until", t))
            .transpose()?,
        ..LogQuery::default()
    };
    let mut records = state
        .store
        .list_request_logs(&key.workspace_id, query)
        .await
        .map_err(store_failed)?;
    records.reverse();
    let has_more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let data = records.into_iter().map(LogEntryOut::from).collect();
    Ok(Json(List::new(data, has_more)))
}

/// A time filter: Unix milliseconds, or RFC 3339.
fn time_param(param: &str, text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(millis) => Ok(millis),
        Err(_) => parse_time(param, text),
    }
}
