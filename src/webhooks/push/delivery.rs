//! The two background tasks of push, one each per process, safe to run in several instances
//! on one database:
//!
//! - **fan-out** turns stored events into delivery rows, one per matching destination. It
//!   wakes on the [`EventBus`] and on a timer (events stored by another instance or the
//!   CLI), and moves each destination's cursor in the same transaction that creates the
//!   rows, so a restart resumes where it stopped.
//! - **delivery** leases due deliveries (`locked_until`), POSTs each with Standard Webhooks
//!   headers, and records the attempt and what follows: success, a retry at the next step
//!   of the [`RetrySchedule`], or failure when the schedule is spent. An instance that dies
//!   mid-attempt leaves its lease to expire; the attempt is then made again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use tokio::sync::{broadcast, watch, Notify};

use super::signing::{DestinationSecret, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use super::ssrf::{self, DestinationUrl};
use crate::crypto::{Sealer, SecretPurpose};
use crate::ids::DeliveryId;
use crate::store::push::{
    AttemptOutcome, DeliveryJob, DeliveryState, DestinationRecord, NewDelivery,
};
use crate::store::Store;
use crate::time::Clock;
use crate::webhooks::EventBus;

/// When a failed delivery is tried again: after the n-th failed attempt, wait `delays[n-1]`
/// (then `then_every` once the list is spent), each stretched or shrunk by up to `jitter`
/// (a fraction), and give up once the next attempt would fall later than `give_up_after`
/// from the delivery's creation.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySchedule {
    /// Waits after the first, second, ... failed attempt.
    pub delays: Vec<Duration>,
    /// The wait after every later failure.
    pub then_every: Duration,
    /// No attempt is scheduled later than this after the delivery was created.
    pub give_up_after: Duration,
    /// Each wait varies randomly by up to this fraction either way, so deliveries that
    /// failed together do not retry together.
    pub jitter: f64,
}

impl RetrySchedule {
    /// The documented schedule (`docs/push.md`): 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h,
    /// 6 h, then every 12 h, for 3 days: 14 attempts in all.
    pub fn standard() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            delays: vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                minutes(2),
                minutes(10),
                minutes(30),
                minutes(60),
                minutes(180),
                minutes(360),
            ],
            then_every: minutes(720),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            jitter: 0.2,
        }
    }

    /// The same shape with every duration divided by `factor`, for tests that must not
    /// wait for real backoff.
    pub fn scaled_down(&self, factor: u32) -> Self {
        Self {
            delays: self.delays.iter().map(|d| *d / factor).collect(),
            then_every: self.then_every / factor,
            give_up_after: self.give_up_after / factor,
            jitter: self.jitter,
        }
    }

    /// The wait after `failed` attempts (1 for the first failure), before jitter.
    pub fn delay_after(&self, failed: i64) -> Duration {
        let index = usize::try_from(failed.max(1) - 1).unwrap_or(usize::MAX);
        self.delays.get(index).copied().unwrap_or(self.then_every)
    }

    /// When to try again (Unix ms) after `failed` attempts of a delivery created at
    /// `created_at`, failing now at `now`; `None` when it is time to give up.
    pub fn next_attempt(&self, created_at: i64, failed: i64, now: i64) -> Option<i64> {
        let base = self.delay_after(failed).as_secs_f64();
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        let wait_ms = (base * (1.0 + spread) * 1000.0).round() as i64;
        let at = now.saturating_add(wait_ms.max(0));
        let deadline = created_at.saturating_add(millis(self.give_up_after));
        (at <= deadline).then_some(at)
    }
}

/// How many more times recording an attempt is tried after a failure.
const RECORD_TRIES: u32 = 3;

/// Push delivery's knobs, defaults in [`PushConfig::default`].
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// When failed deliveries are retried.
    pub schedule: RetrySchedule,
    /// A destination whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// How long a claimed delivery stays leased to this instance (longer than `timeout`).
    pub lease: Duration,
    /// How often the tasks look for work nobody told them about (other instances, the CLI,
    /// retries coming due).
    pub poll_interval: Duration,
    /// Deliveries attempted at once by one instance.
    pub concurrency: usize,
    /// How far back fan-out looks for events committed late (PostgreSQL commits cursors
    /// out of order).
    pub late_commit_window: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::standard(),
            disable_after: Duration::from_secs(3 * 24 * 3600),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            concurrency: 16,
            late_commit_window: Duration::from_secs(60),
        }
    }
}

impl PushConfig {
    /// The same behaviour a thousand times faster (retries after 5 ms, 30 ms, ...), with a
    /// short timeout and lease, for tests.
    pub fn for_tests() -> Self {
        Self {
            schedule: RetrySchedule::standard().scaled_down(1000),
            disable_after: Duration::from_secs(3 * 24 * 3600) / 1000,
            timeout: Duration::from_secs(2),
            lease: Duration::from_secs(4),
            poll_interval: Duration::from_millis(50),
            concurrency: 8,
            late_commit_window: Duration::from_secs(60),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What both tasks share.
pub(super) struct Pusher {
    pub(super) store: Arc<dyn Store>,
    pub(super) sealer: Arc<Sealer>,
    pub(super) config: PushConfig,
    pub(super) clock: Arc<dyn Clock>,
    /// Fan-out tells the delivery task that new rows are due.
    pub(super) work: Notify,
}

impl Pusher {
    pub(super) fn new(
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        config: PushConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            sealer,
            config,
            clock,
            work: Notify::new(),
        }
    }

    fn now(&self) -> i64 {
        millis(self.clock.unix())
    }

    // === fan-out ===

    /// Creates deliveries for every enabled destination until none has events left.
    pub(super) async fn fan_out(&self) -> Result<u64, crate::store::StoreError> {
        const BATCH: i64 = 500;
        let mut created = 0;
        for destination in self.store.list_enabled_push_destinations().await? {
            let mut destination = destination;
            loop {
                let recent = self.now() - millis(self.config.late_commit_window);
                let events = self
                    .store
                    .list_events_to_fan_out(&destination, recent, BATCH)
                    .await?;
                let cursor = events.iter().map(|e| e.seq).max();
                let now = self.now();
                let deliveries: Vec<NewDelivery> = events
                    .iter()
                    .filter(|e| matches_filter(&destination.event_types, &e.event_type))
                    .map(|e| NewDelivery {
                        id: DeliveryId::generate(),
                        destination_id: destination.id.clone(),
                        workspace_id: destination.workspace_id.clone(),
                        event_seq: e.seq,
                        event_id: e.event_id.clone(),
                        replay: 0,
                        created_at: now,
                    })
                    .collect();
                let fresh = cursor.filter(|c| *c > destination.last_seq);
                if deliveries.is_empty() && fresh.is_none() {
                    break;
                }
                created += self
                    .store
                    .create_push_deliveries(&destination.id, fresh, &deliveries)
                    .await?;
                match fresh {
                    Some(cursor) if events.len() as i64 >= BATCH => destination.last_seq = cursor,
                    _ => break,
                }
            }
        }
        if created > 0 {
            self.work.notify_one();
        }
        Ok(created)
    }

    // === delivery ===

    /// Claims due deliveries and attempts them concurrently; returns how many it attempted.
    pub(super) async fn deliver_due(&self) -> Result<usize, crate::store::StoreError> {
        let now = self.now();
        let limit = i64::try_from(self.config.concurrency).unwrap_or(16);
        let jobs = self
            .store
            .claim_push_deliveries(now, now + millis(self.config.lease), limit)
            .await?;
        let count = jobs.len();
        let attempts = jobs.into_iter().map(|job| self.attempt(job));
        for result in futures_util::future::join_all(attempts).await {
            if let Err(error) = result {
                tracing::warn!(%error, "cannot record a push attempt");
            }
        }
        Ok(count)
    }

    /// Makes one attempt and records it.
    async fn attempt(&self, job: DeliveryJob) -> Result<(), crate::store::StoreError> {
        let attempted_at = self.now();
        let started = Instant::now();
        let result = self.send(&job, attempted_at).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let failed = job.attempts + 1;
        let (state, next_attempt_at, status, error) = match result {
            Ok(status) if (200..300).contains(&status) => {
                (DeliveryState::Succeeded, attempted_at, Some(status), None)
            }
            Ok(status) => {
                let next = self
                    .config
                    .schedule
                    .next_attempt(job.created_at, failed, self.now());
                let error = format!("HTTP {status}{}", redirect_note(status));
                retry_or_fail(next, attempted_at, Some(status), error)
            }
            Err(AttemptError::Permanent(error)) => {
                (DeliveryState::Failed, attempted_at, None, Some(error))
            }
            Err(AttemptError::Retry(error)) => {
                let next = self
                    .config
                    .schedule
                    .next_attempt(job.created_at, failed, self.now());
                retry_or_fail(next, attempted_at, None, error)
            }
        };
        let outcome = AttemptOutcome {
            delivery_id: job.id.clone(),
            destination_id: job.destination.id.clone(),
            attempted_at,
            status,
            latency_ms,
            error,
            state,
            next_attempt_at,
            disable_if_failing_since: attempted_at - millis(self.config.disable_after),
        };
        tracing::debug!(delivery = %job.id, destination = %job.destination.id, ?status, state = state.as_str(), "push attempt");
        if self.record(&outcome).await? {
            tracing::warn!(destination = %job.destination.id, "push destination disabled after failing for too long");
        }
        Ok(())
    }

    /// Records an attempt, trying again a few times (a deadlock or a dropped connection):
    /// an attempt whose record is lost is made again once its lease expires, a duplicate
    /// the receiver would have to absorb.
    async fn record(&self, outcome: &AttemptOutcome) -> Result<bool, crate::store::StoreError> {
        let mut tries = 0;
        loop {
            match self.store.record_push_attempt(outcome).await {
                Err(error) if tries < RECORD_TRIES => {
                    tries += 1;
                    tracing::debug!(%error, tries, "recording a push attempt failed; trying again");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(tries))).await;
                }
                result => return result,
            }
        }
    }

    /// Checks the destination's address, signs and POSTs the event; the HTTP status, or
    /// why there is none.
    async fn send(&self, job: &DeliveryJob, attempted_at: i64) -> Result<u16, AttemptError> {
        let Some(payload) = job.payload.clone() else {
            return Err(AttemptError::Permanent(
                "the event was pruned by retention".to_owned(),
            ));
        };
        let secret = open_secret(&self.sealer, &job.destination).map_err(|_| {
            AttemptError::Permanent(
                "the destination secret cannot be opened (master key changed?)".to_owned(),
            )
        })?;
        let url = DestinationUrl::parse(&job.destination.url)
            .map_err(|e| AttemptError::Permanent(e.to_string()))?;
        let addr = ssrf::resolve(&url, job.destination.allow_private)
            .await
            .map_err(|e| AttemptError::Retry(e.to_string()))?;
        let timestamp = attempted_at / 1000;
        let signature = secret.sign(&job.event_id, timestamp, &payload);
        let request = http::Request::post(url.uri().clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "agentgate-push/1")
            .header(HEADER_ID, &job.event_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| AttemptError::Permanent(e.to_string()))?;
        let client = self.client_to(addr);
        match tokio::time::timeout(self.config.timeout, client.request(request)).await {
            Err(_) => Err(AttemptError::Retry(format!(
                "no answer within {:?}",
                self.config.timeout
            ))),
            Ok(Err(error)) => Err(AttemptError::Retry(error_chain(&error))),
            // The body is not read: only the status counts, and a destination may not make
            // us download anything.
            Ok(Ok(response)) => Ok(response.status().as_u16()),
        }
    }

    /// A client that connects only to `addr` (the checked address) whatever the URL's host
    /// resolves to now, keeps no idle connection, and follows no redirect (hyper never
    /// does).
    fn client_to(
        &self,
        addr: SocketAddr,
    ) -> Client<hyper_rustls::HttpsConnector<HttpConnector<FixedResolver>>, Full<Bytes>> {
        let mut http = HttpConnector::new_with_resolver(FixedResolver(addr));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.config.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(https)
    }
}

/// Resolves every name to the one address the SSRF guard checked.
#[derive(Clone, Copy)]
pub(super) struct FixedResolver(SocketAddr);

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for FixedResolver {
    type Response = std::iter::Once<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        std::future::ready(Ok(std::iter::once(self.0)))
    }
}

/// Why an attempt got no HTTP status.
enum AttemptError {
    /// Worth trying again (connection refused, timeout, DNS, a refused address that may
    /// change).
    Retry(String),
    /// Will never work (the event is gone, the secret cannot be opened).
    Permanent(String),
}

fn retry_or_fail(
    next: Option<i64>,
    attempted_at: i64,
    status: Option<u16>,
    error: String,
) -> (DeliveryState, i64, Option<u16>, Option<String>) {
    match next {
        Some(at) => (DeliveryState::Pending, at, status, Some(error)),
        None => (
            DeliveryState::Failed,
            attempted_at,
            status,
            Some(format!("{error}; retries exhausted")),
        ),
    }
}

fn redirect_note(status: u16) -> &'static str {
    if (300..400).contains(&status) {
        " (redirects are not followed)"
    } else {
        ""
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether a destination with this filter receives an event of this type (an empty
/// filter receives every type).
pub fn matches_filter(filter: &[String], event_type: &str) -> bool {
    filter.is_empty() || filter.iter().any(|t| t == event_type || t == "*")
}

/// Unseals a destination's secret.
pub(super) fn open_secret(
    sealer: &Sealer,
    destination: &DestinationRecord,
) -> Result<DestinationSecret, super::PushError> {
    let text = sealer
        .open(
            SecretPurpose::PushSecret,
            destination.workspace_id.as_str(),
            destination.id.as_str(),
            &destination.secret,
        )
        .map_err(|_| super::PushError::SecretUnreadable)?;
    let text = std::str::from_utf8(&text).map_err(|_| super::PushError::SecretUnreadable)?;
    DestinationSecret::parse(text).map_err(|_| super::PushError::SecretUnreadable)
}

// === the tasks ===

/// Runs fan-out until `stop` turns true: on every bus notice, and every poll interval.
pub(super) async fn run_fan_out(
    pusher: Arc<Pusher>,
    bus: EventBus,
    mut stop: watch::Receiver<bool>,
) {
    let mut notices = bus.subscribe();
    loop {
        if let Err(error) = pusher.fan_out().await {
            tracing::warn!(%error, "push fan-out failed; retrying");
        }
        tokio::select! {
            notice = notices.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = notice {
                    // No more notices: keep polling.
                    notices = bus.subscribe();
                }
            }
            () = tokio::time::sleep(pusher.config.poll_interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Runs the delivery worker until `stop` turns true. A batch in flight finishes first
/// (each attempt is bounded by the timeout), so no attempt is left half recorded.
pub(super) async fn run_delivery(pusher: Arc<Pusher>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let attempted = match pusher.deliver_due().await {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(%error, "push delivery failed; retrying");
                0
            }
        };
        if attempted > 0 {
            continue;
        }
        tokio::select! {
            () = pusher.work.notified() => {}
            () = tokio::time::sleep(pusher.config.poll_interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_schedule_spans_about_three_days_in_fourteen_attempts() {
        let schedule = RetrySchedule {
            jitter: 0.0,
            ..RetrySchedule::standard()
        };
        let mut now = 0;
        let mut attempts = 1;
        while let Some(next) = schedule.next_attempt(0, attempts, now) {
            now = next;
            attempts += 1;
        }
        assert_eq!(attempts, 14);
        let hours = now as f64 / 3_600_000.0;
        assert!((70.0..=72.0).contains(&hours), "{hours}");
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let schedule = RetrySchedule::standard();
        for _ in 0..100 {
            let at = schedule.next_attempt(0, 2, 0).unwrap();
            assert!((24_000..=36_000).contains(&at), "{at}");
        }
    }

    #[test]
    fn filters_match_listed_types_or_everything_when_empty() {
        assert!(matches_filter(&[], "customer.created"));
        let filter = vec!["invoice.paid".to_owned()];
        assert!(matches_filter(&filter, "invoice.paid"));
        assert!(!matches_filter(&filter, "customer.created"));
    }
}
