//! Idempotency for agents: `require` refuses POSTs without `Idempotency-Key`; `derive`
//! gives them one derived from the key, method, path and body. (Being written: the
//! interface the data plane calls is fixed here.)

use http::{HeaderMap, HeaderValue, Method};

use super::IdempotencyMode;
use crate::ids::KeyId;
use crate::validation::Violation;

/// Whether the body must be read to apply the mode to this request.
pub fn needs_body(mode: IdempotencyMode, method: &Method, headers: &HeaderMap) -> bool {
    let _ = (mode, method, headers);
    false
}

/// The `Idempotency-Key` to add to the upstream request, if any; refuses a POST without one
/// under `require`.
pub fn upstream_key(
    mode: IdempotencyMode,
    key_id: &KeyId,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<HeaderValue>, Violation> {
    let _ = (mode, key_id, method, path_and_query, headers, body);
    Ok(None)
}
