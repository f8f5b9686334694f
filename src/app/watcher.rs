//! Keeps the caches honest and the event streams awake when something changes elsewhere
//! (the CLI, another instance).
//!
//! On PostgreSQL a [`ChangeFeed`] hears every change as it commits: caches are dropped and
//! streams woken at once. A poll of the store's generation counter backs it up (a notice
//! is lost while the listening connection is down): every [`POLL_INTERVAL`] without a feed
//! (SQLite), every [`FALLBACK_POLL_INTERVAL`] with one. Either way a key revoked or a
//! Stripe key replaced anywhere takes effect here within a second.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::proxy::ProxyShared;
use crate::store::changes::{Change, ChangeFeed};
use crate::store::Store;

/// How often the generation is read when nothing announces changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often the generation is read behind a change feed, in case a notice was missed.
pub const FALLBACK_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long to wait before listening again after the feed's connection failed.
const FEED_RETRY: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    proxy: Arc<ProxyShared>,
    feed: Option<ChangeFeed>,
    stop: watch::Receiver<bool>,
) {
    let interval = match feed {
        Some(feed) => {
            tokio::spawn(listen(feed, proxy.clone(), stop.clone()));
            FALLBACK_POLL_INTERVAL
        }
        None => POLL_INTERVAL,
    };
    poll(store, proxy, interval, stop).await;
}

/// Drops the caches whenever the generation moves.
async fn poll(
    store: Arc<dyn Store>,
    proxy: Arc<ProxyShared>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = store.generation().await.ok();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        match store.generation().await {
            Ok(generation) => {
                failing = false;
                if seen != Some(generation) {
                    drop_caches(&proxy);
                    seen = Some(generation);
                }
            }
            Err(error) => {
                // Keep serving from the caches; say so once per outage.
                if !failing {
                    tracing::warn!(%error, "cannot read the store's generation; caches kept until it answers");
                }
                failing = true;
            }
        }
    }
}

/// Acts on each notice: drops the caches, or wakes the streams and push workers.
async fn listen(mut feed: ChangeFeed, proxy: Arc<ProxyShared>, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        let change = tokio::select! {
            change = feed.next() => change,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        match change {
            Ok(Change::State) => drop_caches(&proxy),
            Ok(Change::Events(notice)) => proxy.events.publish(notice),
            Ok(Change::Reconnected) => {
                tracing::info!(
                    "listening for changes again; caches dropped in case a notice was missed"
                );
                drop_caches(&proxy);
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot listen for changes; relying on polls until it can");
                }
                failing = true;
                tokio::select! {
                    _ = tokio::time::sleep(FEED_RETRY) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
                continue;
            }
        }
        failing = false;
    }
}

fn drop_caches(proxy: &ProxyShared) {
    proxy.keys.clear();
    proxy.connections.clear();
}
