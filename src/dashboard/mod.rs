//! The operator's dashboard: server-rendered HTML (maud, escaping by default) for what the
//! CLI and the management API do. Every route here goes through two layers: the CSRF check
//! on every POST ([`csrf::check`]) and the security headers on every response
//! ([`security_headers`]). Pages call the same library functions as the API and never
//! render a Stripe key, a webhook secret or an agentgate key except the one just created.

mod auth;
mod csrf;
mod layout;
mod pages;
mod session;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderName, HeaderValue};

use crate::crypto::Sealer;
use crate::ids::WorkspaceId;
use crate::keys::failures::AuthFailures;
use crate::proxy::client::UpstreamConfig;
use crate::proxy::ProxyShared;
use crate::store::Store;

/// What the dashboard needs from the app.
pub struct DashboardSettings {
    /// The data plane's caches (cleared after changes) and catalog.
    pub shared: Arc<ProxyShared>,
    /// Where everything lives.
    pub store: Arc<dyn Store>,
    /// Seals Stripe keys pasted into the connections page.
    pub sealer: Arc<Sealer>,
    /// `--public-url`: ingest URLs, and `Secure` cookies when it is https.
    pub public_url: String,
    /// How to reach Stripe.
    pub upstream: UpstreamConfig,
    /// The workspace a new session looks at.
    pub default_workspace: WorkspaceId,
    /// Timing of the endpoint pages' live event streams.
    pub event_stream: crate::webhooks::stream::StreamSettings,
    /// Turns true when the server stops: ends the live streams.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Failed sign-ins per client address, shared by every worker (see [`sign_in_failures`]).
    pub sign_in_failures: Arc<AuthFailures>,
}

/// The sign-in limiter an app makes once and gives every worker's dashboard: password
/// guessing is slowed to [`SIGN_IN_FAILURES_PER_MINUTE`] tries a minute from one address.
pub fn sign_in_failures() -> Arc<AuthFailures> {
    Arc::new(AuthFailures::new(
        std::num::NonZeroU32::new(SIGN_IN_FAILURES_PER_MINUTE),
        Arc::new(crate::time::SystemClock::default()),
    ))
}

/// Shared by every dashboard handler.
struct DashState {
    settings: DashboardSettings,
    /// Whether cookies carry `Secure` (the public URL is https).
    secure_cookies: bool,
    /// Follows an endpoint's events for the live event list (the agents' stream logic).
    readers: Arc<crate::webhooks::pull::EventReaders>,
}

/// Failed sign-ins one client address may make in a minute before it must wait.
pub const SIGN_IN_FAILURES_PER_MINUTE: u32 = 10;

/// The dashboard's routes, ready to merge into the main router.
pub fn router(settings: DashboardSettings) -> Router {
    let secure_cookies = settings.public_url.starts_with("https://");
    let readers = Arc::new(crate::webhooks::pull::EventReaders::new(
        settings.shared.clone(),
        settings.store.clone(),
        settings.event_stream,
        settings.stop.clone(),
    ));
    let state = Arc::new(DashState {
        settings,
        secure_cookies,
        readers,
    });
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/setup/{token}", get(auth::setup_page).post(auth::setup))
        .route("/workspace", post(pages::switch_workspace))
        .merge(pages::router())
        .route("/assets/style.css", get(style_css))
        .route("/assets/app.js", get(app_js))
        .layer(axum::middleware::from_fn(csrf::check))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The one stylesheet, written for this project.
async fn style_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/style.css"),
    )
}

/// The copy buttons and the live event list: the only script, loaded from our origin (no inline code).
async fn app_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The Content-Security-Policy of every dashboard response: our own scripts, styles and
/// forms only, no inline code, no framing (OWASP Secure Headers Project).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Adds the security headers to every dashboard response; pages (anything without its own
/// `Cache-Control`) are never cached, since they show workspace data.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 4] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
