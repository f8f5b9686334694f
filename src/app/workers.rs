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
use tokio::sync::{mpsc, oneshot, watch};

use super::connection_cap::Slot;
use super::fast_lane::{Lane, Outcome};
use super::framing::{AmbiguousFraming, Sniffed};
use super::listener::stopped;
use super::rewind::Rewind;
use crate::proxy::{ClientAddr, Entry};

/// Per-worker serving options.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// How long in-flight requests may continue after shutdown begins.
    pub shutdown_grace: Duration,
}

/// A new connection, which listening socket it came from, and its place under the
/// connection cap (given back when the connection ends).
struct Accepted {
    listener: usize,
    stream: StdStream,
    slot: Slot,
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
    pub fn hand_over(&self, listener: usize, stream: StdStream, slot: Slot) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let accepted = Accepted {
            listener,
            stream,
            slot,
        };
        if self.tx.send(accepted).is_err() {
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
    let state = WorkerState::new(entries, options, connections.clone());
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
    builder: http1::Builder,
}

/// What every connection task of a worker holds: the worker's own stop signal (so waiting
/// connections never contend with other threads for it) and a drain token whose last drop
/// tells the worker that every connection has ended.
#[derive(Clone)]
struct ConnectionTie {
    stop: watch::Receiver<bool>,
    _drain: mpsc::Sender<()>,
}

impl WorkerState {
    fn new(entries: Vec<Entry>, options: ServeOptions, connections: Arc<AtomicUsize>) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            // hyper's own default is about 400 KiB; the lane's limit holds on every path.
            .max_buf_size(super::fast_lane::MAX_HEAD)
            .keep_alive(true);
        Self {
            entries,
            options,
            connections,
            builder,
        }
    }

    async fn run(self, mut rx: mpsc::UnboundedReceiver<Accepted>, mut stop: watch::Receiver<bool>) {
        let (stop_connections, connection_stop) = watch::channel(false);
        let (drain, mut drained) = mpsc::channel(1);
        let tie = ConnectionTie {
            stop: connection_stop,
            _drain: drain,
        };
        loop {
            tokio::select! {
                accepted = rx.recv() => match accepted {
                    Some(accepted) => self.serve(accepted, tie.clone()),
                    None => break,
                },
                _ = stopped(&mut stop) => break,
            }
        }
        // Connections accepted before the listeners closed are still answered.
        rx.close();
        while let Ok(accepted) = rx.try_recv() {
            self.serve(accepted, tie.clone());
        }
        drop(tie);
        let _ = stop_connections.send(true);
        let grace = self.options.shutdown_grace;
        if tokio::time::timeout(grace, drained.recv()).await.is_err() {
            tracing::warn!(
                ?grace,
                "in-flight requests did not finish within the grace period"
            );
        }
    }

    fn serve(&self, accepted: Accepted, tie: ConnectionTie) {
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
        let header_timeout = self.options.header_timeout;
        let builder = self.builder.clone();
        let slot = accepted.slot;
        tokio::spawn(async move {
            let _slot = slot;
            let mut tie = tie;
            let lane = Lane {
                entry: &entry,
                peer,
                header_timeout,
            };
            if let Outcome::HandOver { stream, buffered } = lane.serve(stream, &mut tie.stop).await
            {
                let io = Rewind::new(buffered, stream);
                serve_with_hyper(&builder, io, entry, peer, &mut tie.stop).await;
            }
            connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Serves the rest of a connection with hyper: every route, and the requests the fast lane
/// leaves alone. Once `stop` turns true, hyper finishes the request in flight and closes.
async fn serve_with_hyper(
    builder: &http1::Builder,
    io: Rewind<tokio::net::TcpStream>,
    entry: Entry,
    peer: Option<ClientAddr>,
    stop: &mut watch::Receiver<bool>,
) {
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
    let connection = builder.serve_connection(TokioIo::new(Sniffed::new(io, framing)), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}
