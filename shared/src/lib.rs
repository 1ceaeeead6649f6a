//! What the tenantgate binaries share: settings, domain types, database access,
//! tokens, password hashing and telemetry.
//!
//! Invariant: this crate never depends on pingora or lettre; it is the vocabulary,
//! not the transport.

pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod jwt;
pub mod password;
pub mod queue;
pub mod telemetry;
pub mod tokens;
