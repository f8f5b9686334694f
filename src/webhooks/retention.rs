//! Retention: events are kept for `--event-retention` (30 days by default), then deleted by
//! a background task of `serve` that runs at start and every hour, in bounded chunks (see
//! [`crate::store::Store::prune_events`]) so ingest is never blocked for long. With several
//! instances each prunes; the deletes are idempotent.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{Store, StoreError};
use crate::time::Clock;

/// How long events are kept when `--event-retention` is not given.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How often the background task prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Deletes the events received more than `retention` before the clock's now; returns how
/// many went.
pub async fn prune(
    store: &dyn Store,
    retention: Duration,
    clock: &dyn Clock,
) -> Result<u64, StoreError> {
    let now = i64::try_from(clock.unix().as_millis()).unwrap_or(i64::MAX);
    let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    store.prune_events(now.saturating_sub(keep)).await
}

/// Prunes at once and then every [`PRUNE_INTERVAL`] until `stop` turns true. A failure is
/// logged and retried at the next run: events then stay a little longer, nothing is lost.
pub async fn run(
    store: Arc<dyn Store>,
    retention: Duration,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(PRUNE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => return,
            _ = every.tick() => {}
        }
        let pruning = prune(store.as_ref(), retention, clock.as_ref());
        let outcome = tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => return,
            outcome = pruning => outcome,
        };
        match outcome {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, ?retention, "pruned old events"),
            Err(error) => tracing::error!(%error, "pruning old events failed"),
        }
    }
}
