//! The request log, written off the hot path: requests hand their entry to a bounded queue
//! and a single writer stores them in batches (one transaction per batch), together with
//! each key's `last_used_at`. A writer that falls far behind stops offering its core to
//! other threads until it has caught up ([`LogPace`]); if even so the queue fills, entries
//! are dropped and counted in `agentgate_request_log_dropped_total` rather than slowing
//! traffic.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::Method;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::ids::KeyId;
use crate::metrics::Metrics;
use crate::store::{LogPace, RequestLogEntry, Store};
use crate::webhooks::ingest::INGEST_VIA;

/// Entries waiting for the writer before new ones are dropped.
const QUEUE_CAPACITY: usize = 65_536;
/// Entries still waiting, once a batch is taken, from which that batch is written at
/// [`LogPace::CatchUp`]: half the queue, about half a second at the request rates of the
/// bench. Below it the writer offers its core between rows, which the tail latency needs.
/// Above it those offers had starved the writer on a saturated host until the queue
/// overflowed (`docs/performance.md`, the run of 2026-12-07, night), so it writes straight
/// through.
const CATCH_UP_BACKLOG: usize = QUEUE_CAPACITY / 2;
/// Entries per write, so per transaction. A commit writes all the pages its rows touched
/// in one run of system calls that nothing interrupts, and a request woken on the writer's
/// core waits it out: a commit of 4,096 rows took 1.0-1.1 ms of CPU at 32 connections, and
/// the writer reaches this size whenever it falls behind its window. At 512 the run is
/// about an eighth of that (`docs/performance.md`, the run of 2026-12-06, midday).
const MAX_BATCH: usize = 512;
/// How long the writer lets entries gather before writing a partial batch. A longer window
/// spreads each commit's fixed cost over more rows, but its commit is one longer run of
/// SQLite's thread, which a request woken on the same core waits out: 100 ms saved about a
/// fifth of the writer's CPU at 32 connections and made the one-connection p99 worse
/// (`docs/performance.md`), so the window stays short.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// `last_used_at` is moved at most this often per key.
const LAST_USED_RESOLUTION_MS: i64 = 1_000;

/// A method's name for a log entry: the standard ones as static text, so recording a
/// request allocates nothing for it.
pub fn method_name(method: &Method) -> Cow<'static, str> {
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::DELETE, "DELETE"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    match STANDARD.iter().find(|(standard, _)| standard == method) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(method.as_str().to_owned()),
    }
}

/// The sending side, shared by every request.
#[derive(Clone)]
pub struct RequestLogger {
    tx: mpsc::Sender<RequestLogEntry>,
    metrics: Arc<Metrics>,
}

impl RequestLogger {
    /// Queues an entry without waiting; drops (and counts) it if the queue is full.
    pub fn record(&self, entry: RequestLogEntry) {
        if self.tx.try_send(entry).is_err() {
            self.metrics.log_dropped.inc();
        }
    }
}

/// The writer task; [`RequestLogWriter::stop`] writes what is queued and ends it.
pub struct RequestLogWriter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RequestLogWriter {
    /// Writes everything queued so far, then ends the writer.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "request log writer failed");
        }
    }
}

/// Starts the writer and returns the logger requests use.
pub fn spawn(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> (RequestLogger, RequestLogWriter) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let (stop, stopped) = oneshot::channel();
    let writer = Writer {
        store,
        metrics: metrics.clone(),
        last_used: HashMap::new(),
    };
    let task = tokio::spawn(writer.run(rx, stopped));
    (
        RequestLogger { tx, metrics },
        RequestLogWriter { stop, task },
    )
}

struct Writer {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    last_used: HashMap<KeyId, i64>,
}

impl Writer {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<RequestLogEntry>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                received = rx.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                }
                _ = &mut stopped => break,
            }
            if batch.len() < MAX_BATCH {
                tokio::select! {
                    _ = tokio::time::sleep(BATCH_WINDOW) => {}
                    _ = &mut stopped => break,
                }
                fill(&mut rx, &mut batch);
            }
            let pace = pace(rx.len());
            if pace == LogPace::CatchUp {
                self.metrics.log_catch_up_batches.inc();
            }
            self.write(&mut batch, pace).await;
        }
        // What is left is written as fast as it can be: the server is stopping.
        rx.close();
        loop {
            fill(&mut rx, &mut batch);
            if batch.is_empty() {
                break;
            }
            self.write(&mut batch, LogPace::CatchUp).await;
        }
    }

    async fn write(&mut self, batch: &mut Vec<RequestLogEntry>, pace: LogPace) {
        let uses = key_uses(&mut self.last_used, batch);
        // The next batch starts with room for as many entries as this one: growing a
        // buffer of hundreds of entries from empty copies it several times.
        let entries = std::mem::replace(batch, Vec::with_capacity(batch.len()));
        let count = entries.len();
        match self.store.insert_request_logs(entries, &uses, pace).await {
            Ok(()) => {
                self.metrics.log_written.inc_by(count as u64);
            }
            Err(e) => {
                self.metrics.log_write_failures.inc();
                self.metrics.log_dropped.inc_by(count as u64);
                for (key, _) in &uses {
                    self.last_used.remove(key);
                }
                tracing::warn!(error = %e, entries = count, "could not store request log entries");
            }
        }
    }
}

/// The keys whose last use moved by at least the resolution since last written. A
/// revoked or expired key's refused attempts are logged but are not uses, and a webhook
/// delivery names an endpoint, not a key.
///
/// A batch holds runs of entries from one key (an agent's requests come together), so
/// each run's latest use is found by comparing key ids and only the run is hashed:
/// hashing every entry's key id (SipHash) was more than half of the runtime thread's work
/// on a batch (`docs/performance.md`, the run of 2026-12-06, midday).
fn key_uses(last_used: &mut HashMap<KeyId, i64>, batch: &[RequestLogEntry]) -> Vec<(KeyId, i64)> {
    let mut latest: HashMap<&KeyId, i64> = HashMap::new();
    let mut note = |key, at: i64| {
        let latest = latest.entry(key).or_insert(at);
        *latest = (*latest).max(at);
    };
    let authenticated = |entry: &&RequestLogEntry| {
        entry.via != INGEST_VIA
            && !entry
                .reason
                .as_deref()
                .is_some_and(|reason| reason.starts_with("api_key_"))
    };
    let mut run: Option<(&KeyId, i64)> = None;
    for entry in batch.iter().filter(authenticated) {
        match &mut run {
            Some((key, at)) if **key == entry.key_id => *at = (*at).max(entry.created_at),
            _ => {
                if let Some((key, at)) = run.replace((&entry.key_id, entry.created_at)) {
                    note(key, at);
                }
            }
        }
    }
    if let Some((key, at)) = run {
        note(key, at);
    }
    let mut uses = Vec::new();
    for (key, at) in latest {
        let written = last_used.get(key).copied().unwrap_or(i64::MIN);
        if at >= written.saturating_add(LAST_USED_RESOLUTION_MS) {
            last_used.insert(key.clone(), at);
            uses.push((key.clone(), at));
        }
    }
    uses
}

/// The pace of a batch taken with `backlog` entries still queued behind it.
fn pace(backlog: usize) -> LogPace {
    if backlog >= CATCH_UP_BACKLOG {
        LogPace::CatchUp
    } else {
        LogPace::Share
    }
}

/// Takes what is queued, without waiting, until the batch is full. `recv_many` frees the
/// queue's slots in one step for all it takes; `try_recv` took the queue's lock once per
/// entry.
fn fill(rx: &mut mpsc::Receiver<RequestLogEntry>, batch: &mut Vec<RequestLogEntry>) {
    while batch.len() < MAX_BATCH {
        let room = MAX_BATCH - batch.len();
        match rx.recv_many(batch, room).now_or_never() {
            Some(received) if received > 0 => {}
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_static_text_and_others_keep_their_name() {
        for method in [Method::GET, Method::POST, Method::DELETE, Method::PATCH] {
            let name = method_name(&method);
            assert!(matches!(name, Cow::Borrowed(_)), "{method}");
            assert_eq!(name, method.as_str());
        }
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_name(&custom), Cow::<str>::Owned("PURGE".into()));
    }

    fn entry(key: &str, created_at: i64, reason: Option<&str>) -> RequestLogEntry {
        RequestLogEntry {
            created_at,
            request_id: format!("agr_{created_at}"),
            key_id: KeyId::from_stored(key.into()),
            reason: reason.map(Into::into),
            ..RequestLogEntry::example()
        }
    }

    fn sorted(mut uses: Vec<(KeyId, i64)>) -> Vec<(String, i64)> {
        uses.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        uses.into_iter()
            .map(|(key, at)| (key.as_str().to_owned(), at))
            .collect()
    }

    /// Each key's latest use in the batch, whether its entries come in one run or are
    /// interleaved with another key's, out of order in time, or after a refusal.
    #[test]
    fn key_uses_are_each_keys_latest_authenticated_use() {
        let batch = [
            entry("key_a", 7_000, None),
            entry("key_a", 5_000, None),
            entry("key_b", 6_000, None),
            entry("key_a", 6_500, None),
            entry("key_b", 9_000, Some("api_key_revoked")),
            entry("key_c", 8_000, Some("api_key_expired")),
            entry("key_b", 5_500, None),
            RequestLogEntry {
                via: INGEST_VIA.into(),
                ..entry("whe_d", 9_500, None)
            },
        ];
        let mut written = HashMap::new();
        assert_eq!(
            sorted(key_uses(&mut written, &batch)),
            [("key_a".to_owned(), 7_000), ("key_b".to_owned(), 6_000)],
            "refused attempts are not uses; key_c has none, nor the endpoint Stripe delivered to"
        );
    }

    /// Batches taken with at least [`CATCH_UP_BACKLOG`] entries queued behind them are
    /// written straight through, the rest offering the core, and nothing is lost: with 20
    /// full batches more than that queued before the writer first runs, exactly the first
    /// 20 are catch-up batches, and every entry is stored.
    #[tokio::test]
    async fn a_writer_far_behind_catches_up_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let store = crate::store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let (logger, writer) = spawn(store, metrics.clone());
        let queued = CATCH_UP_BACKLOG + 20 * MAX_BATCH;
        // The writer's task has not run yet: the test's runtime has one thread, and it
        // runs the task only at the first await below.
        for i in 0..queued {
            logger.record(entry("key_a", i as i64, None));
        }
        let all_written = async {
            while metrics.log_written.get() < queued as u64 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all_written)
            .await
            .expect("the writer stores the whole backlog");
        writer.stop().await;
        assert_eq!(metrics.log_dropped.get(), 0);
        assert_eq!(metrics.log_catch_up_batches.get(), 20);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let stored: usize = conn
            .query_row("SELECT count(*) FROM request_log", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, queued);
    }

    #[test]
    fn pace_turns_to_catch_up_at_the_backlog() {
        assert_eq!(pace(0), LogPace::Share);
        assert_eq!(pace(CATCH_UP_BACKLOG - 1), LogPace::Share);
        assert_eq!(pace(CATCH_UP_BACKLOG), LogPace::CatchUp);
        assert_eq!(pace(QUEUE_CAPACITY), LogPace::CatchUp);
    }

    /// A key's use is written again only once it has moved by the resolution.
    #[test]
    fn key_uses_wait_for_the_resolution() {
        let mut written = HashMap::new();
        assert_eq!(
            key_uses(&mut written, &[entry("key_a", 10_000, None)]).len(),
            1
        );
        let soon = 10_000 + LAST_USED_RESOLUTION_MS - 1;
        assert!(key_uses(&mut written, &[entry("key_a", soon, None)]).is_empty());
        let later = 10_000 + LAST_USED_RESOLUTION_MS;
        assert_eq!(
            sorted(key_uses(&mut written, &[entry("key_a", later, None)])),
            [("key_a".to_owned(), later)]
        );
    }
}
