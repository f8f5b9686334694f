//! Checking a pasted key against Stripe before it is stored: `GET /v1/account` with the key.
//! A restricted key may lack the permission to read the account; Stripe then answers 403
//! and the key is still good (it authenticated), so the check says "could not be read".

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Either, Full};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::StripeSecret;
use crate::proxy::client::Upstream;
use crate::proxy::target::StripeTarget;

/// Largest account answer read (Stripe's is a few kilobytes).
const MAX_ACCOUNT_ANSWER: usize = 512 * 1024;

/// What Stripe said about the key's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCheck {
    /// The key works and the account was read.
    Account {
        /// `acct_...`.
        id: String,
        /// `settings.dashboard.display_name`, else `business_profile.name`.
        name: Option<String>,
    },
    /// The key works but may not read the account (a restricted key without that
    /// permission: Stripe answered 403).
    Unreadable,
}

/// Why a key was refused or could not be checked. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum AccountCheckError {
    /// Stripe answered 401: the key is wrong, rolled or deleted.
    #[error("Stripe refused the key ({0})")]
    Rejected(String),
    /// Stripe could not be reached, or answered something else.
    #[error("the key could not be checked with Stripe: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct AccountBody {
    id: String,
    settings: Option<Settings>,
    business_profile: Option<BusinessProfile>,
}

#[derive(Deserialize)]
struct Settings {
    dashboard: Option<Dashboard>,
}

#[derive(Deserialize)]
struct Dashboard {
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct BusinessProfile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

/// Asks Stripe which account the key belongs to (`GET /v1/account`).
pub async fn check_account(
    upstream: &Upstream,
    secret: &StripeSecret,
) -> Result<AccountCheck, AccountCheckError> {
    let target = StripeTarget::parse("account", None)
        .map_err(|e| AccountCheckError::Unavailable(e.to_string()))?;
    let bearer = Zeroizing::new(format!("Bearer {}", secret.expose()));
    let mut authorization = HeaderValue::from_str(&bearer)
        .map_err(|_| AccountCheckError::Unavailable("the key is not a header value".into()))?;
    authorization.set_sensitive(true);
    let request = Request::builder()
        .method(Method::GET)
        .uri(upstream.uri(&target))
        .header(header::AUTHORIZATION, authorization)
        .header(
            header::USER_AGENT,
            HeaderValue::from_static("agentgate connection check"),
        )
        .body(Either::Right(Full::new(Bytes::new())))
        .map_err(|e| AccountCheckError::Unavailable(e.to_string()))?;
    // Only the status and the body are read here.
    let (response, _headers) = upstream
        .send(request)
        .await
        .map_err(|failure| AccountCheckError::Unavailable(failure.cause))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_ACCOUNT_ANSWER)
        .collect()
        .await
        .map_err(|e| AccountCheckError::Unavailable(format!("reading the answer failed: {e}")))?
        .to_bytes();
    let message = || {
        serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .and_then(|b| b.error.message)
            .map(|m| format!("{status}: {m}"))
            .unwrap_or_else(|| status.to_string())
    };
    match status.as_u16() {
        200..=299 => {
            let account: AccountBody = serde_json::from_slice(&body).map_err(|_| {
                AccountCheckError::Unavailable("the answer is not an account".into())
            })?;
            let name = account
                .settings
                .and_then(|s| s.dashboard)
                .and_then(|d| d.display_name)
                .or_else(|| account.business_profile.and_then(|b| b.name))
                .filter(|n| !n.trim().is_empty());
            Ok(AccountCheck::Account {
                id: account.id,
                name,
            })
        }
        401 => Err(AccountCheckError::Rejected(message())),
        403 => Ok(AccountCheck::Unreadable),
        _ => Err(AccountCheckError::Unavailable(message())),
    }
}
