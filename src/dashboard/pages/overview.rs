//! `/`: the last 24 hours of the request log at a glance: totals, an hourly chart drawn as
//! server-rendered SVG (no script), the most recent refusals, and each webhook endpoint's
//! health (events in the last 24 h, when the last one arrived).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::super::layout::{self, empty, time, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::ids::EndpointId;
use crate::store::{LogQuery, RequestLogRecord};

const HOUR: i64 = 60 * 60 * 1000;

/// At most this many entries are read for the overview.
const WINDOW_LIMIT: i64 = 20_000;

/// `GET /`
pub async fn show(State(state): State<Arc<DashState>>, operator: Operator) -> Response {
    let now = crate::time::now_millis();
    let query = LogQuery {
        limit: WINDOW_LIMIT,
        since: Some(now - 24 * HOUR),
        ..LogQuery::default()
    };
    let store = &state.settings.store;
    let records = match store.list_request_logs(&operator.workspace.id, query).await {
        Ok(records) => records,
        Err(error) => return super::failed(&error),
    };
    let endpoints = match store.list_webhook_endpoints(&operator.workspace.id).await {
        Ok(endpoints) => endpoints,
        Err(error) => return super::failed(&error),
    };
    let mut health = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        match store.event_activity(&endpoint.id, now - 24 * HOUR).await {
            Ok((recent, last)) => health.push((endpoint.id, endpoint.connection, recent, last)),
            Err(error) => return super::failed(&error),
        }
    }
    let body = html! {
        (totals(&records))
        h2 { "Requests per hour" }
        (chart(&records, now))
        h2 { "Recent refusals" }
        (refusals(&records))
        h2 { "Webhook health" }
        (webhook_health(&health))
    };
    layout::page(&operator, Nav::Overview, "Overview", None, body)
}

fn totals(records: &[RequestLogRecord]) -> Markup {
    let errors = records.iter().filter(|r| r.entry.status >= 400).count();
    let refused = records.iter().filter(|r| r.entry.reason.is_some()).count();
    let mut latencies: Vec<i64> = records.iter().map(|r| r.entry.latency_us).collect();
    latencies.sort_unstable();
    let p50 = latencies.get(latencies.len() / 2).map_or(0, |us| us / 1000);
    html! {
        dl.stats {
            div { dt { "Requests (24 h)" } dd { (records.len()) } }
            div { dt { "Errors (4xx/5xx)" } dd { (errors) } }
            div { dt { "Refused by agentgate" } dd { (refused) } }
            div { dt { "Median latency" } dd { (p50) " ms" } }
        }
    }
}

/// Hourly request counts as bars, errors stacked in a second colour, oldest on the left.
fn chart(records: &[RequestLogRecord], now: i64) -> Markup {
    let mut buckets = [(0u32, 0u32); 24];
    for record in records {
        let age = (now - record.entry.created_at).max(0) / HOUR;
        if let Some(bucket) = usize::try_from(23 - age.min(23))
            .ok()
            .and_then(|i| buckets.get_mut(i))
        {
            bucket.0 += 1;
            if record.entry.status >= 400 {
                bucket.1 += 1;
            }
        }
    }
    let top = buckets.iter().map(|b| b.0).max().unwrap_or(0).max(1);
    let height = |n: u32| f64::from(n) * 100.0 / f64::from(top);
    html! {
        svg.chart viewBox="0 0 480 120" role="img" aria-label="Requests per hour over the last 24 hours; errors in red" {
            @for (i, (all, errors)) in buckets.iter().enumerate() {
                @let x = i * 20 + 2;
                rect.bar x=(x) y=(format!("{:.1}", 110.0 - height(*all))) width="16" height=(format!("{:.1}", height(*all))) {
                    title { (all) " requests, " (errors) " errors" }
                }
                rect.bar-error x=(x) y=(format!("{:.1}", 110.0 - height(*errors))) width="16" height=(format!("{:.1}", height(*errors))) {}
            }
            line.axis x1="0" y1="110" x2="480" y2="110" {}
            text.label x="0" y="120" { "24 h ago" }
            text.label x="480" y="120" text-anchor="end" { "now" }
        }
        p.hint { "Busiest hour: " (top) " requests." }
    }
}

fn refusals(records: &[RequestLogRecord]) -> Markup {
    let recent: Vec<_> = records
        .iter()
        .rev()
        .filter(|r| r.entry.reason.is_some())
        .take(10)
        .collect();
    if recent.is_empty() {
        return empty(
            "No refusals in the last 24 hours.",
            "Requests agentgate refuses (scope, validation, guardrails) show up here.",
        );
    }
    html! {
        table {
            thead { tr { th { "Time" } th { "Status" } th { "Request" } th { "Reason" } } }
            tbody {
                @for r in recent {
                    tr {
                        td { (time(r.entry.created_at)) }
                        td { (r.entry.status) }
                        td { code { (r.entry.method) " " (r.entry.path) } }
                        td { (r.entry.reason.as_deref().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// Per endpoint: events received in the last 24 h and when the last one arrived.
fn webhook_health(health: &[(EndpointId, String, i64, Option<i64>)]) -> Markup {
    if health.is_empty() {
        return empty(
            "No webhook endpoints yet.",
            "Mint one on the Webhooks page to receive Stripe's events.",
        );
    }
    html! {
        table.health {
            thead { tr { th { "Endpoint" } th { "Connection" } th { "Events (24 h)" } th { "Last event" } } }
            tbody {
                @for (id, connection, recent, last) in health {
                    tr {
                        td { a href={ "/webhook-endpoints/" (id) } { code { (id) } } }
                        td { (connection) }
                        td { (recent) }
                        td { (last.map_or_else(|| "never".to_owned(), time)) }
                    }
                }
            }
        }
    }
}
