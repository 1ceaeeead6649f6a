#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
//! Gateway integration tests: the real binary against the real Postgres.

mod abuse;
mod accounts;
mod api_keys;
mod assertions;
mod attacks;
mod auth_api;
mod cache;
mod check_route;
mod domains;
mod forward_auth;
mod helpers;
mod invitations;
mod lifecycle;
mod memo;
mod notifications;
mod openapi;
mod portal;
mod portal_api_keys;
mod portal_e2e;
mod proxy;
mod route_rules;
mod sessions;
mod single_node;
mod streams;
mod tenant_metrics;
mod tenants;
mod tls;
mod upstream_tls;
