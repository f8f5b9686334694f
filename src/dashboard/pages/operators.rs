//! `/operators`: who can sign in to the dashboard. Adds an operator and changes the signed-in
//! operator's own password, with the checks of `agentgate operators create` and
//! `reset-password` ([`crate::operators`]). Another operator's forgotten password is reset
//! from the CLI, which needs the database, not a session.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::header;
use maud::html;
use serde::Deserialize;

use super::super::layout::{self, csrf_field, time, Message, Nav};
use super::super::session::{self, Operator};
use super::super::DashState;
use crate::operators::{self, OperatorError, SignIn, MIN_PASSWORD_LEN};

/// The add form.
#[derive(Deserialize)]
pub struct NewOperatorIn {
    name: String,
    password: String,
    confirm: String,
}

/// The change-password form.
#[derive(Deserialize)]
pub struct PasswordIn {
    current: String,
    password: String,
    confirm: String,
}

/// `GET /operators`
pub async fn list(State(state): State<Arc<DashState>>, operator: Operator) -> Response {
    render(&state, &operator, None).await
}

async fn render(state: &DashState, operator: &Operator, message: Option<Message>) -> Response {
    let operators = match state.settings.store.list_operators().await {
        Ok(operators) => operators,
        Err(error) => return super::failed(&error),
    };
    let body = html! {
        table {
            thead { tr { th { "Name" } th { "Added" } } }
            tbody {
                @for o in &operators {
                    tr {
                        td { (o.name) @if o.name == operator.name { " " span.badge { "you" } } }
                        td { (time(o.created_at)) }
                    }
                }
            }
        }
        h2 { "Add an operator" }
        form.card method="post" action="/operators" {
            (csrf_field(&operator.csrf))
            label for="operator-name" { "Name (letters, digits, '.', '@', '-' or '_')" }
            input #operator-name name="name" required maxlength="64" autocomplete="off";
            label for="operator-password" { "Password (at least " (MIN_PASSWORD_LEN) " characters)" }
            input #operator-password type="password" name="password" required minlength=(MIN_PASSWORD_LEN) autocomplete="new-password";
            label for="operator-confirm" { "The same password again" }
            input #operator-confirm type="password" name="confirm" required autocomplete="new-password";
            button type="submit" { "Add operator" }
        }
        h2 { "Change your password" }
        p.hint { "Every session of yours ends, this one included: sign in again with the new password." }
        form.card method="post" action="/operators/password" {
            (csrf_field(&operator.csrf))
            label for="current-password" { "Current password" }
            input #current-password type="password" name="current" required autocomplete="current-password";
            label for="new-password" { "New password" }
            input #new-password type="password" name="password" required minlength=(MIN_PASSWORD_LEN) autocomplete="new-password";
            label for="new-confirm" { "The same password again" }
            input #new-confirm type="password" name="confirm" required autocomplete="new-password";
            button type="submit" { "Change password" }
        }
    };
    layout::page(operator, Nav::Operators, "Operators", message, body)
}

/// `POST /operators`: adds an operator who can then sign in.
pub async fn create(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Form(form): Form<NewOperatorIn>,
) -> Response {
    if form.password != form.confirm {
        let message = Message::Error("The two passwords differ.".into());
        return render(&state, &operator, Some(message)).await;
    }
    let store = state.settings.store.as_ref();
    let name = form.name.trim();
    let origin = operator.installation_origin();
    let message = match operators::create_operator(store, name, &form.password, &origin).await {
        Ok(created) => Message::Notice(format!(
            "Added operator '{}'. They sign in at /login.",
            created.name
        )),
        Err(OperatorError::Store(error)) => return super::failed(&error),
        Err(refused) => Message::Error(format!("Refused: {refused}.")),
    };
    render(&state, &operator, Some(message)).await
}

/// `POST /operators/password`: the signed-in operator's new password, after the current
/// one is confirmed; ends every session of theirs, so it signs this browser out.
pub async fn change_password(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Form(form): Form<PasswordIn>,
) -> Response {
    let store = state.settings.store.clone();
    let confirmed = match operators::authenticate(store, &operator.name, &form.current).await {
        Ok(found) => matches!(found, SignIn::Accepted(_)),
        Err(error) => return super::failed(&error),
    };
    let refusal = if !confirmed {
        Some("The current password is wrong.")
    } else if form.password != form.confirm {
        Some("The two new passwords differ.")
    } else {
        None
    };
    if let Some(refusal) = refusal {
        return render(&state, &operator, Some(Message::Error(refusal.into()))).await;
    }
    let store = state.settings.store.as_ref();
    let origin = operator.installation_origin();
    match operators::reset_password(store, &operator.name, &form.password, &origin).await {
        Ok(()) => {
            let clear = session::clear_cookie(&state, session::SESSION_COOKIE);
            ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
        }
        Err(OperatorError::Store(error)) => super::failed(&error),
        Err(refused) => {
            let message = Message::Error(format!("Refused: {refused}."));
            render(&state, &operator, Some(message)).await
        }
    }
}
