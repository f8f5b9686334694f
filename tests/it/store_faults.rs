//! The database failing under a running server: locked by another session, or out of
//! space. The proxy keeps serving from its caches (keys and connections are cached; the
//! request log is written off the hot path), webhook ingest answers 503 and never 2xx
//! without a commit, and everything works again once the fault clears, with no restart.

use std::time::Duration;

use agentgate::connections::set_stripe_connection;
use agentgate::connections::stripe::StripeSecret;
use agentgate::crypto::{verify_master_key, MasterKey, Sealer};
use agentgate::ids::EndpointId;
use agentgate::keys::{create_key, KeySpec};
use agentgate::store::Store;
use agentgate::webhooks::endpoints::{add_secret, create_endpoint, SigningSecret};
use agentgate::webhooks::ingest::IngestSettings;
use agentgate::webhooks::signature;
use sqlx::Connection;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::backend::{Backend, TestDb};
use crate::support::cli::binary;
use crate::support::served::ServedProcess;
use crate::support::stripe_double::StripeDouble;
use crate::support::{eventually, TEST_SECRET};

const WHSEC: &str = "whsec_StoreFaultSecret0123456789";
const SOON: Duration = Duration::from_secs(10);

fn event(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","object":"event","type":"customer.created","data":{{"object":{{"pad":"{}"}}}}}}"#, "x".repeat(8_000))
        .into_bytes()
}

async fn ingest(client: &reqwest::Client, url: &str, payload: Vec<u8>) -> reqwest::Response {
    let at = agentgate::time::now_millis() / 1000;
    let header = format!(
        "t={at},v1={}",
        signature::sign(WHSEC.as_bytes(), at, &payload)
    );
    client
        .post(url)
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", header)
        .body(payload)
        .send()
        .await
        .unwrap()
}

async fn stored_events(store: &dyn Store, endpoint: &EndpointId) -> usize {
    store
        .list_events(endpoint, 0, 10_000, None)
        .await
        .unwrap()
        .len()
}

/// Another session holding the write lock: SQLite `BEGIN IMMEDIATE` (every writer waits),
/// PostgreSQL `LOCK TABLE` on what requests and ingest write.
enum Lock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Lock {
    async fn take(db: &TestDb, backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Lock::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("LOCK TABLE events, request_log IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Lock::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Lock::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            Lock::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
        }
    }
}

each_backend! {
    async fn a_locked_database_keeps_the_proxy_serving_and_ingest_at_503_until_it_clears(backend) {
        let options = TestOptions {
            ingest: IngestSettings { commit_timeout: Duration::from_millis(500), ..IngestSettings::default() },
            ..TestOptions::default()
        };
        let app = TestApp::spawn_with(backend, options).await;
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &app.master_key).unwrap();
        let sealer = Sealer::new(&MasterKey::from_bytes(bytes.try_into().unwrap()));
        let endpoint = create_endpoint(app.store.as_ref(), &app.workspace, "stripe", &[], &crate::support::test_origin()).await.unwrap();
        add_secret(app.store.as_ref(), &sealer, &endpoint, &SigningSecret::parse(WHSEC).unwrap(), None, &crate::support::test_origin()).await.unwrap();
        let url = app.url(&format!("/webhooks/ingest/{}", endpoint.id));
        assert_eq!(app.get("customers").await.status(), 200, "caches warm");
        assert_eq!(ingest(&app.client, &url, event("evt_before")).await.status(), 200);

        let lock = Lock::take(&app.db, backend).await;
        for _ in 0..5 {
            let response = tokio::time::timeout(SOON, app.get("customers")).await.expect("served while locked");
            assert_eq!(response.status(), 200);
        }
        let refused = ingest(&app.client, &url, event("evt_during")).await;
        assert_eq!(refused.status(), 503, "never 2xx without a commit");
        assert!(refused.headers().contains_key("retry-after"));
        let json: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(json["error"]["type"], "api_error");
        lock.release().await;

        // Stripe retries the refused event; it is stored once, and the server needed nothing.
        assert_eq!(ingest(&app.client, &url, event("evt_during")).await.status(), 200);
        assert_eq!(app.get("customers").await.status(), 200);
        assert_eq!(stored_events(app.store.as_ref(), &endpoint.id).await, 2);
        app.logged(7).await;
        app.stop().await;
    }
}

/// Disk full, for SQLite: the server runs with a file size limit (RLIMIT_FSIZE, SIGXFSZ
/// ignored) just above the database's size, so its writes fail as on a full disk (SQLite's
/// `SQLITE_FULL`); raising the limit of the running process (`prlimit --pid`) is the disk
/// getting space back. PostgreSQL's disk belongs to its server and is not simulated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_the_proxy_serving_and_ingest_at_503_until_space_returns() {
    let double = StripeDouble::start().await;
    let db = TestDb::create(Backend::Sqlite).await;
    let master = MasterKey::generate();
    let master_b64 = master.to_base64().to_string();
    let (key, endpoint) = {
        let store = agentgate::store::open(&db.url).await.unwrap();
        let workspace = store.ensure_workspace("default").await.unwrap().id;
        let sealer = Sealer::new(&master);
        verify_master_key(store.as_ref(), &sealer).await.unwrap();
        set_stripe_connection(
            store.as_ref(),
            &sealer,
            &workspace,
            "stripe",
            &StripeSecret::parse(TEST_SECRET).unwrap(),
            &crate::support::test_origin(),
        )
        .await
        .unwrap();
        let key = create_key(
            store.as_ref(),
            &workspace,
            KeySpec::agent("disk"),
            &crate::support::test_origin(),
        )
        .await
        .unwrap()
        .key
        .to_string();
        let endpoint = create_endpoint(
            store.as_ref(),
            &workspace,
            "stripe",
            &[],
            &crate::support::test_origin(),
        )
        .await
        .unwrap();
        add_secret(
            store.as_ref(),
            &sealer,
            &endpoint,
            &SigningSecret::parse(WHSEC).unwrap(),
            None,
            &crate::support::test_origin(),
        )
        .await
        .unwrap();
        (key, endpoint.id)
    };
    let file = db.sqlite_file.clone().unwrap();
    {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let limit = std::fs::metadata(&file).unwrap().len() + 96 * 1024;
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(r#"trap '' XFSZ; exec prlimit --fsize="$LIMIT":unlimited "$AGENTGATE_BIN" serve --listen 127.0.0.1:0 --log-format json"#)
        .env("LIMIT", limit.to_string())
        .env("AGENTGATE_BIN", binary().get_program())
        .env("AGENTGATE_DATABASE", &db.url)
        .env("AGENTGATE_MASTER_KEY", &master_b64)
        .env("AGENTGATE_STRIPE_API_BASE", double.base_url())
        .env("AGENTGATE_INGEST_COMMIT_TIMEOUT", "2s")
        .env("AGENTGATE_LOG", "warn,agentgate=info")
        .env_remove("AGENTGATE_MASTER_KEY_FILE");
    let server = ServedProcess::spawn(command);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{}", server.addr);
    let url = format!("{base}/webhooks/ingest/{endpoint}");
    let get = || {
        client
            .get(format!("{base}/v1/connections/stripe/customers"))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);

    // Fill the allowance: events are acknowledged until a commit fails, then 503.
    let mut acknowledged = 0;
    let mut refused = None;
    for n in 0..200 {
        let response = ingest(&client, &url, event(&format!("evt_fill_{n}"))).await;
        match response.status().as_u16() {
            200 => acknowledged += 1,
            503 => {
                refused = Some(n);
                break;
            }
            other => panic!("ingest answered {other} on a full disk"),
        }
    }
    let refused = refused.expect("the file size limit was reached");
    for _ in 0..5 {
        assert_eq!(
            get().await.unwrap().status(),
            200,
            "the proxy serves on a full disk"
        );
    }
    assert_eq!(
        ingest(&client, &url, event(&format!("evt_fill_{refused}")))
            .await
            .status(),
        503
    );

    let raised = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &server.pid().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .status()
        .unwrap();
    assert!(raised.success());
    eventually(SOON, "ingest to recover", || {
        let response = ingest(&client, &url, event(&format!("evt_fill_{refused}")));
        async move { (response.await.status() == 200).then_some(()) }
    })
    .await;
    assert_eq!(get().await.unwrap().status(), 200);
    server.terminate();
    let (status, logs) = server.wait();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(TEST_SECRET) && !logs.contains(WHSEC));
    let store = agentgate::store::open(&db.url).await.unwrap();
    assert_eq!(
        stored_events(store.as_ref(), &endpoint).await,
        acknowledged + 1,
        "every acknowledged event, and the retried one once"
    );
}
