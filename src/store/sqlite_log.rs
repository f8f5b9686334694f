//! The request log's writer on a SQLite file: its own connection, driven directly with
//! rusqlite on a blocking thread, one batch at a time.
//!
//! Why not sqlx, like the rest of the store: sqlx runs each SQLite connection on a thread of
//! its own and hands it one statement at a time, so every statement of a batch cost two
//! thread wake-ups, and sqlx resets, clears and rebinds every value per statement. Measured
//! on the same 64,000 rows (`docs/performance.md`), that was 7.7 µs of CPU a row against
//! 2.3-2.8 µs here, and the request log is written once for every proxied request. The
//! schema, the migrations and every read stay with sqlx; this connection only inserts rows
//! and moves `last_used_at`, the same statements the sqlx path runs.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{CachedStatement, Connection, OpenFlags};

use super::sql::{self, log_chunk_sizes};
use super::{Backend, LogPace, RequestLogEntry, StoreError};
use crate::ids::KeyId;

/// SQLite virtual-machine steps between two offers of the writer's core to other threads:
/// about two rows of an insert (one row is about 54 steps), a few microseconds of work. On a
/// busy two-core host the threads woken on the writer's core wait out its runs: offers every
/// two rows gained 3-4% of throughput over one after each 32-row statement, and no offers at
/// all cost 5-10% (`docs/performance.md`, the run of 2026-12-06 morning).
const STEPS_BETWEEN_YIELDS: std::os::raw::c_int = 100;

/// WAL pages after which a commit of the log's connection checkpoints the WAL into the
/// database file (SQLite's default is 1,000). A checkpoint costs about 8 µs of CPU a page
/// here, syncs included, in one run the progress handler cannot break, so at 1,000 pages it
/// held a core for 2-4 ms; at 100 it is a tenth of that, ten times as often
/// (`docs/performance.md`, the run of 2026-12-06, midday).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 100;

/// Writes request log batches to one SQLite file on a connection of its own.
pub struct SqliteLogWriter {
    path: PathBuf,
    busy_timeout: Duration,
    /// The serving instance every row names.
    instance: Option<Arc<str>>,
    /// Opened on the first batch (the CLI never writes the log), dropped after an error so
    /// the next batch starts on a fresh connection.
    connection: Arc<Mutex<Option<Connection>>>,
}

impl SqliteLogWriter {
    /// A writer for the database file at `path`, which the store has created and migrated,
    /// whose rows name `instance`.
    pub fn new(path: PathBuf, busy_timeout: Duration, instance: Option<String>) -> Self {
        Self {
            path,
            busy_timeout,
            instance: instance.map(Arc::from),
            connection: Arc::new(Mutex::new(None)),
        }
    }

    /// Inserts `entries` and moves the keys' `last_used_at`, in one transaction, on a
    /// blocking thread so the runtime's threads never wait for the disk, at `pace` (see
    /// [`set_pace`]).
    pub async fn insert(
        &self,
        entries: Vec<RequestLogEntry>,
        key_uses: Vec<(KeyId, i64)>,
        pace: LogPace,
    ) -> Result<(), StoreError> {
        let connection = self.connection.clone();
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        let instance = self.instance.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => slot.insert(open(&path, busy_timeout)?),
            };
            set_pace(conn, pace);
            let written = write_batch(conn, &entries, &key_uses, instance.as_deref());
            if written.is_err() {
                *slot = None;
            }
            written
        })
        .await
        .map_err(|_| StoreError::Backend(sqlx::Error::WorkerCrashed))?
        .map_err(StoreError::SqliteLog)
    }
}

/// The log's connection, with the settings the sqlx pool's connections have (the file is
/// already in WAL mode, which the pool set when the store opened it), short WAL checkpoints
/// ([`WAL_AUTOCHECKPOINT_PAGES`]).
fn open(path: &std::path::Path, busy_timeout: Duration) -> Result<Connection, rusqlite::Error> {
    // Never created here: a database file that has gone is an error to report, not an
    // empty file to fill with rows no migration made a table for.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(conn)
}

/// Sets how the next batch's statements use the thread's core. At [`LogPace::Share`]
/// SQLite's progress handler offers the core to whatever waits for it every
/// [`STEPS_BETWEEN_YIELDS`] steps; at [`LogPace::CatchUp`] there is no handler and the
/// statements run straight through. The handler never interrupts a statement.
fn set_pace(conn: &Connection, pace: LogPace) {
    match pace {
        LogPace::Share => conn.progress_handler(
            STEPS_BETWEEN_YIELDS,
            Some(|| {
                std::thread::yield_now();
                false
            }),
        ),
        LogPace::CatchUp => conn.progress_handler(STEPS_BETWEEN_YIELDS, None::<fn() -> bool>),
    }
}

/// One transaction: the rows in statements of at most [`sql::LOG_INSERT_CHUNK`] rows, each
/// naming `instance`, then the keys' last use. Within the statements of a batch at [`LogPace::Share`] the connection's
/// progress handler offers the thread's core to whatever is waiting for it (see
/// [`set_pace`]), so a request queued behind the writer can have the core after a couple of
/// rows rather than after the batch (`docs/performance.md`, "SQLite's long runs"). The
/// commit and its WAL checkpoint run without such offers.
fn write_batch(
    conn: &mut Connection,
    entries: &[RequestLogEntry],
    key_uses: &[(KeyId, i64)],
    instance: Option<&str>,
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    let mut rows = entries.iter();
    // The statement is kept while the chunk size repeats (sizes come largest first): each
    // return to rusqlite's cache cleared all 513 bindings of a 32-row chunk, which the next
    // chunk binds over anyway (about 370 instructions a row).
    let mut held: Option<(usize, CachedStatement<'_>)> = None;
    let mut client = ClientText::default();
    for size in log_chunk_sizes(entries.len()) {
        let insert = match &mut held {
            Some((held_size, insert)) if *held_size == size => insert,
            slot => {
                let insert = tx.prepare_cached(sql::log_insert_sql(size, Backend::Sqlite))?;
                &mut slot.insert((size, insert)).1
            }
        };
        for (index, entry) in rows.by_ref().take(size).enumerate() {
            bind_row(insert, index * sql::LOG_COLUMNS, entry, &mut client)?;
        }
        insert.raw_bind_parameter(sql::log_instance_param(size), instance)?;
        insert.raw_execute()?;
    }
    drop(held);
    let mut touch = tx.prepare_cached(
        "UPDATE agent_keys SET last_used_at = ?2 \
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
    )?;
    for (id, at) in key_uses {
        touch.execute((id.as_str(), at))?;
    }
    drop(touch);
    tx.commit()
}

/// Binds one row's columns, in the order of [`sql::log_insert_sql`], after `offset`
/// parameters of the rows before it; `client` keeps the text of the last address bound.
fn bind_row(
    insert: &mut CachedStatement<'_>,
    offset: usize,
    e: &RequestLogEntry,
    client: &mut ClientText,
) -> Result<(), rusqlite::Error> {
    let at = |column: usize| offset + column;
    insert.raw_bind_parameter(at(1), e.created_at)?;
    insert.raw_bind_parameter(at(2), e.workspace_id.as_str())?;
    insert.raw_bind_parameter(at(3), e.request_id.as_str())?;
    insert.raw_bind_parameter(at(4), e.key_id.as_str())?;
    insert.raw_bind_parameter(at(5), e.connection.as_str())?;
    insert.raw_bind_parameter(at(6), &*e.method)?;
    insert.raw_bind_parameter(at(7), e.path.as_str())?;
    insert.raw_bind_parameter(at(8), e.status)?;
    insert.raw_bind_parameter(at(9), e.latency_us)?;
    insert.raw_bind_parameter(at(10), e.stripe_request_id.as_deref())?;
    insert.raw_bind_parameter(at(11), e.idempotency_key.as_deref())?;
    insert.raw_bind_parameter(at(12), &*e.outcome)?;
    insert.raw_bind_parameter(at(13), e.operation.as_deref())?;
    insert.raw_bind_parameter(at(14), e.reason.as_deref())?;
    insert.raw_bind_parameter(at(15), &*e.via)?;
    match e.client {
        Some(ip) => insert.raw_bind_parameter(at(16), client.text(ip))?,
        None => insert.raw_bind_parameter(at(16), rusqlite::types::Null)?,
    }
    Ok(())
}

/// The text of the last client address a batch bound. An agent's requests come from one
/// address, so a batch's rows mostly repeat it, and formatting an address for every row
/// cost about 1,500 instructions a request (`bench/instructions.sh`); SQLite copies what
/// is bound, so the text can be reused.
#[derive(Default)]
struct ClientText {
    address: Option<IpAddr>,
    text: String,
}

impl ClientText {
    /// `address` as text, formatted only when it differs from the last one.
    fn text(&mut self, address: IpAddr) -> &str {
        if self.address != Some(address) {
            self.text.clear();
            write!(self.text, "{address}").expect("writing to a String cannot fail");
            self.address = Some(address);
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_follows_the_address_it_is_given() {
        let mut client = ClientText::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        assert_eq!(client.text(a), "10.0.0.1");
        assert_eq!(client.text(a), "10.0.0.1");
        assert_eq!(client.text(b), "::1");
        assert_eq!(client.text(a), "10.0.0.1");
    }

    /// `len` entries with request ids `agr_0`, `agr_1`, ..., except that the entry at
    /// `refused` gets `agr_refused`.
    fn entries(len: usize, refused: Option<usize>) -> Vec<RequestLogEntry> {
        (0..len)
            .map(|i| RequestLogEntry {
                request_id: match refused == Some(i) {
                    true => "agr_refused".into(),
                    false => format!("agr_{i}"),
                },
                ..RequestLogEntry::example()
            })
            .collect()
    }

    /// A store's file, created and migrated, and a read connection on it.
    async fn migrated(dir: &tempfile::TempDir) -> (std::path::PathBuf, Connection) {
        let path = dir.path().join("log.db");
        let url = format!("sqlite://{}", path.display());
        drop(
            super::super::sqlite::SqliteStore::open(&url, None)
                .await
                .unwrap(),
        );
        let conn = Connection::open(&path).unwrap();
        (path, conn)
    }

    fn stored_ids(conn: &Connection) -> Vec<String> {
        let mut query = conn
            .prepare("SELECT request_id FROM request_log ORDER BY id")
            .unwrap();
        let ids = query.query_map([], |row| row.get(0)).unwrap();
        ids.map(Result::unwrap).collect()
    }

    /// The progress handler never interrupts, whether it offers the core or not: a batch
    /// whose statements run it about a hundred times (some 54 steps a row) is stored whole
    /// and in order at either pace, one after the other on the same connection.
    #[tokio::test]
    async fn a_batch_the_progress_handler_runs_through_is_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = migrated(&dir).await;
        let len = 200;
        assert!(len * 54 >= 100 * STEPS_BETWEEN_YIELDS as usize);
        let writer = SqliteLogWriter::new(path, Duration::from_secs(5), Some("gw-1".into()));
        let mut expected = Vec::new();
        for pace in [LogPace::Share, LogPace::CatchUp, LogPace::Share] {
            let batch = entries(len, None);
            expected.extend(batch.iter().map(|entry| entry.request_id.clone()));
            writer.insert(batch, Vec::new(), pace).await.unwrap();
            assert_eq!(stored_ids(&conn), expected, "{pace:?}");
        }
        let instances: Vec<(Option<String>, usize)> = conn
            .prepare("SELECT instance, count(*) FROM request_log GROUP BY instance")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            instances,
            [(Some("gw-1".to_owned()), 3 * len)],
            "every row names it"
        );
    }

    /// A batch is all or nothing: a row refused in its second statement leaves neither that
    /// statement's earlier rows nor the first statement's (the insert is `INSERT OR FAIL`,
    /// which stops at the refused row without undoing the statement's earlier rows, so the
    /// transaction's rollback is what undoes them).
    #[tokio::test]
    async fn a_batch_with_a_refused_row_stores_none_of_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = migrated(&dir).await;
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON request_log \
             WHEN NEW.request_id = 'agr_refused' BEGIN SELECT RAISE(FAIL, 'refused'); END",
        )
        .unwrap();
        let writer = SqliteLogWriter::new(path.clone(), Duration::from_secs(5), None);
        let refused = writer
            .insert(entries(40, Some(35)), Vec::new(), LogPace::Share)
            .await;
        assert!(
            matches!(refused, Err(StoreError::SqliteLog(_))),
            "{refused:?}"
        );
        assert!(
            stored_ids(&conn).is_empty(),
            "nothing of the refused batch is stored"
        );
        writer
            .insert(entries(40, None), Vec::new(), LogPace::Share)
            .await
            .unwrap();
        assert_eq!(
            stored_ids(&conn).len(),
            40,
            "the next batch is written on a fresh connection"
        );
    }

    /// The log's connection checkpoints the WAL after [`WAL_AUTOCHECKPOINT_PAGES`], not after
    /// SQLite's default 1,000, and keeps the pool's durability setting.
    #[tokio::test]
    async fn the_log_connection_checkpoints_short() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = migrated(&dir).await;
        let conn = open(&path, Duration::from_secs(5)).unwrap();
        let pages: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
            .unwrap();
        assert_eq!(pages, WAL_AUTOCHECKPOINT_PAGES);
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL");
    }

    #[tokio::test]
    async fn a_missing_database_file_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.db");
        let writer = SqliteLogWriter::new(path.clone(), Duration::from_millis(10), None);
        let written = writer
            .insert(vec![RequestLogEntry::example()], Vec::new(), LogPace::Share)
            .await;
        assert!(
            matches!(written, Err(StoreError::SqliteLog(_))),
            "{written:?}"
        );
        assert!(!path.exists());
    }
}
