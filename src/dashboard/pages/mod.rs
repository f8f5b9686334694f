//! The dashboard's pages, one file each; every handler takes the signed-in [`Operator`] and
//! works in the operator's current workspace only.

mod connections;
mod keys;
mod logs;
mod overview;
mod webhooks;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::session::Operator;
use super::{layout, DashState};

/// Every page's routes.
pub fn router() -> Router<Arc<DashState>> {
    Router::new()
        .route("/", get(overview::show))
        .route(
            "/connections",
            get(connections::list).post(connections::save),
        )
        .route("/connections/{name}/remove", post(connections::remove))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/logs", get(logs::list))
        .route(
            "/webhook-endpoints",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/webhook-endpoints/{id}", get(webhooks::show))
}

/// The workspace switch's field.
#[derive(Deserialize)]
pub struct WorkspaceIn {
    workspace: String,
}

/// `POST /workspace`: points the session at another workspace.
pub async fn switch_workspace(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Form(form): Form<WorkspaceIn>,
) -> Response {
    let Some(target) = operator
        .workspaces
        .iter()
        .find(|w| w.name == form.workspace)
    else {
        return layout::not_found();
    };
    let store = &state.settings.store;
    if let Err(error) = store
        .set_session_workspace(&operator.session_id, &target.id)
        .await
    {
        return failed(&error);
    }
    Redirect::to("/").into_response()
}

/// Logs a failure once and answers 500.
fn failed(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "dashboard page failed");
    layout::internal_error()
}
