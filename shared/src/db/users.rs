//! The `users` table.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Error;
use crate::domain::{Email, Language, PersonName, UserId};

/// A user as stored (without the password hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// The id.
    #[sqlx(try_from = "Uuid")]
    pub id: UserId,
    /// The address as registered.
    #[sqlx(try_from = "String")]
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Language tag for emails and pages.
    #[sqlx(try_from = "String")]
    pub language: Language,
    /// When the address was verified, if it was.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Bumped to invalidate every access token issued before.
    pub token_version: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A user with the stored password hash, for login.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    /// The user.
    #[sqlx(flatten)]
    pub user: User,
    /// The PHC string.
    pub password_hash: String,
}

/// What registration writes.
#[derive(Debug)]
pub struct NewUser<'a> {
    /// The address.
    pub email: &'a Email,
    /// The PHC string of the password.
    pub password_hash: &'a str,
    /// Display name.
    pub name: &'a PersonName,
    /// Language.
    pub language: &'a Language,
}

const COLUMNS: &str = "id, email, name, language, email_verified_at, token_version, created_at";

/// Inserts a user with a fresh id.
///
/// # Errors
/// [`Error::Duplicate`] with constraint `users_email_lower_key` when the address is
/// taken (case-insensitively).
pub async fn insert(conn: &mut PgConnection, new: &NewUser<'_>) -> Result<User, Error> {
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, name, language) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(UserId::new().as_uuid())
        .bind(new.email.as_str())
        .bind(new.password_hash)
        .bind(new.name.as_str())
        .bind(new.language.as_str())
        .fetch_one(conn)
        .await?)
}

/// Finds a user and their password hash by address, case-insensitively.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_credentials_by_email(ex: impl PgExecutor<'_>, email: &Email) -> Result<Option<Credentials>, Error> {
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)");
    Ok(sqlx::query_as(&sql).bind(email.as_str()).fetch_optional(ex).await?)
}

/// Finds a user by address, case-insensitively.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_by_email(ex: impl PgExecutor<'_>, email: &Email) -> Result<Option<User>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)");
    Ok(sqlx::query_as(&sql).bind(email.as_str()).fetch_optional(ex).await?)
}

/// Finds a user by id.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_by_id(ex: impl PgExecutor<'_>, id: UserId) -> Result<Option<User>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id.as_uuid()).fetch_optional(ex).await?)
}

/// Increments the user's token version, invalidating every access token issued
/// before; returns the new version.
///
/// # Errors
/// [`Error::Query`] on database failure (including a missing user).
pub async fn bump_token_version(ex: impl PgExecutor<'_>, id: UserId) -> Result<i32, Error> {
    let (version,): (i32,) =
        sqlx::query_as("UPDATE users SET token_version = token_version + 1 WHERE id = $1 RETURNING token_version")
            .bind(id.as_uuid())
            .fetch_one(ex)
            .await?;
    Ok(version)
}
