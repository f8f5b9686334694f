//! CSRF protection for every dashboard form: each form carries a hidden `csrf` field
//! derived from the browser's secret cookie (the session token, or before sign-in the
//! pre-auth token) with HMAC-SHA256, and every POST without the matching field is refused
//! with 403 before any handler runs (OWASP CSRF cheat sheet: synchronizer token derived
//! from the session). Another site can neither read the cookie nor compute the field.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::session::{cookie, PREAUTH_COOKIE, SESSION_COOKIE};

/// The form field's name.
pub const FIELD: &str = "csrf";

/// Largest form body read (the biggest form holds a Stripe key and a few scopes).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The CSRF token of the browser holding cookie value `secret`.
pub fn token_for(secret: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"agentgate dashboard csrf v1");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The cookie the token of this request derives from: the session's, else the pre-auth one.
pub fn secret_of(headers: &http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE).or_else(|| cookie(headers, PREAUTH_COOKIE))
}

/// The middleware: lets every non-POST through; a POST passes only with a form field
/// matching its cookie, and reaches the handler with its body intact.
pub async fn check(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let secret = secret_of(request.headers());
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let sent = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.into_owned());
    let valid = match (secret, sent) {
        (Some(secret), Some(sent)) => token_for(&secret).as_bytes().ct_eq(sent.as_bytes()).into(),
        _ => false,
    };
    if !valid {
        return super::layout::forbidden();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_cookie_and_are_stable() {
        assert_eq!(token_for("a"), token_for("a"));
        assert_ne!(token_for("a"), token_for("b"));
    }
}
