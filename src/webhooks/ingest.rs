//! `POST /webhooks/ingest/{endpoint}`: where Stripe delivers events. Stripe's signature is
//! the credential (no agentgate key). The order of checks:
//!
//! 1. unknown endpoint id: 404;
//! 2. body over the cap (`--max-body-bytes`): 413, before it is read when it says its length;
//! 3. no signing secret configured, a missing or bad `Stripe-Signature`, a timestamp outside
//!    the tolerance (`--webhook-tolerance`, either way): 400 with the reason;
//! 4. not a JSON object with string `id` and `type`: 400;
//! 5. a type outside the endpoint's event-type filter: 200, acknowledged and not stored
//!    (Stripe would otherwise retry it for days);
//! 6. otherwise the event is handed to the [`EventWriter`] and the answer waits for its
//!    commit: 200 once it is durably stored (or was already stored: a repeated event id is
//!    acknowledged and kept once), 503 with `Retry-After` if the write failed or did not
//!    finish within `--ingest-commit-timeout`, so Stripe retries. Never a 2xx for an event
//!    that is not stored.
//!
//! Every delivery to a known endpoint, acknowledged or refused, is recorded in the request
//! log of the endpoint's workspace (RELIABILITY section 3's "ingest"): `via` `webhook`,
//! `key_id` the endpoint (its signing secret is the credential), `outcome` `stored`,
//! `duplicate` or `ignored` (or who was at fault, with the refusal's code as `reason`), and,
//! once the signature is verified, the event id as `idempotency_key` (what deliveries are
//! deduplicated on) and as `stripe_request_id` the `Request-Id` of the API request that
//! caused the event, which links the event to that request's own entry. A refused
//! request's body is never stored, and no secret is ever logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::signature::{self, SignatureError};
use super::{EventBus, EventNotice};
use crate::crypto::{Sealer, SecretPurpose};
use crate::error::{ErrorBody, ErrorDetail, GATEWAY_ERROR_HEADER};
use crate::ids::{EndpointId, KeyId};
use crate::proxy::headers::REQUEST_ID_HEADER;
use crate::proxy::ClientAddr;
use crate::request_log::RequestLogger;
use crate::store::{NewEvent, RequestLogEntry, Store, WebhookEndpointRecord};

/// The route Stripe posts to; `{public url}` + this + the endpoint id is the ingest URL.
pub const INGEST_PATH: &str = "/webhooks/ingest/";
/// The request log's `via` of a delivery: it came from Stripe's webhooks, not an agent.
pub const INGEST_VIA: &str = "webhook";
/// The request log's `operation` of a delivery.
pub const INGEST_OPERATION: &str = "webhooks.ingest";

/// Events waiting for the writer; past this, ingests wait (up to the commit timeout) for room.
const QUEUE_CAPACITY: usize = 8_192;
/// Most events committed in one transaction.
const MAX_BATCH: usize = 1_024;
/// What `Retry-After` says on a 503 (Stripe follows its own schedule; other senders may not).
const RETRY_AFTER_SECONDS: u64 = 5;

/// How ingest checks and waits, read once from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct IngestSettings {
    /// How far a signed timestamp may be from our clock, either way.
    pub tolerance: Duration,
    /// Largest body accepted, in bytes; larger gets 413.
    pub max_body_bytes: u64,
    /// How long an ingest waits for its event to be committed before answering 503.
    pub commit_timeout: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            tolerance: signature::DEFAULT_TOLERANCE,
            max_body_bytes: 1024 * 1024,
            commit_timeout: Duration::from_secs(5),
        }
    }
}

// === impl EventWriter ===

/// One event handed to the writer, and where its commit result goes.
struct Pending {
    event: NewEvent,
    done: oneshot::Sender<Result<Option<i64>, ()>>,
}

/// Group commit: the single writer task of this process takes every event queued while the
/// previous transaction was committing and commits them together in one transaction (one
/// disk sync for the lot), then tells each waiting ingest its result and announces the new
/// events on the [`EventBus`]. Concurrent ingests thus share syncs instead of queueing for
/// one each, and an ingest answers 2xx only after its own event's commit returned.
#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Pending>,
}

/// Why an event could not be confirmed stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitError {
    /// The write failed (disk full, database locked or unreachable).
    Failed,
    /// The writer did not confirm within the bound (it may still store it later; the
    /// retry Stripe makes is then a duplicate, acknowledged and not stored again).
    TimedOut,
}

impl EventWriter {
    /// Starts the writer task on the current runtime; it ends when every handle is dropped.
    pub fn spawn(store: Arc<dyn Store>, bus: EventBus) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(store, bus, rx));
        Self { tx }
    }

    /// Queues the event and waits for its commit: `Some(cursor)` when newly stored, `None`
    /// when the endpoint already had that event id.
    pub async fn commit(
        &self,
        event: NewEvent,
        timeout: Duration,
    ) -> Result<Option<i64>, CommitError> {
        let deadline = Instant::now() + timeout;
        let (done, result) = oneshot::channel();
        match self.tx.send_timeout(Pending { event, done }, timeout).await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(CommitError::TimedOut),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(CommitError::Failed),
        }
        match tokio::time::timeout_at(deadline.into(), result).await {
            Ok(Ok(Ok(seq))) => Ok(seq),
            Ok(Ok(Err(()))) | Ok(Err(_)) => Err(CommitError::Failed),
            Err(_) => Err(CommitError::TimedOut),
        }
    }
}

async fn write_batches(store: Arc<dyn Store>, bus: EventBus, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // An ingest that stopped waiting already answered 503 (or lost its client): its
        // event is not written now; Stripe's retry brings it again.
        let (events, waiters): (Vec<NewEvent>, Vec<_>) = batch
            .drain(..)
            .filter(|p| !p.done.is_closed())
            .map(|p| (p.event, p.done))
            .unzip();
        if events.is_empty() {
            continue;
        }
        match store.insert_events(&events).await {
            Ok(seqs) => {
                for ((event, done), seq) in events.iter().zip(waiters).zip(seqs) {
                    if let Some(seq) = seq {
                        bus.publish(EventNotice {
                            endpoint_id: event.endpoint_id.clone(),
                            seq,
                        });
                    }
                    let _ = done.send(Ok(seq));
                }
            }
            Err(error) => {
                tracing::error!(%error, events = events.len(), "could not store ingested events; answering 503");
                for done in waiters {
                    let _ = done.send(Err(()));
                }
            }
        }
    }
}

// === impl Ingest ===

/// What the ingest route needs: the store (endpoints and secrets), the sealer (to open the
/// secrets), the writer and the settings. One per process, shared by every worker.
pub struct Ingest {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    writer: EventWriter,
    settings: IngestSettings,
    log: RequestLogger,
}

impl Ingest {
    /// Builds the ingest state and starts its writer, which announces stored events on `bus`;
    /// each delivery to a known endpoint is recorded in `log`.
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        bus: EventBus,
        settings: IngestSettings,
        log: RequestLogger,
    ) -> Self {
        let writer = EventWriter::spawn(store.clone(), bus);
        Self {
            store,
            sealer,
            writer,
            settings,
            log,
        }
    }
}

/// The ingest route, ready to merge into the main router.
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/webhooks/ingest/{endpoint}", post(ingest_event))
        .with_state(ingest)
}

/// Why an ingest was not acknowledged; each becomes Stripe's error shape.
#[derive(Debug)]
enum IngestError {
    UnknownEndpoint(String),
    BodyTooLarge(u64),
    BodyUnreadable,
    NoSecret,
    Signature(SignatureError),
    NotAnEvent,
    Unavailable,
}

impl IngestError {
    fn status(&self) -> StatusCode {
        match self {
            IngestError::UnknownEndpoint(_) => StatusCode::NOT_FOUND,
            IngestError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::BodyUnreadable
            | IngestError::NoSecret
            | IngestError::Signature(_)
            | IngestError::NotAnEvent => StatusCode::BAD_REQUEST,
            IngestError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            IngestError::UnknownEndpoint(_) => "resource_missing",
            IngestError::BodyTooLarge(_) => "request_too_large",
            IngestError::BodyUnreadable => "body_unreadable",
            IngestError::NoSecret => "webhook_secret_missing",
            IngestError::Signature(error) => error.code(),
            IngestError::NotAnEvent => "event_invalid",
            IngestError::Unavailable => "event_store_unavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            IngestError::UnknownEndpoint(id) => format!("No such webhook endpoint: '{id}'."),
            IngestError::BodyTooLarge(limit) => {
                format!("The request body is larger than the limit of {limit} bytes.")
            }
            IngestError::BodyUnreadable => {
                "The request body could not be read completely.".to_owned()
            }
            IngestError::NoSecret => "This webhook endpoint has no signing secret yet \
                 (`agentgate webhooks set-secret` or `register`); the event was not stored."
                .to_owned(),
            IngestError::Signature(error) => error.to_string(),
            IngestError::NotAnEvent => {
                "The body is not a Stripe event (a JSON object with string `id` and `type`)."
                    .to_owned()
            }
            IngestError::Unavailable => {
                "The event could not be stored right now; it was not accepted. Retry later."
                    .to_owned()
            }
        }
    }

    /// Who is at fault, as the `Agentgate-Error` header and the request log say it.
    fn blame(&self) -> &'static str {
        match self {
            IngestError::Unavailable => "internal",
            _ => "caller",
        }
    }

    /// The answer in Stripe's error shape.
    fn response(&self) -> Response {
        let internal = matches!(self, IngestError::Unavailable);
        let body = ErrorBody {
            error: ErrorDetail {
                error_type: if internal {
                    "api_error"
                } else {
                    "invalid_request_error"
                },
                code: Some(self.code()),
                message: self.message(),
                param: None,
            },
        };
        let mut response =
            (self.status(), serde_json::to_vec(&body).unwrap_or_default()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            GATEWAY_ERROR_HEADER.clone(),
            HeaderValue::from_static(self.blame()),
        );
        if internal {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// The fields of an event ingest reads; the rest is kept as sent.
#[derive(Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    /// The API request that caused the event: `{"id": "req_...", ...}`, or the id alone in
    /// API versions before 2017-05-25; absent or `null` when no request caused it.
    #[serde(default)]
    request: Option<serde_json::Value>,
}

impl EventHead {
    /// Stripe's `Request-Id` of the request that caused the event, when the event names it.
    fn request_id(&self) -> Option<&str> {
        match self.request.as_ref()? {
            serde_json::Value::String(id) => Some(id),
            request => request.get("id")?.as_str(),
        }
    }
}

/// What happened to a delivery that was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepted {
    /// Stored now.
    Stored,
    /// The endpoint already had this event id; kept once.
    Duplicate,
    /// Its type is outside the endpoint's filter; not stored.
    Ignored,
}

impl Accepted {
    /// The request log's `outcome`.
    fn as_str(self) -> &'static str {
        match self {
            Accepted::Stored => "stored",
            Accepted::Duplicate => "duplicate",
            Accepted::Ignored => "ignored",
        }
    }
}

/// What a delivery to a known endpoint is recorded with in the request log: the endpoint
/// (which names the workspace), then the event once its signature is verified.
#[derive(Default)]
struct Delivery {
    endpoint: Option<WebhookEndpointRecord>,
    event_id: Option<String>,
    stripe_request_id: Option<String>,
}

async fn ingest_event(
    State(ingest): State<Arc<Ingest>>,
    Path(endpoint): Path<String>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let received_at = crate::time::now_millis();
    let request_id = crate::proxy::new_request_id();
    let mut delivery = Delivery::default();
    let result = accept(&ingest, &endpoint, &headers, body, &mut delivery).await;
    let mut response = match &result {
        Ok(accepted) => {
            let body = if *accepted == Accepted::Ignored {
                r#"{"received":true,"stored":false}"#
            } else {
                r#"{"received":true}"#
            };
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => {
            tracing::info!(
                request_id,
                endpoint = %endpoint,
                status = error.status().as_u16(),
                reason = error.code(),
                "webhook event refused"
            );
            error.response()
        }
    };
    if let Some(record) = delivery.endpoint {
        let (outcome, reason) = match &result {
            Ok(accepted) => (accepted.as_str(), None),
            Err(error) => (error.blame(), Some(error.code().to_owned())),
        };
        ingest.log.record(RequestLogEntry {
            created_at: received_at,
            workspace_id: record.workspace_id,
            request_id: request_id.clone(),
            key_id: KeyId::from_stored(record.id.to_string()),
            connection: record.connection,
            method: "POST".into(),
            path: format!("{INGEST_PATH}{}", record.id),
            status: response.status().as_u16(),
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            stripe_request_id: delivery.stripe_request_id,
            idempotency_key: delivery.event_id,
            outcome: outcome.into(),
            operation: Some(INGEST_OPERATION.to_owned()),
            reason,
            via: INGEST_VIA.into(),
            client: client.map(|Extension(ClientAddr(addr))| addr.ip()),
        });
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

/// Runs the checks and the commit, noting in `delivery` what the request log records.
async fn accept(
    ingest: &Ingest,
    endpoint: &str,
    headers: &HeaderMap,
    body: Body,
    delivery: &mut Delivery,
) -> Result<Accepted, IngestError> {
    let unknown = || IngestError::UnknownEndpoint(printable(endpoint));
    if !plausible_endpoint_id(endpoint) {
        return Err(unknown());
    }
    let id = EndpointId::from_stored(endpoint.to_owned());
    let record = ingest
        .store
        .find_webhook_endpoint(&id)
        .await
        .map_err(|error| {
            tracing::error!(%error, "webhook endpoint lookup failed");
            IngestError::Unavailable
        })?
        .ok_or_else(unknown)?;
    let workspace_id = record.workspace_id.clone();
    let event_types = record.event_types.clone();
    delivery.endpoint = Some(record);

    let limit = ingest.settings.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(IngestError::BodyTooLarge(limit));
    }
    let payload = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await
        .map_err(|error| match error.is::<LengthLimitError>() {
            true => IngestError::BodyTooLarge(limit),
            false => IngestError::BodyUnreadable,
        })?
        .to_bytes();

    let now = crate::time::now_millis();
    let sealed = ingest
        .store
        .list_active_webhook_secrets(&id, now)
        .await
        .map_err(|error| {
            tracing::error!(%error, "webhook secret lookup failed");
            IngestError::Unavailable
        })?;
    if sealed.is_empty() {
        return Err(IngestError::NoSecret);
    }
    let mut secrets = Vec::with_capacity(sealed.len());
    for secret in &sealed {
        match ingest.sealer.open(
            SecretPurpose::WebhookSecret,
            workspace_id.as_str(),
            &secret.id,
            &secret.secret,
        ) {
            Ok(plain) => secrets.push(plain),
            Err(error) => {
                tracing::error!(%error, secret = %secret.id, "cannot open a webhook signing secret")
            }
        }
    }
    if secrets.is_empty() {
        return Err(IngestError::Unavailable);
    }
    let signature_header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    signature::verify(
        signature_header,
        &payload,
        &secrets,
        now.div_euclid(1000),
        ingest.settings.tolerance,
    )
    .map_err(IngestError::Signature)?;

    let head: EventHead = serde_json::from_slice(&payload).map_err(|_| IngestError::NotAnEvent)?;
    if head.id.is_empty() || head.event_type.is_empty() {
        return Err(IngestError::NotAnEvent);
    }
    delivery.event_id = Some(loggable_id(&head.id));
    delivery.stripe_request_id = head.request_id().map(loggable_id);
    if !accepts_type(&event_types, &head.event_type) {
        return Ok(Accepted::Ignored);
    }
    let event = NewEvent {
        endpoint_id: id,
        workspace_id,
        event_id: head.id,
        event_type: head.event_type,
        received_at: now,
        payload: payload.to_vec(),
    };
    let stored = ingest
        .writer
        .commit(event, ingest.settings.commit_timeout)
        .await
        .map_err(|error| {
            tracing::warn!(?error, "ingested event not confirmed stored; answering 503");
            IngestError::Unavailable
        })?;
    Ok(match stored {
        Some(_) => Accepted::Stored,
        None => Accepted::Duplicate,
    })
}

/// An id from a verified event as the request log keeps it: at most as long as an
/// idempotency key.
fn loggable_id(id: &str) -> String {
    crate::proxy::first_chars(id, crate::proxy::LOGGED_IDEMPOTENCY_KEY_CHARS).to_owned()
}

/// Whether the endpoint keeps events of this type: an empty filter or `*` keeps all.
pub fn accepts_type(filter: &[String], event_type: &str) -> bool {
    filter.is_empty() || filter.iter().any(|t| t == "*" || t == event_type)
}

/// An id shaped like ours (`whe_` and base62), so junk never reaches the database.
fn plausible_endpoint_id(id: &str) -> bool {
    id.strip_prefix(EndpointId::PREFIX)
        .is_some_and(|rest| !rest.is_empty() && rest.len() <= 64)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The id as echoed in a 404: printable ASCII only, shortened.
fn printable(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(80)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_filter_keeps_listed_types_or_everything() {
        assert!(accepts_type(&[], "customer.created"));
        let only = vec!["invoice.paid".to_owned()];
        assert!(accepts_type(&only, "invoice.paid"));
        assert!(!accepts_type(&only, "customer.created"));
        assert!(accepts_type(&["*".to_owned()], "customer.created"));
    }

    #[test]
    fn only_ids_shaped_like_ours_are_looked_up() {
        assert!(plausible_endpoint_id("whe_abcDEF123"));
        assert!(!plausible_endpoint_id("whe_"));
        assert!(!plausible_endpoint_id("key_abc"));
        assert!(!plausible_endpoint_id("whe_a/../b"));
    }

    #[test]
    fn the_causing_request_is_read_in_either_form_stripe_sends() {
        let head = |json: &str| serde_json::from_str::<EventHead>(json).unwrap();
        let base = r#""id":"evt_1","type":"customer.created""#;
        let object = head(&format!(
            r#"{{{base},"request":{{"id":"req_1","idempotency_key":"k"}}}}"#
        ));
        assert_eq!(object.request_id(), Some("req_1"));
        let old = head(&format!(r#"{{{base},"request":"req_2"}}"#));
        assert_eq!(old.request_id(), Some("req_2"));
        let automatic = head(&format!(
            r#"{{{base},"request":{{"id":null,"idempotency_key":null}}}}"#
        ));
        assert_eq!(automatic.request_id(), None);
        assert_eq!(
            head(&format!(r#"{{{base},"request":null}}"#)).request_id(),
            None
        );
        assert_eq!(head(&format!("{{{base}}}")).request_id(), None);
    }

    #[test]
    fn a_refused_store_answers_503_with_retry_after() {
        let response = IngestError::Unavailable.response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let response = IngestError::Signature(SignatureError::Stale).response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
