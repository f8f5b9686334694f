//! Stripe failing in every way a network lets it: refused, reset before or during the
//! answer, too slow for the pool, an untrusted certificate, or answering 429/500. Each shows
//! the status and Stripe-shaped body the agent sees; a cut body never looks complete; a
//! Stripe error or header that echoes the key reaches the agent with the key masked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::stripe_double::Reply;
use crate::support::{eventually, TEST_SECRET};

/// What a scripted upstream does once it has read a request head.
#[derive(Clone, Copy)]
enum Script {
    /// Resets the connection before any response byte.
    ResetBeforeHeaders,
    /// Promises 1000 bytes, sends 100, resets.
    ResetMidLengthBody,
    /// Sends one chunk of a chunked body, resets.
    ResetMidChunkedBody,
    /// A 401 whose message holds the key, split across two chunks at `split`.
    EchoKeySplit(usize),
}

/// A raw HTTP/1.1 upstream on loopback that follows a script; counts requests it read.
struct ScriptedUpstream {
    addr: SocketAddr,
    requests: Arc<Mutex<usize>>,
}

impl ScriptedUpstream {
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut stream = stream;
                    if read_head(&mut stream).await {
                        *counted.lock().unwrap() += 1;
                        act(stream, script).await;
                    }
                });
            }
        });
        Self { addr, requests }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// Closes with a TCP reset (SO_LINGER 0: nothing lingers, so nothing blocks on drop).
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}

async fn act(mut stream: TcpStream, script: Script) {
    match script {
        Script::ResetBeforeHeaders => reset(stream),
        Script::ResetMidLengthBody => {
            let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n".to_vec();
            answer.extend(std::iter::repeat_n(b' ', 100));
            stream.write_all(&answer).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            reset(stream);
        }
        Script::ResetMidChunkedBody => {
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"\r\n";
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            reset(stream);
        }
        Script::EchoKeySplit(split) => {
            let message = format!(
                r#"{{"error":{{"type":"invalid_request_error","message":"Invalid API Key provided: {TEST_SECRET}"}}}}"#
            );
            let at = message.find(TEST_SECRET).unwrap() + split;
            let (first, second) = message.split_at(at);
            let head = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            stream
                .write_all(format!("{:x}\r\n{first}\r\n", first.len()).as_bytes())
                .await
                .unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream
                .write_all(format!("{:x}\r\n{second}\r\n0\r\n\r\n", second.len()).as_bytes())
                .await
                .unwrap();
            stream.flush().await.unwrap();
        }
    }
}

async fn spawn_against(backend: crate::support::backend::Backend, base: String) -> TestApp {
    TestApp::spawn_with(
        backend,
        TestOptions {
            stripe_base: Some(base),
            ..Default::default()
        },
    )
    .await
}

async fn assert_upstream_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["agentgate-error"], "upstream");
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["type"], "api_error");
    assert_eq!(json["error"]["code"], code);
}

/// A TLS server with a self-signed certificate; records whether any handshake succeeded
/// and whether any application byte arrived.
async fn untrusted_tls_server() -> (SocketAddr, Arc<Mutex<(usize, usize)>>) {
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert =
        CertificateDer::from(include_bytes!("../fixtures/tls/self_signed_cert.der").to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        include_bytes!("../fixtures/tls/self_signed_key.der").to_vec(),
    ));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // (failed handshakes, bytes of application data received)
    let seen = Arc::new(Mutex::new((0usize, 0usize)));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            match acceptor.accept(stream).await {
                Err(_) => record.lock().unwrap().0 += 1,
                Ok(mut tls) => {
                    let mut buf = Vec::new();
                    let _ = tls.read_to_end(&mut buf).await;
                    record.lock().unwrap().1 += buf.len().max(1);
                }
            }
        }
    });
    (addr, seen)
}

/// A server that accepts TCP connections and never says a word: a TLS handshake with it
/// stalls. The connections are held open until the test ends.
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

each_backend! {
    async fn a_stalled_tls_handshake_is_502_at_the_connect_timeout_on_either_client(backend) {
        let addr = silent_server().await;
        // The connect timeout is 2 s in tests and the total timeout 10 s: a handshake the
        // connect timeout does not cover would end at the total one, as a 504.
        let app = spawn_against(backend, format!("https://{addr}")).await;
        // A body read whole (to be validated) goes through the direct client...
        assert_upstream_error(app.post_form("customers", "email=a%40b.c").await, 502, "upstream_unreachable").await;
        // ...and a streamed one through hyper's pool.
        let streamed = app.post_form_streamed("customers", "email=a%40b.c", &[("Agentgate-Validation", "off")]).await;
        assert_upstream_error(streamed, 502, "upstream_unreachable").await;
        app.stop().await;
    }

    async fn stripe_refusing_connections_is_502(backend) {
        let refusing = crate::support::RefusingPort::bind();
        let app = spawn_against(backend, refusing.base()).await;
        assert_upstream_error(app.get("customers").await, 502, "upstream_unreachable").await;
        app.stop().await;
    }

    async fn a_reset_before_headers_is_502_and_sent_once(backend) {
        let upstream = ScriptedUpstream::start(Script::ResetBeforeHeaders).await;
        let app = spawn_against(backend, upstream.base()).await;
        let response = app.post_form("customers", "email=a%40b.c").await;
        assert_upstream_error(response, 502, "upstream_unreachable").await;
        assert_eq!(upstream.requests(), 1, "a POST that may have reached Stripe is never re-sent");
        app.stop().await;
    }

    async fn a_reset_mid_body_aborts_the_agents_connection(backend) {
        for script in [Script::ResetMidLengthBody, Script::ResetMidChunkedBody] {
            let upstream = ScriptedUpstream::start(script).await;
            let app = spawn_against(backend, upstream.base()).await;
            let response = app.get("customers").await;
            assert_eq!(response.status(), 200, "the headers had been passed on");
            let body = response.bytes().await;
            assert!(body.is_err(), "a cut body must fail, not end early: {body:?}");
            // At the byte level: with a length, fewer bytes than promised; chunked, no final chunk.
            let raw = raw_get(&app).await;
            match script {
                Script::ResetMidLengthBody => {
                    assert!(raw.contains("content-length: 1000"), "{raw}");
                    let body = raw.split_once("\r\n\r\n").unwrap().1;
                    assert!(body.len() < 1000);
                }
                _ => assert!(!raw.ends_with("0\r\n\r\n"), "{raw:?}"),
            }
            app.stop().await;
        }
    }

    async fn a_slow_stripe_fills_the_bound_and_the_rest_get_a_fast_503(backend) {
        let options = TestOptions { upstream_max_in_flight: 4, ..Default::default() };
        let app = Arc::new(TestApp::spawn_with(backend, options).await);
        app.double.respond(Reply::HoldUntilReleased);
        let mut held = Vec::new();
        for _ in 0..4 {
            let app = app.clone();
            held.push(tokio::spawn(async move { app.get("customers").await.status() }));
        }
        app.double.wait_for(4).await;
        for _ in 0..20 {
            let response = tokio::time::timeout(Duration::from_secs(5), app.get("customers"))
                .await
                .expect("refused at once, not queued");
            assert_eq!(response.headers()["retry-after"], "1");
            assert_upstream_error(response, 503, "upstream_busy").await;
        }
        assert_eq!(app.double.received().len(), 4, "nothing past the bound was sent");
        for _ in 0..4 {
            app.double.release();
        }
        for task in held {
            assert_eq!(task.await.unwrap(), 200);
        }
        app.double.respond(Reply::stripe_ok(r#"{"id":"cus_after"}"#));
        assert_eq!(app.get("customers").await.status(), 200, "slots come back");
        Arc::try_unwrap(app).ok().expect("only owner").stop().await;
    }

    async fn an_untrusted_certificate_is_502_and_no_request_byte_is_sent(backend) {
        let (addr, seen) = untrusted_tls_server().await;
        let app = spawn_against(backend, format!("https://{addr}")).await;
        assert_upstream_error(app.post_form("customers", "email=a%40b.c").await, 502, "upstream_unreachable").await;
        // The client gives up as soon as it rejects the certificate; the server side notes
        // the failed handshake a moment later.
        let application_bytes = eventually(Duration::from_secs(5), "the server to see the handshake fail", || {
            let (failed, bytes) = *seen.lock().unwrap();
            async move { (failed >= 1).then_some(bytes) }
        })
        .await;
        assert_eq!(application_bytes, 0, "no request byte crossed the connection");
        app.stop().await;
    }

    async fn stripe_429_and_500_pass_through_with_their_headers(backend) {
        let app = TestApp::spawn(backend).await;
        for (status, body) in [
            (429, r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}"#),
            (500, r#"{"error":{"type":"api_error","message":"Something went wrong"}}"#),
        ] {
            app.double.respond(Reply::Json {
                status,
                headers: vec![
                    ("Request-Id".into(), "req_fault".into()),
                    ("Retry-After".into(), "2".into()),
                    ("Stripe-Should-Retry".into(), "true".into()),
                    ("Content-Type".into(), "application/json".into()),
                ],
                body: body.into(),
            });
            let response = app.get("customers").await;
            assert_eq!(response.status(), status);
            assert!(response.headers().get("agentgate-error").is_none(), "Stripe's answer, not ours");
            assert_eq!(response.headers()["request-id"], "req_fault");
            assert_eq!(response.headers()["retry-after"], "2");
            assert_eq!(response.headers()["stripe-should-retry"], "true");
            assert_eq!(response.text().await.unwrap(), body);
        }
        // A POST without an Idempotency-Key that Stripe fails is not sent again either: only
        // Stripe (or the agent's SDK) may decide it is safe to repeat.
        let post = app.post_form("customers", "email=a%40b.c").await;
        assert_eq!(post.status(), 500);
        let received = app.double.received();
        assert_eq!(received.len(), 3, "each request sent once, never retried");
        assert!(received[2].headers.get("idempotency-key").is_none());
        app.stop().await;
    }

    async fn stripe_echoing_the_key_in_an_error_reaches_the_agent_masked(backend) {
        let app = TestApp::spawn(backend).await;
        app.double.respond(Reply::Json {
            status: 401,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: format!(r#"{{"error":{{"type":"invalid_request_error","message":"Invalid API Key provided: {TEST_SECRET}"}}}}"#),
        });
        let response = app.get("customers").await;
        assert_eq!(response.status(), 401);
        let text = response.text().await.unwrap();
        assert!(!text.contains(TEST_SECRET), "{text}");
        assert!(text.contains("sk_test_…"), "masked like the dashboard shows it: {text}");
        app.stop().await;
        for split in [1, 8, TEST_SECRET.len() / 2, TEST_SECRET.len() - 1] {
            let upstream = ScriptedUpstream::start(Script::EchoKeySplit(split)).await;
            let app = spawn_against(backend, upstream.base()).await;
            let response = app.get("customers").await;
            assert_eq!(response.status(), 401);
            let text = response.text().await.unwrap();
            assert!(!text.contains(TEST_SECRET), "split at {split}: {text}");
            let json: Value = serde_json::from_str(&text).expect("still JSON");
            assert!(json["error"]["message"].as_str().unwrap().starts_with("Invalid API Key provided: sk_test_…"));
            app.stop().await;
        }
    }
}

each_backend! {
    async fn stripe_echoing_the_key_in_a_header_reaches_the_agent_masked(backend) {
        let app = TestApp::spawn(backend).await;
        app.double.respond(Reply::Json {
            status: 200,
            headers: vec![
                ("Request-Id".into(), format!("req_{TEST_SECRET}")),
                ("X-Echo".into(), format!("Bearer {TEST_SECRET}; again {TEST_SECRET}")),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: r#"{"id":"cus_1","object":"customer"}"#.into(),
        });
        // A whole body goes through the direct client and the fast lane; a streamed one
        // through hyper on both sides.
        let direct = app.get("customers").await;
        let streamed = app.post_form_streamed("customers", "email=a%40b.c", &[]).await;
        for response in [direct, streamed] {
            assert_eq!(response.status(), 200);
            let headers = format!("{:?}", response.headers());
            assert!(!headers.contains(TEST_SECRET), "{headers}");
            let echo = response.headers()["x-echo"].to_str().unwrap().to_owned();
            assert!(
                echo.starts_with("Bearer sk_test_...") && echo.contains("; again sk_test_..."),
                "{echo}"
            );
            assert!(response.headers()["request-id"].to_str().unwrap().starts_with("req_sk_test_..."));
            assert_eq!(response.text().await.unwrap(), r#"{"id":"cus_1","object":"customer"}"#);
        }
        for entry in app.logged(2).await {
            let logged = entry.entry.stripe_request_id.unwrap_or_default();
            assert!(logged.starts_with("req_sk_test_...") && !logged.contains(TEST_SECRET), "{logged}");
        }
        app.stop().await;
    }
}

/// One GET through agentgate as raw bytes, read until the connection ends (or fails).
async fn raw_get(app: &TestApp) -> String {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /v1/connections/stripe/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        app.key
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}
