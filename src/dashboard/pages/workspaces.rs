//! `/workspaces`: every workspace (each with its own connections, keys, webhooks and logs)
//! and a form to create one, with the same checks as `agentgate workspaces create`
//! ([`create_workspace`]). The switch in the top bar picks the one the pages show.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::super::layout::{self, csrf_field, time, Message, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::store::{create_workspace, NewWorkspaceError};

/// The create form.
#[derive(Deserialize)]
pub struct WorkspaceIn {
    name: String,
}

/// `GET /workspaces`
pub async fn list(operator: Operator) -> Response {
    render(&operator, None)
}

fn render(operator: &Operator, message: Option<Message>) -> Response {
    let body = html! {
        table {
            thead { tr { th { "Name" } th { "Created" } th {} } }
            tbody {
                @for w in &operator.workspaces {
                    tr {
                        td { (w.name) }
                        td { (time(w.created_at)) }
                        td {
                            @if w.id == operator.workspace.id {
                                span.badge { "current" }
                            } @else {
                                form.inline method="post" action="/workspace" {
                                    (csrf_field(&operator.csrf))
                                    input type="hidden" name="workspace" value=(w.name);
                                    button.small type="submit" { "Switch" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create a workspace" }
        form.card method="post" action="/workspaces" {
            (csrf_field(&operator.csrf))
            label for="workspace-name" { "Name (letters, digits, - or _)" }
            input #workspace-name name="name" required pattern="[A-Za-z0-9_\\-]{1,64}";
            button type="submit" { "Create workspace" }
        }
    };
    layout::page(operator, Nav::Workspaces, "Workspaces", message, body)
}

/// `POST /workspaces`: creates a workspace; it then appears in the switch.
pub async fn create(
    State(state): State<Arc<DashState>>,
    mut operator: Operator,
    Form(form): Form<WorkspaceIn>,
) -> Response {
    let name = form.name.trim();
    let origin = operator.installation_origin();
    match create_workspace(state.settings.store.as_ref(), name, &origin).await {
        Ok(workspace) => {
            let message = format!(
                "Created workspace '{}'. Switch to it to add connections and keys.",
                workspace.name
            );
            operator.workspaces.push(workspace);
            render(&operator, Some(Message::Notice(message)))
        }
        Err(NewWorkspaceError::Store(error)) => super::failed(&error),
        Err(refused) => render(&operator, Some(Message::Error(format!("{refused}.")))),
    }
}
