//! Keeps the caches honest: polls the store's generation counter and empties the key and
//! connection caches when it moves, so a key revoked or a Stripe key replaced anywhere (the
//! CLI, another instance) takes effect here within one poll interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::proxy::ProxyShared;
use crate::store::Store;

/// How often the generation is read; bounds how stale a cache can be.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Runs until `stop` turns true.
pub async fn run(store: Arc<dyn Store>, proxy: Arc<ProxyShared>, mut stop: watch::Receiver<bool>) {
    let mut seen = store.generation().await.ok();
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
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
                    proxy.keys.clear();
                    proxy.connections.clear();
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
