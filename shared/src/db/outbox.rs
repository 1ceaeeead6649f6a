//! The `outbox` table: messages written in the same transaction as the change that
//! caused them, published by the relay (`shared::queue::run_relay`).

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
        "SELECT id, queue, kind, payload FROM outbox
         WHERE sent_at IS NULL
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

/// The number of rows not yet published (for readiness and tests).
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn count_unsent(ex: impl PgExecutor<'_>) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(ex).await?)
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
