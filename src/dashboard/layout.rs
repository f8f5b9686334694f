//! The page shell every dashboard page shares (head, top nav with the workspace switch and
//! sign-out, one message line) and the small pieces pages repeat: the CSRF field, times,
//! empty states, error pages. No inline script or style anywhere: the CSP forbids them.

use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use maud::{html, Markup, DOCTYPE};

use super::csrf;
use super::session::Operator;

/// The sections of the nav, to mark the current one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Connections,
    Keys,
    Logs,
    Webhooks,
    Catalog,
    Workspaces,
    Operators,
    Audit,
}

const SECTIONS: [(Nav, &str, &str); 9] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Connections, "/connections", "Connections"),
    (Nav::Keys, "/keys", "Agent keys"),
    (Nav::Logs, "/logs", "Request log"),
    (Nav::Webhooks, "/webhook-endpoints", "Webhooks"),
    (Nav::Catalog, "/catalog", "Catalog"),
    (Nav::Workspaces, "/workspaces", "Workspaces"),
    (Nav::Operators, "/operators", "Operators"),
    (Nav::Audit, "/audit", "Audit"),
];

/// A message shown above a page's content.
pub enum Message {
    /// Something worked.
    Notice(String),
    /// Something was refused; says what to change.
    Error(String),
}

/// A whole page for a signed-in operator.
pub fn page(
    operator: &Operator,
    nav: Nav,
    title: &str,
    message: Option<Message>,
    body: Markup,
) -> Response {
    let header = html! {
        header.top {
            a.brand href="/" { "agentgate" }
            nav {
                @for (section, href, label) in SECTIONS {
                    @if section == nav {
                        a.current href=(href) aria-current="page" { (label) }
                    } @else {
                        a href=(href) { (label) }
                    }
                }
            }
            div.who {
                form.inline method="post" action="/workspace" {
                    (csrf_field(&operator.csrf))
                    label.visually-hidden for="workspace" { "Workspace" }
                    select #workspace name="workspace" data-autosubmit {
                        @for w in &operator.workspaces {
                            option value=(w.name) selected[w.id == operator.workspace.id] { (w.name) }
                        }
                    }
                    button.small type="submit" { "Switch" }
                }
                form.inline method="post" action="/logout" {
                    (csrf_field(&operator.csrf))
                    button.small.link type="submit" { "Sign out " (operator.name) }
                }
            }
        }
    };
    shell(title, Some(header), message, body, StatusCode::OK)
}

/// A page without the nav (sign-in, setup, errors).
pub fn bare(title: &str, message: Option<Message>, body: Markup, status: StatusCode) -> Response {
    shell(title, None, message, body, status)
}

fn shell(
    title: &str,
    header: Option<Markup>,
    message: Option<Message>,
    body: Markup,
    status: StatusCode,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · agentgate" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                @if let Some(header) = header { (header) }
                main {
                    h1 { (title) }
                    @match message {
                        Some(Message::Notice(text)) => p.notice role="status" { (text) },
                        Some(Message::Error(text)) => p.error role="alert" { (text) },
                        None => {},
                    }
                    (body)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// The hidden field every form carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(token); }
}

/// A Unix-millisecond time as people read it (UTC, to the second).
pub fn time(millis: i64) -> String {
    let text = crate::time::rfc3339(millis);
    text.get(..19).unwrap_or(&text).replace('T', " ") + " UTC"
}

/// What an empty list shows: what it would hold and what to do next.
pub fn empty(what: &str, next: &str) -> Markup {
    html! { div.empty { p { strong { (what) } } p { (next) } } }
}

/// 403 for a form without a valid CSRF token.
pub fn forbidden() -> Response {
    let body = html! { p { "The form was stale or came from another site. Go back, reload the page and try again." } };
    bare("Refused", None, body, StatusCode::FORBIDDEN)
}

/// 404 for a dashboard object that does not exist in this workspace.
pub fn not_found() -> Response {
    let body = html! { p { a href="/" { "Back to the overview" } } };
    bare("Not found", None, body, StatusCode::NOT_FOUND)
}

/// 500; the cause was logged by the caller.
pub fn internal_error() -> Response {
    let body = html! { p { "Something went wrong on our side; the server log has the details." } };
    bare(
        "Internal error",
        None,
        body,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}
