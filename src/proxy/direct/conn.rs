//! One upstream connection (plain TCP to a loopback double, or TLS to Stripe) with its read
//! buffer, and the worker's list of idle ones. It owns reuse hygiene: age, the cap, and the
//! check that the peer has not closed an idle connection; it never decides what is sent.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Idle connections older than this are closed rather than reused (hyper's setting before).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per worker.
const MAX_IDLE: usize = 512;
/// The read buffer's first size: a typical Stripe answer fits, so it arrives in one read.
const INITIAL_BUFFER: usize = 16 * 1024;
/// How far the read buffer may grow; a response head beyond it is refused.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// The TLS settings for Stripe: the same Mozilla roots hyper-rustls trusted, HTTP/1.1 only.
pub(super) fn tls_connector() -> TlsConnector {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// The transport under one connection.
pub(super) enum Stream {
    /// Plain HTTP, only ever to a loopback base.
    Plain(TcpStream),
    /// HTTPS; boxed so moving a connection in and out of the pool stays cheap.
    Tls(Box<TlsStream<TcpStream>>),
}

/// An upstream connection and the bytes read from it but not yet used.
pub(super) struct Conn {
    /// The transport.
    pub(super) stream: Stream,
    /// Bytes read ahead of the parser.
    pub(super) buf: ReadBuffer,
}

impl Conn {
    /// Wraps a freshly opened transport.
    pub(super) fn new(stream: Stream) -> Self {
        Self {
            stream,
            buf: ReadBuffer::new(),
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` is the end of the stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.poll_fill(&mut self.stream, cx)
    }

    /// Whether an idle connection is still usable: one read polled with a no-op waker must
    /// be pending. tokio remembers that the socket was drained, so this costs no syscall
    /// unless the peer did something (closed, reset or sent bytes), each a reason to drop it.
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        Pin::new(&mut self.stream)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }
}

/// A reusable, zero-initialised read buffer (no per-read memset, no `unsafe`): the bytes
/// between `start` and `end` are read but not yet consumed.
pub(super) struct ReadBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    /// An empty buffer of the initial size.
    fn new() -> Self {
        Self {
            data: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }

    /// The unconsumed bytes.
    pub(super) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Marks `n` bytes as used.
    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Copies out and consumes the next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> bytes::Bytes {
        let taken = bytes::Bytes::copy_from_slice(&self.filled()[..n]);
        self.consume(n);
        taken
    }

    /// Reads once into the free space after the unconsumed bytes.
    fn poll_fill(&mut self, stream: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.make_room()?;
        let mut target = ReadBuf::new(&mut self.data[self.end..]);
        ready!(Pin::new(stream).poll_read(cx, &mut target))?;
        let n = target.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }

    /// Moves unconsumed bytes to the front, or grows the buffer up to [`MAX_HEAD`].
    fn make_room(&mut self) -> io::Result<()> {
        if self.end < self.data.len() {
            return Ok(());
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        } else if self.data.len() < MAX_HEAD {
            self.data.resize(MAX_HEAD, 0);
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a response line or head exceeds 64 KiB",
            ));
        }
        Ok(())
    }
}

/// The worker's idle connections, most recently used last. A `Mutex` rather than a
/// `RefCell` only because the futures holding it must be `Send`; it is never contended.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<Idle>>,
}

/// An idle connection and when it became idle.
struct Idle {
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// The most recently used idle connection that is young enough and still open.
    pub(super) fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while let Some(Idle { mut conn, since }) = idle.pop() {
            if now.duration_since(since) > IDLE_TIMEOUT {
                // The rest went idle even earlier.
                idle.clear();
                return None;
            }
            if conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection whose exchange ended cleanly, unless the pool is full.
    pub(super) fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

// === impl Stream ===

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
