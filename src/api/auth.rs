//! Admission and audit for every management route: the request must carry an admin key,
//! which scopes everything the handler does to the key's workspace; every change, and every
//! refusal of an identified key, is written to that workspace's request log. A change's
//! record is written by the store with the change ([`crate::audit`], from the [`Origin`]
//! this middleware hands the handler); refusals and failures are recorded here. The log gets
//! the route's path and the refusal's code, never a body, so no secret reaches it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};

use super::extract::{ApiError, Refusal};
use super::ApiState;
use crate::audit::ChangeOrigin;
use crate::error::GatewayError;
use crate::keys::AuthenticatedKey;
use crate::policy::Role;
use crate::proxy::headers::REQUEST_ID_HEADER;
use crate::proxy::{is_connection_name, target};
use crate::store::RequestLogEntry;

/// Where connection routes start; the name after it goes into the audit record.
const CONNECTIONS_PREFIX: &str = "/api/v1/connections/";

/// The admin key a management request was admitted with; its workspace bounds every
/// lookup the handler makes.
#[derive(Clone)]
pub struct Admin(pub Arc<AuthenticatedKey>);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Admin>().cloned().ok_or_else(|| {
            tracing::error!("a management handler ran without admission");
            ApiError(GatewayError::Internal)
        })
    }
}

/// Who asks for the change a management handler makes, for the record the store writes
/// with it.
#[derive(Clone)]
pub struct Origin(pub ChangeOrigin);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Origin>().cloned().ok_or_else(|| {
            tracing::error!("a management handler ran without admission");
            ApiError(GatewayError::Internal)
        })
    }
}

/// What the audit record needs from the request, taken before the handler consumes it.
struct Audited {
    request_id: String,
    received_at: i64,
    started: Instant,
    method: Method,
    path: String,
    operation: Option<String>,
    client: Option<IpAddr>,
}

/// The management routes' middleware: authenticates, requires the admin role, runs the
/// handler, and records the exchange. A request without a valid key is answered 401 and
/// traced only: it names no workspace whose log could hold it.
pub async fn admit(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let audited = Audited {
        request_id: crate::proxy::new_request_id(),
        received_at: crate::time::now_millis(),
        started: Instant::now(),
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        operation: request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|p| {
                state
                    .operations
                    .get(&(request.method().clone(), p.as_str().to_owned()))
            })
            .cloned(),
        client: crate::proxy::client_ip(&request),
    };
    let mut response = match state.shared.authenticate(request.headers()).await {
        Err(error) => {
            tracing::debug!(request_id = %audited.request_id, path = %audited.path, "unauthenticated management request refused");
            ApiError(error).into_response()
        }
        Ok(key) if key.role != Role::Admin => {
            let response = ApiError(GatewayError::AdminRequired).into_response();
            record(&state, &key, &audited, &response);
            response
        }
        Ok(key) => {
            let origin = ChangeOrigin::admin_key(
                key.id.clone(),
                audited.request_id.clone(),
                &audited.method,
                target::loggable_raw_path(&audited.path),
                audited.client,
            );
            request.extensions_mut().insert(Admin(key.clone()));
            request.extensions_mut().insert(Origin(origin));
            let response = next.run(request).await;
            record(&state, &key, &audited, &response);
            response
        }
    };
    if let Ok(value) = HeaderValue::from_str(&audited.request_id) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

/// Writes the audit record of a refusal or a failure. Successful reads are not recorded,
/// and a successful change's record was written by the store with the change.
fn record(state: &ApiState, key: &AuthenticatedKey, audited: &Audited, response: &Response) {
    let status = response.status();
    if status.is_success() {
        return;
    }
    let refusal = response.extensions().get::<Refusal>();
    let connection = audited
        .path
        .strip_prefix(CONNECTIONS_PREFIX)
        .filter(|name| is_connection_name(name))
        .unwrap_or_default();
    state.shared.log.record(RequestLogEntry {
        created_at: audited.received_at,
        workspace_id: key.workspace_id.clone(),
        request_id: audited.request_id.clone(),
        key_id: key.id.clone(),
        connection: connection.to_owned(),
        method: crate::request_log::method_name(&audited.method),
        path: target::loggable_raw_path(&audited.path),
        status: status.as_u16(),
        latency_us: i64::try_from(audited.started.elapsed().as_micros()).unwrap_or(i64::MAX),
        stripe_request_id: None,
        idempotency_key: None,
        outcome: outcome(refusal, status).into(),
        operation: audited.operation.clone(),
        reason: refusal.map(|r| r.reason.clone()),
        via: "api".into(),
        client: audited.client,
    });
}

/// Who was at fault for a request that did not succeed.
fn outcome(refusal: Option<&Refusal>, status: StatusCode) -> &'static str {
    match refusal {
        Some(refusal) => refusal.outcome,
        None if status.is_server_error() => "internal",
        None => "caller",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_refusal_or_the_status() {
        let refusal = Refusal {
            outcome: "caller",
            reason: "agentgate_admin_required".into(),
        };
        assert_eq!(outcome(Some(&refusal), StatusCode::FORBIDDEN), "caller");
        assert_eq!(outcome(None, StatusCode::METHOD_NOT_ALLOWED), "caller");
        assert_eq!(outcome(None, StatusCode::BAD_GATEWAY), "internal");
    }
}
