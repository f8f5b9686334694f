//! Worker threads, one per core, each with its own single-threaded runtime, in the manner
//! of nginx's worker processes: a request, its handler and its upstream connection stay on
//! one thread, so no request pays for cross-thread wake-ups or work stealing. All workers
//! accept from the same listening sockets; the background work (request log writer, cache
//! watcher) stays on the main runtime.

use std::net::TcpListener as StdListener;

use tokio::sync::{oneshot, watch};

use super::listener::{self, ServeOptions};
use crate::proxy::Entry;

/// A running worker thread.
pub struct Worker {
    done: oneshot::Receiver<()>,
}

impl Worker {
    /// Resolves when the worker has drained and stopped.
    pub async fn finished(self) {
        let _ = self.done.await;
    }
}

/// Starts a worker serving each listener with its router until `stop` turns true.
pub fn spawn(
    index: usize,
    serving: Vec<(StdListener, Entry)>,
    options: ServeOptions,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Worker> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("agentgate-worker-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                let mut servers = tokio::task::JoinSet::new();
                for (socket, entry) in serving {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(listener) => {
                            servers.spawn(listener::serve(listener, entry, options, stop.clone()));
                        }
                        Err(error) => tracing::error!(%error, "worker cannot use a listener"),
                    }
                }
                while servers.join_next().await.is_some() {}
            });
            let _ = done_tx.send(());
        })?;
    Ok(Worker { done })
}
