//! agentgate keys: their format, how a request presents one, and the cached lookup that
//! turns a presented key into the workspace and key it belongs to.

mod cache;
pub mod format;
mod manage;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{header, HeaderMap};
use zeroize::Zeroizing;

pub use cache::{AuthError, AuthenticatedKey, KeyAuthenticator};
pub use manage::{create_key, list_keys, revoke_key, CreatedKey};

/// The key a request presents in `Authorization`: `Bearer KEY`, or HTTP Basic with the key
/// as the user name (how `curl -u KEY:` and some Stripe clients send it). Keys are never
/// read from the query string.
pub fn presented_key(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Zeroizing::new(credentials.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = Zeroizing::new(STANDARD.decode(credentials).ok()?);
        let text = std::str::from_utf8(&decoded).ok()?;
        let user = text.split_once(':').map_or(text, |(user, _)| user);
        return Some(Zeroizing::new(user.to_owned()));
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
        assert_eq!(
            presented_key(&headers("Bearer agk_x"))
                .as_deref()
                .map(|s| s.as_str()),
            Some("agk_x")
        );
        let basic = format!("Basic {}", STANDARD.encode("agk_y:"));
        assert_eq!(
            presented_key(&headers(&basic))
                .as_deref()
                .map(|s| s.as_str()),
            Some("agk_y")
        );
        assert!(presented_key(&headers("Token agk_z")).is_none());
        assert!(presented_key(&HeaderMap::new()).is_none());
    }
}
