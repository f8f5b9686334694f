//! The audit of management changes (`src/audit.rs`): every change to a workspace's Stripe
//! keys, agentgate keys, webhook endpoints and push destinations is recorded once, naming
//! who made it and through which surface (CLI, API, dashboard), a change whose record
//! cannot be written is not made, and on PostgreSQL a change and the log's writer take
//! their locks in one order.

use std::collections::HashSet;
use std::net::IpAddr;

use agentgate::ids::WorkspaceId;
use agentgate::keys::KeySpec;
use agentgate::policy::Role;
use agentgate::store::{LogQuery, RequestLogEntry, RequestLogRecord};
use reqwest::Method;
use serde_json::{json, Value};

use crate::dashboard::Browser;
use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::backend::Backend;
use crate::support::{cli, TEST_SECRET};

/// A second Stripe key, stored over the first.
const NEW_SECRET: &str = "sk_test_51AuditReplacementKey0123456789abcdefghijklmnopqrstuvw";

/// An admin key of the app's workspace, made before the test's own changes.
async fn admin_key(app: &TestApp) -> (String, String) {
    let spec = KeySpec {
        name: "admin".into(),
        role: Role::Admin,
        ..Default::default()
    };
    let origin = crate::support::test_origin();
    let created = agentgate::keys::create_key(app.store.as_ref(), &app.workspace, spec, &origin)
        .await
        .unwrap();
    (created.key.to_string(), created.record.id.to_string())
}

/// A management API call with the admin key: the status and the JSON answer.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    admin: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(admin);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The CLI on the app's database; asserts it succeeded and returns its stdout.
fn cli_ok(app: &TestApp, args: &[&str], stdin: &str) -> String {
    let output = cli::run(&app.db.url, &app.master_key, args, stdin);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        cli::stderr(&output)
    );
    cli::stdout(&output)
}

/// The workspace's applied changes, as the store lists them (oldest first), read straight from the store: no queue
/// stands between a change and its record, so nothing needs waiting for.
async fn applied(app: &TestApp, workspace: &WorkspaceId) -> Vec<RequestLogEntry> {
    applied_records(app, workspace)
        .await
        .into_iter()
        .map(|r| r.entry)
        .collect()
}

/// The records of [`applied`], in the same order, with the instance that wrote each.
async fn applied_records(app: &TestApp, workspace: &WorkspaceId) -> Vec<RequestLogRecord> {
    let query = LogQuery {
        limit: 1000,
        ..LogQuery::default()
    };
    let records = app.store.list_request_logs(workspace, query).await.unwrap();
    records
        .into_iter()
        .filter(|r| r.entry.outcome == "applied")
        .collect()
}

each_backend! {
    async fn every_change_is_recorded_once_with_who_made_it_and_how(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, admin_id) = admin_key(&app).await;
        let before = applied(&app, &app.workspace).await.len();

        cli_ok(&app, &["connections", "set", "billing"], NEW_SECRET);
        let created: Value = serde_json::from_str(&cli_ok(&app, &["keys", "create", "--name", "bot", "--json"], "")).unwrap();
        let bot = created["id"].as_str().unwrap().to_owned();
        let bot_key = created["key"].as_str().unwrap().to_owned();
        cli_ok(&app, &["connections", "validation", "billing", "off"], "");
        cli_ok(&app, &["keys", "revoke", &bot], "");
        cli_ok(&app, &["connections", "remove", "billing"], "");

        let put = json!({ "secret_key": NEW_SECRET });
        assert_eq!(call(&app, Method::PUT, "/api/v1/connections/payouts", &admin, Some(put)).await.0, 200);
        let (status, api_key) = call(&app, Method::POST, "/api/v1/keys", &admin, Some(json!({ "name": "api-bot" }))).await;
        assert_eq!(status, 200);
        assert_eq!(call(&app, Method::DELETE, "/api/v1/connections/payouts", &admin, None).await.0, 200);
        // A refusal is recorded as one too, never as a change.
        assert_eq!(call(&app, Method::DELETE, "/api/v1/connections/payouts", &admin, None).await.0, 404);

        let mut browser = Browser::from_address(&app, "127.0.0.3");
        browser.set_up(&app).await;
        let form = browser.get("/keys").await;
        let made = browser.post("/keys", &[("csrf", &form.csrf()), ("name", "dash-bot")]).await;
        assert!(made.status.is_success(), "{}", made.body);

        let changes = applied(&app, &app.workspace).await;
        let changes = &changes[before..];
        let seen: Vec<(&str, &str, &str, &str, &str)> = changes
            .iter()
            .map(|e| (e.operation.as_deref().unwrap(), e.key_id.as_str(), &*e.via, &*e.method, e.connection.as_str()))
            .collect();
        let operator = "operator:ada";
        assert_eq!(seen, [
            ("cli.connections.set", "cli", "cli", "CLI", "billing"),
            ("cli.keys.create", "cli", "cli", "CLI", ""),
            ("cli.connections.validation", "cli", "cli", "CLI", "billing"),
            ("cli.keys.revoke", "cli", "cli", "CLI", ""),
            ("cli.connections.delete", "cli", "cli", "CLI", "billing"),
            ("api.connections.set", admin_id.as_str(), "api", "PUT", "payouts"),
            ("api.keys.create", admin_id.as_str(), "api", "POST", ""),
            ("api.connections.delete", admin_id.as_str(), "api", "DELETE", "payouts"),
            ("dashboard.keys.create", operator, "dashboard", "POST", ""),
        ]);
        assert_eq!(changes[3].path, format!("keys revoke {bot}"));
        assert_eq!(changes[5].path, "/api/v1/connections/payouts");
        assert_eq!(changes[8].path, "/keys");
        assert!(changes.iter().all(|e| e.status == 200 && e.request_id.starts_with("agr_")));
        let clients: Vec<Option<IpAddr>> = changes.iter().map(|e| e.client).collect();
        let (none, loopback, third) = (None, Some(IpAddr::from([127, 0, 0, 1])), Some(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(clients, [none, none, none, none, none, loopback, loopback, loopback, third], "the CLI has no address");
        let ids: HashSet<&str> = changes.iter().map(|e| e.request_id.as_str()).collect();
        assert_eq!(ids.len(), changes.len(), "one record a change");
        let instances: Vec<Option<String>> = applied_records(&app, &app.workspace).await[before..]
            .iter()
            .map(|r| r.instance.clone())
            .collect();
        let (none, served) = (None, Some("test".to_owned()));
        assert_eq!(instances, [
            none.clone(), none.clone(), none.clone(), none.clone(), none,
            served.clone(), served.clone(), served.clone(), served,
        ], "the serving instance's changes name it, the CLI's none");

        let everything = format!("{:?}", app.store.list_request_logs(&app.workspace, LogQuery { limit: 1000, ..LogQuery::default() }).await.unwrap());
        let api_key = api_key["key"].as_str().unwrap();
        for secret in [TEST_SECRET, NEW_SECRET, bot_key.as_str(), api_key, admin.as_str()] {
            assert!(!everything.contains(secret), "a secret reached the audit");
        }
        let listed = cli_ok(&app, &["logs", "list", "--json", "--key", "cli"], "");
        assert!(listed.contains("cli.keys.revoke"), "{listed}");
        let query = LogQuery { operation: Some("cli.keys.revoke".into()), limit: 1, ..LogQuery::default() };
        let revoked = app.store.list_request_logs(&app.workspace, query).await.unwrap().remove(0);
        let page = browser.get(&format!("/logs/{}", revoked.id)).await;
        assert!(page.body.contains("the CLI") && page.body.contains(&format!("keys revoke {bot}")), "{}", page.body);
        app.stop().await;
    }

    async fn a_change_whose_record_cannot_be_written_is_not_made(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, _) = admin_key(&app).await;
        let keys_before = app.store.list_keys(&app.workspace).await.unwrap().len();
        let hint_before = app.store.find_connection(&app.workspace, "stripe").await.unwrap().unwrap().secret_hint;
        app.db.refuse_inserts("request_log", true).await;

        let refused = cli::run(&app.db.url, &app.master_key, &["connections", "set", "stripe"], NEW_SECRET);
        assert!(!refused.status.success());
        let refused = cli::run(&app.db.url, &app.master_key, &["keys", "create", "--name", "unrecorded"], "");
        assert!(!refused.status.success());
        assert!(cli::stdout(&refused).is_empty(), "no key is shown for a key that was not made");
        let put = json!({ "secret_key": NEW_SECRET });
        assert_eq!(call(&app, Method::PUT, "/api/v1/connections/stripe", &admin, Some(put)).await.0, 500);
        assert_eq!(call(&app, Method::POST, "/api/v1/keys", &admin, Some(json!({ "name": "unrecorded" }))).await.0, 500);
        assert_eq!(call(&app, Method::DELETE, "/api/v1/connections/stripe", &admin, None).await.0, 500);

        let connection = app.store.find_connection(&app.workspace, "stripe").await.unwrap().expect("not removed");
        assert_eq!(connection.secret_hint, hint_before, "the key was not replaced");
        assert_eq!(app.store.list_keys(&app.workspace).await.unwrap().len(), keys_before);

        app.db.refuse_inserts("request_log", false).await;
        cli_ok(&app, &["connections", "set", "stripe"], NEW_SECRET);
        let connection = app.store.find_connection(&app.workspace, "stripe").await.unwrap().unwrap();
        assert_ne!(connection.secret_hint, hint_before);
        app.stop().await;
    }
}

/// The request log writer's PostgreSQL lock (`REQUEST_LOG_WRITER_LOCK` in `src/store/sql.rs`,
/// "agentlog" in ASCII), taken per schema as the writer takes it.
const LOG_WRITER_LOCK: i64 = 0x6167_656e_746c_6f67;

/// The lock order that keeps an audited change and the request log's writer from
/// deadlocking on PostgreSQL: the writer takes its lock, then moves keys' `last_used_at`; a
/// change must take the same lock before it touches any row. Here a session plays the
/// writer: it holds the lock while a revocation through the API waits for it, then updates
/// the very key being revoked. Were the revocation holding the key's row while it waits for
/// the lock, that update would wait for the revocation, and PostgreSQL would end one of
/// the two as a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waiting_for_the_log_writer_holds_no_row_the_writer_needs() {
    use sqlx::{Connection, Row};
    if !Backend::postgres_enabled(
        "audit::a_change_waiting_for_the_log_writer_holds_no_row_the_writer_needs",
    ) {
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let (admin, _) = admin_key(&app).await;
    app.create_key("victim").await;
    let keys = app.store.list_keys(&app.workspace).await.unwrap();
    let victim = keys
        .iter()
        .find(|k| k.name == "victim")
        .unwrap()
        .id
        .to_string();

    let mut writer = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let mut tx = writer.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1 # hashtextextended(current_schema(), 0))")
        .bind(LOG_WRITER_LOCK)
        .execute(&mut *tx)
        .await
        .unwrap();
    let revoke = {
        let (client, url, admin) = (
            app.client.clone(),
            app.url(&format!("/api/v1/keys/{victim}/revoke")),
            admin.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let watcher = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    crate::support::eventually(
        std::time::Duration::from_secs(5),
        "the revocation waiting for the lock",
        || {
            let watcher = watcher.clone();
            async move {
                // This schema's writer lock, as PostgreSQL shows a 64-bit advisory key: its
                // high and low halves in `classid` and `objid`.
                let waiting: i64 = sqlx::query(
                    "WITH k AS (SELECT $1 # hashtextextended(current_schema(), 0) AS key) \
                 SELECT count(*) FROM pg_locks, k WHERE locktype = 'advisory' AND NOT granted \
                 AND objsubid = 1 AND classid::bigint = (key >> 32) & 4294967295 \
                 AND objid::bigint = key & 4294967295",
                )
                .bind(LOG_WRITER_LOCK)
                .fetch_one(&watcher)
                .await
                .unwrap()
                .get(0);
                (waiting > 0).then_some(())
            }
        },
    )
    .await;
    sqlx::query("UPDATE agent_keys SET last_used_at = 1 WHERE id = $1")
        .bind(&victim)
        .execute(&mut *tx)
        .await
        .expect("the writer's update is not blocked by the waiting change");
    tx.commit().await.unwrap();
    assert_eq!(
        revoke.await.unwrap(),
        200,
        "the revocation goes through once the lock is free"
    );
    let revoked = app.store.list_keys(&app.workspace).await.unwrap();
    assert!(revoked
        .iter()
        .find(|k| k.id.as_str() == victim)
        .unwrap()
        .revoked_at
        .is_some());
    app.stop().await;
}
