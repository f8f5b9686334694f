//! The dashboard's pages, one file each; every handler takes the signed-in [`Operator`] and
//! works in the operator's current workspace only.

mod audit;
mod catalog;
mod connections;
mod keys;
mod logs;
mod operators;
mod overview;
mod webhooks;
mod workspaces;

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
        .route(
            "/connections/{name}/validation",
            post(connections::set_validation),
        )
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/keys/{id}/rotate", post(keys::rotate))
        .route("/logs", get(logs::list))
        .route("/logs/{id}", get(logs::show))
        .route(
            "/webhook-endpoints",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/webhook-endpoints/{id}", get(webhooks::show))
        .route("/webhook-endpoints/{id}/live", get(webhooks::live))
        .route("/webhook-endpoints/{id}/secret", post(webhooks::set_secret))
        .route(
            "/webhook-endpoints/{id}/register",
            post(webhooks::register_in_stripe),
        )
        .route(
            "/webhook-endpoints/{id}/destinations",
            post(webhooks::add_destination),
        )
        .route(
            "/webhook-endpoints/{id}/destinations/{destination}/remove",
            post(webhooks::remove_destination),
        )
        .route(
            "/webhook-endpoints/{id}/destinations/{destination}/state",
            post(webhooks::set_destination_state),
        )
        .route("/webhook-endpoints/{id}/replay", post(webhooks::replay))
        .route(
            "/webhook-endpoints/{id}/events/{event_id}",
            get(webhooks::show_event),
        )
        .route(
            "/webhook-endpoints/{id}/remove",
            post(webhooks::remove_endpoint),
        )
        .route(
            "/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route("/catalog", get(catalog::list))
        .route("/operators", get(operators::list).post(operators::create))
        .route("/operators/password", post(operators::change_password))
        .route("/audit", get(audit::list))
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
