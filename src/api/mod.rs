//! The management API under `/api/v1/`: an admin key manages its own workspace (its
//! connections, keys and request log) over JSON, and `/api/v1/openapi.json` describes it.
//!
//! Routes and their OpenAPI description come from one list ([`managed_routes`]), so the
//! document cannot name a route that does not exist or miss one that does. Every route but
//! the description goes through [`auth::admit`]: the admin check, the workspace scope and
//! the audit record. Nothing here ever returns or logs a Stripe key or a whole agentgate key.

mod auth;
mod connections;
mod extract;
mod keys;
mod logs;
mod push_destinations;
mod scopes;
mod usage;
mod webhooks;
mod workspace;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue, Method};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crypto::Sealer;
use crate::error::GatewayError;
use crate::proxy::ProxyShared;
use crate::store::Store;
use extract::ApiError;

/// What the webhook endpoint routes need beyond the store: the base of ingest URLs
/// (`--public-url`) and how to reach Stripe for `register`.
#[derive(Clone, Debug)]
pub struct WebhookApiSettings {
    /// Base of ingest URLs, without a trailing slash.
    pub public_url: String,
    /// The Stripe client settings.
    pub upstream: crate::proxy::client::UpstreamConfig,
    /// Whether admin keys may add push destinations at private addresses. An admin key
    /// manages one tenant; private addresses are the operator's network.
    pub allow_private_destinations: bool,
}

/// Where the machine-readable description is served (without authentication: it holds no
/// workspace data, and clients need it before they hold a key).
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// What the management handlers share: the data plane's caches and request log, the store,
/// and the sealer that encrypts Stripe keys set through the API.
struct ApiState {
    shared: Arc<ProxyShared>,
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    /// Where ingest URLs point and how to reach Stripe (webhook endpoints).
    webhooks: WebhookApiSettings,
    /// Operation ids by method and route template, for the audit record.
    operations: HashMap<(Method, String), String>,
    /// The OpenAPI document, rendered once.
    spec: String,
}

/// The management API's routes, ready to merge into the main router.
pub fn router(
    shared: Arc<ProxyShared>,
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    webhooks: WebhookApiSettings,
) -> Router {
    let (managed, spec) = managed_routes().split_for_parts();
    let state = Arc::new(ApiState {
        shared,
        store,
        sealer,
        webhooks,
        operations: operation_ids(&spec),
        spec: spec.to_json().expect("the OpenAPI document serializes"),
    });
    managed
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::admit,
        ))
        .route(OPENAPI_PATH, get(openapi_json).fallback(method_not_allowed))
        .with_state(state)
}

/// The OpenAPI 3.1 description of the management API, as served at [`OPENAPI_PATH`].
pub fn openapi() -> OpenApi {
    managed_routes().into_openapi()
}

/// Every authenticated route, with its handler's OpenAPI operation: the one list both the
/// router and the document are built from.
fn managed_routes() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(workspace::show))
        .routes(routes!(connections::list))
        .routes(routes!(
            connections::show,
            connections::set,
            connections::remove
        ))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(keys::rotate))
        .routes(routes!(logs::list))
        .routes(routes!(usage::list))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::show, webhooks::remove))
        .routes(routes!(webhooks::add_secret))
        .routes(routes!(webhooks::register))
        .routes(routes!(push_destinations::list, push_destinations::create))
        .routes(routes!(push_destinations::remove))
        .routes(routes!(push_destinations::attempts))
}

/// The document's frame: title, security scheme, and the public description route.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "agentgate management API",
        description = "Manage one workspace of agentgate (connections, keys, request log, guardrail usage) with an admin key.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(openapi_json),
    modifiers(&BearerKey),
    security(("agentgate_key" = []))
)]
struct ApiDoc;

/// Declares the `agentgate_key` bearer scheme every management route requires.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("An agentgate key of role admin (agk_...).".into());
        components.add_security_scheme("agentgate_key", SecurityScheme::Http(scheme));
    }
}

/// `(method, route template) → operation id`, read from the document.
fn operation_ids(spec: &OpenApi) -> HashMap<(Method, String), String> {
    let mut ids = HashMap::new();
    for (path, item) in &spec.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
        ];
        for (method, operation) in operations {
            if let Some(id) = operation.as_ref().and_then(|o| o.operation_id.clone()) {
                ids.insert((method, path.clone()), id);
            }
        }
    }
    ids
}

/// The description of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "api.openapi",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json(State(state): State<Arc<ApiState>>) -> Response {
    let mut response = state.spec.clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 405 in Stripe's shape for a method a management route does not have.
async fn method_not_allowed(method: Method) -> ApiError {
    GatewayError::MethodNotAllowed(method.to_string()).into()
}

/// A page of a list, in Stripe's shape.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    /// Always `list`.
    #[schema(example = "list")]
    object: &'static str,
    /// The items, in the list's order.
    data: Vec<T>,
    /// Whether more items follow the last one (fetch them with `starting_after`).
    has_more: bool,
}

impl<T> List<T> {
    /// A complete list or one page of a longer one.
    fn new(data: Vec<T>, has_more: bool) -> Self {
        Self {
            object: "list",
            data,
            has_more,
        }
    }
}
