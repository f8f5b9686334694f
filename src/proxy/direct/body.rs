//! The response body of the direct client, streamed from the connection as the agent reads
//! it: by length, chunked (trailers dropped) or until the server closes. A body that ends
//! early is an error, never a short success; a fully read one hands its connection back to
//! the pool when the exchange allows reuse.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::conn::{Conn, Pool};
use super::wire::{invalid, Framing};

/// Where the body stands.
enum State {
    /// This many bytes still to come.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Until the server closes.
    Close,
    /// Complete.
    Done,
}

/// Where a chunked body stands (RFC 9112 §7.1).
#[derive(Clone, Copy)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data still to come.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// Stripe's response body, read from its connection on demand.
pub(in crate::proxy) struct DirectBody {
    conn: Option<Conn>,
    state: State,
    /// Where the connection goes once the body is read completely, if it may be reused.
    reuse: Option<Arc<Pool>>,
}

/// The error a body ends with when the server closes before it is complete.
fn cut() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "Stripe closed the connection before the response body was complete",
    )
}

impl DirectBody {
    /// A body delimited by `framing`, read from `conn` (which already holds any bytes read
    /// past the head).
    pub(super) fn new(conn: Conn, framing: Framing, reuse: Option<Arc<Pool>>) -> Self {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(len) => State::Length(len),
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::Close => State::Close,
        };
        let mut body = Self {
            conn: Some(conn),
            state,
            reuse,
        };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        body
    }

    /// Ends the body and pools the connection if reuse is allowed and nothing trails it.
    fn finish(&mut self) {
        self.state = State::Done;
        let (Some(conn), Some(pool)) = (self.conn.take(), self.reuse.take()) else {
            return;
        };
        if conn.buf.filled().is_empty() {
            pool.checkin(conn);
        }
    }

    /// The next piece of data, `None` at the end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        match self.state {
            State::Length(remaining) => self.poll_length(cx, remaining),
            State::Chunked(_) => self.poll_chunked(cx),
            State::Close => self.poll_close(cx),
            State::Done => Poll::Ready(Ok(None)),
        }
    }

    /// Data of a body with a `Content-Length`, ending it when the last byte arrives.
    fn poll_length(
        &mut self,
        cx: &mut Context<'_>,
        remaining: u64,
    ) -> Poll<io::Result<Option<Bytes>>> {
        let data = ready!(self.poll_some(cx, remaining))?;
        let left = remaining - data.len() as u64;
        self.state = State::Length(left);
        if left == 0 {
            self.finish();
        }
        Poll::Ready(Ok(Some(data)))
    }

    /// Data of a body delimited by the server closing; that connection is never reused.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        if conn.buf.filled().is_empty() && ready!(conn.poll_fill(cx))? == 0 {
            self.conn = None;
            self.state = State::Done;
            return Poll::Ready(Ok(None));
        }
        let len = conn.buf.filled().len();
        Poll::Ready(Ok(Some(conn.buf.take(len))))
    }

    /// Data of a chunked body: size lines, data and CRLFs, then the trailers.
    fn poll_chunked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            let State::Chunked(chunk) = self.state else {
                return Poll::Ready(Ok(None));
            };
            let next = match chunk {
                Chunk::Size => ready!(self.poll_chunk_size(cx))?,
                Chunk::Data(remaining) => {
                    let data = ready!(self.poll_some(cx, remaining))?;
                    let left = remaining - data.len() as u64;
                    self.state = State::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Poll::Ready(Ok(Some(data)));
                }
                Chunk::DataEnd => {
                    ready!(self.poll_expect_crlf(cx))?;
                    Chunk::Size
                }
                Chunk::Trailers => {
                    if ready!(self.poll_trailer_line(cx))? {
                        self.finish();
                        return Poll::Ready(Ok(None));
                    }
                    Chunk::Trailers
                }
            };
            self.state = State::Chunked(next);
        }
    }

    /// Reads a chunk-size line: the next state is its data, or the trailers after the last.
    fn poll_chunk_size(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Chunk>> {
        let conn = self.conn_mut()?;
        loop {
            match httparse::parse_chunk_size(conn.buf.filled())
                .map_err(|_| invalid("invalid chunk size"))?
            {
                httparse::Status::Complete((used, 0)) => {
                    conn.buf.consume(used);
                    return Poll::Ready(Ok(Chunk::Trailers));
                }
                httparse::Status::Complete((used, size)) => {
                    conn.buf.consume(used);
                    return Poll::Ready(Ok(Chunk::Data(size)));
                }
                httparse::Status::Partial => ready!(poll_more(conn, cx))?,
            }
        }
    }

    /// Consumes the CRLF that ends chunk data.
    fn poll_expect_crlf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let conn = self.conn_mut()?;
        while conn.buf.filled().len() < 2 {
            ready!(poll_more(conn, cx))?;
        }
        if !conn.buf.filled().starts_with(b"\r\n") {
            return Poll::Ready(Err(invalid("chunk data not followed by CRLF")));
        }
        conn.buf.consume(2);
        Poll::Ready(Ok(()))
    }

    /// Skips one trailer line; `true` when it was the empty line that ends the body.
    fn poll_trailer_line(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let conn = self.conn_mut()?;
        loop {
            let filled = conn.buf.filled();
            if let Some(at) = filled.windows(2).position(|pair| pair == b"\r\n") {
                conn.buf.consume(at + 2);
                return Poll::Ready(Ok(at == 0));
            }
            ready!(poll_more(conn, cx))?;
        }
    }

    /// Up to `limit` bytes: those already buffered, else the next read's.
    fn poll_some(&mut self, cx: &mut Context<'_>, limit: u64) -> Poll<io::Result<Bytes>> {
        let conn = self.conn_mut()?;
        if conn.buf.filled().is_empty() {
            ready!(poll_more(conn, cx))?;
        }
        let available = conn.buf.filled().len();
        let n = usize::try_from(limit).map_or(available, |limit| limit.min(available));
        Poll::Ready(Ok(conn.buf.take(n)))
    }

    /// The connection while the body is being read.
    fn conn_mut(&mut self) -> io::Result<&mut Conn> {
        self.conn.as_mut().ok_or_else(cut)
    }
}

/// Reads more bytes; the end of the stream here means the body was cut.
fn poll_more(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match ready!(conn.poll_fill(cx))? {
        0 => Poll::Ready(Err(cut())),
        _ => Poll::Ready(Ok(())),
    }
}

impl std::fmt::Debug for DirectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectBody")
            .field("size_hint", &self.size_hint())
            .finish_non_exhaustive()
    }
}

impl HttpBody for DirectBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match ready!(this.poll_data(cx)) {
            Ok(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => {
                // A failed body never resumes: drop the connection, end in the error.
                this.conn = None;
                this.reuse = None;
                this.state = State::Done;
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(remaining) => SizeHint::with_exact(remaining),
            State::Done => SizeHint::with_exact(0),
            State::Chunked(_) | State::Close => SizeHint::default(),
        }
    }
}
