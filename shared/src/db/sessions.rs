//! The `refresh_sessions` table: hashed refresh tokens, grouped in families.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Error;
use crate::domain::UserId;

/// A stored refresh token (never the token itself, only its keyed hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    /// Row id.
    pub id: Uuid,
    /// Owner.
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    /// The login this token descends from.
    pub family_id: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set once the token was exchanged for a new one.
    pub replaced_by: Option<Uuid>,
    /// Set once the token (or its family) was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What issuing a refresh token writes.
#[derive(Debug)]
pub struct NewSession<'a> {
    /// Row id.
    pub id: Uuid,
    /// Owner.
    pub user_id: UserId,
    /// Family (a fresh id on login, the predecessor's on refresh).
    pub family_id: Uuid,
    /// HMAC-SHA256 of the token.
    pub token_hash: &'a [u8; 32],
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// The client's User-Agent, for the user's session list.
    pub user_agent: Option<&'a str>,
}

const COLUMNS: &str = "id, user_id, family_id, expires_at, replaced_by, revoked_at";

/// Stores a new refresh token.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn insert(ex: impl PgExecutor<'_>, new: &NewSession<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO refresh_sessions (id, user_id, family_id, token_hash, expires_at, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new.id)
    .bind(new.user_id.as_uuid())
    .bind(new.family_id)
    .bind(&new.token_hash[..])
    .bind(new.expires_at)
    .bind(new.user_agent)
    .execute(ex)
    .await?;
    Ok(())
}

/// Finds the session for a token hash and locks its row until the transaction
/// ends, so two concurrent refreshes of one token cannot both succeed.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn lock_by_hash(conn: &mut PgConnection, token_hash: &[u8; 32]) -> Result<Option<Session>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM refresh_sessions WHERE token_hash = $1 FOR UPDATE");
    Ok(sqlx::query_as(&sql).bind(&token_hash[..]).fetch_optional(conn).await?)
}

/// Marks `id` as spent, replaced by `successor`.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn mark_replaced(conn: &mut PgConnection, id: Uuid, successor: Uuid) -> Result<(), Error> {
    sqlx::query("UPDATE refresh_sessions SET replaced_by = $2 WHERE id = $1")
        .bind(id)
        .bind(successor)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every live token of a family; returns how many.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn revoke_family(ex: impl PgExecutor<'_>, family_id: Uuid) -> Result<u64, Error> {
    let done =
        sqlx::query("UPDATE refresh_sessions SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
            .bind(family_id)
            .execute(ex)
            .await?;
    Ok(done.rows_affected())
}

/// Revokes every live token of a user; returns how many.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn revoke_all_for_user(ex: impl PgExecutor<'_>, user: UserId) -> Result<u64, Error> {
    let done = sqlx::query("UPDATE refresh_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user.as_uuid())
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

/// Finds the session for a token hash without locking.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_by_hash(ex: impl PgExecutor<'_>, token_hash: &[u8; 32]) -> Result<Option<Session>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM refresh_sessions WHERE token_hash = $1");
    Ok(sqlx::query_as(&sql).bind(&token_hash[..]).fetch_optional(ex).await?)
}
