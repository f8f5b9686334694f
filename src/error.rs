//! Errors that agentgate itself answers with, in Stripe's error shape.
//!
//! Every gateway-made error goes through [`GatewayError`] so SDKs raise their usual
//! exceptions and callers can tell, from the `Agentgate-Error` header, that the answer came
//! from the gateway and not from Stripe. Never put a secret into a message here.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

/// Response header present on every error made by agentgate; its value is the [`Blame`].
pub static GATEWAY_ERROR_HEADER: HeaderName = HeaderName::from_static("agentgate-error");

/// Marks a response that refused an invalid agentgate key, so the server can count failed
/// authentications per client address whichever route refused it.
#[derive(Clone, Copy, Debug)]
pub struct FailedAuthentication;

/// Who is at fault for a failed request (pingora's error source): decides the status class
/// and is what the request log records as the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The caller sent something agentgate refuses (4xx).
    Caller,
    /// Stripe could not be reached or failed mid-exchange (502/504).
    Upstream,
    /// agentgate itself failed (500).
    Internal,
}

impl Blame {
    /// The word used in the `Agentgate-Error` header and the request log.
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Caller => "caller",
            Blame::Upstream => "upstream",
            Blame::Internal => "internal",
        }
    }
}

/// A failure that agentgate answers itself instead of forwarding to Stripe.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No agentgate key in `Authorization`.
    #[error(
        "You did not provide an agentgate key. Send it as `Authorization: Bearer <agentgate key>`."
    )]
    KeyMissing,
    /// Malformed, wrong checksum or unknown key: one answer for all, so it is no oracle.
    #[error("Invalid agentgate key provided.")]
    KeyInvalid,
    /// A key that existed and was revoked by an operator.
    #[error("This agentgate key has been revoked.")]
    KeyRevoked,
    /// A key past its expiry time.
    #[error("This agentgate key has expired.")]
    KeyExpired,
    /// The key lacks a scope the request needs; nothing was forwarded.
    #[error("{} Missing permission: {}.", .0.message, .0.permission)]
    Forbidden(crate::policy::Denied),
    /// A money guardrail of the key would be exceeded; the message names the limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// The key or its connection is over its rate limit.
    #[error("Too many requests for this agentgate key or connection; retry after {retry_after} seconds.")]
    RateLimited {
        /// Seconds until a request would be accepted.
        retry_after: u64,
    },
    /// The key's workspace has no connection with that name.
    #[error("No such connection: '{0}'.")]
    UnknownConnection(String),
    /// A management route was called with an agent key; only admin keys manage a workspace.
    #[error(
        "This route needs an agentgate key with the admin role; agent keys call connections only."
    )]
    AdminRequired,
    /// The key's workspace has no such resource (a key id on the management API); another
    /// workspace's resources answer the same, as if they did not exist.
    #[error("No such {kind}: '{id}'.")]
    ResourceMissing {
        /// What was looked up (`key`).
        kind: &'static str,
        /// The id given, echoed for the caller.
        id: String,
    },
    /// No route matches the request URL.
    #[error("Unrecognized request URL ({method}: {path}).")]
    UnknownRoute {
        /// Request method, echoed for the caller.
        method: String,
        /// Request path, echoed for the caller (already checked to be printable).
        path: String,
    },
    /// A request target that could leave Stripe's API or is not a plain origin-form path.
    #[error("Refused request path: {0}.")]
    InvalidPath(&'static str),
    /// CONNECT and other methods a gateway to Stripe never forwards.
    #[error("The {0} method is not supported.")]
    MethodNotAllowed(String),
    /// A listed operation's parameters that Stripe would refuse; nothing was forwarded.
    #[error("{}", .0.message)]
    Invalid(crate::validation::Violation),
    /// The request body could not be read completely (the client went away or stalled).
    #[error("The request body could not be read completely.")]
    BodyUnreadable,
    /// The request body exceeds the configured cap.
    #[error("The request body is larger than the limit of {limit} bytes.")]
    BodyTooLarge {
        /// The configured cap in bytes.
        limit: u64,
    },
    /// Stripe could not be reached (connection refused, DNS, TLS, reset before headers).
    #[error("agentgate could not reach Stripe. The request was not completed.")]
    UpstreamUnreachable,
    /// Stripe did not answer within the configured timeout.
    #[error("Stripe did not answer within {seconds} seconds.")]
    UpstreamTimeout {
        /// The configured timeout in whole seconds.
        seconds: u64,
    },
    /// A request whose length is stated twice (`Content-Length` with `Transfer-Encoding`):
    /// two parsers could read two different requests from it (request smuggling).
    #[error("The request states its length in two ways (Content-Length and Transfer-Encoding); send one.")]
    AmbiguousFraming,
    /// An HTTP/1.1 request without exactly one Host header naming a host (and port), which
    /// RFC 9112 requires a server to refuse.
    #[error("An HTTP/1.1 request carries exactly one Host header, a host name or address with an optional port.")]
    InvalidHost,
    /// An agentgate key in the URL, where proxies, browsers and logs keep it.
    #[error("Send the agentgate key in the Authorization header, never in the URL; this key should be considered exposed and rotated.")]
    KeyInQuery,
    /// The client's address failed authentication too often; it waits out the window.
    #[error(
        "Too many failed authentications from this address; retry after {retry_after} seconds."
    )]
    TooManyFailedAuthentications {
        /// Seconds until the address may try again.
        retry_after: u64,
    },
    /// Too many requests are waiting for Stripe already; this one was not sent.
    #[error("Too many requests are waiting for Stripe; this one was not sent. Retry after {retry_after} seconds.")]
    UpstreamBusy {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// A failure of agentgate itself; the cause is logged once, never sent.
    #[error("internal error")]
    Internal,
}

impl GatewayError {
    /// HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::KeyMissing
            | GatewayError::KeyInvalid
            | GatewayError::KeyRevoked
            | GatewayError::KeyExpired => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_)
            | GatewayError::LimitExceeded(_)
            | GatewayError::AdminRequired => StatusCode::FORBIDDEN,
            GatewayError::RateLimited { .. }
            | GatewayError::TooManyFailedAuthentications { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::UpstreamBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::UnknownConnection(_)
            | GatewayError::UnknownRoute { .. }
            | GatewayError::ResourceMissing { .. } => StatusCode::NOT_FOUND,
            GatewayError::InvalidPath(_)
            | GatewayError::Invalid(_)
            | GatewayError::BodyUnreadable
            | GatewayError::AmbiguousFraming
            | GatewayError::InvalidHost
            | GatewayError::KeyInQuery => StatusCode::BAD_REQUEST,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Who is at fault.
    pub fn blame(&self) -> Blame {
        match self {
            GatewayError::KeyMissing
            | GatewayError::KeyInvalid
            | GatewayError::KeyRevoked
            | GatewayError::KeyExpired
            | GatewayError::Forbidden(_)
            | GatewayError::LimitExceeded(_)
            | GatewayError::RateLimited { .. }
            | GatewayError::UnknownConnection(_)
            | GatewayError::AdminRequired
            | GatewayError::ResourceMissing { .. }
            | GatewayError::UnknownRoute { .. }
            | GatewayError::InvalidPath(_)
            | GatewayError::MethodNotAllowed(_)
            | GatewayError::Invalid(_)
            | GatewayError::BodyUnreadable
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::AmbiguousFraming
            | GatewayError::InvalidHost
            | GatewayError::KeyInQuery
            | GatewayError::TooManyFailedAuthentications { .. } => Blame::Caller,
            GatewayError::UpstreamUnreachable
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::UpstreamBusy { .. } => Blame::Upstream,
            GatewayError::Internal => Blame::Internal,
        }
    }

    /// Stripe's `error.type`: SDKs pick the exception class from the status, and read
    /// `invalid_request_error` for caller faults and `api_error` for the rest.
    fn error_type(&self) -> &'static str {
        match self.blame() {
            Blame::Caller => "invalid_request_error",
            Blame::Upstream | Blame::Internal => "api_error",
        }
    }

    /// A stable machine-readable code (Stripe's where one fits); validation refusals carry
    /// Stripe's code where Stripe has one and none where Stripe sends none.
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            GatewayError::Invalid(violation) => return violation.code,
            GatewayError::BodyUnreadable => "body_unreadable",
            GatewayError::KeyMissing => "api_key_missing",
            GatewayError::KeyInvalid => "api_key_invalid",
            GatewayError::KeyRevoked => "api_key_revoked",
            GatewayError::KeyExpired => "api_key_expired",
            GatewayError::Forbidden(_) => "agentgate_scope_denied",
            GatewayError::LimitExceeded(_) => "agentgate_limit_exceeded",
            GatewayError::RateLimited { .. } => "rate_limit",
            GatewayError::UnknownConnection(_) => "resource_missing",
            GatewayError::AdminRequired => "agentgate_admin_required",
            GatewayError::ResourceMissing { .. } => "resource_missing",
            GatewayError::UnknownRoute { .. } => "url_invalid",
            GatewayError::InvalidPath(_) => "path_invalid",
            GatewayError::MethodNotAllowed(_) => "method_not_allowed",
            GatewayError::BodyTooLarge { .. } => "request_too_large",
            GatewayError::UpstreamUnreachable => "upstream_unreachable",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::AmbiguousFraming | GatewayError::InvalidHost => "request_malformed",
            GatewayError::KeyInQuery => "api_key_in_url",
            GatewayError::TooManyFailedAuthentications { .. } => "too_many_failed_authentications",
            GatewayError::UpstreamBusy { .. } => "upstream_busy",
            GatewayError::Internal => "internal_error",
        })
    }

    /// The offending parameter, in Stripe's bracket notation, when there is one.
    fn param(&self) -> Option<String> {
        match self {
            GatewayError::UnknownConnection(_) => Some("connection".into()),
            GatewayError::ResourceMissing { .. } => Some("id".into()),
            GatewayError::Invalid(violation) => violation.param.clone(),
            _ => None,
        }
    }

    /// Why agentgate refused, for the request log: the code and what it concerns
    /// (`parameter_missing amount`, `agentgate_scope_denied operation`).
    pub fn reason(&self) -> String {
        let code = self.code().unwrap_or("invalid_request");
        let subject = match self {
            GatewayError::Forbidden(denied) => Some(denied.permission.to_owned()),
            other => other.param(),
        };
        match subject {
            Some(subject) => format!("{code} {subject}"),
            None => code.to_owned(),
        }
    }

    /// The body Stripe's SDKs parse: `{"error": {type, code, message, param}}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                error_type: self.error_type(),
                code: self.code(),
                message: self.to_string(),
                param: self.param(),
            },
        }
    }
}

/// Stripe's error envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The error object.
    pub error: ErrorDetail,
}

/// Stripe's error object, as far as agentgate fills it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request_error` or `api_error`.
    #[serde(rename = "type")]
    pub error_type: &'static str,
    /// Machine-readable code; absent where Stripe sends none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// Human-readable explanation that says what to fix.
    pub message: String,
    /// The parameter at fault, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let retry_after = match &self {
            GatewayError::RateLimited { retry_after }
            | GatewayError::TooManyFailedAuthentications { retry_after }
            | GatewayError::UpstreamBusy { retry_after } => Some(*retry_after),
            _ => None,
        };
        let headers = response.headers_mut();
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            GATEWAY_ERROR_HEADER.clone(),
            HeaderValue::from_static(self.blame().as_str()),
        );
        if matches!(self, GatewayError::KeyInvalid) {
            response.extensions_mut().insert(FailedAuthentication);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_in_stripe_shape_with_gateway_header() {
        let response = GatewayError::UnknownConnection("paypal".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[&GATEWAY_ERROR_HEADER], "caller");
        let body =
            serde_json::to_value(GatewayError::UnknownConnection("paypal".into()).body()).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "resource_missing");
        assert_eq!(body["error"]["param"], "connection");
        assert_eq!(body["error"]["message"], "No such connection: 'paypal'.");
    }

    #[test]
    fn upstream_failures_are_api_errors_blamed_on_upstream() {
        let error = GatewayError::UpstreamTimeout { seconds: 3 };
        assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(error.blame(), Blame::Upstream);
        assert_eq!(error.body().error.error_type, "api_error");
    }
}
