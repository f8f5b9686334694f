//! agentgate's integration tests: the only test binary. Every test talks to real servers
//! over loopback; `each_backend!` tests run on SQLite and on PostgreSQL.

mod support;

mod api;
mod auth;
mod catalog;
mod cli;
mod dashboard;
mod dashboard_browser;
mod dashboard_webhooks;
mod guardrails;
mod leaks;
mod limits;
mod ops;
mod proxy;
mod refusals;
mod scopes;
mod shutdown;
mod store_story;
mod validation;
mod validation_props;
mod webhooks_ingest;
mod webhooks_push;
mod webhooks_read;
