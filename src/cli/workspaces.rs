//! `agentgate workspaces create|list`.

use clap::Subcommand;
use serde::Serialize;

use super::output;
use crate::config::StoreArgs;
use crate::installation_audit::InstallationOrigin;
use crate::store::{self, Workspace};

/// Workspace commands.
#[derive(Debug, Subcommand)]
pub enum WorkspacesCommand {
    /// Create a workspace: its own connections, keys, webhooks and logs.
    Create {
        /// A short name (letters, digits, `-`, `_`).
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List workspaces.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct WorkspaceOut<'a> {
    id: &'a str,
    name: &'a str,
    created_at: String,
}

impl<'a> From<&'a Workspace> for WorkspaceOut<'a> {
    fn from(workspace: &'a Workspace) -> Self {
        Self {
            id: workspace.id.as_str(),
            name: &workspace.name,
            created_at: crate::time::rfc3339(workspace.created_at),
        }
    }
}

/// Runs a workspace command.
pub async fn run(args: &StoreArgs, command: WorkspacesCommand) -> anyhow::Result<()> {
    let store = store::open(&args.database).await?;
    match command {
        WorkspacesCommand::Create { name, json } => {
            let workspace =
                store::create_workspace(store.as_ref(), &name, &InstallationOrigin::cli()).await?;
            if json {
                return output::json(&WorkspaceOut::from(&workspace));
            }
            output::line(format_args!("{} {}", workspace.id, workspace.name))?;
            Ok(())
        }
        WorkspacesCommand::List { json } => {
            let workspaces = store.list_workspaces().await?;
            output::list(
                json,
                &workspaces,
                WorkspaceOut::from,
                &["ID", "NAME", "CREATED"],
                |w| {
                    vec![
                        w.id.to_string(),
                        w.name.clone(),
                        crate::time::rfc3339(w.created_at),
                    ]
                },
                "no workspaces",
            )
        }
    }
}
