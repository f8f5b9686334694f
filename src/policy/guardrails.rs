//! Money guardrails: per-request amount caps and daily totals per key and currency.
//! (Being written: the interface the data plane calls is fixed here.)

use std::sync::Arc;

use crate::keys::AuthenticatedKey;
use crate::store::{Store, StoreError};
use crate::validation::Params;

/// Checks amounts in request bodies against a key's caps and keeps its daily totals.
pub struct Guardrails {
    #[allow(dead_code)]
    store: Arc<dyn Store>,
}

/// Amounts counted against daily totals before forwarding, released if Stripe refuses.
#[derive(Debug)]
pub struct Reservation {}

/// Why a guarded request was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardrailError {
    /// A cap or a daily total would be exceeded; the message names the limit.
    #[error("{0}")]
    Exceeded(String),
    /// The totals could not be read or written; the request is not forwarded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Guardrails {
    /// Guardrails over the store that keeps the daily totals.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Whether a request of this operation by this key must be inspected.
    pub fn applies(&self, key: &AuthenticatedKey, operation: Option<&str>) -> bool {
        let _ = (key, operation);
        false
    }

    /// Checks the request's amounts and reserves them against the daily totals.
    pub async fn reserve(
        &self,
        key: &AuthenticatedKey,
        operation: Option<&str>,
        params: &Params<'_>,
    ) -> Result<Option<Reservation>, GuardrailError> {
        let _ = (key, operation, params);
        Ok(None)
    }

    /// Releases a reservation when Stripe refused the request (a 4xx); keeps it otherwise.
    pub async fn settle(&self, reservation: Reservation, refused_by_stripe: bool) {
        let _ = (reservation, refused_by_stripe);
    }
}
