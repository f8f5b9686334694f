//! Watches the bytes a client sends for a request head that states its length twice
//! (`Content-Length` and `Transfer-Encoding`). hyper resolves such a head itself, as RFC 9112
//! §6.3 allows (the chunked coding wins, the length header is dropped, the connection closes
//! after the answer), so no route could tell; but two parsers reading one stream two ways is
//! how requests are smuggled, and agentgate refuses it outright. The scan is a small state
//! machine over the header lines of each block, with no buffering; body bytes only matter if
//! they contain header-like lines, which a form or JSON body cannot.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
const CONTENT_LENGTH: &[u8] = b"content-length";
/// Longest header name looked for.
const NAME_MAX: usize = 17;

/// Whether a connection has sent a head with both framings; shared with its service.
#[derive(Clone, Default)]
pub struct AmbiguousFraming(Arc<AtomicBool>);

impl AmbiguousFraming {
    /// Whether any head so far stated its length twice.
    pub fn seen(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where the scan stands in the current line and header block.
#[derive(Default)]
struct Scan {
    name: [u8; NAME_MAX],
    len: usize,
    /// The line is longer than any name looked for, or its name has ended (`:` seen).
    settled: bool,
    /// Bytes other than CR on the current line.
    line_bytes: usize,
    transfer_encoding: bool,
    content_length: bool,
}

impl Scan {
    /// Feeds bytes; whether a block with both framings ended in them.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut found = false;
        for &byte in bytes {
            match byte {
                b'\n' => {
                    if self.line_bytes == 0 {
                        found |= self.transfer_encoding && self.content_length;
                        self.transfer_encoding = false;
                        self.content_length = false;
                    }
                    self.len = 0;
                    self.settled = false;
                    self.line_bytes = 0;
                }
                b'\r' => {}
                b':' if !self.settled => {
                    let name = &self.name[..self.len];
                    self.transfer_encoding |= name == TRANSFER_ENCODING;
                    self.content_length |= name == CONTENT_LENGTH;
                    // Both on one head: known before the head ends, so say so now.
                    found |= self.transfer_encoding && self.content_length;
                    self.settled = true;
                    self.line_bytes += 1;
                }
                other => {
                    self.line_bytes += 1;
                    if !self.settled {
                        if self.len < NAME_MAX {
                            self.name[self.len] = other.to_ascii_lowercase();
                            self.len += 1;
                        } else {
                            self.settled = true;
                        }
                    }
                }
            }
        }
        found
    }
}

pin_project_lite::pin_project! {
    /// A client connection whose incoming bytes are scanned (see the module docs).
    pub struct Sniffed<T> {
        #[pin]
        inner: T,
        scan: Scan,
        flag: AmbiguousFraming,
    }
}

impl<T> Sniffed<T> {
    /// Wraps a connection; `flag` turns true once a head states its length twice.
    pub fn new(inner: T, flag: AmbiguousFraming) -> Self {
        Self {
            inner,
            scan: Scan::default(),
            flag,
        }
    }
}

impl<T: AsyncRead> AsyncRead for Sniffed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if this.scan.feed(&buf.filled()[before..]) {
                this.flag.0.store(true, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Sniffed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ambiguous(text: &str, split: usize) -> bool {
        let mut scan = Scan::default();
        let bytes = text.as_bytes();
        scan.feed(&bytes[..split]) | scan.feed(&bytes[split..])
    }

    #[test]
    fn finds_both_framings_in_one_head_wherever_the_reads_split_it() {
        let both = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTRANSFER-encoding: chunked\r\n\r\n0\r\n\r\n";
        for split in 0..both.len() {
            assert!(ambiguous(both, split), "split at {split}");
        }
        let bare_lf = "POST /x HTTP/1.1\ntransfer-encoding: chunked\ncontent-length: 5\n\n";
        assert!(ambiguous(bare_lf, 3));
    }

    #[test]
    fn one_framing_per_head_is_fine_even_across_keep_alive_requests() {
        let two = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nemailPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for split in 0..two.len() {
            assert!(!ambiguous(two, split), "split at {split}");
        }
        assert!(!ambiguous(
            "GET /x HTTP/1.1\r\nX-Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            5
        ));
    }
}
