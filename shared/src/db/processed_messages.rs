//! The `processed_messages` table: queue messages whose side effect is done, so a
//! redelivered message is acknowledged without doing it twice.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::Error;

/// Whether message `id` was already processed.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn is_processed(ex: impl PgExecutor<'_>, id: Uuid) -> Result<bool, Error> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM processed_messages WHERE message_id = $1)")
        .bind(id)
        .fetch_one(ex)
        .await?)
}

/// Records message `id` as processed; returns `false` when it already was.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn record(ex: impl PgExecutor<'_>, id: Uuid, queue: &str, kind: &str) -> Result<bool, Error> {
    let done = sqlx::query(
        "INSERT INTO processed_messages (message_id, queue, kind) VALUES ($1, $2, $3)
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(id)
    .bind(queue)
    .bind(kind)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes at most `limit` records made before `older_than`; returns how many.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn purge(
    ex: impl PgExecutor<'_>,
    older_than: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, Error> {
    let done = sqlx::query(
        "DELETE FROM processed_messages WHERE message_id IN
           (SELECT message_id FROM processed_messages WHERE processed_at < $1 LIMIT $2)",
    )
    .bind(older_than)
    .bind(limit)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}
