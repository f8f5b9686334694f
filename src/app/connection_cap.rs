//! The cap on open client connections, shared by every listener. Past it the accept loops
//! stop accepting, so further connections wait in the kernel's listen queue (bounded by its
//! backlog) until one closes, instead of each taking a file descriptor. A flood of idle
//! connections then cannot use up the descriptors the served ones need for their own
//! upstream connections, the database and the request log.
//!
//! The default cap follows the process's file limit (`RLIMIT_NOFILE`), which `serve`
//! first raises to its hard ceiling, as Go's runtime and most servers do: each client
//! connection may hold one upstream connection too, and a fixed reserve is kept for the
//! rest.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// File descriptors kept for everything but client connections and their upstream
/// connections: the database pools and SQLite's files, the listeners, push deliveries, the
/// runtimes' own descriptors.
const RESERVED_DESCRIPTORS: u64 = 256;

/// How often the warning that the cap was reached may be logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft file limit to the hard one, so the default cap is not held to the
/// soft limit's customary 1024.
pub fn raise_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "cannot raise the file limit");
        }
    }
}

/// The file limit in force (`None`: unlimited or unknown).
pub fn file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Client connections a file limit leaves room for: two descriptors each (the connection
/// and an upstream one) after the reserve, or a quarter of a very small limit.
pub fn default_for(file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else {
        return Semaphore::MAX_PERMITS;
    };
    let room = if limit >= 2 * RESERVED_DESCRIPTORS {
        (limit - RESERVED_DESCRIPTORS) / 2
    } else {
        (limit / 4).max(1)
    };
    usize::try_from(room).map_or(Semaphore::MAX_PERMITS, |room| {
        room.min(Semaphore::MAX_PERMITS)
    })
}

/// The shared count of open client connections, bounded by `max`.
pub struct ConnectionCap {
    slots: Arc<Semaphore>,
    max: usize,
    open: Gauge,
    waits: Counter,
    last_warning: Mutex<Option<Instant>>,
}

/// A place under the cap taken before `accept`, so that past the cap the listener stops
/// accepting; it counts as an open connection once one is accepted into it.
pub struct Admission {
    permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Admission {
    /// The place, now held by an accepted connection.
    pub fn connected(self) -> Slot {
        self.open.inc();
        Slot {
            _permit: self.permit,
            open: self.open,
        }
    }
}

/// A client connection's place under the cap, given back when it is dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl ConnectionCap {
    /// A cap of `max` connections (at least one), counted in `metrics`.
    pub fn new(max: usize, metrics: &Metrics) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            open: metrics.client_connections.clone(),
            waits: metrics.connection_limit_waits.clone(),
            last_warning: Mutex::new(None),
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for the next connection, waiting while `max` connections are open.
    pub async fn admit(&self) -> Admission {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.waits.inc();
                self.warn_now_and_then();
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        Admission {
            permit,
            open: self.open.clone(),
        }
    }

    fn warn_now_and_then(&self) {
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                max_connections = self.max,
                "connection limit reached: new connections wait in the listen queue until one closes"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_the_reserve_and_two_descriptors_a_connection() {
        assert_eq!(default_for(Some(1024)), 384);
        assert_eq!(default_for(Some(1_048_576)), 524_160);
        assert_eq!(default_for(Some(128)), 32);
        assert_eq!(default_for(Some(2)), 1);
        assert_eq!(default_for(None), Semaphore::MAX_PERMITS);
    }

    #[tokio::test]
    async fn a_connection_past_the_cap_waits_for_a_slot_to_be_given_back() {
        let metrics = Metrics::new();
        let cap = ConnectionCap::new(2, &metrics);
        let first = cap.admit().await.connected();
        let second = cap.admit().await;
        assert_eq!(
            metrics.client_connections.get(),
            1,
            "admitted is not yet open"
        );
        let _second = second.connected();
        assert_eq!(metrics.client_connections.get(), 2);
        let mut third = std::pin::pin!(cap.admit());
        assert!(futures_util::future::poll_immediate(third.as_mut())
            .await
            .is_none());
        assert_eq!(metrics.connection_limit_waits.get(), 1);
        drop(first);
        assert_eq!(metrics.client_connections.get(), 1);
        let _third = third.await.connected();
        assert_eq!(metrics.client_connections.get(), 2);
    }
}
