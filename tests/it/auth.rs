//! Agent keys on the data plane: every way to present a bad key gets 401 in Stripe's shape
//! and nothing reaches Stripe; a revocation is seen within a second.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::cli;

async fn status_and_code(app: &TestApp, authorization: Option<&str>) -> (u16, String, String) {
    let mut request = app.client.get(app.url("/v1/connections/stripe/customers"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let gateway = response
        .headers()
        .get("agentgate-error")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["type"], "invalid_request_error");
    (
        status,
        json["error"]["code"].as_str().unwrap().to_owned(),
        gateway,
    )
}

each_backend! {
    async fn missing_malformed_wrong_checksum_and_unknown_keys_get_401(backend) {
        let app = TestApp::spawn(backend).await;
        let mut wrong_checksum = app.key.clone();
        let last = wrong_checksum.pop().unwrap();
        wrong_checksum.push(if last == 'A' { 'B' } else { 'A' });
        let unknown = agentgate::keys::format::generate();
        let cases = [
            (None, "api_key_missing"),
            (Some("Bearer ".to_owned()), "api_key_missing"),
            (Some("Bearer agk_".to_owned()), "api_key_invalid"),
            (Some("Bearer not-a-key".to_owned()), "api_key_invalid"),
            (Some(format!("Bearer {}", "x".repeat(10_000))), "api_key_invalid"),
            (Some(format!("Bearer {wrong_checksum}")), "api_key_invalid"),
            (Some(format!("Bearer {}", unknown.text.as_str())), "api_key_invalid"),
            (Some(format!("Bearer {}", crate::support::TEST_SECRET)), "api_key_invalid"),
        ];
        for (authorization, code) in cases {
            let (status, got, gateway) = status_and_code(&app, authorization.as_deref()).await;
            assert_eq!((status, got.as_str(), gateway.as_str()), (401, code, "caller"), "{authorization:.30?}");
        }
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn a_key_revoked_from_the_cli_is_refused_within_a_second(backend) {
        let app = TestApp::spawn(backend).await;
        assert_eq!(app.get("customers").await.status(), 200);
        let keys = app.store.list_keys(&app.workspace).await.unwrap();
        let id = keys[0].id.to_string();
        let output = cli::run(&app.db.url, &app.master_key, &["keys", "revoke", &id], "");
        assert!(output.status.success(), "{}", cli::stderr(&output));
        let revoked_at = Instant::now();
        loop {
            let response = app.get("customers").await;
            if response.status() == 401 {
                let json: Value = response.json().await.unwrap();
                assert_eq!(json["error"]["code"], "api_key_revoked");
                break;
            }
            assert!(revoked_at.elapsed() < Duration::from_secs(1), "still accepted a second after revocation");
        }
        let forwarded = app.double.received().len();
        assert_eq!(app.get("customers").await.status(), 401);
        assert_eq!(app.double.received().len(), forwarded, "nothing forwarded for a revoked key");
        app.stop().await;
    }

    async fn a_replaced_stripe_key_is_used_from_the_next_poll_on(backend) {
        let app = TestApp::spawn(backend).await;
        assert_eq!(app.get("customers").await.status(), 200);
        let replacement = "sk_test_51ReplacementKeyForRotation000000000000";
        let output = cli::run(&app.db.url, &app.master_key, &["connections", "set", "stripe"], replacement);
        assert!(output.status.success(), "{}", cli::stderr(&output));
        let replaced_at = Instant::now();
        loop {
            app.get("customers").await;
            let last = app.double.received().pop().unwrap();
            if last.headers["authorization"] == format!("Bearer {replacement}").as_str() {
                break;
            }
            assert!(replaced_at.elapsed() < Duration::from_secs(1), "old key still injected after a second");
        }
        app.stop().await;
    }
}
