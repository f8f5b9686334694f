//! `agentgate keys create|list|rotate|revoke|identify|usage`.

use anyhow::bail;
use clap::Subcommand;
use ipnet::IpNet;
use serde::Serialize;

use super::terminal::{self, Piped};
use super::{open_workspace, output};
use crate::audit::ChangeOrigin;
use crate::catalog::Catalog;
use crate::config::StoreArgs;
use crate::ids::KeyId;
use crate::keys::{create_key, format, list_keys, revoke_key, rotate_key, CreatedKey, KeySpec};
use crate::policy::guardrails::{daily_usage, parse_day, utc_day};
use crate::policy::{IdempotencyMode, Money, Rate, Role, Scopes};
use crate::store::{AgentKeyRecord, Store, StoreError};

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the key alone on stdout (shown once), details on stderr.
    Create {
        /// A name that says who holds the key.
        #[arg(long)]
        name: String,
        /// The key's scopes and role.
        #[command(flatten)]
        scopes: ScopeArgs,
        /// Print `{"id", "key", ...}` as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Rotate a key: a new key with the same name, role and scopes; the old one keeps
    /// working until `--old-expires` (default: now).
    Rotate {
        /// The key's id (`key_...`).
        id: String,
        /// When the old key stops working (RFC 3339), to give agents time to switch.
        #[arg(long)]
        old_expires: Option<String>,
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
    /// Tell which key an agentgate key is, read from stdin (never argv): its workspace, id,
    /// name and status. For a key found where it should not be (a log, a repository): only
    /// its hash is looked up, in every workspace, and nothing is recorded.
    Identify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show each key's money moved on a UTC day (payment intents and refunds) per
    /// currency, with its daily limit.
    Usage {
        /// The UTC day, `YYYY-MM-DD` (default: today).
        #[arg(long, value_parser = parse_day)]
        day: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The scope flags of `keys create`; the management API and dashboard use the same words.
#[derive(Debug, clap::Args)]
pub struct ScopeArgs {
    /// `agent` calls connections; `admin` manages the workspace through /api/v1.
    #[arg(long, value_enum, default_value = "agent")]
    role: Role,
    /// A connection the key may use (repeatable; default: all).
    #[arg(long = "connection", value_name = "NAME")]
    connections: Vec<String>,
    /// An operation the key may call, by catalog id or pattern: `customers.*`, `*.list`
    /// (repeatable; default: all). Unlisted paths then need --raw.
    #[arg(long = "allow", value_name = "PATTERN")]
    allow: Vec<String>,
    /// Allow unlisted Stripe paths although --allow narrows the operations.
    #[arg(long)]
    raw: bool,
    /// Only GET requests.
    #[arg(long)]
    read_only: bool,
    /// Only connections holding a test-mode Stripe key.
    #[arg(long)]
    test_only: bool,
    /// A Connect account the key may act as, via `Stripe-Account` (repeatable).
    #[arg(long = "stripe-account", value_name = "ACCT")]
    stripe_accounts: Vec<String>,
    /// A client address range the key may be used from (repeatable): `10.0.0.0/8`.
    #[arg(long = "ip", value_name = "CIDR")]
    ips: Vec<IpNet>,
    /// When the key stops working (RFC 3339).
    #[arg(long)]
    expires: Option<String>,
    /// Largest amount per request, in the currency's minor unit: `usd:5000` (repeatable).
    #[arg(long = "max-amount", value_name = "CUR:AMOUNT")]
    max_amount: Vec<Money>,
    /// Largest total per UTC day of payment intents and refunds: `usd:100000` (repeatable).
    #[arg(long = "daily-limit", value_name = "CUR:AMOUNT")]
    daily_limit: Vec<Money>,
    /// POST requests without an Idempotency-Key: forwarded (off), refused (require), or
    /// given a derived key (derive).
    #[arg(long, value_enum, default_value = "off")]
    idempotency: IdempotencyMode,
    /// Requests per second, with an optional burst: `5` or `5:20`.
    #[arg(long, value_name = "RPS[:BURST]")]
    rate: Option<Rate>,
}

impl ScopeArgs {
    /// The key to create, checked against the built-in catalog.
    fn into_spec(self, name: String) -> anyhow::Result<KeySpec> {
        let scopes = Scopes {
            connections: self.connections,
            allow: self.allow,
            raw: self.raw,
            read_only: self.read_only,
            test_only: self.test_only,
            stripe_accounts: self.stripe_accounts,
            ips: self.ips,
            max_amount: self.max_amount,
            daily_limit: self.daily_limit,
            idempotency: self.idempotency,
            rate: self.rate,
        };
        scopes
            .check_patterns(&Catalog::embedded())
            .map_err(anyhow::Error::msg)?;
        let expires_at = self.expires.as_deref().map(parse_time).transpose()?;
        Ok(KeySpec {
            name,
            role: self.role,
            scopes,
            expires_at,
        })
    }
}

/// Unix milliseconds of an RFC 3339 time.
fn parse_time(text: &str) -> anyhow::Result<i64> {
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|e| anyhow::anyhow!("{text:?} is not an RFC 3339 time: {e}"))?;
    let millis = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("{text:?} is before 1970"))?
        .as_millis();
    Ok(i64::try_from(millis)?)
}

/// What scripts get for a key.
#[derive(Serialize)]
struct KeyOut<'a> {
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    role: &'static str,
    scopes: &'a Scopes,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

impl<'a> From<&'a AgentKeyRecord> for KeyOut<'a> {
    fn from(record: &'a AgentKeyRecord) -> Self {
        Self {
            id: record.id.as_str(),
            name: &record.name,
            prefix: &record.prefix,
            role: record.role.as_str(),
            scopes: &record.scopes,
            created_at: crate::time::rfc3339(record.created_at),
            last_used_at: record.last_used_at.map(crate::time::rfc3339),
            expires_at: record.expires_at.map(crate::time::rfc3339),
            revoked_at: record.revoked_at.map(crate::time::rfc3339),
        }
    }
}

/// Runs a key command.
pub async fn run(args: &StoreArgs, command: KeysCommand) -> anyhow::Result<()> {
    let (store, workspace) = open_workspace(args).await?;
    match command {
        KeysCommand::Create { name, scopes, json } => {
            let origin = ChangeOrigin::cli(format!("keys create {name}"));
            let spec = scopes.into_spec(name)?;
            let created = create_key(store.as_ref(), &workspace, spec, &origin).await?;
            print_created(&created, json)
        }
        KeysCommand::Rotate {
            id,
            old_expires,
            json,
        } => {
            let at = match old_expires.as_deref() {
                Some(text) => parse_time(text)?,
                None => crate::time::now_millis(),
            };
            let key_id = KeyId::from_stored(id.clone());
            let origin = ChangeOrigin::cli(format!("keys rotate {id}"));
            let created = match rotate_key(store.as_ref(), &workspace, &key_id, at, &origin).await {
                Err(StoreError::NotFound) => bail!("no active key with id {id:?}"),
                other => other?,
            };
            eprintln!("key {id} stops working at {}", crate::time::rfc3339(at));
            print_created(&created, json)
        }
        KeysCommand::List { json } => {
            let records = list_keys(store.as_ref(), &workspace).await?;
            output::list(
                json,
                &records,
                KeyOut::from,
                &[
                    "ID",
                    "NAME",
                    "ROLE",
                    "PREFIX",
                    "SCOPES",
                    "LAST USED",
                    "STATUS",
                ],
                |r| {
                    let status = status(r, crate::time::now_millis());
                    vec![
                        r.id.to_string(),
                        r.name.clone(),
                        r.role.as_str().to_owned(),
                        format!("{}…", r.prefix),
                        r.scopes.summary(),
                        output::time_or(r.last_used_at, "never"),
                        status,
                    ]
                },
                "no keys yet: `agentgate keys create --name NAME` makes one",
            )
        }
        KeysCommand::Revoke { id } => {
            let origin = ChangeOrigin::cli(format!("keys revoke {id}"));
            let key_id = KeyId::from_stored(id.clone());
            match revoke_key(store.as_ref(), &workspace, &key_id, &origin).await {
                Err(StoreError::NotFound) => bail!("no key with id {id:?}"),
                other => other?,
            }
            eprintln!("revoked key {id}");
            Ok(())
        }
        KeysCommand::Identify { json } => identify(store.as_ref(), json).await,
        KeysCommand::Usage { day, json } => {
            let day = day.unwrap_or_else(|| utc_day(crate::time::now_millis()));
            let usage = daily_usage(store.as_ref(), &workspace, &day).await?;
            output::list(
                json,
                &usage,
                |u| u,
                &["ID", "NAME", "CURRENCY", "TOTAL", "LIMIT"],
                |u| {
                    vec![
                        u.key_id.to_string(),
                        u.name.clone(),
                        u.currency.clone(),
                        u.total.to_string(),
                        u.limit.map_or_else(|| "none".to_owned(), |l| l.to_string()),
                    ]
                },
                &format!("no key moved money on {day} and none has a daily limit"),
            )
        }
    }
}

/// Whether the key works at `now`, in words: `active`, `revoked`, `expired` or
/// `expires TIME`.
fn status(record: &AgentKeyRecord, now: i64) -> String {
    if record.revoked_at.is_some() {
        "revoked".to_owned()
    } else if record.expires_at.is_some_and(|at| at <= now) {
        "expired".to_owned()
    } else if let Some(at) = record.expires_at {
        format!("expires {}", crate::time::rfc3339(at))
    } else {
        "active".to_owned()
    }
}

/// `keys identify`: the key read from stdin, found by its hash in whatever workspace holds
/// it. A key that is malformed or fails its checksum is no key of any installation, and one
/// whose hash is unknown was never made here (or its row is gone).
async fn identify(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let text =
        terminal::read_secret("Paste the agentgate key and press Enter: ", Piped::All).await?;
    let hash = match format::parse(text.trim()) {
        Ok(hash) => hash,
        Err(format::KeyFormatError::Malformed) => {
            bail!("that is not an agentgate key: wrong prefix, length or characters")
        }
        Err(format::KeyFormatError::BadChecksum) => {
            bail!("that is not an agentgate key: its checksum does not match (a typo?)")
        }
    };
    drop(text);
    let Some(record) = store.find_key_by_hash(&hash).await? else {
        bail!("no key of this installation has that text (never made here, or deleted)");
    };
    let workspace = store
        .list_workspaces()
        .await?
        .into_iter()
        .find(|w| w.id == record.workspace_id)
        .map_or_else(|| record.workspace_id.to_string(), |w| w.name);
    let status = status(&record, crate::time::now_millis());
    if json {
        #[derive(Serialize)]
        struct Identified<'a> {
            workspace: &'a str,
            status: &'a str,
            #[serde(flatten)]
            details: KeyOut<'a>,
        }
        return output::json(&Identified {
            workspace: &workspace,
            status: &status,
            details: KeyOut::from(&record),
        });
    }
    output::line(format_args!(
        "{} ({}, {}) in workspace {workspace}: {status}, last used {}",
        record.id,
        record.name,
        record.role.as_str(),
        output::time_or(record.last_used_at, "never"),
    ))?;
    eprintln!(
        "its requests: `agentgate logs list --workspace {workspace} --key {}`; to refuse it: `agentgate keys revoke --workspace {workspace} {}`",
        record.id, record.id
    );
    Ok(())
}

/// Prints a new key: alone on stdout (shown once), or as JSON.
fn print_created(created: &CreatedKey, json: bool) -> anyhow::Result<()> {
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
    output::line(created.key.as_str())?;
    Ok(())
}
