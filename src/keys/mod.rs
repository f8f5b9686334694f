//! agentgate keys: their format, how a request presents one, and the cached lookup that
//! turns a presented key into the workspace and key it belongs to.

mod cache;
pub mod failures;
pub mod format;
mod manage;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{header, HeaderMap};
use zeroize::Zeroizing;

pub use cache::{AuthError, AuthenticatedKey, KeyAuthenticator};
pub use manage::{create_key, list_keys, revoke_key, rotate_key, CreatedKey, KeySpec};

/// A key as a request presents it: borrowed from the header, or decoded from HTTP Basic
/// (that copy is zeroized on drop).
pub enum PresentedKey<'a> {
    /// From `Authorization: Bearer KEY`.
    Bearer(&'a str),
    /// The user name of `Authorization: Basic ...`.
    Basic(Zeroizing<String>),
}

impl PresentedKey<'_> {
    /// The key text.
    pub fn as_str(&self) -> &str {
        match self {
            PresentedKey::Bearer(key) => key,
            PresentedKey::Basic(key) => key,
        }
    }
}

/// The key a request presents in `Authorization`: `Bearer KEY`, or HTTP Basic with the key
/// as the user name (how `curl -u KEY:` and some Stripe clients send it). Keys are never
/// read from the query string.
pub fn presented_key(headers: &HeaderMap) -> Option<PresentedKey<'_>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(PresentedKey::Bearer(credentials));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = Zeroizing::new(STANDARD.decode(credentials).ok()?);
        let text = std::str::from_utf8(&decoded).ok()?;
        let user = text.split_once(':').map_or(text, |(user, _)| user);
        return Some(PresentedKey::Basic(Zeroizing::new(user.to_owned())));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn reads_bearer_and_basic_credentials() {
        let bearer = headers("Bearer agk_x");
        assert_eq!(
            presented_key(&bearer).as_ref().map(PresentedKey::as_str),
            Some("agk_x")
        );
        let basic = headers(&format!("Basic {}", STANDARD.encode("agk_y:")));
        assert_eq!(
            presented_key(&basic).as_ref().map(PresentedKey::as_str),
            Some("agk_y")
        );
        assert!(presented_key(&headers("Token agk_z")).is_none());
        assert!(presented_key(&HeaderMap::new()).is_none());
    }
}
