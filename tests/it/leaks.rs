//! The Stripe key never leaves: not in a response, not in a log line at trace level, not
//! in the metrics, not in the database files (or a pg_dump), in any common encoding.

use base64::Engine;

use crate::each_backend;
use crate::support::backend::TestDb;
use crate::support::served::ServedProcess;
use crate::support::stripe_double::{Reply, StripeDouble};
use crate::support::{cli, TEST_SECRET};

/// The canary in the forms a leak could take.
fn encodings() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        TEST_SECRET.to_owned(),
        TEST_SECRET.replace('_', "%5F"),
        b64.encode(TEST_SECRET),
        b64.encode(format!("{TEST_SECRET}:")),
        url_safe.encode(TEST_SECRET),
        TEST_SECRET[8..].to_owned(),
    ]
}

fn assert_no_canary(what: &str, haystack: &[u8]) {
    let text = String::from_utf8_lossy(haystack);
    for needle in encodings() {
        assert!(
            !text.contains(&needle),
            "the Stripe key ({needle:.12}…) appears in {what}"
        );
    }
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
        ];
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
        server.terminate();
        let (status, logs) = server.wait();
        assert!(status.success(), "clean exit: {logs}");
        assert!(logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""), "trace logging was on");
        assert_no_canary("responses and CLI output", &seen);
        assert_no_canary("the server's log output", logs.as_bytes());
        assert_no_canary("the database files", &db.dump());
        assert!(!logs.contains(&key), "the agent key appears in the log");
    }
}
