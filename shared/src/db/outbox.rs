//! The `outbox` table: messages written in the same transaction as the change that
//! caused them, published by the relay (`shared::queue::run_relay`), or, in
//! single-node mode (no RabbitMQ), run as jobs straight from the table: claimed when
//! due, retried after a backoff (`next_attempt_at`), dead when they cannot succeed
//! (`dead_at`, payload kept for inspection and replay).

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Error;
use crate::queue::Envelope;

/// An unsent row claimed by the relay.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    /// The message id.
    pub id: Uuid,
    /// The unprefixed queue name (`email`, `notification`).
    pub queue: String,
    /// The job type (`send-verification`...).
    pub kind: String,
    /// The whole envelope, as JSON.
    pub payload: serde_json::Value,
    /// Attempts finished so far (failed ones, in single-node mode).
    pub attempts: i32,
}

/// A dead row (single-node mode), as `worker dead-letters` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Dead {
    /// The message id.
    pub id: Uuid,
    /// The unprefixed queue name.
    pub queue: String,
    /// The job type.
    pub kind: String,
    /// The whole envelope, as JSON.
    pub payload: serde_json::Value,
    /// Attempts made.
    pub attempts: i32,
    /// Why it died.
    pub last_error: Option<String>,
    /// When it died.
    pub dead_at: chrono::DateTime<chrono::Utc>,
}

/// Writes `message` to the outbox. Call it inside the transaction that makes the
/// change the message announces, so both commit or neither does; the relay is woken
/// by a `NOTIFY` on commit.
///
/// # Errors
/// [`Error::Duplicate`] when a message with this id was already written,
/// [`Error::Query`] on database failure.
pub async fn insert(conn: &mut PgConnection, message: &Envelope) -> Result<(), Error> {
    let payload = serde_json::to_value(message).map_err(|e| Error::Corrupt(format!("unencodable message: {e}")))?;
    sqlx::query("INSERT INTO outbox (id, queue, kind, payload) VALUES ($1, $2, $3, $4)")
        .bind(message.id)
        .bind(message.queue().as_str())
        .bind(message.job.kind())
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks up to `limit` unsent rows, oldest first, skipping rows another relay has
/// locked; the locks last until the caller's transaction ends.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn claim_unsent(conn: &mut PgConnection, limit: i64) -> Result<Vec<Pending>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, queue, kind, payload, attempts FROM outbox
         WHERE sent_at IS NULL AND dead_at IS NULL
         ORDER BY created_at, id
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Marks rows as published (after the broker confirmed them) and drops their
/// payloads, which may hold one-time tokens. Returns how many rows changed.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn mark_sent(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64, Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE outbox SET sent_at = now(), payload = NULL, attempts = attempts + 1, last_error = NULL
         WHERE id = ANY($1) AND sent_at IS NULL",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Records a failed publish of one row; it stays unsent and is retried.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn record_failure(ex: impl PgExecutor<'_>, id: Uuid, error: &str) -> Result<(), Error> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(ex)
        .await?;
    Ok(())
}

/// The number of rows neither published nor dead (for readiness and tests).
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn count_unsent(ex: impl PgExecutor<'_>) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL")
        .fetch_one(ex)
        .await?)
}

/// The rows waiting to be published or run, and the dead ones (single-node mode),
/// for the `tenantgate_outbox_rows` gauge; each count reads a partial index.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn backlog(ex: impl PgExecutor<'_>) -> Result<(i64, i64), Error> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL),
                (SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL AND sent_at IS NULL)",
    )
    .fetch_one(ex)
    .await?)
}

/// Single-node mode: locks up to `limit` rows that are due (never tried, or their
/// retry time has come), oldest first, skipping rows another process holds; the
/// locks last until the caller's transaction ends, so a process that dies while
/// running them hands them back at once.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn claim_due(conn: &mut PgConnection, limit: i64) -> Result<Vec<Pending>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, queue, kind, payload, attempts FROM outbox
         WHERE sent_at IS NULL AND dead_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())
         ORDER BY created_at, id
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Single-node mode: how long until the next row falls due (zero when one is due
/// now), `None` when nothing waits.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn next_due_in(ex: impl PgExecutor<'_>) -> Result<Option<std::time::Duration>, Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(coalesce(next_attempt_at, created_at)) - now())::float8 FROM outbox
         WHERE sent_at IS NULL AND dead_at IS NULL",
    )
    .fetch_one(ex)
    .await?;
    Ok(seconds.map(|s| std::time::Duration::from_secs_f64(s.max(0.0))))
}

/// Single-node mode: records failed attempt and when to try again.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn schedule_retry(
    ex: impl PgExecutor<'_>,
    id: Uuid,
    error: &str,
    delay: std::time::Duration,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                next_attempt_at = now() + make_interval(secs => $3)
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(ex)
    .await?;
    Ok(())
}

/// Single-node mode: the row's job will not be tried again; its payload stays for
/// [`list_dead`] and [`revive`].
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn mark_dead(ex: impl PgExecutor<'_>, id: Uuid, error: &str) -> Result<(), Error> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2, dead_at = now() WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(ex)
        .await?;
    Ok(())
}

/// Single-node mode: the dead rows, oldest death first.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_dead(ex: impl PgExecutor<'_>) -> Result<Vec<Dead>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, queue, kind, payload, attempts, last_error, dead_at FROM outbox
         WHERE dead_at IS NOT NULL AND sent_at IS NULL
         ORDER BY dead_at, id",
    )
    .fetch_all(ex)
    .await?)
}

/// Single-node mode: gives dead rows `ids` a fresh set of attempts, due now;
/// returns how many came back.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn revive(ex: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<u64, Error> {
    let done = sqlx::query(
        "UPDATE outbox SET dead_at = NULL, next_attempt_at = NULL, attempts = 0
         WHERE id = ANY($1) AND dead_at IS NOT NULL AND sent_at IS NULL",
    )
    .bind(ids)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes at most `limit` rows published before `older_than`; returns how many.
/// Unpublished rows are never deleted, however old.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn purge_sent(
    ex: impl PgExecutor<'_>,
    older_than: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, Error> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE id IN
           (SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1 LIMIT $2)",
    )
    .bind(older_than)
    .bind(limit)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}
