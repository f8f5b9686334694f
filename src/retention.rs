//! Retention: what `serve` deletes, and when. Webhook events are kept for
//! `--event-retention` (30 days by default); the request log and the installation's audit
//! for `--log-retention` (365 days by default, or `forever`). A background task prunes at
//! start and every hour, in bounded chunks (see [`Store::prune_events`] and
//! [`Store::prune_logs`]) so neither ingest nor the log's writer is held up for long. With
//! several instances each prunes; the deletes are idempotent.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::store::{PrunedLogs, Store, StoreError};
use crate::time::Clock;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long events are kept when `--event-retention` is not given.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(30 * DAY.as_secs());
/// How long the request log and the installation's audit are kept when `--log-retention`
/// is not given: a year, the history PCI DSS asks of an audit trail (requirement 10.5.1).
pub const DEFAULT_LOG_RETENTION: LogRetention =
    LogRetention::For(Duration::from_secs(365 * DAY.as_secs()));
/// The shortest `--log-retention`: the logs are the audit trail, and a unit mistyped (`30s`
/// for `30days`) would otherwise delete it within the hour.
pub const MIN_LOG_RETENTION: Duration = DAY;
/// How often the background task prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// How long the request log and the installation's audit are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogRetention {
    /// Entries older than this are deleted.
    For(Duration),
    /// Nothing is deleted: for operators who archive or prune the tables themselves.
    Forever,
}

impl FromStr for LogRetention {
    type Err = String;

    /// `forever`, or a duration of at least [`MIN_LOG_RETENTION`] (`90days`, `2years`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("forever") {
            return Ok(Self::Forever);
        }
        let keep = humantime::parse_duration(text)
            .map_err(|e| format!("{e}; give a duration such as 90days, or `forever`"))?;
        if keep < MIN_LOG_RETENTION {
            return Err(
                "must be at least 1day (the logs are the audit trail), or `forever`".to_owned(),
            );
        }
        Ok(Self::For(keep))
    }
}

impl fmt::Display for LogRetention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::For(keep) if keep.as_secs() % DAY.as_secs() == 0 && keep.subsec_nanos() == 0 => {
                write!(f, "{}days", keep.as_secs() / DAY.as_secs())
            }
            Self::For(keep) => humantime::format_duration(*keep).fmt(f),
            Self::Forever => f.write_str("forever"),
        }
    }
}

/// How long each kind of stored record is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Webhook events (`--event-retention`).
    pub events: Duration,
    /// The request log and the installation's audit (`--log-retention`).
    pub logs: LogRetention,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: DEFAULT_EVENT_RETENTION,
            logs: DEFAULT_LOG_RETENTION,
        }
    }
}

/// What one run of [`prune`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Webhook events.
    pub events: u64,
    /// The request log's entries and the installation's audit records.
    pub logs: PrunedLogs,
}

/// Deletes what is older than `retention` allows at the clock's now.
pub async fn prune(
    store: &dyn Store,
    retention: &Retention,
    clock: &dyn Clock,
) -> Result<Pruned, StoreError> {
    let now = i64::try_from(clock.unix().as_millis()).unwrap_or(i64::MAX);
    let before =
        |keep: Duration| now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let events = store.prune_events(before(retention.events)).await?;
    let logs = match retention.logs {
        LogRetention::For(keep) => store.prune_logs(before(keep)).await?,
        LogRetention::Forever => PrunedLogs::default(),
    };
    Ok(Pruned { events, logs })
}

/// Prunes at once and then every [`PRUNE_INTERVAL`] until `stop` turns true, counting what
/// went in `agentgate_retention_pruned_total`. A failure is logged, counted in
/// `agentgate_retention_failures_total` and retried at the next run: records then stay a
/// little longer, nothing else changes.
pub async fn run(
    store: Arc<dyn Store>,
    retention: Retention,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(PRUNE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => return,
            _ = every.tick() => {}
        }
        let pruning = prune(store.as_ref(), &retention, clock.as_ref());
        let outcome = tokio::select! {
            _ = stop.wait_for(|stopping| *stopping) => return,
            outcome = pruning => outcome,
        };
        if let Ok(pruned) = &outcome {
            metrics.observe_pruned("events", pruned.events);
            metrics.observe_pruned("request_log", pruned.logs.request_log);
            metrics.observe_pruned("installation_audit", pruned.logs.installation_audit);
        }
        match outcome {
            Ok(pruned) if pruned == Pruned::default() => {}
            Ok(pruned) => tracing::info!(
                events = pruned.events,
                request_log = pruned.logs.request_log,
                installation_audit = pruned.logs.installation_audit,
                %retention.logs,
                event_retention = ?retention.events,
                "pruned records past their retention"
            ),
            Err(error) => {
                metrics.retention_failures.inc();
                tracing::error!(%error, "pruning records past their retention failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_retention_reads_durations_and_forever_and_refuses_less_than_a_day() {
        assert_eq!("forever".parse(), Ok(LogRetention::Forever));
        assert_eq!("Forever".parse(), Ok(LogRetention::Forever));
        assert_eq!("90days".parse(), Ok(LogRetention::For(90 * DAY)));
        assert_eq!("1day".parse(), Ok(LogRetention::For(DAY)));
        assert!("23h"
            .parse::<LogRetention>()
            .unwrap_err()
            .contains("at least 1day"));
        assert!("30s"
            .parse::<LogRetention>()
            .unwrap_err()
            .contains("at least 1day"));
        assert!("soon"
            .parse::<LogRetention>()
            .unwrap_err()
            .contains("forever"));
        assert_eq!(DEFAULT_LOG_RETENTION.to_string(), "365days");
        assert_eq!(
            LogRetention::For(DAY + Duration::from_secs(3600)).to_string(),
            "1day 1h"
        );
    }
}
