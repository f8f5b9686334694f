//! agentgate's integration tests: the only test binary. Every test talks to real servers
//! over loopback; `each_backend!` tests run on SQLite and on PostgreSQL.

mod support;

mod api;
mod audit;
mod auth;
mod catalog;
mod ciphertext_binding;
mod cli;
mod cluster;
mod connection_cap;
mod dashboard;
mod dashboard_browser;
mod dashboard_webhooks;
mod guardrails;
mod hostile;
mod installation_audit;
mod leaks;
mod limits;
mod master_key_rotation;
mod mcp;
mod ops;
mod proxy;
mod refusals;
mod retention;
mod scopes;
mod shutdown;
mod store_faults;
mod store_story;
mod upstream_faults;
mod validation;
mod validation_props;
mod webhooks_ingest;
mod webhooks_push;
mod webhooks_read;
