//! What agentgate refuses itself, in Stripe's error shape with the gateway header, and
//! without a byte reaching Stripe.

use std::time::Duration;

use serde_json::Value;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::raw_http;
use crate::support::stripe_double::Reply;

/// Request targets that try to leave Stripe's API, sent verbatim.
const ESCAPES: [&str; 24] = [
    "/v1/connections/stripe/../../admin",
    "/v1/connections/stripe/customers/../../../etc/passwd",
    "/v1/connections/stripe/./customers",
    "/v1/connections/stripe/%2e%2e/x",
    "/v1/connections/stripe/%2E%2E/x",
    "/v1/connections/stripe/.%2e/x",
    "/v1/connections/stripe/..%2fx",
    "/v1/connections/stripe/..%2Fadmin",
    "/v1/connections/stripe/customers%2f..%2f..%2fx",
    "/v1/connections/stripe/..%252fx",
    "/v1/connections/stripe/%5c..%5cx",
    "/v1/connections/stripe/customers%5cx",
    "/v1/connections/stripe//attacker.example/x",
    "/v1/connections/stripe/customers//x",
    "/v1/connections/stripe/@attacker.example/../x",
    "/v1/connections/stripe/https:%2f%2fattacker.example",
    "/v1/connections/stripe/customers%00",
    "/v1/connections/stripe/customers%0d%0aX-Injected:%201",
    "/v1/connections/stripe/customers?email=a%0d%0aX-Injected:%201",
    "/v1/connections/stripe/customers?email=%00",
    "/v1/connections/stripe/v1",
    "/v1/connections/stripe/",
    "/v1/connections/stripe/customers/%",
    "/v1/connections/stripe/customers/%zz",
];

fn assert_gateway_error(head: &str, body: &str, code: &str) {
    assert!(
        head.to_ascii_lowercase()
            .contains("agentgate-error: caller"),
        "{head}"
    );
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(json["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(json["error"]["code"], code, "{body}");
    assert!(json["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

each_backend! {
    async fn paths_that_could_leave_stripe_are_refused_and_never_forwarded(backend) {
        let app = TestApp::spawn(backend).await;
        for target in ESCAPES {
            let response = raw_http::send(app.addr, &format!("GET {target} HTTP/1.1"), &app.key).await;
            assert_eq!(response.status, 400, "{target}: {response:?}");
            assert_gateway_error(&response.head, &response.body, "path_invalid");
        }
        let raw_crlf = raw_http::send(app.addr, "GET /v1/connections/stripe/customers\r\nX: y HTTP/1.1", &app.key).await;
        assert_eq!(raw_crlf.status, 400);
        assert!(app.double.received().is_empty(), "the double saw {:?}", app.double.received());
        app.stop().await;
    }

    async fn absolute_form_and_connect_requests_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let absolute = raw_http::send(app.addr, "GET http://attacker.example/v1/connections/stripe/customers HTTP/1.1", &app.key).await;
        assert_eq!(absolute.status, 400, "{absolute:?}");
        assert_gateway_error(&absolute.head, &absolute.body, "path_invalid");
        let connect = raw_http::send(app.addr, "CONNECT attacker.example:443 HTTP/1.1", &app.key).await;
        assert_eq!(connect.status, 405, "{connect:?}");
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn an_unknown_connection_is_404_and_nothing_is_forwarded(backend) {
        let app = TestApp::spawn(backend).await;
        let response = app
            .client
            .get(app.url("/v1/connections/paypal/customers"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "resource_missing");
        assert_eq!(json["error"]["param"], "connection");
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn a_body_over_the_cap_is_413_with_and_without_a_length(backend) {
        let app = TestApp::spawn(backend).await;
        let declared = raw_http::send_bytes(
            app.addr,
            format!(
                "POST /v1/connections/stripe/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048577\r\n\r\n",
                app.key
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(declared.status, 413, "{declared:?}");
        assert_gateway_error(&declared.head, &declared.body, "request_too_large");
        assert!(app.double.received().is_empty(), "a declared oversize body is refused before forwarding");
        let big = vec![b'a'; 1024 * 1024 + 1];
        let streamed = app
            .client
            .post(app.url("/v1/connections/stripe/customers"))
            .bearer_auth(&app.key)
            .body(crate::support::streamed(&big, 64 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(streamed.status(), 413);
        assert_eq!(streamed.headers()["agentgate-error"], "caller");
        assert!(app.double.received().iter().all(|r| r.body.len() <= 1024 * 1024), "never a whole oversize body");
        app.stop().await;
    }

    async fn a_silent_stripe_is_504_at_the_configured_timeout(backend) {
        let options = TestOptions { upstream_timeout: Duration::from_millis(700), ..Default::default() };
        let app = TestApp::spawn_with(backend, options).await;
        app.double.respond(Reply::Hang);
        let started = std::time::Instant::now();
        let response = app.get("customers").await;
        assert_eq!(response.status(), 504);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(700), "answered before the timeout: {waited:?}");
        // Well short of the tests' default total timeout (10 s), so the configured one ended it.
        assert!(waited < Duration::from_secs(5), "answered long after the timeout: {waited:?}");
        assert_eq!(response.headers()["agentgate-error"], "upstream");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "upstream_timeout");
        assert_eq!(app.double.received().len(), 1, "sent once, never retried");
        app.stop().await;
    }

    async fn a_redirect_from_upstream_is_passed_back_not_followed(backend) {
        let app = TestApp::spawn(backend).await;
        app.double.respond(Reply::Json {
            status: 307,
            headers: vec![("Location".into(), format!("http://{}/elsewhere", app.double.addr))],
            body: String::new(),
        });
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let response = client
            .get(app.url("/v1/connections/stripe/customers"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 307);
        assert_eq!(app.double.received().len(), 1, "agentgate did not follow the redirect");
        app.stop().await;
    }
}
