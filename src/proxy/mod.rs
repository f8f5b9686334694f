//! The data plane: `/v1/connections/{connection}/*` (and the SDK listeners' root) forwarded
//! to Stripe with the connection's key injected. The handler reads like the design table, a
//! list of named phases, each returning `Result<_, GatewayError>`:
//! `check_request_line → authenticate → route → resolve_connection → StripeTarget::parse →
//! check_body_size → upstream_request → forward → record`.

pub mod client;
pub mod headers;
pub mod target;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http::request::Parts;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::Limited;
use rand::Rng;

use crate::connections::{ConnectionResolver, ResolveError, ResolvedConnection};
use crate::error::GatewayError;
use crate::keys::{presented_key, AuthError, AuthenticatedKey, KeyAuthenticator};
use crate::metrics::Metrics;
use crate::request_log::RequestLogger;
use crate::store::RequestLogEntry;
use client::{Upstream, UpstreamBody};
use target::StripeTarget;

/// Everything the data plane needs, shared by every request.
pub struct Proxy {
    /// Cached key lookups.
    pub keys: KeyAuthenticator,
    /// Cached connection lookups.
    pub connections: ConnectionResolver,
    /// The client that reaches Stripe.
    pub upstream: Upstream,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The request log's queue.
    pub log: RequestLogger,
}

/// How the connection is chosen for a request.
#[derive(Clone, Copy)]
enum Mount<'a> {
    /// `/v1/connections/{connection}/{stripe path}` on the main listener.
    Prefixed,
    /// An SDK listener serving one connection at its root (`/v1/...`).
    Root(&'a str),
}

/// The routes of the main listener's data plane.
pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route("/v1/connections/{connection}", any(prefixed))
        .route("/v1/connections/{connection}/", any(prefixed))
        .route("/v1/connections/{connection}/{*rest}", any(prefixed))
        .with_state(proxy)
}

/// An SDK listener: every path is a Stripe path of one connection.
pub fn sdk_router(proxy: Arc<Proxy>, connection: String) -> Router {
    Router::new().fallback(root).with_state(SdkMount {
        proxy,
        connection: connection.into(),
    })
}

#[derive(Clone)]
struct SdkMount {
    proxy: Arc<Proxy>,
    connection: Arc<str>,
}

async fn prefixed(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    proxy.handle(request, Mount::Prefixed).await
}

async fn root(State(mount): State<SdkMount>, request: Request) -> Response {
    mount
        .proxy
        .handle(request, Mount::Root(&mount.connection))
        .await
}

/// What is known about one request as it goes through the phases; what `record` reads.
struct Exchange {
    request_id: String,
    received_at: i64,
    key: Option<Arc<AuthenticatedKey>>,
    connection: String,
    connection_resolved: bool,
    log_path: String,
    stripe_request_id: Option<String>,
    outcome: &'static str,
}

impl Proxy {
    async fn handle(&self, request: Request, mount: Mount<'_>) -> Response {
        let started = Instant::now();
        let mut exchange = Exchange {
            request_id: new_request_id(),
            received_at: crate::time::now_millis(),
            key: None,
            connection: String::new(),
            connection_resolved: false,
            log_path: String::new(),
            stripe_request_id: None,
            outcome: "forwarded",
        };
        let (parts, body) = request.into_parts();
        let mut response = match self.run(&parts, body, mount, &mut exchange).await {
            Ok(response) => response,
            Err(error) => {
                exchange.outcome = error.blame().as_str();
                error.into_response()
            }
        };
        if let Ok(value) = HeaderValue::from_str(&exchange.request_id) {
            response
                .headers_mut()
                .insert(headers::REQUEST_ID_HEADER.clone(), value);
        }
        self.record(exchange, &parts, response.status(), started);
        response
    }

    async fn run(
        &self,
        parts: &Parts,
        body: Body,
        mount: Mount<'_>,
        exchange: &mut Exchange,
    ) -> Result<Response, GatewayError> {
        check_request_line(parts)?;
        let key = self.authenticate(parts).await?;
        exchange.key = Some(key.clone());
        let (connection_name, rest) = route(parts, mount)?;
        exchange.connection = target::loggable_raw_path(connection_name);
        exchange.log_path = format!("/{}", target::loggable_raw_path(rest));
        let connection = self
            .resolve_connection(&key, connection_name, exchange)
            .await?;
        let target = StripeTarget::parse(rest, parts.uri.query())?;
        exchange.log_path = target.log_path();
        check_body_size(parts, self.upstream.config().max_body_bytes)?;
        let request = self.upstream_request(parts, body, &target, &connection);
        self.forward(request, exchange).await
    }

    async fn authenticate(&self, parts: &Parts) -> Result<Arc<AuthenticatedKey>, GatewayError> {
        let presented = presented_key(&parts.headers);
        self.keys
            .authenticate(presented.as_deref().map(String::as_str))
            .await
            .map_err(|error| match error {
                AuthError::Missing => GatewayError::KeyMissing,
                AuthError::Invalid => GatewayError::KeyInvalid,
                AuthError::Revoked => GatewayError::KeyRevoked,
                AuthError::Store(error) => {
                    tracing::error!(error = %error, "key lookup failed");
                    GatewayError::Internal
                }
            })
    }

    async fn resolve_connection(
        &self,
        key: &AuthenticatedKey,
        name: &str,
        exchange: &mut Exchange,
    ) -> Result<Arc<ResolvedConnection>, GatewayError> {
        let unknown = || GatewayError::UnknownConnection(target::loggable_raw_path(name));
        if !is_connection_name(name) {
            return Err(unknown());
        }
        match self.connections.resolve(&key.workspace_id, name).await {
            Ok(Some(connection)) => {
                exchange.connection_resolved = true;
                Ok(connection)
            }
            Ok(None) => Err(unknown()),
            Err(error @ ResolveError::Undecryptable(_)) | Err(error @ ResolveError::Store(_)) => {
                tracing::error!(request_id = %exchange.request_id, error = %error, "connection lookup failed");
                Err(GatewayError::Internal)
            }
        }
    }

    fn upstream_request(
        &self,
        parts: &Parts,
        body: Body,
        target: &StripeTarget,
        connection: &ResolvedConnection,
    ) -> http::Request<UpstreamBody> {
        let mut request = http::Request::new(Limited::new(body, self.body_limit()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = self.upstream.uri(target);
        *request.headers_mut() =
            headers::upstream_request_headers(&parts.headers, &connection.authorization);
        request
    }

    async fn forward(
        &self,
        request: http::Request<UpstreamBody>,
        exchange: &mut Exchange,
    ) -> Result<Response, GatewayError> {
        match self.upstream.send(request).await {
            Ok(mut response) => {
                headers::strip_hop_by_hop(response.headers_mut());
                exchange.stripe_request_id = response
                    .headers()
                    .get(&headers::STRIPE_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(response)
            }
            Err(failure) => {
                if failure.kind != "body" {
                    self.metrics
                        .observe_upstream_error(&exchange.connection, failure.kind);
                    tracing::warn!(request_id = %exchange.request_id, kind = failure.kind, "forwarding to Stripe failed");
                }
                Err(failure.error)
            }
        }
    }

    fn record(&self, exchange: Exchange, parts: &Parts, status: StatusCode, started: Instant) {
        let elapsed = started.elapsed();
        let label = if exchange.connection_resolved {
            exchange.connection.as_str()
        } else {
            "-"
        };
        self.metrics
            .observe_request(label, status.as_u16(), elapsed.as_secs_f64());
        let Some(key) = exchange.key else {
            tracing::debug!(request_id = %exchange.request_id, status = status.as_u16(), "unauthenticated request refused");
            return;
        };
        self.log.record(RequestLogEntry {
            created_at: exchange.received_at,
            workspace_id: key.workspace_id.clone(),
            request_id: exchange.request_id,
            key_id: key.id.clone(),
            connection: exchange.connection,
            method: parts.method.as_str().to_owned(),
            path: exchange.log_path,
            status: status.as_u16(),
            latency_us: i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX),
            stripe_request_id: exchange.stripe_request_id,
            idempotency_key: parts
                .headers
                .get(&headers::IDEMPOTENCY_KEY)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(255).collect()),
            outcome: exchange.outcome.to_owned(),
        });
    }

    fn body_limit(&self) -> usize {
        usize::try_from(self.upstream.config().max_body_bytes).unwrap_or(usize::MAX)
    }
}

/// Refuses absolute-form and authority-form targets (RFC 9112 §3.2): the upstream is
/// always the configured Stripe base, never something the request names. CONNECT and TRACE
/// have no meaning at Stripe.
fn check_request_line(parts: &Parts) -> Result<(), GatewayError> {
    if parts.method == Method::CONNECT || parts.method == Method::TRACE {
        return Err(GatewayError::MethodNotAllowed(parts.method.to_string()));
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        return Err(GatewayError::InvalidPath(
            "absolute-form request targets are not accepted",
        ));
    }
    Ok(())
}

/// Splits a request path into the connection name and the Stripe path after it.
fn route<'a>(parts: &'a Parts, mount: Mount<'a>) -> Result<(&'a str, &'a str), GatewayError> {
    let path = parts.uri.path();
    match mount {
        Mount::Prefixed => {
            let after = path.strip_prefix("/v1/connections/").unwrap_or_default();
            Ok(after.split_once('/').unwrap_or((after, "")))
        }
        Mount::Root(connection) => {
            let rest = path.strip_prefix('/').unwrap_or(path);
            if rest.starts_with("v1/") || rest.starts_with("v2/") {
                Ok((connection, rest))
            } else {
                Err(GatewayError::UnknownRoute {
                    method: parts.method.to_string(),
                    path: target::loggable_raw_path(path),
                })
            }
        }
    }
}

/// Connection names are short identifiers (`stripe`, `stripe-eu`).
pub fn is_connection_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Refuses a declared body over the cap before anything is forwarded; bodies without a
/// length are cut off by the streaming limit instead.
fn check_body_size(parts: &Parts, limit: u64) -> Result<(), GatewayError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(GatewayError::BodyTooLarge { limit }),
        _ => Ok(()),
    }
}

/// A random request id (`agr_` + 96 bits in hex), unique without coordination.
fn new_request_id() -> String {
    let value: u128 = rand::rng().random();
    format!("agr_{:024x}", value >> 32)
}

/// The 404 for anything no route matches, in Stripe's shape.
pub async fn unknown_route(request: Request) -> Response {
    if request.method() == Method::CONNECT {
        return GatewayError::MethodNotAllowed("CONNECT".into()).into_response();
    }
    GatewayError::UnknownRoute {
        method: request.method().to_string(),
        path: target::loggable_raw_path(request.uri().path()),
    }
    .into_response()
}
