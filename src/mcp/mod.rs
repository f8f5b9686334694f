//! `POST/GET/DELETE /mcp`: agentgate as an MCP server (streamable HTTP transport, the
//! official `rmcp` SDK), so any MCP client uses Stripe with nothing but an agentgate key.
//!
//! Every HTTP request to `/mcp` must carry the key as a Bearer token, and each MCP request
//! is answered for the key of the HTTP request that carried it: a session id never stands
//! in for a key. The tools are those of [`tools`] (Stripe, run through the data plane) and
//! [`events`] (webhook events); this module owns only the transport and the dispatch, and
//! never checks a permission of its own beyond refusing requests without a valid key.
//!
//! Sessions (of clients on protocol versions before 2026-07-28, which have them) live in
//! this process, shared by its workers; behind a load balancer, route a session's requests
//! to one instance (or use clients of the sessionless protocol).

mod caller;
mod events;
mod form;
mod reply;
mod request;
pub mod stdio;
mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::watch;

use crate::error::GatewayError;
use crate::policy::{Denied, Role};
use crate::proxy::{Proxy, ProxyShared};
use crate::store::Store;
use crate::webhooks::pull::EventReaders;
use crate::webhooks::stream::StreamSettings;
use caller::Caller;
use events::EventTools;
use tools::StripeTools;

/// The path of the MCP endpoint.
pub const PATH: &str = "/mcp";

/// The MCP sessions of this process, shared by every worker: a session begun on one
/// worker's connection continues on another's.
#[derive(Clone, Default)]
pub struct Sessions(Arc<LocalSessionManager>);

/// What the MCP route needs from the app.
pub struct McpSettings {
    /// The worker's data plane, which runs every Stripe tool call.
    pub proxy: Arc<Proxy>,
    /// Keys, catalog and the event bus.
    pub shared: Arc<ProxyShared>,
    /// Connections and webhook endpoints.
    pub store: Arc<dyn Store>,
    /// The process's sessions.
    pub sessions: Sessions,
    /// Timing of event reads (`wait_for_event` polls like the live stream).
    pub event_stream: StreamSettings,
    /// Turns true when the server stops; ends sessions and waits.
    pub stop: watch::Receiver<bool>,
}

/// The `/mcp` route, merged into the main router.
pub fn router(settings: McpSettings) -> Router {
    let McpSettings {
        proxy,
        shared,
        store,
        sessions,
        event_stream,
        stop,
    } = settings;
    let readers = EventReaders::new(shared.clone(), store.clone(), event_stream, stop.clone());
    let gateway = Gateway {
        shared: shared.clone(),
        stripe: Arc::new(StripeTools::new(proxy, shared.catalog.clone(), store)),
        events: Arc::new(EventTools::new(readers)),
    };
    // Every request must present a valid key, so a DNS-rebinding page (what the Host check
    // guards local servers against) gains nothing; deployments choose their own hostnames.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    end_on_stop(&config, stop);
    let service = StreamableHttpService::new(move || Ok(gateway.clone()), sessions.0, config);
    Router::new()
        .route_service(PATH, service)
        .route_layer(middleware::from_fn_with_state(shared, require_key))
}

/// Cancels the transport's sessions and open streams when the server stops, so graceful
/// shutdown never waits on them.
fn end_on_stop(config: &StreamableHttpServerConfig, mut stop: watch::Receiver<bool>) {
    let token = config.cancellation_token.clone();
    tokio::spawn(async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
        token.cancel();
    });
}

/// Refuses requests without a valid agent key before the MCP transport sees them: 401 in
/// Stripe's shape with a Bearer challenge, or 403 for admin keys (they manage, agents call).
async fn require_key(
    State(shared): State<Arc<ProxyShared>>,
    request: Request,
    next: Next,
) -> Response {
    match shared.authenticate(request.headers()).await {
        Ok(key) if key.role == Role::Agent => next.run(request).await,
        Ok(_) => GatewayError::Forbidden(Denied {
            permission: "role",
            message: "Admin keys manage a workspace through /api/v1; agent keys use MCP."
                .to_owned(),
        })
        .into_response(),
        Err(error) => {
            let mut response = error.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agentgate\""),
            );
            response
        }
    }
}

/// The MCP server: lists and dispatches the tools for each request's key.
#[derive(Clone)]
struct Gateway {
    shared: Arc<ProxyShared>,
    stripe: Arc<StripeTools>,
    events: Arc<EventTools>,
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentgate", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Stripe through agentgate. Each tool is a Stripe API operation this key may \
                 call; arguments are Stripe's parameters as JSON (amounts in the currency's \
                 smallest unit). Results are Stripe's JSON; refusals (by Stripe or by this \
                 key's scopes and limits) are tool errors with Stripe's message and code.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = Caller::of(&self.shared, &context).await?;
        let unavailable = |_| ErrorData::internal_error("internal error", None);
        let mut tools = self.stripe.list(&caller).await.map_err(unavailable)?;
        tools.extend(self.events.list(&caller).await.map_err(unavailable)?);
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = Caller::of(&self.shared, &context).await?;
        let arguments = request.arguments.unwrap_or_default();
        let name = request.name.as_ref();
        let result = if EventTools::handles(name) {
            self.events.call(&caller, name, &arguments).await
        } else if self.stripe.handles(name) {
            self.stripe.call(&caller, name, arguments).await
        } else {
            let message = format!(
                "Unknown tool: {}",
                crate::proxy::target::loggable_raw_path(name)
            );
            return Err(ErrorData::invalid_params(message, None));
        };
        Ok(result.into())
    }
}
