//! The outbox relay: publishes rows of the `outbox` table to RabbitMQ and marks them
//! sent only once the broker confirmed them.
//!
//! Delivery is at least once: a crash between the confirm and the commit publishes
//! the row again, which the worker's idempotency absorbs (same message id).

use std::future::Future;
use std::time::Duration;

use lapin::types::FieldTable;
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use super::{connect, declare, properties, Backoff, Config, Error, JobQueue, Publisher};
use crate::db::outbox;
use crate::telemetry::error_chain;

/// The `NOTIFY` channel the outbox trigger signals on commit.
const CHANNEL: &str = "tg_outbox";

/// Runs the relay until `shutdown` resolves: claims unsent rows (`FOR UPDATE SKIP
/// LOCKED`, so several gateways can run one each), publishes them with confirms,
/// marks them sent. Woken by `LISTEN tg_outbox`, polling every
/// `QUEUE_OUTBOX_POLL_INTERVAL` as a fallback. When RabbitMQ or Postgres is down it
/// logs, waits with exponential backoff, reconnects and carries on; it never
/// returns an error.
///
/// The gateway spawns it as a background task:
/// `tokio::spawn(run_relay(pool, Config::from_settings(&settings), shutdown))`.
pub async fn run_relay(pool: PgPool, config: Config, shutdown: impl Future<Output = ()> + Send) {
    tokio::pin!(shutdown);
    let mut backoff = Backoff::default();
    let mut listener: Option<PgListener> = None;
    loop {
        let publisher = tokio::select! {
            () = &mut shutdown => return,
            publisher = open(&config) => publisher,
        };
        let (connection, publisher) = match publisher {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "outbox relay cannot reach RabbitMQ; retrying");
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(backoff.next_delay()) => continue,
                }
            }
        };
        tracing::info!("outbox relay connected to RabbitMQ");
        backoff.reset();
        loop {
            let result = tokio::select! {
                () = &mut shutdown => {
                    let _ = connection.close(200, "shutdown".into()).await;
                    return;
                }
                result = relay_once(&pool, &publisher, &config) => result,
            };
            match result {
                Ok(published) if published >= config.outbox_batch as usize => continue,
                Ok(_) => {
                    backoff.reset();
                    tokio::select! {
                        () = &mut shutdown => {
                            let _ = connection.close(200, "shutdown".into()).await;
                            return;
                        }
                        () = wait_for_rows(&pool, &mut listener, config.outbox_poll_interval) => {}
                    }
                }
                Err(e) if e.is_connection_error() || !connection.status().connected() => {
                    tracing::warn!(error = %error_chain(&e), "outbox relay lost RabbitMQ; reconnecting");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(backoff.next_delay()) => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "outbox relay step failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }
}

async fn open(config: &Config) -> Result<(lapin::Connection, Publisher), Error> {
    let connection = connect(&config.url, "tenantgate outbox relay").await?;
    let publisher = Publisher::open(&connection).await?;
    declare(publisher.channel(), &config.topology).await?;
    Ok((connection, publisher))
}

/// Waits for a `NOTIFY` from the outbox trigger, at most `poll`. Without a
/// listening connection (Postgres down, or the first call) it tries to open one and
/// falls back to a plain sleep.
async fn wait_for_rows(pool: &PgPool, listener: &mut Option<PgListener>, poll: Duration) {
    if listener.is_none() {
        *listener = match PgListener::connect_with(pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => Some(l),
                Err(_) => None,
            },
            Err(_) => None,
        };
    }
    match listener {
        Some(l) => match tokio::time::timeout(poll, l.try_recv()).await {
            Ok(Ok(Some(_))) | Err(_) => {}
            // The connection dropped: poll now, reconnect on the next wait.
            Ok(Ok(None)) | Ok(Err(_)) => *listener = None,
        },
        None => tokio::time::sleep(poll).await,
    }
}

/// Publishes one batch of unsent outbox rows in one transaction and returns how
/// many were published. Exposed for tests and one-shot tools; [`run_relay`] loops
/// over it.
///
/// # Errors
/// [`Error::Db`] when Postgres fails, [`Error::Amqp`] when the broker connection
/// fails (rows published before the failure are still marked sent).
pub async fn relay_once(pool: &PgPool, publisher: &Publisher, config: &Config) -> Result<usize, Error> {
    let mut tx = pool.begin().await.map_err(crate::db::Error::from)?;
    let rows = outbox::claim_unsent(&mut tx, i64::from(config.outbox_batch)).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut pending = Vec::with_capacity(rows.len());
    let mut failures = Vec::new();
    let mut broker_error = None;
    for row in &rows {
        let Some(queue) = JobQueue::parse(&row.queue) else {
            failures.push((row.id, format!("unknown queue {:?}", row.queue)));
            continue;
        };
        let body = row.payload.to_string();
        let props = properties(row.id, &row.kind, 1, FieldTable::default());
        match publisher.start(&config.topology.queue(queue), row.id, body.as_bytes(), props).await {
            Ok(p) => pending.push((row.id, p)),
            Err(e) => {
                broker_error = Some(e);
                break;
            }
        }
    }
    let mut sent = Vec::with_capacity(pending.len());
    for (id, p) in pending {
        match Publisher::finish(p).await {
            Ok(()) => sent.push(id),
            Err(e) if e.is_connection_error() => {
                broker_error.get_or_insert(e);
            }
            Err(e) => failures.push((id, error_chain(&e))),
        }
    }
    outbox::mark_sent(&mut tx, &sent).await?;
    for (id, error) in &failures {
        tracing::warn!(message_id = %id, error = %error, "outbox row not published");
        outbox::record_failure(&mut *tx, *id, error).await?;
    }
    tx.commit().await.map_err(crate::db::Error::from)?;
    if !sent.is_empty() {
        tracing::debug!(count = sent.len(), "outbox rows published");
    }
    match broker_error {
        Some(e) => Err(e),
        None => Ok(sent.len()),
    }
}
