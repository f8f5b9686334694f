//! `agentgate webhooks create|set-secret|register|list|remove`: the endpoints Stripe posts
//! events to. Signing secrets are read from stdin (or fetched from Stripe by `register`),
//! sealed, and never printed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use serde::Serialize;
use zeroize::Zeroizing;

use super::terminal::{self, Piped};
use super::{open_workspace, output};
use crate::audit::{Change, ChangeOrigin};
use crate::config::{PublicUrlArgs, StoreArgs};
use crate::crypto::{verify_master_key, Sealer};
use crate::proxy::client::{StripeBase, Upstream, UpstreamConfig};
use crate::store::WebhookEndpointRecord;
use crate::webhooks::endpoints::{self, SigningSecret, WebhookError};

/// Where ingest URLs point: `--public-url`, or the address `serve` listens on.
#[derive(Debug, clap::Args)]
pub struct UrlArgs {
    /// Public base URL of the gateway.
    #[command(flatten)]
    public_url: PublicUrlArgs,
    /// The address `serve` listens on (the default base of ingest URLs).
    #[arg(long, env = "AGENTGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

impl UrlArgs {
    fn base(&self) -> anyhow::Result<String> {
        self.public_url.base(self.listen)
    }
}

/// Webhook endpoint commands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Mint an endpoint; prints its id and the ingest URL to register in Stripe.
    Create {
        /// The connection whose Stripe account sends the events.
        #[arg(long, default_value = "stripe")]
        connection: String,
        /// Event types to keep, comma-separated (default: all). Others are acknowledged
        /// to Stripe and dropped.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Ingest URL base.
        #[command(flatten)]
        url: UrlArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add the endpoint's Stripe signing secret (`whsec_...`), read from stdin. Earlier
    /// secrets stay active (a roll) unless `--expire-others-in` ends them.
    SetSecret {
        /// The endpoint id (`whe_...`).
        id: String,
        /// Stop the endpoint's other secrets after this long (`0s`: at once, `24h`).
        #[arg(long, value_parser = humantime::parse_duration)]
        expire_others_in: Option<Duration>,
    },
    /// Create the endpoint in Stripe through its connection and store the signing secret
    /// Stripe returns.
    Register {
        /// The endpoint id (`whe_...`).
        id: String,
        /// Ingest URL base (must be reachable by Stripe).
        #[command(flatten)]
        url: UrlArgs,
        /// Stripe's API base URL.
        #[arg(
            long,
            env = "AGENTGATE_STRIPE_API_BASE",
            default_value = "https://api.stripe.com"
        )]
        stripe_api_base: StripeBase,
    },
    /// List the workspace's endpoints.
    List {
        /// Ingest URL base.
        #[command(flatten)]
        url: UrlArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint and its secrets (its events stay until retention prunes them).
    Remove {
        /// The endpoint id (`whe_...`).
        id: String,
    },
}

/// An endpoint as the CLI prints it.
#[derive(Serialize)]
struct EndpointOut {
    id: String,
    url: String,
    connection: String,
    events: Vec<String>,
    stripe_endpoint_id: Option<String>,
    created: String,
}

impl EndpointOut {
    fn new(record: &WebhookEndpointRecord, base: &str) -> Self {
        Self {
            id: record.id.to_string(),
            url: endpoints::ingest_url(base, &record.id),
            connection: record.connection.clone(),
            events: record.event_types.clone(),
            stripe_endpoint_id: record.stripe_endpoint_id.clone(),
            created: crate::time::rfc3339(record.created_at),
        }
    }
}

/// Runs a webhooks command.
pub async fn run(args: &StoreArgs, command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Create {
            connection,
            events,
            url,
            json,
        } => {
            let base = url.base()?;
            let (store, workspace) = open_workspace(args).await?;
            let origin = ChangeOrigin::cli(format!("webhooks create {connection}"));
            let record = endpoints::create_endpoint(
                store.as_ref(),
                &workspace,
                &connection,
                &events,
                &origin,
            )
            .await
            .map_err(explain)?;
            let out = EndpointOut::new(&record, &base);
            if json {
                return output::json(&out);
            }
            output::line(format_args!("{}\n{}", out.id, out.url))?;
            eprintln!("next: register that URL in Stripe and `agentgate webhooks set-secret {}` (whsec_... on stdin), or `agentgate webhooks register {}`", out.id, out.id);
            Ok(())
        }
        WebhooksCommand::SetSecret {
            id,
            expire_others_in,
        } => {
            let secret = SigningSecret::parse(&read_secret().await?).map_err(explain)?;
            let sealer = open_sealer(args)?;
            let (store, workspace) = open_workspace(args).await?;
            verify_master_key(store.as_ref(), &sealer).await?;
            let record = endpoints::find_endpoint(store.as_ref(), &workspace, &id)
                .await
                .map_err(explain)?;
            let origin = ChangeOrigin::cli(format!("webhooks set-secret {id}"));
            let secret_id = endpoints::add_secret(
                store.as_ref(),
                &sealer,
                &record,
                &secret,
                expire_others_in,
                &origin,
            )
            .await
            .map_err(explain)?;
            eprintln!("added signing secret {secret_id} to {id}");
            Ok(())
        }
        WebhooksCommand::Register {
            id,
            url,
            stripe_api_base,
        } => {
            let base = url.base()?;
            let sealer = Arc::new(open_sealer(args)?);
            let (store, workspace) = open_workspace(args).await?;
            verify_master_key(store.as_ref(), &sealer).await?;
            let record = endpoints::find_endpoint(store.as_ref(), &workspace, &id)
                .await
                .map_err(explain)?;
            let upstream = Upstream::new(UpstreamConfig {
                base: stripe_api_base,
                connect_timeout: Duration::from_secs(10),
                timeout: Duration::from_secs(30),
                max_body_bytes: 1024 * 1024,
            });
            let origin = ChangeOrigin::cli(format!("webhooks register {id}"));
            let stripe_id = endpoints::register(store, sealer, &upstream, &record, &base, &origin)
                .await
                .map_err(explain)?;
            output::line(format_args!("{stripe_id}"))?;
            eprintln!(
                "registered {} in Stripe as {stripe_id}; its signing secret is stored",
                endpoints::ingest_url(&base, &record.id)
            );
            Ok(())
        }
        WebhooksCommand::List { url, json } => {
            let base = url.base()?;
            let (store, workspace) = open_workspace(args).await?;
            let records = store.list_webhook_endpoints(&workspace).await?;
            output::list(
                json,
                &records,
                |r| EndpointOut::new(r, &base),
                &["ID", "CONNECTION", "EVENTS", "STRIPE", "URL"],
                |r| {
                    vec![
                        r.id.to_string(),
                        r.connection.clone(),
                        if r.event_types.is_empty() {
                            "*".to_owned()
                        } else {
                            r.event_types.join(",")
                        },
                        r.stripe_endpoint_id.clone().unwrap_or_else(|| "-".into()),
                        endpoints::ingest_url(&base, &r.id),
                    ]
                },
                "no webhook endpoints yet: `agentgate webhooks create --connection stripe`",
            )
        }
        WebhooksCommand::Remove { id } => {
            let (store, workspace) = open_workspace(args).await?;
            let record = endpoints::find_endpoint(store.as_ref(), &workspace, &id)
                .await
                .map_err(explain)?;
            let origin = ChangeOrigin::cli(format!("webhooks remove {id}"));
            let audit = origin.record(&workspace, Change::EndpointDeleted, &record.connection);
            store
                .delete_webhook_endpoint(&workspace, &record.id, &audit)
                .await?;
            eprintln!("removed webhook endpoint {id}");
            Ok(())
        }
    }
}

fn open_sealer(args: &StoreArgs) -> anyhow::Result<Sealer> {
    args.sealer()
}

fn explain(error: WebhookError) -> anyhow::Error {
    match error {
        WebhookError::NotFound => anyhow::anyhow!("no such webhook endpoint in this workspace"),
        other => anyhow::Error::new(other),
    }
}

/// Reads the signing secret from stdin: typed at a terminal (prompted on stderr, not
/// shown), or everything piped in.
async fn read_secret() -> anyhow::Result<Zeroizing<String>> {
    let text = terminal::read_secret(
        "Paste the endpoint's signing secret (whsec_...) and press Enter: ",
        Piped::All,
    )
    .await?;
    if text.trim().is_empty() {
        bail!("no signing secret on stdin");
    }
    Ok(text)
}
