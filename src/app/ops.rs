//! Operations endpoints for load balancers and monitoring: `/healthz` (the process is up),
//! `/readyz` (the store answers and the instance is not draining), `/metrics` (Prometheus).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use http::{header, StatusCode};

use crate::metrics::Metrics;
use crate::store::Store;

/// State of the operations endpoints.
pub struct Ops {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
}

impl Ops {
    /// Ready, not draining.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            draining: AtomicBool::new(false),
        }
    }

    /// From now on `/readyz` fails, so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS: &str = "/metrics";

/// The operations routes' paths. They take no key, and an address blocked for failed
/// authentications still reaches them (see [`crate::proxy::Entry::main`]).
pub const PATHS: &[&str] = &[HEALTHZ, READYZ, METRICS];

/// The operations routes.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .with_state(ops)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    if ops.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    match ops.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(error) => {
            tracing::warn!(%error, "readiness check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.encode(),
    )
}
