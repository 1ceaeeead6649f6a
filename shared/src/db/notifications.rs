//! The `notifications` table: auth events shown to their user, newest first.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::Error;
use crate::domain::{TenantId, UserId};

/// A stored notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Notification {
    /// The id (the queue message id that created it).
    pub id: Uuid,
    /// The owner.
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    /// The tenant concerned, if any.
    pub tenant_id: Option<Uuid>,
    /// The event name (`login`, `role-changed`...).
    pub event: String,
    /// Event details (a JSON object).
    pub data: serde_json::Value,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// When the user marked it read.
    pub read_at: Option<DateTime<Utc>>,
}

/// What storing an event writes.
#[derive(Debug)]
pub struct NewNotification<'a> {
    /// The id: the queue message id, so a redelivery stores nothing new.
    pub id: Uuid,
    /// The owner.
    pub user_id: UserId,
    /// The tenant concerned, if any.
    pub tenant_id: Option<TenantId>,
    /// The event name.
    pub event: &'a str,
    /// Details (a JSON object).
    pub data: &'a serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// What [`insert`] did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// A new row, returned.
    New(Box<Notification>),
    /// A row with this id existed already (a redelivery); nothing changed.
    Duplicate,
    /// The user does not exist (deleted since the event); nothing stored.
    UnknownUser,
}

/// Which page of a user's notifications to list.
#[derive(Debug, Clone)]
pub struct Page {
    /// At most this many (clamped to 1..=100).
    pub limit: i64,
    /// Only notifications older than this one (the last id of the previous page).
    pub before: Option<Uuid>,
    /// Only unread ones.
    pub unread_only: bool,
}

impl Default for Page {
    fn default() -> Self {
        Page { limit: 20, before: None, unread_only: false }
    }
}

const COLUMNS: &str = "id, user_id, tenant_id, event, data, at, read_at";

/// Stores a notification unless one with its id exists.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn insert(ex: impl PgExecutor<'_>, new: &NewNotification<'_>) -> Result<Inserted, Error> {
    let sql = format!(
        "INSERT INTO notifications (id, user_id, tenant_id, event, data, at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
    );
    let result = sqlx::query_as::<_, Notification>(&sql)
        .bind(new.id)
        .bind(new.user_id.as_uuid())
        .bind(new.tenant_id.map(|t| t.as_uuid()))
        .bind(new.event)
        .bind(new.data)
        .bind(new.at)
        .fetch_optional(ex)
        .await;
    match result {
        Ok(Some(row)) => Ok(Inserted::New(Box::new(row))),
        Ok(None) => Ok(Inserted::Duplicate),
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Ok(Inserted::UnknownUser),
        Err(e) => Err(e.into()),
    }
}

/// A page of `user`'s notifications, newest first. Page on with
/// `before = Some(last.id)`.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_for_user(ex: impl PgExecutor<'_>, user: UserId, page: &Page) -> Result<Vec<Notification>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications n
         WHERE user_id = $1
           AND ($2::uuid IS NULL OR (at, id) < (SELECT at, id FROM notifications WHERE id = $2 AND user_id = $1))
           AND (NOT $3 OR read_at IS NULL)
         ORDER BY at DESC, id DESC
         LIMIT $4"
    );
    Ok(sqlx::query_as(&sql)
        .bind(user.as_uuid())
        .bind(page.before)
        .bind(page.unread_only)
        .bind(page.limit.clamp(1, 100))
        .fetch_all(ex)
        .await?)
}

/// Marks `ids` read, ignoring ids that are not `user`'s or already read; returns how
/// many changed.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn mark_read(ex: impl PgExecutor<'_>, user: UserId, ids: &[Uuid]) -> Result<u64, Error> {
    let done =
        sqlx::query("UPDATE notifications SET read_at = now() WHERE user_id = $1 AND id = ANY($2) AND read_at IS NULL")
            .bind(user.as_uuid())
            .bind(ids)
            .execute(ex)
            .await?;
    Ok(done.rows_affected())
}

/// Marks every unread notification of `user` read; returns how many.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn mark_all_read(ex: impl PgExecutor<'_>, user: UserId) -> Result<u64, Error> {
    let done = sqlx::query("UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL")
        .bind(user.as_uuid())
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

/// The number of unread notifications of `user`.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn count_unread(ex: impl PgExecutor<'_>, user: UserId) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
        .bind(user.as_uuid())
        .fetch_one(ex)
        .await?)
}
