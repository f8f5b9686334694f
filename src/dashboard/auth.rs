//! Sign-in, sign-out and first-run setup. A failed sign-in says only "wrong name or
//! password", whichever it was, and takes the same time either way
//! ([`operators::authenticate`]). The setup link works once, within its hour, and only
//! while no operator exists.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use http::{header, HeaderMap, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, csrf_field, Message};
use super::session::{self, Operator, PREAUTH_COOKIE, SESSION_COOKIE};
use super::{csrf, DashState};
use crate::installation_audit::{
    Action, InstallationOrigin, REFUSED, UNKNOWN_NAME, WRONG_PASSWORD,
};
use crate::operators::{self, token_hash, SignIn};
use crate::proxy::ClientAddr;
use crate::store::InstallationRecord;

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct LoginIn {
    name: String,
    password: String,
}

/// The setup form's fields.
#[derive(Deserialize)]
pub struct SetupIn {
    name: String,
    password: String,
    confirm: String,
}

/// `GET /login`: the form (or the overview for a signed-in browser).
pub async fn login_page(State(state): State<Arc<DashState>>, headers: HeaderMap) -> Response {
    if let Some(token) = session::cookie(&headers, SESSION_COOKIE) {
        let now = crate::time::now_millis();
        if let Ok(Some(_)) = state
            .settings
            .store
            .find_session(&token_hash(&token), now)
            .await
        {
            return Redirect::to("/").into_response();
        }
    }
    with_preauth(&state, &headers, |token| {
        login_form(token, None, StatusCode::OK)
    })
}

/// `POST /login`: starts a session, or shows the form again with one generic message.
pub async fn login(
    State(state): State<Arc<DashState>>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    Form(form): Form<LoginIn>,
) -> Response {
    let client_ip = client.map(|Extension(ClientAddr(addr))| addr.ip());
    if let Some(wait) = client_ip.and_then(|ip| state.settings.sign_in_failures.blocked(ip)) {
        return too_many_failures(wait);
    }
    let store = state.settings.store.clone();
    let found = match operators::authenticate(store, form.name.trim(), &form.password).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, "sign-in lookup failed");
            return layout::internal_error();
        }
    };
    let refusal = match found {
        SignIn::Accepted(operator) => {
            let audit = accepted(&operator.name, client_ip);
            return signed_in(&state, &operator.id, &audit).await;
        }
        SignIn::WrongPassword(operator) => InstallationOrigin::operator(&operator.name, client_ip)
            .record(
                Action::SignIn,
                Some(&operator.name),
                REFUSED,
                Some(WRONG_PASSWORD.into()),
            ),
        SignIn::UnknownName => InstallationOrigin::visitor(client_ip).record(
            Action::SignIn,
            None,
            REFUSED,
            Some(UNKNOWN_NAME.into()),
        ),
    };
    // Counted before the record is written, so guesses sent meanwhile meet the limit.
    if let Some(ip) = client_ip {
        state.settings.sign_in_failures.failed(ip);
    }
    // The refusal stands whether or not its record can be written.
    if let Err(error) = state.settings.store.record_installation(&refusal).await {
        tracing::warn!(%error, "could not record a refused sign-in");
    }
    let token = csrf::secret_of(&headers)
        .map(|s| csrf::token_for(&s))
        .unwrap_or_default();
    let message = Message::Error("Wrong name or password.".into());
    login_form(&token, Some(message), StatusCode::UNAUTHORIZED)
}

/// 429 with `Retry-After`: this address failed to sign in too often in the last minute.
/// The form is not shown, so no password is checked (and none can be guessed) meanwhile.
fn too_many_failures(wait_seconds: u64) -> Response {
    let body = html! {
        p { "Too many failed sign-ins from this address. Try again in " (wait_seconds) " seconds." }
    };
    let mut response = layout::bare(
        "Sign in",
        Some(Message::Error("Too many failed sign-ins.".into())),
        body,
        StatusCode::TOO_MANY_REQUESTS,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, wait_seconds.into());
    response
}

/// `POST /logout`: ends the session and forgets the cookie. The sign-out of a live
/// session is recorded in the installation's audit afterwards, at best effort: a record
/// that cannot be written must not keep a session open that its operator wants closed.
pub async fn logout(
    State(state): State<Arc<DashState>>,
    operator: Result<Operator, Response>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = session::cookie(&headers, SESSION_COOKIE) {
        let store = &state.settings.store;
        if let Err(error) = store.delete_session(&token_hash(&token)).await {
            tracing::error!(%error, "sign-out failed");
            return layout::internal_error();
        }
        if let Ok(operator) = operator {
            let record = operator
                .installation_origin()
                .applied(Action::SignOut, &operator.name);
            if let Err(error) = store.record_installation(&record).await {
                tracing::warn!(%error, "a sign-out's audit record could not be written");
            }
        }
    }
    let clear = session::clear_cookie(&state, SESSION_COOKIE);
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

/// `GET /setup/{token}`: the first operator's form, while the link is good.
pub async fn setup_page(
    State(state): State<Arc<DashState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    match setup_usable(&state, &token).await {
        Ok(true) => with_preauth(&state, &headers, |csrf| {
            setup_form(&token, csrf, None, StatusCode::OK)
        }),
        Ok(false) => setup_gone(),
        Err(response) => response,
    }
}

/// `POST /setup/{token}`: creates the first operator and signs them in; the link is spent.
pub async fn setup(
    State(state): State<Arc<DashState>>,
    Path(token): Path<String>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    Form(form): Form<SetupIn>,
) -> Response {
    let client_ip = client.map(|Extension(ClientAddr(addr))| addr.ip());
    let csrf = csrf::secret_of(&headers)
        .map(|s| csrf::token_for(&s))
        .unwrap_or_default();
    let name = form.name.trim();
    let problem = operators::check_name(name)
        .and_then(|()| operators::check_password(&form.password))
        .err()
        .map(|e| e.to_string())
        .or_else(|| (form.password != form.confirm).then(|| "The passwords differ.".to_owned()));
    if let Some(problem) = problem {
        return setup_form(
            &token,
            &csrf,
            Some(Message::Error(problem)),
            StatusCode::BAD_REQUEST,
        );
    }
    match setup_usable(&state, &token).await {
        Ok(true) => {}
        Ok(false) => return setup_gone(),
        Err(response) => return response,
    }
    let store = state.settings.store.as_ref();
    match store
        .use_setup_token(&token_hash(&token), crate::time::now_millis())
        .await
    {
        Ok(true) => {}
        Ok(false) => return setup_gone(),
        Err(error) => return failed(&error),
    }
    let origin = InstallationOrigin::setup_link(client_ip);
    match operators::create_operator(store, name, &form.password, &origin).await {
        Ok(operator) => {
            let audit = accepted(&operator.name, client_ip);
            signed_in(&state, &operator.id, &audit).await
        }
        Err(error) => failed(&error),
    }
}

/// Whether the setup link may still be used: unused, unexpired, and nobody can sign in yet.
async fn setup_usable(state: &DashState, token: &str) -> Result<bool, Response> {
    let store = &state.settings.store;
    let now = crate::time::now_millis();
    let usable = store.setup_token_usable(&token_hash(token), now).await;
    let nobody = store.count_operators().await.map(|n| n == 0);
    match (usable, nobody) {
        (Ok(usable), Ok(nobody)) => Ok(usable && nobody),
        (Err(error), _) | (_, Err(error)) => Err(failed(&error)),
    }
}

/// The record of the operator `name`'s accepted sign-in from `client`.
fn accepted(name: &str, client: Option<IpAddr>) -> InstallationRecord {
    InstallationOrigin::operator(name, client).applied(Action::SignIn, name)
}

/// Starts the session, with the sign-in's audit record, and goes to the overview.
async fn signed_in(state: &DashState, operator_id: &str, audit: &InstallationRecord) -> Response {
    match session::start(state, operator_id, audit).await {
        Ok(cookie) => {
            let clear = session::clear_cookie(state, PREAUTH_COOKIE);
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response.headers_mut().append(header::SET_COOKIE, clear);
            response
        }
        Err(error) => failed(&error),
    }
}

/// Renders a pre-sign-in form with the CSRF token of the browser's cookie, setting a fresh
/// pre-auth cookie when it has none.
fn with_preauth(
    state: &DashState,
    headers: &HeaderMap,
    form: impl FnOnce(&str) -> Response,
) -> Response {
    if let Some(secret) = csrf::secret_of(headers) {
        return form(&csrf::token_for(&secret));
    }
    let secret = operators::random_token();
    let mut response = form(&csrf::token_for(&secret));
    let cookie = session::set_cookie(state, PREAUTH_COOKIE, &secret);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn login_form(csrf: &str, message: Option<Message>, status: StatusCode) -> Response {
    let body = html! {
        form.card method="post" action="/login" {
            (csrf_field(csrf))
            label for="name" { "Name" }
            input #name name="name" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        p.hint { "Forgot the password? Run " code { "agentgate operators reset-password NAME" } " on the server." }
    };
    layout::bare("Sign in", message, body, status)
}

fn setup_form(token: &str, csrf: &str, message: Option<Message>, status: StatusCode) -> Response {
    let body: Markup = html! {
        p { "Choose the name and password of the first operator. This link works once." }
        form.card method="post" action={ "/setup/" (token) } {
            (csrf_field(csrf))
            label for="name" { "Name" }
            input #name name="name" autocomplete="username" required autofocus;
            label for="password" { "Password (at least " (operators::MIN_PASSWORD_LEN) " characters)" }
            input #password name="password" type="password" autocomplete="new-password" required minlength=(operators::MIN_PASSWORD_LEN);
            label for="confirm" { "Password again" }
            input #confirm name="confirm" type="password" autocomplete="new-password" required;
            button type="submit" { "Create operator and sign in" }
        }
    };
    layout::bare("Set up agentgate", message, body, status)
}

fn setup_gone() -> Response {
    let body = html! {
        p { "This setup link was used already, has expired, or an operator exists." }
        p { "Sign in at " a href="/login" { "/login" } ", or restart " code { "agentgate serve" } " with no operator for a new link, or run " code { "agentgate operators create NAME" } "." }
    };
    layout::bare("Setup link not usable", None, body, StatusCode::GONE)
}

fn failed(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "dashboard sign-in step failed");
    layout::internal_error()
}
