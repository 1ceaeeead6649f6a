//! Where the outbox goes, as a Pingora background service. With RabbitMQ, the
//! outbox relay publishes what the API wrote to the `outbox` table (emails, auth
//! events), declaring the queue topology on every (re)connect; with RabbitMQ down
//! the API keeps working and the rows wait (see `shared::queue::run_relay`). In
//! single-node mode (no `RABBITMQ_URL`) the gateway runs those jobs itself, with the
//! worker's own handler (`worker::in_process`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::IntGaugeVec;
use shared::db::outbox;
use shared::queue::{run_relay, Config};
use sqlx::PgPool;

use crate::control::stopped;

/// How often the outbox backlog is counted.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// Runs [`run_relay`] until the server shuts down.
pub(crate) struct OutboxRelay {
    /// Postgres, where the outbox lives.
    pub pool: PgPool,
    /// The broker and queue settings (`RABBITMQ_URL`, `QUEUE_*`).
    pub config: Config,
    /// `tenantgate_outbox_rows{state}`.
    pub backlog: IntGaugeVec,
}

#[async_trait]
impl BackgroundService for OutboxRelay {
    async fn start(&self, shutdown: ShutdownWatch) {
        let relay = run_relay(self.pool.clone(), self.config.clone(), stopped(shutdown.clone()));
        tokio::join!(relay, count_backlog(&self.pool, &self.backlog, stopped(shutdown)));
        tracing::info!("outbox relay stopped");
    }
}

/// Samples the outbox backlog into `gauge` every [`BACKLOG_EVERY`] until
/// `shutdown`; a failed count (Postgres down) leaves the last values.
async fn count_backlog(pool: &PgPool, gauge: &IntGaugeVec, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        match outbox::backlog(pool).await {
            Ok((waiting, dead)) => {
                gauge.with_label_values(&["waiting"]).set(waiting);
                gauge.with_label_values(&["dead"]).set(dead);
            }
            Err(e) => tracing::debug!(error = %e, "counting the outbox backlog failed"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(BACKLOG_EVERY) => {}
        }
    }
}

/// Runs the outbox's jobs in process until the server shuts down.
pub(crate) struct InProcessJobs {
    /// The worker's jobs (mail transport, templates, live feed).
    pub jobs: Arc<worker::Jobs>,
    /// Attempts, backoff, lanes.
    pub config: worker::in_process::Config,
    /// `tenantgate_outbox_rows{state}`.
    pub backlog: IntGaugeVec,
}

#[async_trait]
impl BackgroundService for InProcessJobs {
    async fn start(&self, shutdown: ShutdownWatch) {
        let jobs = worker::in_process::run(self.jobs.clone(), self.config.clone(), stopped(shutdown.clone()));
        tokio::join!(jobs, count_backlog(&self.jobs.pool, &self.backlog, stopped(shutdown)));
        tracing::info!("in-process jobs stopped");
    }
}
