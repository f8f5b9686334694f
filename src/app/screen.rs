//! Checks every request gets before any route sees it, on every listener: a connection that
//! sent a head stating its length twice (`Content-Length` and `Transfer-Encoding`, the raw
//! material of request smuggling; see [`super::framing`]) and an agentgate key in the URL
//! are refused here, so no handler, log line or upstream ever sees them. The refusal closes
//! the connection: bytes after an ambiguous head are never read as another request.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Request, Version};

use crate::error::GatewayError;
use crate::keys::format::KEY_PREFIX;

/// The refusal for a request no route may see, or `None` to serve it. `ambiguous_framing`:
/// the connection sent a head with both `Content-Length` and `Transfer-Encoding`, which hyper
/// resolves before the request is built (see [`super::framing`]).
pub fn refuse<B>(request: &Request<B>, ambiguous_framing: bool) -> Option<Response> {
    let error = match ambiguous_framing {
        true => GatewayError::AmbiguousFraming,
        false => screen(request)?,
    };
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

fn screen<B>(request: &Request<B>) -> Option<GatewayError> {
    if request.version() == Version::HTTP_11 && !has_one_valid_host(request.headers()) {
        return Some(GatewayError::InvalidHost);
    }
    request
        .uri()
        .query()
        .is_some_and(names_a_key)
        .then_some(GatewayError::KeyInQuery)
}

/// Whether the head has exactly one Host header whose value is empty or a host with an
/// optional port (RFC 9112, section 3.2): no user information, path or second authority.
/// Host never chooses where agentgate sends a request; this is the RFC's due, so that
/// agentgate and any proxy in front of it cannot read one request two ways.
fn has_one_valid_host(headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    is_host_and_port(host.as_bytes())
}

/// Whether `host` is RFC 3986's `host [ ":" port ]`: a name (or IPv4 address) of the
/// characters a `reg-name` may hold, or an IPv6 address in brackets, then an optional port
/// of digits. Checked byte by byte: it runs on every request, and parsing an
/// `http::uri::Authority` would copy the value.
fn is_host_and_port(host: &[u8]) -> bool {
    let (name, port) = match host.strip_prefix(b"[") {
        Some(bracketed) => {
            let Some(end) = bracketed.iter().position(|&b| b == b']') else {
                return false;
            };
            let address = &bracketed[..end];
            let is_address = !address.is_empty()
                && address
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if !is_address {
                return false;
            }
            (&[][..], &bracketed[end + 1..])
        }
        None => match host.iter().position(|&b| b == b':') {
            Some(colon) => host.split_at(colon),
            None => (host, &[][..]),
        },
    };
    let name_is_plain = name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
    let port_is_digits = port.is_empty()
        || port
            .strip_prefix(b":")
            .is_some_and(|digits| digits.iter().all(u8::is_ascii_digit));
    name_is_plain && port_is_digits
}

/// Whether a query string holds something shaped like an agentgate key, raw or with its
/// underscore percent-encoded.
fn names_a_key(query: &str) -> bool {
    let prefix = KEY_PREFIX.trim_end_matches('_');
    let lower = query.to_ascii_lowercase();
    lower.contains(KEY_PREFIX) || lower.contains(&format!("{prefix}%5f"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn refuses_keys_in_the_query() {
        let query = request("/v1/x?api_key=agk_abc", &[("host", "x")]);
        assert!(matches!(screen(&query), Some(GatewayError::KeyInQuery)));
        let encoded = request("/v1/x?key=AGK%5Fabc", &[("host", "x")]);
        assert!(matches!(screen(&encoded), Some(GatewayError::KeyInQuery)));
        let fine = request(
            "/v1/customers?email=a%40b.c",
            &[("content-length", "5"), ("host", "x")],
        );
        assert!(screen(&fine).is_none());
    }

    #[test]
    fn an_http_1_1_request_needs_exactly_one_plain_host() {
        for host in [
            "api.example.com",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "gw",
            "",
        ] {
            let request = request("/v1/x", &[("host", host)]);
            assert!(screen(&request).is_none(), "{host:?} is a valid Host");
        }
        let refused = |headers: &[(&str, &str)]| {
            matches!(
                screen(&request("/v1/x", headers)),
                Some(GatewayError::InvalidHost)
            )
        };
        assert!(refused(&[]), "no Host");
        assert!(refused(&[("host", "a"), ("host", "b")]), "two Hosts");
        for host in [
            "127.0.0.1@attacker.example",
            "attacker.example:443/v1",
            "a b",
            "x:port",
            "[::1",
            "[::1]x",
            "[]:80",
            "a:1:2",
        ] {
            assert!(refused(&[("host", host)]), "{host:?}");
        }
        let mut http_1_0 = request("/v1/x", &[]);
        *http_1_0.version_mut() = Version::HTTP_10;
        assert!(screen(&http_1_0).is_none(), "HTTP/1.0 may leave Host out");
    }
}
