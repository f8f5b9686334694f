//! `agentgate keys create|list|revoke`.

use anyhow::bail;
use clap::Subcommand;
use serde::Serialize;

use super::{open_workspace, output};
use crate::config::StoreArgs;
use crate::ids::KeyId;
use crate::keys::{create_key, list_keys, revoke_key};
use crate::store::{AgentKeyRecord, StoreError};

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the key alone on stdout (shown once), details on stderr.
    Create {
        /// A name that says who holds the key.
        #[arg(long)]
        name: String,
        /// Print `{"id", "key", ...}` as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the key itself).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; running servers refuse it within a second.
    Revoke {
        /// The key's id (`key_...`).
        id: String,
    },
}

/// What scripts get for a key.
#[derive(Serialize)]
struct KeyOut<'a> {
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl<'a> From<&'a AgentKeyRecord> for KeyOut<'a> {
    fn from(record: &'a AgentKeyRecord) -> Self {
        Self {
            id: record.id.as_str(),
            name: &record.name,
            prefix: &record.prefix,
            created_at: crate::time::rfc3339(record.created_at),
            last_used_at: record.last_used_at.map(crate::time::rfc3339),
            revoked_at: record.revoked_at.map(crate::time::rfc3339),
        }
    }
}

/// Runs a key command.
pub async fn run(args: &StoreArgs, command: KeysCommand) -> anyhow::Result<()> {
    let (store, workspace) = open_workspace(args).await?;
    match command {
        KeysCommand::Create { name, json } => {
            let created = create_key(store.as_ref(), &workspace, &name).await?;
            if json {
                #[derive(Serialize)]
                struct Created<'a> {
                    key: &'a str,
                    #[serde(flatten)]
                    details: KeyOut<'a>,
                }
                return output::json(&Created {
                    key: &created.key,
                    details: KeyOut::from(&created.record),
                });
            }
            eprintln!(
                "created key {} ({}); it is shown once, store it now",
                created.record.id, created.record.name
            );
            println!("{}", created.key.as_str());
            Ok(())
        }
        KeysCommand::List { json } => {
            let records = list_keys(store.as_ref(), &workspace).await?;
            output::list(
                json,
                &records,
                KeyOut::from,
                &["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "STATUS"],
                |r| {
                    let status = if r.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    vec![
                        r.id.to_string(),
                        r.name.clone(),
                        format!("{}…", r.prefix),
                        crate::time::rfc3339(r.created_at),
                        output::time_or(r.last_used_at, "never"),
                        status.to_owned(),
                    ]
                },
                "no keys yet: `agentgate keys create --name NAME` makes one",
            )
        }
        KeysCommand::Revoke { id } => {
            match revoke_key(store.as_ref(), &workspace, &KeyId::from_stored(id.clone())).await {
                Err(StoreError::NotFound) => bail!("no key with id {id:?}"),
                other => other?,
            }
            eprintln!("revoked key {id}");
            Ok(())
        }
    }
}
