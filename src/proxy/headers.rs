//! Which headers cross the gateway. Toward Stripe an allow-list: what SDKs send that Stripe
//! reads, nothing else (no cookies, no forwarding headers, never the caller's credential),
//! plus the injected `Authorization`. Back to the caller: everything Stripe sent except
//! hop-by-hop headers. Either way, a header named in `Connection` is hop-by-hop (RFC 9110
//! §7.6.1), and the injected credential is set last so `Connection` cannot remove it.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Response header carrying agentgate's id of the request, on every proxied answer.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("agentgate-request-id");

/// Request headers forwarded to Stripe as sent.
static FORWARDED_REQUEST_HEADERS: [HeaderName; 11] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::USER_AGENT,
    HeaderName::from_static("stripe-version"),
    HeaderName::from_static("stripe-account"),
    HeaderName::from_static("stripe-context"),
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("x-stripe-client-user-agent"),
    HeaderName::from_static("x-stripe-client-telemetry"),
];

/// Hop-by-hop header names (RFC 9110 §7.6.1, plus the de-facto `keep-alive` and
/// `proxy-connection`, and `upgrade`, which a proxy that does not upgrade never passes on).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The caller's `Idempotency-Key`, for the request log.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The Connect account a request acts as.
pub static STRIPE_ACCOUNT: HeaderName = HeaderName::from_static("stripe-account");
/// Stripe's id of the request, for the request log.
pub static STRIPE_REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// Stripe's mark on an answer replayed from its idempotency cache.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The headers to send to Stripe: the allow-listed ones the caller sent, then the
/// injected credential.
pub fn upstream_request_headers(incoming: &HeaderMap, authorization: &HeaderValue) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(FORWARDED_REQUEST_HEADERS.len() + 1);
    for (name, value) in forwarded_request_headers(incoming) {
        out.append(name.clone(), value.clone());
    }
    out.insert(header::AUTHORIZATION, authorization.clone());
    out
}

/// The caller's headers that go to Stripe as sent, in the caller's order: the allow-listed
/// ones, except any the caller's `Connection` header names. One pass over what the caller
/// sent (a handful of headers) rather than a lookup per allow-listed name.
pub fn forwarded_request_headers(
    incoming: &HeaderMap,
) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    let listed = named_in_connection(incoming);
    incoming
        .iter()
        .filter(move |(name, _)| FORWARDED_REQUEST_HEADERS.contains(name) && !listed.contains(name))
}

/// Removes hop-by-hop headers from a response hyper parsed, keeping everything else. (The
/// direct client never stores them; see `direct::wire`.)
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed = named_in_connection(headers);
    // Collected first (nothing is allocated when none is there), removed after.
    let hop_by_hop: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name.as_str().as_bytes()) || listed.contains(name))
        .cloned()
        .collect();
    for name in hop_by_hop {
        headers.remove(name);
    }
}

/// Whether a header is hop-by-hop by its name alone, for heads read as bytes as well as for
/// header maps.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| name.eq_ignore_ascii_case(hop.as_bytes()))
}

/// Whether one `Connection` value lists the `close` option.
pub(crate) fn lists_close(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// The names one `Connection` value lists for removal beyond the fixed hop-by-hop ones
/// (`close` is a connection option, not a header name).
pub(crate) fn listed_in_connection(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| {
            !token.is_empty() && !token.eq_ignore_ascii_case(b"close") && !is_hop_by_hop(token)
        })
}

/// The header names the `Connection` headers of a map list (see [`listed_in_connection`]):
/// empty, without allocating, for the `Connection: keep-alive` or `close` that clients and
/// Stripe send.
fn named_in_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| listed_in_connection(value.as_bytes()))
        .filter_map(|name| HeaderName::from_bytes(name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    /// The names left in `headers`, sorted.
    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn forwards_the_allow_list_and_replaces_authorization() {
        let incoming = map(&[
            ("authorization", "Bearer agk_caller"),
            ("stripe-version", "2026-07-29.dahlia"),
            ("idempotency-key", "k1"),
            ("cookie", "session=1"),
            ("x-forwarded-host", "attacker.example"),
            ("te", "trailers"),
        ]);
        let out =
            upstream_request_headers(&incoming, &HeaderValue::from_static("Bearer sk_test_x"));
        assert_eq!(out.get_all(header::AUTHORIZATION).iter().count(), 1);
        assert_eq!(out[header::AUTHORIZATION], "Bearer sk_test_x");
        assert_eq!(out["stripe-version"], "2026-07-29.dahlia");
        assert_eq!(out["idempotency-key"], "k1");
        for dropped in ["cookie", "x-forwarded-host", "te"] {
            assert!(!out.contains_key(dropped), "{dropped}");
        }
    }

    #[test]
    fn connection_can_drop_a_forwarded_header_but_not_the_credential() {
        let incoming = map(&[
            ("connection", "Stripe-Account, Authorization"),
            ("stripe-account", "acct_1"),
        ]);
        let out =
            upstream_request_headers(&incoming, &HeaderValue::from_static("Bearer sk_test_x"));
        assert!(!out.contains_key("stripe-account"));
        assert_eq!(out[header::AUTHORIZATION], "Bearer sk_test_x");
    }

    #[test]
    fn connection_keep_alive_alone_leaves_everything_else() {
        let mut headers = map(&[
            ("connection", "keep-alive"),
            ("request-id", "req_1"),
            ("content-type", "application/json"),
        ]);
        strip_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["content-type", "request-id"]);
        assert!(named_in_connection(&map(&[("connection", "Keep-Alive, close")])).is_empty());
    }

    #[test]
    fn upgrade_is_dropped_with_or_without_connection() {
        let mut headers = map(&[("upgrade", "h2c"), ("request-id", "req_1")]);
        strip_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["request-id"]);
    }

    #[test]
    fn strips_hop_by_hop_response_headers() {
        let mut headers = map(&[
            ("connection", "close, x-internal"),
            ("x-internal", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("request-id", "req_1"),
            ("stripe-should-retry", "false"),
        ]);
        strip_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["request-id", "stripe-should-retry"]);
    }
}
