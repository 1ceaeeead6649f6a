//! The tenantgate worker: consumes the `email` and `notification` queues, sends
//! email through a pooled SMTP transport (or `.eml` files), stores notifications
//! and publishes them on Redis. In single-node mode (no RabbitMQ) the gateway runs
//! the same jobs itself, straight from the outbox ([`in_process`]).
//!
//! Invariants: a delivery is acknowledged only after its side effect is done; a
//! failure goes to the retry path, an unparsable message to the dead-letter queue,
//! never back to the head of the queue; an email is sent once per message id; no
//! token, password or email body is ever logged.

pub(crate) mod app;
pub mod cli;
pub(crate) mod consumer;
pub mod dead_letters;
pub mod in_process;
pub(crate) mod jobs;
pub(crate) mod mail;
pub mod metrics;
pub(crate) mod retention;

pub use app::Application;
pub use jobs::{Incoming, Jobs, Outcome};
pub use metrics::Metrics;
