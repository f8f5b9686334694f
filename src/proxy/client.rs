//! The connection to Stripe: pooled keep-alive HTTP/1.1 over rustls, a connect timeout and
//! a total timeout, a cap on request bodies, and no redirects followed. Bodies already read
//! whole go through the worker's [`DirectClient`]; streamed ones through hyper. Requests are
//! never retried once they may have reached Stripe; either pool only re-sends a request
//! whose pooled connection closed before any byte was written.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body::Body as HttpBody;
use http_body_util::{Either, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::body_deadline::DeadlineBody;
use super::connect_timeout::ConnectTimeout;
use super::direct::{DirectBody, DirectClient, HeaderSource};
use super::headers;
use super::raw_headers::RawHeaders;
use super::target::StripeTarget;
use crate::error::GatewayError;

/// What a response body cut at the exchange's deadline is called in its error.
const RESPONSE: &str = "Stripe's response";

/// The error a response body from Stripe ends with.
type BoxError = Box<dyn StdError + Send + Sync>;

/// The request body type sent upstream: the caller's stream, capped, or a body already read
/// whole (to validate it).
pub type UpstreamBody = Either<Limited<hyper::body::Incoming>, Full<Bytes>>;

/// Settings of the upstream client.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Scheme and authority of Stripe's API (`https://api.stripe.com`).
    pub base: StripeBase,
    /// How long establishing a connection (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// How long the whole exchange may take, until the last byte of the response.
    pub timeout: Duration,
    /// Largest request body forwarded.
    pub max_body_bytes: u64,
}

/// A validated Stripe base URL: scheme and authority only. Plain `http` is allowed only
/// for loopback addresses (local Stripe doubles), so a live key never crosses the network
/// unencrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeBase {
    scheme: Scheme,
    authority: Authority,
}

impl std::str::FromStr for StripeBase {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: Uri = text
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("not a URL: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err("expected scheme://host[:port]".into());
        };
        if uri
            .path_and_query()
            .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
        {
            return Err("the Stripe API base takes no path; agentgate adds /v1/...".into());
        }
        let loopback = matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]");
        match scheme.as_str() {
            "https" => Ok(Self { scheme, authority }),
            "http" if loopback => Ok(Self { scheme, authority }),
            "http" => Err("plain http is only allowed for loopback addresses; use https".into()),
            other => Err(format!("unsupported scheme {other}")),
        }
    }
}

/// The client that forwards requests to Stripe (one per worker).
pub struct Upstream {
    /// For streamed request bodies.
    client: Client<ConnectTimeout<HttpsConnector<HttpConnector>>, UpstreamBody>,
    /// For request bodies already whole: cheaper per request.
    direct: DirectClient,
    config: UpstreamConfig,
}

/// The head of a data-plane request for Stripe: what the caller sent and what agentgate
/// adds. Its headers go through the allow-list of [`headers::forwarded_request_headers`]
/// as the request is written.
pub struct Outgoing<'a> {
    /// The caller's method.
    pub method: Method,
    /// Stripe's path and query.
    pub target: PathAndQuery,
    /// The caller's headers, before the allow-list.
    pub caller_headers: &'a HeaderMap,
    /// The connection's credential, injected.
    pub authorization: &'a HeaderValue,
    /// An `Idempotency-Key` agentgate derived, sent instead of the caller's.
    pub idempotency_key: Option<HeaderValue>,
}

impl Outgoing<'_> {
    /// The headers as Stripe receives them, as a map (for hyper and for dry runs).
    pub fn headers(&self) -> HeaderMap {
        let mut headers =
            headers::upstream_request_headers(self.caller_headers, self.authorization);
        if let Some(key) = &self.idempotency_key {
            headers.insert(headers::IDEMPOTENCY_KEY.clone(), key.clone());
        }
        headers
    }
}

/// What one exchange with Stripe sends, and through which client.
enum Exchange<'a> {
    /// A whole body, through the direct client.
    Direct {
        method: &'a Method,
        target: &'a str,
        headers: HeaderSource<'a>,
        body: Full<Bytes>,
    },
    /// A streamed body, through hyper's pool.
    Hyper(Request<UpstreamBody>),
}

/// How a forward failed, for metrics.
#[derive(Debug)]
pub struct UpstreamFailure {
    /// What the caller is told.
    pub error: GatewayError,
    /// `connect`, `timeout`, `reset` or `body` (the caller's body was refused).
    pub kind: &'static str,
    /// The transport's explanation (e.g. "Connection refused"), for the log only.
    pub cause: String,
}

impl Upstream {
    /// Builds the pooled client.
    pub fn new(config: UpstreamConfig) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let https = ConnectTimeout::new(https, config.connect_timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(512)
            .build(https);
        let base = &config.base;
        let direct = DirectClient::new(&base.scheme, &base.authority, config.connect_timeout);
        Self {
            client,
            direct,
            config,
        }
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// The absolute URI of a target at Stripe.
    pub fn uri(&self, target: &StripeTarget) -> Uri {
        self.uri_of(target.path_and_query())
    }

    fn uri_of(&self, path_and_query: &PathAndQuery) -> Uri {
        Uri::builder()
            .scheme(self.config.base.scheme.clone())
            .authority(self.config.base.authority.clone())
            .path_and_query(path_and_query.clone())
            .build()
            .expect("scheme, authority and a checked path form a valid URI")
    }

    /// Sends the request and returns Stripe's response, whose body keeps streaming under the
    /// same deadline, and Stripe's headers. Either way only end-to-end headers come back:
    /// the direct client never keeps hop-by-hop ones and hands its headers back as the
    /// lines Stripe sent (the map stays empty), while hyper's response keeps them in its
    /// map, stripped here (the lines are then empty). The body is not boxed here: the data
    /// plane wraps it once more (to hold its upstream slot) and boxes the result once.
    pub async fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<
        (
            Response<impl HttpBody<Data = Bytes, Error = BoxError> + Send + 'static>,
            RawHeaders,
        ),
        UpstreamFailure,
    > {
        let (parts, body) = request.into_parts();
        match body {
            Either::Right(whole) => {
                let direct = Exchange::Direct {
                    method: &parts.method,
                    target: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                    headers: HeaderSource::Map(&parts.headers),
                    body: whole,
                };
                self.exchange(direct).await
            }
            Either::Left(streamed) => {
                let request = Request::from_parts(parts, Either::Left(streamed));
                self.exchange(Exchange::Hyper(request)).await
            }
        }
    }

    /// Like [`Self::send`], for a data-plane request: the caller's headers pass the
    /// allow-list as the request is written, so a whole body's request (the common case)
    /// builds no second header map and no absolute URI.
    pub async fn forward(
        &self,
        outgoing: &Outgoing<'_>,
        body: UpstreamBody,
    ) -> Result<
        (
            Response<impl HttpBody<Data = Bytes, Error = BoxError> + Send + 'static>,
            RawHeaders,
        ),
        UpstreamFailure,
    > {
        match body {
            Either::Right(whole) => {
                let direct = Exchange::Direct {
                    method: &outgoing.method,
                    target: outgoing.target.as_str(),
                    headers: HeaderSource::Caller {
                        headers: outgoing.caller_headers,
                        authorization: outgoing.authorization,
                        idempotency_key: outgoing.idempotency_key.as_ref(),
                    },
                    body: whole,
                };
                self.exchange(direct).await
            }
            Either::Left(streamed) => {
                let mut request = Request::new(Either::Left(streamed));
                *request.method_mut() = outgoing.method.clone();
                *request.uri_mut() = self.uri_of(&outgoing.target);
                *request.headers_mut() = outgoing.headers();
                self.exchange(Exchange::Hyper(request)).await
            }
        }
    }

    /// One exchange under one timer for all of it: the timer bounds the wait for the
    /// response head, then travels with the body.
    async fn exchange(
        &self,
        exchange: Exchange<'_>,
    ) -> Result<
        (
            Response<DeadlineBody<Either<DirectBody, hyper::body::Incoming>>>,
            RawHeaders,
        ),
        UpstreamFailure,
    > {
        let mut sleep = Box::pin(tokio::time::sleep_until(
            Instant::now() + self.config.timeout,
        ));
        // Each exchange is made inside its `select!`, not handed to a helper: a future
        // passed by value is stored twice in the caller's, and these are kilobytes.
        match exchange {
            Exchange::Direct {
                method,
                target,
                headers,
                body,
            } => {
                let (response, lines) = tokio::select! {
                    biased;
                    response = self.direct.exchange(method, target, &headers, body) => response?,
                    () = &mut sleep => return Err(self.timeout()),
                };
                let response =
                    response.map(|direct| DeadlineBody::new(Either::Left(direct), sleep, RESPONSE));
                Ok((response, lines))
            }
            Exchange::Hyper(request) => {
                let mut response = tokio::select! {
                    biased;
                    response = self.hyper_send(request) => response?,
                    () = &mut sleep => return Err(self.timeout()),
                };
                headers::strip_hop_by_hop(response.headers_mut());
                let response = response
                    .map(|incoming| DeadlineBody::new(Either::Right(incoming), sleep, RESPONSE));
                Ok((response, RawHeaders::default()))
            }
        }
    }

    /// Sends a streamed body through hyper's pool, naming a refused (over-cap) body apart.
    async fn hyper_send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<hyper::body::Incoming>, UpstreamFailure> {
        self.client
            .request(request)
            .await
            .map_err(|error| classify(&error, self.config.max_body_bytes))
    }

    fn timeout(&self) -> UpstreamFailure {
        UpstreamFailure {
            error: GatewayError::UpstreamTimeout {
                seconds: self.config.timeout.as_secs(),
            },
            kind: "timeout",
            cause: format!("no complete answer within {:?}", self.config.timeout),
        }
    }
}

/// Tells a refused caller body (over the cap) from Stripe being unreachable.
fn classify(error: &hyper_util::client::legacy::Error, limit: u64) -> UpstreamFailure {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if cause.is::<LengthLimitError>() {
            return UpstreamFailure {
                error: GatewayError::BodyTooLarge { limit },
                kind: "body",
                cause: cause.to_string(),
            };
        }
        source = cause.source();
    }
    let kind = if error.is_connect() {
        "connect"
    } else {
        "reset"
    };
    UpstreamFailure {
        error: GatewayError::UpstreamUnreachable,
        kind,
        cause: error_chain(error),
    }
}

/// `outer: inner: innermost`, as far as the sources go.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http_bases_only() {
        assert!("https://api.stripe.com".parse::<StripeBase>().is_ok());
        assert!("http://127.0.0.1:12111".parse::<StripeBase>().is_ok());
        assert!("http://[::1]:8080/".parse::<StripeBase>().is_ok());
        assert!("http://api.stripe.com".parse::<StripeBase>().is_err());
        assert!("https://api.stripe.com/v1".parse::<StripeBase>().is_err());
        assert!("ftp://x".parse::<StripeBase>().is_err());
    }
}
