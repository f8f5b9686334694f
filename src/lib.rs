//! agentgate: a self-hosted gateway that lets AI agents call Stripe without holding the
//! Stripe secret. The binary in `main.rs` only parses the command line; everything a test
//! needs lives here.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod dashboard;
pub mod error;
pub mod ids;
pub mod installation_audit;
pub mod instance;
pub mod keys;
pub mod mcp;
pub mod metrics;
pub mod operators;
pub mod policy;
pub mod proxy;
pub mod request_log;
pub mod retention;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod validation;
pub mod webhooks;
