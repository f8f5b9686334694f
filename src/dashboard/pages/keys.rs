//! `/keys`: the workspace's agentgate keys: create (with the catalog's operations to allow,
//! read-only and test-only), shown once with a copy button; list with last use; revoke.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use maud::{html, Markup};

use super::super::layout::{self, csrf_field, empty, time, Message, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::ids::KeyId;
use crate::keys::{create_key, list_keys, revoke_key, KeySpec};
use crate::policy::Scopes;
use crate::store::StoreError;

/// `GET /keys`
pub async fn list(State(state): State<Arc<DashState>>, operator: Operator) -> Response {
    render(&state, &operator, None, None).await
}

async fn render(
    state: &DashState,
    operator: &Operator,
    message: Option<Message>,
    created: Option<&str>,
) -> Response {
    let records = match list_keys(state.settings.store.as_ref(), &operator.workspace.id).await {
        Ok(records) => records,
        Err(error) => return super::failed(&error),
    };
    let now = crate::time::now_millis();
    let body = html! {
        @if let Some(key) = created {
            div.created {
                p { strong { "The new key, shown this once:" } }
                p.secret-line {
                    code #new-key data-new-key { (key) }
                    button.small type="button" data-copy="new-key" { "Copy" }
                }
                p.hint { "Give it to the agent now; agentgate keeps only its hash." }
            }
        }
        @if records.is_empty() {
            (empty("No agent keys yet.", "Create one below and give it to an agent instead of your Stripe key."))
        } @else {
            table {
                thead { tr { th { "Name" } th { "Prefix" } th { "Role" } th { "Scopes" } th { "Last used" } th { "Status" } th {} } }
                tbody {
                    @for k in &records {
                        @let status = match (k.revoked_at, k.expires_at) {
                            (Some(_), _) => "revoked",
                            (None, Some(at)) if at <= now => "expired",
                            _ => "active",
                        };
                        tr {
                            td { (k.name) }
                            td { code { (k.prefix) "…" } }
                            td { (k.role.as_str()) }
                            td { (k.scopes.summary()) }
                            td { (k.last_used_at.map_or_else(|| "never".to_owned(), time)) }
                            td { span.badge.(status) { (status) } }
                            td {
                                @if status == "active" {
                                    form.inline method="post" action={ "/keys/" (k.id) "/revoke" } {
                                        (csrf_field(&operator.csrf))
                                        button.small.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create an agent key" }
        (create_form(state, operator))
    };
    layout::page(operator, Nav::Keys, "Agent keys", message, body)
}

fn create_form(state: &DashState, operator: &Operator) -> Markup {
    let catalog = state.settings.shared.catalog.catalog().clone();
    html! {
        form.card method="post" action="/keys" {
            (csrf_field(&operator.csrf))
            label for="key-name" { "Name (who holds it)" }
            input #key-name name="name" required maxlength="200";
            fieldset {
                legend { "Operations it may call (none ticked: every operation)" }
                div.checks {
                    @for op in &catalog.operations {
                        label.check { input type="checkbox" name="allow" value=(op.id); " " code { (op.id) } }
                    }
                }
            }
            label.check { input type="checkbox" name="read_only" value="1"; " Read-only (GET requests only)" }
            label.check { input type="checkbox" name="test_only" value="1"; " Test mode only (sk_test_/rk_test_ connections)" }
            button type="submit" { "Create key" }
        }
    }
}

/// `POST /keys`: creates the key and shows it once. The form is read by hand because
/// `allow` repeats (one value per ticked operation).
pub async fn create(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    body: Bytes,
) -> Response {
    let mut name = String::new();
    let mut scopes = Scopes::default();
    for (field, value) in form_urlencoded::parse(&body) {
        match field.as_ref() {
            "name" => name = value.trim().to_owned(),
            "allow" => scopes.allow.push(value.into_owned()),
            "read_only" => scopes.read_only = true,
            "test_only" => scopes.test_only = true,
            _ => {}
        }
    }
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        let message = Message::Error("A key name is 1 to 200 printable characters.".into());
        return render(&state, &operator, Some(message), None).await;
    }
    if scopes
        .check_patterns(state.settings.shared.catalog.catalog())
        .is_err()
    {
        let message = Message::Error("Tick only operations from the list.".into());
        return render(&state, &operator, Some(message), None).await;
    }
    let spec = KeySpec {
        name,
        scopes,
        ..KeySpec::default()
    };
    match create_key(state.settings.store.as_ref(), &operator.workspace.id, spec).await {
        Ok(created) => {
            let notice = Message::Notice("Key created.".into());
            render(&state, &operator, Some(notice), Some(&created.key)).await
        }
        Err(error) => super::failed(&error),
    }
}

/// `POST /keys/{id}/revoke`
pub async fn revoke(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let id = KeyId::from_stored(id);
    match revoke_key(state.settings.store.as_ref(), &operator.workspace.id, &id).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    }
    state.settings.shared.keys.clear();
    Redirect::to("/keys").into_response()
}
