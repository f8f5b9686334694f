//! Configuration: the clap arguments (each also readable from an `AGENTGATE_...`
//! environment variable, which `--help` names) turned once into a plain [`Config`].
//! The master key itself is read only from `AGENTGATE_MASTER_KEY` or a file, never argv.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::catalog::Catalog;
use crate::crypto::{MasterKey, MasterKeySource, Sealer};
use crate::policy::rate::ConnectionRates;
use crate::proxy::client::{StripeBase, UpstreamConfig};
use crate::store::sqlite_file_path;
use crate::time::{Clock, SystemClock};

/// The environment variable holding the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "AGENTGATE_MASTER_KEY";

/// The shortest `--event-retention`: Stripe retries an undelivered event for up to three
/// days, and ingest tells a retry from a new event by the stored row, so an event pruned
/// sooner would be stored, and reach agents, a second time.
const MIN_EVENT_RETENTION: Duration = Duration::from_secs(3 * 24 * 60 * 60);

/// Where state lives; shared by `serve` and every CLI command.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// Database URL: `sqlite://PATH` (created and migrated on start) or `postgres://...`.
    #[arg(
        long,
        env = "AGENTGATE_DATABASE",
        default_value = "sqlite://agentgate.db",
        global = true
    )]
    pub database: String,
    /// File holding the master key (base64 of 32 bytes, mode 0600). Default for SQLite: a
    /// `.key` file beside the database, created on first start. The key itself may instead
    /// come from AGENTGATE_MASTER_KEY.
    #[arg(long, env = "AGENTGATE_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// The workspace a command acts on (`default` always exists; others are made with
    /// `agentgate workspaces create`).
    #[arg(
        long,
        env = "AGENTGATE_WORKSPACE",
        default_value = "default",
        global = true
    )]
    pub workspace: String,
}

impl StoreArgs {
    /// A sealer with every key the source lists (the first seals), re-reading the key file
    /// when it changes; what CLI commands that seal or open secrets use, so they work while a
    /// `master-key rotate` is under way.
    pub fn sealer(&self) -> anyhow::Result<Sealer> {
        let source = self.master_key_source()?;
        let path = source.file_path().map(Path::to_path_buf);
        let mut keys = MasterKey::load_all(source).context("cannot load the master key")?;
        let current = keys.remove(0);
        let sealer = Sealer::with_previous(&current, &keys);
        Ok(match path {
            Some(path) => sealer.watching(path),
            None => sealer,
        })
    }

    /// Where the master key comes from, given the environment's `AGENTGATE_MASTER_KEY`.
    pub fn master_key_source(&self) -> anyhow::Result<MasterKeySource> {
        let from_env = std::env::var(MASTER_KEY_ENV).ok().filter(|v| !v.is_empty());
        match (from_env, &self.master_key_file) {
            (Some(_), Some(_)) => {
                bail!("set either {MASTER_KEY_ENV} or --master-key-file, not both")
            }
            (Some(key), None) => Ok(MasterKeySource::Env(Zeroizing::new(key))),
            (None, Some(path)) => Ok(MasterKeySource::File {
                path: path.clone(),
                create_if_missing: false,
            }),
            (None, None) => {
                let Some(db) = sqlite_file_path(&self.database) else {
                    bail!("this database needs an explicit master key shared by every instance: set {MASTER_KEY_ENV} or --master-key-file");
                };
                let mut name = db.file_name().unwrap_or_default().to_os_string();
                name.push(".key");
                Ok(MasterKeySource::File {
                    path: db.with_file_name(name),
                    create_if_missing: true,
                })
            }
        }
    }
}

/// One `--sdk-listen NAME=ADDR`: serve connection NAME at the root of ADDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdkListen {
    /// The connection served.
    pub connection: String,
    /// The address to listen on.
    pub addr: SocketAddr,
}

impl std::str::FromStr for SdkListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (connection, addr) = text
            .split_once('=')
            .ok_or_else(|| "expected CONNECTION=ADDRESS, e.g. stripe=127.0.0.1:12111".to_owned())?;
        if !crate::proxy::is_connection_name(connection) {
            return Err(format!("invalid connection name {connection:?}"));
        }
        let addr = addr
            .parse()
            .map_err(|e| format!("invalid address {addr:?}: {e}"))?;
        Ok(Self {
            connection: connection.to_owned(),
            addr,
        })
    }
}

/// Where Stripe reaches this gateway, for the ingest URLs of webhook endpoints; shared by
/// `serve` and the `webhooks` commands (deployments behind a proxy set it).
#[derive(Clone, Debug, clap::Args)]
pub struct PublicUrlArgs {
    /// Public base URL of the gateway as Stripe reaches it (`https://gw.example.com`);
    /// ingest URLs are `{public url}/webhooks/ingest/<id>`. Default: `http://{listen}`.
    #[arg(long, env = "AGENTGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl PublicUrlArgs {
    /// The base URL without a trailing slash, defaulting to the listen address.
    pub fn base(&self, listen: SocketAddr) -> anyhow::Result<String> {
        match &self.public_url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(url.trim_end_matches('/').to_owned())
            }
            Some(url) => bail!("--public-url must start with https:// or http://, not {url:?}"),
            None => Ok(format!("http://{listen}")),
        }
    }
}

/// Arguments of `agentgate serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the main listener (data plane, operations endpoints).
    #[arg(long, env = "AGENTGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Serve one connection at the root of its own address, for SDKs that take only a host
    /// and port (stripe-node): `stripe=127.0.0.1:12111`. Repeatable; comma-separated in env.
    #[arg(
        long = "sdk-listen",
        env = "AGENTGATE_SDK_LISTEN",
        value_delimiter = ','
    )]
    pub sdk_listen: Vec<SdkListen>,
    /// Public base URL for webhook ingest URLs.
    #[command(flatten)]
    pub public_url: PublicUrlArgs,
    /// How far the timestamp of a Stripe webhook signature may be from our clock (either
    /// way) before the event is refused.
    #[arg(long, env = "AGENTGATE_WEBHOOK_TOLERANCE", default_value = "300s", value_parser = humantime::parse_duration)]
    pub webhook_tolerance: Duration,
    /// How long a webhook ingest waits for its event's durable commit before answering 503
    /// (so Stripe retries) instead of 2xx.
    #[arg(long, env = "AGENTGATE_INGEST_COMMIT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub ingest_commit_timeout: Duration,
    /// Stripe's API base URL. Plain http is accepted only for loopback (local doubles).
    #[arg(
        long,
        env = "AGENTGATE_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: StripeBase,
    /// How long connecting to Stripe (TCP and TLS) may take.
    #[arg(long, env = "AGENTGATE_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub upstream_connect_timeout: Duration,
    /// How long a whole exchange with Stripe may take (Stripe's SDKs default to 80 s), and
    /// how long any request body may take to arrive.
    #[arg(long, env = "AGENTGATE_UPSTREAM_TIMEOUT", default_value = "80s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// Largest request body forwarded, in bytes; larger ones get 413.
    #[arg(long, env = "AGENTGATE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Failed authentications (invalid agentgate keys) one client address may make per
    /// minute; past it the address gets 429 for every request (but the health checks and
    /// metrics) until the minute ends. Behind a reverse proxy every client shares its
    /// address: raise it there, or 0 for no limit.
    #[arg(long, env = "AGENTGATE_AUTH_FAILURE_LIMIT", default_value_t = 100)]
    pub auth_failure_limit: u32,
    /// Requests waiting for Stripe at once, across all workers; past it a request gets 503
    /// with Retry-After at once instead of queueing behind a slow Stripe. 0 for no bound.
    #[arg(long, env = "AGENTGATE_UPSTREAM_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub upstream_max_in_flight: usize,
    /// Client connections open at once, across all listeners; past it new connections wait
    /// in the listen queue until one closes. Default: what the file limit leaves room for
    /// (raised to its hard ceiling at start), two descriptors a connection after 256 kept
    /// for the database, the log and the rest.
    #[arg(long, env = "AGENTGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<NonZeroUsize>,
    /// How long a client may take to send the request headers.
    #[arg(long, env = "AGENTGATE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Worker threads serving requests (default: one per CPU core).
    #[arg(long, env = "AGENTGATE_WORKERS")]
    pub workers: Option<usize>,
    /// This instance's name in the request log: which instance served a request or made a
    /// change. Default: the host's name; instances sharing a host each need their own.
    #[arg(long, env = "AGENTGATE_INSTANCE")]
    pub instance: Option<crate::instance::InstanceName>,
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    #[arg(long, env = "AGENTGATE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// How long after SIGTERM agentgate keeps accepting requests while `/readyz` answers
    /// 503, so a load balancer sees it leave before its listener closes (set it to the
    /// balancer's health-check interval or more). 0: the listener closes at once.
    #[arg(long, env = "AGENTGATE_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,
    /// An operation catalog written by `agentgate catalog import` (default: the built-in one
    /// for Stripe API 2026-07-29.dahlia).
    #[arg(long, env = "AGENTGATE_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Requests per second sent through one connection holding a live-mode Stripe key,
    /// across all its agent keys (Stripe's documented live limit is 100/s); 0 for no limit.
    #[arg(long, env = "AGENTGATE_CONNECTION_RATE_LIVE", default_value_t = 100)]
    pub connection_rate_live: u32,
    /// The same for a test-mode (sandbox) key (Stripe's documented limit is 25/s); 0 for
    /// no limit.
    #[arg(long, env = "AGENTGATE_CONNECTION_RATE_TEST", default_value_t = 25)]
    pub connection_rate_test: u32,
    /// How long a derived `Idempotency-Key` (keys with `--idempotency derive`) stays the
    /// same for a repeated POST. Stripe keeps keys for at least 24 hours.
    #[arg(long, env = "AGENTGATE_IDEMPOTENCY_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,
    /// How long received webhook events are kept (for pull, streams and replay) before
    /// an hourly task deletes them; at least 3 days.
    #[arg(long, env = "AGENTGATE_EVENT_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub event_retention: Duration,
    /// How long the request log's entries and the installation's audit records are kept
    /// before the hourly task deletes them: a duration of at least 1day, or `forever`.
    #[arg(long, env = "AGENTGATE_LOG_RETENTION", default_value = "365days")]
    pub log_retention: crate::retention::LogRetention,
    /// How long an event stream may be idle before a heartbeat comment keeps it open.
    #[arg(long, env = "AGENTGATE_EVENT_STREAM_HEARTBEAT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub event_stream_heartbeat: Duration,
    /// How often an event stream also reads the database without a notice: the delay bound
    /// for events stored by another instance sharing a PostgreSQL database.
    #[arg(long, env = "AGENTGATE_EVENT_STREAM_POLL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub event_stream_poll: Duration,
    /// How long one push delivery attempt may take, connecting included.
    #[arg(long, env = "AGENTGATE_PUSH_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub push_timeout: Duration,
    /// How long a delivery claimed by this instance stays out of other instances' reach; an
    /// instance that dies mid-attempt leaves it to another after this long. More than
    /// --push-timeout.
    #[arg(long, env = "AGENTGATE_PUSH_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub push_lease: Duration,
    /// Push deliveries attempted at once by this instance.
    #[arg(long, env = "AGENTGATE_PUSH_CONCURRENCY", default_value_t = 16)]
    pub push_concurrency: usize,
    /// Let admin keys add push destinations at loopback and private addresses through the
    /// management API (`allow_private`). Off: only the operator's tools (the CLI and the
    /// dashboard) may, since an admin key manages one tenant and private addresses are the
    /// operator's network.
    #[arg(long, env = "AGENTGATE_API_ALLOW_PRIVATE_DESTINATIONS")]
    pub api_allow_private_destinations: bool,
}

/// Everything `serve` needs, read once at start.
pub struct Config {
    /// Main listener address.
    pub listen: SocketAddr,
    /// SDK listeners.
    pub sdk_listen: Vec<SdkListen>,
    /// Base of webhook ingest URLs (no trailing slash).
    pub public_url: String,
    /// Webhook ingest: signature tolerance, body cap, commit bound.
    pub ingest: crate::webhooks::ingest::IngestSettings,
    /// Database URL.
    pub database_url: String,
    /// The name the request log records this instance by.
    pub instance: crate::instance::InstanceName,
    /// The loaded master key (the first the source lists: it seals).
    pub master_key: MasterKey,
    /// Further keys the source lists during a rotation: they only open what they sealed.
    pub previous_master_keys: Vec<MasterKey>,
    /// The key file, re-read when it changes (a rotation's new key); `None` for the
    /// environment variable.
    pub master_key_file: Option<PathBuf>,
    /// How to reach Stripe.
    pub upstream: UpstreamConfig,
    /// Header read timeout for clients.
    pub header_timeout: Duration,
    /// Client connections open at once (`None`: what the file limit leaves room for).
    pub max_connections: Option<NonZeroUsize>,
    /// Failed authentications per client address per minute (`None`: no limit).
    pub auth_failure_limit: Option<NonZeroU32>,
    /// Requests waiting for Stripe at once (0: no bound).
    pub upstream_max_in_flight: usize,
    /// Drain time after SIGTERM.
    pub shutdown_grace: Duration,
    /// Time after SIGTERM that requests are still accepted, `/readyz` answering 503.
    pub shutdown_delay: Duration,
    /// Worker threads.
    pub workers: usize,
    /// The operations validated before they are forwarded.
    pub catalog: Arc<Catalog>,
    /// Per-connection rate limits, by the mode of the connection's key.
    pub connection_rates: ConnectionRates,
    /// How long a derived `Idempotency-Key` holds.
    pub idempotency_window: Duration,
    /// Where rate limits and idempotency windows read the time (tests turn it by hand).
    pub clock: Arc<dyn Clock>,
    /// Push delivery: retry schedule, attempt timeout, lease, disabling.
    pub push: crate::webhooks::push::PushConfig,
    /// Whether admin keys may add push destinations at private addresses.
    pub api_allow_private_destinations: bool,
    /// How long webhook events, the request log and the installation's audit are kept.
    pub retention: crate::retention::Retention,
    /// Heartbeat and poll intervals of event streams.
    pub event_stream: crate::webhooks::stream::StreamSettings,
}

impl Config {
    /// Validates the arguments and loads the master key.
    pub fn from_args(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let source = store.master_key_source()?;
        let master_key_file = source.file_path().map(Path::to_path_buf);
        let mut previous_master_keys =
            MasterKey::load_all(source).context("cannot load the master key")?;
        let master_key = previous_master_keys.remove(0);
        if serve.idempotency_window < Duration::from_secs(1) {
            bail!("--idempotency-window must be at least 1s");
        }
        if serve.event_retention < MIN_EVENT_RETENTION {
            bail!("--event-retention must be at least 3days: Stripe retries a delivery for up to three days, and an event pruned sooner would be stored and delivered again");
        }
        if serve.event_stream_heartbeat.is_zero() || serve.event_stream_poll.is_zero() {
            bail!("--event-stream-heartbeat and --event-stream-poll must be more than 0");
        }
        if serve.push_lease <= serve.push_timeout {
            bail!("--push-lease must be longer than --push-timeout");
        }
        if serve.push_concurrency == 0 {
            bail!("--push-concurrency must be at least 1");
        }
        Ok(Self {
            listen: serve.listen,
            sdk_listen: serve.sdk_listen.clone(),
            public_url: serve.public_url.base(serve.listen)?,
            ingest: crate::webhooks::ingest::IngestSettings {
                tolerance: serve.webhook_tolerance,
                max_body_bytes: serve.max_body_bytes,
                commit_timeout: serve.ingest_commit_timeout,
            },
            database_url: store.database.clone(),
            instance: serve
                .instance
                .clone()
                .unwrap_or_else(crate::instance::InstanceName::of_host),
            master_key,
            previous_master_keys,
            master_key_file,
            upstream: UpstreamConfig {
                base: serve.stripe_api_base.clone(),
                connect_timeout: serve.upstream_connect_timeout,
                timeout: serve.upstream_timeout,
                max_body_bytes: serve.max_body_bytes,
            },
            header_timeout: serve.header_timeout,
            max_connections: serve.max_connections,
            auth_failure_limit: NonZeroU32::new(serve.auth_failure_limit),
            upstream_max_in_flight: serve.upstream_max_in_flight,
            shutdown_grace: serve.shutdown_grace,
            shutdown_delay: serve.shutdown_delay,
            workers: serve.workers.unwrap_or_else(default_workers),
            catalog: Arc::new(load_catalog(serve.catalog.as_deref())?),
            connection_rates: ConnectionRates {
                live: NonZeroU32::new(serve.connection_rate_live),
                test: NonZeroU32::new(serve.connection_rate_test),
            },
            idempotency_window: serve.idempotency_window,
            push: crate::webhooks::push::PushConfig {
                timeout: serve.push_timeout,
                lease: serve.push_lease,
                concurrency: serve.push_concurrency,
                ..crate::webhooks::push::PushConfig::default()
            },
            api_allow_private_destinations: serve.api_allow_private_destinations,
            clock: Arc::new(SystemClock::default()),
            retention: crate::retention::Retention {
                events: serve.event_retention,
                logs: serve.log_retention,
            },
            event_stream: crate::webhooks::stream::StreamSettings {
                heartbeat: serve.event_stream_heartbeat,
                poll: serve.event_stream_poll,
            },
        })
    }

    /// A configuration for tests: loopback listener, the given database and Stripe double,
    /// short timeouts, and no connection rate limit (tests send bursts on one connection;
    /// the tests of the limits turn it on).
    pub fn for_tests(database_url: &str, master_key: MasterKey, stripe_base: StripeBase) -> Self {
        Self {
            listen: ([127, 0, 0, 1], 0).into(),
            sdk_listen: Vec::new(),
            public_url: "http://127.0.0.1".to_owned(),
            ingest: crate::webhooks::ingest::IngestSettings::default(),
            database_url: database_url.to_owned(),
            instance: "test".parse().expect("a valid instance name"),
            master_key,
            previous_master_keys: Vec::new(),
            master_key_file: None,
            upstream: UpstreamConfig {
                base: stripe_base,
                connect_timeout: Duration::from_secs(2),
                timeout: Duration::from_secs(10),
                max_body_bytes: 1024 * 1024,
            },
            header_timeout: Duration::from_secs(10),
            max_connections: None,
            auth_failure_limit: NonZeroU32::new(100),
            upstream_max_in_flight: 1024,
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            workers: 2,
            catalog: Arc::new(Catalog::embedded()),
            connection_rates: ConnectionRates::UNLIMITED,
            idempotency_window: crate::policy::idempotency::DEFAULT_WINDOW,
            push: crate::webhooks::push::PushConfig::for_tests(),
            api_allow_private_destinations: false,
            clock: Arc::new(SystemClock::default()),
            retention: crate::retention::Retention::default(),
            event_stream: crate::webhooks::stream::StreamSettings::default(),
        }
    }
}

/// The catalog file named by `--catalog`, or the built-in one.
fn load_catalog(path: Option<&Path>) -> anyhow::Result<Catalog> {
    let Some(path) = path else {
        return Ok(Catalog::embedded());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the catalog {}", path.display()))?;
    Catalog::from_json(&text).with_context(|| {
        format!(
            "{} is not a catalog written by `agentgate catalog import`",
            path.display()
        )
    })
}

/// One worker per CPU core the process may use.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
