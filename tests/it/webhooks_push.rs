//! Push to agents: a real receiver on loopback gets each event signed per Standard Webhooks
//! (checked with the specification's own `standardwebhooks` crate), after failures that the
//! attempt log shows; replay delivers again; the SSRF guard refuses private and metadata
//! URLs; redirects are not followed; a restart resumes; failing for long disables.
//! Retries use `PushConfig::for_tests` (the real schedule divided by 1000).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgate::app::{App, Listeners};
use agentgate::audit::ChangeOrigin;
use agentgate::config::Config;
use agentgate::crypto::{MasterKey, Sealer};
use agentgate::ids::{DestinationId, EndpointId, WorkspaceId};
use agentgate::store::push::{AttemptRecord, DeliveryState, DestinationState, EventSelector};
use agentgate::store::{LogQuery, NewEvent, Store, WebhookEndpointRecord};
use agentgate::webhooks::push::{self, DestinationSpec, PushConfig};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::each_backend;
use crate::support::backend::{Backend, TestDb};
use crate::support::{cli, eventually};

const WAIT: Duration = Duration::from_secs(15);

/// What a receiver does with a push.
#[derive(Clone, Copy)]
enum Answer {
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// 302 to this URL's receiver, always.
    Redirect,
    /// 503 until switched.
    Down,
}

/// One push as received.
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

struct ReceiverState {
    answer: Mutex<Answer>,
    hits: AtomicUsize,
    received: Mutex<Vec<Received>>,
    redirect_to: Mutex<String>,
}

/// A throwaway HTTP receiver on 127.0.0.1:0.
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(answer: Answer) -> Self {
        let state = Arc::new(ReceiverState {
            answer: Mutex::new(answer),
            hits: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
            redirect_to: Mutex::new(String::new()),
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    async fn wait_for(&self, hits: usize) -> Vec<Received> {
        eventually(WAIT, "pushes to the receiver", || async {
            (self.hits() >= hits).then(|| self.received())
        })
        .await
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let hit = state.hits.fetch_add(1, Ordering::SeqCst);
    state.received.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
    });
    let answer = *state.answer.lock().unwrap();
    match answer {
        Answer::FailFirst(n) if hit < n => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Answer::FailFirst(_) => StatusCode::OK.into_response(),
        Answer::Down => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Answer::Redirect => {
            let to = state.redirect_to.lock().unwrap().clone();
            (StatusCode::FOUND, [("location", to)]).into_response()
        }
    }
}

/// agentgate served in-process on a fresh database, with the push settings given.
struct TestApp {
    addr: std::net::SocketAddr,
    db: TestDb,
    master_key: String,
    config: PushConfig,
    store: Arc<dyn Store>,
    workspace: WorkspaceId,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A stopped [`TestApp`]: its database and key, to serve again as a restart would.
struct Stopped {
    db: TestDb,
    master_key: String,
    config: PushConfig,
}

impl TestApp {
    async fn spawn(backend: Backend) -> Self {
        Self::spawn_with_push(backend, PushConfig::for_tests()).await
    }

    async fn spawn_with_push(backend: Backend, config: PushConfig) -> Self {
        let master_key = MasterKey::generate().to_base64().to_string();
        let stopped = Stopped {
            db: TestDb::create(backend).await,
            master_key,
            config,
        };
        stopped.start().await
    }

    async fn stop(self) {
        self.restart_later().await;
    }

    /// Stops serving (gracefully) and keeps what a restart needs.
    async fn restart_later(self) -> Stopped {
        let _ = self.shutdown.send(());
        self.task
            .await
            .expect("serve task")
            .expect("serve returns Ok");
        Stopped {
            db: self.db,
            master_key: self.master_key,
            config: self.config,
        }
    }
}

impl Stopped {
    async fn start(self) -> TestApp {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.master_key)
            .unwrap();
        let master = MasterKey::from_bytes(bytes.try_into().unwrap());
        let mut config =
            Config::for_tests(&self.db.url, master, "http://127.0.0.1:9".parse().unwrap());
        config.push = self.config.clone();
        // The receivers are on loopback; the API's refusal is tested in `api`.
        config.api_allow_private_destinations = true;
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = main.local_addr().unwrap();
        let app = App::build(config).await.expect("app builds");
        let store = app.store();
        let workspace = app.default_workspace().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            main,
            sdk: Vec::new(),
        };
        let task = tokio::spawn(app.serve(listeners, async {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            db: self.db,
            master_key: self.master_key,
            config: self.config,
            store,
            workspace,
            shutdown,
            task,
        }
    }
}

fn sealer(app: &TestApp) -> Sealer {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&app.master_key)
        .unwrap();
    Sealer::new(&MasterKey::from_bytes(bytes.try_into().unwrap()))
}

async fn endpoint(store: &dyn Store, workspace: &WorkspaceId) -> EndpointId {
    let record = WebhookEndpointRecord {
        id: EndpointId::generate_unguessable(),
        workspace_id: workspace.clone(),
        connection: "stripe".to_owned(),
        event_types: Vec::new(),
        stripe_endpoint_id: None,
        created_at: agentgate::time::now_millis(),
    };
    let audit = crate::support::test_audit(workspace);
    store
        .insert_webhook_endpoint(&record, &audit)
        .await
        .unwrap();
    record.id
}

/// Stores a Stripe-shaped event as ingest would; the push tasks find it by their scan.
async fn store_event(
    store: &dyn Store,
    workspace: &WorkspaceId,
    endpoint: &EndpointId,
    event_type: &str,
) -> (String, Vec<u8>) {
    let id = format!("evt_{}", agentgate::ids::random_base62(20));
    let payload = format!(
        r#"{{"id":"{id}","object":"event","type":"{event_type}","data":{{"object":{{}}}}}}"#
    )
    .into_bytes();
    let stored = store
        .insert_events(&[NewEvent {
            endpoint_id: endpoint.clone(),
            workspace_id: workspace.clone(),
            event_id: id.clone(),
            event_type: event_type.to_owned(),
            received_at: agentgate::time::now_millis(),
            payload: payload.clone(),
        }])
        .await
        .unwrap();
    assert!(stored[0].is_some());
    (id, payload)
}

async fn destination(
    app: &TestApp,
    endpoint: &EndpointId,
    url: &str,
    event_types: &[&str],
) -> (DestinationId, String) {
    let created = push::create_destination(
        app.store.as_ref(),
        &sealer(app),
        &app.workspace,
        DestinationSpec {
            endpoint: endpoint.clone(),
            url: url.to_owned(),
            event_types: event_types.iter().map(|t| t.to_string()).collect(),
            allow_private: true,
        },
        agentgate::time::now_millis(),
        &crate::support::test_origin(),
    )
    .await
    .expect("destination created");
    (created.record.id, created.secret.to_string())
}

/// The attempt log, oldest first, once it holds `count` attempts.
async fn attempts(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &DestinationId,
    count: usize,
) -> Vec<AttemptRecord> {
    eventually(WAIT, "recorded attempts", || async {
        let mut log = push::list_attempts(store, workspace, id, 100)
            .await
            .unwrap();
        log.reverse();
        (log.len() >= count).then_some(log)
    })
    .await
}

/// Checks the push with the Standard Webhooks reference library.
fn verify(secret: &str, push: &Received) {
    let webhook = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    webhook
        .verify(&push.body, &push.headers)
        .expect("the Standard Webhooks library accepts the signature");
    let mut tampered = push.body.clone();
    tampered[1] ^= 1;
    assert!(webhook.verify(&tampered, &push.headers).is_err());
}

each_backend! {
    async fn a_receiver_failing_twice_gets_the_event_signed_and_the_log_shows_the_failures(backend) {
        let app = TestApp::spawn(backend).await;
        let receiver = Receiver::start(Answer::FailFirst(2)).await;
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let (id, secret) = destination(&app, &endpoint, &receiver.url, &["customer.created"]).await;
        store_event(app.store.as_ref(), &app.workspace, &endpoint, "invoice.paid").await;
        let (event_id, payload) =
            store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.created").await;

        let pushes = receiver.wait_for(3).await;
        let log = attempts(app.store.as_ref(), &app.workspace, &id, 3).await;
        let statuses: Vec<Option<u16>> = log.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
        assert!(log[0].error.as_deref().unwrap().contains("HTTP 500"));
        assert!(log.iter().all(|a| a.event_id == event_id && a.delivery_id == log[0].delivery_id));
        assert_eq!(log[2].delivery_state, DeliveryState::Succeeded);
        assert!(log[1].attempted_at >= log[0].attempted_at + 4, "backoff between attempts");
        for push in &pushes {
            assert_eq!(push.body, payload, "the event exactly as stored");
            assert_eq!(push.headers["webhook-id"], event_id.as_str());
            assert_eq!(push.headers["content-type"], "application/json");
            verify(&secret, push);
        }
        // The filter kept invoice.paid out, and nothing more arrives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.hits(), 3);
        app.stop().await;
    }

    async fn replay_delivers_one_event_or_a_time_range_again(backend) {
        let app = TestApp::spawn(backend).await;
        let receiver = Receiver::start(Answer::FailFirst(0)).await;
        let other = Receiver::start(Answer::FailFirst(0)).await;
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let (id, secret) = destination(&app, &endpoint, &receiver.url, &[]).await;
        let (other_id, _) = destination(&app, &endpoint, &other.url, &[]).await;
        let started = agentgate::time::now_millis();
        let (first, _) = store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.created").await;
        store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.updated").await;
        receiver.wait_for(2).await;
        other.wait_for(2).await;

        // One event, to one destination, through the CLI.
        let out = cli::run(&app.db.url, &app.master_key,
            &["events", "replay", endpoint.as_str(), "--event", &first, "--destination", id.as_str()], "");
        assert!(out.status.success(), "{}", cli::stderr(&out));
        assert!(cli::stdout(&out).contains("1 deliveries queued"));
        let pushes = receiver.wait_for(3).await;
        assert_eq!(pushes[2].headers["webhook-id"], first.as_str());
        verify(&secret, &pushes[2]);
        // A time range, to every destination.
        let range = EventSelector::Range { since: started - 1000, until: agentgate::time::now_millis() + 1000 };
        let path = format!("/webhook-endpoints/{endpoint}/replay");
        let ada = ChangeOrigin::operator("ada", &Method::POST, path.clone(), None);
        let replay = |origin| {
            let (store, workspace, endpoint, range) = (app.store.clone(), app.workspace.clone(), endpoint.clone(), range.clone());
            async move {
                let now = agentgate::time::now_millis();
                push::replay(store.as_ref(), &workspace, &endpoint, &range, None, now, &origin).await
            }
        };
        assert_eq!(replay(ada.clone()).await.unwrap(), 4);
        receiver.wait_for(5).await;
        other.wait_for(4).await;
        let log = attempts(app.store.as_ref(), &app.workspace, &other_id, 4).await;
        assert!(log.iter().all(|a| a.status == Some(200)));

        // Each replay is recorded: who, through which surface, which events, where to.
        let records = |operation: &str| {
            let query = LogQuery { operation: Some(operation.to_owned()), limit: 10, ..LogQuery::default() };
            let store = app.store.clone();
            let workspace = app.workspace.clone();
            async move { store.list_request_logs(&workspace, query).await.unwrap() }
        };
        let cli = records("cli.webhooks.replay").await;
        assert_eq!(cli.len(), 1);
        assert_eq!(cli[0].entry.path, format!("events replay {endpoint} --event {first} --destination {id}"));
        assert_eq!((cli[0].entry.key_id.as_str(), cli[0].entry.connection.as_str()), ("cli", "stripe"));
        let dashboard = records("dashboard.webhooks.replay").await;
        assert_eq!(dashboard.len(), 1);
        assert_eq!((dashboard[0].entry.key_id.as_str(), dashboard[0].entry.path.as_str()), ("operator:ada", path.as_str()));

        // A replay whose record cannot be written queues nothing.
        let queued = app.db.count("push_deliveries").await;
        app.db.refuse_inserts("request_log", true).await;
        assert!(matches!(replay(ada.clone()).await, Err(push::PushError::Store(_))));
        app.db.refuse_inserts("request_log", false).await;
        assert_eq!(app.db.count("push_deliveries").await, queued);
        app.stop().await;
    }

    async fn private_and_metadata_urls_are_refused_without_allow_private(backend) {
        let app = TestApp::spawn(backend).await;
        let receiver = Receiver::start(Answer::FailFirst(0)).await;
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let add = |url: &str, allow: bool| {
            let mut args = vec!["destinations", "add", endpoint.as_str(), "--url", url];
            if allow {
                args.push("--allow-private");
            }
            cli::run(&app.db.url, &app.master_key, &args, "")
        };
        for url in [
            "http://127.0.0.1:9/x",
            "http://10.0.0.1/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/x",
            "http://localhost:9/x",
            "ftp://example.com/x",
        ] {
            let out = add(url, false);
            assert!(!out.status.success(), "{url} was accepted");
            assert!(cli::stderr(&out).contains("refused"), "{url}: {}", cli::stderr(&out));
        }
        // Metadata stays refused even when private addresses are allowed.
        let out = add("http://169.254.169.254/", true);
        assert!(cli::stderr(&out).contains("cloud metadata"), "{}", cli::stderr(&out));
        let out = add(&receiver.url, true);
        assert!(out.status.success(), "{}", cli::stderr(&out));
        let shown = cli::stdout(&out);
        let secret = shown.split("signing secret: ").nth(1).unwrap().trim().to_owned();
        assert!(secret.starts_with("whsec_"));
        let listed = cli::run(&app.db.url, &app.master_key, &["destinations", "list", endpoint.as_str(), "--json"], "");
        let listed = cli::stdout(&listed);
        assert!(listed.contains(&receiver.url) && !listed.contains(&secret));
        let rows = app.store.list_push_destinations(&app.workspace, Some(&endpoint)).await.unwrap();
        assert_eq!(rows.len(), 1, "only the allowed destination is stored");
        assert!(!app.db.dump().windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is stored sealed");
        app.stop().await;
    }

    async fn redirects_are_not_followed(backend) {
        let app = TestApp::spawn(backend).await;
        let redirecting = Receiver::start(Answer::Redirect).await;
        let target = Receiver::start(Answer::FailFirst(0)).await;
        *redirecting.state.redirect_to.lock().unwrap() = target.url.clone();
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let (id, _) = destination(&app, &endpoint, &redirecting.url, &[]).await;
        store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.created").await;
        let log = attempts(app.store.as_ref(), &app.workspace, &id, 2).await;
        assert_eq!(log[0].status, Some(302));
        assert!(log[0].error.as_deref().unwrap().contains("redirects are not followed"));
        assert_eq!(log[0].delivery_state, DeliveryState::Pending);
        assert_eq!(target.hits(), 0, "the redirect target was never contacted");
        app.stop().await;
    }

    async fn a_restart_resumes_pending_deliveries_and_unseen_events(backend) {
        let app = TestApp::spawn(backend).await;
        let receiver = Receiver::start(Answer::Down).await;
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let (id, secret) = destination(&app, &endpoint, &receiver.url, &[]).await;
        let (failing, _) = store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.created").await;
        attempts(app.store.as_ref(), &app.workspace, &id, 1).await;
        let store = app.store.clone();
        let workspace = app.workspace.clone();
        let stopped = app.restart_later().await;
        // While no server runs: an event arrives, and the receiver recovers.
        let (unseen, _) = store_event(store.as_ref(), &workspace, &endpoint, "customer.updated").await;
        receiver.answer(Answer::FailFirst(0));
        let before = receiver.hits();
        let app = stopped.start().await;
        let pushes = eventually(WAIT, "both events delivered", || async {
            let got: Vec<String> = receiver.received()[before..]
                .iter()
                .map(|p| p.headers["webhook-id"].to_str().unwrap().to_owned())
                .collect();
            (got.contains(&failing) && got.contains(&unseen)).then(|| receiver.received())
        })
        .await;
        verify(&secret, pushes.last().unwrap());
        app.stop().await;
    }
}

each_backend! {
    async fn a_delivery_whose_event_is_gone_never_carries_another_events_body(backend) {
        let app = TestApp::spawn(backend).await;
        let receiver = Receiver::start(Answer::Down).await;
        let endpoint_a = endpoint(app.store.as_ref(), &app.workspace).await;
        let other = endpoint(app.store.as_ref(), &app.workspace).await;
        let (id, _) = destination(&app, &endpoint_a, &receiver.url, &[]).await;
        store_event(app.store.as_ref(), &app.workspace, &endpoint_a, "customer.created").await;
        attempts(app.store.as_ref(), &app.workspace, &id, 1).await;
        let seq = app.store.list_events(&endpoint_a, 0, 10, None).await.unwrap()[0].seq;
        // The pending delivery's event goes, and another endpoint's event is stored under its
        // cursor, as a cursor handed out again would store it.
        let intruder = b"intruder canary payload";
        let hex: String = intruder.iter().map(|b| format!("{b:02x}")).collect();
        let (overriding, payload) = match backend {
            Backend::Sqlite => ("", format!("X'{hex}'")),
            Backend::Postgres => ("OVERRIDING SYSTEM VALUE", format!("'\\x{hex}'::bytea")),
        };
        app.db.execute(&format!(
            "BEGIN; DELETE FROM events WHERE seq = {seq}; \
             INSERT INTO events (seq, endpoint_id, workspace_id, event_id, event_type, \
             received_at, payload) {overriding} VALUES ({seq}, '{other}', '{}', 'evt_intruder', \
             'customer.created', 0, {payload}); COMMIT",
            app.workspace
        ))
        .await;
        receiver.answer(Answer::FailFirst(0));
        let last = eventually(WAIT, "an attempt after the receiver recovered", || async {
            let log = push::list_attempts(app.store.as_ref(), &app.workspace, &id, 100)
                .await
                .unwrap();
            log.into_iter().find(|a| a.status != Some(503))
        })
        .await;
        assert_eq!(last.delivery_state, DeliveryState::Failed);
        assert_eq!(last.error.as_deref(), Some("the event was pruned by retention"));
        let bodies = receiver.received();
        assert!(bodies.iter().all(|p| p.body != intruder), "another event's body was pushed");
        app.stop().await;
    }
}

each_backend! {
    async fn a_destination_failing_for_too_long_is_disabled_and_can_be_enabled(backend) {
        let config = PushConfig {
            disable_after: Duration::from_millis(200),
            ..PushConfig::for_tests()
        };
        let app = TestApp::spawn_with_push(backend, config).await;
        let receiver = Receiver::start(Answer::Down).await;
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let (id, _) = destination(&app, &endpoint, &receiver.url, &[]).await;
        store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.created").await;
        let disabled = eventually(WAIT, "the destination disabled", || async {
            let d = app.store.find_push_destination(&app.workspace, &id).await.unwrap().unwrap();
            (d.state == DestinationState::Disabled).then_some(d)
        })
        .await;
        assert!(disabled.disabled_at.is_some());
        let log = attempts(app.store.as_ref(), &app.workspace, &id, 2).await;
        assert!(log.iter().all(|a| a.status == Some(503)));
        assert_eq!(log.last().unwrap().delivery_state, DeliveryState::Failed);
        let hits = receiver.hits();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.hits(), hits, "nothing is attempted while disabled");

        let out = cli::run(&app.db.url, &app.master_key, &["destinations", "enable", id.as_str()], "");
        assert!(out.status.success(), "{}", cli::stderr(&out));
        receiver.answer(Answer::FailFirst(0));
        let (event, _) = store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.updated").await;
        let pushes = receiver.wait_for(hits + 1).await;
        assert_eq!(pushes.last().unwrap().headers["webhook-id"], event.as_str());
        app.stop().await;
    }
}

each_backend! {
    async fn a_delivery_leased_by_an_instance_that_died_is_attempted_after_the_lease(backend) {
        let app = TestApp::spawn(backend).await;
        let receiver = Receiver::start(Answer::FailFirst(0)).await;
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let (id, _) = destination(&app, &endpoint, &receiver.url, &[]).await;
        let stopped = app.restart_later().await;
        // Another instance stores an event, fans it out, claims it and dies mid-attempt.
        let store = agentgate::store::open(&stopped.db.url).await.unwrap();
        let workspace = store.find_workspace("default").await.unwrap().unwrap().id;
        let (event, _) = store_event(store.as_ref(), &workspace, &endpoint, "customer.created").await;
        let seq = store.list_events_to_replay(&workspace, &endpoint, &EventSelector::One(event.clone()), 1).await.unwrap()[0].seq;
        let now = agentgate::time::now_millis();
        let delivery = agentgate::store::push::NewDelivery {
            id: agentgate::ids::DeliveryId::generate(),
            destination_id: id.clone(),
            workspace_id: workspace.clone(),
            event_seq: seq,
            event_id: event.clone(),
            replay: 0,
            created_at: now,
        };
        assert_eq!(store.create_push_deliveries(&id, Some(seq), &[delivery]).await.unwrap(), 1);
        let lease = Duration::from_millis(1500);
        let claimed = store.claim_push_deliveries(now, now + lease.as_millis() as i64, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let app = stopped.start().await;
        tokio::time::sleep(lease / 2).await;
        assert_eq!(receiver.hits(), 0, "the lease is respected while it lasts");
        let pushes = receiver.wait_for(1).await;
        assert_eq!(pushes[0].headers["webhook-id"], event.as_str());
        assert!(agentgate::time::now_millis() >= now + lease.as_millis() as i64);
        app.stop().await;
    }
}

each_backend! {
    async fn the_management_api_creates_lists_and_removes_destinations_and_shows_attempts(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = agentgate::keys::create_key(
            app.store.as_ref(),
            &app.workspace,
            agentgate::keys::KeySpec { name: "admin".into(), role: agentgate::policy::Role::Admin, ..Default::default() },
            &crate::support::test_origin(),
        )
        .await
        .unwrap()
        .key
        .to_string();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let call = |method: reqwest::Method, path: String, body: Option<serde_json::Value>| {
            let mut request = client.request(method, format!("http://{}{path}", app.addr)).bearer_auth(&admin);
            if let Some(body) = body {
                request = request.json(&body);
            }
            async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
            }
        };
        let receiver = Receiver::start(Answer::FailFirst(1)).await;
        let endpoint = endpoint(app.store.as_ref(), &app.workspace).await;
        let collection = format!("/api/v1/webhooks/{endpoint}/destinations");
        let (status, refused) = call(reqwest::Method::POST, collection.clone(), Some(serde_json::json!({ "url": "http://10.0.0.1/" }))).await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["error"]["param"], "url");
        let body = serde_json::json!({ "url": receiver.url, "allow_private": true });
        let (status, created) = call(reqwest::Method::POST, collection.clone(), Some(body)).await;
        assert_eq!(status, 200, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, list) = call(reqwest::Method::GET, collection.clone(), None).await;
        assert_eq!((status, list["data"][0]["id"].as_str()), (200, Some(id.as_str())));
        assert!(!list.to_string().contains(&secret));

        store_event(app.store.as_ref(), &app.workspace, &endpoint, "customer.created").await;
        let pushes = receiver.wait_for(2).await;
        verify(&secret, &pushes[1]);
        let attempts_path = format!("/api/v1/destinations/{id}/attempts");
        let log = eventually(WAIT, "two attempts in the API", || async {
            let (_, log) = call(reqwest::Method::GET, attempts_path.clone(), None).await;
            (log["data"].as_array().map_or(0, Vec::len) == 2).then_some(log)
        })
        .await;
        assert_eq!(log["data"][0]["status"], 200);
        assert_eq!(log["data"][1]["status"], 500);
        let (status, deleted) = call(reqwest::Method::DELETE, format!("/api/v1/destinations/{id}"), None).await;
        assert_eq!((status, deleted["deleted"].as_bool()), (200, Some(true)));
        let (status, _) = call(reqwest::Method::GET, attempts_path, None).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}
