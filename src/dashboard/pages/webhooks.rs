//! `/webhook-endpoints`: where Stripe sends a connection's events: list, mint (the ingest
//! URL with a copy button), and one endpoint's page: its signing secret (pasted, or made by
//! registering the URL in Stripe), its events updating live (`/live`, Server-Sent Events
//! read by `static/app.js`; a reload shows them without JavaScript), replay, and its push
//! destinations with their recent attempts. Signing secrets are never shown (whether one is
//! set is); a destination's secret is shown once, when it is added. Payloads are not shown
//! either (they are Stripe's data, read through the API). Every action calls the library
//! function the CLI calls.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use futures_util::StreamExt;
use http::HeaderMap;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::super::layout::{self, csrf_field, empty, time, Message, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::audit::Change;
use crate::ids::DestinationId;
use crate::proxy::client::Upstream;
use crate::store::push::{DestinationState, EventSelector};
use crate::store::{EventRecord, WebhookEndpointRecord};
use crate::webhooks::endpoints::{
    add_secret, create_endpoint, find_endpoint, ingest_url, register, SigningSecret, WebhookError,
};
use crate::webhooks::push::{self, DestinationSpec, PushError};
use crate::webhooks::stream::{keep_alive, Follow};

/// How many of an endpoint's events its page shows (the newest).
const EVENTS_SHOWN: i64 = 50;
/// How many recent attempts the page shows per destination.
const ATTEMPTS_SHOWN: i64 = 5;

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
            (empty("No webhook endpoints yet.", "Mint one below, then open it to register its URL in Stripe or paste the signing secret."))
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
    let origin = operator.change_origin();
    let workspace = &operator.workspace.id;
    match create_endpoint(store, workspace, &form.connection, &types, &origin).await {
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

/// The signing secret form.
#[derive(Deserialize)]
pub struct SecretIn {
    secret: String,
    /// Seconds until the endpoint's other secrets stop verifying (a roll, as
    /// `webhooks set-secret --expire-others-in`); empty keeps them.
    #[serde(default)]
    expire_others_in: String,
}

/// The add-destination form.
#[derive(Deserialize)]
pub struct DestinationIn {
    url: String,
    #[serde(default)]
    event_types: String,
    /// Present (any value) when the box is checked.
    allow_private: Option<String>,
}

/// The enable/disable button's field: `enabled` or `disabled`.
#[derive(Deserialize)]
pub struct StateIn {
    state: String,
}

/// The replay forms' fields: one event (the button on each row), or a time range, to
/// every enabled destination or one.
#[derive(Deserialize)]
pub struct ReplayIn {
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    destination: String,
}

impl ReplayIn {
    /// Which events, and a description of them for the message; or why the form is wrong.
    fn selector(&self) -> Result<(EventSelector, String), String> {
        let event_id = self.event_id.trim();
        if !event_id.is_empty() {
            return Ok((EventSelector::One(event_id.to_owned()), event_id.to_owned()));
        }
        let since = super::logs::parse_time(&self.since)?;
        let until = super::logs::parse_time(&self.until)?;
        match (since, until) {
            (Some(since), Some(until)) if since < until => Ok((
                EventSelector::Range { since, until },
                format!(
                    "the events received from {} to {}",
                    time(since),
                    time(until)
                ),
            )),
            (Some(_), Some(_)) => Err("The range ends before it starts.".into()),
            _ => Err("Give both ends of the time range (UTC).".into()),
        }
    }
}

/// `GET /webhook-endpoints/{id}`: the ingest URL, the secret state, the newest events and
/// the push destinations.
pub async fn show(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    render_endpoint(&state, &operator, &id, None, None).await
}

/// `POST /webhook-endpoints/{id}/secret`: adds a pasted signing secret (as
/// `agentgate webhooks set-secret`); the others stay active.
pub async fn set_secret(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
    Form(form): Form<SecretIn>,
) -> Response {
    let store = state.settings.store.as_ref();
    let endpoint = match find_endpoint(store, &operator.workspace.id, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let expire_others_in = match form.expire_others_in.trim() {
        "" => None,
        seconds => match seconds.parse::<u64>() {
            Ok(seconds) => Some(std::time::Duration::from_secs(seconds)),
            Err(_) => {
                let message = Message::Error("Refused: choose when the other secrets stop.".into());
                return render_endpoint(&state, &operator, &id, Some(message), None).await;
            }
        },
    };
    let message = match SigningSecret::parse(&form.secret) {
        Err(error) => Message::Error(format!("Refused: {error}.")),
        Ok(secret) => {
            let sealer = &state.settings.sealer;
            let origin = operator.change_origin();
            match add_secret(store, sealer, &endpoint, &secret, expire_others_in, &origin).await {
                Ok(_) => Message::Notice(match expire_others_in {
                    None => {
                        "Signing secret saved: events Stripe signs with it are accepted.".into()
                    }
                    Some(after) => format!(
                        "Signing secret saved; the other secrets stop verifying in {}.",
                        humantime::format_duration(after)
                    ),
                }),
                Err(error) => return super::failed(&error),
            }
        }
    };
    render_endpoint(&state, &operator, &id, Some(message), None).await
}

/// `POST /webhook-endpoints/{id}/register`: creates the endpoint in Stripe through its
/// connection and stores the secret Stripe returns (as `agentgate webhooks register`).
pub async fn register_in_stripe(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let store = state.settings.store.clone();
    let endpoint = match find_endpoint(store.as_ref(), &operator.workspace.id, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let upstream = Upstream::new(state.settings.upstream.clone());
    let sealer = state.settings.sealer.clone();
    let public = &state.settings.public_url;
    let origin = operator.change_origin();
    let message = match register(store, sealer, &upstream, &endpoint, public, &origin).await {
        Ok(stripe_id) => Message::Notice(format!(
            "Registered in Stripe as {stripe_id}; its signing secret is stored."
        )),
        Err(
            error @ (WebhookError::Stripe(_)
            | WebhookError::UnknownConnection(_)
            | WebhookError::Undecryptable),
        ) => Message::Error(format!("Not registered: {error}.")),
        Err(error) => return super::failed(&error),
    };
    render_endpoint(&state, &operator, &id, Some(message), None).await
}

/// `POST /webhook-endpoints/{id}/destinations`: adds a push destination and shows its
/// secret, once (as `agentgate destinations add`).
pub async fn add_destination(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
    Form(form): Form<DestinationIn>,
) -> Response {
    let store = state.settings.store.as_ref();
    let endpoint = match find_endpoint(store, &operator.workspace.id, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let spec = DestinationSpec {
        endpoint: endpoint.id.clone(),
        url: form.url,
        event_types: vec![form.event_types],
        allow_private: form.allow_private.is_some(),
    };
    let now = crate::time::now_millis();
    let sealer = &state.settings.sealer;
    let origin = operator.change_origin();
    let workspace = &operator.workspace.id;
    match push::create_destination(store, sealer, workspace, spec, now, &origin).await {
        Ok(created) => {
            let shown = html! {
                div.card.created {
                    p { "Destination " code { (created.record.id) } " added. Its signing secret, shown only now: give it to the agent that verifies the pushes." }
                    p.secret-line { code #destination-secret { (created.secret.as_str()) } button.small type="button" data-copy="destination-secret" { "Copy" } }
                }
            };
            let message = Message::Notice("Destination added.".into());
            render_endpoint(&state, &operator, &id, Some(message), Some(shown)).await
        }
        Err(error @ (PushError::Url(_) | PushError::InvalidEventType(_))) => {
            let message = Message::Error(format!("Refused: {error}."));
            render_endpoint(&state, &operator, &id, Some(message), None).await
        }
        Err(PushError::EndpointNotFound) => layout::not_found(),
        Err(error) => super::failed(&error),
    }
}

/// `POST /webhook-endpoints/{id}/destinations/{destination}/remove`
pub async fn remove_destination(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path((id, destination)): Path<(String, String)>,
) -> Response {
    let store = state.settings.store.as_ref();
    let destination = DestinationId::from_stored(destination);
    let origin = operator.change_origin();
    match push::remove_destination(store, &operator.workspace.id, &destination, &origin).await {
        Ok(()) => {
            let message = Message::Notice(format!("Destination {destination} removed."));
            render_endpoint(&state, &operator, &id, Some(message), None).await
        }
        Err(PushError::DestinationNotFound) => layout::not_found(),
        Err(error) => super::failed(&error),
    }
}

/// `POST /webhook-endpoints/{id}/destinations/{destination}/state`: enables a destination
/// (clearing its failure record) or disables it (as `agentgate destinations enable|disable`).
pub async fn set_destination_state(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path((id, destination)): Path<(String, String)>,
    Form(form): Form<StateIn>,
) -> Response {
    let target = match form.state.as_str() {
        "enabled" => DestinationState::Enabled,
        "disabled" => DestinationState::Disabled,
        _ => return layout::not_found(),
    };
    let store = state.settings.store.as_ref();
    let destination = DestinationId::from_stored(destination);
    let now = crate::time::now_millis();
    let workspace = &operator.workspace.id;
    let origin = operator.change_origin();
    match push::set_destination_state(store, workspace, &destination, target, now, &origin).await {
        Ok(()) => {
            let message = Message::Notice(match target {
                DestinationState::Enabled => format!(
                    "Destination {destination} enabled; replay what it missed while disabled."
                ),
                DestinationState::Disabled => format!(
                    "Destination {destination} disabled: nothing is pushed to it until it is enabled."
                ),
            });
            render_endpoint(&state, &operator, &id, Some(message), None).await
        }
        Err(PushError::DestinationNotFound) => layout::not_found(),
        Err(error) => super::failed(&error),
    }
}

/// `POST /webhook-endpoints/{id}/replay`: delivers one event again to every enabled
/// destination whose filter matches (as `agentgate events replay --event`).
pub async fn replay(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
    Form(form): Form<ReplayIn>,
) -> Response {
    let store = state.settings.store.as_ref();
    let endpoint = match find_endpoint(store, &operator.workspace.id, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let (selector, what) = match form.selector() {
        Ok(selected) => selected,
        Err(refusal) => {
            let message = Message::Error(refusal);
            return render_endpoint(&state, &operator, &id, Some(message), None).await;
        }
    };
    let destination = Some(form.destination.trim())
        .filter(|d| !d.is_empty())
        .map(|d| DestinationId::from_stored(d.to_owned()));
    let now = crate::time::now_millis();
    let workspace = &operator.workspace.id;
    let origin = operator.change_origin();
    let replayed = push::replay(
        store,
        workspace,
        &endpoint.id,
        &selector,
        destination.as_ref(),
        now,
        &origin,
    )
    .await;
    let message = match replayed {
        Ok(0) => Message::Error(format!(
            "Nothing to replay {what} to: no enabled destination takes it."
        )),
        Ok(n) => Message::Notice(format!("Replaying {what}: {n} new deliveries, due now.")),
        Err(error @ PushError::NoEvents) => Message::Error(format!("Refused: {error}.")),
        Err(error) => return super::failed(&error),
    };
    render_endpoint(&state, &operator, &id, Some(message), None).await
}

/// `GET /webhook-endpoints/{id}/events/{event_id}`: one stored event as Stripe sent it
/// (as `agentgate events show`), with a button to replay it.
pub async fn show_event(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path((id, event_id)): Path<(String, String)>,
) -> Response {
    let store = state.settings.store.as_ref();
    let workspace = &operator.workspace.id;
    let endpoint = match find_endpoint(store, workspace, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let record = match store.find_event(workspace, &event_id).await {
        Ok(Some(record)) if record.event.endpoint_id == endpoint.id => record,
        Ok(_) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    record_read(&state, &operator, &endpoint, "webhooks.events.show");
    let payload = serde_json::from_slice::<serde_json::Value>(&record.event.payload)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| String::from_utf8_lossy(&record.event.payload).into_owned());
    let base = format!("/webhook-endpoints/{}", endpoint.id);
    let body = html! {
        p { a href=(base) { "← the endpoint's events" } }
        dl.detail {
            dt { "Type" } dd { (record.event.event_type) }
            dt { "Received" } dd { (time(record.event.received_at)) }
            dt { "Cursor" } dd { (record.seq) }
            dt { "Endpoint" } dd { code { (endpoint.id) } }
        }
        form.inline method="post" action={ (base) "/replay" } {
            (csrf_field(&operator.csrf))
            input type="hidden" name="event_id" value=(record.event.event_id);
            button.small type="submit" { "Replay to the push destinations" }
        }
        h2 { "As Stripe sent it" }
        pre.payload { code { (payload) } }
    };
    layout::page(&operator, Nav::Webhooks, &record.event.event_id, None, body)
}

/// Where the live list starts: after the last cursor the page showed.
#[derive(Deserialize)]
pub struct LiveQuery {
    #[serde(default)]
    after: i64,
}

/// One live row as `static/app.js` reads it (text only: it builds the row with
/// `textContent`, so nothing in an event becomes markup).
#[derive(Serialize)]
struct LiveRow<'a> {
    seq: i64,
    received: String,
    event_type: &'a str,
    event_id: &'a str,
}

/// `GET /webhook-endpoints/{id}/live`: the endpoint's events after `?after=` (or the
/// `Last-Event-ID` an EventSource sends on reconnect) as Server-Sent Events, for the
/// signed-in operator: the agents' stream logic ([`Follow`]), session-authenticated.
pub async fn live(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
    Query(query): Query<LiveQuery>,
    headers: HeaderMap,
) -> Response {
    let store = state.settings.store.as_ref();
    let endpoint = match find_endpoint(store, &operator.workspace.id, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let cursor = resume.unwrap_or(query.after).max(0);
    record_read(&state, &operator, &endpoint, "webhooks.events.stream");
    let follow = Follow::start(&state.readers, endpoint.id, None, cursor);
    let events = follow
        .into_stream()
        .map(|record| Ok::<_, Infallible>(live_event(&record)));
    Sse::new(events)
        .keep_alive(keep_alive(&state.readers))
        .into_response()
}

fn live_event(record: &EventRecord) -> Event {
    let row = LiveRow {
        seq: record.seq,
        received: time(record.event.received_at),
        event_type: &record.event.event_type,
        event_id: &record.event.event_id,
    };
    let event = Event::default().id(record.seq.to_string());
    match event.json_data(&row) {
        Ok(event) => event,
        Err(_) => Event::default()
            .id(record.seq.to_string())
            .comment("unserializable event"),
    }
}

/// The endpoint page, with a message and what was just created (a destination's secret).
/// Records in the workspace's log that the operator was shown `endpoint`'s events (`read`:
/// `webhooks.events.list`, `.show` or `.stream`): events carry customers' data, and agents'
/// reads are recorded too.
fn record_read(
    state: &DashState,
    operator: &Operator,
    endpoint: &WebhookEndpointRecord,
    read: &str,
) {
    let entry =
        operator
            .change_origin()
            .read_record(&operator.workspace.id, read, &endpoint.connection);
    state.settings.shared.log.record(entry);
}

async fn render_endpoint(
    state: &DashState,
    operator: &Operator,
    id: &str,
    message: Option<Message>,
    created: Option<Markup>,
) -> Response {
    let store = state.settings.store.as_ref();
    let endpoint = match find_endpoint(store, &operator.workspace.id, id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let now = crate::time::now_millis();
    let secrets = match store.list_active_webhook_secrets(&endpoint.id, now).await {
        Ok(secrets) => secrets.len(),
        Err(error) => return super::failed(&error),
    };
    let events = match store.newest_events(&endpoint.id, EVENTS_SHOWN).await {
        Ok(events) => events,
        Err(error) => return super::failed(&error),
    };
    record_read(state, operator, &endpoint, "webhooks.events.list");
    let workspace = &operator.workspace.id;
    let destinations = match push::list_destinations(store, workspace, Some(&endpoint.id)).await {
        Ok(destinations) => destinations,
        Err(error) => return super::failed(&error),
    };
    let mut attempts = Vec::with_capacity(destinations.len());
    for d in &destinations {
        match push::list_attempts(store, workspace, &d.id, ATTEMPTS_SHOWN).await {
            Ok(list) => attempts.push(list),
            Err(error) => return super::failed(&error),
        }
    }
    let url = ingest_url(&state.settings.public_url, &endpoint.id);
    let base = format!("/webhook-endpoints/{}", endpoint.id);
    let last_seq = events.last().map_or(0, |e| e.seq);
    let body = html! {
        (created.unwrap_or_default())
        p { "Register this URL in Stripe (Developers → Webhooks) for the " strong { (endpoint.connection) } " connection's account:" }
        p.secret-line { code #ingest-url { (url) } button.small type="button" data-copy="ingest-url" { "Copy" } }
        (secret_section(operator, &endpoint, &base, secrets))
        h2 { "Events" }
        div #events-empty hidden[!events.is_empty()] {
            (empty("No events yet.", "Events appear here as they arrive, once Stripe sends them to the URL above and the signing secret is set."))
        }
        table #events-table hidden[events.is_empty()] {
            thead { tr { th { "Received" } th { "Type" } th { "Event id" } th { "Cursor" } th { span.visually-hidden { "Actions" } } } }
            tbody #events data-live={ (base) "/live" } data-after=(last_seq) data-replay={ (base) "/replay" } data-events={ (base) "/events/" } {
                @for e in events.iter().rev() {
                    tr {
                        td { (time(e.event.received_at)) }
                        td { (e.event.event_type) }
                        td { a href={ (base) "/events/" (e.event.event_id) } { code { (e.event.event_id) } } }
                        td { (e.seq) }
                        td {
                            form.inline method="post" action={ (base) "/replay" } {
                                (csrf_field(&operator.csrf))
                                input type="hidden" name="event_id" value=(e.event.event_id);
                                button.small type="submit" { "Replay" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Push destinations" }
        @if destinations.is_empty() {
            (empty("No push destinations.", "Add one below: each event is POSTed to it, signed, retried for about three days."))
        } @else {
            @for (d, tries) in destinations.iter().zip(&attempts) {
                section.destination {
                    p {
                        code { (d.id) } " → " code { (d.url) } " · "
                        span class={ "badge " (d.state.as_str()) } { (d.state.as_str()) }
                        " · " @if d.event_types.is_empty() { "all events" } @else { (d.event_types.join(", ")) }
                        @if d.allow_private { " · private addresses allowed" }
                    }
                    @if d.state == DestinationState::Disabled { p.hint { "Disabled: nothing is pushed to it. Enable it, then replay what it missed." } }
                    @if tries.is_empty() {
                        p.hint { "No attempts yet." }
                    } @else {
                        table {
                            thead { tr { th { "Attempted" } th { "Event id" } th { "Status" } th { "Latency" } th { "Error" } } }
                            tbody {
                                @for a in tries {
                                    tr {
                                        td { (time(a.attempted_at)) }
                                        td { code { (a.event_id) } }
                                        td { @if let Some(status) = a.status { (status) } @else { "—" } }
                                        td { (a.latency_ms) " ms" }
                                        td { (a.error.as_deref().unwrap_or("")) }
                                    }
                                }
                            }
                        }
                    }
                    form.inline method="post" action={ (base) "/destinations/" (d.id) "/state" } {
                        (csrf_field(&operator.csrf))
                        @if d.state == DestinationState::Enabled {
                            input type="hidden" name="state" value="disabled";
                            button.small type="submit" { "Disable" }
                        } @else {
                            input type="hidden" name="state" value="enabled";
                            button.small type="submit" { "Enable" }
                        }
                    }
                    " "
                    form.inline method="post" action={ (base) "/destinations/" (d.id) "/remove" } {
                        (csrf_field(&operator.csrf))
                        button.small.danger type="submit" { "Remove" }
                    }
                }
            }
        }
        @if !destinations.is_empty() {
            h3 { "Replay a time range" }
            form.card method="post" action={ (base) "/replay" } {
                (csrf_field(&operator.csrf))
                label for="replay-since" { "Received from (UTC)" }
                input #replay-since name="since" required placeholder="2026-05-01T12:00";
                label for="replay-until" { "Until (UTC, not included)" }
                input #replay-until name="until" required placeholder="2026-05-02";
                label for="replay-destination" { "To" }
                select #replay-destination name="destination" {
                    option value="" { "every enabled destination" }
                    @for d in &destinations { option value=(d.id) { (d.url) } }
                }
                button type="submit" { "Replay range" }
            }
        }
        h3 { "Add a destination" }
        form.card method="post" action={ (base) "/destinations" } {
            (csrf_field(&operator.csrf))
            label for="destination-url" { "URL (https; http only for private addresses)" }
            input #destination-url name="url" type="url" required placeholder="https://agent.example.com/stripe-events";
            label for="destination-types" { "Event types (comma-separated; empty pushes all)" }
            input #destination-types name="event_types" placeholder="customer.created, invoice.paid";
            label.check {
                input type="checkbox" name="allow_private" value="1";
                " Allow loopback and private addresses"
            }
            button type="submit" { "Add destination" }
        }
        h2 { "Remove this endpoint" }
        p.hint { "Its URL stops accepting events and its signing secrets and push destinations are deleted; stored events stay until retention prunes them. Remove it in Stripe too if you registered it there." }
        form.inline method="post" action={ (base) "/remove" } {
            (csrf_field(&operator.csrf))
            button.danger type="submit" { "Remove endpoint" }
        }
    };
    layout::page(operator, Nav::Webhooks, "Webhook endpoint", message, body)
}

/// Whether a signing secret is set (never the secret), the paste form and the register
/// button.
fn secret_section(
    operator: &Operator,
    endpoint: &WebhookEndpointRecord,
    base: &str,
    secrets: usize,
) -> Markup {
    html! {
        h2 { "Signing secret" }
        @if secrets == 0 {
            p #secret-state.hint { "No signing secret yet: events are refused until one is set." }
        } @else {
            p #secret-state { "Signing secret configured (" (secrets) " active). It is never shown." }
        }
        @if let Some(stripe_id) = &endpoint.stripe_endpoint_id { p { "Registered in Stripe as " code { (stripe_id) } "." } }
        form.card method="post" action={ (base) "/secret" } {
            (csrf_field(&operator.csrf))
            label for="secret" { "Paste the signing secret Stripe shows for this URL (whsec_…)" }
            input #secret name="secret" type="password" autocomplete="off" required;
            @if secrets > 0 {
                label for="expire-others" { "The secrets set before" }
                select #expire-others name="expire_others_in" {
                    option value="" { "keep working (several endpoints in Stripe)" }
                    option value="86400" { "stop in 24 h (Stripe's roll window)" }
                    option value="3600" { "stop in 1 h" }
                    option value="0" { "stop now" }
                }
            }
            button type="submit" { "Save secret" }
        }
        @if endpoint.stripe_endpoint_id.is_none() {
            form.register method="post" action={ (base) "/register" } {
                (csrf_field(&operator.csrf))
                button type="submit" { "Register in Stripe" }
                " "
                span.hint { "creates this URL in Stripe through the connection and stores the secret" }
            }
        }
    }
}

/// `POST /webhook-endpoints/{id}/remove`: removes the endpoint and its secrets (as
/// `agentgate webhooks remove`); its events stay until retention prunes them.
pub async fn remove_endpoint(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let store = state.settings.store.as_ref();
    let workspace = &operator.workspace.id;
    let endpoint = match find_endpoint(store, workspace, &id).await {
        Ok(endpoint) => endpoint,
        Err(WebhookError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    };
    let audit =
        operator
            .change_origin()
            .record(workspace, Change::EndpointDeleted, &endpoint.connection);
    match store
        .delete_webhook_endpoint(workspace, &endpoint.id, &audit)
        .await
    {
        Ok(()) => {}
        Err(crate::store::StoreError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    }
    let message = format!(
        "Endpoint {} removed: its URL accepts no more events.",
        endpoint.id
    );
    render(&state, &operator, Some(Message::Notice(message))).await
}
