//! `agentgate logs list|tail`: the request log, oldest first.

use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;

use super::{open_workspace, output};
use crate::config::StoreArgs;
use crate::ids::KeyId;
use crate::store::{LogQuery, RequestLogEntry, RequestLogRecord};

/// How often `logs tail` asks for new entries.
const TAIL_INTERVAL: Duration = Duration::from_millis(500);

/// Request log commands.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Show the most recent requests.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only the entries of this key id, or of the CLI (`cli`) or a dashboard operator
        /// (`operator:NAME`) for management changes.
        #[arg(long)]
        key: Option<String>,
        /// Only the entries of this operation (`customers.create`, `cli.keys.revoke`).
        #[arg(long)]
        operation: Option<String>,
        /// Only the entries with this Stripe request id (`req_...`): a forwarded call's,
        /// and the webhook deliveries of the events it caused.
        #[arg(long)]
        stripe_request_id: Option<String>,
        /// Only the entries written by this instance (its `--instance` name).
        #[arg(long)]
        instance: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show recent requests, then follow new ones until interrupted.
    Tail {
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// What scripts get for a request.
#[derive(Serialize)]
struct LogOut<'a> {
    id: i64,
    time: String,
    request_id: &'a str,
    key_id: &'a str,
    connection: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    stripe_request_id: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    outcome: &'a str,
    operation: Option<&'a str>,
    reason: Option<&'a str>,
    via: &'a str,
    client: Option<String>,
    instance: Option<&'a str>,
}

impl<'a> From<&'a RequestLogRecord> for LogOut<'a> {
    fn from(record: &'a RequestLogRecord) -> Self {
        let e = &record.entry;
        Self {
            id: record.id,
            time: crate::time::rfc3339(e.created_at),
            request_id: &e.request_id,
            key_id: e.key_id.as_str(),
            connection: &e.connection,
            method: &e.method,
            path: &e.path,
            status: e.status,
            latency_ms: e.latency_us as f64 / 1000.0,
            stripe_request_id: e.stripe_request_id.as_deref(),
            idempotency_key: e.idempotency_key.as_deref(),
            outcome: &e.outcome,
            operation: e.operation.as_deref(),
            reason: e.reason.as_deref(),
            via: &e.via,
            client: e.client.map(|ip| ip.to_string()),
            instance: record.instance.as_deref(),
        }
    }
}

fn row(record: &RequestLogRecord) -> Vec<String> {
    let e = &record.entry;
    vec![
        crate::time::rfc3339(e.created_at),
        e.key_id.to_string(),
        e.method.to_string(),
        // A forwarded request's path is the connection's; a management change's is its own
        // route or CLI command, and a webhook delivery's or event read's is agentgate's route.
        match &*e.via {
            "http" | "mcp" if !is_event_route(e) => format!("{}{}", e.connection, e.path),
            _ => e.path.clone(),
        },
        e.status.to_string(),
        format!("{:.1}", e.latency_us as f64 / 1000.0),
        e.outcome.to_string(),
        e.operation.clone().unwrap_or_else(|| "-".into()),
        e.stripe_request_id.clone().unwrap_or_else(|| "-".into()),
        e.request_id.clone(),
        record.instance.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// Whether the entry is an agent's read of webhook events (`webhooks.events.*`), whose path
/// is agentgate's own route rather than a Stripe path under the connection.
fn is_event_route(e: &RequestLogEntry) -> bool {
    e.operation
        .as_deref()
        .is_some_and(|operation| operation.starts_with("webhooks."))
}

const HEADERS: [&str; 11] = [
    "TIME",
    "KEY",
    "METHOD",
    "PATH",
    "STATUS",
    "MS",
    "OUTCOME",
    "OPERATION",
    "STRIPE REQUEST",
    "REQUEST",
    "INSTANCE",
];

/// Runs a logs command.
pub async fn run(args: &StoreArgs, command: LogsCommand) -> anyhow::Result<()> {
    let (store, workspace) = open_workspace(args).await?;
    match command {
        LogsCommand::List {
            limit,
            key,
            operation,
            stripe_request_id,
            instance,
            json,
        } => {
            let query = LogQuery {
                after_id: None,
                limit: i64::from(limit.clamp(1, 10_000)),
                key_id: key.map(KeyId::from_stored),
                operation,
                stripe_request_id,
                instance,
                ..LogQuery::default()
            };
            let records = store.list_request_logs(&workspace, query).await?;
            output::list(
                json,
                &records,
                LogOut::from,
                &HEADERS,
                row,
                "no requests logged yet",
            )
        }
        LogsCommand::Tail { json } => {
            let mut query = LogQuery {
                after_id: None,
                limit: 10,
                ..LogQuery::default()
            };
            loop {
                let records = store.list_request_logs(&workspace, query.clone()).await?;
                for record in &records {
                    if json {
                        output::json(&LogOut::from(record))?;
                    } else {
                        output::line(row(record).join("  "))?;
                    }
                }
                let last = records.last().map(|r| r.id).or(query.after_id).unwrap_or(0);
                query = LogQuery {
                    after_id: Some(last),
                    limit: 1_000,
                    ..LogQuery::default()
                };
                tokio::select! {
                    _ = tokio::time::sleep(TAIL_INTERVAL) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
    }
}
