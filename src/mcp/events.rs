//! `list_events` and `wait_for_event`: the webhook events of the endpoints the key may
//! read, over MCP. Both use the event routes' own pieces: who may read an endpoint is
//! [`pull::authorize`], a page is [`pull::read_page`], and waiting follows the store with
//! the live stream's [`Follow`], so nothing here decides a permission.

use std::time::Duration;

use futures_util::StreamExt;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::{json, Map, Value};

use super::caller::Caller;
use super::reply;
use crate::error::GatewayError;
use crate::ids::EndpointId;
use crate::policy::Role;
use crate::proxy::Via;
use crate::store::{EventRecord, WebhookEndpointRecord};
use crate::webhooks::pull::{self, EventItem, EventReaders, MAX_LIMIT};
use crate::webhooks::reads::{EventRead, ReadKind};
use crate::webhooks::stream::Follow;

/// The tool listing an endpoint's stored events.
pub const LIST_EVENTS: &str = "list_events";
/// The tool waiting for the next event.
pub const WAIT_FOR_EVENT: &str = "wait_for_event";
/// How long `wait_for_event` waits when not told.
const DEFAULT_WAIT_SECONDS: u64 = 30;
/// The longest wait asked for; longer ones are cut to it.
const MAX_WAIT_SECONDS: u64 = 300;

/// The event tools, reading through the event routes' state.
pub struct EventTools {
    readers: EventReaders,
}

impl EventTools {
    /// Tools reading with `readers` (the store, the bus and the stop signal).
    pub fn new(readers: EventReaders) -> Self {
        Self { readers }
    }

    /// Whether `name` is an event tool.
    pub fn handles(name: &str) -> bool {
        name == LIST_EVENTS || name == WAIT_FOR_EVENT
    }

    /// The event tools, when the key may read at least one endpoint's events.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Tool>, CallToolResult> {
        if caller.key.role != Role::Agent {
            return Ok(Vec::new());
        }
        let endpoints = self.readable(caller).await.map_err(reply::from_error)?;
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        Ok(event_tools(&endpoints))
    }

    /// Runs the event tool `name`, recorded in the request log like the event routes' reads.
    pub async fn call(
        &self,
        caller: &Caller,
        name: &str,
        arguments: &Map<String, Value>,
    ) -> CallToolResult {
        let kind = match name {
            WAIT_FOR_EVENT => ReadKind::Wait,
            _ => ReadKind::List,
        };
        let named = arguments.get("endpoint").and_then(Value::as_str);
        let query = (kind == ReadKind::List).then(|| page_query(arguments));
        let client_ip = caller.client.map(|client| client.0.ip());
        let mut read = EventRead::begin(
            kind,
            Via::Mcp,
            named.unwrap_or_default(),
            query.as_deref(),
            client_ip,
        );
        read.identified(caller.key.clone());
        let result = async {
            let endpoint = self.endpoint(caller, arguments).await?;
            read.reading(&endpoint);
            match kind {
                ReadKind::Wait => self.wait(endpoint, arguments).await,
                _ => {
                    let page = pull::read_page(&self.readers, endpoint, query.as_deref()).await?;
                    Ok(reply::from_response(page).await)
                }
            }
        }
        .await;
        read.finish(self.readers.log(), &result);
        result.unwrap_or_else(reply::from_error)
    }

    /// The first event after the cursor (or after the newest one now), within the timeout.
    async fn wait(
        &self,
        endpoint: WebhookEndpointRecord,
        arguments: &Map<String, Value>,
    ) -> Result<CallToolResult, GatewayError> {
        let after = match arguments.get("after") {
            None | Some(Value::Null) => self.newest(&endpoint.id).await?,
            Some(value) => cursor(value).ok_or_else(|| {
                reply::invalid_argument(
                    Some("after"),
                    "Invalid after: it must be an event's cursor.".into(),
                )
            })?,
        };
        let seconds = arguments
            .get("timeout_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_WAIT_SECONDS)
            .clamp(1, MAX_WAIT_SECONDS);
        let event_type = arguments
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let follow = Follow::start(&self.readers, endpoint.id, event_type, after);
        let mut events = Box::pin(follow.into_stream());
        match tokio::time::timeout(Duration::from_secs(seconds), events.next()).await {
            Ok(Some(record)) => event_result(&record),
            // The stream ends only when the server stops or the store fails.
            Ok(None) => Err(GatewayError::Internal),
            Err(_) => {
                let answer = json!({"timed_out": true, "after": after.to_string()});
                let mut result = CallToolResult::success(vec![ContentBlock::text(format!(
                    "No event within {seconds} s; call again with after={after}."
                ))]);
                result.structured_content = Some(answer);
                Ok(result)
            }
        }
    }

    /// The cursor of the endpoint's newest event (0 when it has none).
    async fn newest(&self, endpoint: &EndpointId) -> Result<i64, GatewayError> {
        let store = self.readers.store();
        match store.last_event_seq(endpoint).await {
            Ok(seq) => Ok(seq.unwrap_or(0)),
            Err(error) => {
                tracing::error!(%error, %endpoint, "reading the newest event failed");
                Err(GatewayError::Internal)
            }
        }
    }

    /// The endpoint named by the `endpoint` argument, or the only one the key may read.
    async fn endpoint(
        &self,
        caller: &Caller,
        arguments: &Map<String, Value>,
    ) -> Result<WebhookEndpointRecord, GatewayError> {
        let client_ip = caller.client.map(|client| client.0.ip());
        if let Some(value) = arguments.get("endpoint") {
            let Some(id) = value.as_str() else {
                return Err(reply::invalid_argument(
                    Some("endpoint"),
                    "Invalid endpoint: pass an endpoint id.".into(),
                ));
            };
            return pull::authorize(&self.readers, &caller.key, id, client_ip).await;
        }
        let mut readable = self.readable(caller).await?;
        match readable.len() {
            1 => Ok(readable.remove(0)),
            0 => Err(reply::invalid_argument(
                Some("endpoint"),
                "This key may read no webhook endpoint's events.".into(),
            )),
            _ => Err(reply::missing_argument("endpoint")),
        }
    }

    /// The workspace's endpoints whose events the key may read.
    async fn readable(&self, caller: &Caller) -> Result<Vec<WebhookEndpointRecord>, GatewayError> {
        let store = self.readers.store();
        let endpoints = store
            .list_webhook_endpoints(&caller.key.workspace_id)
            .await
            .map_err(|error| {
                tracing::error!(%error, "listing webhook endpoints for MCP failed");
                GatewayError::Internal
            })?;
        let client_ip = caller.client.map(|client| client.0.ip());
        let mut readable = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let allowed =
                pull::authorize(&self.readers, &caller.key, endpoint.id.as_str(), client_ip).await;
            if allowed.is_ok() {
                readable.push(endpoint);
            }
        }
        Ok(readable)
    }
}

/// One event as pull lists it (cursor, type, the event as Stripe sent it).
fn event_result(record: &EventRecord) -> Result<CallToolResult, GatewayError> {
    match serde_json::to_string(&EventItem::from(record)) {
        Ok(text) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(text.clone())]);
            result.structured_content = serde_json::from_str(&text).ok();
            Ok(result)
        }
        Err(error) => {
            tracing::error!(%error, seq = record.seq, "cannot serialize an event for MCP");
            Err(GatewayError::Internal)
        }
    }
}

/// The two event tools, their descriptions naming the endpoints the key may read.
fn event_tools(endpoints: &[WebhookEndpointRecord]) -> Vec<Tool> {
    let named: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{} (connection {})", e.id, e.connection))
        .collect();
    let which = format!("Endpoints: {}.", named.join(", "));
    let ids: Vec<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
    let (list, wait) = schemas(&ids);
    let read_only = ToolAnnotations::new().read_only(true);
    vec![
        Tool::new(
            LIST_EVENTS,
            format!(
                "List the Stripe webhook events agentgate received, oldest first, with \
                 a cursor per event (pass the last one as `after` to read on). {which}"
            ),
            list,
        )
        .with_annotations(read_only.clone()),
        Tool::new(
            WAIT_FOR_EVENT,
            format!(
                "Wait for the next Stripe webhook event (optionally of one type) and \
                 return it; without `after`, only events arriving after the call count. \
                 Returns timed_out when none arrives in time. {which}"
            ),
            wait,
        )
        .with_annotations(read_only),
    ]
}

/// The argument schemas of `list_events` and `wait_for_event`.
fn schemas(endpoint_ids: &[&str]) -> (JsonObject, JsonObject) {
    let endpoint = json!({"type": "string", "enum": endpoint_ids,
        "description": "Webhook endpoint id; may be left out when there is only one"});
    let event_type = json!({"type": "string",
        "description": "Only events of this type, e.g. customer.created"});
    let after = json!({"type": "string", "pattern": "^[0-9]+$",
        "description": "Cursor: only events after this one"});
    let list = object(json!({
        "endpoint": endpoint, "type": event_type, "after": after,
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    }));
    let wait = object(json!({
        "endpoint": endpoint, "type": event_type, "after": after,
        "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_WAIT_SECONDS,
            "default": DEFAULT_WAIT_SECONDS},
    }));
    (list, wait)
}

/// The pull route's query string (`after`, `limit`, `type`) from the arguments; the route
/// checks the values as it checks an HTTP client's.
fn page_query(arguments: &Map<String, Value>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for name in ["after", "limit", "type"] {
        match arguments.get(name) {
            Some(Value::String(text)) => query.append_pair(name, text),
            Some(Value::Number(number)) => query.append_pair(name, &number.to_string()),
            _ => &mut query,
        };
    }
    query.finish()
}

/// A cursor argument: a non-negative integer, as a number or a string.
fn cursor(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|cursor| *cursor >= 0)
}

/// An object schema of `properties`, closed, nothing required.
fn object(properties: Value) -> JsonObject {
    let schema = json!({"type": "object", "properties": properties, "additionalProperties": false});
    match schema {
        Value::Object(schema) => schema,
        _ => JsonObject::new(),
    }
}
