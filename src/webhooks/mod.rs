//! Stripe's events for agents (`../shared/DESIGN.md`, "Webhooks"): endpoints that Stripe
//! posts to, verified and durable ingest, and the ways agents read what arrived (pull by
//! cursor, a live stream, pushes to their own URLs).

pub mod bus;
pub mod endpoints;
pub mod ingest;
pub mod pull;
pub mod push;
pub mod reads;
pub mod signature;
pub mod stream;

pub use bus::{EventBus, EventNotice};
