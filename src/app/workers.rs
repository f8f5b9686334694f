//! Worker threads, one per core, each with its own single-threaded runtime, in the manner
//! of nginx's worker processes: a connection, its requests and their upstream connections
//! stay on one thread, so no request pays for cross-thread wake-ups or work stealing. The
//! accept loops (on the main runtime) hand connections over; each worker serves them with
//! HTTP/1.1, a header read timeout, and graceful shutdown (finish in-flight requests within
//! the grace period, close idle keep-alive connections).

use std::convert::Infallible;
use std::net::TcpStream as StdStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{mpsc, oneshot, watch};

use super::framing::{AmbiguousFraming, Sniffed};
use super::listener::stopped;
use crate::proxy::{ClientAddr, Entry};

/// Per-worker serving options.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// How long in-flight requests may continue after shutdown begins.
    pub shutdown_grace: Duration,
}

/// A new connection, and which listening socket it came from.
struct Accepted {
    listener: usize,
    stream: StdStream,
}

/// How the accept loops reach a worker.
pub struct WorkerHandle {
    tx: mpsc::UnboundedSender<Accepted>,
    connections: Arc<AtomicUsize>,
}

impl WorkerHandle {
    /// Connections the worker is serving now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Gives the worker a connection from the `listener`-th socket.
    pub fn hand_over(&self, listener: usize, stream: StdStream) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Accepted { listener, stream }).is_err() {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

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

/// Starts a worker that serves connections with `entries[listener]` until `stop` turns
/// true, then drains.
pub fn spawn(
    index: usize,
    entries: Vec<Entry>,
    options: ServeOptions,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(WorkerHandle, Worker)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let state = WorkerState {
        entries,
        options,
        connections: connections.clone(),
        graceful: GracefulShutdown::new(),
    };
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("agentgate-worker-{index}"))
        .spawn(move || {
            runtime.block_on(state.run(rx, stop));
            let _ = done_tx.send(());
        })?;
    Ok((WorkerHandle { tx, connections }, Worker { done }))
}

struct WorkerState {
    entries: Vec<Entry>,
    options: ServeOptions,
    connections: Arc<AtomicUsize>,
    graceful: GracefulShutdown,
}

impl WorkerState {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Accepted>, mut stop: watch::Receiver<bool>) {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.header_timeout)
            .keep_alive(true);
        loop {
            tokio::select! {
                accepted = rx.recv() => match accepted {
                    Some(accepted) => self.serve(&builder, accepted),
                    None => break,
                },
                _ = stopped(&mut stop) => break,
            }
        }
        // Connections accepted before the listeners closed are still answered.
        rx.close();
        while let Ok(accepted) = rx.try_recv() {
            self.serve(&builder, accepted);
        }
        let grace = self.options.shutdown_grace;
        if tokio::time::timeout(grace, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "in-flight requests did not finish within the grace period"
            );
        }
    }

    fn serve(&self, builder: &http1::Builder, accepted: Accepted) {
        let connections = self.connections.clone();
        let stream = match tokio::net::TcpStream::from_std(accepted.stream) {
            Ok(stream) => stream,
            Err(error) => {
                connections.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(%error, "cannot serve a handed-over connection");
                return;
            }
        };
        let entry = self.entries[accepted.listener].clone();
        let peer = stream.peer_addr().ok().map(ClientAddr);
        let framing = AmbiguousFraming::default();
        let seen = framing.clone();
        let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            let entry = entry.clone();
            let refused = super::screen::refuse(&request, seen.seen());
            async move {
                Ok::<_, Infallible>(match refused {
                    Some(refusal) => refusal,
                    None => entry.serve(request).await,
                })
            }
        });
        let connection = self
            .graceful
            .watch(builder.serve_connection(TokioIo::new(Sniffed::new(stream, framing)), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
