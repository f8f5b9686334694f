//! Where a request goes at Stripe, decided from the raw (still percent-encoded) request
//! target. Anything that could leave Stripe's API or be read differently by another parser
//! is refused here and never forwarded: dot segments (plain or encoded), encoded slashes and
//! backslashes, empty segments (`//host`), double encoding, and control characters.

use http::uri::PathAndQuery;

use crate::error::GatewayError;

/// Longest path (after the connection prefix) that is logged verbatim.
const MAX_LOGGED_PATH: usize = 256;

/// A checked Stripe path and query, ready to put after the Stripe base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeTarget {
    path_and_query: PathAndQuery,
}

impl StripeTarget {
    /// Checks the part of the path after the connection prefix (`customers/cus_1`, or
    /// `v1/customers/cus_1` as SDKs send it) and the raw query. A path that already starts
    /// with `v1/` or `v2/` is kept; any other is put under `/v1/`.
    pub fn parse(rest: &str, query: Option<&str>) -> Result<Self, GatewayError> {
        let mut segments = 0;
        for segment in rest.split('/') {
            check_segment(segment)?;
            segments += 1;
        }
        let versioned = matches!(rest.split('/').next(), Some("v1" | "v2"));
        if versioned && segments < 2 {
            return Err(GatewayError::InvalidPath(
                "the path names no Stripe resource",
            ));
        }
        if let Some(query) = query {
            check_query(query)?;
        }
        let mut target = String::with_capacity(rest.len() + query.map_or(0, str::len) + 5);
        target.push('/');
        if !versioned {
            target.push_str("v1/");
        }
        target.push_str(rest);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        let path_and_query = PathAndQuery::try_from(target)
            .map_err(|_| GatewayError::InvalidPath("the path is not a valid URL path"))?;
        Ok(Self { path_and_query })
    }

    /// The Stripe path without the query (`/v1/customers/cus_1`).
    pub fn path(&self) -> &str {
        self.path_and_query.path()
    }

    /// The path and query to send to Stripe.
    pub fn path_and_query(&self) -> &PathAndQuery {
        &self.path_and_query
    }

    /// The Stripe path with the query's parameter names but none of its values, for the
    /// request log (`/v1/customers?limit&starting_after`).
    pub fn log_path(&self) -> String {
        path_with_query_names(self.path_and_query.path(), self.path_and_query.query())
    }
}

/// `path` followed by the names of `query`'s parameters without their values
/// (`/v1/customers?limit&starting_after`): what the request log keeps of a request's target,
/// since values may hold personal data.
pub fn path_with_query_names(path: &str, query: Option<&str>) -> String {
    let mut out = path.to_owned();
    if let Some(query) = query {
        let names: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
            .collect();
        if !names.is_empty() {
            out.push('?');
            out.push_str(&names.join("&"));
        }
    }
    out
}

/// A printable, bounded form of a path that was refused, for the request log.
pub fn loggable_raw_path(raw: &str) -> String {
    // The common case (a connection name, a plain path) is copied whole, not char by char.
    if raw.len() <= MAX_LOGGED_PATH && raw.bytes().all(|b| b.is_ascii_graphic()) {
        return raw.to_owned();
    }
    raw.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_LOGGED_PATH)
        .collect()
}

fn check_segment(segment: &str) -> Result<(), GatewayError> {
    if segment.is_empty() {
        return Err(GatewayError::InvalidPath(
            "empty path segments are not allowed",
        ));
    }
    if segment == "." || segment == ".." {
        return Err(GatewayError::InvalidPath("dot segments are not allowed"));
    }
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let decoded = decode_escape(bytes, i)?;
                if matches!(decoded, b'.' | b'/' | b'\\' | b'%') || decoded.is_ascii_control() {
                    return Err(GatewayError::InvalidPath(
                        "encoded dots, slashes, backslashes, percent signs and control characters are not allowed",
                    ));
                }
                i += 3;
            }
            b if is_path_char(b) => i += 1,
            _ => {
                return Err(GatewayError::InvalidPath(
                    "the path contains a character that is not allowed",
                ))
            }
        }
    }
    Ok(())
}

/// RFC 3986 `pchar` without `%` (handled as escapes): unreserved, sub-delims, `:` and `@`.
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn check_query(query: &str) -> Result<(), GatewayError> {
    let bytes = query.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_control() || b == b'#' {
            return Err(GatewayError::InvalidPath(
                "the query contains a character that is not allowed",
            ));
        }
        if b == b'%' {
            let decoded = decode_escape(bytes, i)?;
            if decoded.is_ascii_control() {
                return Err(GatewayError::InvalidPath(
                    "the query contains an encoded control character",
                ));
            }
        }
    }
    Ok(())
}

fn decode_escape(bytes: &[u8], at: usize) -> Result<u8, GatewayError> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let invalid = || GatewayError::InvalidPath("malformed percent-encoding");
    let high = bytes
        .get(at + 1)
        .copied()
        .and_then(hex)
        .ok_or_else(invalid)?;
    let low = bytes
        .get(at + 2)
        .copied()
        .and_then(hex)
        .ok_or_else(invalid)?;
    Ok((high * 16 + low) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_raw_paths_are_printable_and_bounded() {
        assert_eq!(loggable_raw_path("stripe"), "stripe");
        assert_eq!(loggable_raw_path("a b\r\nc\u{e9}d"), "abcd");
        assert_eq!(loggable_raw_path(&"x".repeat(300)).len(), MAX_LOGGED_PATH);
        assert_eq!(
            loggable_raw_path(&"x".repeat(MAX_LOGGED_PATH)).len(),
            MAX_LOGGED_PATH
        );
    }

    fn target(rest: &str, query: Option<&str>) -> String {
        StripeTarget::parse(rest, query)
            .unwrap()
            .path_and_query()
            .to_string()
    }

    #[test]
    fn maps_plain_and_versioned_paths() {
        assert_eq!(
            target("customers", Some("limit=5")),
            "/v1/customers?limit=5"
        );
        assert_eq!(target("checkout/sessions", None), "/v1/checkout/sessions");
        assert_eq!(target("v1/customers/cus_1", None), "/v1/customers/cus_1");
        assert_eq!(target("v2/core/events", None), "/v2/core/events");
        assert_eq!(
            target("products/gold%20plan", None),
            "/v1/products/gold%20plan"
        );
    }

    #[test]
    fn refuses_paths_that_could_leave_the_api() {
        for rest in [
            "..",
            "../x",
            "customers/../../x",
            "./customers",
            "%2e%2e/x",
            "%2E%2E/x",
            ".%2e/x",
            "..%2fx",
            "..%2Fx",
            "customers%2f..%2f..",
            "%5c..%5cx",
            "..%252fx",
            "customers/%00",
            "customers/%0d%0aX:y",
            "/attacker.example/x",
            "customers//x",
            "",
            "v1",
            "customers\\x",
            "customers/a b",
            "%zz",
            "customers/%2",
        ] {
            assert!(
                StripeTarget::parse(rest, None).is_err(),
                "{rest:?} was accepted"
            );
        }
    }

    #[test]
    fn refuses_control_characters_in_the_query() {
        for query in ["a=%0d%0aX", "a=%00", "a=%0A", "a=b#frag", "a=%g1"] {
            assert!(
                StripeTarget::parse("customers", Some(query)).is_err(),
                "{query:?}"
            );
        }
        assert!(StripeTarget::parse("customers", Some("email=a%40b.c&expand[]=x")).is_ok());
    }

    #[test]
    fn logs_query_names_without_values() {
        let t =
            StripeTarget::parse("customers", Some("limit=5&email=a%40b.c&expand[]=data")).unwrap();
        assert_eq!(t.log_path(), "/v1/customers?limit&email&expand[]");
    }
}
