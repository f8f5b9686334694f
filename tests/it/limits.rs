//! Rate limits and idempotency modes over real HTTP. Limits run on a clock the test turns
//! by hand, never on sleeps (one test waits out some real time only to show that it moves
//! nothing, on either backend): a key over its rate and a connection over its mode's rate get
//! 429 in Stripe's shape with `Retry-After` while others go on, and Stripe's own 429 comes
//! back untouched. `require` refuses a POST without `Idempotency-Key` before Stripe sees
//! it; `derive` gives a repeated POST the same key and a different one another.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use agentgate::policy::rate::{ConnectionRates, EXCHANGE_INTERVAL};
use agentgate::policy::{IdempotencyMode, Rate, Scopes};
use agentgate::time::ManualClock;
use serde_json::Value;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::stripe_double::Reply;

const LIVE_SECRET: &str = "sk_live_51CanaryAgentgateLiveSecret0123456789abcdef";

/// An app whose limits read `clock`, with these connection rates.
async fn app_with_clock(
    backend: crate::support::backend::Backend,
    connection_rates: ConnectionRates,
) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(Duration::from_secs(1_800_000_000)));
    let options = TestOptions {
        connection_rates,
        clock: Some(clock.clone()),
        ..TestOptions::default()
    };
    (TestApp::spawn_with(backend, options).await, clock)
}

async fn key_with(app: &TestApp, scopes: Scopes) -> String {
    app.create_key_with("limited", scopes).await
}

fn rated(per_second: u32, burst: u32) -> Scopes {
    Scopes {
        rate: Some(Rate { per_second, burst }),
        ..Scopes::default()
    }
}

fn idempotency(mode: IdempotencyMode) -> Scopes {
    Scopes {
        idempotency: mode,
        ..Scopes::default()
    }
}

async fn get(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v1/connections/{path}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn post(
    app: &TestApp,
    key: &str,
    path: &str,
    body: &'static str,
    idempotency_key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/connections/{path}")))
        .bearer_auth(key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(value) = idempotency_key {
        request = request.header("Idempotency-Key", value);
    }
    request.send().await.unwrap()
}

/// Checks a gateway 429 and returns its `Retry-After`.
async fn assert_rate_limited(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["agentgate-error"], "caller");
    let retry_after = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "rate_limit");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("retry after"));
    retry_after
}

fn idempotency_keys(app: &TestApp) -> Vec<Option<String>> {
    app.double
        .received()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect()
}

each_backend! {
    async fn a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_go_on(backend) {
        let (app, clock) = app_with_clock(backend, ConnectionRates::UNLIMITED).await;
        let limited = key_with(&app, rated(1, 3)).await;
        for _ in 0..3 {
            assert_eq!(get(&app, &limited, "stripe/customers").await.status(), 200);
        }
        let refused = get(&app, &limited, "stripe/customers").await;
        assert_eq!(assert_rate_limited(refused).await, 1);
        assert_eq!(app.double.received().len(), 3, "the refused request was not forwarded");

        assert_eq!(get(&app, &app.key, "stripe/customers").await.status(), 200, "another key is unaffected");

        clock.advance(Duration::from_millis(999));
        assert_eq!(get(&app, &limited, "stripe/customers").await.status(), 429);
        clock.advance(Duration::from_millis(1));
        assert_eq!(get(&app, &limited, "stripe/customers").await.status(), 200, "one token refilled");
        assert_eq!(get(&app, &limited, "stripe/customers").await.status(), 429);

        let logged = app.logged(8).await;
        let reasons: Vec<_> = logged.iter().filter(|r| r.entry.status == 429).map(|r| r.entry.reason.clone()).collect();
        assert_eq!(reasons.len(), 3);
        assert!(reasons.iter().all(|r| r.as_deref() == Some("rate_limit")), "{reasons:?}");
        app.stop().await;
    }

    async fn a_connections_limit_is_shared_by_its_keys_and_sized_by_mode(backend) {
        let rates = ConnectionRates { live: NonZeroU32::new(3), test: NonZeroU32::new(2) };
        let (app, clock) = app_with_clock(backend, rates).await;
        app.store_connection("live", LIVE_SECRET).await;
        let other = key_with(&app, Scopes::default()).await;

        assert_eq!(get(&app, &app.key, "stripe/customers").await.status(), 200);
        assert_eq!(get(&app, &other, "stripe/customers").await.status(), 200);
        assert_eq!(assert_rate_limited(get(&app, &app.key, "stripe/customers").await).await, 1);
        assert_rate_limited(get(&app, &other, "stripe/customers").await).await;
        assert_eq!(app.double.received().len(), 2);

        for _ in 0..3 {
            assert_eq!(get(&app, &other, "live/customers").await.status(), 200, "the live connection has its own, larger budget");
        }
        assert_rate_limited(get(&app, &other, "live/customers").await).await;

        clock.advance(Duration::from_millis(500));
        // Real time passing changes nothing: the limits run on the test's clock alone, and
        // several exchange intervals go by before the request.
        tokio::time::sleep(EXCHANGE_INTERVAL * 3).await;
        assert_eq!(get(&app, &other, "stripe/customers").await.status(), 200, "one token refilled on the test's clock");
        app.stop().await;
    }

    async fn a_request_refused_by_the_connection_costs_its_key_nothing(backend) {
        let rates = ConnectionRates { live: NonZeroU32::new(10), test: NonZeroU32::new(1) };
        let (app, _clock) = app_with_clock(backend, rates).await;
        app.store_connection("live", LIVE_SECRET).await;
        let limited = key_with(&app, rated(1, 2)).await;
        assert_eq!(get(&app, &app.key, "stripe/customers").await.status(), 200);
        for _ in 0..3 {
            assert_rate_limited(get(&app, &limited, "stripe/customers").await).await;
        }
        for _ in 0..2 {
            assert_eq!(
                get(&app, &limited, "live/customers").await.status(),
                200,
                "the key's burst of 2 was not spent on the refused requests"
            );
        }
        assert_rate_limited(get(&app, &limited, "live/customers").await).await;
        app.stop().await;
    }

    async fn stripes_own_429_passes_through_untouched(backend) {
        let app = TestApp::spawn(backend).await;
        let body = r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}}"#;
        app.double.respond(Reply::Json {
            status: 429,
            headers: vec![
                ("Request-Id".into(), "req_ratelimited1".into()),
                ("Stripe-Should-Retry".into(), "true".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: body.into(),
        });
        let response = get(&app, &app.key, "stripe/customers").await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["request-id"], "req_ratelimited1");
        assert_eq!(response.headers()["stripe-should-retry"], "true");
        assert!(response.headers().get("agentgate-error").is_none(), "Stripe's answer, not the gateway's");
        assert!(response.headers().get("retry-after").is_none());
        assert_eq!(response.text().await.unwrap(), body);
        app.stop().await;
    }

    async fn require_refuses_a_post_without_idempotency_key_and_forwards_one_with_it(backend) {
        let (app, _clock) = app_with_clock(backend, ConnectionRates::UNLIMITED).await;
        let key = key_with(&app, Scopes { rate: Some(Rate { per_second: 1, burst: 2 }), ..idempotency(IdempotencyMode::Require) }).await;

        for path in ["stripe/customers", "stripe/tax_rates"] {
            let refused = post(&app, &key, path, "name=a", None).await;
            assert_eq!(refused.status(), 400);
            assert_eq!(refused.headers()["agentgate-error"], "caller");
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["error"]["type"], "invalid_request_error");
            assert_eq!(body["error"]["code"], "idempotency_key_missing");
            assert_eq!(body["error"]["param"], Value::Null);
            assert!(body["error"]["message"].as_str().unwrap().contains("Idempotency-Key"));
        }
        assert!(app.double.received().is_empty(), "nothing was forwarded");

        let sent = post(&app, &key, "stripe/customers", "name=a", Some("agent-chosen-1")).await;
        assert_eq!(sent.status(), 200, "the refusals spent none of the key's burst of 2");
        assert_eq!(get(&app, &key, "stripe/customers").await.status(), 200, "a GET needs no key");
        assert_eq!(
            idempotency_keys(&app),
            vec![Some("agent-chosen-1".to_owned()), None]
        );
        app.stop().await;
    }

    async fn derive_gives_a_repeated_post_the_same_key_and_other_posts_other_keys(backend) {
        let (app, clock) = app_with_clock(backend, ConnectionRates::UNLIMITED).await;
        let key = key_with(&app, idempotency(IdempotencyMode::Derive)).await;
        let other_key = key_with(&app, idempotency(IdempotencyMode::Derive)).await;

        // A listed operation (body read for validation) and an unlisted one (body read only
        // to derive the key).
        for path in ["stripe/customers", "stripe/tax_rates"] {
            let before = app.double.received().len();
            assert_eq!(post(&app, &key, path, "name=a", None).await.status(), 200);
            assert_eq!(post(&app, &key, path, "name=a", None).await.status(), 200);
            assert_eq!(post(&app, &key, path, "name=b", None).await.status(), 200);
            assert_eq!(post(&app, &other_key, path, "name=a", None).await.status(), 200);
            let keys: Vec<String> = idempotency_keys(&app)[before..].iter().map(|k| k.clone().expect("a derived key")).collect();
            assert!(keys[0].starts_with("agentgate-") && keys[0].len() <= 255, "{}", keys[0]);
            assert_eq!(keys[0], keys[1], "the repeated POST carries the same key");
            assert_ne!(keys[0], keys[2], "another body, another key");
            assert_ne!(keys[0], keys[3], "another agentgate key, another key");
            let received = app.double.received();
            assert_eq!(&received[before].body[..], b"name=a", "the body is forwarded unchanged");
        }

        let before = app.double.received().len();
        assert_eq!(get(&app, &key, "stripe/customers").await.status(), 200);
        assert_eq!(post(&app, &key, "stripe/customers", "name=a", Some("mine-1")).await.status(), 200);
        assert_eq!(post(&app, &key, "stripe/customers", "name=a", None).await.status(), 200);
        clock.advance(Duration::from_secs(24 * 60 * 60));
        assert_eq!(post(&app, &key, "stripe/customers", "name=a", None).await.status(), 200);
        let keys = idempotency_keys(&app)[before..].to_vec();
        assert_eq!(keys[0], None, "a GET gets no key");
        assert_eq!(keys[1].as_deref(), Some("mine-1"), "the caller's key wins, unchanged");
        assert_ne!(keys[2], keys[3], "the next window derives a new key");
        let logged = app.logged(app.double.received().len()).await;
        let derived = keys[3].clone().unwrap();
        assert!(
            logged.iter().any(|r| r.entry.idempotency_key.as_deref() == Some(derived.as_str())),
            "the request log holds the derived key, to match Stripe's dashboard"
        );
        app.stop().await;
    }
}
