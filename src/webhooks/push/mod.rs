//! Push: each event an endpoint receives is POSTed to the agents' URLs (destinations),
//! signed per Standard Webhooks, retried with backoff for about three days, every attempt
//! recorded, replayable by hand (`docs/push.md`). This module is what the CLI and the API
//! call; [`delivery`] holds the background tasks, [`signing`] the signature scheme and
//! [`ssrf`] the guard on where a destination may point.

pub mod delivery;
pub mod signing;
pub mod ssrf;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::audit::{Change, ChangeOrigin};
use crate::crypto::{Sealer, SecretPurpose};
use crate::ids::{DeliveryId, DestinationId, EndpointId, WorkspaceId};
use crate::store::push::{
    AttemptRecord, DestinationRecord, DestinationState, EventSelector, NewDelivery,
};
use crate::store::{Store, StoreError};
use crate::time::Clock;
use crate::webhooks::EventBus;
pub use delivery::{PushConfig, RetrySchedule};
use signing::DestinationSecret;
use ssrf::{DestinationUrl, UrlRefused};

/// Most events one replay re-delivers (a wider range is refused, not truncated).
pub const REPLAY_LIMIT: i64 = 10_000;

/// Why a push management action failed; each maps to one answer in the CLI and the API.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The URL is malformed or points where push may not go.
    #[error("{0}")]
    Url(#[from] UrlRefused),
    /// An event type in the filter is not a Stripe event type.
    #[error("invalid event type {0:?}")]
    InvalidEventType(String),
    /// The workspace has no such webhook endpoint.
    #[error("no such webhook endpoint")]
    EndpointNotFound,
    /// The workspace has no such destination (or not on that endpoint).
    #[error("no such push destination")]
    DestinationNotFound,
    /// Replay to a disabled destination; enable it first.
    #[error("the destination is disabled: enable it first")]
    DestinationDisabled,
    /// The replay selects no event.
    #[error("no event matches")]
    NoEvents,
    /// The replay selects more than [`REPLAY_LIMIT`] events.
    #[error("more than {REPLAY_LIMIT} events match; replay a narrower range")]
    TooManyEvents,
    /// A stored secret does not open with this master key.
    #[error("the destination secret cannot be opened with this master key")]
    SecretUnreadable,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A destination just created, with its secret: the only time the secret is shown.
#[derive(Debug)]
pub struct CreatedDestination {
    /// The stored destination.
    pub record: DestinationRecord,
    /// `whsec_...`, for the agent to verify signatures with.
    pub secret: Zeroizing<String>,
}

/// What a new destination is.
#[derive(Clone, Debug)]
pub struct DestinationSpec {
    /// The endpoint whose events it receives.
    pub endpoint: EndpointId,
    /// Where to POST.
    pub url: String,
    /// Event types to push; empty for all.
    pub event_types: Vec<String>,
    /// Allow loopback and private addresses (the operator's explicit choice).
    pub allow_private: bool,
}

/// Checks the URL (form and resolved addresses) and the filter, makes a secret, and stores
/// the destination sealed. It receives the endpoint's events stored from now on.
pub async fn create_destination(
    store: &dyn Store,
    sealer: &Sealer,
    workspace: &WorkspaceId,
    spec: DestinationSpec,
    now: i64,
    origin: &ChangeOrigin,
) -> Result<CreatedDestination, PushError> {
    let url = DestinationUrl::parse(spec.url.trim())?;
    ssrf::resolve(&url, spec.allow_private).await?;
    let event_types = parse_event_types(&spec.event_types)?;
    let id = DestinationId::generate();
    let secret = DestinationSecret::generate();
    let text = secret.expose();
    let sealed = sealer.seal(
        SecretPurpose::PushSecret,
        workspace.as_str(),
        id.as_str(),
        text.as_bytes(),
    );
    let record = DestinationRecord {
        id,
        workspace_id: workspace.clone(),
        endpoint_id: spec.endpoint,
        url: url.to_string(),
        event_types,
        allow_private: spec.allow_private,
        secret: sealed,
        state: DestinationState::Enabled,
        last_seq: 0,
        failing_since: None,
        disabled_at: None,
        created_at: now,
    };
    let audit = origin.record(workspace, Change::DestinationCreated, "");
    match store.insert_push_destination(&record, &audit).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(PushError::EndpointNotFound),
        Err(error) => return Err(error.into()),
    }
    let record = store
        .find_push_destination(workspace, &record.id)
        .await?
        .ok_or(PushError::DestinationNotFound)?;
    Ok(CreatedDestination {
        record,
        secret: text,
    })
}

/// Event types as Stripe writes them (`customer.created`, `invoice.*` is not one: Stripe
/// wildcards are `*` alone), trimmed, without duplicates.
pub fn parse_event_types(types: &[String]) -> Result<Vec<String>, PushError> {
    let mut out: Vec<String> = Vec::new();
    for raw in types.iter().flat_map(|t| t.split(',')) {
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        let valid = t == "*"
            || (t.len() <= 128
                && t.contains('.')
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b)));
        if !valid {
            return Err(PushError::InvalidEventType(t.to_owned()));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    if out.iter().any(|t| t == "*") {
        out.clear();
    }
    Ok(out)
}

/// The workspace's destinations, of one endpoint if given.
pub async fn list_destinations(
    store: &dyn Store,
    workspace: &WorkspaceId,
    endpoint: Option<&EndpointId>,
) -> Result<Vec<DestinationRecord>, PushError> {
    // Another workspace's endpoint is as missing as one that never existed: an empty list
    // would tell that it exists.
    if let Some(endpoint) = endpoint {
        let found = store.find_webhook_endpoint(endpoint).await?;
        if found.is_none_or(|found| found.workspace_id != *workspace) {
            return Err(PushError::EndpointNotFound);
        }
    }
    Ok(store.list_push_destinations(workspace, endpoint).await?)
}

/// Removes a destination with its deliveries and attempt log.
pub async fn remove_destination(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &DestinationId,
    origin: &ChangeOrigin,
) -> Result<(), PushError> {
    let audit = origin.record(workspace, Change::DestinationDeleted, "");
    match store.delete_push_destination(workspace, id, &audit).await {
        Err(StoreError::NotFound) => Err(PushError::DestinationNotFound),
        other => Ok(other?),
    }
}

/// Enables a destination (clearing its failure record) or disables it. Deliveries failed
/// while it was disabled are not retried; replay them.
pub async fn set_destination_state(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &DestinationId,
    state: DestinationState,
    now: i64,
    origin: &ChangeOrigin,
) -> Result<(), PushError> {
    let audit = origin.record(workspace, Change::DestinationState, "");
    match store
        .set_push_destination_state(workspace, id, state, now, &audit)
        .await
    {
        Err(StoreError::NotFound) => Err(PushError::DestinationNotFound),
        other => Ok(other?),
    }
}

/// The newest attempts to a destination, newest first.
pub async fn list_attempts(
    store: &dyn Store,
    workspace: &WorkspaceId,
    id: &DestinationId,
    limit: i64,
) -> Result<Vec<AttemptRecord>, PushError> {
    if store.find_push_destination(workspace, id).await?.is_none() {
        return Err(PushError::DestinationNotFound);
    }
    Ok(store
        .list_push_attempts(workspace, id, limit.clamp(1, 1000))
        .await?)
}

/// Delivers the selected events of an endpoint again, to every enabled destination of it
/// whose filter matches (or to the one named): new deliveries, with their own attempts,
/// due at once, made with the replay's audit record (`origin`'s) or not at all. Returns how
/// many deliveries it made; a replay that makes none changes nothing and is not recorded.
pub async fn replay(
    store: &dyn Store,
    workspace: &WorkspaceId,
    endpoint: &EndpointId,
    selector: &EventSelector,
    destination: Option<&DestinationId>,
    now: i64,
    origin: &ChangeOrigin,
) -> Result<u64, PushError> {
    let connection = match store.find_webhook_endpoint(endpoint).await? {
        Some(found) if &found.workspace_id == workspace => found.connection,
        _ => return Err(PushError::EndpointNotFound),
    };
    let mut destinations = store
        .list_push_destinations(workspace, Some(endpoint))
        .await?;
    if let Some(only) = destination {
        destinations.retain(|d| &d.id == only);
        match destinations.first() {
            None => return Err(PushError::DestinationNotFound),
            Some(d) if d.state == DestinationState::Disabled => {
                return Err(PushError::DestinationDisabled)
            }
            Some(_) => {}
        }
    }
    destinations.retain(|d| d.state == DestinationState::Enabled);
    let events = store
        .list_events_to_replay(workspace, endpoint, selector, REPLAY_LIMIT + 1)
        .await?;
    if events.is_empty() {
        return Err(PushError::NoEvents);
    }
    if events.len() as i64 > REPLAY_LIMIT {
        return Err(PushError::TooManyEvents);
    }
    let deliveries: Vec<NewDelivery> = destinations
        .iter()
        .flat_map(|destination| {
            events
                .iter()
                .filter(|e| delivery::matches_filter(&destination.event_types, &e.event_type))
                .map(|e| NewDelivery {
                    id: DeliveryId::generate(),
                    destination_id: destination.id.clone(),
                    workspace_id: workspace.clone(),
                    event_seq: e.seq,
                    event_id: e.event_id.clone(),
                    replay: now.max(1),
                    created_at: now,
                })
        })
        .collect();
    if deliveries.is_empty() {
        return Ok(0);
    }
    let audit = origin.record(workspace, Change::EventsReplayed, &connection);
    Ok(store.create_replay_deliveries(&deliveries, &audit).await?)
}

/// The running push tasks of one process.
pub struct PushTasks {
    fan_out: JoinHandle<()>,
    delivery: JoinHandle<()>,
}

impl PushTasks {
    /// Waits for both tasks to stop (after `stop` turned true).
    pub async fn finished(self) {
        let _ = self.fan_out.await;
        let _ = self.delivery.await;
    }
}

/// Starts fan-out and delivery for this process; they stop when `stop` turns true.
pub fn spawn(
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    bus: EventBus,
    config: PushConfig,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) -> PushTasks {
    let pusher = Arc::new(delivery::Pusher::new(store, sealer, config, clock));
    PushTasks {
        fan_out: tokio::spawn(delivery::run_fan_out(pusher.clone(), bus, stop.clone())),
        delivery: tokio::spawn(delivery::run_delivery(pusher, stop)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_stripe_shaped_and_star_means_all() {
        let parsed = parse_event_types(&["customer.created, invoice.paid".to_owned()]).unwrap();
        assert_eq!(parsed, ["customer.created", "invoice.paid"]);
        assert!(parse_event_types(&["*".to_owned(), "a.b".to_owned()])
            .unwrap()
            .is_empty());
        assert!(parse_event_types(&["Customer Created".to_owned()]).is_err());
    }
}
