//! Hostile clients: request smuggling, oversized or endless headers, slow headers and
//! bodies (slowloris), oversized bodies, `Host` tricks, keys in the URL and key guessing.
//! Each is refused, nothing reaches Stripe, and well-behaved clients are served meanwhile.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::raw_http::{self, RawResponse};

/// A generous deadline for things that must happen "soon"; never a measurement.
const SOON: Duration = Duration::from_secs(10);

/// Writes `bytes` (the server may close before taking them all) and reads the answer.
async fn send_lossy(addr: SocketAddr, bytes: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(SOON, read_until_closed(&mut stream, &mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    RawResponse {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn read_until_closed(stream: &mut TcpStream, out: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn code(body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    json["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn post_head(app: &TestApp, framing: &str) -> String {
    format!(
        "POST /v1/connections/stripe/customers HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n",
        app.addr, app.key
    )
}

/// A well-behaved client is answered.
async fn served(app: &TestApp) {
    let response = tokio::time::timeout(SOON, app.get("customers"))
        .await
        .expect("answered in time");
    assert_eq!(response.status(), 200);
}

each_backend! {
    async fn smuggling_attempts_are_refused_and_never_forwarded(backend) {
        let app = TestApp::spawn(backend).await;
        let smuggled = format!(
            "GET /v1/connections/stripe/smuggled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            app.key
        );
        // Both framings: refused, and the connection closed so the rest is never parsed.
        let both = format!(
            "{}0\r\n\r\n{smuggled}",
            post_head(&app, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")
        );
        let response = send_lossy(app.addr, both.as_bytes()).await;
        assert_eq!(response.status, 400, "{response:?}");
        assert_eq!(code(&response.body), "request_malformed");
        assert!(response.head.to_ascii_lowercase().contains("agentgate-error: caller"));
        assert!(response.head.to_ascii_lowercase().contains("connection: close"));
        assert!(!response.body.contains("HTTP/1.1"), "one answer only: {response:?}");
        let reversed = format!(
            "{}5\r\nemail\r\n0\r\n\r\n",
            post_head(&app, "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")
        );
        assert_eq!(send_lossy(app.addr, reversed.as_bytes()).await.status, 400);
        // Two different lengths, an unknown transfer coding, bad chunk sizes.
        let refused = [
            format!("{}email", post_head(&app, "Content-Length: 5\r\nContent-Length: 50\r\n")),
            format!("{}email", post_head(&app, "Transfer-Encoding: gzip\r\n")),
            format!("{}zz\r\nemail\r\n0\r\n\r\n", post_head(&app, "Transfer-Encoding: chunked\r\n")),
            format!("{}ffffffffffffffffff\r\nemail\r\n0\r\n\r\n", post_head(&app, "Transfer-Encoding: chunked\r\n")),
            format!("{}-5\r\nemail\r\n0\r\n\r\n", post_head(&app, "Transfer-Encoding: chunked\r\n")),
        ];
        for request in &refused {
            let response = send_lossy(app.addr, request.as_bytes()).await;
            assert_eq!(response.status, 400, "{request:?}: {response:?}");
        }
        served(&app).await;
        let received = app.double.received();
        assert_eq!(received.len(), 1, "only the well-behaved request reached Stripe: {received:#?}");
        assert!(received.iter().all(|r| !r.target.contains("smuggled")));
        app.stop().await;
    }

    async fn headers_too_large_or_too_many_are_431(backend) {
        let app = TestApp::spawn(backend).await;
        // 1 MiB, and 200 KiB: over the 64 KiB a head may have (hyper holds that to within one
        // read), well under hyper's own default limit of about 400 KiB.
        for size in [1024 * 1024, 200 * 1024] {
            let big = format!(
                "GET /v1/connections/stripe/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Big: {}\r\n\r\n",
                app.key,
                "a".repeat(size)
            );
            let response = send_lossy(app.addr, big.as_bytes()).await;
            assert_eq!(response.status, 431, "{size}: {:?}", response.head);
        }
        let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
        let many = format!(
            "GET /v1/connections/stripe/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{many}\r\n",
            app.key
        );
        let response = send_lossy(app.addr, many.as_bytes()).await;
        assert_eq!(response.status, 431, "{:?}", response.head);
        served(&app).await;
        assert_eq!(app.double.received().len(), 1);
        app.stop().await;
    }

    async fn slow_headers_are_cut_off_while_other_clients_are_served(backend) {
        let options = TestOptions { header_timeout: Duration::from_millis(500), ..Default::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let mut slow = Vec::new();
        for _ in 0..50 {
            let mut stream = TcpStream::connect(app.addr).await.unwrap();
            stream.write_all(b"GET /v1/connections/stripe/customers HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            slow.push(stream);
        }
        served(&app).await;
        for mut stream in slow {
            let mut out = Vec::new();
            tokio::time::timeout(SOON, read_until_closed(&mut stream, &mut out))
                .await
                .expect("the server closes a connection whose headers never finish");
            let text = String::from_utf8_lossy(&out);
            assert!(out.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
        }
        assert_eq!(app.double.received().len(), 1);
        app.stop().await;
    }

    async fn a_slow_body_is_cut_off_while_other_clients_are_served(backend) {
        let options = TestOptions { upstream_timeout: Duration::from_millis(700), ..Default::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let head = post_head(&app, "Content-Length: 100\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(b"email=a").await.unwrap();
        served(&app).await;
        let mut out = Vec::new();
        tokio::time::timeout(SOON, read_until_closed(&mut stream, &mut out))
            .await
            .expect("the server gives up on a body that never finishes");
        let text = String::from_utf8_lossy(&out);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        assert!(head.starts_with("HTTP/1.1 400"), "{text}");
        assert_eq!(code(body), "body_unreadable");
        assert_eq!(app.double.received().len(), 1, "the cut body was not forwarded");
        // Outside the data plane too: the dashboard's sign-in form reads its body first.
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let head = "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=a";
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(SOON, read_until_closed(&mut stream, &mut out))
            .await
            .expect("the server gives up on a form body that never finishes");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 4"), "{text}");
        app.stop().await;
    }

    async fn a_huge_body_is_refused_without_being_read(backend) {
        let app = TestApp::spawn(backend).await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let head = post_head(&app, "Transfer-Encoding: chunked\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        // Offer 256 MiB; the server must answer 413 and stop reading long before the end.
        let writing = tokio::spawn(async move {
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024));
            let mut sent = 0usize;
            for _ in 0..4096 {
                if writer.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 64 * 1024;
            }
            sent
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(SOON, async {
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("answered before the body ended");
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 413"));
        let sent = writing.await.unwrap();
        assert!(sent < 64 * 1024 * 1024, "the server read {sent} bytes of a body over a 1 MiB cap");
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn host_tricks_do_not_change_where_requests_go(backend) {
        let app = TestApp::spawn(backend).await;
        // A well-formed Host is served (it never chooses the upstream); a missing, repeated
        // or malformed one is refused, as RFC 9112 requires.
        let tricks = [
            ("Host: attacker.example\r\n", 200),
            ("Host: attacker.example\r\nHost: api.stripe.com\r\n", 400),
            ("Host: 127.0.0.1@attacker.example\r\n", 400),
            ("Host: x\r\nX-Forwarded-Host: attacker.example\r\nForwarded: host=attacker.example\r\n", 200),
            ("Host: attacker.example:443/v1\r\n", 400),
            ("", 400),
        ];
        for (trick, status) in tricks {
            let request = format!(
                "GET /v1/connections/stripe/customers HTTP/1.1\r\n{trick}Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
                app.key
            );
            let response = raw_http::send_bytes(app.addr, request.as_bytes()).await;
            assert_eq!(response.status, status, "{trick:?}: {response:?}");
            if status == 400 {
                assert_eq!(code(&response.body), "request_malformed", "{trick:?}");
            }
        }
        for received in app.double.received() {
            assert_eq!(received.headers["host"], app.double.addr.to_string().as_str());
            assert!(!received.headers.contains_key("x-forwarded-host"));
            assert!(!received.headers.contains_key("forwarded"));
            assert_eq!(received.target, "/v1/customers");
        }
        app.stop().await;
    }

    async fn an_agent_key_in_the_url_is_refused_and_never_forwarded_or_logged(backend) {
        let app = TestApp::spawn(backend).await;
        let encoded = app.key.replace('_', "%5F");
        for query in [format!("api_key={}", app.key), format!("key={encoded}"), format!("limit=3&authorization=Bearer%20{}", app.key)] {
            let response = app
                .client
                .get(app.url(&format!("/v1/connections/stripe/customers?{query}")))
                .bearer_auth(&app.key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400);
            assert_eq!(response.headers()["agentgate-error"], "caller");
            let json: Value = response.json().await.unwrap();
            assert_eq!(json["error"]["code"], "api_key_in_url");
            let without_header = app
                .client
                .get(app.url(&format!("/v1/connections/stripe/customers?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(without_header.status(), 400);
        }
        assert!(app.double.received().is_empty());
        served(&app).await;
        let logged = app.logged(1).await;
        assert_eq!(logged.len(), 1, "only the well-behaved request is logged");
        assert!(logged.iter().all(|record| !record.entry.path.contains("agk")));
        app.stop().await;
    }

    async fn key_guessing_from_one_address_gets_429_and_others_are_unaffected(backend) {
        let app = TestApp::spawn(backend).await;
        let attacker_ip: IpAddr = [127, 0, 0, 2].into();
        let attacker = reqwest::Client::builder().no_proxy().local_address(attacker_ip).build().unwrap();
        let guess = |n: usize| format!("agk_{n:0>38}");
        // Guesses count on every route that takes a key: the data plane and the API alike.
        for n in 0..100 {
            let path = if n % 2 == 0 { "/v1/connections/stripe/customers" } else { "/api/v1/keys" };
            let response = attacker.get(app.url(path)).bearer_auth(guess(n)).send().await.unwrap();
            assert_eq!(response.status(), 401, "guess {n}");
        }
        for (key, path) in [
            (guess(100), "/v1/connections/stripe/customers"),
            (app.key.clone(), "/v1/connections/stripe/customers"),
            (guess(101), "/api/v1/keys"),
        ] {
            let response = attacker
                .get(app.url(path))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 429, "blocked, even with a valid key");
            assert_eq!(response.headers()["agentgate-error"], "caller");
            let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry_after));
            let json: Value = response.json().await.unwrap();
            assert_eq!(json["error"]["code"], "too_many_failed_authentications");
        }
        // A load balancer or scraper behind the same address still sees the instance up.
        for path in ["/healthz", "/readyz", "/metrics"] {
            let response = attacker.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path} answers a blocked address");
        }
        let metrics = attacker.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("agentgate_auth_blocks_total 1\n"), "the block is counted once: {metrics}");
        served(&app).await;
        let wrong = app
            .client
            .get(app.url("/v1/connections/stripe/customers"))
            .bearer_auth(guess(1))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "another address still gets the plain answer");
        assert_eq!(app.double.received().len(), 1);
        app.stop().await;
    }
}
