//! `GET /v1/catalog/{connection}`: the listed operations with a JSON Schema of each one's
//! parameters, so agents (and the MCP server) can discover what they may call. Any valid
//! agentgate key may read it for a connection of its workspace; it lists the operations the
//! key's scopes allow.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue};

use super::ProxyShared;
use crate::catalog::{json_schema, Operation};
use crate::error::GatewayError;
use crate::policy::{pattern_matches, Scopes};

/// The routes under `/v1/catalog/`.
pub fn router(shared: Arc<ProxyShared>) -> Router {
    let state = Arc::new(Discovery {
        shared,
        operations: OnceLock::new(),
    });
    Router::new()
        .route("/v1/catalog/{connection}", get(catalog))
        .with_state(state)
}

/// Whether `scopes` let a key call `op`: what discovery lists, and what the MCP server
/// offers as tools, so both always agree with each other.
pub fn may_call(scopes: &Scopes, op: &Operation) -> bool {
    (scopes.allow.is_empty() || scopes.allow.iter().any(|p| pattern_matches(p, &op.id)))
        && (!scopes.read_only || op.method == "GET")
}

struct Discovery {
    shared: Arc<ProxyShared>,
    /// Each operation's JSON, rendered on first use (the catalog never changes at run time).
    operations: OnceLock<Vec<String>>,
}

async fn catalog(
    State(state): State<Arc<Discovery>>,
    Path(connection): Path<String>,
    headers: HeaderMap,
) -> Response {
    match render(&state, &connection, &headers).await {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn render(
    state: &Discovery,
    connection: &str,
    headers: &HeaderMap,
) -> Result<String, GatewayError> {
    let key = state.shared.authenticate(headers).await?;
    let resolved = state
        .shared
        .resolve_connection(&key, connection, "catalog")
        .await?;
    let catalog = state.shared.catalog.catalog();
    let rendered = state.operations.get_or_init(|| {
        catalog
            .operations
            .iter()
            .map(|op| json_schema::operation_json(op).to_string())
            .collect()
    });
    let scopes = &key.scopes;
    let callable: Vec<&str> = catalog
        .operations
        .iter()
        .zip(rendered)
        .filter(|(op, _)| may_call(scopes, op))
        .map(|(_, json)| json.as_str())
        .collect();
    let head = serde_json::json!({
        "object": "list",
        "connection": &*resolved.name,
        "api_version": catalog.api_version,
        "validation": resolved.validation,
        "url": format!("/v1/catalog/{}", resolved.name),
    });
    let mut body = serde_json::to_string(&head).expect("JSON values serialize");
    body.pop();
    body.push_str(",\"data\":[");
    body.push_str(&callable.join(","));
    body.push_str("]}");
    Ok(body)
}
