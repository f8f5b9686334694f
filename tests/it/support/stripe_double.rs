//! A Stripe double: a real HTTP server on loopback that records exactly what reached it
//! and answers as told.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use http::{HeaderMap, Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

/// One request as the double received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: Method,
    /// Path and query exactly as sent.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the double answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status, extra headers and a body.
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Never answers (for timeouts).
    Hang,
    /// Answers 200 only once `release` is called (for in-flight requests at shutdown).
    HoldUntilReleased,
}

impl Reply {
    /// A 200 like Stripe's, with the response headers SDKs read.
    pub fn stripe_ok(body: &str) -> Self {
        Reply::Json {
            status: 200,
            headers: vec![
                ("Request-Id".into(), "req_double123".into()),
                ("Stripe-Version".into(), "2026-07-29.dahlia".into()),
                ("Idempotency-Key".into(), "idem-from-stripe".into()),
                ("Original-Request".into(), "req_original1".into()),
                ("Stripe-Should-Retry".into(), "false".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: body.into(),
        }
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    reply: Mutex<Reply>,
    arrived: Notify,
    released: Semaphore,
}

/// A running double.
pub struct StripeDouble {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl StripeDouble {
    /// Starts a double answering every request with a customer object.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            reply: Mutex::new(Reply::stripe_ok(
                r#"{"id":"cus_double","object":"customer"}"#,
            )),
            arrived: Notify::new(),
            released: Semaphore::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind double");
        let addr = listener.local_addr().expect("double address");
        let router = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { addr, shared }
    }

    /// The base URL to give agentgate.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes how later requests are answered.
    pub fn respond(&self, reply: Reply) {
        *self.shared.reply.lock().unwrap() = reply;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The only request received; fails unless exactly one arrived.
    pub fn single(&self) -> Received {
        let received = self.received();
        assert_eq!(
            received.len(),
            1,
            "expected exactly one request at the double: {received:#?}"
        );
        received.into_iter().next().unwrap()
    }

    /// Waits until at least `count` requests have arrived.
    pub async fn wait_for(&self, count: usize) {
        loop {
            let notified = self.shared.arrived.notified();
            if self.shared.received.lock().unwrap().len() >= count {
                return;
            }
            notified.await;
        }
    }

    /// Lets one held request answer.
    pub fn release(&self) {
        self.shared.released.add_permits(1);
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    shared.received.lock().unwrap().push(Received {
        method: parts.method,
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    });
    shared.arrived.notify_waiters();
    let reply = shared.reply.lock().unwrap().clone();
    match reply {
        Reply::Json {
            status,
            headers,
            body,
        } => {
            let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).unwrap()
        }
        Reply::Hang => std::future::pending().await,
        Reply::HoldUntilReleased => {
            shared
                .released
                .acquire()
                .await
                .expect("semaphore open")
                .forget();
            Response::new(Body::from(r#"{"id":"cus_held","object":"customer"}"#))
        }
    }
}
