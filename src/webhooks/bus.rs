//! In-process notices that events were stored, so open streams wake at once instead of
//! polling. A notice only says "look again after this cursor": a stream that misses one
//! (it lagged, or the event was stored by another instance) catches up from the store.

use tokio::sync::broadcast;

use crate::ids::EndpointId;

/// How many notices a slow stream may fall behind before it re-reads from the store.
const CAPACITY: usize = 4096;

/// An event stored for an endpoint, at this cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNotice {
    /// The endpoint the event arrived on.
    pub endpoint_id: EndpointId,
    /// The event's cursor (`seq`).
    pub seq: i64,
}

/// Fan-out of [`EventNotice`]s from ingest to every open stream of this process.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<EventNotice>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Tells every subscriber that an event was stored.
    pub fn publish(&self, notice: EventNotice) {
        // No subscriber is not an error: nobody is streaming.
        let _ = self.sender.send(notice);
    }

    /// A receiver of every notice published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventNotice> {
        self.sender.subscribe()
    }
}
