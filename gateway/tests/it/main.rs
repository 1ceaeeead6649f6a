//! Gateway integration tests: the real binary against the real Postgres.

mod auth_api;
mod helpers;
mod lifecycle;
mod sessions;
