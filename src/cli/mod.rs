//! The command line: `agentgate serve` and `agentgate <noun> <verb>` for everything an
//! operator manages. Secrets are read from stdin, never from arguments. Every list and
//! create command takes `--json` for scripts.

mod audit;
mod catalog;
mod connections;
mod destinations;
mod events;
mod keys;
mod logs;
mod master_key;
mod mcp;
mod operators;
mod output;
mod replay;
mod terminal;
mod webhooks;
mod workspaces;

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::{self, App, Listeners};
use crate::config::{Config, ServeArgs, StoreArgs};
use crate::ids::WorkspaceId;
use crate::store::{self, Store, DEFAULT_WORKSPACE};
use crate::telemetry::LogFormat;

/// agentgate: the gateway between AI agents and Stripe.
#[derive(Debug, Parser)]
#[command(name = "agentgate", version, about, long_about = None)]
pub struct Cli {
    /// Where state lives.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Log filter in tracing's syntax (default: `info` for serve, `warn` for other commands).
    #[arg(long, env = "AGENTGATE_LOG", global = true)]
    pub log: Option<String>,
    /// Log line format.
    #[arg(
        long,
        env = "AGENTGATE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(Box<ServeArgs>),
    /// Manage connections (stored Stripe keys).
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// Manage agentgate keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Read the request log.
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// Read the webhook events endpoints received.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Push a webhook endpoint's events to agents' URLs (destinations).
    #[command(subcommand)]
    Destinations(destinations::DestinationsCommand),
    /// Manage webhook endpoints (where Stripe sends events) and their signing secrets.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Manage dashboard operators (people who sign in); passwords are read from stdin.
    #[command(subcommand)]
    Operators(operators::OperatorsCommand),
    /// Manage workspaces (tenants).
    #[command(subcommand)]
    Workspaces(workspaces::WorkspacesCommand),
    /// Read the installation's audit: workspaces created, operators, sign-ins, master-key
    /// rotations (a workspace's changes are in `logs list`).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Rotate the master key that seals stored secrets.
    #[command(subcommand, name = "master-key")]
    MasterKey(master_key::MasterKeyCommand),
    /// Build and inspect operation catalogs (no database needed).
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Serve MCP on stdin/stdout, relaying to a remote agentgate (key from AGENTGATE_KEY).
    Mcp(mcp::McpArgs),
}

impl Cli {
    /// The log filter to install.
    pub fn log_filter(&self) -> &str {
        match (&self.log, &self.command) {
            (Some(filter), _) => filter,
            (None, Command::Serve(_)) => "info",
            (None, _) => "warn",
        }
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(serve) => run_serve(&cli.store, &serve).await,
        Command::Connections(command) => connections::run(&cli.store, command).await,
        Command::Keys(command) => keys::run(&cli.store, command).await,
        Command::Logs(command) => logs::run(&cli.store, command).await,
        Command::Events(command) => events::run(&cli.store, command).await,
        Command::Destinations(command) => destinations::run(&cli.store, command).await,
        Command::Webhooks(command) => webhooks::run(&cli.store, command).await,
        Command::Workspaces(command) => workspaces::run(&cli.store, command).await,
        Command::Operators(command) => operators::run(&cli.store, command).await,
        Command::Audit(command) => audit::run(&cli.store, command).await,
        Command::MasterKey(command) => master_key::run(&cli.store, command).await,
        Command::Catalog(command) => catalog::run(command),
        Command::Mcp(args) => mcp::run(args).await,
    }
}

async fn run_serve(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<()> {
    app::connection_cap::raise_file_limit();
    let config = Config::from_args(store, serve)?;
    let listeners = Listeners::bind(&config).await?;
    let public_url = config.public_url.clone();
    let app = App::build(config).await?;
    if let Some(link) =
        crate::operators::issue_setup_link(app.store().as_ref(), &public_url).await?
    {
        eprintln!("agentgate: no operator can sign in yet; open this link within an hour to create one (it works once): {link}");
    }
    tracing::info!(listen = %listeners.main_addr(), "agentgate listening");
    for (connection, listener) in &listeners.sdk {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%connection, listen = %addr, "SDK listener");
        }
    }
    app.serve(listeners, app::shutdown_signal()).await
}

/// Opens the store and resolves the workspace a command acts on (`--workspace`); only
/// `default` is created on demand, so a misspelt name is an error, not a new tenant.
async fn open_workspace(args: &StoreArgs) -> anyhow::Result<(Arc<dyn Store>, WorkspaceId)> {
    let store = store::open(&args.database).await?;
    let workspace = if args.workspace == DEFAULT_WORKSPACE {
        store.ensure_workspace(DEFAULT_WORKSPACE).await?
    } else {
        store
            .find_workspace(&args.workspace)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no workspace named {:?}: `agentgate workspaces create {}` makes it",
                    args.workspace,
                    args.workspace
                )
            })?
    };
    Ok((store, workspace.id))
}
