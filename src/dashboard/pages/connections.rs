//! `/connections`: the workspace's Stripe keys: list (masked), add or replace by pasting a
//! key, remove. A pasted key is first checked against Stripe (`GET /v1/account`, see
//! [`check_account`]); a key Stripe refuses is not stored. A good key is sealed by
//! [`set_stripe_connection`] and never shown again; the account's name and id are shown
//! once, right after saving (they are not stored).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use zeroize::Zeroize;

use super::super::layout::{self, csrf_field, empty, time, Message, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::connections::stripe::{check_account, AccountCheck, StripeSecret};
use crate::connections::{
    list_connections, remove_connection, set_connection_validation, set_stripe_connection,
};
use crate::proxy::client::Upstream;
use crate::proxy::is_connection_name;
use crate::store::StoreError;

/// The add/replace form; the key is wiped from memory when the form is dropped.
#[derive(Deserialize)]
pub struct ConnectionIn {
    name: String,
    secret_key: String,
}

impl Drop for ConnectionIn {
    fn drop(&mut self) {
        self.secret_key.zeroize();
    }
}

/// What the page says after a change.
#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /connections`
pub async fn list(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Query(done): Query<Done>,
) -> Response {
    let message = match done.done.as_deref() {
        Some("saved") => Some(Message::Notice(
            "Saved. Agents use the new key from their next request.".into(),
        )),
        Some("removed") => Some(Message::Notice(
            "Removed. Agents get 404 for it now.".into(),
        )),
        Some("validation-on") => Some(Message::Notice(
            "Validation on: listed operations are checked against the catalog.".into(),
        )),
        Some("validation-off") => Some(Message::Notice(
            "Validation off: requests are forwarded without the catalog's checks.".into(),
        )),
        _ => None,
    };
    render(&state, &operator, message).await
}

async fn render(state: &DashState, operator: &Operator, message: Option<Message>) -> Response {
    let records =
        match list_connections(state.settings.store.as_ref(), &operator.workspace.id).await {
            Ok(records) => records,
            Err(error) => return super::failed(&error),
        };
    let body = html! {
        @if records.is_empty() {
            (empty("No connections yet.", "Paste a Stripe secret or restricted key below; agents then call /v1/connections/stripe/..."))
        } @else {
            table {
                thead { tr { th { "Name" } th { "Mode" } th { "Key type" } th { "Key" } th { "Validation" } th { "Updated" } th {} } }
                tbody {
                    @for c in &records {
                        tr {
                            td { (c.name) }
                            td { span.badge.(c.mode) { (c.mode) } }
                            td { (c.key_kind) }
                            td { code { (c.secret_hint) } }
                            td {
                                form.inline method="post" action={ "/connections/" (c.name) "/validation" } {
                                    (csrf_field(&operator.csrf))
                                    @if c.validation {
                                        span.badge { "on" } " "
                                        input type="hidden" name="state" value="off";
                                        button.small type="submit" title="Stop checking listed operations against the catalog" { "Turn off" }
                                    } @else {
                                        span.badge { "off" } " "
                                        input type="hidden" name="state" value="on";
                                        button.small type="submit" title="Check listed operations against the catalog" { "Turn on" }
                                    }
                                }
                            }
                            td { (time(c.updated_at)) }
                            td {
                                form.inline method="post" action={ "/connections/" (c.name) "/remove" } {
                                    (csrf_field(&operator.csrf))
                                    button.small.danger type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add or replace a connection" }
        form.card method="post" action="/connections" {
            (csrf_field(&operator.csrf))
            label for="name" { "Name" }
            input #name name="name" value="stripe" required pattern="[A-Za-z0-9_\\-]{1,64}";
            label for="secret_key" { "Stripe key (sk_test_, sk_live_, rk_test_ or rk_live_)" }
            input #secret_key name="secret_key" type="password" autocomplete="off" required;
            button type="submit" { "Save key" }
        }
    };
    layout::page(operator, Nav::Connections, "Connections", message, body)
}

/// `POST /connections`: stores or replaces the named connection's key.
pub async fn save(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Form(form): Form<ConnectionIn>,
) -> Response {
    let name = form.name.trim().to_owned();
    if !is_connection_name(&name) {
        let message = "A connection name is 1 to 64 letters, digits, '-' or '_'.";
        return render(&state, &operator, Some(Message::Error(message.into()))).await;
    }
    let secret = match StripeSecret::parse(form.secret_key.trim()) {
        Ok(secret) => secret,
        Err(error) => {
            let message = format!("That is not a Stripe key: {error}.");
            return render(&state, &operator, Some(Message::Error(message))).await;
        }
    };
    drop(form);
    let settings = &state.settings;
    let upstream = Upstream::new(settings.upstream.clone());
    let account = match check_account(&upstream, &secret).await {
        Ok(account) => account,
        Err(error) => {
            let message = format!("The key was not saved: {error}.");
            return render(&state, &operator, Some(Message::Error(message))).await;
        }
    };
    let saved = set_stripe_connection(
        settings.store.as_ref(),
        &settings.sealer,
        &operator.workspace.id,
        &name,
        &secret,
        &operator.change_origin(),
    )
    .await;
    if let Err(error) = saved {
        return super::failed(&error);
    }
    settings.shared.connections.clear();
    let whose = match account {
        AccountCheck::Account { id, name } => match name {
            Some(name) => format!("Stripe account {name} ({id})"),
            None => format!("Stripe account {id} (no name set)"),
        },
        AccountCheck::Unreadable => {
            "a Stripe account that could not be read (this restricted key may not read /v1/account)"
                .to_owned()
        }
    };
    let message = format!(
        "Saved '{name}': {whose}, {} mode, {} key {}. Agents use it from their next request.",
        secret.mode().as_str(),
        secret.kind().as_str(),
        secret.masked(),
    );
    render(&state, &operator, Some(Message::Notice(message))).await
}

/// `POST /connections/{name}/remove`
pub async fn remove(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(name): Path<String>,
) -> Response {
    let settings = &state.settings;
    let origin = operator.change_origin();
    match remove_connection(
        settings.store.as_ref(),
        &operator.workspace.id,
        &name,
        &origin,
    )
    .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    }
    settings.shared.connections.clear();
    Redirect::to("/connections?done=removed").into_response()
}

/// The validation switch's field: `on` or `off`.
#[derive(Deserialize)]
pub struct ValidationIn {
    state: String,
}

/// `POST /connections/{name}/validation`: switches catalog validation of the connection
/// on or off (as `agentgate connections validation NAME on|off`).
pub async fn set_validation(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(name): Path<String>,
    Form(form): Form<ValidationIn>,
) -> Response {
    let enabled = match form.state.as_str() {
        "on" => true,
        "off" => false,
        _ => {
            let message = Message::Error("Validation is either on or off.".into());
            return render(&state, &operator, Some(message)).await;
        }
    };
    let settings = &state.settings;
    let workspace = &operator.workspace.id;
    let origin = operator.change_origin();
    match set_connection_validation(settings.store.as_ref(), workspace, &name, enabled, &origin)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    }
    settings.shared.connections.clear();
    Redirect::to(&format!("/connections?done=validation-{}", form.state)).into_response()
}
