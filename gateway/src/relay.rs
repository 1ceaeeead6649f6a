//! Where the outbox goes, as a Pingora background service. With RabbitMQ, the
//! outbox relay publishes what the API wrote to the `outbox` table (emails, auth
//! events), declaring the queue topology on every (re)connect; with RabbitMQ down
//! the API keeps working and the rows wait (see `shared::queue::run_relay`). In
//! single-node mode (no `RABBITMQ_URL`) the gateway runs those jobs itself, with the
//! worker's own handler (`worker::in_process`).

use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use shared::queue::{run_relay, Config};
use sqlx::PgPool;

use crate::control::stopped;

/// Runs [`run_relay`] until the server shuts down.
pub(crate) struct OutboxRelay {
    /// Postgres, where the outbox lives.
    pub pool: PgPool,
    /// The broker and queue settings (`RABBITMQ_URL`, `QUEUE_*`).
    pub config: Config,
}

#[async_trait]
impl BackgroundService for OutboxRelay {
    async fn start(&self, shutdown: ShutdownWatch) {
        run_relay(self.pool.clone(), self.config.clone(), stopped(shutdown)).await;
        tracing::info!("outbox relay stopped");
    }
}

/// Runs the outbox's jobs in process until the server shuts down.
pub(crate) struct InProcessJobs {
    /// The worker's jobs (mail transport, templates, live feed).
    pub jobs: Arc<worker::Jobs>,
    /// Attempts, backoff, lanes.
    pub config: worker::in_process::Config,
}

#[async_trait]
impl BackgroundService for InProcessJobs {
    async fn start(&self, shutdown: ShutdownWatch) {
        worker::in_process::run(self.jobs.clone(), self.config.clone(), stopped(shutdown)).await;
        tracing::info!("in-process jobs stopped");
    }
}
