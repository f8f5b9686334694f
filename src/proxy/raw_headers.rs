//! Stripe's end-to-end response headers, kept as the lines they arrived in.
//!
//! Why: most responses from the direct client are written straight back to the caller by
//! the fast lane. Parsing each of Stripe's headers into a `HeaderMap` and writing it out
//! again cost thousands of instructions per request (`docs/performance.md`); these lines are
//! copied out whole instead. Every other answer path (hyper's server, MCP) turns them into
//! map entries with [`RawHeaders::append_to`], so no path can lose them.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Header lines, `name: value\r\n` each, whose names and values httparse checked when
/// Stripe's head was parsed. None of them is hop-by-hop or `Content-Length`; the length is
/// kept apart, because whoever writes the body writes its length.
///
/// The two headers agentgate reads from every response, `Request-Id` (for the request
/// log) and `Date` (whether the fast lane adds one), are noted while the lines are
/// collected, so no answer scans them.
#[derive(Clone, Default)]
pub struct RawHeaders {
    lines: Bytes,
    content_length: Option<u64>,
    request_id: Option<Range<usize>>,
    has_date: bool,
}

/// Collects the lines of a [`RawHeaders`] while a head is parsed.
pub(crate) struct RawHeadersBuilder {
    lines: BytesMut,
    request_id: Option<Range<usize>>,
    has_date: bool,
}

impl RawHeadersBuilder {
    /// A builder for lines that fit in `capacity` bytes (a head's length is enough).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            lines: BytesMut::with_capacity(capacity),
            request_id: None,
            has_date: false,
        }
    }

    /// Adds one header. The caller has checked `name` is a token and `value` has no line
    /// break (httparse does both).
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        self.lines.reserve(name.len() + value.len() + 4);
        self.lines.put_slice(name);
        self.lines.put_slice(b": ");
        let start = self.lines.len();
        self.lines.put_slice(value);
        self.lines.put_slice(b"\r\n");
        if self.request_id.is_none() && name.eq_ignore_ascii_case(b"request-id") {
            self.request_id = Some(start..start + value.len());
        }
        self.has_date |= name.eq_ignore_ascii_case(b"date");
    }

    /// The headers, with Stripe's `Content-Length` when it sent a valid one.
    pub(crate) fn finish(self, content_length: Option<u64>) -> RawHeaders {
        RawHeaders {
            lines: self.lines.freeze(),
            content_length,
            request_id: self.request_id,
            has_date: self.has_date,
        }
    }
}

impl RawHeaders {
    /// The lines, ready to be written into a response head.
    pub fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// Each header's name and value, in the order Stripe sent them.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.ranges()
            .map(|(name, value)| (&self.lines[name], &self.lines[value]))
    }

    /// The first value of the header `name`, as Stripe sent it.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        let wanted = name.as_str().as_bytes();
        self.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value)
    }

    /// The first `Request-Id`: Stripe's id of the request.
    pub fn request_id(&self) -> Option<&[u8]> {
        self.request_id.clone().map(|range| &self.lines[range])
    }

    /// Whether Stripe sent a `Date`.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// Stripe's `Content-Length`.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Drops the length, for a body that is changed on its way (see `mask`).
    pub fn forget_length(&mut self) {
        self.content_length = None;
    }

    /// The same headers with every occurrence of `secret` in a value replaced by
    /// `replacement`, which holds no line break (see `mask`).
    pub fn masked(&self, secret: &[u8], replacement: &[u8]) -> RawHeaders {
        let mut builder = RawHeadersBuilder::with_capacity(self.lines.len());
        for (name, value) in self.iter() {
            builder.push(name, &super::mask::replace_all(value, secret, replacement));
        }
        builder.finish(self.content_length)
    }

    /// Adds every header, the length included, to `map`.
    pub fn append_to(self, map: &mut HeaderMap) {
        if self.lines.is_empty() && self.content_length.is_none() {
            return;
        }
        map.reserve(self.ranges().count() + 1);
        for (name, value) in self.ranges() {
            let name = HeaderName::from_bytes(&self.lines[name]);
            let value = HeaderValue::from_maybe_shared(self.lines.slice(value));
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    map.append(name, value);
                }
                // The lines hold only what httparse accepted, which both types accept.
                _ => tracing::warn!("a header from Stripe could not be kept"),
            }
        }
        if let Some(length) = self.content_length {
            map.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }

    /// Where each line's name and value lie in `lines`. Plain loops: lines are short, and
    /// memchr's set-up cost more than its search saved here.
    fn ranges(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
        let lines = &self.lines[..];
        let mut at = 0;
        std::iter::from_fn(move || {
            let start = at;
            let colon = start + lines.get(start..)?.iter().position(|&b| b == b':')?;
            // `name: value\r\n`: the value starts after ": " and ends before "\r".
            let value = colon + 2;
            let end = value + lines.get(value..)?.iter().position(|&b| b == b'\r')?;
            at = end + 2;
            Some((start..colon, value..end))
        })
    }
}

/// Names only: a value is Stripe's, and is not agentgate's to print.
impl fmt::Debug for RawHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self
            .iter()
            .map(|(name, _)| String::from_utf8_lossy(name))
            .collect();
        f.debug_struct("RawHeaders")
            .field("names", &names)
            .field("content_length", &self.content_length)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(lines: &[(&str, &str)], content_length: Option<u64>) -> RawHeaders {
        let mut builder = RawHeadersBuilder::with_capacity(0);
        for (name, value) in lines {
            builder.push(name.as_bytes(), value.as_bytes());
        }
        builder.finish(content_length)
    }

    #[test]
    fn a_masked_copy_replaces_the_secret_in_every_value_and_keeps_the_rest() {
        let headers = raw(
            &[
                ("Request-Id", "req_sk_test_k1"),
                ("X-Echo", "Bearer sk_test_k1, sk_test_k1"),
            ],
            Some(3),
        );
        let masked = headers.masked(b"sk_test_k1", b"sk_test_...k1");
        assert_eq!(
            masked.lines(),
            b"Request-Id: req_sk_test_...k1\r\nX-Echo: Bearer sk_test_...k1, sk_test_...k1\r\n"
        );
        assert_eq!(masked.request_id(), Some(b"req_sk_test_...k1".as_slice()));
        assert_eq!(masked.content_length(), Some(3));
    }

    #[test]
    fn lines_are_kept_as_sent_and_read_back_by_name() {
        let headers = raw(
            &[
                ("Request-Id", "req_1"),
                ("x-empty", ""),
                ("Stripe-Version", "2026-07-29.dahlia"),
                ("request-id", "req_2"),
            ],
            Some(7),
        );
        assert_eq!(
            headers.lines(),
            b"Request-Id: req_1\r\nx-empty: \r\nStripe-Version: 2026-07-29.dahlia\r\nrequest-id: req_2\r\n"
        );
        assert_eq!(
            headers.get(&header::HeaderName::from_static("request-id")),
            Some(b"req_1".as_slice())
        );
        assert_eq!(
            headers.get(&header::HeaderName::from_static("x-empty")),
            Some(b"".as_slice())
        );
        assert_eq!(headers.get(&header::DATE), None);
        assert_eq!(headers.iter().count(), 4);
        assert_eq!(
            headers.request_id(),
            Some(b"req_1".as_slice()),
            "the first one"
        );
        assert!(!headers.has_date());
        assert!(raw(&[("DATE", "Thu, 03 Dec 2026 15:21:44 GMT")], None).has_date());
        assert_eq!(RawHeaders::default().request_id(), None);
    }

    #[test]
    fn appended_to_a_map_with_every_value_and_the_length() {
        let mut map = HeaderMap::new();
        map.insert("agentgate-request-id", HeaderValue::from_static("agr_1"));
        raw(
            &[
                ("Request-Id", "req_1"),
                ("request-id", "req_2"),
                ("X-Blank", ""),
            ],
            Some(7),
        )
        .append_to(&mut map);
        let values: Vec<_> = map.get_all("request-id").iter().collect();
        assert_eq!(values, ["req_1", "req_2"]);
        assert_eq!(map["x-blank"], "");
        assert_eq!(map["content-length"], "7");
        assert_eq!(map["agentgate-request-id"], "agr_1");
        let mut reshaped = raw(&[("a", "b")], Some(7));
        reshaped.forget_length();
        let mut map = HeaderMap::new();
        reshaped.append_to(&mut map);
        assert!(map.get("content-length").is_none());
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn debug_shows_names_only() {
        let headers = raw(&[("Request-Id", "req_secret_value")], None);
        let shown = format!("{headers:?}");
        assert!(shown.contains("Request-Id"), "{shown}");
        assert!(!shown.contains("req_secret_value"), "{shown}");
    }
}
