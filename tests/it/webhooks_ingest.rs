//! Webhook ingest (`POST /webhooks/ingest/<id>`): signatures checked against vectors made by
//! stripe-python (tests/fixtures/stripe_signatures.json), every refusal stores nothing,
//! duplicates are stored once, a store that cannot commit answers 503, and events
//! acknowledged by a server killed with SIGKILL again and again are all stored, once.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use agentgate::crypto::{MasterKey, Sealer};
use agentgate::ids::EndpointId;
use agentgate::store::{EventRecord, Store};
use agentgate::webhooks::endpoints::{self, SigningSecret};
use agentgate::webhooks::ingest::IngestSettings;
use agentgate::webhooks::signature;
use base64::Engine;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::backend::{Backend, TestDb};
use crate::support::served::ServedProcess;
use crate::support::TEST_SECRET;

/// The signing secret of test endpoints: a canary that must never appear in output.
const WHSEC: &str = "whsec_CanaryWebhookSecret0123456789abcdefXYZ";

// === helpers ===

/// A refused ingest: name, body, `Stripe-Signature`, expected status and error code.
type Refusal = (&'static str, Vec<u8>, Option<String>, u16, &'static str);

struct Hook {
    id: EndpointId,
    url: String,
}

fn sealer(master_key_b64: &str) -> Sealer {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(master_key_b64)
        .unwrap();
    Sealer::new(&MasterKey::from_bytes(bytes.try_into().unwrap()))
}

/// An endpoint of the default workspace's `stripe` connection, with [`WHSEC`] set.
async fn hook(app: &TestApp, types: &[&str]) -> Hook {
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    let record = app.signed_endpoint(&types, WHSEC).await;
    Hook {
        url: app.url(&format!("/webhooks/ingest/{}", record.id)),
        id: record.id,
    }
}

fn now() -> i64 {
    agentgate::time::now_millis() / 1000
}

fn event(id: &str, event_type: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","object":"event","type":"{event_type}","data":{{"object":{{}}}}}}"#)
        .into_bytes()
}

fn header_for(secret: &str, at: i64, payload: &[u8]) -> String {
    format!(
        "t={at},v1={}",
        signature::sign(secret.as_bytes(), at, payload)
    )
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    payload: Vec<u8>,
    header: Option<String>,
) -> reqwest::Response {
    let mut request = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(payload);
    if let Some(header) = header {
        request = request.header("Stripe-Signature", header);
    }
    request.send().await.expect("request")
}

async fn post_signed(app: &TestApp, hook: &Hook, payload: Vec<u8>) -> reqwest::Response {
    let header = header_for(WHSEC, now(), &payload);
    post(&app.client, &hook.url, payload, Some(header)).await
}

async fn stored(store: &dyn Store, id: &EndpointId) -> Vec<EventRecord> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.list_events(id, after, 1000, None).await.unwrap();
        let Some(last) = page.last() else {
            return all;
        };
        after = last.seq;
        all.extend(page);
    }
}

// === signature vectors from stripe-python ===

#[derive(Deserialize)]
struct Fixtures {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    secret: String,
    now: i64,
    tolerance: u64,
    payload: String,
    header: String,
    valid: bool,
}

#[test]
fn signatures_made_by_stripe_python_verify_as_recorded() {
    let text = include_str!("../fixtures/stripe_signatures.json");
    let fixtures: Fixtures = serde_json::from_str(text).unwrap();
    assert!(fixtures.cases.len() >= 12);
    for case in fixtures.cases {
        let verdict = signature::verify(
            Some(&case.header),
            case.payload.as_bytes(),
            &[case.secret.as_bytes()],
            case.now,
            Duration::from_secs(case.tolerance),
        );
        assert_eq!(verdict.is_ok(), case.valid, "{}: {verdict:?}", case.name);
    }
}

#[test]
fn a_secret_among_several_active_ones_verifies_a_stripe_python_vector() {
    let fixtures: Fixtures =
        serde_json::from_str(include_str!("../fixtures/stripe_signatures.json")).unwrap();
    let case = fixtures.cases.iter().find(|c| c.name == "valid").unwrap();
    let secrets = [
        b"whsec_rolledAwayOldSecret000".as_slice(),
        case.secret.as_bytes(),
    ];
    let verdict = signature::verify(
        Some(&case.header),
        case.payload.as_bytes(),
        &secrets,
        case.now,
        Duration::from_secs(case.tolerance),
    );
    assert!(verdict.is_ok());
}

// === ingest over HTTP ===

each_backend! {
    async fn a_signed_event_is_acknowledged_and_stored_as_sent(backend) {
        let app = TestApp::spawn(backend).await;
        let hook = hook(&app, &[]).await;
        let payload = event("evt_1", "customer.created");
        let response = post_signed(&app, &hook, payload.clone()).await;
        assert_eq!(response.status(), 200);
        let events = stored(app.store.as_ref(), &hook.id).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.event_id, "evt_1");
        assert_eq!(events[0].event.event_type, "customer.created");
        assert_eq!(events[0].event.payload, payload);
        assert_eq!(events[0].event.workspace_id, app.workspace);
    }

    async fn every_refusal_answers_its_status_and_stores_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let hook = hook(&app, &[]).await;
        let body = event("evt_refused", "customer.created");
        let t = now();
        let cases: Vec<Refusal> = vec![
            ("no header", body.clone(), None, 400, "signature_missing"),
            ("wrong secret", body.clone(), Some(header_for("whsec_wrongSecret123456", t, &body)), 400, "signature_mismatch"),
            ("body changed", event("evt_refusee", "customer.created"), Some(header_for(WHSEC, t, &body)), 400, "signature_mismatch"),
            ("stale", body.clone(), Some(header_for(WHSEC, t - 400, &body)), 400, "signature_timestamp_stale"),
            ("future", body.clone(), Some(header_for(WHSEC, t + 400, &body)), 400, "signature_timestamp_future"),
            ("v0 only", body.clone(), Some(format!("t={t},v0={}", signature::sign(WHSEC.as_bytes(), t, &body))), 400, "signature_v1_missing"),
            ("not json", b"not json".to_vec(), Some(header_for(WHSEC, t, b"not json")), 400, "event_invalid"),
            ("no type", br#"{"id":"evt_x"}"#.to_vec(), Some(header_for(WHSEC, t, br#"{"id":"evt_x"}"#)), 400, "event_invalid"),
        ];
        for (name, payload, header, status, code) in cases {
            let response = post(&app.client, &hook.url, payload, header).await;
            assert_eq!(response.status(), status, "{name}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{name}");
            assert_eq!(body["error"]["type"], "invalid_request_error", "{name}");
        }
        let big = vec![b' '; 1024 * 1024 + 1];
        let header = header_for(WHSEC, t, &big);
        let response = post(&app.client, &hook.url, big, Some(header)).await;
        assert_eq!(response.status(), 413);
        assert!(stored(app.store.as_ref(), &hook.id).await.is_empty());
    }

    async fn an_unknown_endpoint_is_404_and_one_without_secret_is_400(backend) {
        let app = TestApp::spawn(backend).await;
        let payload = event("evt_2", "customer.created");
        let header = header_for(WHSEC, now(), &payload);
        let unknown = app.url(&format!("/webhooks/ingest/{}", EndpointId::generate_unguessable()));
        let response = post(&app.client, &unknown, payload.clone(), Some(header.clone())).await;
        assert_eq!(response.status(), 404);
        let junk = post(&app.client, &app.url("/webhooks/ingest/..%2F"), payload.clone(), Some(header.clone())).await;
        assert_eq!(junk.status(), 404);

        let bare = endpoints::create_endpoint(app.store.as_ref(), &app.workspace, "stripe", &[], &crate::support::test_origin()).await.unwrap();
        let url = app.url(&format!("/webhooks/ingest/{}", bare.id));
        let response = post(&app.client, &url, payload, Some(header)).await;
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "webhook_secret_missing");
        assert!(stored(app.store.as_ref(), &bare.id).await.is_empty());
    }

    async fn the_same_event_posted_ten_times_at_once_is_stored_once(backend) {
        let app = TestApp::spawn(backend).await;
        let hook = hook(&app, &[]).await;
        let payload = event("evt_dup", "invoice.paid");
        let header = header_for(WHSEC, now(), &payload);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (client, url, payload, header) = (app.client.clone(), hook.url.clone(), payload.clone(), header.clone());
            tasks.push(tokio::spawn(async move { post(&client, &url, payload, Some(header)).await.status() }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
        let events = stored(app.store.as_ref(), &hook.id).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.event_id, "evt_dup");
    }

    async fn rolled_secrets_both_verify_and_expired_ones_do_not(backend) {
        let app = TestApp::spawn(backend).await;
        let hook = hook(&app, &[]).await;
        let record = endpoints::find_endpoint(app.store.as_ref(), &app.workspace, hook.id.as_str()).await.unwrap();
        let new = "whsec_RolledInSecretABCDEFGH123456";
        endpoints::add_secret(app.store.as_ref(), &sealer(&app.master_key), &record, &SigningSecret::parse(new).unwrap(), None, &crate::support::test_origin()).await.unwrap();
        for (n, secret) in [WHSEC, new].into_iter().enumerate() {
            let payload = event(&format!("evt_roll_{n}"), "customer.created");
            let header = header_for(secret, now(), &payload);
            assert_eq!(post(&app.client, &hook.url, payload, Some(header)).await.status(), 200);
        }
        let newest = "whsec_NewestSecretOnlyOneLeft9876";
        endpoints::add_secret(app.store.as_ref(), &sealer(&app.master_key), &record, &SigningSecret::parse(newest).unwrap(), Some(Duration::ZERO), &crate::support::test_origin()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let payload = event("evt_roll_old", "customer.created");
        let header = header_for(WHSEC, now(), &payload);
        assert_eq!(post(&app.client, &hook.url, payload, Some(header)).await.status(), 400);
        assert_eq!(stored(app.store.as_ref(), &hook.id).await.len(), 2);
    }

    async fn events_outside_the_type_filter_are_acknowledged_but_not_stored(backend) {
        let app = TestApp::spawn(backend).await;
        let hook = hook(&app, &["invoice.paid"]).await;
        assert_eq!(post_signed(&app, &hook, event("evt_a", "customer.created")).await.status(), 200);
        assert_eq!(post_signed(&app, &hook, event("evt_b", "invoice.paid")).await.status(), 200);
        let events = stored(app.store.as_ref(), &hook.id).await;
        let ids: Vec<&str> = events.iter().map(|e| e.event.event_id.as_str()).collect();
        assert_eq!(ids, vec!["evt_b"]);
    }

    async fn a_store_that_cannot_commit_answers_503_and_the_retry_is_stored_once(backend) {
        let options = TestOptions {
            ingest: IngestSettings { commit_timeout: Duration::from_millis(500), ..IngestSettings::default() },
            ..TestOptions::default()
        };
        let app = TestApp::spawn_with(backend, options).await;
        let hook = hook(&app, &[]).await;
        let payload = event("evt_locked", "customer.created");
        let lock = WriteLock::take(&app.db, backend).await;
        let response = post_signed(&app, &hook, payload.clone()).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "api_error");
        lock.release().await;
        // Stripe retries; the write held up behind the lock may have landed meanwhile.
        let retry = post_signed(&app, &hook, payload).await;
        assert_eq!(retry.status(), 200);
        assert_eq!(stored(app.store.as_ref(), &hook.id).await.len(), 1);
    }

    async fn every_delivery_to_a_known_endpoint_is_in_its_workspaces_log(backend) {
        let app = TestApp::spawn(backend).await;
        let hook = hook(&app, &["customer.created"]).await;
        let unknown = app.url(&format!("/webhooks/ingest/{}", EndpointId::generate_unguessable()));
        let stray = event("evt_stray", "customer.created");
        let header = header_for(WHSEC, now(), &stray);
        assert_eq!(post(&app.client, &unknown, stray, Some(header)).await.status(), 404);

        // Caused by an agent's request, whose Stripe Request-Id (the double's) the event names.
        assert_eq!(app.get("customers").await.status(), 200);
        let caused = br#"{"id":"evt_caused","object":"event","type":"customer.created","request":{"id":"req_double123","idempotency_key":"k-1"},"data":{"object":{}}}"#.to_vec();
        let first = post_signed(&app, &hook, caused.clone()).await;
        assert_eq!(first.status(), 200);
        let request_id = first.headers()["agentgate-request-id"].to_str().unwrap().to_owned();
        assert_eq!(post_signed(&app, &hook, caused).await.status(), 200);
        assert_eq!(post_signed(&app, &hook, event("evt_other", "invoice.paid")).await.status(), 200);
        let forged = event("evt_forged", "customer.created");
        let header = header_for("whsec_wrongSecret123456", now(), &forged);
        assert_eq!(post(&app.client, &hook.url, forged, Some(header)).await.status(), 400);

        let mut records = app.logged(5).await;
        records.sort_by_key(|r| r.id);
        let forwarded = records.remove(0);
        assert_eq!(forwarded.entry.stripe_request_id.as_deref(), Some("req_double123"));
        assert_eq!(records.len(), 4, "one entry a delivery, none for the unknown endpoint");
        let seen: Vec<_> = records.iter().map(|r| {
            let e = &r.entry;
            (e.status, &*e.outcome, e.idempotency_key.as_deref(), e.stripe_request_id.as_deref(), e.reason.as_deref())
        }).collect();
        assert_eq!(seen, vec![
            (200, "stored", Some("evt_caused"), Some("req_double123"), None),
            (200, "duplicate", Some("evt_caused"), Some("req_double123"), None),
            (200, "ignored", Some("evt_other"), None, None),
            (400, "caller", None, None, Some("signature_mismatch")),
        ]);
        for record in &records {
            let e = &record.entry;
            assert_eq!((&*e.via, e.key_id.as_str(), &*e.method), ("webhook", hook.id.as_str(), "POST"));
            assert_eq!(e.operation.as_deref(), Some("webhooks.ingest"));
            assert_eq!(e.path, format!("/webhooks/ingest/{}", hook.id));
            assert_eq!(e.connection, "stripe");
            assert_eq!(e.client, Some(std::net::IpAddr::from([127, 0, 0, 1])));
        }
        assert_eq!(records[0].entry.request_id, request_id);

        // The call and the deliveries of the event it caused, found by Stripe's request id.
        let admin = app.create_admin_key().await;
        let page: serde_json::Value = app.client
            .get(app.url("/api/v1/logs?stripe_request_id=req_double123"))
            .bearer_auth(&admin)
            .send().await.unwrap()
            .json().await.unwrap();
        let linked: Vec<(&str, &str)> = page["data"].as_array().unwrap().iter()
            .map(|e| (e["via"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(linked, [("webhook", "duplicate"), ("webhook", "stored"), ("http", "forwarded")], "{page}");
        app.stop().await;
    }

    async fn no_webhook_secret_appears_in_logs_responses_or_the_database_file(backend) {
        let app = TestApp::spawn(backend).await;
        let hook = hook(&app, &[]).await;
        let ok = post_signed(&app, &hook, event("evt_canary", "customer.created")).await;
        assert_eq!(ok.status(), 200);
        let refused = post(&app.client, &hook.url, event("evt_c2", "x.y"), Some("t=1,v1=00".into())).await;
        let text = refused.text().await.unwrap();
        assert!(!text.contains(WHSEC) && !text.contains("CanaryWebhook"));
        if let Some(file) = &app.db.sqlite_file {
            let bytes = std::fs::read(file).unwrap();
            let wal = std::fs::read(file.with_extension("db-wal")).unwrap_or_default();
            for haystack in [bytes, wal] {
                assert!(!haystack.windows(13).any(|w| w == b"CanaryWebhook"), "secret stored in clear");
            }
        }
    }
}

// === endpoints through the CLI and the management API ===

each_backend! {
    async fn the_cli_creates_registers_rolls_lists_and_removes_an_endpoint(backend) {
        use crate::support::cli::{run, stderr, stdout};
        use crate::support::stripe_double::Reply;
        let app = TestApp::spawn(backend).await;
        let (db, key) = (app.db.url.clone(), app.master_key.clone());
        let public = ["--public-url", "https://gw.example.com"];
        let created = run(&db, &key, &[&["webhooks", "create", "--connection", "stripe", "--events", "invoice.paid", "--json"][..], &public[..]].concat(), "");
        assert!(created.status.success(), "{}", stderr(&created));
        let out: serde_json::Value = serde_json::from_str(&stdout(&created)).unwrap();
        let id = out["id"].as_str().unwrap().to_owned();
        assert_eq!(out["url"], format!("https://gw.example.com/webhooks/ingest/{id}"));

        let from_stripe = "whsec_FromTheStripeDouble12345678";
        app.double.respond(Reply::stripe_ok(&format!(r#"{{"id":"we_123","object":"webhook_endpoint","secret":"{from_stripe}"}}"#)));
        let base = app.double.base_url();
        let registered = run(&db, &key, &[&["webhooks", "register", &id, "--stripe-api-base", &base][..], &public[..]].concat(), "");
        assert!(registered.status.success(), "{}", stderr(&registered));
        assert_eq!(stdout(&registered).trim(), "we_123");
        let sent = app.double.single();
        assert_eq!(sent.target, "/v1/webhook_endpoints");
        assert_eq!(sent.headers["authorization"], format!("Bearer {TEST_SECRET}"));
        let form = String::from_utf8(sent.body.to_vec()).unwrap();
        assert!(form.contains(&format!("url=https%3A%2F%2Fgw.example.com%2Fwebhooks%2Fingest%2F{id}")), "{form}");
        assert!(form.contains("enabled_events%5B%5D=invoice.paid"), "{form}");

        let url = app.url(&format!("/webhooks/ingest/{id}"));
        let payload = event("evt_cli_1", "invoice.paid");
        let header = header_for(from_stripe, now(), &payload);
        assert_eq!(post(&app.client, &url, payload, Some(header)).await.status(), 200);

        let rolled = run(&db, &key, &["webhooks", "set-secret", &id, "--expire-others-in", "0s"], WHSEC);
        assert!(rolled.status.success(), "{}", stderr(&rolled));
        let payload = event("evt_cli_2", "invoice.paid");
        let old = header_for(from_stripe, now(), &payload);
        assert_eq!(post(&app.client, &url, payload.clone(), Some(old)).await.status(), 400);
        let new = header_for(WHSEC, now(), &payload);
        assert_eq!(post(&app.client, &url, payload, Some(new)).await.status(), 200);

        let listed = run(&db, &key, &["webhooks", "list"], "");
        assert!(stdout(&listed).contains(&id) && stdout(&listed).contains("we_123"));
        let removed = run(&db, &key, &["webhooks", "remove", &id], "");
        assert!(removed.status.success(), "{}", stderr(&removed));
        let payload = event("evt_cli_3", "invoice.paid");
        let header = header_for(WHSEC, now(), &payload);
        assert_eq!(post(&app.client, &url, payload, Some(header)).await.status(), 404);
        for output in [&created, &registered, &rolled, &listed, &removed] {
            let all = format!("{}{}", stdout(output), stderr(output));
            assert!(!all.contains("whsec_"), "a signing secret was printed: {all}");
        }
    }

    async fn the_management_api_manages_endpoints_without_showing_secrets(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.create_admin_key().await;
        let api = |path: &str| app.url(&format!("/api/v1/webhooks{path}"));
        let created: serde_json::Value = app.client.post(api("")).bearer_auth(&admin)
            .json(&serde_json::json!({ "connection": "stripe", "events": ["customer.created"] }))
            .send().await.unwrap().json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["object"], "webhook_endpoint");
        assert!(created["url"].as_str().unwrap().ends_with(&format!("/webhooks/ingest/{id}")));
        let added = app.client.post(api(&format!("/{id}/secrets"))).bearer_auth(&admin)
            .json(&serde_json::json!({ "secret": WHSEC })).send().await.unwrap();
        assert_eq!(added.status(), 200);
        assert!(!added.text().await.unwrap().contains("whsec_"));
        let url = app.url(&format!("/webhooks/ingest/{id}"));
        let payload = event("evt_api", "customer.created");
        let header = header_for(WHSEC, now(), &payload);
        assert_eq!(post(&app.client, &url, payload, Some(header)).await.status(), 200);
        let bad = app.client.post(api(&format!("/{id}/secrets"))).bearer_auth(&admin)
            .json(&serde_json::json!({ "secret": "sk_test_notawebhooksecret" })).send().await.unwrap();
        assert_eq!(bad.status(), 400);
        let listed = app.client.get(api("")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
        assert!(listed.contains(&id) && !listed.contains("whsec_"));
        let deleted = app.client.delete(api(&format!("/{id}"))).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(deleted.status(), 200);
        let shown = app.client.get(api(&format!("/{id}"))).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(shown.status(), 404);
    }
}

/// Another connection holding the database's write lock on the events table, so ingest
/// commits wait: SQLite `BEGIN IMMEDIATE`, PostgreSQL `LOCK TABLE events`.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn take(db: &TestDb, backend: Backend) -> Self {
        use sqlx::Connection;
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteLock::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteLock::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteLock::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            WriteLock::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
        }
    }
}

// === crash test ===

/// Events sent in the crash test, and how many kills.
const CRASH_EVENTS: usize = 2_400;
const CRASH_SENDERS: usize = 24;
const CRASH_KILLS: usize = 6;

each_backend! {
    async fn every_event_acknowledged_before_sigkill_is_stored_exactly_once(backend) {
        let db = TestDb::create(backend).await;
        let master = MasterKey::generate();
        let master_b64 = master.to_base64().to_string();
        let store = agentgate::store::open(&db.url).await.unwrap();
        let workspace = store.ensure_workspace("default").await.unwrap().id;
        let sealer = sealer(&master_b64);
        agentgate::crypto::verify_master_key(store.as_ref(), &sealer).await.unwrap();
        let stripe_key = agentgate::connections::stripe::StripeSecret::parse(TEST_SECRET).unwrap();
        agentgate::connections::set_stripe_connection(store.as_ref(), &sealer, &workspace, "stripe", &stripe_key, &crate::support::test_origin()).await.unwrap();
        let record = endpoints::create_endpoint(store.as_ref(), &workspace, "stripe", &[], &crate::support::test_origin()).await.unwrap();
        endpoints::add_secret(store.as_ref(), &sealer, &record, &SigningSecret::parse(WHSEC).unwrap(), None, &crate::support::test_origin()).await.unwrap();
        let id = record.id.clone();

        let server = ServedProcess::start(&db.url, &master_b64, "http://127.0.0.1:9", "info");
        let addr = Arc::new(RwLock::new(server.addr));
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
        let mut senders = Vec::new();
        for sender in 0..CRASH_SENDERS {
            let (addr, acked, client, id) = (addr.clone(), acked.clone(), client.clone(), id.clone());
            senders.push(tokio::spawn(async move {
                let mut attempts = 0u64;
                for n in (sender..CRASH_EVENTS).step_by(CRASH_SENDERS) {
                    let event_id = format!("evt_crash_{n:05}");
                    let payload = event(&event_id, "customer.created");
                    loop {
                        attempts += 1;
                        let url = format!("http://{}/webhooks/ingest/{id}", *addr.read().unwrap());
                        let header = header_for(WHSEC, now(), &payload);
                        let sent = client.post(&url).header("Stripe-Signature", header).body(payload.clone()).send().await;
                        if sent.is_ok_and(|r| r.status().is_success()) {
                            acked.lock().unwrap().push(event_id);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                }
                attempts
            }));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED_0005);
        let mut server = server;
        for _ in 0..CRASH_KILLS {
            tokio::time::sleep(Duration::from_millis(rng.random_range(150..700))).await;
            let status = std::process::Command::new("kill").args(["-KILL", &server.pid().to_string()]).status().unwrap();
            assert!(status.success());
            let _ = tokio::task::spawn_blocking(move || server.wait()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..100))).await;
            let db_url = db.url.clone();
            let master = master_b64.clone();
            server = tokio::task::spawn_blocking(move || ServedProcess::start(&db_url, &master, "http://127.0.0.1:9", "info")).await.unwrap();
            *addr.write().unwrap() = server.addr;
        }
        let started = Instant::now();
        let mut attempts = 0;
        for sender in senders {
            attempts += sender.await.unwrap();
        }
        eprintln!("crash test: {CRASH_EVENTS} events, {attempts} attempts, {CRASH_KILLS} SIGKILLs, last phase {:?}", started.elapsed());
        server.terminate();
        let (_, logs) = tokio::task::spawn_blocking(move || server.wait()).await.unwrap();
        assert!(!logs.contains("CanaryWebhook"), "a webhook secret was logged");

        let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
        assert_eq!(acked.len(), CRASH_EVENTS);
        let store = agentgate::store::open(&db.url).await.unwrap();
        let events = stored(store.as_ref(), &id).await;
        let mut seen = HashSet::new();
        for record in &events {
            assert!(seen.insert(record.event.event_id.clone()), "{} stored twice", record.event.event_id);
        }
        for event_id in &acked {
            assert!(seen.contains(event_id), "{event_id} was acknowledged but is not stored");
        }
        assert_eq!(events.len(), CRASH_EVENTS);
    }
}
