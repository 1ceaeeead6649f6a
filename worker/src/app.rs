//! Building the worker from settings and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shared::config::Settings;
use shared::queue::{self, JobQueue};
use shared::telemetry::{admin_router, error_chain, Check, Readiness};
use tokio::sync::watch;
use tokio::task::JoinSet;

use shared::live::LiveFeed;

use crate::consumer::{self, ConsumerConfig, Stopped};
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::retention::{self, Retention};

/// A worker ready to run: dependencies built, admin listener bound.
pub struct Application {
    jobs: Arc<Jobs>,
    consumer: ConsumerConfig,
    retention: Retention,
    admin: tokio::net::TcpListener,
    admin_addr: SocketAddr,
}

impl Application {
    /// Builds everything from `settings` and binds `WORKER_ADMIN_LISTEN` (port 0
    /// picks a free port: see [`Application::admin_addr`]). Opens no connection to
    /// Postgres, Redis, RabbitMQ or SMTP yet, so it starts while they are down.
    ///
    /// # Errors
    /// No `RABBITMQ_URL` (in single-node mode the gateway runs the jobs), bad URLs,
    /// an unusable `SMTP_FROM` or `MAIL_DIR`, a busy admin port.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let broker = queue::Config::from_settings(settings).context(
            "RABBITMQ_URL is not set: without RabbitMQ the gateway runs the email and notification jobs itself \
             (single-node mode), and this daemon has no queue to consume",
        )?;
        let pool = shared::db::pool(&settings.database).context("building the database pool")?;
        let metrics = Metrics::new().context("registering metrics")?;
        let live = LiveFeed::new(settings.redis.url.as_ref(), &settings.redis.key_prefix)
            .context("building the Redis client")?;
        if live.is_local() {
            tracing::warn!(
                "REDIS_URL is not set: notifications are stored, but this worker cannot stream them to the \
                 gateway live; set REDIS_URL, or leave RABBITMQ_URL unset and let the gateway run the jobs"
            );
        }
        let jobs = Arc::new(Jobs::build(settings, pool, live, metrics)?);
        let admin = tokio::net::TcpListener::bind(settings.worker.admin_listen)
            .await
            .with_context(|| format!("binding WORKER_ADMIN_LISTEN {}", settings.worker.admin_listen))?;
        let admin_addr = admin.local_addr().context("reading the admin address")?;
        Ok(Application {
            jobs,
            consumer: ConsumerConfig {
                broker,
                concurrency: settings.worker.concurrency,
                grace: settings.worker.shutdown_grace,
            },
            retention: Retention { keep: settings.queue.retention, every: settings.queue.purge_interval },
            admin,
            admin_addr,
        })
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The job context, for tests that drive [`Jobs::handle`] directly.
    pub fn jobs(&self) -> Arc<Jobs> {
        self.jobs.clone()
    }

    /// Consumes both queues until `shutdown` resolves, then stops consuming, lets
    /// in-flight jobs finish within `WORKER_SHUTDOWN_GRACE` and returns. Unfinished
    /// messages go back to their queue.
    ///
    /// # Errors
    /// When a consumer ends on its own (a bug: they reconnect forever).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (admin_stop_tx, mut admin_stop_rx) = watch::channel(false);
        let router = admin_router(self.jobs.metrics.registry.clone(), readiness(self.jobs.clone()));
        let admin_stop = async move {
            let _ = admin_stop_rx.wait_for(|s| *s).await;
        };
        let admin = tokio::spawn(shared::telemetry::serve_admin(self.admin, router, admin_stop));
        tracing::info!(admin = %self.admin_addr, "worker admin listening");

        let mut consumers = JoinSet::new();
        for queue in JobQueue::ALL {
            let jobs = self.jobs.clone();
            let config = self.consumer.clone();
            let stop = stop_rx.clone();
            consumers.spawn(async move { (queue, consumer::run(queue, jobs, config, stop).await) });
        }

        let retention = tokio::spawn(retention::run(
            self.jobs.pool.clone(),
            self.retention,
            self.jobs.metrics.clone(),
            stop_rx.clone(),
        ));

        let result = tokio::select! {
            () = shutdown => {
                tracing::info!(grace = ?self.consumer.grace, "shutdown requested; draining in-flight jobs");
                Ok(())
            }
            ended = consumers.join_next() => {
                let why = match ended {
                    Some(Ok((queue, stopped))) => format!("the {queue} consumer returned unexpectedly: {stopped:?}"),
                    Some(Err(e)) => format!("a consumer task failed: {e}"),
                    None => "no consumer was running".to_owned(),
                };
                tracing::error!(reason = %why, "worker stopping");
                Err(anyhow::anyhow!(why))
            }
        };
        let _ = stop_tx.send(true);
        // Consumers each honour the grace; the margin covers closing connections.
        let all_done = async {
            while let Some(done) = consumers.join_next().await {
                match done {
                    Ok((queue, Stopped::Drained { abandoned: 0 })) => tracing::info!(%queue, "consumer drained"),
                    Ok((queue, Stopped::Drained { abandoned })) => {
                        tracing::warn!(%queue, abandoned, "grace ran out; unfinished jobs return to the queue")
                    }
                    Err(e) => tracing::error!(error = %e, "consumer task failed while draining"),
                }
            }
        };
        if tokio::time::timeout(self.consumer.grace + Duration::from_secs(5), all_done).await.is_err() {
            tracing::warn!("consumers did not stop in time");
        }
        if let Err(e) = retention.await {
            tracing::error!(error = %e, "retention task failed");
        }
        let _ = admin_stop_tx.send(true);
        match admin.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "admin listener failed"),
            Err(e) => tracing::warn!(error = %e, "admin listener task failed"),
            Ok(Ok(())) => {}
        }
        self.jobs.pool.close().await;
        result
    }
}

fn readiness(jobs: Arc<Jobs>) -> Readiness {
    Arc::new(move || {
        let jobs = jobs.clone();
        Box::pin(async move {
            let timeout = Duration::from_secs(2);
            let postgres = match tokio::time::timeout(timeout, shared::db::ping(&jobs.pool)).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(error_chain(&e)),
                Err(_) => Some("timed out".to_owned()),
            };
            let redis = match tokio::time::timeout(timeout, jobs.live.ping()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(error_chain(&e)),
                Err(_) => Some("timed out".to_owned()),
            };
            let down: Vec<&str> = JobQueue::ALL
                .iter()
                .filter(|q| jobs.metrics.consumer_up.with_label_values(&[q.as_str()]).get() == 0)
                .map(|q| q.as_str())
                .collect();
            let rabbitmq = (!down.is_empty()).then(|| format!("not consuming: {}", down.join(", ")));
            vec![
                Check { name: "postgres", error: postgres },
                Check { name: "redis", error: redis },
                Check { name: "rabbitmq", error: rabbitmq },
            ]
        })
    })
}
