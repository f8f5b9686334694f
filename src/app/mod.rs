//! The application: builds the shared state from a [`Config`], starts one worker thread per
//! core to serve the bound listeners until shutdown, then drains and flushes the request log.

pub mod connection_cap;
mod fast_lane;
mod framing;
mod listener;
mod ops;
mod rewind;
mod screen;
mod watcher;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::catalog::CatalogIndex;
use crate::config::Config;
use crate::connections::ConnectionResolver;
use crate::crypto::{verify_master_key, Sealer};
use crate::ids::WorkspaceId;
use crate::keys::failures::AuthFailures;
use crate::keys::KeyAuthenticator;
use crate::metrics::Metrics;
use crate::policy::guardrails::Guardrails;
use crate::policy::idempotency::Deriver;
use crate::policy::rate::RateLimiter;
use crate::proxy::client::UpstreamConfig;
use crate::proxy::in_flight::UpstreamSlots;
use crate::proxy::{self, Entry, Proxy, ProxyShared};
use crate::request_log::{self, RequestLogWriter};
use crate::store::{self, Store, DEFAULT_WORKSPACE};
use crate::webhooks::EventBus;
pub use ops::Ops;
use workers::{ServeOptions, Worker, WorkerHandle};

/// A built application, ready to serve.
pub struct App {
    store: Arc<dyn Store>,
    /// Seals Stripe keys set through the management API.
    sealer: Arc<Sealer>,
    shared: Arc<ProxyShared>,
    ops: Arc<Ops>,
    writer: RequestLogWriter,
    upstream: UpstreamConfig,
    /// Webhook ingest and its group-commit writer, shared by every worker.
    ingest: Arc<crate::webhooks::ingest::Ingest>,
    /// Base of webhook ingest URLs shown by the management API.
    public_url: String,
    workers: usize,
    serve_options: ServeOptions,
    /// Whether admin keys may add push destinations at private addresses.
    api_allow_private_destinations: bool,
    /// The cap on open client connections, shared by every listener.
    connection_cap: Arc<connection_cap::ConnectionCap>,
    /// How long the listeners stay open after the shutdown signal, `/readyz` failing.
    shutdown_delay: Duration,
    default_workspace: WorkspaceId,
    /// Push delivery settings and the clock its schedule reads.
    push: (
        crate::webhooks::push::PushConfig,
        Arc<dyn crate::time::Clock>,
    ),
    /// How long stored records are kept, and the clock retention reads.
    retention: (crate::retention::Retention, Arc<dyn crate::time::Clock>),
    /// Changes announced by other writers of a shared PostgreSQL database; `None` on SQLite.
    change_feed: Option<store::changes::ChangeFeed>,
    /// Failed dashboard sign-ins per client address, shared by every worker.
    sign_in_failures: Arc<crate::keys::failures::AuthFailures>,
    /// Heartbeat and poll intervals of event streams.
    event_stream: crate::webhooks::stream::StreamSettings,
    /// MCP sessions, shared by every worker.
    mcp_sessions: crate::mcp::Sessions,
}

/// The bound sockets an [`App`] serves: tests bind port 0 and read the addresses back.
pub struct Listeners {
    /// Data plane and operations endpoints.
    pub main: TcpListener,
    /// One listener per `--sdk-listen`, by connection name.
    pub sdk: Vec<(String, TcpListener)>,
}

impl Listeners {
    /// Binds the addresses the configuration names.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let main = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let mut sdk = Vec::new();
        for listen in &config.sdk_listen {
            let listener = TcpListener::bind(listen.addr)
                .await
                .with_context(|| format!("cannot listen on {} for --sdk-listen", listen.addr))?;
            sdk.push((listen.connection.clone(), listener));
        }
        Ok(Self { main, sdk })
    }

    /// The main listener's address.
    pub fn main_addr(&self) -> SocketAddr {
        self.main
            .local_addr()
            .expect("a bound listener has an address")
    }
}

impl App {
    /// Opens and migrates the store, checks the master key against it, and starts the
    /// request log writer.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = store::open_as(&config.database_url, Some(&config.instance))
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    store::redact_url(&config.database_url)
                )
            })?;
        let sealer = Sealer::with_previous(&config.master_key, &config.previous_master_keys);
        let sealer = Arc::new(match config.master_key_file.clone() {
            Some(path) => sealer.watching(path),
            None => sealer,
        });
        let idempotency = Deriver::new(
            &config.master_key,
            config.idempotency_window,
            config.clock.clone(),
        );
        drop(config.master_key);
        drop(config.previous_master_keys);
        verify_master_key(store.as_ref(), &sealer).await?;
        let default_workspace = store.ensure_workspace(DEFAULT_WORKSPACE).await?.id;
        let metrics = Arc::new(Metrics::new());
        let (log, writer) = request_log::spawn(store.clone(), metrics.clone());
        let mut rate_limits = RateLimiter::new(config.connection_rates, config.clock.clone());
        if let Some(shared) = store::rate_buckets::SharedBuckets::connect(&config.database_url)? {
            rate_limits = rate_limits.share_with(shared);
        }
        let shared = Arc::new(ProxyShared {
            keys: KeyAuthenticator::new(store.clone()),
            connections: ConnectionResolver::new(store.clone(), sealer.clone()),
            metrics: metrics.clone(),
            log,
            catalog: Arc::new(CatalogIndex::new(config.catalog.clone())),
            rate_limits,
            idempotency,
            guardrails: Guardrails::new(store.clone()),
            events: EventBus::default(),
            auth_failures: AuthFailures::new(config.auth_failure_limit, config.clock.clone()),
            upstream_slots: UpstreamSlots::new(config.upstream_max_in_flight),
        });
        let connection_cap = Arc::new(connection_cap::ConnectionCap::new(
            max_connections(config.max_connections),
            &metrics,
        ));
        let ops = Arc::new(Ops::new(store.clone(), metrics));
        if !store.event_commits_are_durable().await? {
            anyhow::bail!("the database does not commit webhook events durably (PostgreSQL: synchronous_commit is off); refusing to acknowledge events it could lose");
        }
        let ingest = Arc::new(crate::webhooks::ingest::Ingest::new(
            store.clone(),
            sealer.clone(),
            shared.events.clone(),
            config.ingest,
            shared.log.clone(),
        ));
        let change_feed = store::changes::ChangeFeed::connect(&config.database_url)
            .await
            .context("cannot listen for changes on the database")?;
        tracing::info!(
            backend = ?store.backend(),
            instance = %config.instance,
            workers = config.workers,
            max_connections = connection_cap.max(),
            "store ready"
        );
        Ok(Self {
            store,
            sealer,
            shared,
            ops,
            writer,
            upstream: config.upstream,
            ingest,
            public_url: config.public_url,
            workers: config.workers.max(1),
            serve_options: ServeOptions {
                header_timeout: config.header_timeout,
                shutdown_grace: config.shutdown_grace,
            },
            shutdown_delay: config.shutdown_delay,
            api_allow_private_destinations: config.api_allow_private_destinations,
            connection_cap,
            default_workspace,
            push: (config.push.clone(), config.clock.clone()),
            retention: (config.retention, config.clock.clone()),
            event_stream: config.event_stream,
            mcp_sessions: crate::mcp::Sessions::default(),
            change_feed,
            sign_in_failures: crate::dashboard::sign_in_failures(),
        })
    }

    /// The store this app runs on (for tests and the CLI).
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The id of the `default` workspace.
    pub fn default_workspace(&self) -> &WorkspaceId {
        &self.default_workspace
    }

    /// The bus open event streams listen on, so tests can announce events they store.
    pub fn events(&self) -> EventBus {
        self.shared.events.clone()
    }

    /// What one worker serves: the main listener's entry, then one per SDK listener, all
    /// sharing the worker's connection pool to Stripe.
    fn worker_entries(
        &self,
        sdk_connections: &[String],
        stop: &watch::Receiver<bool>,
    ) -> Vec<Entry> {
        let proxy = Arc::new(Proxy::new(self.shared.clone(), self.upstream.clone()));
        let routes = ops::router(self.ops.clone())
            .merge(proxy::discovery::router(self.shared.clone()))
            .merge(crate::webhooks::ingest::router(self.ingest.clone()))
            .merge(crate::mcp::router(crate::mcp::McpSettings {
                proxy: proxy.clone(),
                shared: self.shared.clone(),
                store: self.store.clone(),
                sessions: self.mcp_sessions.clone(),
                event_stream: self.event_stream,
                stop: stop.clone(),
            }))
            .merge(crate::webhooks::pull::router(
                self.shared.clone(),
                self.store.clone(),
                self.event_stream,
                stop.clone(),
            ))
            .merge(crate::api::router(
                self.shared.clone(),
                self.store.clone(),
                self.sealer.clone(),
                crate::api::WebhookApiSettings {
                    public_url: self.public_url.clone(),
                    upstream: self.upstream.clone(),
                    allow_private_destinations: self.api_allow_private_destinations,
                },
            ))
            .merge(crate::dashboard::router(
                crate::dashboard::DashboardSettings {
                    shared: self.shared.clone(),
                    store: self.store.clone(),
                    sealer: self.sealer.clone(),
                    public_url: self.public_url.clone(),
                    upstream: self.upstream.clone(),
                    default_workspace: self.default_workspace.clone(),
                    event_stream: self.event_stream,
                    stop: stop.clone(),
                    sign_in_failures: self.sign_in_failures.clone(),
                },
            ))
            .fallback(proxy::unknown_route);
        let main = Entry::main(proxy.clone(), routes, ops::PATHS);
        let sdk = sdk_connections
            .iter()
            .map(|connection| Entry::sdk(proxy.clone(), connection));
        std::iter::once(main).chain(sdk).collect()
    }

    /// Starts one worker thread per configured worker.
    fn start_workers(
        &self,
        sdk_connections: &[String],
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<(Arc<[WorkerHandle]>, Vec<Worker>)> {
        let mut handles = Vec::with_capacity(self.workers);
        let mut running = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let entries = self.worker_entries(sdk_connections, stop);
            let (handle, worker) =
                workers::spawn(index, entries, self.serve_options, stop.clone())?;
            handles.push(handle);
            running.push(worker);
        }
        Ok((handles.into(), running))
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish (up to the grace period), and writes the queued request log.
    pub async fn serve(
        mut self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = tokio::spawn(watcher::run(
            self.store.clone(),
            self.shared.clone(),
            self.change_feed.take(),
            stop_rx.clone(),
        ));
        let rate_exchange = tokio::spawn({
            let shared = self.shared.clone();
            let stop = stop_rx.clone();
            async move { shared.rate_limits.exchange_until_stopped(stop).await }
        });
        let retention = tokio::spawn(crate::retention::run(
            self.store.clone(),
            self.retention.0,
            self.retention.1.clone(),
            self.shared.metrics.clone(),
            stop_rx.clone(),
        ));
        let push = crate::webhooks::push::spawn(
            self.store.clone(),
            self.sealer.clone(),
            self.shared.events.clone(),
            self.push.0.clone(),
            self.push.1.clone(),
            stop_rx.clone(),
        );
        let sdk_connections: Vec<String> = listeners.sdk.iter().map(|(c, _)| c.clone()).collect();
        let (handles, running) = self.start_workers(&sdk_connections, &stop_rx)?;
        let sockets = std::iter::once(listeners.main)
            .chain(listeners.sdk.into_iter().map(|(_, l)| l))
            .collect();
        let acceptor = tokio::spawn(listener::accept(
            sockets,
            handles.clone(),
            self.connection_cap.clone(),
            stop_rx.clone(),
        ));
        shutdown.await;
        self.ops.start_draining();
        if !self.shutdown_delay.is_zero() {
            tracing::info!(delay = ?self.shutdown_delay, "shutting down: /readyz answers 503; still serving until the delay ends");
            tokio::time::sleep(self.shutdown_delay).await;
        }
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        let _ = stop_tx.send(true);
        let _ = acceptor.await;
        drop(handles);
        for worker in running {
            worker.finished().await;
        }
        let _ = watcher.await;
        let _ = rate_exchange.await;
        push.finished().await;
        let _ = retention.await;
        self.writer.stop().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The configured cap on client connections, or what the file limit leaves room for;
/// warns when a configured cap is more than that.
fn max_connections(configured: Option<NonZeroUsize>) -> usize {
    let file_limit = connection_cap::file_limit();
    let room = connection_cap::default_for(file_limit);
    match configured {
        None => room,
        Some(max) => {
            if max.get() > room {
                tracing::warn!(
                    max_connections = max.get(),
                    ?file_limit,
                    "--max-connections is more than the file limit leaves room for; connections past it may fail for want of file descriptors"
                );
            }
            max.get()
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
