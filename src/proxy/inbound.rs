//! How a request enters the data plane: from a client over HTTP, with a body streamed as it
//! arrives, or from an in-process caller (the MCP server) with a body built whole. Both run
//! the same phases and end in the same request log; only the entry's [`Via`] differs.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;

use super::{checks, Mount, Proxy};
use crate::error::GatewayError;

/// How a request reached the data plane, recorded with it in the request log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// An HTTP request to `/v1/connections/...` or an SDK listener.
    Http,
    /// A tool call over MCP (`/mcp`).
    Mcp,
}

impl Via {
    /// The word stored in the request log.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::Mcp => "mcp",
        }
    }
}

/// A request body: still arriving from the client, or already whole.
pub(super) enum Inbound {
    /// Read (or streamed to Stripe) as it arrives.
    Stream(Incoming),
    /// Built by an in-process caller.
    Whole(Bytes),
}

impl Inbound {
    /// The whole body, up to `limit` bytes, within `timeout`.
    pub(super) async fn read(self, limit: u64, timeout: Duration) -> Result<Bytes, GatewayError> {
        match self {
            Inbound::Stream(body) => checks::read_body(body, limit, timeout).await,
            Inbound::Whole(bytes) if bytes.len() as u64 > limit => {
                Err(GatewayError::BodyTooLarge { limit })
            }
            Inbound::Whole(bytes) => Ok(bytes),
        }
    }
}

impl Proxy {
    /// Runs an in-process request through the data plane exactly as if it had arrived over
    /// HTTP at `/v1/connections/{connection}/...`: authentication from its headers, scopes,
    /// validation, guardrails, idempotency, rate limits, forwarding and the request log.
    pub async fn call(&self, request: Request<Bytes>, via: Via) -> Response {
        let client = super::client_ip(&request);
        let (parts, body) = request.into_parts();
        self.respond(parts, Inbound::Whole(body), Mount::Prefixed, via, client)
            .await
            .into_response()
    }
}
