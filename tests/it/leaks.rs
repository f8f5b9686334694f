//! The Stripe key and the webhook signing secret never leave: not in a response, not in a
//! log line at trace level, not in the metrics, not in the database files (SQLite with its
//! `-wal`/`-shm`, or a pg_dump), not in `Debug` output (what a panic prints), in any common
//! encoding. An agent key sent in a URL is refused and never logged.

use base64::Engine;

use crate::each_backend;
use crate::support::backend::TestDb;
use crate::support::served::ServedProcess;
use crate::support::stripe_double::{Reply, StripeDouble};
use crate::support::{cli, TEST_SECRET};

/// The webhook signing secret canary.
const WHSEC: &str = "whsec_LeakCanaryWebhookSecret0123456789abcXYZ";

/// A canary in the forms a leak could take.
fn encodings(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let prefix = secret.find('_').map_or(0, |i| i + 1);
    vec![
        secret.to_owned(),
        secret.replace('_', "%5F"),
        b64.encode(secret),
        b64.encode(format!("{secret}:")),
        url_safe.encode(secret),
        secret[prefix..].to_owned(),
        secret[secret.len() - 24..].to_owned(),
    ]
}

fn assert_no_canary(what: &str, haystack: &[u8]) {
    let text = String::from_utf8_lossy(haystack);
    for secret in [TEST_SECRET, WHSEC] {
        for needle in encodings(secret) {
            assert!(
                !text.contains(&needle),
                "a secret ({needle:.12}…) appears in {what}"
            );
        }
    }
}

/// A webhook endpoint of the `stripe` connection with [`WHSEC`] set; its ingest path.
async fn webhook_endpoint(db: &TestDb, master: &str) -> String {
    let store = agentgate::store::open(&db.url).await.unwrap();
    let workspace = store.ensure_workspace("default").await.unwrap().id;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(master)
        .unwrap();
    let sealer = agentgate::crypto::Sealer::new(&agentgate::crypto::MasterKey::from_bytes(
        bytes.try_into().unwrap(),
    ));
    let endpoint = agentgate::webhooks::endpoints::create_endpoint(
        store.as_ref(),
        &workspace,
        "stripe",
        &[],
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
    let secret = agentgate::webhooks::endpoints::SigningSecret::parse(WHSEC).unwrap();
    agentgate::webhooks::endpoints::add_secret(
        store.as_ref(),
        &sealer,
        &endpoint,
        &secret,
        None,
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
    format!("/webhooks/ingest/{}", endpoint.id)
}

#[test]
fn debug_output_of_every_secret_holder_shows_no_secret() {
    use agentgate::connections::stripe::StripeSecret;
    use agentgate::crypto::{MasterKey, Sealer, SecretPurpose};
    use agentgate::webhooks::endpoints::SigningSecret;
    let master = MasterKey::generate();
    let sealer = Sealer::new(&master);
    let sealed = sealer.seal(SecretPurpose::StripeKey, "w", "r", TEST_SECRET.as_bytes());
    let printed = format!(
        "{:?} {:?} {:?} {:?} {:?}",
        StripeSecret::parse(TEST_SECRET).unwrap(),
        SigningSecret::parse(WHSEC).unwrap(),
        master,
        sealer,
        sealed,
    );
    assert_no_canary("Debug output", printed.as_bytes());
    assert!(!printed.contains(master.to_base64().as_str()));
    // What a panic would print: its message, built from the same Debug output.
    let payload = std::panic::catch_unwind(|| {
        panic!("{:?}", StripeSecret::parse(TEST_SECRET).unwrap());
    })
    .unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("sk_test_***"), "{message}");
    assert_no_canary("a panic message", message.as_bytes());
}

/// A valid `Stripe-Signature` for `payload`, made with [`WHSEC`] now.
fn signed(payload: &[u8]) -> String {
    let at = agentgate::time::now_millis() / 1000;
    format!(
        "t={at},v1={}",
        agentgate::webhooks::signature::sign(WHSEC.as_bytes(), at, payload)
    )
}

each_backend! {
    async fn the_stripe_key_appears_in_no_response_log_metric_or_database_file(backend) {
        let double = StripeDouble::start().await;
        let db = TestDb::create(backend).await;
        let master = agentgate::crypto::MasterKey::generate().to_base64().to_string();
        let set = cli::run(&db.url, &master, &["connections", "set", "stripe", "--json"], TEST_SECRET);
        assert!(set.status.success(), "{}", cli::stderr(&set));
        let created = cli::run(&db.url, &master, &["keys", "create", "--name", "leak-test"], "");
        let key = cli::stdout(&created).trim().to_owned();
        let ingest_path = webhook_endpoint(&db, &master).await;
        let server = ServedProcess::start(&db.url, &master, &double.base_url(), "trace");
        let client = reqwest::Client::new();
        let base = format!("http://{}", server.addr);
        let mut seen = Vec::new();
        let keep = |response: reqwest::Response| async {
            let mut bytes = format!("{:?}", response.headers()).into_bytes();
            bytes.extend(response.bytes().await.unwrap());
            bytes
        };
        let requests = [
            client.get(format!("{base}/v1/connections/stripe/customers?limit=3")).bearer_auth(&key),
            client.post(format!("{base}/v1/connections/stripe/v1/customers")).bearer_auth(&key).body("email=a%40b.c"),
            client.get(format!("{base}/v1/connections/stripe/..%2f..%2fx")).bearer_auth(&key),
            client.get(format!("{base}/v1/connections/nope/customers")).bearer_auth(&key),
            client.get(format!("{base}/v1/connections/stripe/customers")).bearer_auth("agk_wrong"),
            client.get(format!("{base}/v1/connections/stripe/customers")),
            client.post(format!("{base}/v1/connections/stripe/payment_intents")).bearer_auth(&key)
                .header("Agentgate-Dry-Run", "true").body("amount=100&currency=usd"),
            client.post(format!("{base}/v1/connections/stripe/payment_intents")).bearer_auth(&key).body("amount=x"),
            client.get(format!("{base}/v1/catalog/stripe")).bearer_auth(&key),
            client.get(format!("{base}/metrics")),
            client.get(format!("{base}/readyz")),
            client.get(format!("{base}/v1/connections/stripe/customers?api_key={key}")),
            client.post(format!("{base}{ingest_path}")).header("Stripe-Signature", signed(b"{}")).body("{}"),
            client.post(format!("{base}{ingest_path}")).header("Stripe-Signature", "t=1,v1=00").body("{}"),
        ];
        let event = br#"{"id":"evt_leak","object":"event","type":"customer.created","data":{"object":{}}}"#;
        let ingested = client.post(format!("{base}{ingest_path}")).header("Stripe-Signature", signed(event)).body(event.to_vec()).send().await.unwrap();
        assert_eq!(ingested.status(), 200, "the signing secret was opened and used");
        seen.extend(keep(ingested).await);
        for request in requests {
            seen.extend(keep(request.send().await.unwrap()).await);
        }
        double.respond(Reply::Json { status: 500, headers: vec![], body: r#"{"error":{"type":"api_error"}}"#.into() });
        seen.extend(keep(client.get(format!("{base}/v1/connections/stripe/charges")).bearer_auth(&key).send().await.unwrap()).await);
        assert!(double.received().len() >= 3, "the double was reached: the key was injected");
        for cmd in [&["connections", "list"][..], &["keys", "list", "--json"][..], &["logs", "list", "--json"][..]] {
            let output = cli::run(&db.url, &master, cmd, "");
            seen.extend(output.stdout);
            seen.extend(output.stderr);
        }
        // The files as they are while the server runs, its WAL not yet folded into the
        // database file (as a clean shutdown may do), and again after it has stopped.
        let running = db.dump();
        if let Some(file) = &db.sqlite_file {
            let wal = std::fs::metadata(format!("{}-wal", file.display())).map(|m| m.len());
            assert!(matches!(wal, Ok(len) if len > 0), "a running server's WAL is read: {wal:?}");
        }
        server.terminate();
        let (status, logs) = server.wait();
        assert!(status.success(), "clean exit: {logs}");
        assert!(logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""), "trace logging was on");
        assert_no_canary("responses and CLI output", &seen);
        assert_no_canary("the server's log output", logs.as_bytes());
        assert_no_canary("the database files of the running server", &running);
        assert_no_canary("the database files", &db.dump());
        assert!(!logs.contains(&key), "the agent key appears in the log");
        assert!(!String::from_utf8_lossy(&db.dump()).contains(&key), "the agent key is stored");
    }
}
