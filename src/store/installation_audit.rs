//! The installation's own audit table: what belongs to no one workspace's request log
//! (workspaces created, operators created and their passwords reset, sign-ins, master-key
//! rotations), as a trait of its own that [`Store`](super::Store) requires. The records
//! themselves are built by [`crate::installation_audit`]; changes write theirs inside their
//! own transaction through the store's `insert_installation_row`, and events that change
//! nothing (a refused sign-in, a rotation's start) through
//! [`InstallationAuditStore::record_installation`]. The SQL is the same on both backends.

use std::net::IpAddr;

use async_trait::async_trait;

use super::StoreError;

/// A record to write: everything but the row's id and the instance, which the store adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallationRecord {
    /// Unix milliseconds.
    pub created_at: i64,
    /// `agr_...`, like a request log entry's.
    pub request_id: String,
    /// `cli` or `dashboard`.
    pub via: &'static str,
    /// `cli`, `operator:NAME`, `setup_link`, or `visitor` (a sign-in by an unknown name).
    pub actor: String,
    /// `VIA.ACTION`, e.g. `cli.workspaces.create`.
    pub action: String,
    /// The workspace or operator the action concerns, or a rotation's new master key id.
    pub subject: Option<String>,
    /// `applied`, `refused`, `started`, `finished` or `stopped`.
    pub outcome: &'static str,
    /// Why a sign-in was refused, or what a rotation did.
    pub detail: Option<String>,
    /// The browser's address, for the dashboard's actions.
    pub client: Option<IpAddr>,
}

/// A stored record, as `agentgate audit list` and the dashboard show it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct InstallationAuditEntry {
    /// Increases with every record.
    pub id: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// `agr_...`.
    pub request_id: String,
    /// The serving instance that wrote it; `None` for the CLI's.
    pub instance: Option<String>,
    /// `cli` or `dashboard`.
    pub via: String,
    /// Who acted (see [`InstallationRecord::actor`]).
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The workspace or operator concerned, or a rotation's new master key id.
    pub subject: Option<String>,
    /// `applied`, `refused`, `started`, `finished` or `stopped`.
    pub outcome: String,
    /// Why refused, or what a rotation did.
    pub detail: Option<String>,
    /// The client's address as text.
    pub client: Option<String>,
}

/// Reads and standalone writes of the installation's audit.
#[async_trait]
pub trait InstallationAuditStore: Send + Sync {
    /// Writes a record that goes with no change in the store: a refused sign-in, or a
    /// master-key rotation's start and end (the rotation's own writes are many batches).
    async fn record_installation(&self, record: &InstallationRecord) -> Result<(), StoreError>;
    /// Records newest first, at most `limit`, with ids below `before` when given.
    async fn list_installation_audit(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<InstallationAuditEntry>, StoreError>;
}

/// The INSERT of one record; the instance is the last parameter.
pub(super) const INSERT_INSTALLATION_RECORD: &str = "INSERT INTO installation_audit \
     (created_at, request_id, via, actor, action, subject, outcome, detail, client, instance) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Writes `impl InstallationAuditStore for $store` over its `pool: sqlx::Pool<$db>` field,
/// and the `insert_installation_row` the store's changes write their record with.
macro_rules! impl_installation_audit_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Writes `record` inside `tx`, naming this store's instance.
            async fn insert_installation_row(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                record: &$crate::store::installation_audit::InstallationRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::installation_audit::INSERT_INSTALLATION_RECORD)
                    .bind(record.created_at)
                    .bind(record.request_id.as_str())
                    .bind(record.via)
                    .bind(record.actor.as_str())
                    .bind(record.action.as_str())
                    .bind(record.subject.as_deref())
                    .bind(record.outcome)
                    .bind(record.detail.as_deref())
                    .bind(record.client.map(|ip| ip.to_string()))
                    .bind(self.instance())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::installation_audit::InstallationAuditStore for $store {
            async fn record_installation(
                &self,
                record: &$crate::store::installation_audit::InstallationRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                self.insert_installation_row(&mut tx, record).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_installation_audit(
                &self,
                before: Option<i64>,
                limit: i64,
            ) -> Result<
                Vec<$crate::store::installation_audit::InstallationAuditEntry>,
                $crate::store::StoreError,
            > {
                Ok(sqlx::query_as(
                    "SELECT id, created_at, request_id, instance, via, actor, action, subject, \
                     outcome, detail, client FROM installation_audit \
                     WHERE id < $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

pub(super) use impl_installation_audit_store;
