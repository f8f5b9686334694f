//! The SQL both backends share. SQLite and PostgreSQL accept the same statements here
//! (`$N` parameters, `ON CONFLICT`, integer milliseconds, blobs as `BLOB`/`BYTEA`), so the
//! [`impl_store!`] macro writes the `Store` implementation once for each pool type; only
//! opening a pool and backend-only features live in `sqlite.rs` and `postgres.rs`.

use std::sync::OnceLock;

use super::Backend;

pub(super) use super::sql_rows::{ConnectionRow, KeyRow, RequestLogRow, WorkspaceRow};

/// Largest number of rows in one multi-row INSERT of the request log. Each statement is
/// one uninterrupted run of SQLite's thread (about 3-4 µs a row); kept short, so a request
/// the kernel queues behind that thread on a busy core waits a fraction of a millisecond,
/// not the several milliseconds a 512-row statement took (`docs/performance.md`).
pub(super) const LOG_INSERT_CHUNK: usize = 32;

/// Splits `len` rows into chunks whose sizes are powers of two (32, 16, ... 1), so the
/// backends' statement caches see at most six distinct INSERT statements instead of one
/// per batch size.
pub(super) fn log_chunk_sizes(mut len: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if len == 0 {
            return None;
        }
        let size = if len >= LOG_INSERT_CHUNK {
            LOG_INSERT_CHUNK
        } else {
            1 << (usize::BITS - 1 - len.leading_zeros())
        };
        len -= size;
        Some(size)
    })
}

/// The multi-row INSERT of `rows` request log entries (a power of two up to
/// [`LOG_INSERT_CHUNK`]), built once per size and backend: formatting thousands of
/// placeholders on every batch cost more than the insert. Parameters are numbered (`?N` on
/// SQLite, `$N` on PostgreSQL): row `r`'s columns are `r * LOG_COLUMNS + 1` to `+
/// LOG_COLUMNS`, and the last parameter, [`log_instance_param`], is the serving instance,
/// bound once for every row of the statement. SQLite resolves numbered parameters in time
/// quadratic in their number when it prepares a statement; at a chunk's 513 that is done
/// once per size on a connection, whose statement cache keeps them.
///
/// SQLite's statement is `INSERT OR FAIL`: with the default (`ABORT`), a statement that
/// writes several rows keeps a journal of its own so that it can undo just itself, and
/// copied every page it touched there first (a quarter of the log's cache misses,
/// `docs/performance.md`). A batch is one transaction that is rolled back whole when any
/// of its statements fails, so undoing one statement alone was never needed.
pub(super) fn log_insert_sql(rows: usize, backend: Backend) -> &'static str {
    static SQLITE: OnceLock<Vec<String>> = OnceLock::new();
    static POSTGRES: OnceLock<Vec<String>> = OnceLock::new();
    let (cache, sigil, verb) = match backend {
        Backend::Sqlite => (&SQLITE, '?', "INSERT OR FAIL"),
        Backend::Postgres => (&POSTGRES, '$', "INSERT"),
    };
    let statements = cache.get_or_init(|| {
        (0..=LOG_INSERT_CHUNK.trailing_zeros())
            .map(|power| {
                let rows = 1usize << power;
                let instance = format!("{sigil}{}", log_instance_param(rows));
                let values: Vec<String> = (0..rows)
                    .map(|row| {
                        let params: Vec<String> = (1..=LOG_COLUMNS)
                            .map(|c| format!("{sigil}{}", row * LOG_COLUMNS + c))
                            .chain(std::iter::once(instance.clone()))
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!(
                    "{verb} INTO request_log (created_at, workspace_id, request_id, key_id, \
                     connection, method, path, status, latency_us, stripe_request_id, \
                     idempotency_key, outcome, operation, reason, via, client, instance) \
                     VALUES {}",
                    values.join(", ")
                )
            })
            .collect()
    });
    &statements[rows.trailing_zeros() as usize]
}

/// The number of the parameter that holds the serving instance in the INSERT of `rows`
/// entries ([`log_insert_sql`]): the one after every row's columns.
pub(super) fn log_instance_param(rows: usize) -> usize {
    rows * LOG_COLUMNS + 1
}

/// Columns bound per request log row.
pub(super) const LOG_COLUMNS: usize = 16;

/// The columns of a webhook endpoint, in the order of [`EndpointRow`].
pub(super) const SELECT_WEBHOOK_ENDPOINT: &str = "SELECT id, workspace_id, connection, \
    event_types, stripe_endpoint_id, created_at FROM webhook_endpoints";
/// A webhook endpoint row as both backends return it.
pub(super) type EndpointRow = (String, String, String, String, Option<String>, i64);
/// A webhook secret row: id, endpoint id, sealed secret, created, expires.
pub(super) type SecretRow = (String, String, Vec<u8>, i64, Option<i64>);

/// An [`EndpointRow`] as the domain record; unreadable event types (never written so)
/// read as "every type".
pub(super) fn endpoint_record(row: EndpointRow) -> super::WebhookEndpointRecord {
    let (id, workspace_id, connection, event_types, stripe_endpoint_id, created_at) = row;
    super::WebhookEndpointRecord {
        id: crate::ids::EndpointId::from_stored(id),
        workspace_id: crate::ids::WorkspaceId::from_stored(workspace_id),
        connection,
        event_types: serde_json::from_str(&event_types).unwrap_or_default(),
        stripe_endpoint_id,
        created_at,
    }
}

/// A [`SecretRow`] as the domain record (the secret stays sealed).
pub(super) fn secret_record(row: SecretRow) -> super::WebhookSecretRecord {
    let (id, endpoint_id, secret, created_at, expires_at) = row;
    super::WebhookSecretRecord {
        id,
        endpoint_id: crate::ids::EndpointId::from_stored(endpoint_id),
        secret: crate::crypto::Sealed::from_stored(secret),
        created_at,
        expires_at,
    }
}

pub(super) const SELECT_CONNECTION: &str = "SELECT id, workspace_id, name, provider, secret, \
    secret_hint, mode, key_kind, validation, created_at, updated_at FROM connections";
pub(super) const SELECT_KEY: &str = "SELECT id, workspace_id, name, prefix, hash, created_at, \
    last_used_at, revoked_at, role, scopes, expires_at FROM agent_keys";
pub(super) const SELECT_LOG: &str = "SELECT id, created_at, workspace_id, request_id, key_id, \
    connection, method, path, status, latency_us, stripe_request_id, idempotency_key, outcome, \
    operation, reason, via, client, instance FROM request_log";
/// The PostgreSQL advisory lock that serializes event inserts across instances (an
/// arbitrary constant: "agentgat" in ASCII).
pub(super) const EVENT_WRITER_LOCK: i64 = 0x6167_656e_7467_6174;
/// The PostgreSQL advisory lock that serializes request log inserts across instances, for
/// the same reason as [`EVENT_WRITER_LOCK`]: `logs tail` and every other reader that goes
/// on from the highest id it has seen would otherwise skip a batch that took its ids first
/// but committed after another instance's ("agentlog" in ASCII).
pub(super) const REQUEST_LOG_WRITER_LOCK: i64 = 0x6167_656e_746c_6f67;
/// Takes one of the writer locks above for the schema the tables are in (`$1` the lock), so
/// deployments sharing one database in several schemas do not wait for each other's
/// writes. Two schemas whose hashes collide only share a lock, which is still correct.
pub(super) const TAKE_WRITER_LOCK: &str =
    "SELECT pg_advisory_xact_lock($1 # hashtextextended(current_schema(), 0))";
pub(super) const BUMP_GENERATION: &str = "UPDATE state_generation SET value = value + 1";

/// The columns of an event, in the order of [`EventRow`].
pub(super) const SELECT_EVENT: &str = "SELECT seq, endpoint_id, workspace_id, event_id, \
    event_type, received_at, payload FROM events";
/// An event row as both backends return it (see [`SELECT_EVENT`]).
pub(super) type EventRow = (i64, String, String, String, String, i64, Vec<u8>);
/// Most events one retention statement deletes, so pruning a large backlog never holds
/// SQLite's write lock (or a PostgreSQL transaction) for long.
pub(super) const PRUNE_CHUNK: i64 = 1_000;
/// Deletes a chunk of the events received before `$1`, oldest first, through the
/// `received_at` index. The newest event is never deleted: SQLite gives a new row the number
/// after the highest one left, so deleting it would hand out its `seq` again, and cursors
/// (agents', push destinations') past it would skip the events that reuse it. (SQLite's
/// `AUTOINCREMENT` would rule reuse out too, but it takes rebuilding each table and costs
/// every insert of the request log a write of `sqlite_sequence`; pruning is the only delete
/// these tables have.)
pub(super) const PRUNE_EVENTS: &str = "DELETE FROM events WHERE seq IN (SELECT seq FROM events \
     WHERE received_at < $1 AND seq < (SELECT max(seq) FROM events) ORDER BY seq LIMIT $2)";
/// Deletes those of the request log's oldest `$2` entries (by id, the primary key, so no
/// index on the time is kept for retention's sake) created before `$1`. Ids follow the time
/// but for the writer's queue, so a chunk deleting less than `$2` has reached the retention's
/// edge. The newest entry stays, for the reason given at [`PRUNE_EVENTS`]: log cursors
/// (`logs tail`, the API's) must not see ids again.
pub(super) const PRUNE_REQUEST_LOG: &str = "DELETE FROM request_log WHERE id IN (SELECT id \
     FROM request_log WHERE id < (SELECT max(id) FROM request_log) ORDER BY id LIMIT $2) \
     AND created_at < $1";
/// [`PRUNE_REQUEST_LOG`] for the installation's audit.
pub(super) const PRUNE_INSTALLATION_AUDIT: &str = "DELETE FROM installation_audit WHERE id IN \
     (SELECT id FROM installation_audit WHERE id < (SELECT max(id) FROM installation_audit) \
     ORDER BY id LIMIT $2) AND created_at < $1";

/// An [`EventRow`] as the domain record.
pub(super) fn event_record(row: EventRow) -> super::EventRecord {
    let (seq, endpoint_id, workspace_id, event_id, event_type, received_at, payload) = row;
    super::EventRecord {
        seq,
        event: super::NewEvent {
            endpoint_id: crate::ids::EndpointId::from_stored(endpoint_id),
            workspace_id: crate::ids::WorkspaceId::from_stored(workspace_id),
            event_id,
            event_type,
            received_at,
            payload,
        },
    }
}

/// A value bound to one condition of a request log query.
pub(super) enum LogBind<'a> {
    /// Positions, times and the limit.
    Int(i64),
    /// The `status` column is a 32-bit integer on PostgreSQL.
    Status(i32),
    /// Workspace, key id, operation, Stripe request id and instance.
    Text(&'a str),
}

/// The request log SELECT for `query` in `workspace`: only the filters it sets become
/// conditions, each with its own numbered parameter, so one statement serves both backends
/// and no value is ever spliced into the SQL. Rows come newest first unless `after_id` is
/// set (a tail reads forward).
pub(super) fn log_select_sql<'a>(
    workspace: &'a str,
    query: &'a super::LogQuery,
) -> (String, Vec<LogBind<'a>>) {
    let mut binds = vec![LogBind::Text(workspace)];
    let mut conditions = vec!["workspace_id = $1".to_owned()];
    let filters = [
        ("id >", query.after_id.map(LogBind::Int)),
        ("id <", query.before_id.map(LogBind::Int)),
        (
            "key_id =",
            query.key_id.as_ref().map(|k| LogBind::Text(k.as_str())),
        ),
        (
            "status =",
            query.status.map(|s| LogBind::Status(i32::from(s))),
        ),
        ("operation =", query.operation.as_deref().map(LogBind::Text)),
        (
            "stripe_request_id =",
            query.stripe_request_id.as_deref().map(LogBind::Text),
        ),
        ("instance =", query.instance.as_deref().map(LogBind::Text)),
        ("created_at >=", query.since.map(LogBind::Int)),
        ("created_at <", query.until.map(LogBind::Int)),
    ];
    for (condition, value) in filters {
        if let Some(value) = value {
            binds.push(value);
            conditions.push(format!("{condition} ${}", binds.len()));
        }
    }
    let order = if query.after_id.is_some() {
        ""
    } else {
        " DESC"
    };
    binds.push(LogBind::Int(query.limit));
    let sql = format!(
        "{SELECT_LOG} WHERE {} ORDER BY id{order} LIMIT ${}",
        conditions.join(" AND "),
        binds.len()
    );
    (sql, binds)
}

/// Writes `impl Store for $store` over a `pool: sqlx::Pool<$db>` field, with the backend
/// tag given.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr) => {
        impl $store {
            /// Runs one UPDATE or DELETE that must touch a row, bumps the generation (so
            /// every cache sees the change) and writes the change's audit record, in one
            /// transaction; `NotFound` if no row matched.
            async fn change_one<'q>(
                &self,
                query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                if query.execute(&mut *tx).await?.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                sqlx::query(sql::BUMP_GENERATION).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            /// Begins a change's transaction with the change's audit record in the request
            /// log, so the change commits only with its record ([`crate::audit`]). The record
            /// comes first: on PostgreSQL it takes the log's writer lock (ids stay in commit
            /// order) before the change locks any row, the order the log's writer takes them
            /// in (the lock, then `agent_keys`), so the two cannot deadlock (`tests/it/audit.rs`,
            /// `a_change_waiting_for_the_log_writer_holds_no_row_the_writer_needs`).
            async fn begin_audited(
                &self,
                e: &RequestLogEntry,
            ) -> Result<sqlx::Transaction<'static, $db>, StoreError> {
                let mut tx = self.pool.begin().await?;
                if $backend == $crate::store::Backend::Postgres {
                    sqlx::query(sql::TAKE_WRITER_LOCK)
                        .bind(sql::REQUEST_LOG_WRITER_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(sql::log_insert_sql(1, $backend))
                    .bind(e.created_at)
                    .bind(e.workspace_id.as_str())
                    .bind(e.request_id.as_str())
                    .bind(e.key_id.as_str())
                    .bind(e.connection.as_str())
                    .bind(&*e.method)
                    .bind(e.path.as_str())
                    .bind(i32::from(e.status))
                    .bind(e.latency_us)
                    .bind(e.stripe_request_id.as_deref())
                    .bind(e.idempotency_key.as_deref())
                    .bind(&*e.outcome)
                    .bind(e.operation.as_deref())
                    .bind(e.reason.as_deref())
                    .bind(&*e.via)
                    .bind(e.client.map(|ip| ip.to_string()))
                    .bind(self.instance())
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }

            /// Runs `statement` (one of the `PRUNE_` statements: `$1` the time before which
            /// rows go, `$2` the chunk) until a run deletes less than a full chunk; returns how
            /// many rows went in all.
            async fn prune_in_chunks(
                &self,
                statement: &'static str,
                before: i64,
            ) -> Result<u64, StoreError> {
                let mut pruned = 0;
                loop {
                    let deleted = sqlx::query(statement)
                        .bind(before)
                        .bind(sql::PRUNE_CHUNK)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    pruned += deleted;
                    if deleted < sql::PRUNE_CHUNK as u64 {
                        return Ok(pruned);
                    }
                    // Let queued writers (ingest, the log's writer) in between chunks.
                    tokio::task::yield_now().await;
                }
            }

            /// Inserts a new key's row inside `tx`.
            async fn insert_key_row(
                tx: &mut sqlx::Transaction<'static, $db>,
                record: &AgentKeyRecord,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO agent_keys (id, workspace_id, name, prefix, hash, created_at, \
                     last_used_at, revoked_at, role, scopes, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(record.id.as_str())
                .bind(record.workspace_id.as_str())
                .bind(&record.name)
                .bind(&record.prefix)
                .bind(&record.hash)
                .bind(record.created_at)
                .bind(record.last_used_at)
                .bind(record.revoked_at)
                .bind(record.role.as_str())
                .bind(serde_json::to_string(&record.scopes).expect("scopes serialize to JSON"))
                .bind(record.expires_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn ensure_workspace(&self, name: &str) -> Result<Workspace, StoreError> {
                sqlx::query(
                    "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(WorkspaceId::generate().as_str())
                .bind(name)
                .bind(crate::time::now_millis())
                .execute(&self.pool)
                .await?;
                let row: sql::WorkspaceRow =
                    sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE name = $1")
                        .bind(name)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(row.into())
            }

            async fn insert_workspace(
                &self,
                name: &str,
                audit: &$crate::store::InstallationRecord,
            ) -> Result<Workspace, StoreError> {
                let mut tx = self.pool.begin().await?;
                self.insert_installation_row(&mut tx, audit).await?;
                let row: sql::WorkspaceRow = sqlx::query_as(
                    "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3) \
                     RETURNING id, name, created_at",
                )
                .bind(WorkspaceId::generate().as_str())
                .bind(name)
                .bind(crate::time::now_millis())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row.into())
            }

            async fn find_workspace(&self, name: &str) -> Result<Option<Workspace>, StoreError> {
                let row: Option<sql::WorkspaceRow> =
                    sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(Into::into))
            }

            async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
                let rows: Vec<sql::WorkspaceRow> =
                    sqlx::query_as("SELECT id, name, created_at FROM workspaces ORDER BY name")
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
                let value: Option<(String,)> =
                    sqlx::query_as("SELECT value FROM settings WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(value.map(|(v,)| v))
            }

            async fn insert_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2)")
                    .bind(name)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn generation(&self) -> Result<i64, StoreError> {
                let (value,): (i64,) = sqlx::query_as("SELECT value FROM state_generation")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(value)
            }

            async fn find_connection(
                &self,
                workspace: &WorkspaceId,
                name: &str,
            ) -> Result<Option<ConnectionRecord>, StoreError> {
                let sql = format!("{} WHERE workspace_id = $1 AND name = $2", sql::SELECT_CONNECTION);
                let row: Option<sql::ConnectionRow> = sqlx::query_as(&sql)
                    .bind(workspace.as_str())
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(Into::into))
            }

            async fn list_connections(
                &self,
                workspace: &WorkspaceId,
            ) -> Result<Vec<ConnectionRecord>, StoreError> {
                let sql = format!("{} WHERE workspace_id = $1 ORDER BY name", sql::SELECT_CONNECTION);
                let rows: Vec<sql::ConnectionRow> = sqlx::query_as(&sql)
                    .bind(workspace.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn save_connection(
                &self,
                record: &ConnectionRecord,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                sqlx::query(
                    "INSERT INTO connections (id, workspace_id, name, provider, secret, secret_hint, \
                     mode, key_kind, validation, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET secret = excluded.secret, \
                     secret_hint = excluded.secret_hint, mode = excluded.mode, \
                     key_kind = excluded.key_kind, validation = excluded.validation, \
                     updated_at = excluded.updated_at",
                )
                .bind(record.id.as_str())
                .bind(record.workspace_id.as_str())
                .bind(&record.name)
                .bind(&record.provider)
                .bind(record.secret.as_bytes())
                .bind(&record.secret_hint)
                .bind(&record.mode)
                .bind(&record.key_kind)
                .bind(record.validation)
                .bind(record.created_at)
                .bind(record.updated_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sql::BUMP_GENERATION).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_connection_validation(
                &self,
                workspace: &WorkspaceId,
                name: &str,
                enabled: bool,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                self.change_one(
                    sqlx::query(
                        "UPDATE connections SET validation = $1 WHERE workspace_id = $2 AND name = $3",
                    )
                    .bind(enabled)
                    .bind(workspace.as_str())
                    .bind(name),
                    audit,
                )
                .await
            }

            async fn delete_connection(
                &self,
                workspace: &WorkspaceId,
                name: &str,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                self.change_one(
                    sqlx::query("DELETE FROM connections WHERE workspace_id = $1 AND name = $2")
                        .bind(workspace.as_str())
                        .bind(name),
                    audit,
                )
                .await
            }

            async fn insert_key(
                &self,
                record: &AgentKeyRecord,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                Self::insert_key_row(&mut tx, record).await?;
                // New keys must not hide behind a cached "unknown key" answer.
                sqlx::query(sql::BUMP_GENERATION).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn rotate_key(
                &self,
                new: &AgentKeyRecord,
                old: &KeyId,
                old_expires_at: i64,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                let expired = sqlx::query(
                    "UPDATE agent_keys SET expires_at = $3 \
                     WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL",
                )
                .bind(new.workspace_id.as_str())
                .bind(old.as_str())
                .bind(old_expires_at)
                .execute(&mut *tx)
                .await?;
                if expired.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Self::insert_key_row(&mut tx, new).await?;
                sqlx::query(sql::BUMP_GENERATION).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_keys(
                &self,
                workspace: &WorkspaceId,
            ) -> Result<Vec<AgentKeyRecord>, StoreError> {
                let sql = format!("{} WHERE workspace_id = $1 ORDER BY created_at, id", sql::SELECT_KEY);
                let rows: Vec<sql::KeyRow> = sqlx::query_as(&sql)
                    .bind(workspace.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn find_key_by_hash(
                &self,
                hash: &[u8],
            ) -> Result<Option<AgentKeyRecord>, StoreError> {
                let sql = format!("{} WHERE hash = $1", sql::SELECT_KEY);
                let row: Option<sql::KeyRow> = sqlx::query_as(&sql)
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(Into::into))
            }

            async fn revoke_key(
                &self,
                workspace: &WorkspaceId,
                id: &KeyId,
                at: i64,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                self.change_one(
                    sqlx::query(
                        "UPDATE agent_keys SET revoked_at = COALESCE(revoked_at, $3) \
                         WHERE workspace_id = $1 AND id = $2",
                    )
                    .bind(workspace.as_str())
                    .bind(id.as_str())
                    .bind(at),
                    audit,
                )
                .await
            }

            async fn reserve_guardrail_totals(
                &self,
                workspace: &WorkspaceId,
                key: &KeyId,
                day: &str,
                amounts: &[($crate::policy::Money, i64)],
            ) -> Result<Option<$crate::policy::Money>, StoreError> {
                // One order for every request, so two PostgreSQL transactions never wait on
                // each other's rows in opposite orders.
                let mut ordered: Vec<&($crate::policy::Money, i64)> = amounts.iter().collect();
                ordered.sort_by(|a, b| a.0.currency.cmp(&b.0.currency));
                let mut tx = self.pool.begin().await?;
                for (money, limit) in ordered {
                    // The upsert only adds when `total + amount <= limit`, checked on the row
                    // as locked by the write, so concurrent reservations cannot both pass.
                    // Written as `total <= limit - amount` so that it cannot overflow.
                    let added = money.amount >= 0
                        && money.amount <= *limit
                        && sqlx::query(
                            "INSERT INTO guardrail_totals (key_id, day, currency, workspace_id, \
                             total) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (key_id, day, currency) DO UPDATE \
                             SET total = guardrail_totals.total + excluded.total \
                             WHERE guardrail_totals.total <= $6 - excluded.total",
                        )
                        .bind(key.as_str())
                        .bind(day)
                        .bind(&money.currency)
                        .bind(workspace.as_str())
                        .bind(money.amount)
                        .bind(*limit)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1;
                    if !added {
                        let current: Option<(i64,)> = sqlx::query_as(
                            "SELECT total FROM guardrail_totals \
                             WHERE key_id = $1 AND day = $2 AND currency = $3",
                        )
                        .bind(key.as_str())
                        .bind(day)
                        .bind(&money.currency)
                        .fetch_optional(&mut *tx)
                        .await?;
                        // Dropping the transaction rolls back what earlier currencies added.
                        return Ok(Some($crate::policy::Money {
                            currency: money.currency.clone(),
                            amount: current.map_or(0, |(total,)| total),
                        }));
                    }
                }
                tx.commit().await?;
                Ok(None)
            }

            async fn release_guardrail_totals(
                &self,
                workspace: &WorkspaceId,
                key: &KeyId,
                day: &str,
                amounts: &[$crate::policy::Money],
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for money in amounts {
                    sqlx::query(
                        "UPDATE guardrail_totals \
                         SET total = CASE WHEN total > $5 THEN total - $5 ELSE 0 END \
                         WHERE workspace_id = $1 AND key_id = $2 AND day = $3 AND currency = $4",
                    )
                    .bind(workspace.as_str())
                    .bind(key.as_str())
                    .bind(day)
                    .bind(&money.currency)
                    .bind(money.amount)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_guardrail_totals(
                &self,
                workspace: &WorkspaceId,
                day: &str,
            ) -> Result<Vec<(KeyId, $crate::policy::Money)>, StoreError> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT key_id, currency, total FROM guardrail_totals \
                     WHERE workspace_id = $1 AND day = $2 ORDER BY key_id, currency",
                )
                .bind(workspace.as_str())
                .bind(day)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(key, currency, amount)| {
                        (KeyId::from_stored(key), $crate::policy::Money { currency, amount })
                    })
                    .collect())
            }

            async fn insert_request_logs(
                &self,
                entries: Vec<RequestLogEntry>,
                key_uses: &[(KeyId, i64)],
                pace: LogPace,
            ) -> Result<(), StoreError> {
                if let Some(writer) = self.direct_log_writer() {
                    return writer.insert(entries, key_uses.to_vec(), pace).await;
                }
                let mut tx = self.pool.begin().await?;
                if $backend == $crate::store::Backend::Postgres {
                    // Ids in commit order (see the lock's documentation).
                    sqlx::query(sql::TAKE_WRITER_LOCK)
                        .bind(sql::REQUEST_LOG_WRITER_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                let mut rows = entries.into_iter();
                for size in sql::log_chunk_sizes(rows.len()) {
                    let mut query = sqlx::query(sql::log_insert_sql(size, $backend));
                    for e in rows.by_ref().take(size) {
                        query = query
                            .bind(e.created_at)
                            .bind(e.workspace_id.into_string())
                            .bind(e.request_id)
                            .bind(e.key_id.into_string())
                            .bind(e.connection)
                            .bind(e.method)
                            .bind(e.path)
                            .bind(i32::from(e.status))
                            .bind(e.latency_us)
                            .bind(e.stripe_request_id)
                            .bind(e.idempotency_key)
                            .bind(e.outcome)
                            .bind(e.operation)
                            .bind(e.reason)
                            .bind(e.via)
                            .bind(e.client.map(|ip| ip.to_string()));
                    }
                    query = query.bind(self.instance());
                    query.execute(&mut *tx).await?;
                }
                for (id, at) in key_uses {
                    sqlx::query(
                        "UPDATE agent_keys SET last_used_at = $2 \
                         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                    )
                    .bind(id.as_str())
                    .bind(*at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_request_logs(
                &self,
                workspace: &WorkspaceId,
                query: LogQuery,
            ) -> Result<Vec<RequestLogRecord>, StoreError> {
                let (statement, binds) = sql::log_select_sql(workspace.as_str(), &query);
                let mut select = sqlx::query_as::<_, sql::RequestLogRow>(&statement);
                for bind in binds {
                    select = match bind {
                        sql::LogBind::Int(value) => select.bind(value),
                        sql::LogBind::Status(value) => select.bind(value),
                        sql::LogBind::Text(value) => select.bind(value),
                    };
                }
                let mut rows = select.fetch_all(&self.pool).await?;
                if query.after_id.is_none() {
                    rows.reverse();
                }
                Ok(rows.into_iter().map(Into::into).collect())
            }

            // === events: pull, stream, retention ===

            async fn list_events(
                &self,
                endpoint: &$crate::ids::EndpointId,
                after_seq: i64,
                limit: i64,
                event_type: Option<&str>,
            ) -> Result<Vec<$crate::store::EventRecord>, StoreError> {
                let rows: Vec<sql::EventRow> = match event_type {
                    Some(event_type) => {
                        let statement = format!(
                            "{} WHERE endpoint_id = $1 AND seq > $2 AND event_type = $3 \
                             ORDER BY seq LIMIT $4",
                            sql::SELECT_EVENT
                        );
                        sqlx::query_as(&statement)
                            .bind(endpoint.as_str())
                            .bind(after_seq)
                            .bind(event_type)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    None => {
                        let statement = format!(
                            "{} WHERE endpoint_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                            sql::SELECT_EVENT
                        );
                        sqlx::query_as(&statement)
                            .bind(endpoint.as_str())
                            .bind(after_seq)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                Ok(rows.into_iter().map(sql::event_record).collect())
            }

            async fn newest_events(
                &self,
                endpoint: &$crate::ids::EndpointId,
                limit: i64,
            ) -> Result<Vec<$crate::store::EventRecord>, StoreError> {
                let statement = format!(
                    "{} WHERE endpoint_id = $1 ORDER BY seq DESC LIMIT $2",
                    sql::SELECT_EVENT
                );
                let rows: Vec<sql::EventRow> = sqlx::query_as(&statement)
                    .bind(endpoint.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().rev().map(sql::event_record).collect())
            }

            async fn last_event_seq(
                &self,
                endpoint: &$crate::ids::EndpointId,
            ) -> Result<Option<i64>, StoreError> {
                let (seq,): (Option<i64>,) =
                    sqlx::query_as("SELECT MAX(seq) FROM events WHERE endpoint_id = $1")
                        .bind(endpoint.as_str())
                        .fetch_one(&self.pool)
                        .await?;
                Ok(seq)
            }

            async fn event_activity(
                &self,
                endpoint: &$crate::ids::EndpointId,
                since: i64,
            ) -> Result<(i64, Option<i64>), StoreError> {
                let (recent,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM events WHERE endpoint_id = $1 AND received_at >= $2",
                )
                .bind(endpoint.as_str())
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                let last: Option<(i64,)> = sqlx::query_as(
                    "SELECT received_at FROM events WHERE endpoint_id = $1 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(endpoint.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok((recent, last.map(|(at,)| at)))
            }

            async fn find_event(
                &self,
                workspace: &WorkspaceId,
                event_id: &str,
            ) -> Result<Option<$crate::store::EventRecord>, StoreError> {
                let statement = format!(
                    // Through the endpoints, so the (endpoint_id, event_id) index serves.
                    "{} WHERE workspace_id = $1 AND event_id = $2 AND endpoint_id IN \
                     (SELECT id FROM webhook_endpoints WHERE workspace_id = $1) \
                     ORDER BY seq LIMIT 1",
                    sql::SELECT_EVENT
                );
                let row: Option<sql::EventRow> = sqlx::query_as(&statement)
                    .bind(workspace.as_str())
                    .bind(event_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(sql::event_record))
            }

            async fn prune_events(&self, received_before: i64) -> Result<u64, StoreError> {
                self.prune_in_chunks(sql::PRUNE_EVENTS, received_before).await
            }

            async fn prune_logs(
                &self,
                created_before: i64,
            ) -> Result<$crate::store::PrunedLogs, StoreError> {
                Ok($crate::store::PrunedLogs {
                    request_log: self
                        .prune_in_chunks(sql::PRUNE_REQUEST_LOG, created_before)
                        .await?,
                    installation_audit: self
                        .prune_in_chunks(sql::PRUNE_INSTALLATION_AUDIT, created_before)
                        .await?,
                })
            }

            // === webhook endpoints, their secrets, and ingest ===

            async fn insert_webhook_endpoint(
                &self,
                record: &$crate::store::WebhookEndpointRecord,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                sqlx::query(
                    "INSERT INTO webhook_endpoints (id, workspace_id, connection, event_types, \
                     stripe_endpoint_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(record.id.as_str())
                .bind(record.workspace_id.as_str())
                .bind(&record.connection)
                .bind(serde_json::to_string(&record.event_types).expect("strings serialize"))
                .bind(record.stripe_endpoint_id.as_deref())
                .bind(record.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_webhook_endpoints(
                &self,
                workspace: &WorkspaceId,
            ) -> Result<Vec<$crate::store::WebhookEndpointRecord>, StoreError> {
                let statement = format!(
                    "{} WHERE workspace_id = $1 ORDER BY created_at, id",
                    sql::SELECT_WEBHOOK_ENDPOINT
                );
                let rows: Vec<sql::EndpointRow> = sqlx::query_as(&statement)
                    .bind(workspace.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(sql::endpoint_record).collect())
            }

            async fn find_webhook_endpoint(
                &self,
                id: &$crate::ids::EndpointId,
            ) -> Result<Option<$crate::store::WebhookEndpointRecord>, StoreError> {
                let statement = format!("{} WHERE id = $1", sql::SELECT_WEBHOOK_ENDPOINT);
                let row: Option<sql::EndpointRow> = sqlx::query_as(&statement)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(sql::endpoint_record))
            }

            async fn delete_webhook_endpoint(
                &self,
                workspace: &WorkspaceId,
                id: &$crate::ids::EndpointId,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                // Writes first, so the transaction takes SQLite's write lock at its first
                // statement (waiting out other writers); a read first would fail at once
                // with SQLITE_BUSY if another connection committed in between.
                let mut tx = self.begin_audited(audit).await?;
                sqlx::query(
                    "DELETE FROM webhook_secrets WHERE endpoint_id IN \
                     (SELECT id FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2)",
                )
                .bind(workspace.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                let deleted = sqlx::query(
                    "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2",
                )
                .bind(workspace.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_webhook_stripe_id(
                &self,
                workspace: &WorkspaceId,
                id: &$crate::ids::EndpointId,
                stripe_endpoint_id: &str,
            ) -> Result<(), StoreError> {
                let updated = sqlx::query(
                    "UPDATE webhook_endpoints SET stripe_endpoint_id = $3 \
                     WHERE workspace_id = $1 AND id = $2",
                )
                .bind(workspace.as_str())
                .bind(id.as_str())
                .bind(stripe_endpoint_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn insert_webhook_secret(
                &self,
                record: &$crate::store::WebhookSecretRecord,
                expire_others_at: Option<i64>,
                audit: &RequestLogEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_audited(audit).await?;
                if let Some(at) = expire_others_at {
                    sqlx::query(
                        "UPDATE webhook_secrets SET expires_at = $2 \
                         WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                    )
                    .bind(record.endpoint_id.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO webhook_secrets (id, endpoint_id, secret, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&record.id)
                .bind(record.endpoint_id.as_str())
                .bind(record.secret.as_bytes())
                .bind(record.created_at)
                .bind(record.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_active_webhook_secrets(
                &self,
                endpoint: &$crate::ids::EndpointId,
                now: i64,
            ) -> Result<Vec<$crate::store::WebhookSecretRecord>, StoreError> {
                let rows: Vec<sql::SecretRow> = sqlx::query_as(
                    "SELECT id, endpoint_id, secret, created_at, expires_at FROM webhook_secrets \
                     WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
                     ORDER BY created_at DESC, id",
                )
                .bind(endpoint.as_str())
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(sql::secret_record).collect())
            }

            async fn insert_events(
                &self,
                events: &[$crate::store::NewEvent],
            ) -> Result<Vec<Option<i64>>, StoreError> {
                let mut conn = self.events_pool().acquire().await?;
                let result: Result<Vec<Option<i64>>, StoreError> = async {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    if $backend == $crate::store::Backend::Postgres {
                        // Identity values are handed out at insert but seen at commit; one
                        // event writer at a time makes cursors visible in order, so a reader
                        // that moved past a cursor never misses a lower one committed later.
                        sqlx::query(sql::TAKE_WRITER_LOCK)
                            .bind(sql::EVENT_WRITER_LOCK)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let mut seqs = Vec::with_capacity(events.len());
                    for event in events {
                        let seq: Option<(i64,)> = sqlx::query_as(
                            "INSERT INTO events (endpoint_id, workspace_id, event_id, event_type, \
                             received_at, payload) VALUES ($1, $2, $3, $4, $5, $6) \
                             ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING seq",
                        )
                        .bind(event.endpoint_id.as_str())
                        .bind(event.workspace_id.as_str())
                        .bind(&event.event_id)
                        .bind(&event.event_type)
                        .bind(event.received_at)
                        .bind(&event.payload)
                        .fetch_optional(&mut *tx)
                        .await?;
                        seqs.push(seq.map(|(seq,)| seq));
                    }
                    tx.commit().await?;
                    Ok(seqs)
                }
                .await;
                if result.is_err() {
                    // A failed commit can leave the connection inside its transaction (SQLite
                    // after a write error such as a full disk); reused, its later "commits"
                    // would only release savepoints and acknowledge events never stored.
                    conn.close_on_drop();
                }
                result
            }

            async fn event_commits_are_durable(&self) -> Result<bool, StoreError> {
                self.durable_event_commits().await
            }
        }
    };
}

pub(super) use impl_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_for_n_rows_has_a_parameter_per_column_and_row_and_one_instance() {
        for rows in [1, 2, 16, LOG_INSERT_CHUNK] {
            let instance = log_instance_param(rows);
            for (backend, sigil) in [(Backend::Postgres, "$"), (Backend::Sqlite, "?")] {
                let sql = log_insert_sql(rows, backend);
                assert_eq!(
                    sql.matches(sigil).count(),
                    rows * (LOG_COLUMNS + 1),
                    "{rows}"
                );
                let tuples: Vec<&str> = sql.split("), (").collect();
                assert_eq!(tuples.len(), rows);
                for (row, tuple) in tuples.iter().enumerate() {
                    let first = format!("{sigil}{}, ", row * LOG_COLUMNS + 1);
                    let last = format!("{sigil}{}, {sigil}{instance}", (row + 1) * LOG_COLUMNS);
                    assert!(tuple.contains(&first) && tuple.contains(&last), "{tuple}");
                }
            }
        }
    }

    #[test]
    fn log_filters_become_numbered_parameters_in_order() {
        let query = super::super::LogQuery {
            limit: 10,
            before_id: Some(40),
            status: Some(403),
            since: Some(1),
            ..Default::default()
        };
        let (sql, binds) = log_select_sql("ws_1", &query);
        assert!(sql.ends_with(
            "WHERE workspace_id = $1 AND id < $2 AND status = $3 AND created_at >= $4 \
             ORDER BY id DESC LIMIT $5"
        ));
        assert_eq!(binds.len(), 5);
    }

    #[test]
    fn log_chunks_are_powers_of_two_that_add_up() {
        for len in [0, 1, 3, 511, 512, 513, 1200] {
            let sizes: Vec<usize> = log_chunk_sizes(len).collect();
            assert_eq!(sizes.iter().sum::<usize>(), len);
            assert!(sizes
                .iter()
                .all(|s| s.is_power_of_two() && *s <= LOG_INSERT_CHUNK));
        }
    }
}
