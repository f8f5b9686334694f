//! The management API's error type and extractors: every refusal, including a body or
//! query string that does not parse, answers in Stripe's error shape (never axum's plain
//! text), and tells the audit record why.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::GatewayError;
use crate::store::StoreError;
use crate::validation::Violation;

/// Largest management request body: a Stripe key or a key's scopes fit many times over.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A refusal or failure of a management request: a [`GatewayError`] whose response also
/// carries a [`Refusal`] for the audit record.
#[derive(Debug)]
pub struct ApiError(pub GatewayError);

/// Why a management request was refused, left in the response's extensions for
/// [`super::auth::admit`] to record.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Who was at fault (`caller`, `internal`).
    pub outcome: &'static str,
    /// The error code and what it concerns (`parameter_missing secret_key`).
    pub reason: String,
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refusal = Refusal {
            outcome: self.0.blame().as_str(),
            reason: self.0.reason(),
        };
        let mut response = self.0.into_response();
        response.extensions_mut().insert(refusal);
        response
    }
}

/// A store failure: logged once here, answered as "internal error".
pub fn store_failed(error: StoreError) -> ApiError {
    tracing::error!(%error, "management API store call failed");
    ApiError(GatewayError::Internal)
}

/// A 400 in Stripe's shape for a bad value of `param`.
pub fn invalid(param: &str, message: String) -> ApiError {
    ApiError(GatewayError::Invalid(Violation {
        code: Some("parameter_invalid"),
        param: Some(param.to_owned()),
        message,
    }))
}

/// A JSON request body; an empty body (or `null`) reads as `{}`, so a body whose fields are
/// all optional may be left out.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|error| {
                let too_large = std::error::Error::source(&error)
                    .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
                ApiError(match too_large {
                    true => GatewayError::BodyTooLarge {
                        limit: MAX_BODY_BYTES as u64,
                    },
                    false => GatewayError::BodyUnreadable,
                })
            })?;
        let text: &[u8] = match bytes.trim_ascii() {
            b"" | b"null" => b"{}",
            _ => &bytes,
        };
        serde_json::from_slice(text)
            .map(ApiJson)
            .map_err(|error| serde_violation("Invalid JSON body", &error.to_string()))
    }
}

/// Query string parameters; unknown ones are refused, as Stripe refuses them.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text.split_once(": ").map_or(text.as_str(), |(_, d)| d);
                serde_violation("Invalid query string", detail)
            })
    }
}

/// A path parameter; one that does not decode is a refused path, not axum's plain text.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|_| ApiError(GatewayError::InvalidPath("undecodable path parameter")))
    }
}

/// A 400 for a body or query that serde refused, with Stripe's code and the parameter when
/// serde names one (`unknown field`, `missing field`).
fn serde_violation(what: &str, detail: &str) -> ApiError {
    let named = detail.split('`').nth(1).and_then(loggable_param);
    let code = if detail.starts_with("unknown field") {
        Some("parameter_unknown")
    } else if detail.starts_with("missing field") {
        Some("parameter_missing")
    } else {
        None
    };
    ApiError(GatewayError::Invalid(Violation {
        code,
        param: code.and(named),
        message: format!("{what}: {detail}."),
    }))
}

/// A parameter name as the audit record may hold it: short, plain, and not shaped like a
/// credential (a caller could send a key as a field name).
fn loggable_param(name: &str) -> Option<String> {
    let plain = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let credential = ["sk_", "rk_", "whsec_", "agk_"]
        .iter()
        .any(|prefix| name.starts_with(prefix));
    (plain && !credential).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_errors_name_stripe_codes_and_plain_parameters_only() {
        let unknown = serde_violation(
            "Invalid JSON body",
            "unknown field `colour`, expected one of `name`",
        );
        assert_eq!(unknown.0.code(), Some("parameter_unknown"));
        assert_eq!(unknown.0.reason(), "parameter_unknown colour");
        let secret = serde_violation("Invalid JSON body", "unknown field `sk_live_abc`, expected");
        assert_eq!(secret.0.reason(), "parameter_unknown");
        let missing = serde_violation("Invalid JSON body", "missing field `secret_key`");
        assert_eq!(missing.0.reason(), "parameter_missing secret_key");
        let syntax = serde_violation("Invalid JSON body", "EOF while parsing at line 1");
        assert_eq!(syntax.0.code(), None);
    }
}
