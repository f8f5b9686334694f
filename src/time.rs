//! Wall-clock time as the store keeps it: Unix milliseconds, the same in SQLite and
//! PostgreSQL, and rendered as RFC 3339 for people.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 text (UTC, millisecond precision) for a stored timestamp.
pub fn rfc3339(millis: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// Where time-based policies (rate limits, idempotency windows) read the time, so tests can
/// drive them with a [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time since a fixed origin of this clock; never goes backwards. For measuring
    /// intervals (rate buckets), immune to wall-clock steps.
    fn monotonic(&self) -> Duration;
    /// Time since the Unix epoch. For anything that must agree across restarts and
    /// instances (idempotency windows).
    fn unix(&self) -> Duration;
    /// Whether this clock moves with real time. Only such a clock can share rate buckets
    /// through the database, which measures them on its own, real clock.
    fn keeps_real_time(&self) -> bool;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }

    fn keeps_real_time(&self) -> bool {
        true
    }
}

/// A clock that moves only when told to, for tests of time-based policies.
#[derive(Debug)]
pub struct ManualClock {
    start_unix: Duration,
    elapsed_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `unix` (time since the Unix epoch).
    pub fn at(unix: Duration) -> Self {
        Self {
            start_unix: unix,
            elapsed_nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst))
    }

    fn unix(&self) -> Duration {
        self.start_unix + self.monotonic()
    }

    fn keeps_real_time(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
