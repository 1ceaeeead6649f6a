//! tenantgate's gateway: a Pingora reverse proxy that authenticates requests,
//! resolves their tenant, checks the user's role there and forwards them with
//! identity headers, plus the auth API it serves itself under `/auth`.
//!
//! `main.rs` only parses the command line; everything lives here so integration
//! tests drive the real thing.

pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod control;
pub mod error_code;
pub mod metrics;
pub mod portal;
pub mod proxy;
pub mod relay;
pub mod revocation;
pub mod routes;
