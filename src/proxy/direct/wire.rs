//! HTTP/1.1 framing for the direct client: the request head it writes and the response head
//! it parses, and how the response body is delimited (RFC 9112 §6.3). Pure functions over
//! bytes; no I/O here.

use std::io;
use std::mem::MaybeUninit;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::proxy::headers;
use crate::proxy::raw_headers::{RawHeaders, RawHeadersBuilder};

/// The most response headers accepted, as hyper's default.
const MAX_HEADERS: usize = 100;

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body at all (HEAD, 204, 304, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct Head {
    /// The status code.
    pub(super) status: StatusCode,
    /// The end-to-end headers, as sent: hop-by-hop ones (RFC 9110 §7.6.1), those the
    /// `Connection` header names included, are read for framing here and never kept, so
    /// the proxy has nothing to strip. Nor is an `agentgate-request-id`: the data plane
    /// sets its own.
    pub(super) headers: RawHeaders,
    /// Whether the server answered with HTTP/1.0 (whose connections are not kept).
    pub(super) http10: bool,
    /// `Transfer-Encoding` was sent; `Some(true)` when `chunked` is its final coding.
    transfer_encoding: Option<bool>,
    /// What the `Content-Length` headers say.
    content_length: ContentLength,
    /// Whether `Connection` lists `close`.
    close: bool,
}

/// The `Content-Length` of a response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContentLength {
    Absent,
    Valid(u64),
    /// Unparsable or conflicting values: an error once the body's framing depends on them.
    Invalid,
}

/// What one pass over a head's header lines learns for framing, before any is kept.
struct Facts<'a> {
    transfer_encoding: Option<bool>,
    content_length: ContentLength,
    close: bool,
    /// Names the `Connection` header lists beyond the standard hop-by-hop ones.
    listed: Vec<&'a [u8]>,
}

impl<'a> Facts<'a> {
    fn read(lines: &[httparse::Header<'a>]) -> Self {
        let mut facts = Facts {
            transfer_encoding: None,
            content_length: ContentLength::Absent,
            close: false,
            listed: Vec::new(),
        };
        for line in lines {
            let name = line.name.as_bytes();
            if name.eq_ignore_ascii_case(b"transfer-encoding") {
                facts.transfer_encoding = Some(chunked_last(line.value));
            } else if name.eq_ignore_ascii_case(b"content-length") {
                facts.content_length = content_length(facts.content_length, line.value);
            } else if name.eq_ignore_ascii_case(b"connection") {
                facts.close |= headers::lists_close(line.value);
                facts
                    .listed
                    .extend(headers::listed_in_connection(line.value));
            }
        }
        facts
    }

    /// Whether a header with this name goes no further than this hop.
    fn hop_by_hop(&self, name: &[u8]) -> bool {
        headers::is_hop_by_hop(name) || self.listed.iter().any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// Where a request head's header lines come from.
pub(in crate::proxy) enum HeaderSource<'a> {
    /// A request's own map, sent as it is but for `host` and the framing headers, which
    /// the writer sets.
    Map(&'a HeaderMap),
    /// A caller's headers through the allow-list ([`headers::forwarded_request_headers`]),
    /// then the credential agentgate injects and the `Idempotency-Key` it derived, which
    /// replaces the caller's. Written straight from the caller's map: no second map.
    Caller {
        headers: &'a HeaderMap,
        authorization: &'a HeaderValue,
        idempotency_key: Option<&'a HeaderValue>,
    },
}

impl HeaderSource<'_> {
    /// Whether the request asks for its connection to be closed after the answer. The
    /// caller's own `Connection` is about the caller's connection and never crosses.
    fn closes(&self) -> bool {
        match self {
            HeaderSource::Map(headers) => says_close(headers),
            HeaderSource::Caller { .. } => false,
        }
    }
}

/// The request head: request line, `host`, the headers, then the body's length.
/// The caller's `host`, `content-length` and `transfer-encoding` are replaced, never passed.
pub(super) fn encode_head(
    method: &Method,
    target: &str,
    host: &str,
    headers: &HeaderSource<'_>,
    body_len: usize,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    for part in [
        method.as_str(),
        " ",
        target,
        " HTTP/1.1\r\nhost: ",
        host,
        "\r\n",
    ] {
        head.extend_from_slice(part.as_bytes());
    }
    match *headers {
        HeaderSource::Map(map) => {
            for (name, value) in map {
                if name == header::HOST
                    || name == header::CONTENT_LENGTH
                    || name == header::TRANSFER_ENCODING
                {
                    continue;
                }
                push_header(&mut head, name.as_str(), value.as_bytes());
            }
        }
        HeaderSource::Caller {
            headers: caller,
            authorization,
            idempotency_key,
        } => {
            for (name, value) in headers::forwarded_request_headers(caller) {
                let replaced = idempotency_key.is_some() && name == headers::IDEMPOTENCY_KEY;
                if name == header::CONTENT_LENGTH || replaced {
                    continue;
                }
                push_header(&mut head, name.as_str(), value.as_bytes());
            }
            push_header(&mut head, "authorization", authorization.as_bytes());
            if let Some(key) = idempotency_key {
                push_header(&mut head, "idempotency-key", key.as_bytes());
            }
        }
    }
    if body_len > 0 || payload_expected(method) {
        push_header(
            &mut head,
            "content-length",
            itoa::Buffer::new().format(body_len).as_bytes(),
        );
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Appends `name: value` and its CRLF.
fn push_header(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// Methods whose requests carry a body, so an empty one is announced as
/// `content-length: 0` (hyper's rule: all but GET, HEAD, DELETE and CONNECT).
fn payload_expected(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::CONNECT
    )
}

/// Parses a response head from the start of `bytes`: `None` while it is incomplete, else
/// its length and content. Malformed heads and invalid names or values are errors.
pub(super) fn parse_head(bytes: &[u8]) -> io::Result<Option<(usize, Head)>> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut response, bytes, &mut slots)
        .map_err(invalid)?;
    let len = match parsed {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(len) => len,
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid("bad status code"))?;
    let facts = Facts::read(response.headers);
    let mut kept = RawHeadersBuilder::with_capacity(len);
    for slot in response.headers.iter() {
        let name = slot.name.as_bytes();
        let own = name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(headers::REQUEST_ID_HEADER.as_str().as_bytes());
        if !own && !facts.hop_by_hop(name) {
            kept.push(name, slot.value);
        }
    }
    let content_length = match facts.content_length {
        ContentLength::Valid(length) => Some(length),
        ContentLength::Absent | ContentLength::Invalid => None,
    };
    let http10 = response.version == Some(0);
    Ok(Some((
        len,
        Head {
            status,
            headers: kept.finish(content_length),
            http10,
            transfer_encoding: facts.transfer_encoding,
            content_length: facts.content_length,
            close: facts.close,
        },
    )))
}

/// How the body of a response to `method` is delimited (RFC 9112 §6.3).
pub(super) fn framing(method: &Method, head: &Head) -> io::Result<Framing> {
    let status = head.status;
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(chunked) = head.transfer_encoding {
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    match head.content_length {
        ContentLength::Valid(0) => Ok(Framing::Empty),
        ContentLength::Valid(len) => Ok(Framing::Length(len)),
        ContentLength::Absent => Ok(Framing::Close),
        ContentLength::Invalid => Err(invalid("invalid or conflicting content-length")),
    }
}

/// Whether the connection may carry another exchange after this response: HTTP/1.1, no
/// `Connection: close` either way, and no `Transfer-Encoding` beside a `Content-Length`
/// (RFC 9112 §6.3 asks to close after such a response).
pub(super) fn reusable(request: &HeaderSource<'_>, head: &Head) -> bool {
    let both_lengths =
        head.transfer_encoding.is_some() && head.content_length != ContentLength::Absent;
    !(head.http10 || both_lengths || head.close || request.closes())
}

/// Whether `chunked` is the final coding of a `Transfer-Encoding` value.
fn chunked_last(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// `seen` updated with one `Content-Length` line: a comma-separated list of digits that
/// must all agree (RFC 9110 §8.6).
fn content_length(seen: ContentLength, value: &[u8]) -> ContentLength {
    let mut length = seen;
    for item in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        let parsed = (!item.is_empty() && item.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(item).ok()?.parse::<u64>().ok())
            .flatten();
        length = match (length, parsed) {
            (ContentLength::Invalid, _) | (_, None) => return ContentLength::Invalid,
            (ContentLength::Valid(before), Some(now)) if before != now => {
                return ContentLength::Invalid
            }
            (_, Some(now)) => ContentLength::Valid(now),
        };
    }
    length
}

/// Whether a `Connection` header lists `close`.
fn says_close(map: &HeaderMap) -> bool {
    map.get_all(header::CONNECTION)
        .iter()
        .any(|value| headers::lists_close(value.as_bytes()))
}

/// An `InvalidData` error: the peer sent something that is not HTTP/1.1.
pub(super) fn invalid<E>(error: E) -> io::Error
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    io::Error::new(io::ErrorKind::InvalidData, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a complete head.
    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().unwrap().1
    }

    #[test]
    fn only_methods_with_a_payload_announce_an_empty_body() {
        let none = HeaderMap::new();
        let none = HeaderSource::Map(&none);
        let get = encode_head(&Method::GET, "/v1/x", "h", &none, 0);
        assert_eq!(get, b"GET /v1/x HTTP/1.1\r\nhost: h\r\n\r\n");
        let post = encode_head(&Method::POST, "/v1/x", "h", &none, 0);
        assert_eq!(
            post,
            b"POST /v1/x HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_callers_headers_pass_the_allow_list_and_the_injected_ones_come_last() {
        let mut caller = HeaderMap::new();
        for (name, value) in [
            ("host", "gateway"),
            ("authorization", "Bearer agk_caller"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", "a=b"),
            ("connection", "stripe-version"),
            ("stripe-version", "2026-07-29.dahlia"),
            ("content-length", "99"),
            ("idempotency-key", "caller-key"),
            ("user-agent", "Stripe/v1 PythonBindings"),
        ] {
            caller.append(name, HeaderValue::from_static(value));
        }
        let authorization = HeaderValue::from_static("Bearer sk_test_x");
        let source = |idempotency_key| HeaderSource::Caller {
            headers: &caller,
            authorization: &authorization,
            idempotency_key,
        };
        let head = encode_head(&Method::POST, "/v1/customers", "h", &source(None), 3);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /v1/customers HTTP/1.1\r\nhost: h\r\n\
             content-type: application/x-www-form-urlencoded\r\nidempotency-key: caller-key\r\n\
             user-agent: Stripe/v1 PythonBindings\r\nauthorization: Bearer sk_test_x\r\n\
             content-length: 3\r\n\r\n"
        );
        let derived = HeaderValue::from_static("agentgate-derived");
        let head = encode_head(
            &Method::POST,
            "/v1/customers",
            "h",
            &source(Some(&derived)),
            3,
        );
        let head = String::from_utf8(head).unwrap();
        assert!(!head.contains("caller-key"), "{head}");
        assert!(
            head.ends_with("authorization: Bearer sk_test_x\r\nidempotency-key: agentgate-derived\r\ncontent-length: 3\r\n\r\n"),
            "{head}"
        );
        assert!(
            !source(None).closes(),
            "the caller's Connection is not Stripe's"
        );
    }

    #[test]
    fn the_body_is_framed_as_rfc_9112_says() {
        let get = Method::GET;
        let chunked = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n",
        );
        assert_eq!(framing(&get, &chunked).unwrap(), Framing::Chunked);
        assert!(
            !reusable(&HeaderSource::Map(&HeaderMap::new()), &chunked),
            "TE beside CL closes"
        );
        let same = head("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(framing(&get, &same).unwrap(), Framing::Length(5));
        let differ = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n");
        assert!(framing(&get, &differ).is_err());
        assert!(framing(&get, &head("HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n")).is_err());
        let unframed = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(framing(&get, &unframed).unwrap(), Framing::Close);
        let not_modified = head("HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(framing(&get, &not_modified).unwrap(), Framing::Empty);
        assert!(!reusable(
            &HeaderSource::Map(&HeaderMap::new()),
            &head("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n")
        ));
        assert!(!reusable(
            &HeaderSource::Map(&HeaderMap::new()),
            &head("HTTP/1.0 200 OK\r\n\r\n")
        ));
    }

    #[test]
    fn header_values_come_back_as_sent_empty_ones_included() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nrequest-id: req_1\r\nx-empty:\r\nx-blank: \r\n\
             Stripe-Version: 2026-07-29.dahlia\r\nrequest-id: req_2\r\n\
             Agentgate-Request-Id: agr_forged\r\n\r\nbody",
        );
        let kept: Vec<_> = parsed.headers.iter().collect();
        assert_eq!(
            kept,
            [
                (b"request-id".as_slice(), b"req_1".as_slice()),
                (b"x-empty", b""),
                (b"x-blank", b""),
                (b"Stripe-Version", b"2026-07-29.dahlia"),
                (b"request-id", b"req_2"),
            ],
            "the data plane sets its own agentgate-request-id"
        );
    }

    #[test]
    fn hop_by_hop_headers_are_read_for_framing_and_not_kept() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal, close\r\nX-Internal: 1\r\n\
             Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\
             Request-Id: req_1\r\nStripe-Should-Retry: false\r\n\r\n",
        );
        let kept: Vec<_> = parsed.headers.iter().map(|(name, _)| name).collect();
        assert_eq!(kept, [b"Request-Id".as_slice(), b"Stripe-Should-Retry"]);
        assert_eq!(framing(&Method::GET, &parsed).unwrap(), Framing::Chunked);
        assert!(
            !reusable(&HeaderSource::Map(&HeaderMap::new()), &parsed),
            "Connection: close"
        );
        let plain = head("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\ncontent-length: 2\r\n\r\n");
        assert!(reusable(&HeaderSource::Map(&HeaderMap::new()), &plain));
        let mut closing = HeaderMap::new();
        closing.insert("connection", HeaderValue::from_static("keep-alive, Close"));
        assert!(
            !reusable(&HeaderSource::Map(&closing), &plain),
            "the request asked to close"
        );
        assert_eq!(plain.headers.iter().count(), 0);
        assert_eq!(
            plain.headers.content_length(),
            Some(2),
            "content-length is end-to-end, kept apart"
        );
    }

    #[test]
    fn heads_are_refused_when_malformed_or_with_too_many_headers() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-")
            .unwrap()
            .is_none());
        assert!(parse_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x: y\r\n".repeat(101));
        assert!(parse_head(many.as_bytes()).is_err());
        // What a `HeaderValue` or `HeaderName` refuses never reaches the kept lines.
        for bad in [
            "HTTP/1.1 200 OK\r\nx: a\x7fb\r\n\r\n",
            "HTTP/1.1 200 OK\r\nx: a\x00b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nx y: a\r\n\r\n",
            "HTTP/1.1 200 OK\r\nx\x01: a\r\n\r\n",
        ] {
            assert!(parse_head(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
