//! The outbox relay as a Pingora background service: publishes what the API wrote
//! to the `outbox` table (emails, auth events) to RabbitMQ, declaring the queue
//! topology on every (re)connect. With RabbitMQ down the API keeps working and the
//! rows wait; see `shared::queue::run_relay`.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use shared::queue::{run_relay, Config};
use sqlx::PgPool;

use crate::control::stopped;

/// Runs [`run_relay`] until the server shuts down.
pub struct OutboxRelay {
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
