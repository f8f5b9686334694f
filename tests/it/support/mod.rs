//! Test harness: real loopback servers (agentgate, a Stripe double), fresh databases per
//! test on SQLite and PostgreSQL, and helpers that keep tests short.

pub mod app;
pub mod backend;
pub mod cli;
pub mod peer;
pub mod raw_http;
pub mod served;
pub mod stripe_double;

use std::future::Future;
use std::time::{Duration, Instant};

/// The Stripe key every test stores: a canary searched for in outputs and files.
pub const TEST_SECRET: &str = "sk_test_51CanaryAgentgateSecret0123456789abcdefXYZ";

/// A forwarded `GET /v1/customers` of `workspace` by `key_x`, logged now as `request_id`,
/// for tests to vary with struct update syntax.
pub fn log_entry(
    workspace: &agentgate::ids::WorkspaceId,
    request_id: &str,
) -> agentgate::store::RequestLogEntry {
    agentgate::store::RequestLogEntry {
        created_at: agentgate::time::now_millis(),
        workspace_id: workspace.clone(),
        request_id: request_id.to_owned(),
        key_id: agentgate::ids::KeyId::from_stored("key_x".into()),
        connection: "stripe".into(),
        method: "GET".into(),
        path: "/v1/customers".into(),
        status: 200,
        latency_us: 10,
        stripe_request_id: None,
        idempotency_key: None,
        outcome: "forwarded".into(),
        operation: Some("customers.list".into()),
        reason: None,
        via: "http".into(),
        client: None,
    }
}

/// What the tests' own set-up changes record as their command.
const TEST_SETUP: &str = "test set-up";

/// Who the tests' own set-up changes are recorded as: the CLI, running [`TEST_SETUP`].
pub fn test_origin() -> agentgate::audit::ChangeOrigin {
    agentgate::audit::ChangeOrigin::cli(TEST_SETUP.into())
}

/// Whether a request log entry is the audit record of a test's set-up, which tests of the
/// request log leave out of what they count.
pub fn is_test_setup(entry: &agentgate::store::RequestLogEntry) -> bool {
    entry.via == "cli" && entry.path == TEST_SETUP
}

/// The audit record of a set-up change to `workspace`, for tests that call the store's
/// change methods directly.
pub fn test_audit(workspace: &agentgate::ids::WorkspaceId) -> agentgate::store::RequestLogEntry {
    test_origin().record(workspace, agentgate::audit::Change::KeyCreated, "")
}

/// A request body sent in `chunk`-sized pieces without a length (chunked encoding).
pub fn streamed(bytes: &[u8], chunk: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

/// A loopback address whose port refuses connections for as long as the value lives: the
/// socket is bound but never listens, so the kernel answers every connect with a reset and
/// no other test can take the port meanwhile (a port freed by dropping a listener can be).
pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
}

impl RefusingPort {
    /// Binds an ephemeral loopback port without listening on it.
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("a loopback port");
        Self { socket }
    }

    /// `http://127.0.0.1:PORT`, for a Stripe base that nothing answers.
    pub fn base(&self) -> String {
        format!(
            "http://{}",
            self.socket.local_addr().expect("bound address")
        )
    }
}

/// Polls `check` until it returns `Some`, failing the test after `limit`. For waiting on
/// background work (the request log writer); the limit is a deadline, not a measurement.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one async test body once per backend, as two tests named `sqlite` and `postgres`
/// in a module named after the test. The PostgreSQL one prints a line and passes when
/// `AGENTGATE_TEST_POSTGRES` is not set.
#[macro_export]
macro_rules! each_backend {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $backend = $crate::support::backend::Backend::Sqlite;
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if !$crate::support::backend::Backend::postgres_enabled(concat!(module_path!())) {
                        return;
                    }
                    let $backend = $crate::support::backend::Backend::Postgres;
                    $body
                }
            }
        )*
    };
}
