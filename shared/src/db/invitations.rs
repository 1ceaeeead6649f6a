//! The `invitations` table: pending, accepted, revoked and expired invitations to
//! join a tenant.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Error;
use crate::domain::{Email, Role, TenantId, UserId};

/// An invitation as stored (the token hash stays in the database).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invitation {
    /// The id.
    pub id: Uuid,
    /// The tenant to join.
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    /// The invited address; only an account with this address may accept.
    #[sqlx(try_from = "String")]
    pub email: Email,
    /// The role granted on acceptance.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Who invited.
    pub invited_by: Option<Uuid>,
    /// Past this instant the token no longer works.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted, if it was.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Can still be accepted.
    Pending,
    /// Used.
    Accepted,
    /// Withdrawn by an admin, or replaced by a newer invitation.
    Revoked,
    /// Past its expiry, unused.
    Expired,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

impl Invitation {
    /// Where it stands at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        match (self.accepted_at, self.revoked_at) {
            (Some(_), _) => Status::Accepted,
            (None, Some(_)) => Status::Revoked,
            (None, None) if self.expires_at <= now => Status::Expired,
            (None, None) => Status::Pending,
        }
    }
}

/// What [`replace_pending`] writes.
#[derive(Debug)]
pub struct NewInvitation<'a> {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The invited address.
    pub email: &'a Email,
    /// The role to grant.
    pub role: Role,
    /// The keyed hash of the mailed token.
    pub token_hash: &'a [u8; 32],
    /// Who invites.
    pub invited_by: UserId,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, tenant_id, email, role, invited_by, expires_at, accepted_at, revoked_at, created_at";

/// Revokes the address's pending invitations to the tenant (a new one replaces
/// them), then inserts the new one.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn replace_pending(conn: &mut PgConnection, new: &NewInvitation<'_>) -> Result<Invitation, Error> {
    sqlx::query(
        "UPDATE invitations SET revoked_at = now()
          WHERE tenant_id = $1 AND lower(email) = lower($2)
            AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(new.tenant_id.as_uuid())
    .bind(new.email.as_str())
    .execute(&mut *conn)
    .await?;
    let sql = format!(
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(Uuid::now_v7())
        .bind(new.tenant_id.as_uuid())
        .bind(new.email.as_str())
        .bind(new.role.as_str())
        .bind(&new.token_hash[..])
        .bind(new.invited_by.as_uuid())
        .bind(new.expires_at)
        .fetch_one(conn)
        .await?)
}

/// The tenant's invitations, newest first, at most `limit`.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_for_tenant(ex: impl PgExecutor<'_>, tenant: TenantId, limit: i64) -> Result<Vec<Invitation>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2");
    Ok(sqlx::query_as(&sql).bind(tenant.as_uuid()).bind(limit).fetch_all(ex).await?)
}

/// Revokes a pending invitation of the tenant; returns it, or `None` when there is
/// no such pending invitation (unknown, another tenant's, accepted or revoked).
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn revoke(ex: impl PgExecutor<'_>, tenant: TenantId, id: Uuid) -> Result<Option<Invitation>, Error> {
    let sql = format!(
        "UPDATE invitations SET revoked_at = now()
          WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL
          RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql).bind(id).bind(tenant.as_uuid()).fetch_optional(ex).await?)
}

/// The live (pending, unexpired) invitation with this token hash, locked until the
/// caller's transaction ends so that it is accepted at most once.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn lock_live_by_hash(conn: &mut PgConnection, token_hash: &[u8; 32]) -> Result<Option<Invitation>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM invitations
          WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
          FOR UPDATE"
    );
    Ok(sqlx::query_as(&sql).bind(&token_hash[..]).fetch_optional(conn).await?)
}

/// Marks a locked invitation accepted by `user`.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn mark_accepted(conn: &mut PgConnection, id: Uuid, user: UserId) -> Result<(), Error> {
    sqlx::query("UPDATE invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1")
        .bind(id)
        .bind(user.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}
