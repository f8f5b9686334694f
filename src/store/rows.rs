//! What the store reads and writes, as plain domain records. Secrets appear only as
//! [`Sealed`] ciphertext and agentgate keys only as their SHA-256 hash.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::crypto::Sealed;
use crate::ids::{ConnectionId, EndpointId, KeyId, WorkspaceId};
use crate::policy::{Role, Scopes};

/// A tenant. Every other record belongs to exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// Stable id.
    pub id: WorkspaceId,
    /// Unique, human-chosen name (`default` on a new install).
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A stored provider credential (today: a Stripe key) under a name agents use in URLs.
#[derive(Clone, Debug)]
pub struct ConnectionRecord {
    /// Stable id; also binds the ciphertext to this row.
    pub id: ConnectionId,
    /// Owning workspace; also binds the ciphertext.
    pub workspace_id: WorkspaceId,
    /// Name in `/v1/connections/{name}/...`.
    pub name: String,
    /// Provider kind (`stripe`).
    pub provider: String,
    /// The secret, sealed with the master key.
    pub secret: Sealed,
    /// Masked form safe to show (`sk_test_…4242`).
    pub secret_hint: String,
    /// `test` or `live`.
    pub mode: String,
    /// `secret` or `restricted`.
    pub key_kind: String,
    /// Whether listed operations are validated before they are forwarded (on by default).
    pub validation: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last replacement of the secret.
    pub updated_at: i64,
}

/// An agentgate key as stored: only its hash, never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentKeyRecord {
    /// Public handle.
    pub id: KeyId,
    /// Owning workspace.
    pub workspace_id: WorkspaceId,
    /// Operator-chosen label.
    pub name: String,
    /// The first characters of the key, shown so people can tell keys apart.
    pub prefix: String,
    /// SHA-256 of the whole key.
    pub hash: Vec<u8>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last authenticated request (updated in batches).
    pub last_used_at: Option<i64>,
    /// Unix milliseconds of revocation; a revoked key authenticates nothing.
    pub revoked_at: Option<i64>,
    /// What the key is for.
    pub role: Role,
    /// What the key may do.
    pub scopes: Scopes,
    /// Unix milliseconds after which the key authenticates nothing (set by rotation or at
    /// creation).
    pub expires_at: Option<i64>,
}

/// One proxied request in the request log. Never a secret, never a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLogEntry {
    /// Unix milliseconds when the request arrived.
    pub created_at: i64,
    /// Owning workspace (the key's).
    pub workspace_id: WorkspaceId,
    /// agentgate's request id, also sent back in `Agentgate-Request-Id`.
    pub request_id: String,
    /// The key that made the request.
    pub key_id: KeyId,
    /// Connection name from the URL.
    pub connection: String,
    /// HTTP method (`Cow`, like `outcome` and `via`: the gateway's own entries name them
    /// with static text and allocate nothing for them).
    pub method: Cow<'static, str>,
    /// Stripe path with the query's parameter names but none of its values.
    pub path: String,
    /// Status sent to the caller.
    pub status: u16,
    /// Time from arrival to response headers, in microseconds.
    pub latency_us: i64,
    /// Stripe's `Request-Id`, when Stripe answered.
    pub stripe_request_id: Option<String>,
    /// The caller's `Idempotency-Key`, when sent.
    pub idempotency_key: Option<String>,
    /// `forwarded`, or who was at fault when agentgate answered itself.
    pub outcome: Cow<'static, str>,
    /// The catalog operation (`customers.create`), when the request was a listed one.
    pub operation: Option<String>,
    /// Why agentgate refused, for the audit (`parameter_missing amount`,
    /// `agentgate_scope_denied operation`); `None` when it did not.
    pub reason: Option<String>,
    /// How the request arrived: `http`, or `mcp` for a tool call over MCP; `api`, `cli` or
    /// `dashboard` for a management change ([`crate::audit`]).
    pub via: Cow<'static, str>,
    /// The address the request came from, as its connection showed it (behind a reverse
    /// proxy, the proxy's); `None` for the CLI.
    pub client: Option<IpAddr>,
}

#[cfg(test)]
impl RequestLogEntry {
    /// A forwarded GET of `/v1/customers` by `key_1` in `ws_1`, for tests to vary.
    pub(crate) fn example() -> Self {
        Self {
            created_at: 1,
            workspace_id: WorkspaceId::from_stored("ws_1".into()),
            request_id: "agr_1".into(),
            key_id: KeyId::from_stored("key_1".into()),
            connection: "stripe".into(),
            method: "GET".into(),
            path: "/v1/customers".into(),
            status: 200,
            latency_us: 1,
            stripe_request_id: None,
            idempotency_key: None,
            outcome: "forwarded".into(),
            operation: None,
            reason: None,
            via: "http".into(),
            client: Some(IpAddr::from([127, 0, 0, 1])),
        }
    }
}

/// A request log entry read back, with its position in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLogRecord {
    /// Increasing position; `logs tail` continues after the last one seen.
    pub id: i64,
    /// The serving instance that wrote it (`--instance`); `None` for the CLI's changes and
    /// for entries older than the column.
    pub instance: Option<String>,
    /// The entry.
    pub entry: RequestLogEntry,
}

/// Which part of the request log to read, and which entries of it: the CLI tails by
/// position, the management API filters and pages newest first. Filters left `None` match
/// every entry.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    /// Only entries after this position (oldest first); `None` means the newest `limit`.
    pub after_id: Option<i64>,
    /// At most this many entries.
    pub limit: i64,
    /// Only entries before this position (the next page of a newest-first listing);
    /// combined with `after_id`, a window between the two.
    pub before_id: Option<i64>,
    /// Only entries made with this key.
    pub key_id: Option<KeyId>,
    /// Only entries answered with this HTTP status.
    pub status: Option<u16>,
    /// Only entries of this operation (`customers.create`, `keys.create`).
    pub operation: Option<String>,
    /// Only entries with this Stripe `Request-Id`: a forwarded call's, and the webhook
    /// deliveries of the events it caused.
    pub stripe_request_id: Option<String>,
    /// Only entries written by this serving instance.
    pub instance: Option<String>,
    /// Only entries that arrived at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Only entries that arrived before this time (Unix milliseconds).
    pub until: Option<i64>,
}

/// A Stripe webhook endpoint: where Stripe posts a connection's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpointRecord {
    /// Unguessable id, part of the ingest URL.
    pub id: EndpointId,
    /// Owning workspace.
    pub workspace_id: WorkspaceId,
    /// The connection (by name) whose Stripe account sends the events.
    pub connection: String,
    /// Event types to keep (`customer.created`); empty keeps every type.
    pub event_types: Vec<String>,
    /// Stripe's id of the endpoint (`we_...`) once registered through the API.
    pub stripe_endpoint_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A signing secret of an endpoint; several may be active while Stripe rolls them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSecretRecord {
    /// Row id; also binds the ciphertext.
    pub id: String,
    /// The endpoint it signs for.
    pub endpoint_id: EndpointId,
    /// The `whsec_...` secret, sealed with the master key.
    pub secret: Sealed,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds after which it no longer verifies anything, if set.
    pub expires_at: Option<i64>,
}

/// An event to store, exactly as Stripe sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The endpoint it arrived on.
    pub endpoint_id: EndpointId,
    /// The endpoint's workspace.
    pub workspace_id: WorkspaceId,
    /// Stripe's event id (`evt_...`); stored once per endpoint.
    pub event_id: String,
    /// Stripe's event type (`customer.created`).
    pub event_type: String,
    /// Unix milliseconds of receipt.
    pub received_at: i64,
    /// The raw request body bytes.
    pub payload: Vec<u8>,
}

/// A stored event with its cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Increasing cursor, per store (agents read "after" it).
    pub seq: i64,
    /// The event as stored.
    pub event: NewEvent,
}
