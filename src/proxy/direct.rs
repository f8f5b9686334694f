//! A minimal HTTP/1.1 client to Stripe for requests whose body is already whole (listed
//! operations, MCP calls): it exists because hyper-util's pooled client (pool checkout, a
//! dispatcher task per connection, connector clones) cost a large share of the CPU per
//! proxied request. Here a request is one write of head and body on an idle keep-alive
//! connection of this worker, the response head is parsed with httparse, and the body
//! streams from the connection. Streamed request bodies stay on hyper (see `client.rs`).
//!
//! A request that may have reached Stripe is never re-sent. The only retry is hyper's: a
//! pooled connection found closed before any byte of the request was written to it.

mod body;
mod conn;
#[cfg(test)]
mod tests;
mod wire;

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::uri::{Authority, Scheme};
use http::{Method, Response, Version};
use http_body_util::{BodyExt, Full};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::client::UpstreamFailure;
use super::raw_headers::RawHeaders;
use crate::error::GatewayError;
pub(super) use body::DirectBody;
use conn::{Conn, Pool, Stream, MAX_HEAD};
use wire::Head;
pub(super) use wire::HeaderSource;

/// The worker's direct client to one Stripe base, with its idle connections.
pub(super) struct DirectClient {
    pool: Arc<Pool>,
    /// Host name or address to connect to (IPv6 without brackets).
    host: String,
    port: u16,
    /// The `host` header: the authority without a default port, as hyper wrote it.
    host_header: String,
    /// `None` for plain HTTP.
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
}

/// A failed request write, and whether the connection took none of its bytes (the one
/// case in which the request may be sent again, on another connection).
struct WriteFailure {
    error: io::Error,
    untouched: bool,
}

impl DirectClient {
    /// A client for `scheme://authority` with an empty pool; the TLS configuration is
    /// built here, once.
    pub(super) fn new(scheme: &Scheme, authority: &Authority, connect_timeout: Duration) -> Self {
        let tls = (*scheme == Scheme::HTTPS).then(conn::tls_connector);
        Self::with_tls(authority, tls, connect_timeout)
    }

    /// A client for `authority` over `tls`, or plain HTTP when it is `None`.
    fn with_tls(
        authority: &Authority,
        tls: Option<TlsConnector>,
        connect_timeout: Duration,
    ) -> Self {
        let default_port = if tls.is_some() { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let host_header = if port == default_port {
            authority.host().to_owned()
        } else {
            format!("{}:{port}", authority.host())
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Self {
            pool: Arc::default(),
            host: host.to_owned(),
            port,
            host_header,
            tls,
            connect_timeout,
        }
    }

    /// Sends a request and returns the response once its head has arrived, its headers as
    /// the lines Stripe sent (the response's own map is empty); the body streams from the
    /// connection. `target` is the path and query, `headers` where the head's header lines
    /// come from. The caller bounds the whole exchange with its deadline.
    pub(super) async fn exchange(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderSource<'_>,
        body: Full<Bytes>,
    ) -> Result<(Response<DirectBody>, RawHeaders), UpstreamFailure> {
        let body = whole(body).await;
        let head = wire::encode_head(method, target, &self.host_header, headers, body.len());
        let mut conn = self.deliver(&head, &body).await?;
        let answer = read_head(&mut conn).await.map_err(reset)?;
        let framing = wire::framing(method, &answer).map_err(reset)?;
        let reuse = wire::reusable(headers, &answer).then(|| self.pool.clone());
        let mut response = Response::new(DirectBody::new(conn, framing, reuse));
        *response.status_mut() = answer.status;
        *response.version_mut() = Version::HTTP_11;
        Ok((response, answer.headers))
    }

    /// Writes the request on an idle connection, or a new one. A pooled connection that
    /// refuses the very first byte was closed while idle: nothing reached Stripe, so the
    /// next one is tried. Any other write failure is final.
    async fn deliver(&self, head: &[u8], body: &[u8]) -> Result<Conn, UpstreamFailure> {
        loop {
            let (mut conn, pooled) = match self.pool.checkout() {
                Some(conn) => (conn, true),
                // Boxed: connecting (TLS included) is the rare path, and its future would
                // otherwise make every request's future larger.
                None => (Box::pin(self.connect()).await?, false),
            };
            match write_request(&mut conn.stream, head, body).await {
                Ok(()) => return Ok(conn),
                Err(failure) if pooled && failure.untouched => {
                    tracing::debug!(error = %failure.error, "pooled connection to Stripe was closed; using another");
                }
                Err(failure) => return Err(reset(failure.error)),
            }
        }
    }

    /// Opens a connection (TCP, then TLS for https) within the connect timeout.
    async fn connect(&self) -> Result<Conn, UpstreamFailure> {
        match tokio::time::timeout(self.connect_timeout, self.open()).await {
            Ok(Ok(stream)) => {
                tracing::trace!(host = %self.host, port = self.port, "opened a connection to Stripe");
                Ok(Conn::new(stream))
            }
            Ok(Err(error)) => Err(failure("connect", error)),
            Err(_) => Err(failure(
                "connect",
                format!("no connection within {:?}", self.connect_timeout),
            )),
        }
    }

    /// TCP with `TCP_NODELAY` (requests are written whole), then the TLS handshake.
    async fn open(&self) -> io::Result<Stream> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Stream::Tls(Box::new(tls.connect(name, tcp).await?)))
    }
}

/// The bytes of a body that is already whole.
async fn whole(mut body: Full<Bytes>) -> Bytes {
    match body.frame().await {
        Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
        Some(Err(never)) => match never {},
        None => Bytes::new(),
    }
}

/// Head and body in one (vectored) write.
async fn write_request(stream: &mut Stream, head: &[u8], body: &[u8]) -> Result<(), WriteFailure> {
    let mut request = head.chain(body);
    let total = request.remaining();
    let written = match stream.write_all_buf(&mut request).await {
        Ok(()) => stream.flush().await,
        Err(error) => Err(error),
    };
    written.map_err(|error| WriteFailure {
        error,
        untouched: request.remaining() == total,
    })
}

/// Reads the final response head, skipping interim (1xx) ones.
async fn read_head(conn: &mut Conn) -> io::Result<Head> {
    loop {
        // Nothing to parse before the first read.
        let filled = conn.buf.filled();
        let parsed = if filled.is_empty() {
            None
        } else {
            wire::parse_head(filled)?
        };
        let Some((len, head)) = parsed else {
            if conn.buf.filled().len() >= MAX_HEAD {
                return Err(wire::invalid("response head exceeds 64 KiB"));
            }
            if poll_fn(|cx| conn.poll_fill(cx)).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response head",
                ));
            }
            continue;
        };
        conn.buf.consume(len);
        if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
            return Err(wire::invalid("unexpected 101 Switching Protocols"));
        }
        if !head.status.is_informational() {
            return Ok(head);
        }
    }
}

/// The connection broke (or the answer was not HTTP) after the request was sent.
fn reset(error: io::Error) -> UpstreamFailure {
    failure("reset", error)
}

/// Stripe could not be reached or answered with something that is not HTTP.
fn failure(kind: &'static str, cause: impl std::fmt::Display) -> UpstreamFailure {
    UpstreamFailure {
        error: GatewayError::UpstreamUnreachable,
        kind,
        cause: cause.to_string(),
    }
}
