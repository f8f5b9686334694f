//! `GET /api/v1/workspace`: the admin key's own workspace. Creating and listing workspaces
//! stays an operator action on the CLI (`agentgate workspaces create|list`): an admin key
//! manages one tenant and never sees the others.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Admin;
use super::extract::{store_failed, ApiError};
use super::ApiState;
use crate::error::ErrorBody;
use crate::error::GatewayError;

/// A workspace as the management API shows it.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceOut {
    /// Always `workspace`.
    #[schema(example = "workspace")]
    object: &'static str,
    /// `ws_...`
    id: String,
    /// The name the CLI's `--workspace` takes.
    name: String,
    /// When it was created (RFC 3339).
    created_at: String,
}

/// The workspace of the key making the request.
#[utoipa::path(
    get,
    path = "/api/v1/workspace",
    operation_id = "api.workspace.retrieve",
    tag = "workspace",
    responses(
        (status = 200, description = "The key's workspace", body = WorkspaceOut),
        (status = 401, description = "No valid agentgate key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<Arc<ApiState>>,
    Admin(key): Admin,
) -> Result<Json<WorkspaceOut>, ApiError> {
    let workspaces = state.store.list_workspaces().await.map_err(store_failed)?;
    let workspace = workspaces
        .into_iter()
        .find(|w| w.id == key.workspace_id)
        .ok_or_else(|| {
            tracing::error!(workspace = %key.workspace_id, "an admitted key's workspace is gone");
            ApiError(GatewayError::Internal)
        })?;
    Ok(Json(WorkspaceOut {
        object: "workspace",
        id: workspace.id.to_string(),
        name: workspace.name,
        created_at: crate::time::rfc3339(workspace.created_at),
    }))
}
