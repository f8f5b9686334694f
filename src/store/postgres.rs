//! PostgreSQL, for teams that run several agentgate instances on one database.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

use super::rows::{
    AgentKeyRecord, ConnectionRecord, LogQuery, RequestLogEntry, RequestLogRecord, Workspace,
};
use super::sql::{self, impl_store};
use super::{Backend, LogPace, StoreError};
use crate::ids::{KeyId, WorkspaceId};
use crate::instance::InstanceName;

/// A store on a PostgreSQL database (or the schema its URL's `search_path` selects).
pub struct PgStore {
    pool: Pool<Postgres>,
    /// The serving instance the request log rows it writes name; `None` for the CLI.
    instance: Option<String>,
}

impl PgStore {
    /// Connects and applies migrations, for the serving instance named `instance` (none for
    /// the CLI), which every request log row this store writes records.
    pub async fn open(url: &str, instance: Option<&InstanceName>) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(StoreError::Migration)?;
        Ok(Self {
            pool,
            instance: instance.map(|name| name.as_str().to_owned()),
        })
    }

    /// The instance the request log rows this store writes name.
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Events share the pool: every PostgreSQL commit is durable unless the server or the
    /// role turned `synchronous_commit` off.
    fn events_pool(&self) -> &Pool<Postgres> {
        &self.pool
    }

    /// None: on PostgreSQL the request log goes through the pool like every other write.
    fn direct_log_writer(&self) -> Option<&super::sqlite_log::SqliteLogWriter> {
        None
    }

    /// `synchronous_commit` is not `off`.
    async fn durable_event_commits(&self) -> Result<bool, StoreError> {
        let (setting,): (String,) = sqlx::query_as("SHOW synchronous_commit")
            .fetch_one(&self.pool)
            .await?;
        Ok(setting != "off")
    }
}

impl_store!(PgStore, Postgres, Backend::Postgres);
super::push::impl_push_store!(PgStore, Postgres, Backend::Postgres);
super::operators::impl_operator_store!(PgStore);
super::installation_audit::impl_installation_audit_store!(PgStore, Postgres);
super::sealed::impl_sealed_store!(PgStore);
