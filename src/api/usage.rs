//! `GET /api/v1/usage`: each key's money moved on a UTC day through payment intents and
//! refunds, beside its daily limits (the guardrails' totals), for operators.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::extract::{invalid, store_failed, ApiError, ApiQuery};
use super::{ApiState, List};
use crate::error::ErrorBody;
use crate::policy::guardrails::{daily_usage, parse_day, utc_day};

/// Which day to show.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// The UTC day, `YYYY-MM-DD` (default: today).
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    day: Option<String>,
}

/// One key's total in one currency on the day.
#[derive(Serialize, ToSchema)]
pub struct UsageOut {
    /// Always `guardrail_usage`.
    #[schema(example = "guardrail_usage")]
    object: &'static str,
    /// The key (`key_...`).
    key_id: String,
    /// The key's name.
    key_name: String,
    /// The UTC day.
    day: String,
    /// Lower-case currency code.
    currency: String,
    /// Minor units counted on the day.
    total: i64,
    /// The key's daily limit in the currency, if it has one.
    limit: Option<i64>,
}

/// The day's guardrail totals of the workspace's keys.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    operation_id = "api.usage.list",
    tag = "usage",
    params(UsageParams),
    responses(
        (status = 200, description = "Each key's totals on the day", body = List<UsageOut>),
        (status = 400, description = "Bad day", body = ErrorBody),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<List<UsageOut>>, ApiError> {
    let day = match params.day {
        Some(day) => parse_day(&day).map_err(|message| invalid("day", message))?,
        None => utc_day(crate::time::now_millis()),
    };
    let usage = daily_usage(state.store.as_ref(), &key.workspace_id, &day)
        .await
        .map_err(store_failed)?;
    let data = usage
        .into_iter()
        .map(|u| UsageOut {
            object: "guardrail_usage",
            key_id: u.key_id.to_string(),
            key_name: u.name,
            day: u.day,
            currency: u.currency,
            total: u.total,
            limit: u.limit,
        })
        .collect();
    Ok(Json(List::new(data, false)))
}
