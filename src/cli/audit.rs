//! `agentgate audit list`: the installation's own audit (workspaces created, operators and
//! their passwords, dashboard sign-ins, master-key rotations), oldest first. A workspace's
//! changes are in its request log (`agentgate logs list`).

use clap::Subcommand;
use serde::Serialize;

use super::output;
use crate::config::StoreArgs;
use crate::store::{self, InstallationAuditEntry};

/// Installation audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the most recent records.
    List {
        /// How many (at most 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Only records older than this id (to page back).
        #[arg(long)]
        before: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What scripts get for a record.
#[derive(Serialize)]
struct RecordOut<'a> {
    id: i64,
    time: String,
    request_id: &'a str,
    instance: Option<&'a str>,
    via: &'a str,
    actor: &'a str,
    action: &'a str,
    subject: Option<&'a str>,
    outcome: &'a str,
    detail: Option<&'a str>,
    client: Option<&'a str>,
}

impl<'a> From<&'a InstallationAuditEntry> for RecordOut<'a> {
    fn from(entry: &'a InstallationAuditEntry) -> Self {
        Self {
            id: entry.id,
            time: crate::time::rfc3339(entry.created_at),
            request_id: &entry.request_id,
            instance: entry.instance.as_deref(),
            via: &entry.via,
            actor: &entry.actor,
            action: &entry.action,
            subject: entry.subject.as_deref(),
            outcome: &entry.outcome,
            detail: entry.detail.as_deref(),
            client: entry.client.as_deref(),
        }
    }
}

/// Runs an audit command.
pub async fn run(args: &StoreArgs, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        limit,
        before,
        json,
    } = command;
    let store = store::open(&args.database).await?;
    let mut records = store
        .list_installation_audit(before, i64::from(limit))
        .await?;
    records.reverse();
    output::list(
        json,
        &records,
        RecordOut::from,
        &[
            "ID", "TIME", "ACTOR", "ACTION", "SUBJECT", "OUTCOME", "DETAIL", "CLIENT",
        ],
        |r| {
            vec![
                r.id.to_string(),
                crate::time::rfc3339(r.created_at),
                r.actor.clone(),
                r.action.clone(),
                r.subject.clone().unwrap_or_else(|| "-".into()),
                r.outcome.clone(),
                r.detail.clone().unwrap_or_else(|| "-".into()),
                r.client.clone().unwrap_or_else(|| "-".into()),
            ]
        },
        "no records",
    )
}
