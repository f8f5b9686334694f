//! Webhook endpoints and their signing secrets: the operations the CLI and the management
//! API share (create, list, remove, set a secret, register in Stripe). Secrets are sealed
//! here, bound to their workspace and row, and are never logged or shown again.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Either, Full};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::audit::{Change, ChangeOrigin};
use crate::connections::{ConnectionResolver, ResolveError};
use crate::crypto::{Sealer, SecretPurpose};
use crate::ids::{random_base62, EndpointId, WorkspaceId};
use crate::proxy::client::Upstream;
use crate::proxy::target::StripeTarget;
use crate::store::{
    RequestLogEntry, Store, StoreError, WebhookEndpointRecord, WebhookSecretRecord,
};

use super::ingest::INGEST_PATH;

/// Largest Stripe answer to a registration read (it is a few hundred bytes).
const MAX_STRIPE_ANSWER: usize = 256 * 1024;

/// A Stripe webhook signing secret (`whsec_...`), checked, zeroized on drop, never printed.
pub struct SigningSecret(Zeroizing<String>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(whsec_***)")
    }
}

impl SigningSecret {
    /// Accepts `whsec_` followed by 8 to 256 printable ASCII characters (surrounding
    /// whitespace, as from a pipe, is trimmed).
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let text = text.trim();
        let rest = text
            .strip_prefix("whsec_")
            .ok_or(WebhookError::InvalidSecret)?;
        if !(8..=256).contains(&rest.len()) || !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WebhookError::InvalidSecret);
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The secret itself, to seal it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Why an endpoint operation failed; CLI and API map each to their own message or status.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The workspace has no such endpoint.
    #[error("no such webhook endpoint")]
    NotFound,
    /// The workspace has no connection with the endpoint's name.
    #[error("no such connection: {0:?}")]
    UnknownConnection(String),
    /// The text given is not a `whsec_...` secret.
    #[error("a Stripe webhook signing secret starts with whsec_ and is one line of printable characters")]
    InvalidSecret,
    /// An event type that is not `*` or a dotted lowercase name.
    #[error("invalid event type {0:?}")]
    InvalidEventType(String),
    /// Stripe refused the registration or could not be reached; the message says which.
    #[error("Stripe: {0}")]
    Stripe(String),
    /// The connection's stored key did not open.
    #[error("the connection's Stripe key could not be decrypted")]
    Undecryptable,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `{public base}/webhooks/ingest/<id>`: the URL to register in Stripe.
pub fn ingest_url(public_base: &str, id: &EndpointId) -> String {
    format!("{}{INGEST_PATH}{id}", public_base.trim_end_matches('/'))
}

/// Checks event types: `*` or lowercase dotted names (`customer.subscription.updated`).
pub fn parse_event_types(types: &[String]) -> Result<Vec<String>, WebhookError> {
    let mut out: Vec<String> = Vec::new();
    for t in types.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let valid = t == "*"
            || (t.len() <= 100
                && t.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                }));
        if !valid {
            return Err(WebhookError::InvalidEventType(t.to_owned()));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

/// Mints an endpoint with an unguessable id for a connection of the workspace.
pub async fn create_endpoint(
    store: &dyn Store,
    workspace: &WorkspaceId,
    connection: &str,
    event_types: &[String],
    origin: &ChangeOrigin,
) -> Result<WebhookEndpointRecord, WebhookError> {
    let event_types = parse_event_types(event_types)?;
    if store
        .find_connection(workspace, connection)
        .await?
        .is_none()
    {
        return Err(WebhookError::UnknownConnection(connection.to_owned()));
    }
    let record = WebhookEndpointRecord {
        id: EndpointId::generate_unguessable(),
        workspace_id: workspace.clone(),
        connection: connection.to_owned(),
        event_types,
        stripe_endpoint_id: None,
        created_at: crate::time::now_millis(),
    };
    let audit = origin.record(workspace, Change::EndpointCreated, connection);
    store.insert_webhook_endpoint(&record, &audit).await?;
    Ok(record)
}

/// The workspace's endpoint with this id.
pub async fn find_endpoint(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<WebhookEndpointRecord, WebhookError> {
    let id = EndpointId::from_stored(id.to_owned());
    match store.find_webhook_endpoint(&id).await? {
        Some(record) if &record.workspace_id == workspace => Ok(record),
        _ => Err(WebhookError::NotFound),
    }
}

/// Adds a signing secret to the endpoint (others stay active, for a roll); with
/// `expire_others_in`, the others stop verifying after that long. Returns the secret's id.
pub async fn add_secret(
    store: &dyn Store,
    sealer: &Sealer,
    endpoint: &WebhookEndpointRecord,
    secret: &SigningSecret,
    expire_others_in: Option<Duration>,
    origin: &ChangeOrigin,
) -> Result<String, WebhookError> {
    let audit = origin.record(
        &endpoint.workspace_id,
        Change::SecretAdded,
        &endpoint.connection,
    );
    store_secret(store, sealer, endpoint, secret, expire_others_in, &audit).await
}

/// Seals and stores a signing secret of the endpoint, with the change's `audit` record.
async fn store_secret(
    store: &dyn Store,
    sealer: &Sealer,
    endpoint: &WebhookEndpointRecord,
    secret: &SigningSecret,
    expire_others_in: Option<Duration>,
    audit: &RequestLogEntry,
) -> Result<String, WebhookError> {
    let now = crate::time::now_millis();
    let id = format!("whsk_{}", random_base62(16));
    let sealed = sealer.seal(
        SecretPurpose::WebhookSecret,
        endpoint.workspace_id.as_str(),
        &id,
        secret.expose().as_bytes(),
    );
    let record = WebhookSecretRecord {
        id: id.clone(),
        endpoint_id: endpoint.id.clone(),
        secret: sealed,
        created_at: now,
        expires_at: None,
    };
    let expire_at = expire_others_in
        .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    store
        .insert_webhook_secret(&record, expire_at, audit)
        .await?;
    Ok(id)
}

/// What Stripe answers to `POST /v1/webhook_endpoints` (the secret only on creation).
#[derive(Deserialize)]
struct StripeEndpoint {
    id: String,
    secret: Option<String>,
}

/// Stripe's error shape, for the message.
#[derive(Deserialize)]
struct StripeErrorBody {
    error: StripeErrorDetail,
}

#[derive(Deserialize)]
struct StripeErrorDetail {
    message: Option<String>,
}

/// Creates the endpoint in Stripe through its connection (`POST /v1/webhook_endpoints` with
/// the ingest URL and the event types, `*` when none), then stores the signing secret Stripe
/// returns (added, like `add_secret`) and Stripe's endpoint id. Returns Stripe's id.
pub async fn register(
    store: std::sync::Arc<dyn Store>,
    sealer: std::sync::Arc<Sealer>,
    upstream: &Upstream,
    endpoint: &WebhookEndpointRecord,
    public_base: &str,
    origin: &ChangeOrigin,
) -> Result<String, WebhookError> {
    let resolver = ConnectionResolver::new(store.clone(), sealer.clone());
    let connection = resolver
        .resolve(&endpoint.workspace_id, &endpoint.connection)
        .await
        .map_err(|error| match error {
            ResolveError::Store(error) => WebhookError::Store(error),
            ResolveError::Undecryptable(_) => WebhookError::Undecryptable,
        })?
        .ok_or_else(|| WebhookError::UnknownConnection(endpoint.connection.clone()))?;
    let url = ingest_url(public_base, &endpoint.id);
    // Built in a block: the serializer is not `Send` and must not live across an await.
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("url", &url);
        if endpoint.event_types.is_empty() {
            form.append_pair("enabled_events[]", "*");
        }
        for event_type in &endpoint.event_types {
            form.append_pair("enabled_events[]", event_type);
        }
        form.append_pair(
            "description",
            &format!("agentgate endpoint {}", endpoint.id),
        );
        form.finish()
    };
    let target = StripeTarget::parse("webhook_endpoints", None)
        .map_err(|e| WebhookError::Stripe(e.to_string()))?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(upstream.uri(&target))
        .header(header::AUTHORIZATION, connection.authorization.clone())
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )
        .header(
            header::USER_AGENT,
            HeaderValue::from_static("agentgate webhooks register"),
        )
        .body(Either::Right(Full::new(Bytes::from(form))))
        .map_err(|e| WebhookError::Stripe(e.to_string()))?;
    // Only the status and the body are read here.
    let (response, _headers) = upstream
        .send(request)
        .await
        .map_err(|failure| WebhookError::Stripe(failure.error.to_string()))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_STRIPE_ANSWER)
        .collect()
        .await
        .map_err(|e| WebhookError::Stripe(format!("reading the answer failed: {e}")))?
        .to_bytes();
    // The answer holds the secret: never log or echo it whole.
    let body = Zeroizing::new(body.to_vec());
    if !status.is_success() {
        let message = serde_json::from_slice::<StripeErrorBody>(&body)
            .ok()
            .and_then(|b| b.error.message)
            .unwrap_or_else(|| "no error message".to_owned());
        return Err(WebhookError::Stripe(format!("{status}: {message}")));
    }
    let created: StripeEndpoint = serde_json::from_slice(&body)
        .map_err(|_| WebhookError::Stripe("the answer is not a webhook endpoint".to_owned()))?;
    let secret_text = Zeroizing::new(created.secret.unwrap_or_default());
    let secret = SigningSecret::parse(&secret_text).map_err(|_| {
        WebhookError::Stripe("the answer holds no whsec_ signing secret".to_owned())
    })?;
    let audit = origin.record(
        &endpoint.workspace_id,
        Change::EndpointRegistered,
        &endpoint.connection,
    );
    store_secret(store.as_ref(), &sealer, endpoint, &secret, None, &audit).await?;
    store
        .set_webhook_stripe_id(&endpoint.workspace_id, &endpoint.id, &created.id)
        .await?;
    Ok(created.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_must_look_like_stripes_and_never_print() {
        let secret = SigningSecret::parse("whsec_abcdefgh12345678\n").unwrap();
        assert_eq!(secret.expose(), "whsec_abcdefgh12345678");
        assert!(!format!("{secret:?}").contains("abcdefgh"));
        assert!(SigningSecret::parse("sk_test_abcdefgh").is_err());
        assert!(SigningSecret::parse("whsec_short").is_err());
        assert!(SigningSecret::parse("whsec_abc defgh ijk").is_err());
    }

    #[test]
    fn event_types_are_dotted_names_or_a_star() {
        let ok = parse_event_types(&["customer.created".into(), "*".into(), "".into()]).unwrap();
        assert_eq!(ok, vec!["customer.created", "*"]);
        assert!(parse_event_types(&["Customer.Created".into()]).is_err());
        assert!(parse_event_types(&["a..b".into()]).is_err());
    }

    #[test]
    fn the_ingest_url_joins_base_and_id() {
        let id = EndpointId::from_stored("whe_x".into());
        assert_eq!(
            ingest_url("https://gw.example.com/", &id),
            "https://gw.example.com/webhooks/ingest/whe_x"
        );
    }
}
