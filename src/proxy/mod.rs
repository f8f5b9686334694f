//! The data plane: `/v1/connections/{connection}/*` (and the SDK listeners' root) forwarded
//! to Stripe with the connection's key injected. The handler reads like the design table, a
//! list of named phases, each returning `Result<_, GatewayError>`:
//! `check_request_line → authenticate → route → resolve_connection → StripeTarget::parse →
//! check_body_size → (listed operations: read_body → check_operation) → upstream_request →
//! forward (or describe, for a dry run) → record`. Bodies stream unless a listed operation's
//! must be read whole to be validated.
//!
//! Data-plane requests go straight from hyper to [`Proxy::handle`] (see [`Entry`]); only the
//! other routes pass through axum's router, so the hot path pays for no routing tables,
//! path-parameter maps or extra boxing.

mod body_deadline;
pub mod checks;
pub mod client;
mod connect_timeout;
mod direct;
pub mod discovery;
mod dry_run;
mod entry;
pub mod headers;
pub mod in_flight;
mod inbound;
mod mask;
pub mod raw_headers;
pub mod target;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;
use rand::Rng;

use crate::catalog::{CatalogIndex, Matched};
use crate::connections::{ConnectionResolver, ResolveError, ResolvedConnection};
use crate::error::GatewayError;
use crate::keys::failures::AuthFailures;
use crate::keys::{presented_key, AuthError, AuthenticatedKey, KeyAuthenticator};
use crate::metrics::{Metrics, RequestMeter};
use crate::policy::guardrails::{GuardrailError, Guardrails, Reservation};
use crate::policy::idempotency::Deriver;
use crate::policy::rate::{self, RateLimiter};
use crate::policy::{self, idempotency, RequestFacts};
use crate::request_log::RequestLogger;
use crate::store::RequestLogEntry;
use crate::validation;
use crate::webhooks::EventBus;
use checks::Controls;
use client::{Outgoing, Upstream, UpstreamBody};
use dry_run::DryRun;
pub use entry::{unknown_route, Entry};
use inbound::Inbound;
pub use inbound::Via;
use raw_headers::RawHeaders;
use target::StripeTarget;

/// Where the main listener's data plane starts.
pub(crate) const CONNECTIONS_PREFIX: &str = "/v1/connections/";

/// What every worker's data plane shares: caches, metrics and the request log queue.
pub struct ProxyShared {
    /// Cached key lookups.
    pub keys: KeyAuthenticator,
    /// Cached connection lookups.
    pub connections: ConnectionResolver,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The request log's queue.
    pub log: RequestLogger,
    /// The listed operations, validated before they are forwarded.
    pub catalog: Arc<CatalogIndex>,
    /// Per-key and per-connection rate limits.
    pub rate_limits: RateLimiter,
    /// Derives `Idempotency-Key` for POSTs of keys in `derive` mode.
    pub idempotency: Deriver,
    /// Money guardrails and their daily totals.
    pub guardrails: Guardrails,
    /// Notices of stored webhook events, for open streams.
    pub events: EventBus,
    /// Failed authentications per client address (brute-force protection), counted and
    /// enforced for every route in [`Entry::serve`].
    pub auth_failures: AuthFailures,
    /// The bound on requests waiting for Stripe at once.
    pub upstream_slots: in_flight::UpstreamSlots,
}

impl ProxyShared {
    /// The agentgate key a request presents, checked.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Arc<AuthenticatedKey>, GatewayError> {
        self.authenticate_identified(headers)
            .await
            .map_err(|(error, _)| error)
    }

    /// Like [`Self::authenticate`], but a refused key that is known (revoked, expired) comes
    /// back with the refusal, so the refusal can be recorded under its key and workspace.
    pub async fn authenticate_identified(
        &self,
        headers: &HeaderMap,
    ) -> Result<Arc<AuthenticatedKey>, (GatewayError, Option<Arc<AuthenticatedKey>>)> {
        let presented = presented_key(headers);
        self.keys
            .authenticate(presented.as_ref().map(|key| key.as_str()))
            .await
            .map_err(|error| match error {
                AuthError::Missing => (GatewayError::KeyMissing, None),
                AuthError::Invalid => (GatewayError::KeyInvalid, None),
                AuthError::Revoked(key) => (GatewayError::KeyRevoked, Some(key)),
                AuthError::Expired(key) => (GatewayError::KeyExpired, Some(key)),
                AuthError::Store(error) => {
                    tracing::error!(error = %error, "key lookup failed");
                    (GatewayError::Internal, None)
                }
            })
    }

    /// The key's workspace's connection with this name; 404 in Stripe's shape when there is
    /// none.
    pub async fn resolve_connection(
        &self,
        key: &AuthenticatedKey,
        name: &str,
        request_id: &str,
    ) -> Result<Arc<ResolvedConnection>, GatewayError> {
        let unknown = || GatewayError::UnknownConnection(target::loggable_raw_path(name));
        if !is_connection_name(name) {
            return Err(unknown());
        }
        match self.connections.resolve(&key.workspace_id, name).await {
            Ok(Some(connection)) => Ok(connection),
            Ok(None) => Err(unknown()),
            Err(error @ ResolveError::Undecryptable(_)) | Err(error @ ResolveError::Store(_)) => {
                tracing::error!(request_id, error = %error, "connection lookup failed");
                Err(GatewayError::Internal)
            }
        }
    }
}

/// One worker thread's data plane: the shared state plus its own client to Stripe, so a
/// request and its upstream connection never leave the worker's thread.
pub struct Proxy {
    shared: Arc<ProxyShared>,
    upstream: Upstream,
    meter: RequestMeter,
}

/// How the connection is chosen for a request.
#[derive(Clone, Copy)]
enum Mount<'a> {
    /// `/v1/connections/{connection}/{stripe path}` on the main listener.
    Prefixed,
    /// An SDK listener serving one connection at its root (`/v1/...`).
    Root(&'a str),
}

/// What is known about one request as it goes through the phases; what `record` reads.
struct Exchange<'a> {
    request_id: String,
    received_at: i64,
    key: Option<Arc<AuthenticatedKey>>,
    connection: &'a str,
    resolved: Option<Arc<str>>,
    raw_path: &'a str,
    target: Option<StripeTarget>,
    stripe_request_id: Option<String>,
    outcome: &'static str,
    operation: Option<String>,
    reason: Option<String>,
    /// The `Idempotency-Key` agentgate derived for the request (`derive` mode), logged so
    /// operators can match the entry with Stripe's dashboard.
    derived_idempotency_key: Option<String>,
    via: Via,
    /// The address the request came from, for scopes that name addresses.
    client: Option<IpAddr>,
}

impl Proxy {
    /// A data plane for one worker, with a fresh connection pool to Stripe.
    pub fn new(shared: Arc<ProxyShared>, upstream: client::UpstreamConfig) -> Self {
        Self {
            meter: RequestMeter::new(shared.metrics.clone()),
            shared,
            upstream: Upstream::new(upstream),
        }
    }

    /// Answers a request hyper read; `client` is the address it came from, when known.
    async fn handle(
        &self,
        request: Request<Incoming>,
        mount: Mount<'_>,
        client: Option<IpAddr>,
    ) -> Response {
        let (parts, body) = request.into_parts();
        self.respond(parts, Inbound::Stream(body), mount, Via::Http, client)
            .await
            .into_response()
    }

    /// Answers one data-plane request; `client` is the address it came from, when known.
    async fn respond(
        &self,
        parts: Parts,
        body: Inbound,
        mount: Mount<'_>,
        via: Via,
        client: Option<IpAddr>,
    ) -> Answer {
        let started = Instant::now();
        let mut exchange = Exchange {
            request_id: new_request_id(),
            received_at: crate::time::now_millis(),
            key: None,
            connection: "",
            resolved: None,
            raw_path: "",
            target: None,
            stripe_request_id: None,
            outcome: "forwarded",
            operation: None,
            reason: None,
            derived_idempotency_key: None,
            via,
            client,
        };
        let mut answer = match self.run(&parts, body, mount, &mut exchange).await {
            Ok(answer) => answer,
            Err(error) => {
                exchange.outcome = error.blame().as_str();
                exchange.reason = Some(error.reason());
                Answer::from(error.into_response())
            }
        };
        if let Ok(value) = HeaderValue::from_str(&exchange.request_id) {
            answer
                .response
                .headers_mut()
                .insert(headers::REQUEST_ID_HEADER.clone(), value);
        }
        self.record(exchange, &parts, answer.response.status(), started);
        answer
    }

    async fn run<'a>(
        &self,
        parts: &'a Parts,
        body: Inbound,
        mount: Mount<'a>,
        exchange: &mut Exchange<'a>,
    ) -> Result<Answer, GatewayError> {
        check_request_line(parts)?;
        let key = match self.shared.authenticate_identified(&parts.headers).await {
            Ok(key) => key,
            Err((error, known)) => {
                exchange.key = known;
                return Err(error);
            }
        };
        exchange.key = Some(key.clone());
        let (connection_name, rest) = route(parts, mount)?;
        exchange.connection = connection_name;
        exchange.raw_path = rest;
        let connection = self
            .resolve_connection(&key, connection_name, exchange)
            .await?;
        let target = exchange
            .target
            .insert(StripeTarget::parse(rest, parts.uri.query())?);
        check_body_size(parts, self.upstream.config().max_body_bytes)?;
        let controls = Controls::read(&parts.headers)?;
        let listed = self.shared.catalog.find(&parts.method, target.path());
        let operation = listed.as_ref().map(|m| m.operation.id.as_str());
        exchange.operation = operation.map(str::to_owned);
        authorize(&key, parts, exchange.client, &connection, listed.as_ref())?;
        let mode = key.scopes.idempotency;
        idempotency::require(mode, &parts.method, &parts.headers).map_err(GatewayError::Invalid)?;
        self.shared.rate_limits.prime(&key, &connection).await;
        if let Err(wait) = self.shared.rate_limits.check(&key, &connection) {
            return Err(GatewayError::RateLimited {
                retry_after: rate::retry_after_seconds(wait),
            });
        }
        let validated = listed.filter(|_| controls.validate && connection.validation);
        let guarded = self.shared.guardrails.applies(&key, operation);
        let needs_body = validated.is_some()
            || guarded
            || controls.dry_run
            || idempotency::needs_body(mode, &parts.method, &parts.headers);
        if !needs_body {
            let streamed = match body {
                Inbound::Stream(body) => Either::Left(Limited::new(body, self.body_limit())),
                Inbound::Whole(bytes) => Either::Right(Full::new(bytes)),
            };
            let outgoing = outgoing(parts, target, &connection);
            return self
                .forward(&outgoing, streamed, &connection, exchange)
                .await;
        }
        let config = self.upstream.config();
        let bytes = body.read(config.max_body_bytes, config.timeout).await?;
        // Guardrails read the decoded parameters; without them validation needs no tree.
        let params = match guarded {
            true => Some(checks::decode_params(parts, &bytes)?),
            false => None,
        };
        match (&validated, &params) {
            (Some(matched), Some(params)) => checks::check_operation(matched, params)?,
            (Some(matched), None) => checks::check_request(matched, parts, &bytes)?,
            (None, _) => {}
        }
        let path_and_query = target.path_and_query().as_str();
        let derived = self.shared.idempotency.upstream_key(
            mode,
            &key.id,
            &parts.method,
            path_and_query,
            &parts.headers,
            &bytes,
        );
        let read = Either::Right(Full::new(bytes.clone()));
        let mut outgoing = outgoing(parts, target, &connection);
        if let Some(value) = derived {
            exchange.derived_idempotency_key = value.to_str().ok().map(str::to_owned);
            outgoing.idempotency_key = Some(value);
        }
        let reservation = match (&params, guarded) {
            (Some(params), true) => self.reserve(&key, operation, params).await?,
            _ => None,
        };
        if controls.dry_run {
            // Checked like a real request, guardrails included, but nothing is counted.
            if let Some(reservation) = reservation {
                self.shared.guardrails.settle(reservation, true).await;
            }
            exchange.outcome = "dry_run";
            let report = DryRun::describe(
                validated.as_ref(),
                &parts.method,
                &self.upstream.uri(target),
                &outgoing.headers(),
                &connection.secret_hint,
                &bytes,
            );
            return Ok(Answer::from(report.into_response()));
        }
        let result = self.forward(&outgoing, read, &connection, exchange).await;
        if let Some(reservation) = reservation {
            self.shared
                .guardrails
                .settle(reservation, not_counted(&result))
                .await;
        }
        result
    }

    async fn reserve(
        &self,
        key: &AuthenticatedKey,
        operation: Option<&str>,
        params: &validation::Params<'_>,
    ) -> Result<Option<Reservation>, GatewayError> {
        match self.shared.guardrails.reserve(key, operation, params).await {
            Ok(reservation) => Ok(reservation),
            Err(GuardrailError::Exceeded(message)) => Err(GatewayError::LimitExceeded(message)),
            Err(GuardrailError::Store(error)) => {
                tracing::error!(error = %error, "guardrail totals unavailable");
                Err(GatewayError::Internal)
            }
        }
    }

    async fn resolve_connection(
        &self,
        key: &AuthenticatedKey,
        name: &str,
        exchange: &mut Exchange<'_>,
    ) -> Result<Arc<ResolvedConnection>, GatewayError> {
        let connection = self
            .shared
            .resolve_connection(key, name, &exchange.request_id)
            .await?;
        exchange.resolved = Some(connection.name.clone());
        Ok(connection)
    }

    async fn forward(
        &self,
        outgoing: &Outgoing<'_>,
        body: UpstreamBody,
        connection: &ResolvedConnection,
        exchange: &mut Exchange<'_>,
    ) -> Result<Answer, GatewayError> {
        let Some(slot) = self.shared.upstream_slots.try_take() else {
            return Err(GatewayError::UpstreamBusy {
                retry_after: in_flight::RETRY_AFTER_SECONDS,
            });
        };
        match self.upstream.forward(outgoing, body).await {
            Ok((response, stripe_headers)) => {
                let response = response
                    .map(|body| axum::body::Body::new(in_flight::SlotBody::new(body, slot)));
                let mut answer = Answer {
                    response,
                    stripe_headers,
                };
                mask_key_in_headers(&mut answer, connection);
                let status = answer.response.status();
                if status.is_client_error() || status.is_server_error() {
                    answer = mask_key(answer, connection);
                }
                exchange.stripe_request_id = answer
                    .stripe_request_id()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_owned);
                Ok(answer)
            }
            Err(failure) => {
                if failure.kind != "body" {
                    let connection = exchange.connection;
                    self.shared
                        .metrics
                        .observe_upstream_error(connection, failure.kind);
                    tracing::warn!(request_id = %exchange.request_id, kind = failure.kind, cause = %failure.cause, "forwarding to Stripe failed");
                }
                Err(failure.error)
            }
        }
    }

    fn record(&self, exchange: Exchange<'_>, parts: &Parts, status: StatusCode, started: Instant) {
        let elapsed = started.elapsed();
        tracing::trace!(request_id = %exchange.request_id, status = status.as_u16(), outcome = exchange.outcome, "answered");
        self.meter.observe(
            exchange.resolved.as_ref(),
            status.as_u16(),
            elapsed.as_secs_f64(),
        );
        let Some(key) = exchange.key else {
            tracing::debug!(request_id = %exchange.request_id, status = status.as_u16(), "unauthenticated request refused");
            return;
        };
        let path = match &exchange.target {
            Some(target) => target.log_path(),
            None => format!("/{}", target::loggable_raw_path(exchange.raw_path)),
        };
        self.shared.log.record(RequestLogEntry {
            created_at: exchange.received_at,
            workspace_id: key.workspace_id.clone(),
            request_id: exchange.request_id,
            key_id: key.id.clone(),
            connection: target::loggable_raw_path(exchange.connection),
            method: crate::request_log::method_name(&parts.method),
            path,
            status: status.as_u16(),
            latency_us: i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX),
            stripe_request_id: exchange.stripe_request_id,
            idempotency_key: exchange.derived_idempotency_key.or_else(|| {
                parts
                    .headers
                    .get(&headers::IDEMPOTENCY_KEY)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| first_chars(v, LOGGED_IDEMPOTENCY_KEY_CHARS).to_owned())
            }),
            outcome: exchange.outcome.into(),
            operation: exchange.operation,
            reason: exchange.reason,
            via: exchange.via.as_str().into(),
            client: exchange.client,
        });
    }

    fn body_limit(&self) -> usize {
        usize::try_from(self.upstream.config().max_body_bytes).unwrap_or(usize::MAX)
    }
}

/// A data-plane answer: the response, and Stripe's headers as the lines it sent when they
/// are not in the response's map (see [`RawHeaders`]). Only the fast lane writes the lines
/// out as they are; everything else takes [`Answer::into_response`].
pub struct Answer {
    /// The response, with agentgate's own headers (and hyper's responses' headers).
    pub response: Response,
    /// Stripe's headers from the direct client; empty for every other answer.
    pub stripe_headers: RawHeaders,
}

impl Answer {
    /// The value of one of Stripe's headers, wherever the answer keeps it.
    fn stripe_header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        match self.response.headers().get(name) {
            Some(value) => Some(value.as_bytes()),
            None => self.stripe_headers.get(name),
        }
    }

    /// Stripe's `Request-Id`, wherever the answer keeps it.
    fn stripe_request_id(&self) -> Option<&[u8]> {
        match self.response.headers().get(&headers::STRIPE_REQUEST_ID) {
            Some(value) => Some(value.as_bytes()),
            None => self.stripe_headers.request_id(),
        }
    }
}

impl From<Response> for Answer {
    fn from(response: Response) -> Self {
        Self {
            response,
            stripe_headers: RawHeaders::default(),
        }
    }
}

impl IntoResponse for Answer {
    /// The response with Stripe's lines added to its map.
    fn into_response(self) -> Response {
        let mut response = self.response;
        self.stripe_headers.append_to(response.headers_mut());
        response
    }
}

/// The connection's Stripe key, as sent in its `Authorization`.
fn stripe_key(connection: &ResolvedConnection) -> Option<&[u8]> {
    connection
        .authorization
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .filter(|secret| !secret.is_empty())
}

/// Stripe's headers with the connection's key masked wherever a value holds it (see
/// [`mask`]), on every answer: a header is read whole, so checking costs one search of
/// the header lines. The replacement is the masked key in ASCII (`sk_test_...4242`).
fn mask_key_in_headers(answer: &mut Answer, connection: &ResolvedConnection) {
    let Some(secret) = stripe_key(connection) else {
        return;
    };
    let in_lines = mask::find_key(answer.stripe_headers.lines(), secret).is_some();
    let in_map = answer
        .response
        .headers()
        .values()
        .any(|value| mask::find_key(value.as_bytes(), secret).is_some());
    if !in_lines && !in_map {
        return;
    }
    let replacement = connection.secret_hint.replace('…', "...");
    if in_lines {
        answer.stripe_headers = answer.stripe_headers.masked(secret, replacement.as_bytes());
    }
    for value in answer.response.headers_mut().values_mut() {
        if mask::find_key(value.as_bytes(), secret).is_some() {
            let masked = mask::replace_all(value.as_bytes(), secret, replacement.as_bytes());
            *value = HeaderValue::from_maybe_shared(masked.freeze())
                .unwrap_or(HeaderValue::from_static("[masked]"));
        }
    }
}

/// Stripe's error body with the connection's key masked (see [`mask`]); the length
/// header goes, since masking changes the length.
fn mask_key(answer: Answer, connection: &ResolvedConnection) -> Answer {
    let Some(secret) = stripe_key(connection).map(bytes::Bytes::copy_from_slice) else {
        return answer;
    };
    let replacement = bytes::Bytes::copy_from_slice(connection.secret_hint.as_bytes());
    let Answer {
        response,
        mut stripe_headers,
    } = answer;
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    stripe_headers.forget_length();
    let body = axum::body::Body::new(mask::MaskedBody::new(body, secret, replacement));
    Answer {
        response: Response::from_parts(parts, body),
        stripe_headers,
    }
}

/// The request for Stripe: the caller's method, Stripe's path and query, the caller's
/// headers (filtered as they are written) and the connection's credential.
fn outgoing<'a>(
    parts: &'a Parts,
    target: &StripeTarget,
    connection: &'a ResolvedConnection,
) -> Outgoing<'a> {
    Outgoing {
        method: parts.method.clone(),
        target: target.path_and_query().clone(),
        caller_headers: &parts.headers,
        authorization: &connection.authorization,
        idempotency_key: None,
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

/// Whether a guarded request's reservation is to be released: Stripe refused it (4xx), or
/// answered from its idempotency cache (`Idempotent-Replayed: true`), so the amount was
/// counted by the first request. Timeouts and 5xx stay counted: Stripe may have acted.
fn not_counted(result: &Result<Answer, GatewayError>) -> bool {
    let Ok(answer) = result else {
        return false;
    };
    let replayed = answer
        .stripe_header(&headers::IDEMPOTENT_REPLAYED)
        .is_some_and(|v| v.eq_ignore_ascii_case(b"true"));
    answer.response.status().is_client_error() || replayed
}

/// The scope check: the key's role and scopes against what the request would do.
fn authorize(
    key: &AuthenticatedKey,
    parts: &Parts,
    client_ip: Option<IpAddr>,
    connection: &ResolvedConnection,
    matched: Option<&Matched<'_, '_>>,
) -> Result<(), GatewayError> {
    let facts = RequestFacts {
        method: &parts.method,
        connection: &connection.name,
        live: connection.live,
        operation: matched.map(|m| m.operation.id.as_str()),
        stripe_account: parts
            .headers
            .get(&headers::STRIPE_ACCOUNT)
            .and_then(|v| v.to_str().ok()),
        client_ip,
    };
    policy::authorize(key.role, &key.scopes, &facts).map_err(GatewayError::Forbidden)
}

/// The address a request came from, when the server put it into its extensions (hyper's
/// connections and MCP calls; the fast lane passes it along itself).
pub(crate) fn client_ip<B>(request: &Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ClientAddr>()
        .map(|addr| addr.0.ip())
}

/// The address of the client a request came from, put into the request's extensions by the
/// server.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Splits a request path into the connection name and the Stripe path after it.
fn route<'a>(parts: &'a Parts, mount: Mount<'a>) -> Result<(&'a str, &'a str), GatewayError> {
    let path = parts.uri.path();
    match mount {
        Mount::Prefixed => {
            let after = path.strip_prefix(CONNECTIONS_PREFIX).unwrap_or_default();
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

/// A random request id (`agr_` + 96 bits in hex), unique without coordination; the data
/// plane's, the management API's and the audit of CLI and dashboard changes.
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let value: u128 = rand::rng().random();
    let mut id = *b"agr_000000000000000000000000";
    for (index, digit) in id[4..].iter_mut().enumerate() {
        let shift = 124 - 4 * index;
        *digit = HEX[((value >> shift) & 0xf) as usize];
    }
    // Hex digits are ASCII, so the bytes are taken as they are (the fallback never runs;
    // it only spares a panic path).
    String::from_utf8(id.to_vec())
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// The most characters of a caller's idempotency key the request log keeps (Stripe's keys
/// are at most 255 characters).
pub(crate) const LOGGED_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The first `count` characters of `text`; a text no longer in bytes is returned whole
/// without counting.
pub(crate) fn first_chars(text: &str, count: usize) -> &str {
    if text.len() <= count {
        return text;
    }
    text.char_indices()
        .nth(count)
        .map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_chars_cuts_at_a_character_boundary() {
        assert_eq!(first_chars("abc", 5), "abc");
        assert_eq!(first_chars("abcdef", 3), "abc");
        assert_eq!(first_chars("ééé", 2), "éé");
        assert_eq!(first_chars("éé", 2), "éé");
    }

    #[test]
    fn request_ids_are_prefixed_hex_of_fixed_length() {
        let id = new_request_id();
        assert_eq!(id.len(), 28);
        assert!(id.starts_with("agr_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_request_id());
    }
}
