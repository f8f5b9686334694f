//! Several instances on one PostgreSQL database behave as one system: a revocation or a
//! replaced Stripe key made through one instance's management API is in force on the other
//! within a second; an event ingested on one reaches a stream on the other at once (its
//! store poll set to a minute, so only the database's notification can carry it); push
//! deliveries are made once each across instances, and all of them even when one instance
//! is killed mid-run; daily guardrail totals and per-key rate limits hold across instances;
//! request log entries become visible in the order of their ids.
//!
//! PostgreSQL only: SQLite serves one instance. Skipped, with a line saying so, unless
//! `AGENTGATE_TEST_POSTGRES` is set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgate::crypto::Sealer;
use agentgate::ids::{EndpointId, WorkspaceId};
use agentgate::policy::{Rate, Scopes};
use agentgate::store::{LogPace, LogQuery};
use agentgate::webhooks::push::{self, DestinationSpec};
use agentgate::webhooks::signature;
use agentgate::webhooks::stream::StreamSettings;
use axum::extract::State;
use futures_util::StreamExt;
use sqlx::Connection;
use tokio::net::TcpListener;

use crate::support::app::{open_store, TestApp, TestOptions};
use crate::support::backend::{Backend, TestDb};
use crate::support::eventually;
use crate::support::peer::Peer;
use crate::support::served::ServedProcess;

const WHSEC: &str = "whsec_ClusterTestSecret0123456789abcdefXYZ";

/// Whether the PostgreSQL cluster tests run; prints why not when they do not.
fn enabled(test: &str) -> bool {
    Backend::postgres_enabled(&format!("cluster::{test}"))
}

fn sealer(app: &TestApp) -> Sealer {
    Sealer::new(&app.master())
}

/// Two instances on one fresh PostgreSQL schema: a [`TestApp`] and a [`Peer`].
async fn two_instances() -> (TestApp, Peer) {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = Peer::start(&a, TestOptions::default()).await;
    (a, b)
}

/// An endpoint of the `stripe` connection with [`WHSEC`] as its signing secret.
async fn endpoint(app: &TestApp) -> EndpointId {
    app.signed_endpoint(&[], WHSEC).await.id
}

/// Posts a signed Stripe event to an instance's ingest URL; it must be acknowledged.
async fn ingest(client: &reqwest::Client, base: &str, endpoint: &EndpointId, id: &str) {
    let payload = format!(
        r#"{{"id":"{id}","object":"event","type":"invoice.paid","data":{{"object":{{}}}}}}"#
    );
    let at = agentgate::time::now_millis() / 1000;
    let header = format!(
        "t={at},v1={}",
        signature::sign(WHSEC.as_bytes(), at, payload.as_bytes())
    );
    let response = client
        .post(format!("{base}/webhooks/ingest/{endpoint}"))
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", header)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "ingest of {id} at {base}");
}

async fn get_customers(client: &reqwest::Client, base: &str, key: &str) -> u16 {
    client
        .get(format!("{base}/v1/connections/stripe/customers"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn create_payment_intent(client: &reqwest::Client, base: &str, key: &str) -> u16 {
    client
        .post(format!("{base}/v1/connections/stripe/payment_intents"))
        .bearer_auth(key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("amount=3000&currency=usd")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `check` holds, failing after a second: the bound the issue promises.
async fn within_a_second<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{what}: not within a second"
        );
    }
}

/// The `Agentgate-Request-Id` of a GET of customers through the instance at `base`.
async fn request_id_of_a_get(client: &reqwest::Client, base: &str, key: &str) -> String {
    let response = client
        .get(format!("{base}/v1/connections/stripe/customers"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["agentgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_entry_names_the_instance_that_served_or_changed() {
    if !enabled("instance_names") {
        return;
    }
    let (a, b) = two_instances().await;
    let via_a = request_id_of_a_get(&a.client, &a.url(""), &a.key).await;
    let via_b = request_id_of_a_get(&a.client, &b.url(""), &a.key).await;
    let admin = a.create_admin_key().await;
    let made = a
        .client
        .post(b.url("/api/v1/keys"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "made-on-b"}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{}", made.status());
    let cli = crate::support::cli::run(
        &a.db.url,
        &a.master_key,
        &["keys", "create", "--name", "made-by-cli"],
        "",
    );
    assert!(
        cli.status.success(),
        "{}",
        crate::support::cli::stderr(&cli)
    );

    let records = eventually(Duration::from_secs(5), "both requests logged", || async {
        let records = a.logged(4).await;
        let ids: Vec<&str> = records
            .iter()
            .map(|r| r.entry.request_id.as_str())
            .collect();
        (ids.contains(&via_a.as_str()) && ids.contains(&via_b.as_str())).then_some(records)
    })
    .await;
    let instance_of = |find: &dyn Fn(&agentgate::store::RequestLogEntry) -> bool| {
        let found: Vec<Option<&str>> = records
            .iter()
            .filter(|r| find(&r.entry))
            .map(|r| r.instance.as_deref())
            .collect();
        assert_eq!(found.len(), 1, "one entry");
        found[0]
    };
    assert_eq!(instance_of(&|e| e.request_id == via_a), Some("test"));
    assert_eq!(
        instance_of(&|e| e.request_id == via_b),
        Some(crate::support::peer::PEER_INSTANCE)
    );
    assert_eq!(
        instance_of(&|e| e.operation.as_deref() == Some("api.keys.create")),
        Some(crate::support::peer::PEER_INSTANCE)
    );
    assert_eq!(
        instance_of(&|e| e.operation.as_deref() == Some("cli.keys.create")),
        None
    );
    let query = LogQuery {
        limit: 100,
        instance: Some(crate::support::peer::PEER_INSTANCE.into()),
        ..LogQuery::default()
    };
    let by_peer = a
        .store
        .list_request_logs(&a.workspace, query)
        .await
        .unwrap();
    let ids: Vec<&str> = by_peer
        .iter()
        .map(|r| r.entry.request_id.as_str())
        .collect();
    assert!(
        ids.contains(&via_b.as_str()) && !ids.contains(&via_a.as_str()),
        "{ids:?}"
    );
    assert!(by_peer
        .iter()
        .all(|r| r.instance.as_deref() == Some(crate::support::peer::PEER_INSTANCE)));
    // The CLI's table names the instance too, in its last column.
    let listed = crate::support::cli::run(&a.db.url, &a.master_key, &["logs", "list"], "");
    let table = crate::support::cli::stdout(&listed);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .trim_end()
            .ends_with("INSTANCE"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains(&via_b))
        .expect("the peer's request listed");
    assert!(row.ends_with(crate::support::peer::PEER_INSTANCE), "{row}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_and_a_replaced_stripe_key_reach_the_other_instance_within_a_second() {
    if !enabled("revocation_and_stripe_key") {
        return;
    }
    let (a, b) = two_instances().await;
    let base_b = b.url("");
    assert_eq!(get_customers(&a.client, &base_b, &a.key).await, 200);

    // Both changes are made through the first instance's management API.
    let admin = a.create_admin_key().await;
    let replacement = "sk_test_51ReplacementKeyForTheCluster0000000000";
    let replaced = a
        .client
        .put(a.url("/api/v1/connections/stripe"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"secret_key": replacement}))
        .send()
        .await
        .unwrap();
    assert!(replaced.status().is_success(), "{}", replaced.status());
    within_a_second(
        "the replaced Stripe key used by the other instance",
        || async {
            get_customers(&a.client, &base_b, &a.key).await;
            let last = a.double.received().pop().unwrap();
            last.headers["authorization"] == format!("Bearer {replacement}").as_str()
        },
    )
    .await;

    let agent = a.store.list_keys(&a.workspace).await.unwrap();
    let agent = agent.iter().find(|k| k.name != "admin").unwrap();
    let revoked = a
        .client
        .post(a.url(&format!("/api/v1/keys/{}/revoke", agent.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    within_a_second("the revocation in force on the other instance", || async {
        get_customers(&a.client, &base_b, &a.key).await == 401
    })
    .await;
    let forwarded = a.double.received().len();
    assert_eq!(get_customers(&a.client, &base_b, &a.key).await, 401);
    assert_eq!(
        a.double.received().len(),
        forwarded,
        "nothing forwarded once revoked"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_ingested_on_one_instance_reaches_a_stream_on_the_other_at_once() {
    if !enabled("event_stream") {
        return;
    }
    let a = TestApp::spawn(Backend::Postgres).await;
    // The other instance reads the store only once a minute: a quick arrival is the
    // database's notification.
    let b = Peer::start(
        &a,
        TestOptions {
            event_stream: StreamSettings {
                heartbeat: Duration::from_secs(15),
                poll: Duration::from_secs(60),
            },
            ..TestOptions::default()
        },
    )
    .await;
    let whe = endpoint(&a).await;
    let response = a
        .client
        .get(b.url(&format!("/v1/webhooks/{whe}/events/stream")))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    // The stream is open once its first bytes (a heartbeat comment) arrived, or once it
    // has subscribed; an event ingested now can only reach it live.
    let mut seen = String::new();
    for n in 0..3 {
        let id = format!("evt_cluster_{n}");
        let started = Instant::now();
        ingest(&a.client, &a.url(""), &whe, &id).await;
        while !seen.contains(&id) {
            let chunk = tokio::time::timeout(Duration::from_secs(1), body.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("{id} did not reach the other instance's stream within a second")
                })
                .expect("the stream is open")
                .unwrap();
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        eprintln!("ingest on A to stream on B: {:?}", started.elapsed());
    }
    drop(body);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_guardrail_totals_are_exact_across_instances() {
    if !enabled("guardrails") {
        return;
    }
    let (a, b) = two_instances().await;
    let scopes = Scopes {
        daily_limit: vec!["usd:10000".parse().unwrap()],
        ..Scopes::default()
    };
    let key = a.create_key_with("clustered", scopes).await;
    let bases = [a.url(""), b.url("")];
    // Twenty requests of 3000 against 10000, alternating instances, all at once: three fit.
    let requests = (0..20).map(|n| create_payment_intent(&a.client, &bases[n % 2], &key));
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        17,
        "{statuses:?}"
    );
    assert_eq!(a.double.received().len(), 3);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_spent_its_burst_on_one_instance_is_limited_on_the_other() {
    if !enabled("rate_limits") {
        return;
    }
    let (a, b) = two_instances().await;
    const BURST: u32 = 20;
    let scopes = Scopes {
        rate: Some(Rate {
            per_second: 1,
            burst: BURST,
        }),
        ..Scopes::default()
    };
    let key = a.create_key_with("clustered", scopes).await;
    let started = Instant::now();
    let admitted_by = |base: String| {
        let (client, key) = (a.client.clone(), key.clone());
        async move {
            let mut admitted = 0;
            while get_customers(&client, &base, &key).await == 200 {
                admitted += 1;
                assert!(admitted <= 100, "never limited");
            }
            admitted
        }
    };
    let on_a = admitted_by(a.url("")).await;
    assert!(on_a >= BURST, "the burst on the first instance: {on_a}");
    // Once the first instance has handed all its takes to the database (every 100 ms),
    // the other starts its bucket from there: nearly empty.
    let pool = sqlx::PgPool::connect(&a.db.url).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the takes in the shared bucket",
        || async {
            let ahead: Option<i64> = sqlx::query_scalar(
                "SELECT tat_us - (extract(epoch FROM clock_timestamp()) * 1000000)::bigint \
             FROM rate_buckets WHERE bucket LIKE 'key_%'",
            )
            .fetch_optional(&pool)
            .await
            .unwrap();
            // The bucket's arrival time started near `started` and moves a second a token:
            // every take of the first instance is in once it is `on_a` seconds (less one, for
            // rounding) past the start.
            let since_start = i64::try_from(started.elapsed().as_micros()).unwrap();
            ahead.filter(|us| us + since_start >= (i64::from(on_a) - 1) * 1_000_000)
        },
    )
    .await;
    let on_b = admitted_by(b.url("")).await;
    // One bucket for both: the burst plus what refilled meanwhile (one a second). Two
    // buckets would have admitted a burst on each.
    let refilled = u32::try_from(started.elapsed().as_secs()).unwrap() + 1;
    assert!(
        on_a + on_b <= BURST + refilled,
        "{on_a} on the first and {on_b} on the second instance in {:?}",
        started.elapsed()
    );
    assert_eq!(
        a.double.received().len(),
        (on_a + on_b) as usize,
        "refusals never reach Stripe"
    );
    pool.close().await;
    b.stop().await;
    a.stop().await;
}

/// Counts pushes by event id; answers each after `delay`, so deliveries are in flight when
/// an instance is killed.
#[derive(Clone, Default)]
struct Counter {
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

impl Counter {
    async fn start(delay: Duration) -> (Self, String) {
        let counter = Self::default();
        let app = axum::Router::new()
            .fallback(
                move |State(counter): State<Counter>, body: axum::body::Bytes| async move {
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let id = event["id"].as_str().unwrap().to_owned();
                    *counter.seen.lock().unwrap().entry(id).or_default() += 1;
                    tokio::time::sleep(delay).await;
                    "ok"
                },
            )
            .with_state(counter.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (counter, url)
    }

    fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn total(&self) -> usize {
        self.seen.lock().unwrap().values().sum()
    }
}

/// Two instances (this process and a child process) pushing one endpoint's events to one
/// destination; the child can be killed.
struct PushCluster {
    a: TestApp,
    b: ServedProcess,
    endpoint: EndpointId,
    counter: Counter,
}

impl PushCluster {
    async fn start(receiver_delay: Duration) -> Self {
        let a = TestApp::spawn(Backend::Postgres).await;
        let b = ServedProcess::start_with(
            &a.db.url,
            &a.master_key,
            &a.double.base_url(),
            "info",
            &[
                ("AGENTGATE_PUSH_TIMEOUT", "2s"),
                ("AGENTGATE_PUSH_LEASE", "3s"),
            ],
        );
        let endpoint = endpoint(&a).await;
        let (counter, url) = Counter::start(receiver_delay).await;
        push::create_destination(
            a.store.as_ref(),
            &sealer(&a),
            &a.workspace,
            DestinationSpec {
                endpoint: endpoint.clone(),
                url,
                event_types: Vec::new(),
                allow_private: true,
            },
            agentgate::time::now_millis(),
            &crate::support::test_origin(),
        )
        .await
        .expect("destination created");
        Self {
            a,
            b,
            endpoint,
            counter,
        }
    }

    /// Ingests `count` events a few at a time, alternating instances or all on the first.
    async fn ingest(&self, count: usize, alternate: bool) {
        let b = format!("http://{}", self.b.addr);
        let bases = [self.a.url(""), if alternate { b } else { self.a.url("") }];
        let bases = &bases;
        for batch in (0..count).collect::<Vec<_>>().chunks(25) {
            let posts = batch.iter().map(|n| async move {
                let id = format!("evt_push_{n}");
                ingest(&self.a.client, &bases[n % 2], &self.endpoint, &id).await
            });
            futures_util::future::join_all(posts).await;
        }
    }

    async fn all_delivered(&self, count: usize) {
        eventually(Duration::from_secs(60), "every event pushed", || async {
            (self.counter.distinct() == count).then_some(())
        })
        .await;
    }

    /// Deliveries not yet marked succeeded in the database.
    async fn undelivered(&self) -> i64 {
        let pool = sqlx::PgPool::connect(&self.a.db.url).await.unwrap();
        let count =
            sqlx::query_scalar("SELECT count(*) FROM push_deliveries WHERE state <> 'succeeded'")
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        count
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_are_pushed_exactly_once_across_two_instances() {
    if !enabled("push_exactly_once") {
        return;
    }
    let cluster = PushCluster::start(Duration::ZERO).await;
    cluster.ingest(1000, true).await;
    cluster.all_delivered(1000).await;
    eventually(
        Duration::from_secs(10),
        "every delivery recorded",
        || async { (cluster.undelivered().await == 0).then_some(()) },
    )
    .await;
    let counts = cluster.counter.seen.lock().unwrap().clone();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        let pool = sqlx::PgPool::connect(&cluster.a.db.url).await.unwrap();
        let attempts: Vec<(String, Option<i32>, Option<String>, i64)> = sqlx::query_as(
            "SELECT d.event_id, a.status, a.error, a.attempted_at FROM push_attempts a \
             JOIN push_deliveries d ON d.id = a.delivery_id WHERE d.event_id = ANY($1) \
             ORDER BY d.event_id, a.id",
        )
        .bind(twice.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
        .fetch_all(&pool)
        .await
        .unwrap();
        cluster.b.terminate();
        let (_, logs) = cluster.b.wait();
        let warnings: Vec<&str> = logs.lines().filter(|l| !l.contains("\"INFO\"")).collect();
        panic!("pushed more than once: {twice:?}; attempts: {attempts:?}; the other instance's warnings: {warnings:#?}");
    }
    assert_eq!(cluster.counter.total(), 1000);
    cluster.b.terminate();
    cluster.b.wait();
    cluster.a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_pushed_when_one_instance_is_killed_mid_run() {
    if !enabled("push_survives_kill") {
        return;
    }
    let cluster = PushCluster::start(Duration::from_millis(50)).await;
    // Ingest goes to the instance that stays; the other is killed while it delivers.
    let ingesting = async {
        cluster.ingest(1000, false).await;
    };
    let kill_after_100 = async {
        eventually(Duration::from_secs(30), "deliveries under way", || async {
            (cluster.counter.total() >= 100).then_some(())
        })
        .await;
        cluster.b.kill();
        cluster.counter.distinct()
    };
    let ((), delivered_at_kill) = tokio::join!(ingesting, kill_after_100);
    cluster.all_delivered(1000).await;
    eventually(
        Duration::from_secs(10),
        "every delivery recorded",
        || async { (cluster.undelivered().await == 0).then_some(()) },
    )
    .await;
    eprintln!(
        "killed with {delivered_at_kill} of 1000 delivered; {} pushes in all (the excess were in flight at the kill)",
        cluster.counter.total()
    );
    cluster.a.stop().await;
}

/// A request log batch of one entry, `request_id`, written as an instance's log writer does.
async fn log_one(
    store: Arc<dyn agentgate::store::Store>,
    workspace: WorkspaceId,
    request_id: &str,
) {
    let entry = crate::support::log_entry(&workspace, request_id);
    store
        .insert_request_logs(vec![entry], &[], LogPace::Share)
        .await
        .unwrap();
}

/// A request log insert of `agr_held` held in a trigger (in one schema) until released:
/// the trigger waits for an advisory lock the test holds. Each test takes its own lock id,
/// since advisory locks span the database.
struct HeldInsert {
    test: sqlx::PgConnection,
    lock: i64,
}

impl HeldInsert {
    /// Installs the trigger in `url`'s schema and takes the lock.
    async fn hold(url: &str, lock: i64) -> Self {
        let mut test = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(&format!(
            "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.request_id = 'agr_held' THEN \
                 PERFORM pg_advisory_lock({lock}); PERFORM pg_advisory_unlock({lock}); \
               END IF; RETURN NEW; END $$; \
             CREATE TRIGGER hold BEFORE INSERT ON request_log \
               FOR EACH ROW EXECUTE FUNCTION hold();"
        ))
        .execute(&mut test)
        .await
        .unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(lock)
            .execute(&mut test)
            .await
            .unwrap();
        Self { test, lock }
    }

    /// Logs `agr_held` through `store` (whose sessions are named `application`) and
    /// returns once its insert waits in the trigger.
    async fn log(
        &self,
        store: Arc<dyn agentgate::store::Store>,
        workspace: &WorkspaceId,
        monitor: &sqlx::PgPool,
        application: &str,
    ) -> tokio::task::JoinHandle<()> {
        let held = tokio::spawn(log_one(store, workspace.clone(), "agr_held"));
        eventually(Duration::from_secs(10), "the batch to be held", || async {
            waits(monitor, application).await.then_some(())
        })
        .await;
        held
    }

    /// Lets the held insert go on.
    async fn release(mut self) {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.lock)
            .execute(&mut self.test)
            .await
            .unwrap();
    }
}

/// Whether `insert` (by sessions named `application`) finishes before it is seen waiting
/// for a lock; one or the other within 10 s.
async fn commits_without_waiting(
    insert: &tokio::task::JoinHandle<()>,
    monitor: &sqlx::PgPool,
    application: &str,
) -> bool {
    let limit = Duration::from_secs(10);
    eventually(limit, "the batch to commit or wait", || async {
        if insert.is_finished() {
            return Some(true);
        }
        waits(monitor, application).await.then_some(false)
    })
    .await
}

/// Whether the sessions named `application` wait for a lock.
async fn waits(monitor: &sqlx::PgPool, application: &str) -> bool {
    let (waiting,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE a.application_name = $1 AND NOT l.granted",
    )
    .bind(application)
    .fetch_one(monitor)
    .await
    .unwrap();
    waiting > 0
}

/// Request log ids become visible in the order they were taken, across instances, so a
/// reader that goes on from the highest id it has seen (`logs tail`) misses no entry. One
/// instance's batch is held in a trigger after taking its id; the other instance's batch
/// must wait for it rather than commit a higher id first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_ids_become_visible_in_the_order_they_were_taken() {
    if !enabled("request_log_order") {
        return;
    }
    let db = TestDb::create(Backend::Postgres).await;
    let run = agentgate::ids::random_base62(8).to_lowercase();
    let (first, second) = (format!("first_{run}"), format!("second_{run}"));
    let named = |name: &str| format!("{}&application_name={name}", db.url);
    let a = open_store(&named(&first)).await;
    let b = open_store(&named(&second)).await;
    let workspace = a.ensure_workspace("default").await.unwrap().id;
    let hold = HeldInsert::hold(&db.url, 4242).await;
    let monitor = sqlx::PgPool::connect(&db.url).await.unwrap();
    let held = hold.log(a.clone(), &workspace, &monitor, &first).await;
    let next = tokio::spawn(log_one(b.clone(), workspace.clone(), "agr_next"));
    assert!(
        !commits_without_waiting(&next, &monitor, &second).await,
        "the second batch committed while the first held a lower id"
    );
    hold.release().await;
    held.await.unwrap();
    next.await.unwrap();
    let query = LogQuery {
        after_id: Some(0),
        limit: 10,
        ..LogQuery::default()
    };
    let ids: Vec<String> = a
        .list_request_logs(&workspace, query)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.entry.request_id)
        .collect();
    assert_eq!(ids, ["agr_held", "agr_next"]);
}

/// The ordering lock is per schema: deployments sharing one database in several schemas
/// do not wait for each other's log writes. One schema's batch is held in a trigger while
/// it holds its lock; a batch in another schema commits meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_writes_in_another_schema_do_not_wait() {
    if !enabled("request_log_schemas") {
        return;
    }
    let (held_db, other_db) = (
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
    );
    let run = agentgate::ids::random_base62(8).to_lowercase();
    let (first, second) = (format!("held_{run}"), format!("other_{run}"));
    let a = open_store(&format!("{}&application_name={first}", held_db.url)).await;
    let b = open_store(&format!("{}&application_name={second}", other_db.url)).await;
    let a_workspace = a.ensure_workspace("default").await.unwrap().id;
    let b_workspace = b.ensure_workspace("default").await.unwrap().id;
    let hold = HeldInsert::hold(&held_db.url, 4243).await;
    let monitor = sqlx::PgPool::connect(&held_db.url).await.unwrap();
    let held = hold.log(a.clone(), &a_workspace, &monitor, &first).await;
    let other = tokio::spawn(log_one(b.clone(), b_workspace.clone(), "agr_other"));
    assert!(
        commits_without_waiting(&other, &monitor, &second).await,
        "a batch in another schema waited for the held one"
    );
    hold.release().await;
    held.await.unwrap();
    other.await.unwrap();
}
