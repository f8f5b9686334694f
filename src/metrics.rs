//! Prometheus metrics: requests by connection and status, latency, upstream failures and
//! the request log's health. Labels never carry a secret, a key or a caller-chosen string
//! that was not first checked (unknown connection names are reported as `-`).

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label value shared by reference count, so counting a request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct SharedLabel(Arc<str>);

impl EncodeLabelValue for SharedLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Connection name, or `-` when the request never reached one.
    pub connection: SharedLabel,
    /// Status sent to the caller.
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Connection name, or `-`.
    pub connection: SharedLabel,
}

/// Labels of an upstream failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// Connection name.
    pub connection: String,
    /// `connect`, `timeout`, `reset` or `body`.
    pub kind: &'static str,
}

/// Labels of records deleted by retention.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrunedLabels {
    /// `events`, `request_log` or `installation_audit`.
    pub records: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ])
}

/// Every metric agentgate exports, registered once at start.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ConnectionLabels, Histogram, fn() -> Histogram>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Request log entries written to the store.
    pub log_written: Counter,
    /// Request log entries dropped because the writer fell behind.
    pub log_dropped: Counter,
    /// Request log batches the store refused.
    pub log_write_failures: Counter,
    /// Request log batches written straight through because the writer had fallen behind
    /// (not counting those written while the server stops).
    pub log_catch_up_batches: Counter,
    /// Client addresses blocked for too many failed authentications.
    pub auth_blocks: Counter,
    /// Client connections open now (see `--max-connections`).
    pub client_connections: Gauge,
    /// Times a new client connection had to wait because `--max-connections` were open.
    pub connection_limit_waits: Counter,
    retention_pruned: Family<PrunedLabels, Counter>,
    /// Retention runs that failed: the records stay until a later run succeeds, and the
    /// database grows meanwhile, so this is one to alert on.
    pub retention_failures: Counter,
    unresolved: SharedLabel,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("agentgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by connection and status",
            requests.clone(),
        );
        let latency: Family<ConnectionLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from request arrival to response headers",
            latency.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failures reaching Stripe, by kind",
            upstream_errors.clone(),
        );
        let log_written = Counter::default();
        registry.register(
            "request_log_written",
            "Request log entries stored",
            log_written.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "request_log_dropped",
            "Request log entries dropped because the writer fell behind",
            log_dropped.clone(),
        );
        let log_write_failures = Counter::default();
        registry.register(
            "request_log_write_failures",
            "Request log batches the store refused",
            log_write_failures.clone(),
        );
        let log_catch_up_batches = Counter::default();
        registry.register(
            "request_log_catch_up_batches",
            "Request log batches written straight through because the writer had fallen behind",
            log_catch_up_batches.clone(),
        );
        let auth_blocks = Counter::default();
        registry.register(
            "auth_blocks",
            "Client addresses blocked for a minute for too many failed authentications",
            auth_blocks.clone(),
        );
        let client_connections = Gauge::default();
        registry.register(
            "client_connections",
            "Client connections open now",
            client_connections.clone(),
        );
        let connection_limit_waits = Counter::default();
        registry.register(
            "connection_limit_waits",
            "New client connections that waited in the listen queue because --max-connections were open",
            connection_limit_waits.clone(),
        );
        let retention_pruned = Family::<PrunedLabels, Counter>::default();
        registry.register(
            "retention_pruned",
            "Records deleted because they were older than their retention, by kind",
            retention_pruned.clone(),
        );
        let retention_failures = Counter::default();
        registry.register(
            "retention_failures",
            "Retention runs that failed (the records stay until a later run succeeds)",
            retention_failures.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            upstream_errors,
            log_written,
            log_dropped,
            log_write_failures,
            log_catch_up_batches,
            auth_blocks,
            client_connections,
            connection_limit_waits,
            retention_pruned,
            retention_failures,
            unresolved: SharedLabel(Arc::from("-")),
        }
    }

    /// The handles that count an answered request and its latency; `connection` is `None`
    /// when the request never reached a known connection.
    fn request_handles(&self, connection: Option<&Arc<str>>, status: u16) -> RequestHandles {
        let connection =
            connection.map_or_else(|| self.unresolved.clone(), |c| SharedLabel(c.clone()));
        let latency = self
            .latency
            .get_or_create(&ConnectionLabels {
                connection: connection.clone(),
            })
            .clone();
        let requests = self
            .requests
            .get_or_create(&RequestLabels { connection, status })
            .clone();
        RequestHandles { latency, requests }
    }

    /// Counts `count` records of kind `records` deleted by retention.
    pub fn observe_pruned(&self, records: &'static str, count: u64) {
        self.retention_pruned
            .get_or_create(&PrunedLabels { records })
            .inc_by(count);
    }

    /// Counts one failure reaching Stripe.
    pub fn observe_upstream_error(&self, connection: &str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                connection: connection.to_owned(),
                kind,
            })
            .inc();
    }

    /// The text exposition format for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The latency histogram and the request counter of one connection and status.
struct RequestHandles {
    latency: Histogram,
    requests: Counter,
}

impl RequestHandles {
    fn observe(&self, seconds: f64) {
        self.latency.observe(seconds);
        self.requests.inc();
    }
}

/// Handles a worker keeps, with the labels they count under.
struct KeptHandles {
    connection: Option<Arc<str>>,
    status: u16,
    handles: RequestHandles,
}

/// Handles a worker keeps per (connection, status), at most; past it the worker looks the
/// rest up in the families each time, so a flood of distinct statuses cannot grow it.
const MAX_KEPT_HANDLES: usize = 64;

/// One worker's way to count answered requests. Looking a labelled metric up in its family
/// hashes the labels and takes the family's lock, whose cache line every worker writes; a
/// worker that keeps the handles it has used does neither for a request in steady state.
/// The families never drop a label set, so a kept handle always counts into what `/metrics`
/// exports.
pub struct RequestMeter {
    metrics: Arc<Metrics>,
    kept: Mutex<Vec<KeptHandles>>,
}

impl RequestMeter {
    /// A meter with no handles yet, counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Counts one answered request and its latency; `connection` is `None` when the
    /// request never reached a known connection.
    pub fn observe(&self, connection: Option<&Arc<str>>, status: u16, seconds: f64) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let name = connection.map(|c| &**c);
        let found = kept
            .iter()
            .find(|k| k.status == status && k.connection.as_deref() == name);
        if let Some(k) = found {
            k.handles.observe(seconds);
            return;
        }
        let handles = self.metrics.request_handles(connection, status);
        handles.observe(seconds);
        if kept.len() < MAX_KEPT_HANDLES {
            kept.push(KeptHandles {
                connection: connection.cloned(),
                status,
                handles,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_counters_with_their_labels() {
        let metrics = Arc::new(Metrics::new());
        RequestMeter::new(metrics.clone()).observe(Some(&Arc::from("stripe")), 200, 0.002);
        metrics.observe_upstream_error("stripe", "connect");
        let text = metrics.encode();
        assert!(
            text.contains(r#"agentgate_requests_total{connection="stripe",status="200"} 1"#),
            "{text}"
        );
        assert!(text
            .contains(r#"agentgate_upstream_errors_total{connection="stripe",kind="connect"} 1"#));
        assert!(text.contains("agentgate_request_duration_seconds_bucket"));
    }

    #[test]
    fn a_meter_counts_into_the_families_with_kept_and_looked_up_handles() {
        let metrics = Arc::new(Metrics::new());
        let first = RequestMeter::new(metrics.clone());
        let second = RequestMeter::new(metrics.clone());
        let stripe: Arc<str> = Arc::from("stripe");
        for _ in 0..3 {
            first.observe(Some(&stripe), 200, 0.001);
        }
        second.observe(Some(&Arc::from("stripe")), 200, 0.001);
        second.observe(None, 401, 0.001);
        for status in 0..(MAX_KEPT_HANDLES as u16 + 2) {
            first.observe(Some(&stripe), 1000 + status, 0.001);
            first.observe(Some(&stripe), 1000 + status, 0.001);
        }
        let text = metrics.encode();
        for expected in [
            r#"agentgate_requests_total{connection="stripe",status="200"} 4"#,
            r#"agentgate_requests_total{connection="-",status="401"} 1"#,
            r#"agentgate_requests_total{connection="stripe",status="1065"} 2"#,
            r#"agentgate_request_duration_seconds_count{connection="stripe"} 136"#,
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        let kept = first.kept.lock().unwrap().len();
        assert_eq!(kept, MAX_KEPT_HANDLES);
    }
}
