//! The request log's record of an agent reading webhook events (RELIABILITY section 3's
//! "event read"): a page pulled, a stream opened, an MCP tool's page or wait. Events carry
//! customers' data, so who read which endpoint's events, when and from where is kept beside
//! the data plane's entries, in the key's workspace.
//!
//! One entry per read, written when its answer is known (for a stream: when it opens, not
//! when it ends). A refusal of an identified key (another workspace's endpoint, a missing
//! scope, a bad parameter) is recorded with its reason; a request without a valid key names
//! no workspace and is not recorded, as on the data plane.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::audit::READ;
use crate::error::GatewayError;
use crate::keys::AuthenticatedKey;
use crate::proxy::headers::REQUEST_ID_HEADER;
use crate::proxy::{target, ProxyShared, Via};
use crate::request_log::RequestLogger;
use crate::store::{RequestLogEntry, WebhookEndpointRecord};

/// Which read a [`EventRead`] records: the operation it is logged as, and the route its
/// path is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    /// A page of events (`GET .../events`, MCP `list_events`).
    List,
    /// The live stream opened (`GET .../events/stream`).
    Stream,
    /// MCP `wait_for_event`: the first event after a cursor.
    Wait,
}

impl ReadKind {
    /// The `operation` of the log entry. Stripe's own resources are named without the
    /// `webhooks.` prefix (`events.list` is Stripe's list of its events), so these never
    /// collide with a catalog operation.
    pub fn operation(self) -> &'static str {
        match self {
            ReadKind::List => "webhooks.events.list",
            ReadKind::Stream => "webhooks.events.stream",
            ReadKind::Wait => "webhooks.events.wait",
        }
    }

    fn route_suffix(self) -> &'static str {
        match self {
            ReadKind::List => "/events",
            ReadKind::Stream | ReadKind::Wait => "/events/stream",
        }
    }
}

/// One read in progress: what its log entry will say, filled in as the read is checked.
pub struct EventRead {
    request_id: String,
    received_at: i64,
    started: Instant,
    kind: ReadKind,
    via: Via,
    /// The endpoint as the caller named it, until it is known.
    named: String,
    query: Option<String>,
    client: Option<IpAddr>,
    key: Option<Arc<AuthenticatedKey>>,
    endpoint: Option<(String, String)>,
}

impl EventRead {
    /// Starts the record of a read of `endpoint` (as named by the caller; empty when the
    /// caller named none) with this query, from this address.
    pub fn begin(
        kind: ReadKind,
        via: Via,
        endpoint: &str,
        query: Option<&str>,
        client: Option<IpAddr>,
    ) -> Self {
        Self {
            request_id: crate::proxy::new_request_id(),
            received_at: crate::time::now_millis(),
            started: Instant::now(),
            kind,
            via,
            named: target::loggable_raw_path(endpoint),
            query: query.map(str::to_owned),
            client,
            key: None,
            endpoint: None,
        }
    }

    /// The key the request presents, checked; a refused key that is known (revoked,
    /// expired) is kept, so its refusal is recorded under it.
    pub async fn authenticate(
        &mut self,
        shared: &ProxyShared,
        headers: &HeaderMap,
    ) -> Result<Arc<AuthenticatedKey>, GatewayError> {
        match shared.authenticate_identified(headers).await {
            Ok(key) => {
                self.key = Some(key.clone());
                Ok(key)
            }
            Err((error, known)) => {
                self.key = known;
                Err(error)
            }
        }
    }

    /// The key of a caller already authenticated (an MCP session).
    pub fn identified(&mut self, key: Arc<AuthenticatedKey>) {
        self.key = Some(key);
    }

    /// The endpoint the key was allowed to read.
    pub fn reading(&mut self, endpoint: &WebhookEndpointRecord) {
        self.endpoint = Some((endpoint.id.to_string(), endpoint.connection.clone()));
    }

    /// Records the read's answer and returns it with `Agentgate-Request-Id`, as the data
    /// plane's answers carry it.
    pub fn answer(self, log: &RequestLogger, result: Result<Response, GatewayError>) -> Response {
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.status(),
        };
        let request_id = self.request_id.clone();
        self.record(log, status, result.as_ref().err());
        let mut response = result.unwrap_or_else(IntoResponse::into_response);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response
                .headers_mut()
                .insert(REQUEST_ID_HEADER.clone(), value);
        }
        response
    }

    /// Records the outcome of a read whose answer is not an HTTP response (an MCP tool's).
    pub fn finish<T>(self, log: &RequestLogger, result: &Result<T, GatewayError>) {
        let error = result.as_ref().err();
        self.record(
            log,
            error.map_or(StatusCode::OK, GatewayError::status),
            error,
        );
    }

    /// Writes the entry: `read`, or the refusal's blame and reason.
    fn record(self, log: &RequestLogger, status: StatusCode, error: Option<&GatewayError>) {
        let Some(key) = self.key else {
            tracing::debug!(request_id = %self.request_id, status = status.as_u16(), "unauthenticated event read refused");
            return;
        };
        let (endpoint, connection) = self.endpoint.unwrap_or((self.named, String::new()));
        let route = format!("/v1/webhooks/{endpoint}{}", self.kind.route_suffix());
        log.record(RequestLogEntry {
            created_at: self.received_at,
            workspace_id: key.workspace_id.clone(),
            request_id: self.request_id,
            key_id: key.id.clone(),
            connection,
            method: "GET".into(),
            // Bounded and printable, as a refused data-plane path is: the query's names are
            // the caller's.
            path: target::loggable_raw_path(&target::path_with_query_names(
                &route,
                self.query.as_deref(),
            )),
            status: status.as_u16(),
            latency_us: i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX),
            stripe_request_id: None,
            idempotency_key: None,
            outcome: error.map_or(READ, |e| e.blame().as_str()).into(),
            operation: Some(self.kind.operation().to_owned()),
            reason: error.map(GatewayError::reason),
            via: self.via.as_str().into(),
            client: self.client,
        });
    }
}
