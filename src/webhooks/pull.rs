//! `GET /v1/webhooks/{endpoint}/events`: agents read the events an endpoint received,
//! oldest first, after a cursor, in a Stripe-style list; and the routes of the live stream
//! (see [`super::stream`]), which share the authorization and the item shape.
//!
//! Who may read: an agent key of the endpoint's workspace whose scopes allow the endpoint's
//! connection. Another workspace's endpoint answers 404 as if it did not exist; admin keys
//! answer 403 (they manage, agents read, as on the data plane); a key of the workspace that
//! may not use the endpoint's connection answers 403 naming the `connection` scope (the
//! workspace's own keys may know its endpoints exist). `ips` and `test_only` apply as on the
//! data plane; keys limited to connected accounts (`stripe_accounts`) are refused, since an
//! endpoint's events are not filtered by account.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::HeaderMap;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::watch;

use super::reads::{EventRead, ReadKind};
use super::stream::{self, StreamSettings};
use crate::error::GatewayError;
use crate::ids::EndpointId;
use crate::keys::AuthenticatedKey;
use crate::policy::{Denied, Role};
use crate::proxy::{ClientAddr, ProxyShared, Via};
use crate::request_log::RequestLogger;
use crate::store::{EventRecord, Store, WebhookEndpointRecord};
use crate::validation::Violation;

/// Page size when `limit` is not given, as in Stripe's lists.
pub const DEFAULT_LIMIT: i64 = 10;
/// Largest page; larger limits are clamped to it.
pub const MAX_LIMIT: i64 = 100;

/// What the event-reading routes share.
pub struct EventReaders {
    pub(super) shared: Arc<ProxyShared>,
    pub(super) store: Arc<dyn Store>,
    pub(super) settings: StreamSettings,
    /// Turns true when the server stops, so open streams end instead of holding up the
    /// graceful shutdown.
    pub(super) stop: watch::Receiver<bool>,
}

impl EventReaders {
    /// What reading needs: the bus (in `shared`), the store, the stream timing, and the
    /// stop signal that ends open streams.
    pub fn new(
        shared: Arc<ProxyShared>,
        store: Arc<dyn Store>,
        settings: StreamSettings,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            shared,
            store,
            settings,
            stop,
        }
    }

    /// The store events are read from.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The request log reads are recorded in.
    pub fn log(&self) -> &RequestLogger {
        &self.shared.log
    }
}

/// The routes under `/v1/webhooks/{endpoint}/events`, merged into the main router.
pub fn router(
    shared: Arc<ProxyShared>,
    store: Arc<dyn Store>,
    settings: StreamSettings,
    stop: watch::Receiver<bool>,
) -> Router {
    let state = Arc::new(EventReaders::new(shared, store, settings, stop));
    Router::new()
        .route("/v1/webhooks/{endpoint}/events", get(list))
        .route(
            "/v1/webhooks/{endpoint}/events/stream",
            get(stream::handler),
        )
        .with_state(state)
}

/// One event as agents read it: its cursor and receipt time, Stripe's id and type, and
/// the event exactly as Stripe sent it. Shared by pull, the stream and the CLI's `--json`.
#[derive(Serialize)]
pub struct EventItem<'a> {
    /// Always `webhook_event`.
    object: &'static str,
    /// Pass as `after` (or `Last-Event-ID`) to read on from this event.
    cursor: String,
    /// When agentgate received it (RFC 3339).
    received_at: String,
    /// Stripe's event id (`evt_...`).
    id: &'a str,
    /// Stripe's event type (`customer.created`).
    #[serde(rename = "type")]
    event_type: &'a str,
    /// The body Stripe posted, embedded byte for byte (or without the whitespace between
    /// tokens, see [`EventItem::one_line`]).
    event: Option<Box<RawValue>>,
}

impl<'a> From<&'a EventRecord> for EventItem<'a> {
    fn from(record: &'a EventRecord) -> Self {
        Self::with_event(record, record.event.payload.clone())
    }
}

impl<'a> EventItem<'a> {
    /// The item with the event's line breaks and indentation removed (nothing inside a
    /// JSON string changes), for line-oriented outputs: SSE `data:` and JSON lines.
    pub fn one_line(record: &'a EventRecord) -> Self {
        Self::with_event(record, compact_json(&record.event.payload))
    }

    fn with_event(record: &'a EventRecord, event: Vec<u8>) -> Self {
        let e = &record.event;
        // Ingest stores only bodies that parse as JSON; `null` marks a row that does not.
        let event = String::from_utf8(event)
            .map_err(|error| error.to_string())
            .and_then(|text| RawValue::from_string(text).map_err(|error| error.to_string()))
            .inspect_err(|error| {
                tracing::warn!(seq = record.seq, %error, "stored event is not JSON");
            })
            .ok();
        Self {
            object: "webhook_event",
            cursor: record.seq.to_string(),
            received_at: crate::time::rfc3339(e.received_at),
            id: &e.event_id,
            event_type: &e.event_type,
            event,
        }
    }
}

/// `json` without whitespace outside strings: the same JSON value, on one line, with every
/// string, number and key order exactly as sent (re-serialising would not keep them).
pub fn compact_json(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                (false, _) => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
            continue;
        }
        out.push(byte);
    }
    out
}

/// A page of events in Stripe's list shape.
#[derive(Serialize)]
struct EventList<'a> {
    object: &'static str,
    data: Vec<EventItem<'a>>,
    has_more: bool,
    url: String,
}

/// The query parameters of both routes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ReadParams {
    /// Read events after this cursor (0: from the oldest kept).
    pub after: Option<i64>,
    /// Page size, clamped to `1..=MAX_LIMIT`.
    pub limit: i64,
    /// Only events of this type.
    pub event_type: Option<String>,
}

/// Parses `after`, `limit` and `type`; anything else is refused, as Stripe refuses unknown
/// parameters.
pub(super) fn parse_params(query: Option<&str>) -> Result<ReadParams, GatewayError> {
    let mut params = ReadParams {
        limit: DEFAULT_LIMIT,
        ..ReadParams::default()
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "after" => params.after = Some(parse_cursor(&value).ok_or_else(|| invalid("after"))?),
            "limit" => {
                let limit: i64 = value.parse().map_err(|_| invalid("limit"))?;
                params.limit = limit.clamp(1, MAX_LIMIT);
            }
            "type" if !value.is_empty() => params.event_type = Some(value.into_owned()),
            "type" => {}
            other => {
                return Err(GatewayError::Invalid(Violation {
                    code: Some("parameter_unknown"),
                    param: Some(crate::proxy::target::loggable_raw_path(other)),
                    message: format!(
                        "Received unknown parameter: {}. Events take after, limit and type.",
                        crate::proxy::target::loggable_raw_path(other)
                    ),
                }))
            }
        }
    }
    Ok(params)
}

/// A cursor as agents send it back: a non-negative integer.
pub(super) fn parse_cursor(text: &str) -> Option<i64> {
    text.trim().parse().ok().filter(|cursor: &i64| *cursor >= 0)
}

fn invalid(param: &str) -> GatewayError {
    let message = match param {
        "limit" => "Invalid limit: it must be an integer (1 to 100).".to_owned(),
        _ => {
            format!("Invalid {param}: it must be the cursor of an event (a non-negative integer).")
        }
    };
    GatewayError::Invalid(Violation {
        code: Some("parameter_invalid"),
        param: Some(param.to_owned()),
        message,
    })
}

async fn list(
    State(state): State<Arc<EventReaders>>,
    Path(endpoint): Path<String>,
    RawQuery(query): RawQuery,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let query = query.as_deref();
    answer_read(
        &state,
        ReadKind::List,
        &endpoint,
        query,
        client,
        &headers,
        |endpoint| read_page(&state, endpoint, query),
    )
    .await
}

/// Answers one of the event routes: the key checked, the endpoint authorized, then `serve`,
/// with the read recorded in the request log ([`EventRead`]).
pub(super) async fn answer_read<'a, F, Fut>(
    state: &'a EventReaders,
    kind: ReadKind,
    endpoint: &str,
    query: Option<&str>,
    client: Option<Extension<ClientAddr>>,
    headers: &HeaderMap,
    serve: F,
) -> Response
where
    F: FnOnce(WebhookEndpointRecord) -> Fut,
    Fut: Future<Output = Result<Response, GatewayError>> + 'a,
{
    let client_ip = client.map(|Extension(ClientAddr(addr))| addr.ip());
    let mut read = EventRead::begin(kind, Via::Http, endpoint, query, client_ip);
    let result = async {
        let key = read.authenticate(&state.shared, headers).await?;
        let endpoint = authorize(state, &key, endpoint, client_ip).await?;
        read.reading(&endpoint);
        serve(endpoint).await
    }
    .await;
    read.answer(&state.shared.log, result)
}

/// A page of an endpoint's events (one the key was allowed to read); shared with the MCP
/// server's `list_events`.
pub(crate) async fn read_page(
    state: &EventReaders,
    endpoint: WebhookEndpointRecord,
    query: Option<&str>,
) -> Result<Response, GatewayError> {
    let params = parse_params(query)?;
    let mut records = state
        .store
        .list_events(
            &endpoint.id,
            params.after.unwrap_or(0),
            params.limit + 1,
            params.event_type.as_deref(),
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, endpoint = %endpoint.id, "reading events failed");
            GatewayError::Internal
        })?;
    let has_more = records.len() as i64 > params.limit;
    records.truncate(params.limit as usize);
    let page = EventList {
        object: "list",
        data: records.iter().map(EventItem::from).collect(),
        has_more,
        url: format!("/v1/webhooks/{}/events", endpoint.id),
    };
    Ok(Json(page).into_response())
}

/// The endpoint named in the URL, if `key` may read its events (see the module
/// documentation for the rules).
pub(crate) async fn authorize(
    state: &EventReaders,
    key: &AuthenticatedKey,
    endpoint: &str,
    client_ip: Option<IpAddr>,
) -> Result<WebhookEndpointRecord, GatewayError> {
    let refuse = |permission, message: &str| {
        GatewayError::Forbidden(Denied {
            permission,
            message: message.to_owned(),
        })
    };
    if key.role != Role::Agent {
        return Err(refuse(
            "role",
            "Admin keys manage a workspace through /api/v1; agent keys read events.",
        ));
    }
    let scopes = &key.scopes;
    if !scopes.ips.is_empty()
        && !client_ip.is_some_and(|ip| scopes.ips.iter().any(|net| net.contains(&ip)))
    {
        return Err(refuse("ip", "This key may not be used from this address."));
    }
    let missing = || GatewayError::ResourceMissing {
        kind: "webhook endpoint",
        id: crate::proxy::target::loggable_raw_path(endpoint),
    };
    if !is_endpoint_id(endpoint) {
        return Err(missing());
    }
    let record = state
        .store
        .find_webhook_endpoint(&EndpointId::from_stored(endpoint.to_owned()))
        .await
        .map_err(|error| {
            tracing::error!(%error, "webhook endpoint lookup failed");
            GatewayError::Internal
        })?
        .filter(|record| record.workspace_id == key.workspace_id)
        .ok_or_else(missing)?;
    if !scopes.connections.is_empty() && !scopes.connections.contains(&record.connection) {
        return Err(GatewayError::Forbidden(Denied {
            permission: "connection",
            message: format!(
                "This key may not use the connection '{}', whose events this endpoint receives.",
                record.connection
            ),
        }));
    }
    if !scopes.stripe_accounts.is_empty() {
        return Err(refuse(
            "stripe_account",
            "This key acts only on connected accounts, and an endpoint's events are not \
             filtered by account; use a key without the stripe_accounts scope.",
        ));
    }
    if scopes.test_only {
        let connection = state
            .shared
            .resolve_connection(key, &record.connection, "events")
            .await?;
        if connection.live {
            return Err(GatewayError::Forbidden(Denied {
                permission: "test_only",
                message: format!(
                    "This key is limited to test mode, and the connection '{}' holds a live key.",
                    record.connection
                ),
            }));
        }
    }
    Ok(record)
}

/// Whether `text` has the form of an endpoint id, so nothing else reaches the store.
fn is_endpoint_id(text: &str) -> bool {
    text.strip_prefix(EndpointId::PREFIX).is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped_and_unknown_parameters_refused() {
        let parsed = parse_params(Some("after=12&limit=1000&type=customer.created")).unwrap();
        assert_eq!(
            parsed,
            ReadParams {
                after: Some(12),
                limit: MAX_LIMIT,
                event_type: Some("customer.created".into()),
            }
        );
        assert_eq!(parse_params(Some("limit=0")).unwrap().limit, 1);
        assert_eq!(parse_params(None).unwrap().limit, DEFAULT_LIMIT);
        let unknown = parse_params(Some("starting_after=3")).unwrap_err();
        assert_eq!(unknown.code(), Some("parameter_unknown"));
        assert_eq!(
            parse_params(Some("after=-1")).unwrap_err().code(),
            Some("parameter_invalid")
        );
        assert_eq!(
            parse_params(Some("limit=ten")).unwrap_err().code(),
            Some("parameter_invalid")
        );
    }

    #[test]
    fn items_embed_the_event_as_stripe_sent_it() {
        let payload = b"{\n  \"id\": \"evt_1\",\n  \"amount\": 1.50\n}".to_vec();
        let record = EventRecord {
            seq: 7,
            event: crate::store::NewEvent {
                endpoint_id: EndpointId::from_stored("whe_x".into()),
                workspace_id: crate::ids::WorkspaceId::from_stored("ws_x".into()),
                event_id: "evt_1".into(),
                event_type: "charge.succeeded".into(),
                received_at: 0,
                payload: payload.clone(),
            },
        };
        let json = serde_json::to_string(&EventItem::from(&record)).unwrap();
        assert!(
            json.contains(std::str::from_utf8(&payload).unwrap()),
            "{json}"
        );
        assert!(json.starts_with(
            r#"{"object":"webhook_event","cursor":"7","received_at":"1970-01-01T00:00:00.000Z","id":"evt_1","type":"charge.succeeded","event":{"#
        ));
    }

    #[test]
    fn compacting_removes_whitespace_between_tokens_only() {
        let sent = b"{\n  \"a b\": \"x \\\" \\n y\",\r\n\t\"n\": 1.50 }";
        let compact = compact_json(sent);
        assert_eq!(compact, br#"{"a b":"x \" \n y","n":1.50}"#);
        let before: serde_json::Value = serde_json::from_slice(sent).unwrap();
        let after: serde_json::Value = serde_json::from_slice(&compact).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn only_endpoint_shaped_ids_are_looked_up() {
        assert!(is_endpoint_id("whe_0123456789abcdef"));
        assert!(!is_endpoint_id("whe_"));
        assert!(!is_endpoint_id("key_abc"));
        assert!(!is_endpoint_id("whe_a'b"));
    }
}
