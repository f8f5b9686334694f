//! What a listener serves: data-plane requests go straight to the [`Proxy`]; on the main
//! listener everything else goes through an axum router.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http::{Method, Request};
use hyper::body::Incoming;
use tower::ServiceExt;

use super::body_deadline::DeadlineBody;
use super::inbound::Inbound;
use super::{client_ip, target, Answer, ClientAddr, Mount, Proxy, Via, CONNECTIONS_PREFIX};
use crate::error::{FailedAuthentication, GatewayError};

/// What a listener serves: the data plane, and for the main listener every other route
/// through an axum router.
#[derive(Clone)]
pub struct Entry {
    proxy: Arc<Proxy>,
    kind: EntryKind,
}

#[derive(Clone)]
enum EntryKind {
    /// The main listener: `/v1/connections/...` to the proxy, the rest to the router, and
    /// the paths an address blocked for failed authentications may still reach.
    Main(Router, &'static [&'static str]),
    /// An SDK listener: everything to the proxy, for one connection.
    Sdk(Arc<str>),
}

impl Entry {
    /// The main listener: the data plane under `/v1/connections/`, `routes` for the rest.
    /// The `unblocked` paths (the health checks and metrics, which take no key) answer an
    /// address that failed authentication too often as any other: a load balancer or
    /// scraper that shares an address with a misbehaving client must not see the instance
    /// as down.
    pub fn main(proxy: Arc<Proxy>, routes: Router, unblocked: &'static [&'static str]) -> Self {
        Self {
            proxy,
            kind: EntryKind::Main(routes, unblocked),
        }
    }

    /// An SDK listener serving `connection` at its root.
    pub fn sdk(proxy: Arc<Proxy>, connection: &str) -> Self {
        Self {
            proxy,
            kind: EntryKind::Sdk(connection.into()),
        }
    }

    /// Answers one request. An address that failed authentication too often is refused
    /// here, before any route but the unblocked ones ([`Self::main`]); a refusal of an
    /// invalid key on any route is counted here.
    pub async fn serve(self, request: Request<Incoming>) -> Response {
        let address = client_ip(&request);
        let unblocked = match &self.kind {
            EntryKind::Main(_, unblocked) => unblocked.contains(&request.uri().path()),
            EntryKind::Sdk(_) => false,
        };
        if let (false, Some(refusal)) = (unblocked, self.refusal(address)) {
            return refusal;
        }
        let response = self.route(request, address).await;
        self.count_failure(address, &response);
        response
    }

    /// Whether a request for `path` belongs to the data plane, which can answer a request
    /// whose body has been read whole ([`Self::serve_whole`]).
    pub fn is_data_plane(&self, path: &str) -> bool {
        match &self.kind {
            EntryKind::Sdk(_) => true,
            EntryKind::Main(..) => path.starts_with(CONNECTIONS_PREFIX),
        }
    }

    /// Answers a data-plane request (see [`Self::is_data_plane`]) whose body the server
    /// has already read whole, from `peer`, with the same failure counting as
    /// [`Self::serve`]. Stripe's headers may come back as the lines it sent, beside the
    /// response (see [`Answer`]).
    pub async fn serve_whole(&self, request: Request<Bytes>, peer: Option<ClientAddr>) -> Answer {
        let address = peer.map(|peer| peer.0.ip());
        if let Some(refusal) = self.refusal(address) {
            return Answer::from(refusal);
        }
        let (parts, body) = request.into_parts();
        let mount = match &self.kind {
            EntryKind::Sdk(connection) => Mount::Root(connection),
            EntryKind::Main(..) => Mount::Prefixed,
        };
        // Awaited where it is made: the data plane's future is several kilobytes, and
        // handing it to a helper by value would copy it on every request.
        let answer = self
            .proxy
            .respond(parts, Inbound::Whole(body), mount, Via::Http, address)
            .await;
        self.count_failure(address, &answer.response);
        answer
    }

    /// The answer for an address that failed authentication too often, if it is blocked.
    fn refusal(&self, address: Option<IpAddr>) -> Option<Response> {
        let retry_after = address.and_then(|ip| self.proxy.shared.auth_failures.blocked(ip))?;
        Some(GatewayError::TooManyFailedAuthentications { retry_after }.into_response())
    }

    /// Counts a refusal of an invalid key against the address it came from.
    fn count_failure(&self, address: Option<IpAddr>, response: &Response) {
        let failed = response
            .extensions()
            .get::<FailedAuthentication>()
            .is_some();
        if let (Some(ip), true) = (address, failed) {
            if self.proxy.shared.auth_failures.failed(ip) {
                self.proxy.shared.metrics.auth_blocks.inc();
                tracing::warn!(
                    client = %ip,
                    "client address blocked for the rest of its minute: too many failed authentications (--auth-failure-limit)"
                );
            }
        }
    }

    async fn route(&self, request: Request<Incoming>, address: Option<IpAddr>) -> Response {
        match &self.kind {
            EntryKind::Sdk(connection) => {
                let mount = Mount::Root(connection);
                self.proxy.handle(request, mount, address).await
            }
            EntryKind::Main(..) if request.uri().path().starts_with(CONNECTIONS_PREFIX) => {
                self.proxy.handle(request, Mount::Prefixed, address).await
            }
            EntryKind::Main(routes, _) => {
                let routes = routes.clone();
                let limit = self.proxy.upstream.config().timeout;
                let request = request
                    .map(|body| Body::new(DeadlineBody::within(body, limit, "the request body")));
                match routes.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        }
    }
}

/// The 404 for anything no route matches, in Stripe's shape.
pub async fn unknown_route(request: axum::extract::Request) -> Response {
    if request.method() == Method::CONNECT {
        return GatewayError::MethodNotAllowed("CONNECT".into()).into_response();
    }
    GatewayError::UnknownRoute {
        method: request.method().to_string(),
        path: target::loggable_raw_path(request.uri().path()),
    }
    .into_response()
}
