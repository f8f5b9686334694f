//! Accepting connections: one loop per listening socket, on the main runtime, hands each
//! new connection to the worker serving the fewest connections. Balancing here, rather than
//! letting every worker race for `accept`, keeps one core from getting most of the
//! long-lived keep-alive connections while the other idles. A loop takes a slot under the
//! connection cap before it accepts, so past the cap connections wait in the listen queue.
//! With several listeners (the SDK ones), each loop may hold one slot while it waits for a
//! connection, so at the cap's edge the last free slots go to the listeners holding them.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection_cap::ConnectionCap;
use super::workers::WorkerHandle;

/// Accepts on `listener` (the `index`-th listening socket) until `stop` turns true.
pub async fn accept(
    listener: TcpListener,
    index: usize,
    workers: Arc<[WorkerHandle]>,
    cap: Arc<ConnectionCap>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let admission = tokio::select! {
            admission = cap.admit() => admission,
            _ = stopped(&mut stop) => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    match stream.into_std() {
                        Ok(stream) => {
                            least_busy(&workers).hand_over(index, stream, admission.connected());
                        }
                        Err(error) => tracing::debug!(%error, "cannot hand over a connection"),
                    }
                }
                Err(error) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stopped(&mut stop) => break,
        }
    }
}

fn least_busy(workers: &[WorkerHandle]) -> &WorkerHandle {
    workers
        .iter()
        .min_by_key(|worker| worker.connections())
        .expect("at least one worker")
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}
