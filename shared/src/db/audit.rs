//! The `audit_log` table: who did what to whom, written in the same transaction as
//! the change it records.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::Error;
use crate::domain::{TenantId, UserId};

/// One audit entry to write.
#[derive(Debug)]
pub struct NewEntry<'a> {
    /// The tenant concerned, if any.
    pub tenant_id: Option<TenantId>,
    /// Who acted (none for system actions).
    pub actor_id: Option<UserId>,
    /// A dotted verb, e.g. `user.registered`, `member.role_changed`.
    pub action: &'a str,
    /// What was acted on, e.g. `user:<id>`.
    pub target: Option<String>,
    /// Before/after values and other details. Never secrets.
    pub metadata: serde_json::Value,
    /// The request that caused it.
    pub request_id: Option<&'a str>,
}

/// A stored audit entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    /// Row id (monotonic).
    pub id: i64,
    /// The tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// Who acted.
    pub actor_id: Option<Uuid>,
    /// What happened.
    pub action: String,
    /// To what.
    pub target: Option<String>,
    /// Details.
    pub metadata: serde_json::Value,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Writes one entry.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn insert(ex: impl PgExecutor<'_>, entry: &NewEntry<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor_id, action, target, metadata, request_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.tenant_id.map(|t| t.as_uuid()))
    .bind(entry.actor_id.map(|u| u.as_uuid()))
    .bind(entry.action)
    .bind(entry.target.as_deref())
    .bind(&entry.metadata)
    .bind(entry.request_id)
    .execute(ex)
    .await?;
    Ok(())
}

/// Entries written for a user as actor, newest first (used by tests and the
/// account page).
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_for_actor(ex: impl PgExecutor<'_>, actor: UserId, limit: i64) -> Result<Vec<Entry>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, actor_id, action, target, metadata, request_id, at
           FROM audit_log WHERE actor_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(actor.as_uuid())
    .bind(limit)
    .fetch_all(ex)
    .await?)
}

/// The tenant's entries, newest first: at most `limit`, older than the entry
/// `before` when given (keyset pagination: pass the last id of the previous page).
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_for_tenant(
    ex: impl PgExecutor<'_>,
    tenant: TenantId,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<Entry>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, actor_id, action, target, metadata, request_id, at
           FROM audit_log WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2)
          ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant.as_uuid())
    .bind(before)
    .bind(limit)
    .fetch_all(ex)
    .await?)
}
