//! `agentgate connections set|list|validation|remove`.

use anyhow::{bail, Context};
use clap::Subcommand;
use serde::Serialize;

use super::terminal::{self, Piped};
use super::{open_workspace, output};
use crate::audit::ChangeOrigin;
use crate::config::StoreArgs;
use crate::connections::stripe::StripeSecret;
use crate::connections::{
    list_connections, remove_connection, set_connection_validation, set_stripe_connection,
};
use crate::crypto::verify_master_key;
use crate::proxy::is_connection_name;
use crate::store::{ConnectionRecord, StoreError};

/// Connection commands.
#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Store or replace the Stripe key of a connection; the key is read from stdin.
    Set {
        /// Connection name agents use in URLs (`stripe`).
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List connections (never the key: its masked form and mode only).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Switch validation of listed operations against the catalog on or off (on by
    /// default); off forwards every request unchecked, for a pinned Stripe API version the
    /// catalog does not describe. Takes effect within a second.
    Validation {
        /// Connection name.
        name: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Remove a connection; agents get 404 for it within a second.
    Remove {
        /// Connection name.
        name: String,
    },
}

/// What scripts get for a connection.
#[derive(Serialize)]
struct ConnectionOut<'a> {
    id: &'a str,
    name: &'a str,
    provider: &'a str,
    key: &'a str,
    mode: &'a str,
    key_type: &'a str,
    validation: bool,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a ConnectionRecord> for ConnectionOut<'a> {
    fn from(record: &'a ConnectionRecord) -> Self {
        Self {
            id: record.id.as_str(),
            name: &record.name,
            provider: &record.provider,
            key: &record.secret_hint,
            mode: &record.mode,
            key_type: &record.key_kind,
            validation: record.validation,
            created_at: crate::time::rfc3339(record.created_at),
            updated_at: crate::time::rfc3339(record.updated_at),
        }
    }
}

/// Runs a connection command.
pub async fn run(args: &StoreArgs, command: ConnectionsCommand) -> anyhow::Result<()> {
    match command {
        ConnectionsCommand::Set { name, json } => set(args, &name, json).await,
        ConnectionsCommand::List { json } => list(args, json).await,
        ConnectionsCommand::Validation { name, state } => {
            let (store, workspace) = open_workspace(args).await?;
            let enabled = state == "on";
            let origin = ChangeOrigin::cli(format!("connections validation {name} {state}"));
            match set_connection_validation(store.as_ref(), &workspace, &name, enabled, &origin)
                .await
            {
                Err(StoreError::NotFound) => bail!("no connection named {name:?}"),
                other => other?,
            }
            eprintln!("validation {state} for connection {name}");
            Ok(())
        }
        ConnectionsCommand::Remove { name } => {
            let (store, workspace) = open_workspace(args).await?;
            let origin = ChangeOrigin::cli(format!("connections remove {name}"));
            match remove_connection(store.as_ref(), &workspace, &name, &origin).await {
                Err(StoreError::NotFound) => bail!("no connection named {name:?}"),
                other => other?,
            }
            eprintln!("removed connection {name}");
            Ok(())
        }
    }
}

async fn set(args: &StoreArgs, name: &str, json: bool) -> anyhow::Result<()> {
    if !is_connection_name(name) {
        bail!("a connection name is 1 to 64 letters, digits, '-' or '_'");
    }
    let secret = StripeSecret::parse(
        &terminal::read_secret(
            "Paste the Stripe secret key (sk_... or rk_...) and press Enter: ",
            Piped::All,
        )
        .await?,
    )
    .context("refused the key")?;
    let sealer = args.sealer()?;
    let (store, workspace) = open_workspace(args).await?;
    verify_master_key(store.as_ref(), &sealer).await?;
    let origin = ChangeOrigin::cli(format!("connections set {name}"));
    let record =
        set_stripe_connection(store.as_ref(), &sealer, &workspace, name, &secret, &origin).await?;
    if json {
        return output::json(&ConnectionOut::from(&record));
    }
    output::line(format_args!(
        "{}: {} ({} mode, {} key)",
        record.name, record.secret_hint, record.mode, record.key_kind
    ))?;
    Ok(())
}

async fn list(args: &StoreArgs, json: bool) -> anyhow::Result<()> {
    let (store, workspace) = open_workspace(args).await?;
    let records = list_connections(store.as_ref(), &workspace).await?;
    output::list(
        json,
        &records,
        ConnectionOut::from,
        &["NAME", "KEY", "MODE", "TYPE", "VALIDATION", "UPDATED"],
        |r| {
            vec![
                r.name.clone(),
                r.secret_hint.clone(),
                r.mode.clone(),
                r.key_kind.clone(),
                if r.validation { "on" } else { "off" }.to_owned(),
                crate::time::rfc3339(r.updated_at),
            ]
        },
        "no connections yet: `agentgate connections set stripe` reads a Stripe key from stdin",
    )
}
