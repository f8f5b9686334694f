//! `TestApp`: agentgate served in-process on port 0 against a Stripe double and a fresh
//! database, with a stored Stripe key and one agent key, and one helper per endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentgate::app::{App, Listeners};
use agentgate::config::Config;
use agentgate::connections::set_stripe_connection;
use agentgate::connections::stripe::StripeSecret;
use agentgate::crypto::{MasterKey, Sealer};
use agentgate::ids::WorkspaceId;
use agentgate::keys::create_key;
use agentgate::policy::rate::ConnectionRates;
use agentgate::store::{self, LogQuery, RequestLogRecord, Store};
use agentgate::time::Clock;
use agentgate::webhooks::stream::StreamSettings;
use agentgate::webhooks::EventBus;
use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::backend::{Backend, TestDb};
use super::stripe_double::StripeDouble;
use super::{eventually, TEST_SECRET};

/// Knobs a test may turn before the app starts.
pub struct TestOptions {
    /// Upstream timeout (short for the 504 test).
    pub upstream_timeout: Duration,
    /// Serve the `stripe` connection on an SDK listener too.
    pub sdk_listener: bool,
    /// Point agentgate at this base instead of the double.
    pub stripe_base: Option<String>,
    /// Per-connection rate limits (off unless a test turns them on).
    pub connection_rates: ConnectionRates,
    /// The clock rate limits and idempotency windows read (a `ManualClock` to drive them).
    pub clock: Option<Arc<dyn Clock>>,
    /// Webhook ingest settings (a short commit bound for the 503 test).
    pub ingest: agentgate::webhooks::ingest::IngestSettings,
    /// Heartbeat and poll intervals of event streams (short ones for the stream tests).
    pub event_stream: StreamSettings,
    /// `--public-url` (an https one for the Secure cookie test).
    pub public_url: Option<String>,
    /// Keep the master key in a key file (`master.key` in the database's directory) that
    /// the server re-reads, as `--master-key-file` does, instead of passing it in memory.
    pub master_key_file: bool,
    /// How long a client may take to send its request headers (short for slowloris tests).
    pub header_timeout: Duration,
    /// Requests waiting for Stripe at once (small for the saturation test).
    pub upstream_max_in_flight: usize,
    /// `--api-allow-private-destinations`: admin keys may add loopback push destinations.
    pub api_allow_private_destinations: bool,
    /// `--max-connections` (small for the cap's tests).
    pub max_connections: Option<std::num::NonZeroUsize>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            upstream_timeout: Duration::from_secs(10),
            sdk_listener: false,
            stripe_base: None,
            connection_rates: ConnectionRates::UNLIMITED,
            clock: None,
            ingest: agentgate::webhooks::ingest::IngestSettings::default(),
            event_stream: StreamSettings::default(),
            public_url: None,
            master_key_file: false,
            header_timeout: Duration::from_secs(10),
            upstream_max_in_flight: 1024,
            api_allow_private_destinations: false,
            max_connections: None,
        }
    }
}

/// A running agentgate with its double and database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub sdk_addr: Option<SocketAddr>,
    pub double: StripeDouble,
    pub db: TestDb,
    pub store: Arc<dyn Store>,
    /// The app's event bus: tests that store events directly announce them here.
    pub events: EventBus,
    pub workspace: WorkspaceId,
    /// A valid agent key of the default workspace.
    pub key: String,
    /// The master key, base64, for CLI runs against the same database.
    pub master_key: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts with default options.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, TestOptions::default()).await
    }

    /// Starts with the given options.
    pub async fn spawn_with(backend: Backend, options: TestOptions) -> Self {
        let double = StripeDouble::start().await;
        let db = TestDb::create(backend).await;
        let master = MasterKey::generate();
        let master_key = master.to_base64().to_string();
        let base = options
            .stripe_base
            .clone()
            .unwrap_or_else(|| double.base_url());
        let mut config = Config::for_tests(&db.url, master, base.parse().expect("stripe base"));
        config.upstream.timeout = options.upstream_timeout;
        config.header_timeout = options.header_timeout;
        config.upstream_max_in_flight = options.upstream_max_in_flight;
        config.api_allow_private_destinations = options.api_allow_private_destinations;
        config.max_connections = options.max_connections;
        config.connection_rates = options.connection_rates;
        config.ingest = options.ingest;
        if let Some(clock) = options.clock.clone() {
            config.clock = clock;
        }
        config.event_stream = options.event_stream;
        if let Some(public_url) = options.public_url {
            config.public_url = public_url;
        }
        if options.master_key_file {
            let path = db.dir.path().join("master.key");
            MasterKey::write_key_file(&path, &[&config.master_key]).expect("write the key file");
            config.master_key_file = Some(path);
        }
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = main.local_addr().unwrap();
        let mut sdk = Vec::new();
        if options.sdk_listener {
            sdk.push((
                "stripe".to_owned(),
                TcpListener::bind("127.0.0.1:0").await.unwrap(),
            ));
        }
        let sdk_addr = sdk.first().map(|(_, l)| l.local_addr().unwrap());
        let app = App::build(config).await.expect("app builds");
        let store = app.store();
        let events = app.events();
        let workspace = app.default_workspace().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(Listeners { main, sdk }, async {
            let _ = stopped.await;
        }));
        let mut test_app = Self {
            addr,
            sdk_addr,
            double,
            db,
            store,
            events,
            workspace,
            key: String::new(),
            master_key,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown: Some(shutdown),
            task: Some(task),
        };
        test_app.store_stripe_key(TEST_SECRET).await;
        test_app.key = test_app.create_key("test agent").await;
        test_app
    }

    /// Stores (or replaces) the `stripe` connection's key, as `connections set` does.
    pub async fn store_stripe_key(&self, secret: &str) {
        self.store_connection("stripe", secret).await;
    }

    /// Stores (or replaces) the named connection's key in the default workspace.
    pub async fn store_connection(&self, name: &str, secret: &str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.master_key)
            .unwrap();
        let sealer = Sealer::new(&MasterKey::from_bytes(bytes.try_into().unwrap()));
        let secret = StripeSecret::parse(secret).expect("valid test secret");
        set_stripe_connection(
            self.store.as_ref(),
            &sealer,
            &self.workspace,
            name,
            &secret,
            &crate::support::test_origin(),
        )
        .await
        .expect("store the Stripe key");
    }

    /// The master key the app was started with (to seal or open secrets as it does).
    pub fn master(&self) -> MasterKey {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.master_key)
            .unwrap();
        MasterKey::from_bytes(bytes.try_into().unwrap())
    }

    /// Creates a key to `spec` and returns its text.
    pub async fn create_key_from(&self, spec: agentgate::keys::KeySpec) -> String {
        let origin = crate::support::test_origin();
        create_key(self.store.as_ref(), &self.workspace, spec, &origin)
            .await
            .expect("create key")
            .key
            .to_string()
    }

    /// Creates an agent key with these scopes and returns its text.
    pub async fn create_key_with(&self, name: &str, scopes: agentgate::policy::Scopes) -> String {
        self.create_key_from(agentgate::keys::KeySpec {
            name: name.to_owned(),
            role: agentgate::policy::Role::Agent,
            scopes,
            expires_at: None,
        })
        .await
    }

    /// A webhook endpoint of the `stripe` connection for `event_types` (all when empty),
    /// with `whsec` as its signing secret.
    pub async fn signed_endpoint(
        &self,
        event_types: &[String],
        whsec: &str,
    ) -> agentgate::store::WebhookEndpointRecord {
        use agentgate::webhooks::endpoints::{add_secret, create_endpoint, SigningSecret};
        let origin = crate::support::test_origin();
        let store = self.store.as_ref();
        let endpoint = create_endpoint(store, &self.workspace, "stripe", event_types, &origin)
            .await
            .expect("create endpoint");
        let secret = SigningSecret::parse(whsec).expect("a whsec_ secret");
        let sealer = agentgate::crypto::Sealer::new(&self.master());
        add_secret(store, &sealer, &endpoint, &secret, None, &origin)
            .await
            .expect("add secret");
        endpoint
    }

    /// Creates an admin key named `admin` and returns its text.
    pub async fn create_admin_key(&self) -> String {
        self.create_key_from(agentgate::keys::KeySpec {
            name: "admin".into(),
            role: agentgate::policy::Role::Admin,
            ..Default::default()
        })
        .await
    }

    /// The id of [`Self::key`], as the request log names it.
    pub async fn key_id(&self) -> agentgate::ids::KeyId {
        let keys = self.store.list_keys(&self.workspace).await.unwrap();
        keys.into_iter()
            .find(|key| key.name == "test agent")
            .expect("the test key")
            .id
    }

    /// Creates an agent key and returns its text.
    pub async fn create_key(&self, name: &str) -> String {
        self.create_key_from(agentgate::keys::KeySpec::agent(name))
            .await
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET through the data plane with the test key.
    pub async fn get(&self, stripe_path: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/v1/connections/stripe/{stripe_path}")))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request")
    }

    /// POST a form body through the data plane with the test key.
    pub async fn post_form(&self, stripe_path: &str, body: &'static str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/connections/stripe/{stripe_path}")))
            .bearer_auth(&self.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Like [`Self::post_form`], with the body sent chunked (no length, so the fast lane
    /// hands the request to hyper) and `headers` added.
    pub async fn post_form_streamed(
        &self,
        stripe_path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/connections/stripe/{stripe_path}")))
            .bearer_auth(&self.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(super::streamed(body.as_bytes(), 10));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request")
    }

    /// Waits until the request log holds at least `count` entries, and returns them.
    pub async fn logged(&self, count: usize) -> Vec<RequestLogRecord> {
        eventually(Duration::from_secs(5), "request log entries", || async {
            let query = LogQuery {
                after_id: None,
                limit: 1000,
                ..LogQuery::default()
            };
            let mut records = self
                .store
                .list_request_logs(&self.workspace, query)
                .await
                .unwrap();
            records.retain(|r| !crate::support::is_test_setup(&r.entry));
            (records.len() >= count).then_some(records)
        })
        .await
    }

    /// Stops the app gracefully and waits until it has.
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    /// Stops the app and serves again (default options, a new port) on the same database,
    /// master key and Stripe double, as an operator restarting the server would.
    pub async fn restart(mut self) -> Self {
        self.shutdown_now().await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.master_key)
            .unwrap();
        let master = MasterKey::from_bytes(bytes.try_into().unwrap());
        let base = self.double.base_url().parse().expect("stripe base");
        let config = Config::for_tests(&self.db.url, master, base);
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = main.local_addr().unwrap();
        self.sdk_addr = None;
        let app = App::build(config).await.expect("app builds");
        self.store = app.store();
        self.events = app.events();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            main,
            sdk: Vec::new(),
        };
        self.task = Some(tokio::spawn(app.serve(listeners, async {
            let _ = stopped.await;
        })));
        self.shutdown = Some(shutdown);
        self
    }

    async fn shutdown_now(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task").expect("serve returns Ok");
        }
    }
}

/// Opens a second store on the same database, as another process would.
pub async fn open_store(url: &str) -> Arc<dyn Store> {
    store::open(url).await.expect("open store")
}
