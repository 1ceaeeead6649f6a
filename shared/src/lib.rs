//! What the tenantgate binaries share: settings, domain types, database access,
//! tokens, password hashing and telemetry.
//!
//! Invariant: this crate never depends on pingora or lettre; it is the vocabulary,
//! not the transport.
//!
//! Without its default `runtime` feature only the pure parts build ([`domain`] and
//! [`duration`]): what `tenantgate-edge` needs, so that crate's fuzz targets build
//! on nightly without Postgres, Redis and RabbitMQ clients.

pub mod domain;
pub mod duration;
pub mod portal_paths;

#[cfg(feature = "runtime")]
pub mod api_key;
#[cfg(feature = "runtime")]
pub mod assertion;
#[cfg(feature = "runtime")]
pub mod cache;
#[cfg(feature = "runtime")]
pub mod config;
#[cfg(feature = "runtime")]
pub mod db;
#[cfg(feature = "runtime")]
pub mod jwt;
#[cfg(feature = "runtime")]
pub mod live;
#[cfg(feature = "runtime")]
pub mod password;
#[cfg(feature = "runtime")]
pub mod queue;
#[cfg(feature = "runtime")]
pub mod telemetry;
#[cfg(feature = "runtime")]
pub mod tokens;
