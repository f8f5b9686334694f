//! `/logs`: the workspace's request log, newest first, filtered by key, status and
//! operation. The log holds no secret and no body, so neither can appear here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::super::layout::{self, empty, time, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::ids::KeyId;
use crate::store::LogQuery;

/// How many entries one page shows.
const PAGE: i64 = 100;

/// The filter form's fields; empty ones filter nothing.
#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    key: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    operation: String,
}

/// `GET /logs`
pub async fn list(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Query(filters): Query<Filters>,
) -> Response {
    let store = state.settings.store.as_ref();
    let query = LogQuery {
        limit: PAGE,
        key_id: (!filters.key.is_empty()).then(|| KeyId::from_stored(filters.key.clone())),
        status: filters.status.trim().parse().ok(),
        operation: (!filters.operation.trim().is_empty())
            .then(|| filters.operation.trim().to_owned()),
        ..LogQuery::default()
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
                            td { (time(e.created_at)) }
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
    };
    layout::page(&operator, Nav::Logs, "Request log", None, body)
}
