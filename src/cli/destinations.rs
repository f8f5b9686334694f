//! `agentgate destinations add|list|remove|enable|disable|attempts`: the agents' URLs a
//! webhook endpoint's events are pushed to (`docs/push.md`). The signing secret is printed
//! once, by `add`.

use anyhow::bail;
use clap::Subcommand;
use serde::Serialize;

use super::{open_workspace, output};
use crate::audit::ChangeOrigin;
use crate::config::StoreArgs;
use crate::crypto::verify_master_key;
use crate::ids::{DestinationId, EndpointId};
use crate::store::push::{AttemptRecord, DestinationRecord, DestinationState};
use crate::webhooks::push::{self, DestinationSpec};

/// Destination commands.
#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Push an endpoint's events to a URL; prints the destination's signing secret, once.
    Add {
        /// The webhook endpoint (`whe_...`).
        endpoint: String,
        /// Where to POST events (`https://agent.example/hooks`).
        #[arg(long)]
        url: String,
        /// Only these event types (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Allow loopback, private and link-local addresses (refused by default; cloud
        /// metadata addresses stay refused).
        #[arg(long)]
        allow_private: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an endpoint's destinations (never their secrets).
    List {
        /// The webhook endpoint.
        endpoint: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a destination with its deliveries and attempt log.
    Remove {
        /// The destination (`dst_...`).
        id: String,
    },
    /// Enable a destination again (after it was disabled for failing).
    Enable {
        /// The destination.
        id: String,
    },
    /// Stop pushing to a destination; its pending deliveries are not attempted.
    Disable {
        /// The destination.
        id: String,
    },
    /// Show the newest delivery attempts to a destination.
    Attempts {
        /// The destination.
        id: String,
        /// How many (newest first).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What scripts get for a destination.
#[derive(Serialize)]
struct DestinationOut<'a> {
    id: &'a str,
    endpoint: &'a str,
    url: &'a str,
    events: &'a [String],
    allow_private: bool,
    state: &'static str,
    failing_since: Option<String>,
    created_at: String,
}

impl<'a> From<&'a DestinationRecord> for DestinationOut<'a> {
    fn from(record: &'a DestinationRecord) -> Self {
        Self {
            id: record.id.as_str(),
            endpoint: record.endpoint_id.as_str(),
            url: &record.url,
            events: &record.event_types,
            allow_private: record.allow_private,
            state: record.state.as_str(),
            failing_since: record.failing_since.map(crate::time::rfc3339),
            created_at: crate::time::rfc3339(record.created_at),
        }
    }
}

/// What scripts get for an attempt.
#[derive(Serialize)]
struct AttemptOut<'a> {
    delivery: &'a str,
    event: &'a str,
    attempted_at: String,
    status: Option<u16>,
    latency_ms: i64,
    error: Option<&'a str>,
    delivery_state: &'static str,
}

impl<'a> From<&'a AttemptRecord> for AttemptOut<'a> {
    fn from(record: &'a AttemptRecord) -> Self {
        Self {
            delivery: record.delivery_id.as_str(),
            event: &record.event_id,
            attempted_at: crate::time::rfc3339(record.attempted_at),
            status: record.status,
            latency_ms: record.latency_ms,
            error: record.error.as_deref(),
            delivery_state: record.delivery_state.as_str(),
        }
    }
}

/// Runs a destination command.
pub async fn run(args: &StoreArgs, command: DestinationsCommand) -> anyhow::Result<()> {
    match command {
        DestinationsCommand::Add {
            endpoint,
            url,
            events,
            allow_private,
            json,
        } => {
            let spec = DestinationSpec {
                endpoint: EndpointId::from_stored(endpoint),
                url,
                event_types: events,
                allow_private,
            };
            add(args, spec, json).await
        }
        DestinationsCommand::List { endpoint, json } => {
            let (store, workspace) = open_workspace(args).await?;
            let endpoint = EndpointId::from_stored(endpoint);
            let records =
                push::list_destinations(store.as_ref(), &workspace, Some(&endpoint)).await?;
            output::list(
                json,
                &records,
                DestinationOut::from,
                &["ID", "URL", "EVENTS", "STATE", "CREATED"],
                |r| {
                    vec![
                        r.id.to_string(),
                        r.url.clone(),
                        events_text(&r.event_types),
                        r.state.as_str().to_owned(),
                        crate::time::rfc3339(r.created_at),
                    ]
                },
                "no destinations: `agentgate destinations add ENDPOINT --url URL` makes one",
            )
        }
        DestinationsCommand::Remove { id } => {
            let (store, workspace) = open_workspace(args).await?;
            let id = DestinationId::from_stored(id);
            let origin = ChangeOrigin::cli(format!("destinations remove {id}"));
            push::remove_destination(store.as_ref(), &workspace, &id, &origin).await?;
            eprintln!("removed destination {id}");
            Ok(())
        }
        DestinationsCommand::Enable { id } => set_state(args, id, DestinationState::Enabled).await,
        DestinationsCommand::Disable { id } => {
            set_state(args, id, DestinationState::Disabled).await
        }
        DestinationsCommand::Attempts { id, limit, json } => {
            let (store, workspace) = open_workspace(args).await?;
            let id = DestinationId::from_stored(id);
            let records = push::list_attempts(store.as_ref(), &workspace, &id, limit).await?;
            output::list(
                json,
                &records,
                AttemptOut::from,
                &["TIME", "EVENT", "STATUS", "LATENCY", "DELIVERY", "ERROR"],
                |r| {
                    vec![
                        crate::time::rfc3339(r.attempted_at),
                        r.event_id.clone(),
                        r.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                        format!("{} ms", r.latency_ms),
                        r.delivery_state.as_str().to_owned(),
                        r.error.clone().unwrap_or_default(),
                    ]
                },
                "no attempts yet",
            )
        }
    }
}

async fn add(args: &StoreArgs, spec: DestinationSpec, json: bool) -> anyhow::Result<()> {
    let sealer = args.sealer()?;
    let (store, workspace) = open_workspace(args).await?;
    verify_master_key(store.as_ref(), &sealer).await?;
    let origin = ChangeOrigin::cli(format!("destinations add {}", spec.endpoint));
    let created = match push::create_destination(
        store.as_ref(),
        &sealer,
        &workspace,
        spec,
        crate::time::now_millis(),
        &origin,
    )
    .await
    {
        Ok(created) => created,
        Err(push::PushError::Url(refused)) => bail!("refused the URL: {refused}"),
        Err(error) => return Err(error.into()),
    };
    let record = &created.record;
    if json {
        #[derive(Serialize)]
        struct Created<'a> {
            #[serde(flatten)]
            destination: DestinationOut<'a>,
            secret: &'a str,
        }
        return output::json(&Created {
            destination: DestinationOut::from(record),
            secret: &created.secret,
        });
    }
    output::line(format_args!(
        "{} -> {} ({})",
        record.id,
        record.url,
        events_text(&record.event_types)
    ))?;
    output::line(format_args!("signing secret: {}", created.secret.as_str()))?;
    eprintln!("The secret is shown only now. The agent verifies each push with it (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature).");
    Ok(())
}

async fn set_state(args: &StoreArgs, id: String, state: DestinationState) -> anyhow::Result<()> {
    let (store, workspace) = open_workspace(args).await?;
    let id = DestinationId::from_stored(id);
    let verb = match state {
        DestinationState::Enabled => "enable",
        DestinationState::Disabled => "disable",
    };
    let origin = ChangeOrigin::cli(format!("destinations {verb} {id}"));
    push::set_destination_state(
        store.as_ref(),
        &workspace,
        &id,
        state,
        crate::time::now_millis(),
        &origin,
    )
    .await?;
    eprintln!("destination {id} {}", state.as_str());
    Ok(())
}

fn events_text(types: &[String]) -> String {
    if types.is_empty() {
        "all events".to_owned()
    } else {
        types.join(",")
    }
}
