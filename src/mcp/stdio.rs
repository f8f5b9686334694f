//! `agentgate mcp --url URL`: an MCP server on stdin/stdout that relays every request to a
//! remote agentgate's `/mcp`, for agent runtimes that only launch local processes. It
//! holds no catalog and checks nothing: the remote answers for the key, as it would answer
//! the agent directly. The key comes from the environment and is sent only to the remote.

use anyhow::Context as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use secrecy::{ExposeSecret, SecretString};

/// Serves MCP on stdin/stdout until the client closes it, relaying to the agentgate MCP
/// endpoint at `url` with `key` as the Bearer token.
pub async fn relay(url: &str, key: SecretString) -> anyhow::Result<()> {
    // The HTTP client's TLS uses the process's provider; agentgate builds rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(key.expose_secret());
    let remote = ()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .with_context(|| format!("cannot start an MCP session with {url}"))?;
    let instructions = remote
        .peer()
        .peer_info()
        .and_then(|info| info.instructions.clone());
    let relay = Relay {
        remote: remote.peer().clone(),
        instructions,
    };
    let local = relay
        .serve(rmcp::transport::stdio())
        .await
        .context("cannot serve MCP on stdin/stdout")?;
    let ended = local.waiting().await;
    let _ = remote.cancel().await;
    ended.context("the MCP session on stdin/stdout failed")?;
    Ok(())
}

/// The local server: each request goes to the remote session as it came.
#[derive(Clone)]
struct Relay {
    remote: Peer<RoleClient>,
    instructions: Option<String>,
}

impl ServerHandler for Relay {
    fn get_info(&self) -> ServerConfig {
        let config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentgate", env!("CARGO_PKG_VERSION")));
        match &self.instructions {
            Some(instructions) => config.with_instructions(instructions.clone()),
            None => config,
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.remote.list_tools(request).await.map_err(relayed)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.remote.call_tool_once(request).await.map_err(relayed)
    }
}

/// The remote's protocol errors as they were; a failure to reach it as an internal error
/// that says so.
fn relayed(error: ServiceError) -> ErrorData {
    match error {
        ServiceError::McpError(error) => error,
        other => {
            tracing::warn!(error = %other, "relaying to the remote agentgate failed");
            ErrorData::internal_error(
                format!("the remote agentgate did not answer: {other}"),
                None,
            )
        }
    }
}
