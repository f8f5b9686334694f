//! `/audit`: the installation's own audit (workspaces created, operators and their
//! passwords, sign-ins, master-key rotations), newest first, a page at a time. The same
//! records `agentgate audit list` prints; a workspace's changes are on its request log page.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::super::layout::{self, time, Nav};
use super::super::session::Operator;
use super::super::DashState;

/// Records a page shows.
const PAGE_SIZE: i64 = 100;

/// The page's query: where the page starts.
#[derive(Deserialize)]
pub struct Paging {
    /// Only records older than this id.
    before: Option<i64>,
}

/// `GET /audit`
pub async fn list(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Query(paging): Query<Paging>,
) -> Response {
    let records = match state
        .settings
        .store
        .list_installation_audit(paging.before, PAGE_SIZE)
        .await
    {
        Ok(records) => records,
        Err(error) => return super::failed(&error),
    };
    let older = (records.len() == PAGE_SIZE as usize)
        .then(|| records.last().map(|r| format!("/audit?before={}", r.id)))
        .flatten();
    let dash = || "-".to_owned();
    let body = html! {
        p.hint { "Changes to the installation itself and sign-ins to this dashboard. A workspace's own changes are in its request log." }
        @if records.is_empty() {
            p { "Nothing recorded yet." }
        } @else {
            table {
                thead { tr { th { "Time" } th { "Actor" } th { "Action" } th { "Subject" } th { "Outcome" } th { "Detail" } th { "Client" } th { "Instance" } } }
                tbody {
                    @for r in &records {
                        tr {
                            td { (time(r.created_at)) }
                            td { (r.actor) }
                            td { code { (r.action) } }
                            td { (r.subject.clone().unwrap_or_else(dash)) }
                            td { (r.outcome) }
                            td { (r.detail.clone().unwrap_or_else(dash)) }
                            td { (r.client.clone().unwrap_or_else(dash)) }
                            td { (r.instance.clone().unwrap_or_else(dash)) }
                        }
                    }
                }
            }
        }
        @if let Some(link) = &older { p { a href=(link) rel="next" { "Older →" } } }
    };
    layout::page(&operator, Nav::Audit, "Audit", None, body)
}
