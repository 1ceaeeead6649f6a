//! Single-node mode: with no `RABBITMQ_URL` the gateway runs the worker's jobs
//! itself, straight from the outbox, with the same handler, templates and retry
//! schedule as the daemon, so nothing is lost in this mode either:
//!
//! - a row is claimed in a transaction (`FOR UPDATE SKIP LOCKED`) that lasts until
//!   its outcome is written, so a process that dies mid-job hands the row back the
//!   moment its connection drops, and the next start runs it again (an email that
//!   did go out is recorded in `processed_messages` and not sent twice);
//! - [`Outcome::Retry`] waits out the broker's backoff (`QUEUE_RETRY_*`) in
//!   `next_attempt_at`, and after `QUEUE_MAX_ATTEMPTS` the row is dead, like
//!   [`Outcome::DeadLetter`]: `dead_at` set, payload kept for
//!   `worker dead-letters` to show and replay;
//! - a few lanes ([`Config::from_settings`]) claim rows side by side; the outbox trigger's
//!   `NOTIFY` wakes them, and they look every `QUEUE_OUTBOX_POLL_INTERVAL` anyway
//!   (retries fall due without a notification).
//!
//! The retention job (published rows and idempotency records past
//! `QUEUE_RETENTION`) runs here too.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use std::time::{Duration, Instant};

use shared::config::Settings;
use shared::db::{self, outbox};
use shared::queue::{JobQueue, Topology};
use shared::telemetry::error_chain;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use crate::jobs::{Incoming, Jobs, Outcome};
use crate::retention::{self, Retention};

/// The `NOTIFY` channel the outbox trigger signals on commit.
const CHANNEL: &str = "tg_outbox";
/// The shortest sleep of an idle lane: a due row that another lane (or gateway)
/// holds counts as due until it is settled, and must not make the others spin.
const IDLE_FLOOR: Duration = Duration::from_millis(250);

/// How the jobs are paced.
#[derive(Debug, Clone)]
pub struct Config {
    /// Attempts and their backoff.
    pub topology: Topology,
    /// Rows run at once.
    pub lanes: usize,
    /// The longest a due row waits without a notification.
    pub poll: Duration,
    /// What the retention job keeps.
    pub retention: Retention,
}

impl Config {
    /// The pacing `settings` describe (`QUEUE_*`; `WORKER_CONCURRENCY` lanes, but
    /// no more than an eighth of `DATABASE_MAX_CONNECTIONS`: a running job holds
    /// two connections, its claim and its own queries, and the gateway's requests
    /// need the rest).
    pub fn from_settings(settings: &Settings) -> Config {
        let share = usize::try_from(settings.database.max_connections / 8).unwrap_or(1).max(1);
        Config {
            topology: Topology::new(&settings.queue),
            lanes: usize::from(settings.worker.concurrency).clamp(1, share),
            poll: settings.queue.outbox_poll_interval,
            retention: Retention { keep: settings.queue.retention, every: settings.queue.purge_interval },
        }
    }
}

/// What one claimed row came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// No row was due.
    Idle,
    /// A row ran and its outcome is written.
    Settled(Outcome),
}

/// Runs the outbox's jobs until `shutdown` resolves; a job in flight then finishes
/// first (a process stopped harder hands its row back, see the module docs).
/// Never returns an error: a Postgres outage is logged and waited out.
pub async fn run(jobs: Arc<Jobs>, config: Config, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    for queue in JobQueue::ALL {
        jobs.metrics.consumer_up.with_label_values(&[queue.as_str()]).set(1);
    }
    let listener = tokio::spawn(listen(jobs.pool.clone(), wake.clone(), stop_rx.clone()));
    let retention =
        tokio::spawn(retention::run(jobs.pool.clone(), config.retention, jobs.metrics.clone(), stop_rx.clone()));
    let lanes: Vec<_> = (0..config.lanes)
        .map(|_| tokio::spawn(lane(jobs.clone(), config.clone(), wake.clone(), stop_rx.clone())))
        .collect();
    tracing::info!(lanes = config.lanes, "running email and notification jobs in process, from the outbox");
    shutdown.await;
    let _ = stop_tx.send(true);
    wake.notify_waiters();
    for lane in lanes {
        let _ = lane.await;
    }
    for queue in JobQueue::ALL {
        jobs.metrics.consumer_up.with_label_values(&[queue.as_str()]).set(0);
    }
    let _ = retention.await;
    listener.abort();
}

/// One lane: runs due rows one at a time, and sleeps when none is due.
async fn lane(jobs: Arc<Jobs>, config: Config, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut backoff = shared::queue::Backoff::default();
    while !*stop.borrow() {
        let pause = match run_once(&jobs, &config.topology).await {
            Ok(Ran::Settled(_)) => {
                backoff.reset();
                continue;
            }
            Ok(Ran::Idle) => {
                backoff.reset();
                next_wait(&jobs.pool, config.poll).await
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "running outbox jobs failed; retrying");
                backoff.next_delay()
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}

/// How long an idle lane sleeps: until the next retry falls due, at most `poll`.
async fn next_wait(pool: &PgPool, poll: Duration) -> Duration {
    match outbox::next_due_in(pool).await {
        Ok(Some(due)) => due.clamp(IDLE_FLOOR, poll.max(IDLE_FLOOR)),
        Ok(None) | Err(_) => poll,
    }
}

/// Claims one due row, runs its job and writes the outcome, in one transaction.
/// Exposed for tests; [`run`] loops over it.
///
/// # Errors
/// [`db::Error`] when Postgres fails; the row (if one was claimed) stays as it was
/// and is run again.
pub async fn run_once(jobs: &Jobs, topology: &Topology) -> Result<Ran, db::Error> {
    let mut tx = jobs.pool.begin().await?;
    let Some(row) = outbox::claim_due(&mut tx, 1).await?.pop() else {
        tx.commit().await?;
        return Ok(Ran::Idle);
    };
    let started = Instant::now();
    let attempt = u32::try_from(row.attempts).unwrap_or(0).saturating_add(1);
    let (queue, outcome) = match JobQueue::parse(&row.queue) {
        Some(queue) => {
            let body = row.payload.to_string();
            // A row may have run before in a process that died before writing its
            // outcome (the transaction rolled back): the handler treats a repeat
            // as a redelivery, so a sent email is not sent again and a stored
            // notification is published again.
            let incoming = Incoming { queue, body: body.as_bytes(), attempt, redelivered: true };
            // A panicking job is a failed attempt, not a lost lane.
            let outcome = std::panic::AssertUnwindSafe(jobs.handle(&incoming)).catch_unwind().await;
            (queue, outcome.unwrap_or_else(|_| Outcome::Retry("the job panicked".into())))
        }
        None => (JobQueue::Email, Outcome::DeadLetter(format!("unknown queue {:?}", row.queue))),
    };
    let settled = match &outcome {
        Outcome::Ack => {
            outbox::mark_sent(&mut tx, &[row.id]).await?;
            outcome
        }
        Outcome::Retry(reason) if attempt < topology.max_attempts() => {
            let delay = topology.retry_delay(attempt);
            tracing::warn!(%queue, message_id = %row.id, attempt, retry_in = ?delay, reason = %reason, "job failed; will retry");
            outbox::schedule_retry(&mut *tx, row.id, reason, delay).await?;
            outcome
        }
        Outcome::Retry(reason) | Outcome::DeadLetter(reason) => {
            let reason = if matches!(outcome, Outcome::Retry(_)) {
                format!("gave up after {attempt} attempts: {reason}")
            } else {
                reason.clone()
            };
            tracing::error!(%queue, message_id = %row.id, attempt, reason = %reason, "job dead-lettered");
            outbox::mark_dead(&mut *tx, row.id, &reason).await?;
            Outcome::DeadLetter(reason)
        }
    };
    tx.commit().await?;
    jobs.metrics.record(queue, settled.label(), started.elapsed().as_secs_f64());
    Ok(Ran::Settled(settled))
}

/// Wakes the lanes on every outbox `NOTIFY` until `stop`; reconnects after a
/// Postgres outage (the lanes poll meanwhile).
async fn listen(pool: PgPool, wake: Arc<Notify>, stop: watch::Receiver<bool>) {
    let mut backoff = shared::queue::Backoff::default();
    while !*stop.borrow() {
        let listener = match PgListener::connect_with(&pool).await {
            Ok(mut listener) => listener.listen(CHANNEL).await.map(|()| listener),
            Err(e) => Err(e),
        };
        match listener {
            Ok(mut listener) => {
                backoff.reset();
                while let Ok(Some(_)) = listener.try_recv().await {
                    wake.notify_waiters();
                }
            }
            Err(e) => tracing::debug!(error = %e, "outbox notifications unavailable; polling"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
