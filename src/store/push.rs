//! What push delivery persists (destinations, deliveries, attempts), as a trait of its own
//! that [`Store`](super::Store) requires, so the push SQL lives in one file beside the rest.
//! The SQL is the same for both backends except that PostgreSQL claims with
//! `FOR UPDATE SKIP LOCKED`; [`impl_push_store!`] writes the implementation for each.

use async_trait::async_trait;

use super::{RequestLogEntry, StoreError};
use crate::crypto::Sealed;
use crate::ids::{DeliveryId, DestinationId, EndpointId, WorkspaceId};

/// Whether a destination receives deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationState {
    /// Deliveries are attempted.
    Enabled,
    /// Failed for too long (or switched off); nothing is attempted until it is enabled.
    Disabled,
}

impl DestinationState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationState::Enabled => "enabled",
            DestinationState::Disabled => "disabled",
        }
    }

    fn from_stored(text: &str) -> Self {
        match text {
            "enabled" => DestinationState::Enabled,
            _ => DestinationState::Disabled,
        }
    }
}

/// An agent's URL that one webhook endpoint's events are pushed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationRecord {
    /// Stable id; also binds the sealed secret.
    pub id: DestinationId,
    /// Owning workspace (the endpoint's).
    pub workspace_id: WorkspaceId,
    /// The endpoint whose events go here.
    pub endpoint_id: EndpointId,
    /// Where to POST (`http` or `https`).
    pub url: String,
    /// Event types to push; empty pushes every type.
    pub event_types: Vec<String>,
    /// Whether loopback and private addresses are allowed (set explicitly by the operator).
    pub allow_private: bool,
    /// The Standard Webhooks secret (`whsec_...`), sealed.
    pub secret: Sealed,
    /// Whether deliveries are attempted.
    pub state: DestinationState,
    /// Events up to this cursor have delivery rows (set by the store on insert).
    pub last_seq: i64,
    /// Unix ms of the first failed attempt since the last success.
    pub failing_since: Option<i64>,
    /// Unix ms when it was disabled.
    pub disabled_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
}

/// An event as far as fan-out and replay need it (not its payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// Cursor.
    pub seq: i64,
    /// Stripe's event id.
    pub event_id: String,
    /// Stripe's event type.
    pub event_type: String,
    /// Unix ms of receipt.
    pub received_at: i64,
}

/// A delivery to create: one event for one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// Fresh id.
    pub id: DeliveryId,
    /// Where it goes.
    pub destination_id: DestinationId,
    /// The destination's workspace.
    pub workspace_id: WorkspaceId,
    /// The event's cursor.
    pub event_seq: i64,
    /// Stripe's event id (the `webhook-id` sent).
    pub event_id: String,
    /// 0 for the delivery made when the event arrived; a fresh number per manual replay.
    pub replay: i64,
    /// Unix ms; also the first attempt's due time.
    pub created_at: i64,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The destination answered 2xx.
    Succeeded,
    /// Retries ran out, or the destination was disabled.
    Failed,
}

impl DeliveryState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }

    fn from_stored(text: &str) -> Self {
        match text {
            "pending" => DeliveryState::Pending,
            "succeeded" => DeliveryState::Succeeded,
            _ => DeliveryState::Failed,
        }
    }
}

/// A delivery claimed for one attempt, with what the attempt needs.
#[derive(Clone, Debug)]
pub struct DeliveryJob {
    /// The delivery.
    pub id: DeliveryId,
    /// Its destination, as stored now.
    pub destination: DestinationRecord,
    /// Stripe's event id.
    pub event_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Unix ms the delivery was created (retries stop a fixed time after it).
    pub created_at: i64,
    /// The event body as Stripe sent it; `None` if retention pruned the event.
    pub payload: Option<Vec<u8>>,
}

/// The result of one attempt, and what follows from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The delivery attempted.
    pub delivery_id: DeliveryId,
    /// Its destination.
    pub destination_id: DestinationId,
    /// Unix ms when the attempt started.
    pub attempted_at: i64,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// Time to the answer (or the failure), in ms.
    pub latency_ms: i64,
    /// Why it failed, when it did (never a secret).
    pub error: Option<String>,
    /// The delivery's state after this attempt.
    pub state: DeliveryState,
    /// When to try again (Unix ms), for a delivery still pending.
    pub next_attempt_at: i64,
    /// On failure, disable the destination if it has failed since at or before this time.
    pub disable_if_failing_since: i64,
}

/// One recorded attempt, for the attempt log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Increasing position.
    pub id: i64,
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Its destination.
    pub destination_id: DestinationId,
    /// Stripe's event id.
    pub event_id: String,
    /// Unix ms.
    pub attempted_at: i64,
    /// HTTP status, if the destination answered.
    pub status: Option<u16>,
    /// Latency in ms.
    pub latency_ms: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The delivery's state now.
    pub delivery_state: DeliveryState,
}

/// Which events a replay re-delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSelector {
    /// The event with this Stripe id.
    One(String),
    /// Events received in `[since, until)` (Unix ms).
    Range {
        /// Inclusive start.
        since: i64,
        /// Exclusive end.
        until: i64,
    },
}

/// Push delivery's persistence. Methods that take a workspace are scoped to it; the
/// unscoped ones serve the background workers, which act for every workspace, and say so.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// Stores a destination of the workspace's endpoint, its cursor at the endpoint's newest
    /// event (it receives what arrives from now on); `NotFound` if the workspace has no such
    /// endpoint.
    /// Audited like every change to a workspace's secrets ([`crate::audit`]).
    async fn insert_push_destination(
        &self,
        record: &DestinationRecord,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// The workspace's destinations (of one endpoint, if given), oldest first.
    async fn list_push_destinations(
        &self,
        workspace: &WorkspaceId,
        endpoint: Option<&EndpointId>,
    ) -> Result<Vec<DestinationRecord>, StoreError>;
    /// The workspace's destination with this id.
    async fn find_push_destination(
        &self,
        workspace: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<Option<DestinationRecord>, StoreError>;
    /// Removes a destination with its deliveries and attempts; `NotFound` if there is none.
    async fn delete_push_destination(
        &self,
        workspace: &WorkspaceId,
        id: &DestinationId,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// Enables (clearing its failure record) or disables a destination; `NotFound` if
    /// there is none.
    async fn set_push_destination_state(
        &self,
        workspace: &WorkspaceId,
        id: &DestinationId,
        state: DestinationState,
        now: i64,
        audit: &RequestLogEntry,
    ) -> Result<(), StoreError>;
    /// Unscoped, for the fan-out worker: every enabled destination of every workspace.
    async fn list_enabled_push_destinations(&self) -> Result<Vec<DestinationRecord>, StoreError>;
    /// Unscoped, for the fan-out worker: the destination's endpoint's events after its
    /// cursor (at most `limit`, oldest first), then those at or before it received since
    /// `recent_since` that have no delivery yet (a PostgreSQL transaction may commit a
    /// lower cursor after a higher one).
    async fn list_events_to_fan_out(
        &self,
        destination: &DestinationRecord,
        recent_since: i64,
        limit: i64,
    ) -> Result<Vec<EventHeader>, StoreError>;
    /// Creates deliveries (each at most once per destination, event and replay number) and,
    /// when given, moves the destination's cursor forward to `cursor`, in one transaction.
    /// Returns how many were new.
    async fn create_push_deliveries(
        &self,
        destination: &DestinationId,
        cursor: Option<i64>,
        deliveries: &[NewDelivery],
    ) -> Result<u64, StoreError>;
    /// Creates a replay's deliveries, to any of the workspace's destinations, in one
    /// transaction with the replay's audit record: a replay whose record cannot be written
    /// sends nothing. Returns how many were new.
    async fn create_replay_deliveries(
        &self,
        deliveries: &[NewDelivery],
        audit: &RequestLogEntry,
    ) -> Result<u64, StoreError>;
    /// Unscoped, for the delivery worker: leases up to `limit` due deliveries of enabled
    /// destinations until `lease_until`, so no other instance attempts them meanwhile.
    async fn claim_push_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryJob>, StoreError>;
    /// Records an attempt and its consequences in one transaction: the delivery's state,
    /// the destination's failure record, and disabling it (failing its pending deliveries)
    /// when it has failed for too long. Returns whether this disabled the destination.
    async fn record_push_attempt(&self, outcome: &AttemptOutcome) -> Result<bool, StoreError>;
    /// The newest `limit` attempts to a destination of the workspace, newest first.
    async fn list_push_attempts(
        &self,
        workspace: &WorkspaceId,
        destination: &DestinationId,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
    /// The workspace endpoint's events a replay selects, oldest first.
    async fn list_events_to_replay(
        &self,
        workspace: &WorkspaceId,
        endpoint: &EndpointId,
        selector: &EventSelector,
        limit: i64,
    ) -> Result<Vec<EventHeader>, StoreError>;
}

// === rows ===

/// Columns of a destination, in [`DestinationRow`] order.
pub(super) const DESTINATION_COLUMNS: &str = "t.id, t.workspace_id, t.endpoint_id, t.url, \
    t.event_types, t.allow_private, t.secret, t.state, t.last_seq, t.failing_since, \
    t.disabled_at, t.created_at";

#[derive(sqlx::FromRow)]
pub(super) struct DestinationRow {
    id: String,
    workspace_id: String,
    endpoint_id: String,
    url: String,
    event_types: String,
    allow_private: bool,
    secret: Vec<u8>,
    state: String,
    last_seq: i64,
    failing_since: Option<i64>,
    disabled_at: Option<i64>,
    created_at: i64,
}

impl From<DestinationRow> for DestinationRecord {
    fn from(row: DestinationRow) -> Self {
        DestinationRecord {
            id: DestinationId::from_stored(row.id),
            workspace_id: WorkspaceId::from_stored(row.workspace_id),
            endpoint_id: EndpointId::from_stored(row.endpoint_id),
            url: row.url,
            // A filter that does not parse would widen it; push nothing rather than all.
            event_types: serde_json::from_str(&row.event_types)
                .unwrap_or_else(|_| vec!["(unreadable filter)".to_owned()]),
            allow_private: row.allow_private,
            secret: Sealed::from_stored(row.secret),
            state: DestinationState::from_stored(&row.state),
            last_seq: row.last_seq,
            failing_since: row.failing_since,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EventHeaderRow {
    seq: i64,
    event_id: String,
    event_type: String,
    received_at: i64,
}

impl From<EventHeaderRow> for EventHeader {
    fn from(row: EventHeaderRow) -> Self {
        EventHeader {
            seq: row.seq,
            event_id: row.event_id,
            event_type: row.event_type,
            received_at: row.received_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    delivery_id: String,
    delivery_event_id: String,
    attempts: i64,
    delivery_created_at: i64,
    payload: Option<Vec<u8>>,
    #[sqlx(flatten)]
    destination: DestinationRow,
}

impl From<JobRow> for DeliveryJob {
    fn from(row: JobRow) -> Self {
        DeliveryJob {
            id: DeliveryId::from_stored(row.delivery_id),
            destination: row.destination.into(),
            event_id: row.delivery_event_id,
            attempts: row.attempts,
            created_at: row.delivery_created_at,
            payload: row.payload,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AttemptRow {
    id: i64,
    delivery_id: String,
    destination_id: String,
    event_id: String,
    attempted_at: i64,
    status: Option<i32>,
    latency_ms: i64,
    error: Option<String>,
    state: String,
}

impl From<AttemptRow> for AttemptRecord {
    fn from(row: AttemptRow) -> Self {
        AttemptRecord {
            id: row.id,
            delivery_id: DeliveryId::from_stored(row.delivery_id),
            destination_id: DestinationId::from_stored(row.destination_id),
            event_id: row.event_id,
            attempted_at: row.attempted_at,
            status: row.status.and_then(|s| u16::try_from(s).ok()),
            latency_ms: row.latency_ms,
            error: row.error,
            delivery_state: DeliveryState::from_stored(&row.state),
        }
    }
}

/// The claim: lease due deliveries of enabled destinations. The outer conditions repeat
/// the inner ones so a PostgreSQL row changed by a concurrent claim is re-checked and
/// skipped; PostgreSQL also skips rows another claim has locked.
pub(super) fn claim_sql(backend: super::Backend) -> &'static str {
    const SQLITE: &str = "UPDATE push_deliveries SET locked_until = $1, updated_at = $2 \
        WHERE id IN (SELECT d.id FROM push_deliveries d \
        JOIN push_destinations t ON t.id = d.destination_id \
        WHERE d.state = 'pending' AND d.next_attempt_at <= $2 AND d.locked_until <= $2 \
        AND t.state = 'enabled' ORDER BY d.next_attempt_at LIMIT $3) \
        AND state = 'pending' AND locked_until <= $2 RETURNING id";
    const POSTGRES: &str = "UPDATE push_deliveries SET locked_until = $1, updated_at = $2 \
        WHERE id IN (SELECT d.id FROM push_deliveries d \
        JOIN push_destinations t ON t.id = d.destination_id \
        WHERE d.state = 'pending' AND d.next_attempt_at <= $2 AND d.locked_until <= $2 \
        AND t.state = 'enabled' ORDER BY d.next_attempt_at LIMIT $3 \
        FOR UPDATE OF d SKIP LOCKED) \
        AND state = 'pending' AND locked_until <= $2 RETURNING id";
    match backend {
        super::Backend::Sqlite => SQLITE,
        super::Backend::Postgres => POSTGRES,
    }
}

/// Writes `impl PushStore for $store` over its `pool: sqlx::Pool<_>` field.
macro_rules! impl_push_store {
    ($store:ty, $db:ty, $backend:expr) => {
        impl $store {
            /// Inserts `deliveries` inside `tx`, each at most once per destination, event and
            /// replay number; returns how many were new.
            async fn insert_deliveries(
                tx: &mut sqlx::Transaction<'static, $db>,
                deliveries: &[$crate::store::push::NewDelivery],
            ) -> Result<u64, $crate::store::StoreError> {
                let mut created = 0;
                for delivery in deliveries {
                    created += sqlx::query(
                        "INSERT INTO push_deliveries (id, destination_id, workspace_id, \
                         event_seq, event_id, replay, state, attempts, next_attempt_at, \
                         locked_until, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, 0, $7, $7) \
                         ON CONFLICT (destination_id, event_seq, replay) DO NOTHING",
                    )
                    .bind(delivery.id.as_str())
                    .bind(delivery.destination_id.as_str())
                    .bind(delivery.workspace_id.as_str())
                    .bind(delivery.event_seq)
                    .bind(&delivery.event_id)
                    .bind(delivery.replay)
                    .bind(delivery.created_at)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                }
                Ok(created)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::push::PushStore for $store {
            async fn insert_push_destination(
                &self,
                record: &$crate::store::push::DestinationRecord,
                audit: &$crate::store::RequestLogEntry,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                let inserted = sqlx::query(
                    "INSERT INTO push_destinations (id, workspace_id, endpoint_id, url, \
                     event_types, allow_private, secret, state, last_seq, created_at) \
                     SELECT $1, $2, w.id, $4, $5, $6, $7, $8, \
                     COALESCE((SELECT MAX(seq) FROM events WHERE endpoint_id = w.id), 0), $9 \
                     FROM webhook_endpoints w WHERE w.id = $3 AND w.workspace_id = $2",
                )
                .bind(record.id.as_str())
                .bind(record.workspace_id.as_str())
                .bind(record.endpoint_id.as_str())
                .bind(&record.url)
                .bind(serde_json::to_string(&record.event_types).expect("strings serialize"))
                .bind(record.allow_private)
                .bind(record.secret.as_bytes())
                .bind(record.state.as_str())
                .bind(record.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_push_destinations(
                &self,
                workspace: &$crate::ids::WorkspaceId,
                endpoint: Option<&$crate::ids::EndpointId>,
            ) -> Result<Vec<$crate::store::push::DestinationRecord>, $crate::store::StoreError>
            {
                let sql = format!(
                    "SELECT {} FROM push_destinations t WHERE t.workspace_id = $1 \
                     AND ($2 IS NULL OR t.endpoint_id = $2) ORDER BY t.created_at, t.id",
                    $crate::store::push::DESTINATION_COLUMNS
                );
                let rows: Vec<$crate::store::push::DestinationRow> = sqlx::query_as(&sql)
                    .bind(workspace.as_str())
                    .bind(endpoint.map(|e| e.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn find_push_destination(
                &self,
                workspace: &$crate::ids::WorkspaceId,
                id: &$crate::ids::DestinationId,
            ) -> Result<Option<$crate::store::push::DestinationRecord>, $crate::store::StoreError>
            {
                let sql = format!(
                    "SELECT {} FROM push_destinations t WHERE t.workspace_id = $1 AND t.id = $2",
                    $crate::store::push::DESTINATION_COLUMNS
                );
                let row: Option<$crate::store::push::DestinationRow> = sqlx::query_as(&sql)
                    .bind(workspace.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(Into::into))
            }

            async fn delete_push_destination(
                &self,
                workspace: &$crate::ids::WorkspaceId,
                id: &$crate::ids::DestinationId,
                audit: &$crate::store::RequestLogEntry,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                // The destination's row first, as every transaction that touches both a
                // destination and its deliveries does (fan-out, recording an attempt): one
                // lock order, no deadlock with a push worker on any instance.
                sqlx::query(
                    "UPDATE push_destinations SET state = state WHERE id = $1 AND workspace_id = $2",
                )
                .bind(id.as_str())
                .bind(workspace.as_str())
                .execute(&mut *tx)
                .await?;
                // Explicitly, so PostgreSQL and a SQLite without foreign keys agree.
                sqlx::query(
                    "DELETE FROM push_attempts WHERE destination_id = $1 AND destination_id IN \
                     (SELECT id FROM push_destinations WHERE workspace_id = $2)",
                )
                .bind(id.as_str())
                .bind(workspace.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM push_deliveries WHERE destination_id = $1 AND workspace_id = $2",
                )
                .bind(id.as_str())
                .bind(workspace.as_str())
                .execute(&mut *tx)
                .await?;
                let deleted = sqlx::query(
                    "DELETE FROM push_destinations WHERE id = $1 AND workspace_id = $2",
                )
                .bind(id.as_str())
                .bind(workspace.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_push_destination_state(
                &self,
                workspace: &$crate::ids::WorkspaceId,
                id: &$crate::ids::DestinationId,
                state: $crate::store::push::DestinationState,
                now: i64,
                audit: &$crate::store::RequestLogEntry,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                let updated = sqlx::query(
                    "UPDATE push_destinations SET state = $3, failing_since = NULL, \
                     disabled_at = CASE WHEN $3 = 'disabled' THEN $4 ELSE NULL END \
                     WHERE workspace_id = $1 AND id = $2",
                )
                .bind(workspace.as_str())
                .bind(id.as_str())
                .bind(state.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_enabled_push_destinations(
                &self,
            ) -> Result<Vec<$crate::store::push::DestinationRecord>, $crate::store::StoreError>
            {
                let sql = format!(
                    "SELECT {} FROM push_destinations t WHERE t.state = 'enabled' ORDER BY t.id",
                    $crate::store::push::DESTINATION_COLUMNS
                );
                let rows: Vec<$crate::store::push::DestinationRow> =
                    sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn list_events_to_fan_out(
                &self,
                destination: &$crate::store::push::DestinationRecord,
                recent_since: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::push::EventHeader>, $crate::store::StoreError> {
                let mut rows: Vec<$crate::store::push::EventHeaderRow> = sqlx::query_as(
                    "SELECT seq, event_id, event_type, received_at FROM events \
                     WHERE endpoint_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(destination.endpoint_id.as_str())
                .bind(destination.last_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let late: Vec<$crate::store::push::EventHeaderRow> = sqlx::query_as(
                    "SELECT e.seq, e.event_id, e.event_type, e.received_at FROM events e \
                     WHERE e.endpoint_id = $1 AND e.seq <= $2 AND e.received_at >= $3 \
                     AND NOT EXISTS (SELECT 1 FROM push_deliveries d \
                     WHERE d.destination_id = $4 AND d.event_seq = e.seq AND d.replay = 0) \
                     ORDER BY e.seq LIMIT $5",
                )
                .bind(destination.endpoint_id.as_str())
                .bind(destination.last_seq)
                .bind(recent_since.max(destination.created_at))
                .bind(destination.id.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.extend(late);
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn create_push_deliveries(
                &self,
                destination: &$crate::ids::DestinationId,
                cursor: Option<i64>,
                deliveries: &[$crate::store::push::NewDelivery],
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                // The cursor first: it takes the write lock (SQLite) or the row lock
                // (PostgreSQL) before anything is read or inserted.
                if let Some(cursor) = cursor {
                    sqlx::query(
                        "UPDATE push_destinations SET last_seq = $2 \
                         WHERE id = $1 AND last_seq < $2",
                    )
                    .bind(destination.as_str())
                    .bind(cursor)
                    .execute(&mut *tx)
                    .await?;
                }
                let created = Self::insert_deliveries(&mut tx, deliveries).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn create_replay_deliveries(
                &self,
                deliveries: &[$crate::store::push::NewDelivery],
                audit: &$crate::store::RequestLogEntry,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                let created = Self::insert_deliveries(&mut tx, deliveries).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn claim_push_deliveries(
                &self,
                now: i64,
                lease_until: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::push::DeliveryJob>, $crate::store::StoreError> {
                let claimed: Vec<(String,)> =
                    sqlx::query_as($crate::store::push::claim_sql($backend))
                        .bind(lease_until)
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                let sql = format!(
                    "SELECT d.id AS delivery_id, d.event_id AS delivery_event_id, d.attempts, \
                     d.created_at AS delivery_created_at, e.payload, {} \
                     FROM push_deliveries d JOIN push_destinations t ON t.id = d.destination_id \
                     LEFT JOIN events e ON e.seq = d.event_seq AND e.event_id = d.event_id \
                     AND e.endpoint_id = t.endpoint_id WHERE d.id = $1",
                    $crate::store::push::DESTINATION_COLUMNS
                );
                let mut jobs = Vec::with_capacity(claimed.len());
                for (id,) in claimed {
                    let row: Option<$crate::store::push::JobRow> = sqlx::query_as(&sql)
                        .bind(&id)
                        .fetch_optional(&self.pool)
                        .await?;
                    jobs.extend(row.map(Into::into));
                }
                Ok(jobs)
            }

            async fn record_push_attempt(
                &self,
                outcome: &$crate::store::push::AttemptOutcome,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::push::DeliveryState;
                let mut tx = self.pool.begin().await?;
                // The destination first, as fan-out locks it (its cursor) before it inserts
                // deliveries: one lock order, so two instances cannot deadlock. A healthy
                // destination is only read, not locked: successes do not queue on its row.
                let mut disabled = false;
                if outcome.state == DeliveryState::Succeeded {
                    sqlx::query(
                        "UPDATE push_destinations SET failing_since = NULL \
                         WHERE id = $1 AND failing_since IS NOT NULL",
                    )
                    .bind(outcome.destination_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE push_destinations SET failing_since = \
                         COALESCE(failing_since, $2) WHERE id = $1",
                    )
                    .bind(outcome.destination_id.as_str())
                    .bind(outcome.attempted_at)
                    .execute(&mut *tx)
                    .await?;
                    disabled = sqlx::query(
                        "UPDATE push_destinations SET state = 'disabled', disabled_at = $2 \
                         WHERE id = $1 AND state = 'enabled' AND failing_since <= $3",
                    )
                    .bind(outcome.destination_id.as_str())
                    .bind(outcome.attempted_at)
                    .bind(outcome.disable_if_failing_since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                }
                sqlx::query(
                    "UPDATE push_deliveries SET state = $2, attempts = attempts + 1, \
                     next_attempt_at = $3, locked_until = 0, updated_at = $4 WHERE id = $1",
                )
                .bind(outcome.delivery_id.as_str())
                .bind(outcome.state.as_str())
                .bind(outcome.next_attempt_at)
                .bind(outcome.attempted_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO push_attempts (delivery_id, destination_id, attempted_at, \
                     status, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(outcome.delivery_id.as_str())
                .bind(outcome.destination_id.as_str())
                .bind(outcome.attempted_at)
                .bind(outcome.status.map(i32::from))
                .bind(outcome.latency_ms)
                .bind(outcome.error.as_deref())
                .execute(&mut *tx)
                .await?;
                if disabled {
                    sqlx::query(
                        "UPDATE push_deliveries SET state = 'failed', locked_until = 0, \
                         updated_at = $2 WHERE destination_id = $1 AND state = 'pending'",
                    )
                    .bind(outcome.destination_id.as_str())
                    .bind(outcome.attempted_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(disabled)
            }

            async fn list_push_attempts(
                &self,
                workspace: &$crate::ids::WorkspaceId,
                destination: &$crate::ids::DestinationId,
                limit: i64,
            ) -> Result<Vec<$crate::store::push::AttemptRecord>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::push::AttemptRow> = sqlx::query_as(
                    "SELECT a.id, a.delivery_id, a.destination_id, d.event_id, a.attempted_at, \
                     a.status, a.latency_ms, a.error, d.state FROM push_attempts a \
                     JOIN push_deliveries d ON d.id = a.delivery_id \
                     WHERE a.destination_id = $1 AND d.workspace_id = $2 \
                     ORDER BY a.id DESC LIMIT $3",
                )
                .bind(destination.as_str())
                .bind(workspace.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn list_events_to_replay(
                &self,
                workspace: &$crate::ids::WorkspaceId,
                endpoint: &$crate::ids::EndpointId,
                selector: &$crate::store::push::EventSelector,
                limit: i64,
            ) -> Result<Vec<$crate::store::push::EventHeader>, $crate::store::StoreError> {
                use $crate::store::push::EventSelector;
                let base = "SELECT seq, event_id, event_type, received_at FROM events \
                            WHERE workspace_id = $1 AND endpoint_id = $2";
                let rows: Vec<$crate::store::push::EventHeaderRow> = match selector {
                    EventSelector::One(event_id) => {
                        sqlx::query_as(&format!("{base} AND event_id = $3 ORDER BY seq LIMIT $4"))
                            .bind(workspace.as_str())
                            .bind(endpoint.as_str())
                            .bind(event_id)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    EventSelector::Range { since, until } => {
                        sqlx::query_as(&format!(
                            "{base} AND received_at >= $3 AND received_at < $4 \
                             ORDER BY seq LIMIT $5"
                        ))
                        .bind(workspace.as_str())
                        .bind(endpoint.as_str())
                        .bind(*since)
                        .bind(*until)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(super) use impl_push_store;
