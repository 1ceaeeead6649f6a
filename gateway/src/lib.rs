//! tenantgate's gateway: a Pingora reverse proxy that authenticates requests,
//! resolves their tenant, checks the user's role there and forwards them with
//! identity headers, plus the auth API it serves itself under `/auth`.
//!
//! `main.rs` only parses the command line; everything lives here so integration
//! tests drive the real thing.

pub(crate) mod admin;
pub(crate) mod api;
pub(crate) mod app;
pub(crate) mod check_route;
pub mod cli;
pub(crate) mod control;
pub(crate) mod error_code;
pub(crate) mod file_watch;
pub(crate) mod key_uses;
pub mod memo;
pub(crate) mod metrics;
pub(crate) mod portal;
pub(crate) mod proxy;
pub(crate) mod relay;
pub(crate) mod revocation;
pub mod routes;
pub(crate) mod tenant_labels;
pub(crate) mod tls;
pub(crate) mod web_session;
