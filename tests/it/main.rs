//! agentgate's integration tests: the only test binary. Every test talks to real servers
//! over loopback; `each_backend!` tests run on SQLite and on PostgreSQL.

mod support;

mod auth;
mod catalog;
mod cli;
mod leaks;
mod ops;
mod proxy;
mod refusals;
mod shutdown;
mod store_story;
mod validation;
mod validation_props;
