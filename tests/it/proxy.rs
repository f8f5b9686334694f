//! The data plane: mapping, headers and bytes, as the Stripe double sees them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::TEST_SECRET;

each_backend! {
    async fn get_is_forwarded_with_the_stripe_key_injected_and_the_query_unchanged(backend) {
        let app = TestApp::spawn(backend).await;
        let response = app.get("customers?limit=5&email=a%40b.c&expand[]=data.default_source").await;
        assert_eq!(response.status(), 200);
        let seen = app.double.single();
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.target, "/v1/customers?limit=5&email=a%40b.c&expand[]=data.default_source");
        let auth: Vec<_> = seen.headers.get_all("authorization").iter().collect();
        assert_eq!(auth, [format!("Bearer {TEST_SECRET}").as_str()]);
        app.stop().await;
    }

    async fn paths_that_start_with_v1_or_v2_pass_unchanged(backend) {
        let app = TestApp::spawn(backend).await;
        for (path, expected) in [
            ("v1/customers/cus_123", "/v1/customers/cus_123"),
            ("checkout/sessions", "/v1/checkout/sessions"),
            ("v2/core/events", "/v2/core/events"),
        ] {
            assert_eq!(app.get(path).await.status(), 200, "{path}");
            assert_eq!(app.double.received().last().unwrap().target, expected);
        }
        app.stop().await;
    }

    async fn the_sdk_listener_serves_the_connection_at_its_root(backend) {
        let app = TestApp::spawn_with(backend, TestOptions { sdk_listener: true, ..Default::default() }).await;
        let sdk = app.sdk_addr.unwrap();
        let response = app
            .client
            .post(format!("http://{sdk}/v1/customers"))
            .basic_auth(&app.key, Some(""))
            .form(&[("email", "jenny@example.com")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let seen = app.double.single();
        assert_eq!(seen.target, "/v1/customers");
        assert_eq!(seen.headers["authorization"], format!("Bearer {TEST_SECRET}").as_str());
        let outside = app.client.get(format!("http://{sdk}/healthz")).bearer_auth(&app.key).send().await.unwrap();
        assert_eq!(outside.status(), 404);
        assert_eq!(app.double.received().len(), 1);
        app.stop().await;
    }

    async fn post_bodies_reach_stripe_byte_for_byte(backend) {
        let app = TestApp::spawn(backend).await;
        let body = "email=jenny%40example.com&metadata[order]=7&line_items[0][price]=price_1&description=&name=J%C3%A9nny+R";
        // Validated (customers.update has no line_items) and unvalidated paths alike.
        assert_eq!(app.post_form("customers/cus_1", body).await.status(), 400);
        let response = app.post_form("customers/cus_1/unlisted", body).await;
        assert_eq!(response.status(), 200);
        let seen = app.double.single();
        assert_eq!(seen.body, body.as_bytes());
        assert_eq!(seen.headers["content-type"], "application/x-www-form-urlencoded");
        app.stop().await;
    }

    async fn a_streamed_body_without_length_is_forwarded_whole(backend) {
        let app = TestApp::spawn(backend).await;
        let expected: Vec<u8> =
            (0..64).flat_map(|i| format!("metadata[k{i}]={}&", "v".repeat(1000)).into_bytes()).collect();
        let response = app
            .client
            .post(app.url("/v1/connections/stripe/customers"))
            .bearer_auth(&app.key)
            .body(crate::support::streamed(&expected, 1000))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(app.double.single().body, expected);
        app.stop().await;
    }

    async fn stripe_headers_pass_and_hop_by_hop_and_foreign_ones_do_not(backend) {
        let app = TestApp::spawn(backend).await;
        let response = app
            .client
            .post(app.url("/v1/connections/stripe/payment_intents"))
            .bearer_auth(&app.key)
            .header("Stripe-Version", "2026-07-29.dahlia")
            .header("Stripe-Account", "acct_123")
            .header("Stripe-Context", "ctx_abc")
            .header("Idempotency-Key", "idem-1")
            .header("User-Agent", "Stripe/v1 PythonBindings/15.4.0")
            .header("X-Stripe-Client-User-Agent", r#"{"lang":"python"}"#)
            .header("Cookie", "session=secret")
            .header("X-Forwarded-For", "10.0.0.1")
            .header("Proxy-Authorization", "Basic abc")
            .header("X-Custom", "1")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("amount=100&currency=usd")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let seen = app.double.single();
        for (name, value) in [
            ("stripe-version", "2026-07-29.dahlia"),
            ("stripe-account", "acct_123"),
            ("stripe-context", "ctx_abc"),
            ("idempotency-key", "idem-1"),
            ("user-agent", "Stripe/v1 PythonBindings/15.4.0"),
            ("x-stripe-client-user-agent", r#"{"lang":"python"}"#),
        ] {
            assert_eq!(seen.headers.get(name).map(|v| v.to_str().unwrap()), Some(value), "{name}");
        }
        for dropped in ["cookie", "x-forwarded-for", "proxy-authorization", "x-custom"] {
            assert!(!seen.headers.contains_key(dropped), "{dropped} was forwarded");
        }
        assert_eq!(seen.headers.get_all("authorization").iter().count(), 1);
        app.stop().await;
    }

    async fn stripe_status_body_and_response_headers_come_back(backend) {
        let app = TestApp::spawn(backend).await;
        app.double.respond(crate::support::stripe_double::Reply::Json {
            status: 402,
            headers: vec![
                ("Request-Id".into(), "req_card".into()),
                ("Idempotency-Key".into(), "idem-9".into()),
                ("Original-Request".into(), "req_first".into()),
                ("Stripe-Should-Retry".into(), "false".into()),
                ("Stripe-Version".into(), "2026-07-29.dahlia".into()),
                ("Keep-Alive".into(), "timeout=5".into()),
                ("Agentgate-Request-Id".into(), "agr_forged".into()),
            ],
            body: r#"{"error":{"type":"card_error","code":"card_declined"}}"#.into(),
        });
        let response = app.post_form("payment_intents", "amount=100&currency=usd").await;
        assert_eq!(response.status(), 402);
        let headers = response.headers().clone();
        for (name, value) in [
            ("request-id", "req_card"),
            ("idempotency-key", "idem-9"),
            ("original-request", "req_first"),
            ("stripe-should-retry", "false"),
            ("stripe-version", "2026-07-29.dahlia"),
        ] {
            assert_eq!(headers.get(name).map(|v| v.to_str().unwrap()), Some(value), "{name}");
        }
        assert!(!headers.contains_key("keep-alive"));
        assert!(!headers.contains_key("agentgate-error"), "a Stripe error is not a gateway error");
        let own_id = |headers: &reqwest::header::HeaderMap| {
            let ids: Vec<_> = headers.get_all("agentgate-request-id").iter().collect();
            assert_eq!(ids.len(), 1, "{ids:?}");
            assert!(ids[0] != "agr_forged" && ids[0].to_str().unwrap().starts_with("agr_"));
        };
        own_id(&headers);
        assert_eq!(headers.get_all("date").iter().count(), 1, "Stripe's Date, not a second one");
        assert_eq!(response.text().await.unwrap(), r#"{"error":{"type":"card_error","code":"card_declined"}}"#);
        // A chunked body that is validated is read whole and sent by the direct client, but
        // answered through hyper's server: Stripe's headers, kept as lines, come back there too.
        let validated = app.post_form_streamed("payment_intents", "amount=100&currency=usd", &[]).await;
        assert_eq!(validated.status(), 402);
        for (name, value) in [("request-id", "req_card"), ("original-request", "req_first"), ("stripe-version", "2026-07-29.dahlia")] {
            assert_eq!(validated.headers().get(name).map(|v| v.to_str().unwrap()), Some(value), "{name}");
        }
        assert!(!validated.headers().contains_key("keep-alive"));
        own_id(validated.headers());
        assert_eq!(validated.text().await.unwrap(), r#"{"error":{"type":"card_error","code":"card_declined"}}"#);
        // A chunked body is streamed to Stripe through hyper's client rather than the direct
        // one: the same headers come back and the hop-by-hop one does not.
        let streamed = app
            .post_form_streamed("payment_intents", "amount=100&currency=usd", &[("Agentgate-Validation", "off")])
            .await;
        assert_eq!(streamed.status(), 402);
        assert_eq!(streamed.headers()["request-id"], "req_card");
        assert!(!streamed.headers().contains_key("keep-alive"));
        own_id(streamed.headers());
        app.stop().await;
    }

    async fn every_proxied_request_is_logged_without_secrets_or_bodies(backend) {
        let app = TestApp::spawn(backend).await;
        let response = app
            .client
            .post(app.url("/v1/connections/stripe/customers?expand[]=x"))
            .bearer_auth(&app.key)
            .header("Idempotency-Key", "idem-log")
            .form(&[("email", "private@example.com")])
            .send()
            .await
            .unwrap();
        let request_id = response.headers()["agentgate-request-id"].to_str().unwrap().to_owned();
        assert_eq!(app.get("customers/cus_404").await.status(), 200);
        let records = app.logged(2).await;
        let first = &records[0].entry;
        assert_eq!(first.request_id, request_id);
        assert_eq!(first.method, "POST");
        assert_eq!(first.connection, "stripe");
        assert_eq!(first.path, "/v1/customers?expand[]");
        assert_eq!(first.status, 200);
        assert_eq!(first.stripe_request_id.as_deref(), Some("req_double123"));
        assert_eq!(first.idempotency_key.as_deref(), Some("idem-log"));
        assert_eq!(first.outcome, "forwarded");
        assert_eq!(first.client, Some(std::net::IpAddr::from([127, 0, 0, 1])));
        assert!(first.latency_us > 0);
        assert_eq!(records[1].entry.path, "/v1/customers/cus_404");
        let keys = app.store.list_keys(&app.workspace).await.unwrap();
        let used = keys.iter().find(|k| k.id == first.key_id).unwrap();
        assert!(used.last_used_at.is_some(), "last use recorded");
        let debug = format!("{records:?}");
        assert!(!debug.contains("private@example.com") && !debug.contains(TEST_SECRET));
        app.stop().await;
    }

    async fn one_keep_alive_connection_carries_pipelined_late_bodied_and_mixed_requests(backend) {
        // The fast lane answers simple data-plane requests itself and hands anything else,
        // here a body that comes after its head and then another route, to hyper, which
        // keeps the connection: every request is answered in order, none lost or doubled.
        let app = TestApp::spawn(backend).await;
        let (addr, key) = (app.addr, &app.key);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let first = format!(
            "GET /v1/connections/stripe/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n\
             POST /v1/connections/stripe/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\n"
        );
        stream.write_all(first.as_bytes()).await.unwrap();
        // Let the head go out alone; if both writes still arrive together, the test only
        // takes the other path through the same assertions.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rest = format!(
            "email=a%40b.c\
             GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n\
             GET /v1/connections/stripe/customers?limit=1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(rest.as_bytes()).await.unwrap();
        let mut answers = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answers))
            .await
            .expect("the server closes after the request that asked it to")
            .unwrap();
        let answers = String::from_utf8_lossy(&answers);
        let statuses: Vec<_> = answers.match_indices("HTTP/1.1 ").map(|(at, _)| &answers[at + 9..at + 12]).collect();
        assert_eq!(statuses, ["200", "200", "200", "200"], "{answers}");
        let received = app.double.received();
        let seen: Vec<_> = received.iter().map(|r| (r.method.as_str(), r.target.as_str(), &r.body[..])).collect();
        assert_eq!(
            seen,
            [
                ("GET", "/v1/customers", &b""[..]),
                ("POST", "/v1/customers", &b"email=a%40b.c"[..]),
                ("GET", "/v1/customers?limit=1", &b""[..]),
            ]
        );
        app.stop().await;
    }
}
