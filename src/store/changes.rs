//! Changes made elsewhere on a shared PostgreSQL database (another instance, the CLI),
//! heard through `LISTEN/NOTIFY` as they commit.
//!
//! Triggers (migration 0009) announce two things: the generation counter moved (keys,
//! scopes, Stripe keys changed: caches must be dropped), and events were stored for an
//! endpoint (streams and push workers should look again). A notice is a hint, never the
//! data: whoever hears one reads the store. Notices sent while the listening connection
//! was down are lost, which [`Change::Reconnected`] reports so that caches are dropped
//! anyway; the watcher's generation poll and the streams' store poll remain as fallbacks.
//!
//! SQLite has one process writing at a time and no notifications: there is no feed, and
//! the generation poll alone keeps caches honest.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};

use super::StoreError;
use crate::ids::EndpointId;
use crate::webhooks::bus::EventNotice;

/// The channel the generation trigger notifies on.
const STATE_CHANNEL: &str = "agentgate_state";
/// The channel the events trigger notifies on.
const EVENTS_CHANNEL: &str = "agentgate_events";

/// Something another writer did, as far as this instance needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Cached keys and connections may be stale.
    State,
    /// Events were stored for an endpoint, up to this cursor.
    Events(EventNotice),
    /// The listening connection was lost and is open again: notices may have been missed.
    Reconnected,
}

/// A PostgreSQL connection listening to agentgate's channels for one schema.
pub struct ChangeFeed {
    listener: PgListener,
    schema: String,
}

impl ChangeFeed {
    /// Listens on the database `url` names; `None` for a database without notifications
    /// (SQLite).
    pub async fn connect(url: &str) -> Result<Option<Self>, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Ok(None);
        }
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen_all([STATE_CHANNEL, EVENTS_CHANNEL]).await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut listener)
            .await?;
        Ok(Some(Self { listener, schema }))
    }

    /// Waits for the next change to this schema. After an error, the next call opens the
    /// connection again.
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        loop {
            match self.listener.try_recv().await? {
                None => return Ok(Change::Reconnected),
                Some(notification) => {
                    if let Some(change) = self.parse(&notification) {
                        return Ok(change);
                    }
                }
            }
        }
    }

    /// The change a notice announces, or `None` for another schema's notice (or one this
    /// version does not understand).
    fn parse(&self, notification: &PgNotification) -> Option<Change> {
        parse_notice(&self.schema, notification.channel(), notification.payload())
    }
}

/// Reads a payload: the schema, then (for events) the endpoint and the cursor, separated by
/// single spaces (none of them can contain one).
fn parse_notice(schema: &str, channel: &str, payload: &str) -> Option<Change> {
    let mut parts = payload.split(' ');
    if parts.next()? != schema {
        return None;
    }
    match channel {
        STATE_CHANNEL => Some(Change::State),
        EVENTS_CHANNEL => {
            let endpoint_id = EndpointId::from_stored(parts.next()?.to_owned());
            let seq = parts.next()?.parse().ok()?;
            Some(Change::Events(EventNotice { endpoint_id, seq }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_of_this_schema_are_read_and_others_ignored() {
        assert_eq!(
            parse_notice("public", STATE_CHANNEL, "public 42"),
            Some(Change::State)
        );
        assert_eq!(
            parse_notice("public", EVENTS_CHANNEL, "public we_abc 17"),
            Some(Change::Events(EventNotice {
                endpoint_id: EndpointId::from_stored("we_abc".into()),
                seq: 17
            }))
        );
        assert_eq!(parse_notice("public", STATE_CHANNEL, "other 42"), None);
        assert_eq!(
            parse_notice("public", EVENTS_CHANNEL, "public we_abc"),
            None
        );
        assert_eq!(
            parse_notice("public", EVENTS_CHANNEL, "public we_abc x"),
            None
        );
        assert_eq!(parse_notice("public", "elsewhere", "public 1"), None);
    }
}
