//! Sessions: the cookie that says who signed in, and the [`Operator`] extractor every page
//! takes. The cookie holds a random token; the store keeps only its hash. Cookies are
//! HttpOnly and SameSite=Lax always, Secure when the public URL is https. A session ends
//! after [`IDLE_TIMEOUT`] without use, or at sign-out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method};

use super::{csrf, DashState};
use crate::audit::ChangeOrigin;
use crate::ids::WorkspaceId;
use crate::installation_audit::InstallationOrigin;
use crate::operators::{random_token, token_hash};
use crate::proxy::ClientAddr;
use crate::store::{InstallationRecord, SessionRecord, Workspace};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "agentgate_session";

/// The cookie that carries the CSRF secret of the sign-in and setup forms, before there is
/// a session.
pub const PREAUTH_COOKIE: &str = "agentgate_preauth";

/// A session unused this long is over.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);

/// Expiry is moved forward at most this often, so reading pages is not a write each time.
const TOUCH_EVERY: i64 = 60_000;

/// The signed-in operator, with the workspace they are looking at.
pub struct Operator {
    /// Sign-in name, shown in the nav.
    pub name: String,
    /// The session's id (the token's hash), for sign-out and the workspace switch.
    pub session_id: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The workspace every page shows.
    pub workspace: Workspace,
    /// Every workspace, for the switch in the nav.
    pub workspaces: Vec<Workspace>,
    /// The method, path and client address of the request the operator was taken from,
    /// for the audit record of a change it makes.
    request: (Method, String, Option<IpAddr>),
}

impl Operator {
    /// Who asks for a change made by this request: the operator, through the dashboard.
    pub fn change_origin(&self) -> ChangeOrigin {
        let (method, path, client) = &self.request;
        ChangeOrigin::operator(&self.name, method, path.clone(), *client)
    }

    /// Who asks for an installation-wide change made by this request (a workspace, an
    /// operator): the operator, through the dashboard.
    pub fn installation_origin(&self) -> InstallationOrigin {
        InstallationOrigin::operator(&self.name, self.request.2)
    }
}

impl FromRequestParts<Arc<DashState>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<DashState>,
    ) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        match load(state, &token).await {
            Ok(Some(mut operator)) => {
                let client = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
                operator.request = (parts.method.clone(), parts.uri.path().to_owned(), client);
                Ok(operator)
            }
            Ok(None) => Err(to_login()),
            Err(error) => {
                tracing::error!(%error, "dashboard session lookup failed");
                Err(super::layout::internal_error())
            }
        }
    }
}

/// The operator of a live session, moving its idle expiry forward.
async fn load(
    state: &DashState,
    token: &str,
) -> Result<Option<Operator>, crate::store::StoreError> {
    let store = &state.settings.store;
    let now = crate::time::now_millis();
    let Some(session) = store.find_session(&token_hash(token), now).await? else {
        return Ok(None);
    };
    let Some(operator) = store.find_operator(&session.operator_id).await? else {
        return Ok(None);
    };
    let idle = idle_millis();
    if session.expires_at - now < idle - TOUCH_EVERY {
        store.touch_session(&session.id, now + idle).await?;
    }
    let workspaces = store.list_workspaces().await?;
    let wanted = session.workspace_id.clone().map_or_else(
        || state.settings.default_workspace.clone(),
        WorkspaceId::from_stored,
    );
    let Some(workspace) = workspaces.iter().find(|w| w.id == wanted).cloned() else {
        return Ok(None);
    };
    Ok(Some(Operator {
        name: operator.name,
        session_id: session.id,
        csrf: csrf::token_for(token),
        workspace,
        workspaces,
        request: (Method::GET, String::new(), None),
    }))
}

/// Starts a session for the operator, with the sign-in's audit record, and returns its
/// `Set-Cookie` value.
pub async fn start(
    state: &DashState,
    operator_id: &str,
    audit: &InstallationRecord,
) -> Result<HeaderValue, crate::store::StoreError> {
    let token = random_token();
    let now = crate::time::now_millis();
    state
        .settings
        .store
        .insert_session(
            &SessionRecord {
                id: token_hash(&token),
                operator_id: operator_id.to_owned(),
                workspace_id: None,
                created_at: now,
                expires_at: now + idle_millis(),
            },
            audit,
        )
        .await?;
    Ok(set_cookie(state, SESSION_COOKIE, &token))
}

fn idle_millis() -> i64 {
    i64::try_from(IDLE_TIMEOUT.as_millis()).unwrap_or(i64::MAX)
}

/// A `Set-Cookie` value for a browser-session cookie (no Max-Age: the server enforces
/// expiry) that scripts cannot read and other sites cannot send along on POSTs.
pub fn set_cookie(state: &DashState, name: &str, value: &str) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("tokens are base64url")
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(state: &DashState, name: &str) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
    ))
    .expect("a fixed cookie")
}

/// The value of the named cookie, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}
