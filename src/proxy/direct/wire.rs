//! HTTP/1.1 framing for the direct client: the request head it writes and the response head
//! it parses, and how the response body is delimited (RFC 9112 §6.3). Pure functions over
//! bytes; no I/O here.

use std::io;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

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
    /// The headers, as sent.
    pub(super) headers: HeaderMap,
    /// Whether the server answered with HTTP/1.0 (whose connections are not kept).
    pub(super) http10: bool,
}

/// The request head: request line, `host`, the given headers, then the body's length.
/// The caller's `host`, `content-length` and `transfer-encoding` are replaced, never passed.
pub(super) fn encode_head(
    method: &Method,
    target: &str,
    host: &str,
    headers: &HeaderMap,
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
    for (name, value) in headers {
        if name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
        {
            continue;
        }
        push_header(&mut head, name.as_str(), value.as_bytes());
    }
    if body_len > 0 || payload_expected(method) {
        push_header(&mut head, "content-length", body_len.to_string().as_bytes());
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
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(bytes).map_err(invalid)? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(len) => len,
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid("bad status code"))?;
    // The head is copied out of the connection's buffer once, and each value shares that
    // copy, instead of an allocation per value.
    let shared = Bytes::copy_from_slice(&bytes[..len]);
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for slot in response.headers.iter() {
        let name = HeaderName::from_bytes(slot.name.as_bytes()).map_err(invalid)?;
        let value = match range_in(&bytes[..len], slot.value) {
            Some(range) => HeaderValue::from_maybe_shared(shared.slice(range)),
            None => HeaderValue::from_bytes(slot.value),
        };
        headers.append(name, value.map_err(invalid)?);
    }
    let http10 = response.version == Some(0);
    Ok(Some((
        len,
        Head {
            status,
            headers,
            http10,
        },
    )))
}

/// Where `part` lies in `whole`, when it is a slice of it (httparse's values are, but an
/// empty one need not point into the buffer).
fn range_in(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let from = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let to = from.checked_add(part.len())?;
    (to <= whole.len()).then_some(from..to)
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
    if head.headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(if chunked_last(&head.headers) {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    match content_length(&head.headers)? {
        Some(0) => Ok(Framing::Empty),
        Some(len) => Ok(Framing::Length(len)),
        None => Ok(Framing::Close),
    }
}

/// Whether the connection may carry another exchange after this response: HTTP/1.1, no
/// `Connection: close` either way, and no `Transfer-Encoding` beside a `Content-Length`
/// (RFC 9112 §6.3 asks to close after such a response).
pub(super) fn reusable(request: &HeaderMap, head: &Head) -> bool {
    let both_lengths = head.headers.contains_key(header::TRANSFER_ENCODING)
        && head.headers.contains_key(header::CONTENT_LENGTH);
    !(head.http10 || both_lengths || says_close(request) || says_close(&head.headers))
}

/// Whether `chunked` is the final transfer coding.
fn chunked_last(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

/// The `Content-Length`, if any; differing or unparsable values are an error.
fn content_length(headers: &HeaderMap) -> io::Result<Option<u64>> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(invalid)?;
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("invalid content-length"));
            }
            let parsed: u64 = item.parse().map_err(invalid)?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(invalid("conflicting content-length values"));
            }
            length = Some(parsed);
        }
    }
    Ok(length)
}

/// Whether a `Connection` header lists `close`.
fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
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
        let get = encode_head(&Method::GET, "/v1/x", "h", &none, 0);
        assert_eq!(get, b"GET /v1/x HTTP/1.1\r\nhost: h\r\n\r\n");
        let post = encode_head(&Method::POST, "/v1/x", "h", &none, 0);
        assert_eq!(
            post,
            b"POST /v1/x HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
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
            !reusable(&HeaderMap::new(), &chunked),
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
            &HeaderMap::new(),
            &head("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n")
        ));
        assert!(!reusable(
            &HeaderMap::new(),
            &head("HTTP/1.0 200 OK\r\n\r\n")
        ));
    }

    #[test]
    fn header_values_come_back_as_sent_empty_ones_included() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nrequest-id: req_1\r\nx-empty:\r\nx-blank: \r\n\
             stripe-version: 2026-07-29.dahlia\r\nrequest-id: req_2\r\n\r\nbody",
        );
        let values = |name: &str| -> Vec<&[u8]> {
            parsed
                .headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect()
        };
        assert_eq!(values("request-id"), [b"req_1".as_slice(), b"req_2"]);
        assert_eq!(values("x-empty"), [b"".as_slice()]);
        assert_eq!(values("x-blank"), [b"".as_slice()]);
        assert_eq!(values("stripe-version"), [b"2026-07-29.dahlia".as_slice()]);
        let whole = b"abcdef";
        assert_eq!(range_in(whole, &whole[2..4]), Some(2..4));
        assert_eq!(
            range_in(&whole[..3], &whole[2..5]),
            None,
            "runs past the end"
        );
        assert_eq!(
            range_in(&whole[3..], &whole[..2]),
            None,
            "lies before the start"
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
    }
}
