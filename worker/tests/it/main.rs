//! Integration tests for the worker against the real Postgres, Redis and RabbitMQ
//! on this machine and an SMTP sink started by each test. Every test has its own
//! database, Redis key prefix and queue-name prefix, so they run in parallel.

// Test support code panics on setup failures by design, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod email;
mod helpers;
mod in_process;
mod notifications;
mod poison;
mod proxy;
mod relay;
mod retention;
mod retry;
mod shutdown;
