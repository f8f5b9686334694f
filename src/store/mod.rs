//! Persistence behind one interface, implemented for SQLite (the embedded default) and
//! PostgreSQL (for several instances). The store never sees HTTP types; callers never see
//! sqlx types. Methods on tenant data take the workspace first; the only unscoped lookups
//! are the entry points that find a tenant (a key by its hash), and they say so.

pub mod changes;
pub mod installation_audit;
pub mod operators;
mod postgres;
pub mod push;
pub mod rate_buckets;
pub mod rows;
pub mod sealed;
mod sql;
mod sql_rows;
mod sqlite;
mod sqlite_log;

use std::sync::Arc;

use async_trait::async_trait;

use crate::ids::{EndpointId, KeyId, WorkspaceId};
use crate::installation_audit::{Action, InstallationOrigin};
use crate::instance::InstanceName;
pub use installation_audit::{InstallationAuditEntry, InstallationAuditStore, InstallationRecord};
pub use operators::{OperatorRecord, OperatorStore, SessionRecord};
pub use push::PushStore;
pub use rows::{
    AgentKeyRecord, ConnectionRecord, EventRecord, LogQuery, NewEvent, RequestLogEntry,
    RequestLogRecord, WebhookEndpointRecord, WebhookSecretRecord, Workspace,
};
pub use sqlite::sqlite_file_path;

/// The name of the workspace every install starts with.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Why a new workspace was not created.
#[derive(Debug, thiserror::Error)]
pub enum NewWorkspaceError {
    /// The name is not a short name.
    #[error("a workspace name is 1 to 64 letters, digits, '-' or '_'")]
    BadName,
    /// A workspace has that name already.
    #[error("a workspace named {0:?} exists already")]
    Exists(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a workspace after the checks `agentgate workspaces create` and the dashboard
/// share: a short name (letters, digits, `-`, `_`) that no workspace has yet. The creation
/// commits only with its record in the installation's audit, as asked by `origin`.
pub async fn create_workspace(
    store: &dyn Store,
    name: &str,
    origin: &InstallationOrigin,
) -> Result<Workspace, NewWorkspaceError> {
    if !crate::proxy::is_connection_name(name) {
        return Err(NewWorkspaceError::BadName);
    }
    let audit = origin.applied(Action::WorkspaceCreated, name);
    match store.insert_workspace(name, &audit).await {
        Err(StoreError::Conflict { .. }) => Err(NewWorkspaceError::Exists(name.to_owned())),
        other => Ok(other?),
    }
}

/// A store failure, typed so callers can answer 404 or 409 without parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row named does not exist (in this workspace).
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write.
    #[error("conflicts with an existing row ({constraint})")]
    Conflict {
        /// The constraint that refused it, when the database names it.
        constraint: String,
    },
    /// The database URL is not one agentgate can open.
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    /// Anything else the database reported.
    #[error("database error: {0}")]
    Backend(#[source] sqlx::Error),
    /// SQLite reported an error on the request log's own connection.
    #[error("database error: {0}")]
    SqliteLog(#[source] rusqlite::Error),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                constraint: db.constraint().unwrap_or("unique").to_owned(),
            },
            _ => StoreError::Backend(error),
        }
    }
}

/// How the request log's writer may use its core while it writes a batch.
///
/// A writer that keeps up offers its core to other threads between rows, so a request woken
/// on that core does not wait out the batch. On a saturated host those offers can starve the
/// writer: each hands the core to the busy threads for the rest of their turn, and a writer
/// that fell behind once never caught up until its queue overflowed and entries were
/// dropped (`docs/performance.md`, the run of 2026-12-07, night). So a writer far behind
/// writes straight through until it has caught up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogPace {
    /// The writer keeps up: offer the core between rows.
    Share,
    /// The writer has fallen behind: write without offering the core.
    CatchUp,
}

/// What one run of the logs' retention deleted ([`Store::prune_logs`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrunedLogs {
    /// Entries of the request log.
    pub request_log: u64,
    /// Records of the installation's audit.
    pub installation_audit: u64,
}

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Everything agentgate persists. One implementation per backend; the same test suite
/// runs against both.
#[async_trait]
pub trait Store:
    push::PushStore
    + operators::OperatorStore
    + installation_audit::InstallationAuditStore
    + sealed::SealedStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Returns the workspace with this name, creating it if absent (the default workspace,
    /// which every install starts with).
    async fn ensure_workspace(&self, name: &str) -> Result<Workspace, StoreError>;
    /// Creates a workspace with the creation's audit record; `Conflict` if the name is taken.
    async fn insert_workspace(
        &self,
        name: &str,
        audit: &InstallationRecord,
    ) -> Result<Workspace, StoreError>;
    /// The workspace with this name, if it exists.
    async fn find_workspace(&self, name: &str) -> Result<Option<Workspace>, StoreError>;
    /// Every workspace, by name.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError>;
    /// Reads an installation-wide setting.
    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Writes a setting once; `Conflict` if it exists.
    async fn insert_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;
    /// A counter bumped by every change that caches must see (keys, connections).
    async fn generation(&self) -> Result<i64, StoreError>;

    /// The connection with this name in the workspace.
    async fn find_connection(
        &self,
        workspace: &WorkspaceId,
        name: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError>;
    /// All connections of the workspace, by name.
    async fn list_connections(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// Inserts the connection, or replaces the secret of the row with the same id.
    ///
    /// This and every other change to a workspace's secrets, keys, webhook endpoints and
    /// push destinations takes its `audit` record and writes it to the request log in the
    /// change's own transaction: a change whose record cannot be written is not made
    /// ([`crate::audit`]).
    async fn save_connection(
        &self,
        record: &ConnectionRecord,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// Switches catalog validation for the named connection; `NotFound` if there is none.
    async fn set_connection_validation(
        &self,
        workspace: &WorkspaceId,
        name: &str,
        enabled: bool,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// Removes the named connection; `NotFound` if there is none.
    async fn delete_connection(
        &self,
        workspace: &WorkspaceId,
        name: &str,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;

    /// Stores a new key (its hash).
    async fn insert_key(
        &self,
        record: &AgentKeyRecord,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// All keys of the workspace, oldest first.
    async fn list_keys(&self, workspace: &WorkspaceId) -> Result<Vec<AgentKeyRecord>, StoreError>;
    /// Unscoped entry lookup: the key with this hash, in whatever workspace it belongs to.
    async fn find_key_by_hash(&self, hash: &[u8]) -> Result<Option<AgentKeyRecord>, StoreError>;
    /// Rotation, in one transaction: stores the new key and makes the old one stop
    /// authenticating at `old_expires_at`; `NotFound` if the workspace has no such old key.
    async fn rotate_key(
        &self,
        new: &AgentKeyRecord,
        old: &KeyId,
        old_expires_at: i64,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// Money guardrails: adds each amount to the key's total for its currency on `day`
    /// (UTC, `YYYY-MM-DD`), provided every total stays within the limit given with it, all
    /// or none, atomically (so concurrent requests cannot pass a limit together). `None`
    /// when added; otherwise the current total of the first currency that would pass its
    /// limit, and nothing was added.
    async fn reserve_guardrail_totals(
        &self,
        workspace: &WorkspaceId,
        key: &KeyId,
        day: &str,
        amounts: &[(crate::policy::Money, i64)],
    ) -> Result<Option<crate::policy::Money>, StoreError>;
    /// Subtracts amounts reserved earlier for `day` (Stripe refused the request); a total
    /// never goes below zero.
    async fn release_guardrail_totals(
        &self,
        workspace: &WorkspaceId,
        key: &KeyId,
        day: &str,
        amounts: &[crate::policy::Money],
    ) -> Result<(), StoreError>;
    /// The workspace's daily totals for `day` (UTC, `YYYY-MM-DD`), by key and currency, so
    /// operators see what each key moved.
    async fn list_guardrail_totals(
        &self,
        workspace: &WorkspaceId,
        day: &str,
    ) -> Result<Vec<(KeyId, crate::policy::Money)>, StoreError>;
    /// Revokes a key; `NotFound` if there is none.
    async fn revoke_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        at: i64,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// Appends entries to the request log and moves each listed key's `last_used_at`
    /// forward (never backwards), in one transaction. The entries are taken by value so
    /// their text is handed to the driver as it is, not copied. `pace` matters only to a
    /// writer that offers its core while it writes (SQLite's); the others ignore it.
    async fn insert_request_logs(
        &self,
        entries: Vec<RequestLogEntry>,
        key_uses: &[(KeyId, i64)],
        pace: LogPace,
    ) -> Result<(), StoreError>;
    /// Reads the entries of the workspace's request log that `query` selects, oldest first.
    async fn list_request_logs(
        &self,
        workspace: &WorkspaceId,
        query: LogQuery,
    ) -> Result<Vec<RequestLogRecord>, StoreError>;

    /// Events of one endpoint stored after cursor `after_seq`, oldest first, at most
    /// `limit`, only of `event_type` when given: what pull, stream and `events list` read.
    /// Unscoped by workspace: callers have already checked the endpoint's workspace.
    async fn list_events(
        &self,
        endpoint: &crate::ids::EndpointId,
        after_seq: i64,
        limit: i64,
        event_type: Option<&str>,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// The endpoint's newest `limit` events, oldest of them first: what its dashboard page
    /// shows, however many it has.
    async fn newest_events(
        &self,
        endpoint: &crate::ids::EndpointId,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// The newest cursor of the endpoint's events, if it has any: where `events tail`
    /// starts following.
    async fn last_event_seq(
        &self,
        endpoint: &crate::ids::EndpointId,
    ) -> Result<Option<i64>, StoreError>;
    /// How many of the endpoint's stored events arrived at or after `since` (Unix
    /// milliseconds), and when its newest one arrived: the dashboard's webhook health.
    async fn event_activity(
        &self,
        endpoint: &crate::ids::EndpointId,
        since: i64,
    ) -> Result<(i64, Option<i64>), StoreError>;
    /// The workspace's event with Stripe's id (`evt_...`), for `events show`; when several
    /// endpoints received it, the first stored.
    async fn find_event(
        &self,
        workspace: &WorkspaceId,
        event_id: &str,
    ) -> Result<Option<EventRecord>, StoreError>;
    /// Retention: deletes every event received before `received_before` (Unix
    /// milliseconds), in chunks so no single transaction holds the database for long, and
    /// returns how many went. The newest event stays however old it is: SQLite numbers a new
    /// row one above the highest left, so deleting that one would hand its cursor out again.
    async fn prune_events(&self, received_before: i64) -> Result<u64, StoreError>;
    /// Retention: deletes the request log's entries and the installation's audit records
    /// created before `created_before` (Unix milliseconds), oldest first and in chunks, and
    /// returns how many of each went. As with events, each table's newest row stays.
    async fn prune_logs(&self, created_before: i64) -> Result<PrunedLogs, StoreError>;

    // === webhook endpoints, their secrets, and ingest ===

    /// Stores a new webhook endpoint.
    async fn insert_webhook_endpoint(
        &self,
        record: &WebhookEndpointRecord,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// The workspace's webhook endpoints, oldest first.
    async fn list_webhook_endpoints(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<WebhookEndpointRecord>, StoreError>;
    /// Unscoped entry lookup for ingest: the endpoint with this (unguessable) id, in whatever
    /// workspace it belongs to.
    async fn find_webhook_endpoint(
        &self,
        id: &EndpointId,
    ) -> Result<Option<WebhookEndpointRecord>, StoreError>;
    /// Removes the endpoint and its secrets; `NotFound` if the workspace has none such.
    /// Its stored events stay until retention prunes them.
    async fn delete_webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &EndpointId,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// Records Stripe's id (`we_...`) of a registered endpoint; `NotFound` if there is none.
    /// Not audited on its own: it follows the secret that registration stores, whose
    /// record names the registration.
    async fn set_webhook_stripe_id(
        &self,
        workspace: &WorkspaceId,
        id: &EndpointId,
        stripe_endpoint_id: &str,
    ) -> Result<(), StoreError>;
    /// Adds a signing secret (a roll keeps the others active); with `expire_others_at`, every
    /// other secret of the endpoint stops verifying at that time (unless it stops earlier),
    /// in the same transaction.
    async fn insert_webhook_secret(
        &self,
        record: &WebhookSecretRecord,
        expire_others_at: Option<i64>,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// The endpoint's secrets that still verify at `now` (Unix ms), newest first.
    async fn list_active_webhook_secrets(
        &self,
        endpoint: &EndpointId,
        now: i64,
    ) -> Result<Vec<WebhookSecretRecord>, StoreError>;
    /// Stores events in ONE durable transaction (SQLite: on a connection with
    /// `synchronous=FULL`), each at most once per endpoint: for each input, in order, its new
    /// cursor, or `None` if the endpoint already had that event id (also within the batch).
    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Option<i64>>, StoreError>;
    /// Whether the connection events are written on makes each commit durable before it
    /// returns (SQLite: WAL and `synchronous` FULL or EXTRA; PostgreSQL: `synchronous_commit`
    /// not off), so startup can refuse to acknowledge events it could lose.
    async fn event_commits_are_durable(&self) -> Result<bool, StoreError>;
}

/// Opens (creating and migrating if needed) the store a database URL names:
/// `sqlite://PATH` or `postgres://...`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_as(url, None).await
}

/// Like [`open`], for the serving instance named `instance`: every request log row the store
/// writes (the data plane's, and the changes' audit records) names it. The CLI opens its
/// store with [`open`], and its changes name no instance.
pub async fn open_as(
    url: &str,
    instance: Option<&InstanceName>,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, instance).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url, instance).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// The URL without any password, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_in_database_urls() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/x"),
            "postgres://***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://agentgate.db"), "sqlite://agentgate.db");
    }
}
