//! Accepting connections: one loop on the main runtime accepts on every listening socket
//! and hands each new connection to the worker serving the fewest connections. Balancing
//! here, rather than letting every worker race for `accept`, keeps one core from getting
//! most of the long-lived keep-alive connections while the other idles. The loop takes a
//! slot under the connection cap before it accepts, so past the cap connections wait in
//! the listen queues; one loop for all sockets means the next free slot goes to whichever
//! socket has a connection waiting.

use std::net::TcpStream;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection_cap::ConnectionCap;
use super::workers::WorkerHandle;

/// Accepts on `listeners` (the connection keeps its socket's index) until `stop` turns
/// true.
pub async fn accept(
    listeners: Vec<TcpListener>,
    workers: Arc<[WorkerHandle]>,
    cap: Arc<ConnectionCap>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first = 0;
    loop {
        let admission = tokio::select! {
            admission = cap.admit() => admission,
            _ = stopped(&mut stop) => break,
        };
        tokio::select! {
            (index, accepted) = next_connection(&listeners, first) => {
                // The socket after this one is asked first next time, so a busy one
                // cannot keep the others waiting.
                first = index + 1;
                match accepted {
                    Ok(stream) => {
                        let slot = admission.connected();
                        least_busy(&workers).hand_over(index, stream, slot);
                    }
                    Err(error) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            _ = stopped(&mut stop) => break,
        }
    }
}

/// The next connection on any of `listeners`, asking them in turn from the `first`-th;
/// with the index of the socket it came from.
async fn next_connection(
    listeners: &[TcpListener],
    first: usize,
) -> (usize, std::io::Result<TcpStream>) {
    let (index, accepted) = std::future::poll_fn(|cx| {
        for offset in 0..listeners.len() {
            let index = (first + offset) % listeners.len();
            if let Poll::Ready(accepted) = listeners[index].poll_accept(cx) {
                return Poll::Ready((index, accepted));
            }
        }
        Poll::Pending
    })
    .await;
    let accepted = accepted.and_then(|(stream, _peer)| {
        let _ = stream.set_nodelay(true);
        stream.into_std()
    });
    (index, accepted)
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
