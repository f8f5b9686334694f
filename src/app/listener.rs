//! The accept loop: HTTP/1.1 connections served by hyper with a header read timeout, TCP
//! no-delay, and graceful shutdown (stop accepting, let in-flight requests finish within
//! the grace period, close idle keep-alive connections).

use std::time::Duration;

use std::convert::Infallible;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::Entry;

/// Per-listener serving options.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// How long in-flight requests may continue after shutdown begins.
    pub shutdown_grace: Duration,
}

/// Serves `entry` on `listener` until `stop` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    entry: Entry,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let entry = entry.clone();
                let service = service_fn(move |request| {
                    let entry = entry.clone();
                    async move { Ok::<_, Infallible>(entry.serve(request).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?options.shutdown_grace, "in-flight requests did not finish within the grace period");
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}
