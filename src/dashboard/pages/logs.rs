//! `/logs`: the workspace's request log, newest first, filtered by key, status, operation
//! and time, paged with newer/older links; `/logs/{id}` shows one entry whole. The log
//! holds no secret and no body, so neither can appear here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::super::layout::{self, empty, time, Message, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::ids::{EndpointId, KeyId};
use crate::store::LogQuery;

/// How many entries one page shows.
const PAGE: i64 = 100;

/// The filter form's fields and the paging cursor; empty ones filter nothing.
#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    key: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    operation: String,
    /// Only entries with this Stripe request id: a call's, and the deliveries of the events
    /// it caused.
    #[serde(default)]
    stripe_request_id: String,
    /// Only entries written by this instance.
    #[serde(default)]
    instance: String,
    /// Only entries at or after this time (RFC 3339 or a day, UTC).
    #[serde(default)]
    since: String,
    /// Only entries before this time (RFC 3339 or a day, UTC).
    #[serde(default)]
    until: String,
    /// Cursor: entries older than this position.
    before: Option<i64>,
    /// Cursor: entries newer than this position.
    after: Option<i64>,
}

impl Filters {
    /// `/logs?...` with the same filters and the given cursor.
    fn link(&self, cursor: (&str, i64)) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("key", &self.key),
            ("status", &self.status),
            ("operation", &self.operation),
            ("stripe_request_id", &self.stripe_request_id),
            ("instance", &self.instance),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        query.append_pair(cursor.0, &cursor.1.to_string());
        format!("/logs?{}", query.finish())
    }
}

/// Unix milliseconds of `2026-05-01`, `2026-05-01T12:00` or a full RFC 3339 time (UTC).
pub(super) fn parse_time(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let full = match text.len() {
        10 => format!("{text}T00:00:00Z"),
        16 => format!("{text}:00Z"),
        _ => text.to_owned(),
    };
    humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .map(Some)
        .ok_or_else(|| {
            format!("{text:?} is not a time such as 2026-05-01 or 2026-05-01T12:00:00Z (UTC).")
        })
}

/// `GET /logs`
pub async fn list(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Query(filters): Query<Filters>,
) -> Response {
    let store = state.settings.store.as_ref();
    let mut message = None;
    let (since, until) = match (parse_time(&filters.since), parse_time(&filters.until)) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(error), _) | (_, Err(error)) => {
            message = Some(Message::Error(error));
            (None, None)
        }
    };
    let query = LogQuery {
        limit: PAGE,
        key_id: (!filters.key.is_empty()).then(|| KeyId::from_stored(filters.key.clone())),
        status: filters.status.trim().parse().ok(),
        operation: non_empty(&filters.operation),
        stripe_request_id: non_empty(&filters.stripe_request_id),
        instance: non_empty(&filters.instance),
        since,
        until,
        // `after` wins when both are given: one cursor at a time.
        after_id: filters.after,
        before_id: if filters.after.is_some() {
            None
        } else {
            filters.before
        },
    };
    let (records, keys) = match (
        store.list_request_logs(&operator.workspace.id, query).await,
        store.list_keys(&operator.workspace.id).await,
    ) {
        (Ok(records), Ok(keys)) => (records, keys),
        (Err(error), _) | (_, Err(error)) => return super::failed(&error),
    };
    let names: HashMap<_, _> = keys
        .iter()
        .map(|k| (k.id.clone(), k.name.as_str()))
        .collect();
    let full = i64::try_from(records.len()).unwrap_or(i64::MAX) >= PAGE;
    // Records come oldest first; the page shows them newest first.
    let newest = records.last().map(|r| r.id);
    let oldest = records.first().map(|r| r.id);
    let newer = match (filters.after, filters.before, newest) {
        (Some(_), _, Some(id)) if full => Some(filters.link(("after", id))),
        (None, Some(_), Some(id)) => Some(filters.link(("after", id))),
        (None, Some(before), None) => Some(filters.link(("after", before - 1))),
        _ => None,
    };
    let older = match (filters.after, oldest) {
        (Some(_), Some(id)) => Some(filters.link(("before", id))),
        (Some(after), None) => Some(filters.link(("before", after + 1))),
        (None, Some(id)) if full => Some(filters.link(("before", id))),
        _ => None,
    };
    let body = html! {
        form.filters method="get" action="/logs" {
            label { "Key "
                select name="key" {
                    option value="" { "any" }
                    @for k in &keys { option value=(k.id) selected[k.id.as_str() == filters.key] { (k.name) } }
                }
            }
            label { "Status " input name="status" value=(filters.status) inputmode="numeric" size="4"; }
            label { "Operation " input name="operation" value=(filters.operation) placeholder="customers.create"; }
            label { "Stripe request " input name="stripe_request_id" value=(filters.stripe_request_id) placeholder="req_..." size="14"; }
            label { "Instance " input name="instance" value=(filters.instance) size="10"; }
            label { "Since " input name="since" value=(filters.since) placeholder="2026-05-01T12:00" size="16"; }
            label { "Until " input name="until" value=(filters.until) placeholder="2026-05-02" size="16"; }
            button.small type="submit" { "Filter" }
        }
        @if records.is_empty() {
            (empty("No requests match.", "Agents' requests appear here as they arrive; clear the filters to see all."))
        } @else {
            table.log {
                thead { tr { th { "Time" } th { "Key" } th { "Request" } th { "Operation" } th { "Status" } th { "Latency" } th { "Outcome" } } }
                tbody {
                    @for r in records.iter().rev() {
                        @let e = &r.entry;
                        tr {
                            td { a href={ "/logs/" (r.id) } { (time(e.created_at)) } }
                            td { (names.get(&e.key_id).copied().unwrap_or(e.key_id.as_str())) }
                            td { code { (e.method) " " (e.path) } }
                            td { (e.operation.as_deref().unwrap_or("")) }
                            td.status { (e.status) }
                            td { (e.latency_us / 1000) " ms" }
                            td { (e.outcome) @if let Some(reason) = &e.reason { br; small { (reason) } } }
                        }
                    }
                }
            }
        }
        @if newer.is_some() || older.is_some() {
            nav.pager aria-label="Pages" {
                @if let Some(link) = &newer { a href=(link) rel="prev" { "← Newer" } }
                " "
                @if let Some(link) = &older { a href=(link) rel="next" { "Older →" } }
            }
        }
    };
    layout::page(&operator, Nav::Logs, "Request log", message, body)
}

/// `GET /logs/{id}`: every field of one entry of the workspace's log (which holds no
/// secret and no body).
pub async fn show(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return layout::not_found();
    };
    let store = state.settings.store.as_ref();
    let query = LogQuery {
        limit: 1,
        after_id: Some(id.saturating_sub(1)),
        before_id: Some(id.saturating_add(1)),
        ..LogQuery::default()
    };
    let (records, keys) = match (
        store.list_request_logs(&operator.workspace.id, query).await,
        store.list_keys(&operator.workspace.id).await,
    ) {
        (Ok(records), Ok(keys)) => (records, keys),
        (Err(error), _) | (_, Err(error)) => return super::failed(&error),
    };
    let Some(record) = records.into_iter().find(|r| r.id == id) else {
        return layout::not_found();
    };
    let e = &record.entry;
    let key_name = keys
        .iter()
        .find(|k| k.id == e.key_id)
        .map(|k| k.name.as_str());
    let none = "—";
    let body = html! {
        p { a href="/logs" { "← Request log" } }
        dl.detail {
            dt { "Position" } dd { (record.id) }
            dt { "Time" } dd { (time(e.created_at)) " (" (crate::time::rfc3339(e.created_at)) ")" }
            dt { "Request id" } dd { code { (e.request_id) } }
            dt { "Key" } dd { (key_name.unwrap_or(actor(e.key_id.as_str()))) " " code { (e.key_id) } }
            dt { "Connection" } dd { (e.connection) }
            dt { "Came over" } dd { (surface(&e.via)) }
            dt { "Client" } dd { @match e.client { Some(ip) => code { (ip) }, None => (none) } }
            dt { "Instance" } dd { (record.instance.as_deref().unwrap_or(none)) }
            dt { "Request" } dd { code { (e.method) " " (e.path) } }
            dt { "Operation" } dd { (e.operation.as_deref().unwrap_or(none)) }
            dt { "Status" } dd { (e.status) }
            dt { "Latency" } dd { (format!("{:.1}", e.latency_us as f64 / 1000.0)) " ms" }
            dt { "Outcome" } dd { (e.outcome) }
            dt { "Reason" } dd { (e.reason.as_deref().unwrap_or(none)) }
            dt { "Stripe request id" } dd {
                @match &e.stripe_request_id {
                    Some(id) => {
                        code { (id) } " "
                        a href={ "/logs?" (form_urlencoded::Serializer::new(String::new()).append_pair("stripe_request_id", id).finish()) } { "every entry with it" }
                    },
                    None => (none),
                }
            }
            dt { "Idempotency key" } dd { code { (e.idempotency_key.as_deref().unwrap_or(none)) } }
        }
        p.hint { "The log keeps no request or response bodies and no secrets; query values are dropped from the path." }
    };
    layout::page(&operator, Nav::Logs, "Request", None, body)
}

/// A filter field's text, trimmed, or `None` when empty.
fn non_empty(field: &str) -> Option<String> {
    let field = field.trim();
    (!field.is_empty()).then(|| field.to_owned())
}

/// Who an entry's `key_id` names when it is no key of the workspace: the CLI or a dashboard
/// operator for a management change (`src/audit.rs`), a webhook endpoint for Stripe's
/// delivery to it, else a key since deleted.
fn actor(key_id: &str) -> &str {
    match key_id {
        "cli" => "the CLI",
        _ if key_id.starts_with("operator:") => "a dashboard operator",
        _ if key_id.starts_with(EndpointId::PREFIX) => "Stripe, delivering to the endpoint",
        _ => "(deleted)",
    }
}

/// How an entry's request came, in words.
fn surface(via: &str) -> &'static str {
    match via {
        "mcp" => "MCP (a tool call)",
        "api" => "the management API",
        "cli" => "the CLI",
        "dashboard" => "the dashboard",
        "webhook" => "a webhook delivery from Stripe",
        _ => "HTTP",
    }
}
