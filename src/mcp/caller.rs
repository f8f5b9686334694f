//! Who makes an MCP request: the agentgate key of the HTTP request that carried it (every
//! request authenticates, a session never stands in for a key), with what the data plane
//! needs to check a tool call as theirs. Holds the credential, so it has no `Debug`.

use std::sync::Arc;

use http::{header, HeaderValue};
use rmcp::model::ErrorData;
use rmcp::service::RequestContext;
use rmcp::RoleServer;

use crate::keys::AuthenticatedKey;
use crate::proxy::{ClientAddr, ProxyShared};

/// The caller of one MCP request.
pub struct Caller {
    /// The key, checked.
    pub key: Arc<AuthenticatedKey>,
    /// The `Authorization` header as presented, forwarded to the data plane.
    pub authorization: HeaderValue,
    /// The client's address, for keys limited to address ranges.
    pub client: Option<ClientAddr>,
}

impl Caller {
    /// The caller of the HTTP request `context` came with.
    pub async fn of(
        shared: &ProxyShared,
        context: &RequestContext<RoleServer>,
    ) -> Result<Self, ErrorData> {
        let refused = || ErrorData::invalid_request("an agentgate key is required", None);
        let parts = context
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(refused)?;
        let key = shared
            .authenticate(&parts.headers)
            .await
            .map_err(|_| refused())?;
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .cloned()
            .ok_or_else(refused)?;
        Ok(Self {
            key,
            authorization,
            client: parts.extensions.get::<ClientAddr>().copied(),
        })
    }
}
