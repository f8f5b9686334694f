//! Checks every request gets before any route sees it, on every listener: a connection that
//! sent a head stating its length twice (`Content-Length` and `Transfer-Encoding`, the raw
//! material of request smuggling; see [`super::framing`]) and an agentgate key in the URL
//! are refused here, so no handler, log line or upstream ever sees them. The refusal closes
//! the connection: bytes after an ambiguous head are never read as another request.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Request};

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
    request
        .uri()
        .query()
        .is_some_and(names_a_key)
        .then_some(GatewayError::KeyInQuery)
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
        let query = request("/v1/x?api_key=agk_abc", &[]);
        assert!(matches!(screen(&query), Some(GatewayError::KeyInQuery)));
        let encoded = request("/v1/x?key=AGK%5Fabc", &[]);
        assert!(matches!(screen(&encoded), Some(GatewayError::KeyInQuery)));
        let fine = request("/v1/customers?email=a%40b.c", &[("content-length", "5")]);
        assert!(screen(&fine).is_none());
    }
}
