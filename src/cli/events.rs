//! `agentgate events list|tail|show`: the webhook events an endpoint of the workspace
//! received, read straight from the database (no server needed), for people checking
//! what Stripe sent. `--json` prints the items agents get from the pull API.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::{open_workspace, output};
use crate::config::StoreArgs;
use crate::ids::{EndpointId, WorkspaceId};
use crate::store::{EventRecord, Store};
use crate::webhooks::pull::{EventItem, DEFAULT_LIMIT, MAX_LIMIT};

/// How often `events tail` reads new events.
const TAIL_INTERVAL: Duration = Duration::from_millis(250);

/// Event commands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List an endpoint's events, oldest first, after a cursor.
    List {
        /// The webhook endpoint (`whe_...`).
        endpoint: String,
        /// Only events after this cursor.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// How many (1 to 100).
        #[arg(long, default_value_t = DEFAULT_LIMIT)]
        limit: i64,
        /// Only events of this type (`customer.created`).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an endpoint's new events as they arrive, until interrupted.
    Tail {
        /// The webhook endpoint (`whe_...`).
        endpoint: String,
        /// Start after this cursor instead of at the newest event.
        #[arg(long)]
        after: Option<i64>,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Push stored events again (one event or a time range) to the endpoint's destinations.
    Replay(super::replay::ReplayArgs),
    /// Print one event as Stripe sent it, indented.
    Show {
        /// Stripe's event id (`evt_...`).
        event: String,
        /// Print the item agents get (cursor, receipt time, the event) as JSON.
        #[arg(long)]
        json: bool,
    },
}

const HEADERS: [&str; 4] = ["CURSOR", "RECEIVED", "ID", "TYPE"];

fn row(record: &EventRecord) -> Vec<String> {
    vec![
        record.seq.to_string(),
        crate::time::rfc3339(record.event.received_at),
        record.event.event_id.clone(),
        record.event.event_type.clone(),
    ]
}

/// Runs an events command.
pub async fn run(args: &StoreArgs, command: EventsCommand) -> anyhow::Result<()> {
    if let EventsCommand::Replay(replay) = command {
        return super::replay::run(args, replay).await;
    }
    let (store, workspace) = open_workspace(args).await?;
    match command {
        EventsCommand::Replay(_) => unreachable!("handled above"),
        EventsCommand::List {
            endpoint,
            after,
            limit,
            event_type,
            json,
        } => {
            let endpoint = find_endpoint(store.as_ref(), &workspace, &endpoint).await?;
            let records = store
                .list_events(
                    &endpoint,
                    after.max(0),
                    limit.clamp(1, MAX_LIMIT),
                    event_type.as_deref(),
                )
                .await?;
            output::list(
                json,
                &records,
                EventItem::one_line,
                &HEADERS,
                row,
                "no events after this cursor",
            )
        }
        EventsCommand::Tail {
            endpoint,
            after,
            json,
        } => tail(store, &workspace, &endpoint, after, json).await,
        EventsCommand::Show { event, json } => {
            let Some(record) = store.find_event(&workspace, &event).await? else {
                bail!("no event {event:?} in this workspace (it may have been pruned)");
            };
            if json {
                return output::json(&EventItem::one_line(&record));
            }
            let value: serde_json::Value = serde_json::from_slice(&record.event.payload)
                .context("the stored event is not JSON")?;
            output::line(serde_json::to_string_pretty(&value)?)?;
            Ok(())
        }
    }
}

/// Follows the endpoint: prints what arrives after the cursor, reading every
/// [`TAIL_INTERVAL`], until Ctrl-C.
async fn tail(
    store: Arc<dyn Store>,
    workspace: &WorkspaceId,
    endpoint: &str,
    after: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let endpoint = find_endpoint(store.as_ref(), workspace, endpoint).await?;
    let mut cursor = match after {
        Some(after) => after.max(0),
        None => store.last_event_seq(&endpoint).await?.unwrap_or(0),
    };
    loop {
        let records = store
            .list_events(&endpoint, cursor, MAX_LIMIT, None)
            .await?;
        for record in &records {
            if json {
                output::json(&EventItem::one_line(record))?;
            } else {
                output::line(row(record).join("  "))?;
            }
            cursor = record.seq;
        }
        if records.len() as i64 == MAX_LIMIT {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(TAIL_INTERVAL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The endpoint with this id in the workspace; an error names the command that lists them.
async fn find_endpoint(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &str,
) -> anyhow::Result<EndpointId> {
    let id = EndpointId::from_stored(id.to_owned());
    match store.find_webhook_endpoint(&id).await? {
        Some(endpoint) if &endpoint.workspace_id == workspace => Ok(endpoint.id),
        _ => bail!(
            "no webhook endpoint {id} in this workspace (`agentgate webhooks list` shows them)"
        ),
    }
}
