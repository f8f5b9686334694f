//! The fast lane: the data plane's common case served straight off the socket, without
//! hyper's connection machinery. A request whose head says it is a plain HTTP/1.1
//! `GET`/`POST`/`DELETE` for the data plane, with no body or a `Content-Length` body that
//! has already arrived, is parsed here (httparse, the parser hyper uses), answered by the
//! same [`Entry`] phases as every other request, and its response written in one go.
//!
//! Everything else is handed to hyper with the bytes read so far put back in front of the
//! connection ([`Outcome::HandOver`]), and hyper keeps the connection from then on:
//! chunked or ambiguous framing (see [`super::framing`]), `Expect`, `Upgrade`, HTTP/1.0,
//! other methods and routes, oversized or malformed heads, and bodies that have not
//! arrived with their head. So every edge of HTTP/1.1 keeps hyper's tested behaviour, and
//! the lane only has to be right about the simple case.
//!
//! Why: on a busy gateway most CPU per request went to the HTTP machinery, not to
//! agentgate's checks; see `docs/performance.md`.

use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::listener::stopped;
use crate::proxy::raw_headers::RawHeaders;
use crate::proxy::{Answer, ClientAddr, Entry};

/// Longest request head the lane reads before leaving the connection to hyper, which is
/// given the same limit and answers 431 past it (hyper stops reading once it holds this
/// much without a whole head, so it holds the limit to within one read).
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most header lines the lane parses; a head with more is left to hyper.
const MAX_HEADERS: usize = 100;
/// Largest body the lane takes; larger ones are streamed by hyper.
const MAX_BODY: usize = 64 * 1024;
/// Response body frames up to this size are copied behind the head and written with it.
const COALESCE: usize = 16 * 1024;

/// How the lane left a connection.
pub enum Outcome {
    /// Closed, or the client went away.
    Closed,
    /// A request the lane does not serve: hyper continues with `buffered` read first.
    HandOver { stream: TcpStream, buffered: Bytes },
}

/// What the lane needs to know about the connection's listener and settings.
pub struct Lane<'a> {
    /// What the listener serves.
    pub entry: &'a Entry,
    /// The client's address, handed to the data plane with each request.
    pub peer: Option<ClientAddr>,
    /// How long a client may take to send a request head, idle time included.
    pub header_timeout: Duration,
}

/// A parsed head the lane serves.
struct Head {
    request: Request<()>,
    body_len: usize,
    close: bool,
}

/// What became of an attempt to read the next head.
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived value on the stack; boxing would allocate per request"
)]
enum Next {
    Head(Head),
    Closed,
    HandOver,
}

/// What parsing the buffered bytes found.
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived value on the stack; boxing would allocate per request"
)]
enum Parsed {
    Complete(Head),
    Partial,
    Unsupported,
}

impl Lane<'_> {
    /// Serves requests on `stream` until it closes or a request needs hyper; stops
    /// between requests once `stop` turns true.
    pub async fn serve(&self, mut stream: TcpStream, stop: &mut watch::Receiver<bool>) -> Outcome {
        let mut buffer = BytesMut::with_capacity(8 * 1024);
        let mut out = Vec::with_capacity(8 * 1024);
        let mut idle = IdleTimer::new(self.header_timeout);
        loop {
            let head = match self
                .next_head(&mut stream, &mut buffer, &mut idle, stop)
                .await
            {
                Next::Head(head) => head,
                Next::Closed => return Outcome::Closed,
                Next::HandOver => {
                    return Outcome::HandOver {
                        stream,
                        buffered: buffer.freeze(),
                    }
                }
            };
            let body = buffer.split_to(head.body_len).freeze();
            let request = head.request.map(|()| body);
            let answer = match super::screen::refuse(&request, false) {
                Some(refusal) => Answer::from(refusal),
                None => self.entry.serve_whole(request, self.peer).await,
            };
            let close = head.close || *stop.borrow();
            match write_response(&mut stream, &mut out, answer, close).await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = stream.shutdown().await;
                    return Outcome::Closed;
                }
                Err(_) => return Outcome::Closed,
            }
        }
    }

    /// Reads until `buffer` starts with a head the lane serves and its whole body.
    async fn next_head(
        &self,
        stream: &mut TcpStream,
        buffer: &mut BytesMut,
        idle: &mut IdleTimer,
        stop: &mut watch::Receiver<bool>,
    ) -> Next {
        let waiting_since = Instant::now();
        loop {
            if !buffer.is_empty() {
                match parse(buffer, |path| self.entry.is_data_plane(path)) {
                    Parsed::Complete(head) => return Next::Head(head),
                    Parsed::Unsupported => return Next::HandOver,
                    Parsed::Partial if buffer.len() > MAX_HEAD => return Next::HandOver,
                    Parsed::Partial => {}
                }
            }
            if buffer.capacity() - buffer.len() < 4 * 1024 {
                buffer.reserve(8 * 1024);
            }
            // A read that leaves room in the buffer tells tokio the socket is drained, so
            // the next request's read waits for readiness instead of first trying a read
            // that fails with EAGAIN (`try_read_buf` left that one syscall per request).
            tokio::select! {
                biased;
                read = stream.read_buf(buffer) => match read {
                    Ok(0) | Err(_) => return Next::Closed,
                    Ok(_) => {}
                },
                () = idle.expired(waiting_since) => return Next::Closed,
                () = stopped(stop), if buffer.is_empty() => return Next::Closed,
            }
        }
    }
}

/// Parses the head at the start of `buffer`, for a path `served` says the lane answers. A
/// head the lane serves is complete only with
/// its whole body buffered; then the head's bytes are taken out of the buffer and the body
/// stays in it.
fn parse(buffer: &mut BytesMut, served: impl Fn(&str) -> bool) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(buffer, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Unsupported,
    };
    let (Some(method), Some(path), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Parsed::Unsupported;
    };
    if !served(path) {
        return Parsed::Unsupported;
    }
    let method = match method {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "DELETE" => Method::DELETE,
        _ => return Parsed::Unsupported,
    };
    let start = buffer.as_ptr() as usize;
    let path_range = offset(start, path.as_bytes());
    let mut names = Vec::with_capacity(parsed.headers.len());
    let mut body_len = None;
    let mut close = false;
    for line in parsed.headers.iter() {
        let Some(name) = header_name(line.name.as_bytes()) else {
            return Parsed::Unsupported;
        };
        if name == header::CONTENT_LENGTH {
            match (body_len, parse_length(line.value)) {
                (None, Some(length)) if length <= MAX_BODY => body_len = Some(length),
                _ => return Parsed::Unsupported,
            }
        } else if name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return Parsed::Unsupported;
        } else if name == header::CONNECTION {
            match connection_closes(line.value) {
                Some(closes) => close |= closes,
                None => return Parsed::Unsupported,
            }
        }
        names.push((name, offset(start, line.value)));
    }
    let body_len = body_len.unwrap_or(0);
    if buffer.len() < head_len + body_len {
        // The body is still on its way; hyper reads it as it comes.
        return Parsed::Unsupported;
    }
    let head = buffer.split_to(head_len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(path_range)) else {
        return Parsed::Unsupported;
    };
    let mut headers = HeaderMap::with_capacity(names.len());
    for (name, range) in names {
        let Ok(value) = HeaderValue::from_maybe_shared(head.slice(range)) else {
            return Parsed::Unsupported;
        };
        headers.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Parsed::Complete(Head {
        request,
        body_len,
        close,
    })
}

/// The names nearly every API request carries, as they are spelled in lowercase, and the
/// constants that stand for them. The spelling is kept beside each constant, not read
/// from it, because [`HeaderName::as_str`] goes through a match over every standard name
/// (about a quarter of the lookup's instructions, measured with callgrind). The test below
/// checks that each spelling is its constant's.
static COMMON_NAMES: [(&str, HeaderName); 12] = [
    ("host", header::HOST),
    ("authorization", header::AUTHORIZATION),
    ("content-type", header::CONTENT_TYPE),
    ("content-length", header::CONTENT_LENGTH),
    ("user-agent", header::USER_AGENT),
    ("accept", header::ACCEPT),
    ("accept-encoding", header::ACCEPT_ENCODING),
    ("connection", header::CONNECTION),
    (
        "idempotency-key",
        HeaderName::from_static("idempotency-key"),
    ),
    ("stripe-version", HeaderName::from_static("stripe-version")),
    ("stripe-account", HeaderName::from_static("stripe-account")),
    (
        "x-stripe-client-user-agent",
        HeaderName::from_static("x-stripe-client-user-agent"),
    ),
];

/// A header line's name; `None` if it is not a valid one. The common names are matched
/// without parsing: [`HeaderName::from_bytes`] lowercases every name into a buffer first,
/// and copies one outside the standard set (such as `idempotency-key`) into an
/// allocation of its own.
fn header_name(name: &[u8]) -> Option<HeaderName> {
    COMMON_NAMES
        .iter()
        .find(|(lower, _)| spells(name, lower))
        .map(|(_, common)| common.clone())
        .or_else(|| HeaderName::from_bytes(name).ok())
}

/// Whether `name` is `lower` in any case. Every byte is compared, without stopping at the
/// first difference, so the compiler can compare many at once; a name is only compared in
/// full when its length matches.
fn spells(name: &[u8], lower: &str) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower.as_bytes())
            .fold(0, |differs, (byte, low)| {
                differs | (byte.to_ascii_lowercase() ^ low)
            })
            == 0
}

/// Where `part` lies in the buffer starting at address `start`.
fn offset(start: usize, part: &[u8]) -> std::ops::Range<usize> {
    let from = part.as_ptr() as usize - start;
    from..from + part.len()
}

/// A `Content-Length` value: digits only, as RFC 9110 §8.6 requires.
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether a `Connection` header asks to close; `None` for tokens the lane leaves to hyper.
fn connection_closes(value: &[u8]) -> Option<bool> {
    let mut closes = false;
    for token in value.split(|&b| b == b',') {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"close") {
            closes = true;
        } else if !token.eq_ignore_ascii_case(b"keep-alive") {
            return None;
        }
    }
    Some(closes)
}

/// Writes `answer`, Stripe's header lines copied out as they are; whether the connection
/// stays open for another request. A body that fails part-way returns an error, so the
/// caller drops the connection and the client sees a cut response, never a
/// complete-looking one.
async fn write_response(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    answer: Answer,
    close: bool,
) -> io::Result<bool> {
    let Answer {
        response,
        stripe_headers,
    } = answer;
    let (parts, mut body) = response.into_parts();
    let close = close || response_closes(&parts.headers);
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let length = match bodiless {
        true => Some(0),
        false => body
            .size_hint()
            .exact()
            .or_else(|| declared_length(&parts.headers)),
    };
    out.clear();
    write_head(out, parts.status, &parts.headers, &stripe_headers, close);
    if !bodiless {
        match length {
            Some(length) => {
                // Formatted straight into the buffer: writing into a Vec cannot fail.
                let _ = write!(out, "content-length: {length}\r\n");
            }
            None => write_header(out, b"transfer-encoding", b"chunked"),
        }
    }
    out.extend_from_slice(b"\r\n");
    if bodiless {
        stream.write_all(out).await?;
        return Ok(!close);
    }
    let chunked = length.is_none();
    let mut remaining = length.unwrap_or(u64::MAX);
    loop {
        // What has arrived goes out with the head; a body still on its way waits for it
        // only after the head (and anything before) has been sent.
        let next = match body.frame().now_or_never() {
            Some(next) => next,
            None => {
                if !out.is_empty() {
                    stream.write_all(out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let Some(frame) = next else {
            break;
        };
        let frame = frame.map_err(io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        remaining = remaining
            .checked_sub(data.len() as u64)
            .ok_or_else(|| io::Error::other("the body is longer than its length"))?;
        if chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            stream.write_all(out).await?;
            out.clear();
            stream.write_all(&data).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if body.is_end_stream() {
            break;
        }
        if out.len() > COALESCE {
            stream.write_all(out).await?;
            out.clear();
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    } else if remaining != 0 {
        return Err(io::Error::other("the body ended before its length"));
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
    }
    Ok(!close)
}

/// The status line, Stripe's lines and the response's own headers; framing headers are
/// the writer's.
fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    stripe_headers: &RawHeaders,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(stripe_headers.lines());
    for (name, value) in headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == header::CONTENT_LENGTH
        {
            continue;
        }
        write_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !headers.contains_key(header::DATE) && !stripe_headers.has_date() {
        with_http_date(|date| write_header(out, b"date", date.as_bytes()));
    }
    if close {
        write_header(out, b"connection", b"close");
    }
}

fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether the response's own `Connection` header (agentgate's answers set none; a
/// refusal may say `close`) ends the connection; anything but `keep-alive` does.
fn response_closes(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .is_some_and(|value| connection_closes(value.as_bytes()) != Some(false))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_LENGTH)?;
    parse_length(value.as_bytes()).map(|length| length as u64)
}

/// Runs `write` with the `Date` header's value, formatted once a second per thread and
/// lent, not copied, to each response.
fn with_http_date(write: impl FnOnce(&str)) {
    thread_local! {
        static CACHED: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        write(&cached.1);
    })
}

/// The connection's header deadline, kept in one timer that is moved only when it fires
/// early: a busy connection pays no timer operation per request.
struct IdleTimer {
    limit: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// Resolves once `limit` has passed since `since`.
    async fn expired(&mut self, since: Instant) {
        let deadline = since + self.limit;
        loop {
            if self.sleep.deadline() > deadline {
                self.sleep.as_mut().reset(deadline);
            }
            self.sleep.as_mut().await;
            if Instant::now() >= deadline {
                return;
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Parsed {
        parse(&mut BytesMut::from(text), |path| path != "/other")
    }

    #[test]
    fn parses_a_simple_request_and_leaves_the_body() {
        let mut buffer = BytesMut::from(
            "POST /v1/connections/stripe/customers?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nX-A: 1\r\nX-A: 2\r\n\r\nemail=aGET",
        );
        let Parsed::Complete(head) = parse(&mut buffer, |_| true) else {
            panic!("not parsed");
        };
        assert_eq!(head.request.method(), Method::POST);
        assert_eq!(
            head.request.uri().path(),
            "/v1/connections/stripe/customers"
        );
        assert_eq!(head.request.uri().query(), Some("x=1"));
        let values: Vec<_> = head.request.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(head.body_len, 7);
        assert!(!head.close);
        assert_eq!(&buffer[..], b"email=aGET");
    }

    #[test]
    fn leaves_everything_unusual_to_hyper() {
        let unusual = [
            "GET / HTTP/1.0\r\n\r\n",
            "PUT /x HTTP/1.1\r\n\r\n",
            "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST /x HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            "POST /x HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
            "POST /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /x HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            "GET /x HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "GET /other HTTP/1.1\r\n\r\n",
        ];
        for text in unusual {
            assert!(matches!(parsed(text), Parsed::Unsupported), "{text:?}");
        }
        assert!(matches!(parsed("GET /x HTTP/1.1\r\nHost"), Parsed::Partial));
    }

    #[test]
    fn header_names_are_those_http_parses_in_any_case() {
        let spellings = COMMON_NAMES
            .iter()
            .map(|(lower, _)| (*lower).to_owned())
            .chain([
                "x-custom".to_owned(),
                "hosts".to_owned(),
                "idempotency".to_owned(),
            ]);
        for lower in spellings {
            let upper = lower.to_ascii_uppercase();
            let title: String = lower
                .split('-')
                .map(|word| word[..1].to_ascii_uppercase() + &word[1..])
                .collect::<Vec<_>>()
                .join("-");
            for spelling in [&lower, &upper, &title] {
                assert_eq!(
                    header_name(spelling.as_bytes()),
                    Some(HeaderName::from_bytes(lower.as_bytes()).unwrap()),
                    "{spelling}"
                );
            }
        }
        for invalid in ["bad header", "", "host:", "h\u{e9}"] {
            assert_eq!(header_name(invalid.as_bytes()), None, "{invalid:?}");
        }
    }

    #[test]
    fn connection_close_is_noticed() {
        let Parsed::Complete(head) =
            parsed("GET /x HTTP/1.1\r\nConnection: Keep-Alive, close\r\n\r\n")
        else {
            panic!("not parsed");
        };
        assert!(head.close);
    }
}
