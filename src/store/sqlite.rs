//! The embedded default: one SQLite file in WAL mode, created and migrated on open.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use super::rows::{
    AgentKeyRecord, ConnectionRecord, LogQuery, RequestLogEntry, RequestLogRecord, Workspace,
};
use super::sql::{self, impl_store};
use super::sqlite_log::SqliteLogWriter;
use super::{Backend, LogPace, StoreError};
use crate::ids::{KeyId, WorkspaceId};
use crate::instance::InstanceName;

/// How long a writer waits for another process's write lock (the CLI and the server share
/// the file) before the write fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store on one SQLite file.
pub struct SqliteStore {
    pool: Pool<Sqlite>,
    /// One connection with `synchronous=FULL`, on which ingested events are committed: each
    /// commit is synced to disk before it returns, so an acknowledged event survives power
    /// loss, while other writes keep the cheaper NORMAL. Opened on first use (the CLI never
    /// needs it).
    events: Pool<Sqlite>,
    /// The request log's own connection (see [`SqliteLogWriter`]); `None` for an
    /// in-memory database, whose log goes through the pool.
    log: Option<SqliteLogWriter>,
    /// The serving instance the request log rows it writes name; `None` for the CLI.
    instance: Option<String>,
}

impl SqliteStore {
    /// Opens the file a `sqlite://PATH` URL names, creating and migrating it if needed, for
    /// the serving instance named `instance` (none for the CLI), which every request log
    /// row this store writes records.
    pub async fn open(url: &str, instance: Option<&InstanceName>) -> Result<Self, StoreError> {
        let path = sqlite_file_path(url);
        if let Some(path) = &path {
            create_owner_only(path).map_err(|e| StoreError::Backend(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let events = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone().synchronous(SqliteSynchronous::Full));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(StoreError::Migration)?;
        let instance = instance.map(|name| name.as_str().to_owned());
        let log = path.map(|path| SqliteLogWriter::new(path, BUSY_TIMEOUT, instance.clone()));
        Ok(Self {
            pool,
            events,
            log,
            instance,
        })
    }

    /// The instance the request log rows this store writes name.
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Where events are written (see the `events` field).
    fn events_pool(&self) -> &Pool<Sqlite> {
        &self.events
    }

    /// The request log's own connection, for a database in a file.
    fn direct_log_writer(&self) -> Option<&SqliteLogWriter> {
        self.log.as_ref()
    }

    /// WAL and `synchronous` FULL (2) or EXTRA (3) on the events connection.
    async fn durable_event_commits(&self) -> Result<bool, StoreError> {
        let mut conn = self.events.acquire().await?;
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        Ok(mode.eq_ignore_ascii_case("wal") && level >= 2)
    }
}

/// Creates the database file readable by its owner only (SQLite gives the `-wal` and `-shm`
/// files the same permissions); an existing file is left as it is.
fn create_owner_only(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The file a `sqlite://` URL names, so the master key file can be put beside it;
/// `None` for in-memory databases.
pub fn sqlite_file_path(url: &str) -> Option<PathBuf> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    (!path.as_os_str().is_empty() && path.as_os_str() != ":memory:").then(|| path.to_path_buf())
}

impl_store!(SqliteStore, Sqlite, Backend::Sqlite);
super::push::impl_push_store!(SqliteStore, Sqlite, Backend::Sqlite);
super::operators::impl_operator_store!(SqliteStore);
super::installation_audit::impl_installation_audit_store!(SqliteStore, Sqlite);
super::sealed::impl_sealed_store!(SqliteStore);
