//! `GET /v1/webhooks/{endpoint}/events/stream`: the endpoint's events as Server-Sent
//! Events, each with `id:` = cursor, `event:` = type and `data:` = the item JSON of pull
//! on one line (the event without the whitespace between its tokens, so every message is a
//! single `data:` line even for naive clients).
//!
//! The stream starts after `Last-Event-ID` (what an EventSource sends on reconnect; it wins
//! over the URL's `?after=`, which the reconnect repeats), or `?after=`, or at the oldest
//! event kept. The store is the only source of events: the stream subscribes to the
//! in-process [`super::EventBus`] *before* reading the backlog, and on each notice for its
//! endpoint reads the store after the last cursor it sent. So an event stored during the
//! backlog read is not missed, nothing is sent twice, and a stream that lagged behind the
//! bus simply reads again. Events stored by another instance (PostgreSQL deployments) carry
//! no notice here; a poll of the store every [`StreamSettings::poll`] (1 s by default)
//! bounds their delay. Comment lines keep idle connections open, and the stream ends when
//! the server stops, so graceful shutdown never waits on it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::{self, Stream, StreamExt};
use http::{HeaderMap, HeaderName};
use tokio::sync::{broadcast, watch};
use tokio::time::{Interval, MissedTickBehavior};

use super::pull::{self, EventItem, EventReaders, MAX_LIMIT};
use super::reads::ReadKind;
use super::EventNotice;
use crate::error::GatewayError;
use crate::ids::EndpointId;
use crate::proxy::ClientAddr;
use crate::store::{EventRecord, Store, WebhookEndpointRecord};

/// The header an EventSource sends on reconnect with the last `id:` it received.
static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Timing of open streams.
#[derive(Clone, Copy, Debug)]
pub struct StreamSettings {
    /// How long a stream may be silent before a comment line keeps it open.
    pub heartbeat: Duration,
    /// How often a stream reads the store without a notice: the bound on the delay of
    /// events stored by another instance.
    pub poll: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_secs(1),
        }
    }
}

/// Answers the stream route: the checks of pull, then the event stream.
pub(super) async fn handler(
    State(state): State<Arc<EventReaders>>,
    Path(endpoint): Path<String>,
    RawQuery(query): RawQuery,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let query = query.as_deref();
    pull::answer_read(
        &state,
        ReadKind::Stream,
        &endpoint,
        query,
        client,
        &headers,
        |endpoint| open(&state, endpoint, query, &headers),
    )
    .await
}

/// The stream of an endpoint the key was allowed to read, from the cursor asked for.
async fn open(
    state: &EventReaders,
    endpoint: WebhookEndpointRecord,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, GatewayError> {
    let params = pull::parse_params(query)?;
    let resume = match headers.get(&LAST_EVENT_ID) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(pull::parse_cursor)
                .ok_or_else(|| {
                    GatewayError::Invalid(crate::validation::Violation {
                        code: Some("parameter_invalid"),
                        param: Some("Last-Event-ID".into()),
                        message: "Invalid Last-Event-ID: it must be the cursor of an event \
                                  (the id: of a streamed event)."
                            .into(),
                    })
                })?,
        ),
        None => None,
    };
    let follow = Follow::start(
        state,
        endpoint.id,
        params.event_type,
        resume.or(params.after).unwrap_or(0),
    );
    let keep_alive = keep_alive(state);
    Ok(Sse::new(
        follow
            .into_stream()
            .map(|record| Ok::<_, Infallible>(sse_event(&record))),
    )
    .keep_alive(keep_alive)
    .into_response())
}

/// One open stream's position and what wakes it: the endpoint's stored events after a
/// cursor, in order, as they arrive. Shared by the agents' stream and the dashboard's.
pub struct Follow {
    store: Arc<dyn Store>,
    endpoint: EndpointId,
    event_type: Option<String>,
    /// The last cursor sent (or the starting point).
    cursor: i64,
    notices: broadcast::Receiver<EventNotice>,
    /// Whether `notices` can still deliver (false once every publisher is gone).
    bus_open: bool,
    poll: Interval,
    stop: watch::Receiver<bool>,
    /// Read from the store, not yet sent.
    pending: VecDeque<EventRecord>,
    /// Whether the store may hold events after `cursor` that are not in `pending`.
    read: bool,
}

/// The comment lines that keep an idle stream open, every `heartbeat` of silence.
pub fn keep_alive(state: &EventReaders) -> KeepAlive {
    KeepAlive::new()
        .interval(state.settings.heartbeat)
        .text("heartbeat")
}

impl Follow {
    /// Follows `endpoint` from after `cursor`, with the readers' timing and stop signal.
    /// Subscribes to the bus before the first read: a notice sent meanwhile makes it read
    /// again.
    pub fn start(
        state: &EventReaders,
        endpoint: EndpointId,
        event_type: Option<String>,
        cursor: i64,
    ) -> Self {
        let notices = state.shared.events.subscribe();
        let mut poll = tokio::time::interval(state.settings.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            store: state.store.clone(),
            endpoint,
            event_type,
            cursor,
            notices,
            bus_open: true,
            poll,
            stop: state.stop.clone(),
            pending: VecDeque::new(),
            read: true,
        }
    }

    /// The stored events, in cursor order, until the server stops or the store fails.
    pub fn into_stream(self) -> impl Stream<Item = EventRecord> + Send {
        stream::unfold(self, |mut follow| async move {
            let record = follow.next().await?;
            Some((record, follow))
        })
    }

    /// The next event, or `None` when the stream should end (server stopping, store
    /// failing).
    async fn next(&mut self) -> Option<EventRecord> {
        loop {
            if *self.stop.borrow() {
                return None;
            }
            if let Some(record) = self.pending.pop_front() {
                self.cursor = record.seq;
                return Some(record);
            }
            if self.read {
                let batch = self
                    .store
                    .list_events(
                        &self.endpoint,
                        self.cursor,
                        MAX_LIMIT,
                        self.event_type.as_deref(),
                    )
                    .await;
                match batch {
                    Ok(records) => {
                        // A full batch may have more behind it: read on once it is sent.
                        self.read = records.len() as i64 == MAX_LIMIT;
                        self.pending.extend(records);
                        continue;
                    }
                    Err(error) => {
                        // The client reconnects with Last-Event-ID and loses nothing.
                        tracing::error!(%error, endpoint = %self.endpoint, "event stream read failed");
                        return None;
                    }
                }
            }
            self.read = self.wait().await?;
        }
    }

    /// Waits for a reason to read the store again; `None` when the server stops.
    async fn wait(&mut self) -> Option<bool> {
        tokio::select! {
            _ = self.stop.wait_for(|stopping| *stopping) => None,
            notice = self.notices.recv(), if self.bus_open => Some(match notice {
                Ok(notice) => notice.endpoint_id == self.endpoint && notice.seq > self.cursor,
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                // No publisher left: the poll alone carries the stream from now on.
                Err(broadcast::error::RecvError::Closed) => {
                    self.bus_open = false;
                    false
                }
            }),
            _ = self.poll.tick() => Some(true),
        }
    }
}

/// A stored event as one SSE message.
fn sse_event(record: &EventRecord) -> Event {
    let item = EventItem::one_line(record);
    let event = Event::default()
        .id(record.seq.to_string())
        .event(sse_safe(&record.event.event_type));
    match event.json_data(&item) {
        Ok(event) => event,
        Err(error) => {
            tracing::error!(%error, seq = record.seq, "cannot serialize a streamed event");
            Event::default()
                .id(record.seq.to_string())
                .comment("unserializable event")
        }
    }
}

/// An event type as an SSE field value: a line break would end the field (and axum
/// refuses it), so one is never sent.
fn sse_safe(text: &str) -> String {
    text.chars().filter(|c| *c != '\n' && *c != '\r').collect()
}
