//! `/webhook-endpoints`: where Stripe sends a connection's events: list, mint (the ingest
//! URL with a copy button), and one endpoint's recent events. Signing secrets are never
//! shown; payloads are not shown either (they are Stripe's data, read through the API).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::super::layout::{self, csrf_field, empty, time, Message, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::webhooks::endpoints::{create_endpoint, find_endpoint, ingest_url, WebhookError};

/// How many of an endpoint's events its page shows (the newest).
const EVENTS_SHOWN: usize = 50;

/// The mint form.
#[derive(Deserialize)]
pub struct EndpointIn {
    connection: String,
    #[serde(default)]
    event_types: String,
}

/// `GET /webhook-endpoints`
pub async fn list(State(state): State<Arc<DashState>>, operator: Operator) -> Response {
    render(&state, &operator, None).await
}

async fn render(state: &DashState, operator: &Operator, message: Option<Message>) -> Response {
    let store = state.settings.store.as_ref();
    let (endpoints, connections) = match (
        store.list_webhook_endpoints(&operator.workspace.id).await,
        store.list_connections(&operator.workspace.id).await,
    ) {
        (Ok(e), Ok(c)) => (e, c),
        (Err(error), _) | (_, Err(error)) => return super::failed(&error),
    };
    let body = html! {
        @if endpoints.is_empty() {
            (empty("No webhook endpoints yet.", "Mint one below, then register its URL in Stripe and add the signing secret with `agentgate webhooks secret`."))
        } @else {
            table {
                thead { tr { th { "Endpoint" } th { "Connection" } th { "Event types" } th { "Created" } } }
                tbody {
                    @for e in &endpoints {
                        tr {
                            td { a href={ "/webhook-endpoints/" (e.id) } { code { (e.id) } } }
                            td { (e.connection) }
                            td { @if e.event_types.is_empty() { "all" } @else { (e.event_types.join(", ")) } }
                            td { (time(e.created_at)) }
                        }
                    }
                }
            }
        }
        h2 { "Mint an endpoint" }
        @if connections.is_empty() {
            p.hint { "Add a connection first: events come from a connection's Stripe account." }
        } @else {
            form.card method="post" action="/webhook-endpoints" {
                (csrf_field(&operator.csrf))
                label for="connection" { "Connection" }
                select #connection name="connection" {
                    @for c in &connections { option value=(c.name) { (c.name) } }
                }
                label for="event_types" { "Event types (comma-separated; empty keeps all)" }
                input #event_types name="event_types" placeholder="customer.created, invoice.paid";
                button type="submit" { "Mint endpoint" }
            }
        }
    };
    layout::page(operator, Nav::Webhooks, "Webhook endpoints", message, body)
}

/// `POST /webhook-endpoints`: mints an endpoint and opens its page.
pub async fn create(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Form(form): Form<EndpointIn>,
) -> Response {
    let types: Vec<String> = form
        .event_types
        .split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    let store = state.settings.store.as_ref();
    match create_endpoint(store, &operator.workspace.id, &form.connection, &types).await {
        Ok(record) => Redirect::to(&format!("/webhook-endpoints/{}", record.id)).into_response(),
        Err(error @ (WebhookError::InvalidEventType(_) | WebhookError::UnknownConnection(_))) => {
            render(
                &state,
                &operator,
                Some(Message::Error(format!("Refused: {error}."))),
            )
            .await
        }
        Err(error) => super::failed(&error),
    }
}

/// `GET /webhook-endpoints/{id}`: the ingest URL and the newest events.
pub async fn show(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let store = state.settings.store.as_ref();
    let endpoint = match find_endpoint(store, &operator.workspace.id, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let events = match store.list_events(&endpoint.id, 0, 10_000, None).await {
        Ok(events) => events,
        Err(error) => return super::failed(&error),
    };
    let url = ingest_url(&state.settings.public_url, &endpoint.id);
    let body = html! {
        p { "Register this URL in Stripe (Developers → Webhooks) for the " strong { (endpoint.connection) } " connection's account:" }
        p.secret-line { code #ingest-url { (url) } button.small type="button" data-copy="ingest-url" { "Copy" } }
        @if let Some(stripe_id) = &endpoint.stripe_endpoint_id { p { "Registered in Stripe as " code { (stripe_id) } "." } }
        h2 { "Events" }
        @if events.is_empty() {
            (empty("No events yet.", "Events appear once Stripe sends them to the URL above and the signing secret is added."))
        } @else {
            table {
                thead { tr { th { "Received" } th { "Type" } th { "Event id" } th { "Cursor" } } }
                tbody {
                    @for e in events.iter().rev().take(EVENTS_SHOWN) {
                        tr { td { (time(e.event.received_at)) } td { (e.event.event_type) } td { code { (e.event.event_id) } } td { (e.seq) } }
                    }
                }
            }
        }
    };
    layout::page(&operator, Nav::Webhooks, "Webhook endpoint", None, body)
}
