//! Rate limits per key and per connection, held in memory by each process.
//!
//! Each limit is a token bucket kept as GCRA (the generic cell rate algorithm): one
//! "theoretical arrival time" per bucket in an atomic, so taking a token is a
//! compare-and-swap, with no lock on the hot path and no timer. A bucket whose arrival time
//! lies in the past is full, exactly like a fresh one, which makes evicting idle buckets
//! lossless.
//!
//! Written by hand rather than with `governor`: a request must take a token from two
//! buckets (key and connection) or from neither, and `governor` can neither put a token
//! back nor check one bucket without consuming it; its keyed limiters share one quota,
//! while every key here has its own rate. The whole algorithm is about forty lines.
//!
//! On one database several instances share every bucket ([`RateLimiter::share_with`]):
//! requests still take tokens from the local bucket, with no round trip, and every
//! [`EXCHANGE_INTERVAL`] each instance adds what it took to the bucket's row in PostgreSQL
//! and moves its local bucket to the cluster's arrival time. A bucket new to an instance is
//! first read from the database (once, before its first token), so a key that spent its
//! burst on one instance is refused on the others too. The tolerance: within one exchange
//! interval, instances do not see each other's takes, so N instances together may admit up
//! to (N − 1) × rate × 100 ms more than the rate (plus, when a bucket is full everywhere,
//! up to N bursts at once); over any longer period the cluster admits the configured rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::Rate;
use crate::connections::ResolvedConnection;
use crate::ids::{ConnectionId, KeyId};
use crate::keys::AuthenticatedKey;
use crate::store::rate_buckets::{SharedArrival, SharedBuckets, Taken};
use crate::time::Clock;

/// How often, at most, idle buckets are looked for and dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// How often an instance sharing its buckets exchanges takes with the database; bounds how
/// long other instances' takes stay unseen.
pub const EXCHANGE_INTERVAL: Duration = Duration::from_millis(100);

/// How often shared buckets idle for a day are deleted.
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// Requests per second allowed through one connection, by the mode of its Stripe key, so
/// agentgate as a whole stays within the Stripe account's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionRates {
    /// Connections holding a live-mode key; `None` is no limit.
    pub live: Option<NonZeroU32>,
    /// Connections holding a test-mode (sandbox) key; `None` is no limit.
    pub test: Option<NonZeroU32>,
}

impl ConnectionRates {
    /// Stripe's documented global limits (docs.stripe.com/rate-limits): 100 requests per
    /// second in live mode, 25 in test mode and sandboxes.
    pub const STRIPE: Self = Self {
        live: NonZeroU32::new(100),
        test: NonZeroU32::new(25),
    };

    /// No connection limit (tests that send many requests, benchmarks).
    pub const UNLIMITED: Self = Self {
        live: None,
        test: None,
    };

    /// The rate for this connection: its mode's requests per second, with a burst of one
    /// second's worth.
    fn for_connection(&self, connection: &ResolvedConnection) -> Option<Rate> {
        let per_second = match connection.live {
            true => self.live,
            false => self.test,
        }?
        .get();
        Some(Rate {
            per_second,
            burst: per_second,
        })
    }
}

impl Default for ConnectionRates {
    fn default() -> Self {
        Self::STRIPE
    }
}

/// The token buckets of every key that has a rate and of every connection, shared by all
/// worker threads.
#[derive(Debug)]
pub struct RateLimiter {
    clock: Arc<dyn Clock>,
    connection_rates: ConnectionRates,
    keys: Buckets<KeyId>,
    connections: Buckets<ConnectionId>,
    /// Monotonic nanoseconds at which the next sweep for idle buckets is due.
    next_sweep: AtomicU64,
    /// The buckets of every instance on the same database, when there can be several.
    shared: Option<SharedBuckets>,
}

impl RateLimiter {
    /// A limiter with these connection rates, reading time from `clock`.
    pub fn new(connection_rates: ConnectionRates, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            connection_rates,
            keys: Buckets::default(),
            connections: Buckets::default(),
            next_sweep: AtomicU64::new(nanos(SWEEP_EVERY)),
            shared: None,
        }
    }

    /// Shares the buckets with every instance on the same database (see the module docs);
    /// [`RateLimiter::exchange_until_stopped`] must then run. A limiter whose clock does
    /// not keep real time ([`Clock::keeps_real_time`], a test's) stays local: the shared
    /// buckets run on the database's real clock, and real time passing would move them
    /// ahead of a clock that stands still.
    pub fn share_with(mut self, shared: SharedBuckets) -> Self {
        if self.clock.keeps_real_time() {
            self.shared = Some(shared);
        }
        self
    }

    /// Before a request's first token from a bucket this instance has not used lately,
    /// reads what other instances took from it. A database that does not answer leaves the
    /// local bucket as it is (the next exchange catches up).
    pub async fn prime(&self, key: &AuthenticatedKey, connection: &ResolvedConnection) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut fresh = Vec::new();
        if let Some(rate) = key.scopes.rate {
            let bucket = self.keys.get(&key.id, rate);
            if !bucket.primed.swap(true, Ordering::AcqRel) {
                fresh.push((key.id.as_str().to_owned(), bucket));
            }
        }
        if let Some(rate) = self.connection_rates.for_connection(connection) {
            let bucket = self.connections.get(&connection.id, rate);
            if !bucket.primed.swap(true, Ordering::AcqRel) {
                fresh.push((connection.id.as_str().to_owned(), bucket));
            }
        }
        if fresh.is_empty() {
            return;
        }
        let taken: Vec<Taken> = fresh
            .iter()
            .map(|(bucket, _)| Taken {
                bucket: bucket.clone(),
                charge_us: 0,
            })
            .collect();
        match shared.exchange(&taken).await {
            Ok(arrivals) => self.absorb(&fresh, &arrivals),
            Err(error) => {
                tracing::warn!(%error, "cannot read shared rate limits; limiting locally until the next exchange")
            }
        }
    }

    /// Exchanges takes with the database every [`EXCHANGE_INTERVAL`] until `stop` turns
    /// true; returns at once when the buckets are not shared.
    pub async fn exchange_until_stopped(&self, mut stop: watch::Receiver<bool>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut ticker = tokio::time::interval(EXCHANGE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut next_forget = self.clock.monotonic() + FORGET_EVERY;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
            let held: Vec<(String, Arc<Bucket>)> =
                self.keys.all().chain(self.connections.all()).collect();
            let taken: Vec<Taken> = held
                .iter()
                .map(|(bucket, state)| Taken {
                    bucket: bucket.clone(),
                    charge_us: state.take_unsynced_charge_us(),
                })
                .collect();
            match shared.exchange(&taken).await {
                Ok(arrivals) => {
                    failing = false;
                    self.absorb(&held, &arrivals);
                }
                Err(error) => {
                    // Keep the takes for the next exchange; limit locally meanwhile.
                    for ((_, state), taken) in held.iter().zip(&taken) {
                        state.restore_unsynced_charge_us(taken.charge_us);
                    }
                    if !failing {
                        tracing::warn!(%error, "cannot exchange shared rate limits; limiting locally until the database answers");
                    }
                    failing = true;
                }
            }
            if self.clock.monotonic() >= next_forget {
                next_forget = self.clock.monotonic() + FORGET_EVERY;
                if let Err(error) = shared.forget_idle().await {
                    tracing::debug!(%error, "cannot delete idle shared rate buckets");
                }
            }
        }
    }

    /// Moves each local bucket at least as far ahead as the cluster's.
    fn absorb(&self, held: &[(String, Arc<Bucket>)], arrivals: &[SharedArrival]) {
        let now = nanos(self.clock.monotonic());
        for arrival in arrivals {
            if arrival.ahead_us <= 0 {
                continue;
            }
            let ahead = u64::try_from(arrival.ahead_us)
                .unwrap_or(0)
                .saturating_mul(1_000);
            if let Some((_, bucket)) = held.iter().find(|(name, _)| *name == arrival.bucket) {
                bucket
                    .tat
                    .fetch_max(now.saturating_add(ahead), Ordering::AcqRel);
            }
        }
    }

    /// Takes one token for the key (when it has a rate) and one for the connection (when
    /// its mode has a limit), or neither; on refusal, says how long until the request
    /// would be accepted.
    pub fn check(
        &self,
        key: &AuthenticatedKey,
        connection: &ResolvedConnection,
    ) -> Result<(), Duration> {
        let key_limit = key.scopes.rate.map(|rate| (&key.id, rate));
        let connection_limit = self
            .connection_rates
            .for_connection(connection)
            .map(|rate| (&connection.id, rate));
        self.take(key_limit, connection_limit)
    }

    /// The key's bucket first: a request the key's own limit refuses never touches the
    /// connection's budget, which other keys share. When the connection refuses, the key's
    /// token is put back, so the key is not charged for a request that was not sent.
    fn take(
        &self,
        key: Option<(&KeyId, Rate)>,
        connection: Option<(&ConnectionId, Rate)>,
    ) -> Result<(), Duration> {
        let now = nanos(self.clock.monotonic());
        self.sweep_if_due(now);
        let key_bucket = key.map(|(id, rate)| self.keys.get(id, rate));
        if let Some(bucket) = &key_bucket {
            bucket.take(now)?;
        }
        if let Some((id, rate)) = connection {
            if let Err(wait) = self.connections.get(id, rate).take(now) {
                if let Some(bucket) = &key_bucket {
                    bucket.give_back();
                }
                return Err(wait);
            }
        }
        Ok(())
    }

    /// Drops full, unused buckets once per [`SWEEP_EVERY`], so keys and connections that
    /// stop sending do not hold memory: what stays is what sent in the last minute or is
    /// still refilling.
    fn sweep_if_due(&self, now: u64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(nanos(SWEEP_EVERY));
        if self
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.keys.sweep(now);
        self.connections.sweep(now);
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.keys.len() + self.connections.len()
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

// === impl Buckets ===

/// One map of buckets by id. Read-locked to find a bucket, write-locked only to add, replace
/// or sweep.
#[derive(Debug)]
struct Buckets<K> {
    map: RwLock<HashMap<K, Arc<Bucket>>>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash> Buckets<K> {
    /// The bucket for `id` at `rate`; a new full one when there is none or the rate changed
    /// (a connection whose key switched mode).
    fn get(&self, id: &K, rate: Rate) -> Arc<Bucket> {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(bucket) = map.get(id).filter(|bucket| bucket.rate == rate) {
                return bucket.clone();
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = map
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Bucket::new(rate)));
        if bucket.rate != rate {
            *bucket = Arc::new(Bucket::new(rate));
        }
        bucket.clone()
    }

    /// Every bucket held, with its id as text (the shared bucket's name).
    fn all(&self) -> impl Iterator<Item = (String, Arc<Bucket>)>
    where
        K: std::fmt::Display,
    {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .map(|(id, bucket)| (id.to_string(), bucket.clone()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Drops every bucket that is full (indistinguishable from a new one) and not in use by
    /// a request right now.
    fn sweep(&self, now: u64) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, bucket| Arc::strong_count(bucket) > 1 || !bucket.is_full(now));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

// === impl Bucket ===

/// One token bucket as GCRA: a request is allowed when the theoretical arrival time after
/// it is at most `capacity` ahead of now.
#[derive(Debug)]
struct Bucket {
    rate: Rate,
    /// Nanoseconds one token takes to refill.
    interval: u64,
    /// Nanoseconds of tokens the bucket holds when full (`burst` tokens).
    capacity: u64,
    /// Theoretical arrival time, monotonic nanoseconds.
    tat: AtomicU64,
    /// Tokens taken here and not yet added to the shared bucket (less those given back).
    unsynced: AtomicI64,
    /// Whether the shared bucket was read since this one was made.
    primed: AtomicBool,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        // Stored scopes are not parsed through `Rate::from_str`; a zero must not divide.
        let interval = (NANOS_PER_SECOND / u64::from(rate.per_second.max(1))).max(1);
        Self {
            rate,
            interval,
            capacity: interval.saturating_mul(u64::from(rate.burst.max(1))),
            tat: AtomicU64::new(0),
            unsynced: AtomicI64::new(0),
            primed: AtomicBool::new(false),
        }
    }

    /// The takes since the last exchange as microseconds of arrival time, and starts over.
    fn take_unsynced_charge_us(&self) -> i64 {
        let tokens = self.unsynced.swap(0, Ordering::AcqRel);
        let interval_us = i64::try_from(self.interval / 1_000).unwrap_or(i64::MAX);
        tokens.saturating_mul(interval_us)
    }

    /// Puts back takes an exchange could not deliver.
    fn restore_unsynced_charge_us(&self, charge_us: i64) {
        let interval_us = i64::try_from(self.interval / 1_000)
            .unwrap_or(i64::MAX)
            .max(1);
        self.unsynced
            .fetch_add(charge_us / interval_us, Ordering::AcqRel);
    }

    fn take(&self, now: u64) -> Result<(), Duration> {
        let limit = now.saturating_add(self.capacity);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(self.interval);
            if next > limit {
                return Err(Duration::from_nanos(next - limit));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.unsynced.fetch_add(1, Ordering::AcqRel);
                    return Ok(());
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Undoes one successful `take`. Exact even after other takes: each take only adds
    /// `interval` (after lifting a past arrival time to now, which changes nothing a full
    /// bucket can do).
    fn give_back(&self) {
        self.unsynced.fetch_sub(1, Ordering::AcqRel);
        let interval = self.interval;
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.saturating_sub(interval))
            });
    }

    fn is_full(&self, now: u64) -> bool {
        self.tat.load(Ordering::Acquire) <= now
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{ManualClock, SystemClock};

    fn limiter() -> (RateLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(Duration::from_secs(1_700_000_000)));
        (
            RateLimiter::new(ConnectionRates::STRIPE, clock.clone()),
            clock,
        )
    }

    fn rate(per_second: u32, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    fn key(name: &str) -> KeyId {
        KeyId::from_stored(format!("key_{name}"))
    }

    fn conn(name: &str) -> ConnectionId {
        ConnectionId::from_stored(format!("conn_{name}"))
    }

    fn shared_buckets() -> SharedBuckets {
        SharedBuckets::connect("postgres://agentgate@127.0.0.1:1/unused")
            .unwrap()
            .expect("a PostgreSQL URL gives shared buckets (connected lazily, never here)")
    }

    #[tokio::test]
    async fn only_a_limiter_on_real_time_shares_its_buckets() {
        let (manual, _clock) = limiter();
        assert!(manual.share_with(shared_buckets()).shared.is_none());
        let real = RateLimiter::new(ConnectionRates::STRIPE, Arc::new(SystemClock::default()));
        assert!(real.share_with(shared_buckets()).shared.is_some());
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_one_interval() {
        let (limiter, _clock) = limiter();
        let id = key("a");
        for _ in 0..3 {
            assert_eq!(limiter.take(Some((&id, rate(1, 3))), None), Ok(()));
        }
        let wait = limiter.take(Some((&id, rate(1, 3))), None).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert_eq!(retry_after_seconds(wait), 1);
    }

    #[test]
    fn tokens_refill_at_the_rate_and_never_beyond_the_burst() {
        let (limiter, clock) = limiter();
        let id = key("a");
        let limit = Some((&id, rate(2, 2)));
        assert!(limiter.take(limit, None).is_ok());
        assert!(limiter.take(limit, None).is_ok());
        assert!(limiter.take(limit, None).is_err());
        clock.advance(Duration::from_millis(500));
        assert!(limiter.take(limit, None).is_ok());
        assert_eq!(
            limiter.take(limit, None),
            Err(Duration::from_millis(500)),
            "one token refills every 500 ms"
        );
        clock.advance(Duration::from_secs(60));
        assert!(limiter.take(limit, None).is_ok());
        assert!(limiter.take(limit, None).is_ok());
        assert!(
            limiter.take(limit, None).is_err(),
            "a long pause refills the burst, not more"
        );
    }

    #[test]
    fn retry_after_rounds_partial_seconds_up() {
        let (limiter, clock) = limiter();
        let id = key("a");
        let limit = Some((&id, rate(1, 1)));
        assert!(limiter.take(limit, None).is_ok());
        clock.advance(Duration::from_millis(200));
        let wait = limiter.take(limit, None).unwrap_err();
        assert_eq!(wait, Duration::from_millis(800));
        assert_eq!(retry_after_seconds(wait), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn keys_have_separate_buckets() {
        let (limiter, _clock) = limiter();
        let (a, b) = (key("a"), key("b"));
        assert!(limiter.take(Some((&a, rate(1, 1))), None).is_ok());
        assert!(limiter.take(Some((&a, rate(1, 1))), None).is_err());
        assert!(limiter.take(Some((&b, rate(1, 1))), None).is_ok());
    }

    #[test]
    fn two_keys_share_their_connections_limit() {
        let (limiter, clock) = limiter();
        let (a, b, c) = (key("a"), key("b"), conn("c"));
        let shared = Some((&c, rate(3, 3)));
        assert!(limiter.take(Some((&a, rate(10, 10))), shared).is_ok());
        assert!(limiter.take(Some((&a, rate(10, 10))), shared).is_ok());
        assert!(limiter.take(Some((&b, rate(10, 10))), shared).is_ok());
        assert!(limiter.take(Some((&b, rate(10, 10))), shared).is_err());
        assert!(limiter.take(None, shared).is_err());
        assert!(
            limiter
                .take(None, Some((&conn("other"), rate(3, 3))))
                .is_ok(),
            "another connection has its own budget"
        );
        clock.advance(Duration::from_millis(334));
        assert!(limiter.take(Some((&b, rate(10, 10))), shared).is_ok());
    }

    #[test]
    fn a_connection_refusal_gives_the_keys_token_back() {
        let (limiter, _clock) = limiter();
        let (a, c) = (key("a"), conn("c"));
        let busy = Some((&c, rate(1, 1)));
        assert!(limiter.take(None, busy).is_ok());
        for _ in 0..5 {
            assert!(limiter.take(Some((&a, rate(1, 2))), busy).is_err());
        }
        assert!(
            limiter.take(Some((&a, rate(1, 2))), None).is_ok(),
            "the key still has its whole burst"
        );
        assert!(limiter.take(Some((&a, rate(1, 2))), None).is_ok());
    }

    #[test]
    fn a_key_refusal_leaves_the_connections_tokens_alone() {
        let (limiter, _clock) = limiter();
        let (a, b, c) = (key("a"), key("b"), conn("c"));
        let shared = Some((&c, rate(2, 2)));
        assert!(limiter.take(Some((&a, rate(1, 1))), shared).is_ok());
        for _ in 0..5 {
            assert!(limiter.take(Some((&a, rate(1, 1))), shared).is_err());
        }
        assert!(
            limiter.take(Some((&b, rate(5, 5))), shared).is_ok(),
            "the refused requests took nothing from the connection"
        );
    }

    #[test]
    fn a_changed_rate_starts_a_new_bucket() {
        let (limiter, _clock) = limiter();
        let c = conn("c");
        assert!(limiter.take(None, Some((&c, rate(1, 1)))).is_ok());
        assert!(limiter.take(None, Some((&c, rate(1, 1)))).is_err());
        assert!(limiter.take(None, Some((&c, rate(5, 5)))).is_ok());
    }

    #[test]
    fn idle_buckets_are_dropped_and_refilling_ones_kept() {
        let (limiter, clock) = limiter();
        for n in 0..100 {
            let id = key(&n.to_string());
            assert!(limiter.take(Some((&id, rate(1, 1))), None).is_ok());
        }
        let slow = key("slow");
        for _ in 0..100 {
            assert!(limiter.take(Some((&slow, rate(1, 100))), None).is_ok());
        }
        assert_eq!(limiter.held(), 101);
        clock.advance(Duration::from_secs(59));
        assert!(limiter.take(None, None).is_ok());
        assert_eq!(limiter.held(), 101, "no sweep before a minute has passed");
        clock.advance(Duration::from_secs(1));
        assert!(limiter.take(None, None).is_ok());
        assert_eq!(limiter.held(), 1, "only the bucket still refilling is left");
        for _ in 0..60 {
            assert!(limiter.take(Some((&slow, rate(1, 100))), None).is_ok());
        }
        assert!(
            limiter.take(Some((&slow, rate(1, 100))), None).is_err(),
            "the kept bucket kept its state: 60 tokens refilled, not a fresh 100"
        );
    }

    #[test]
    fn the_default_connection_rates_are_stripes_documented_limits() {
        assert_eq!(ConnectionRates::default().live, NonZeroU32::new(100));
        assert_eq!(ConnectionRates::default().test, NonZeroU32::new(25));
    }
}
