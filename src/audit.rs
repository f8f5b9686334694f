//! The audit of management changes (and of operators' reads of webhook events). Every change to a workspace's Stripe keys, agentgate
//! keys, webhook endpoints and signing secrets, and push destinations, whether it comes
//! through the management API, the CLI or the dashboard, is written to the workspace's
//! request log in the same transaction as the change itself. A change whose record cannot
//! be written is rolled back, so the secret and key management fails closed rather than
//! going unrecorded (`../shared/RELIABILITY.md`, section 3); the data plane's entries, by
//! contrast, are queued and written in batches off the hot path.
//!
//! The store's change methods take the record as an argument, so no change can be made
//! without one.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Instant;

use http::Method;

use crate::ids::{KeyId, WorkspaceId};
use crate::request_log::method_name;
use crate::store::RequestLogEntry;

/// Outcome recorded for a management change that went through.
pub const APPLIED: &str = "applied";

/// Outcome recorded for a read of webhook events (an agent's or an operator's).
pub const READ: &str = "read";

/// A change the audit records, named as the management API's operation ids name it after
/// their `api.` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A connection's Stripe key stored or replaced.
    ConnectionSet,
    /// A connection removed.
    ConnectionDeleted,
    /// A connection's request validation switched on or off.
    ConnectionValidation,
    /// An agentgate key created.
    KeyCreated,
    /// An agentgate key rotated: a new key, and an expiry for the old one.
    KeyRotated,
    /// An agentgate key revoked.
    KeyRevoked,
    /// A webhook endpoint created.
    EndpointCreated,
    /// A webhook endpoint removed.
    EndpointDeleted,
    /// A signing secret added to a webhook endpoint.
    SecretAdded,
    /// A webhook endpoint created in Stripe, with the secret Stripe returned.
    EndpointRegistered,
    /// A push destination created.
    DestinationCreated,
    /// A push destination removed.
    DestinationDeleted,
    /// A push destination enabled or disabled.
    DestinationState,
    /// Stored events queued for delivery again (`events replay`): customers' data sent anew
    /// to destinations the workspace already has.
    EventsReplayed,
}

impl Change {
    /// The name after the surface in the record's `operation` (`api.keys.create`).
    pub fn name(self) -> &'static str {
        match self {
            Change::ConnectionSet => "connections.set",
            Change::ConnectionDeleted => "connections.delete",
            Change::ConnectionValidation => "connections.validation",
            Change::KeyCreated => "keys.create",
            Change::KeyRotated => "keys.rotate",
            Change::KeyRevoked => "keys.revoke",
            Change::EndpointCreated => "webhooks.create",
            Change::EndpointDeleted => "webhooks.delete",
            Change::SecretAdded => "webhooks.add_secret",
            Change::EndpointRegistered => "webhooks.register",
            Change::DestinationCreated => "push_destinations.create",
            Change::DestinationDeleted => "push_destinations.delete",
            Change::DestinationState => "push_destinations.state",
            Change::EventsReplayed => "webhooks.replay",
        }
    }
}

/// Who asks for a change.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Actor {
    /// An admin key on the management API.
    AdminKey(KeyId),
    /// Someone with access to the database, running the CLI.
    Cli,
    /// A dashboard operator, by login name.
    Operator(String),
}

impl Actor {
    /// The surface the change came through, as the record's `via` and the first part of
    /// its `operation`.
    fn surface(&self) -> &'static str {
        match self {
            Actor::AdminKey(_) => "api",
            Actor::Cli => "cli",
            Actor::Operator(_) => "dashboard",
        }
    }

    /// What the record's `key_id` holds: the admin key's id, `cli`, or `operator:NAME`.
    fn recorded(&self) -> KeyId {
        match self {
            Actor::AdminKey(id) => id.clone(),
            Actor::Cli => KeyId::from_stored("cli".into()),
            Actor::Operator(name) => KeyId::from_stored(format!("operator:{name}")),
        }
    }
}

/// Who asked for a change and through which request: everything a change's record holds
/// but the change itself.
#[derive(Clone, Debug)]
pub struct ChangeOrigin {
    actor: Actor,
    request_id: String,
    method: Cow<'static, str>,
    path: String,
    received_at: i64,
    started: Instant,
    client: Option<IpAddr>,
}

impl ChangeOrigin {
    /// A management API request from `client`, admitted with `key`, under the request id
    /// it is answered with.
    pub fn admin_key(
        key: KeyId,
        request_id: String,
        method: &Method,
        path: String,
        client: Option<IpAddr>,
    ) -> Self {
        let actor = Actor::AdminKey(key);
        Self::new(actor, request_id, method_name(method), path, client)
    }

    /// A CLI command; `command` names it and its object (`connections set stripe`), never
    /// a secret. The method is recorded as `CLI`.
    pub fn cli(command: String) -> Self {
        Self::new(
            Actor::Cli,
            crate::proxy::new_request_id(),
            Cow::Borrowed("CLI"),
            command,
            None,
        )
    }

    /// A dashboard form sent by the operator `name` from `client`.
    pub fn operator(name: &str, method: &Method, path: String, client: Option<IpAddr>) -> Self {
        Self::new(
            Actor::Operator(name.to_owned()),
            crate::proxy::new_request_id(),
            method_name(method),
            path,
            client,
        )
    }

    fn new(
        actor: Actor,
        request_id: String,
        method: Cow<'static, str>,
        path: String,
        client: Option<IpAddr>,
    ) -> Self {
        Self {
            actor,
            request_id,
            method,
            path,
            received_at: crate::time::now_millis(),
            started: Instant::now(),
            client,
        }
    }

    /// The record of `change` to `workspace`, naming `connection` when the change concerns
    /// one (else empty), as the store writes it with the change. Its latency is the time
    /// from the request to the change's start; its status is 200, what every surface
    /// answers for a change that went through.
    pub fn record(
        &self,
        workspace: &WorkspaceId,
        change: Change,
        connection: &str,
    ) -> RequestLogEntry {
        self.entry(workspace, change.name(), connection, APPLIED)
    }

    /// The record of a read of `workspace`'s webhook events on `connection`'s endpoint,
    /// named `read` after the surface (`dashboard.webhooks.events.show`). It goes through
    /// the request log's queue, as an agent's read does ([`crate::webhooks::reads`]).
    pub fn read_record(
        &self,
        workspace: &WorkspaceId,
        read: &str,
        connection: &str,
    ) -> RequestLogEntry {
        self.entry(workspace, read, connection, READ)
    }

    fn entry(
        &self,
        workspace: &WorkspaceId,
        name: &str,
        connection: &str,
        outcome: &'static str,
    ) -> RequestLogEntry {
        let surface = self.actor.surface();
        RequestLogEntry {
            created_at: self.received_at,
            workspace_id: workspace.clone(),
            request_id: self.request_id.clone(),
            key_id: self.actor.recorded(),
            connection: connection.to_owned(),
            method: self.method.clone(),
            path: self.path.clone(),
            status: 200,
            latency_us: i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX),
            stripe_request_id: None,
            idempotency_key: None,
            outcome: Cow::Borrowed(outcome),
            operation: Some(format!("{surface}.{name}")),
            reason: None,
            via: Cow::Borrowed(surface),
            client: self.client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_the_surface_and_the_actor() {
        let workspace = WorkspaceId::from_stored("ws_1".into());
        let api = ChangeOrigin::admin_key(
            KeyId::from_stored("key_9".into()),
            "agr_1".into(),
            &Method::PUT,
            "/api/v1/connections/stripe".into(),
            Some(IpAddr::from([10, 0, 0, 7])),
        )
        .record(&workspace, Change::ConnectionSet, "stripe");
        assert_eq!(api.operation.as_deref(), Some("api.connections.set"));
        assert_eq!((api.key_id.as_str(), &*api.via), ("key_9", "api"));
        assert_eq!(
            (&*api.method, api.status, &*api.outcome),
            ("PUT", 200, APPLIED)
        );
        assert_eq!(api.connection, "stripe");
        assert_eq!(api.client, Some(IpAddr::from([10, 0, 0, 7])));

        let cli = ChangeOrigin::cli("keys revoke key_9".into()).record(
            &workspace,
            Change::KeyRevoked,
            "",
        );
        assert_eq!(cli.operation.as_deref(), Some("cli.keys.revoke"));
        assert_eq!(
            (cli.key_id.as_str(), &*cli.via, &*cli.method),
            ("cli", "cli", "CLI")
        );
        assert!(cli.request_id.starts_with("agr_"));
        assert_eq!(cli.client, None);

        let dashboard = ChangeOrigin::operator("ada", &Method::POST, "/keys".into(), None).record(
            &workspace,
            Change::KeyCreated,
            "",
        );
        assert_eq!(
            dashboard.operation.as_deref(),
            Some("dashboard.keys.create")
        );
        assert_eq!(dashboard.key_id.as_str(), "operator:ada");

        let read =
            ChangeOrigin::operator("ada", &Method::GET, "/webhook-endpoints/whe_1".into(), None)
                .read_record(&workspace, "webhooks.events.list", "stripe");
        assert_eq!(
            (read.operation.as_deref(), &*read.outcome, &*read.method),
            (Some("dashboard.webhooks.events.list"), READ, "GET")
        );
        assert_eq!(
            (read.key_id.as_str(), read.connection.as_str()),
            ("operator:ada", "stripe")
        );
    }
}
