//! The one-time account tokens (`email_verification_tokens`,
//! `password_reset_tokens`) and the account changes spending them authorizes:
//! marking the address verified, setting a new password.
//!
//! Only the keyed hash of a token is stored (see `crate::tokens::TokenHasher`). A
//! token is spent by one conditional `UPDATE`, so two concurrent requests with the
//! same token cannot both succeed.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::users::User;
use super::Error;
use crate::domain::UserId;

/// Which kind of token, i.e. which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the user reads mail at their address.
    EmailVerification,
    /// Allows setting a new password without the old one.
    PasswordReset,
}

impl Purpose {
    fn table(self) -> &'static str {
        match self {
            Purpose::EmailVerification => "email_verification_tokens",
            Purpose::PasswordReset => "password_reset_tokens",
        }
    }

    /// How long a token of this kind stays valid: 24 hours for verification, one
    /// hour for a password reset.
    pub fn lifetime(self) -> chrono::Duration {
        match self {
            Purpose::EmailVerification => chrono::Duration::hours(24),
            Purpose::PasswordReset => chrono::Duration::hours(1),
        }
    }
}

/// What issuing a token writes.
#[derive(Debug)]
pub struct NewToken<'a> {
    /// The kind.
    pub purpose: Purpose,
    /// Whose token it is.
    pub user_id: UserId,
    /// HMAC-SHA256 of the token.
    pub token_hash: &'a [u8; 32],
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Stores a new token; returns its row id.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn insert(ex: impl PgExecutor<'_>, new: &NewToken<'_>) -> Result<Uuid, Error> {
    let id = Uuid::now_v7();
    let sql =
        format!("INSERT INTO {} (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)", new.purpose.table());
    sqlx::query(&sql)
        .bind(id)
        .bind(new.user_id.as_uuid())
        .bind(&new.token_hash[..])
        .bind(new.expires_at)
        .execute(ex)
        .await?;
    Ok(id)
}

/// The owner of a live (unused, unexpired) token, without spending it. Lets a
/// caller refuse a bad token before doing expensive work; the token must still be
/// spent with [`spend`], which decides.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_live(
    ex: impl PgExecutor<'_>,
    purpose: Purpose,
    token_hash: &[u8; 32],
) -> Result<Option<UserId>, Error> {
    let sql = format!(
        "SELECT user_id FROM {} WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()",
        purpose.table()
    );
    let owner: Option<Uuid> = sqlx::query_scalar(&sql).bind(&token_hash[..]).fetch_optional(ex).await?;
    Ok(owner.map(UserId::from))
}

/// Spends a live token and every other live token of the same kind its owner holds
/// (an older email must not work once one was used); returns the owner, or `None`
/// when the token is unknown, used or expired.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn spend(conn: &mut PgConnection, purpose: Purpose, token_hash: &[u8; 32]) -> Result<Option<UserId>, Error> {
    let table = purpose.table();
    let sql = format!(
        "UPDATE {table} SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id"
    );
    let owner: Option<Uuid> = sqlx::query_scalar(&sql).bind(&token_hash[..]).fetch_optional(&mut *conn).await?;
    let Some(owner) = owner else { return Ok(None) };
    let sql = format!("UPDATE {table} SET used_at = now() WHERE user_id = $1 AND used_at IS NULL");
    sqlx::query(&sql).bind(owner).execute(&mut *conn).await?;
    Ok(Some(UserId::from(owner)))
}

const USER_COLUMNS: &str = "id, email, name, language, email_verified_at, token_version, created_at";

/// Marks the user's address verified (keeping the first verification time) and
/// returns the updated user, or `None` when the user no longer exists.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn mark_email_verified(ex: impl PgExecutor<'_>, user: UserId) -> Result<Option<User>, Error> {
    let sql = format!(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1
         RETURNING {USER_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql).bind(user.as_uuid()).fetch_optional(ex).await?)
}

/// Replaces the user's password hash and bumps their token version, so every
/// access token issued before stops working; returns the updated user, or `None`
/// when the user no longer exists. Refresh sessions are revoked separately
/// (`sessions::revoke_all_for_user`), in the same transaction.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn set_password(ex: impl PgExecutor<'_>, user: UserId, password_hash: &str) -> Result<Option<User>, Error> {
    let sql = format!(
        "UPDATE users SET password_hash = $2, token_version = token_version + 1 WHERE id = $1
         RETURNING {USER_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql).bind(user.as_uuid()).bind(password_hash).fetch_optional(ex).await?)
}
