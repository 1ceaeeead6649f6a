//! The `audit_log` table: who did what to whom, written in the same transaction as
//! the change it records.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::Error;
use crate::domain::{TenantId, UserId};

/// What an audit entry records; stored as its dotted name (`tenant.created`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// An account was created.
    UserRegistered,
    /// A login succeeded.
    UserLoggedIn,
    /// Every session of the user was ended.
    UserLoggedOutEverywhere,
    /// The address was verified.
    UserEmailVerified,
    /// A reset link was mailed.
    UserPasswordResetRequested,
    /// The password was reset (every session ended).
    UserPasswordReset,
    /// A spent refresh token came back; its family was revoked.
    SessionReuseDetected,
    /// A tenant was created.
    TenantCreated,
    /// Name, domain claim or settings changed.
    TenantUpdated,
    /// The tenant was activated.
    TenantActivated,
    /// The tenant was deactivated.
    TenantDeactivated,
    /// The tenant's domain claim was proved by DNS.
    TenantDomainVerified,
    /// Someone joined (accepted an invitation).
    MemberAdded,
    /// A member's role changed.
    MemberRoleChanged,
    /// An admin removed a member.
    MemberRemoved,
    /// A member left.
    MemberLeft,
    /// An invitation was sent.
    InvitationCreated,
    /// An invitation was revoked.
    InvitationRevoked,
    /// An API key was made.
    ApiKeyCreated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// An API key authenticated its first request.
    ApiKeyFirstUsed,
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AuditAction {
    /// Every action.
    pub const ALL: &'static [AuditAction] = &[
        AuditAction::UserRegistered,
        AuditAction::UserLoggedIn,
        AuditAction::UserLoggedOutEverywhere,
        AuditAction::UserEmailVerified,
        AuditAction::UserPasswordResetRequested,
        AuditAction::UserPasswordReset,
        AuditAction::SessionReuseDetected,
        AuditAction::TenantCreated,
        AuditAction::TenantUpdated,
        AuditAction::TenantActivated,
        AuditAction::TenantDeactivated,
        AuditAction::TenantDomainVerified,
        AuditAction::MemberAdded,
        AuditAction::MemberRoleChanged,
        AuditAction::MemberRemoved,
        AuditAction::MemberLeft,
        AuditAction::InvitationCreated,
        AuditAction::InvitationRevoked,
        AuditAction::ApiKeyCreated,
        AuditAction::ApiKeyRevoked,
        AuditAction::ApiKeyFirstUsed,
    ];

    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::UserRegistered => "user.registered",
            AuditAction::UserLoggedIn => "user.logged_in",
            AuditAction::UserLoggedOutEverywhere => "user.logged_out_everywhere",
            AuditAction::UserEmailVerified => "user.email_verified",
            AuditAction::UserPasswordResetRequested => "user.password_reset_requested",
            AuditAction::UserPasswordReset => "user.password_reset",
            AuditAction::SessionReuseDetected => "session.reuse_detected",
            AuditAction::TenantCreated => "tenant.created",
            AuditAction::TenantUpdated => "tenant.updated",
            AuditAction::TenantActivated => "tenant.activated",
            AuditAction::TenantDeactivated => "tenant.deactivated",
            AuditAction::TenantDomainVerified => "tenant.domain_verified",
            AuditAction::MemberAdded => "member.added",
            AuditAction::MemberRoleChanged => "member.role_changed",
            AuditAction::MemberRemoved => "member.removed",
            AuditAction::MemberLeft => "member.left",
            AuditAction::InvitationCreated => "invitation.created",
            AuditAction::InvitationRevoked => "invitation.revoked",
            AuditAction::ApiKeyCreated => "api_key.created",
            AuditAction::ApiKeyRevoked => "api_key.revoked",
            AuditAction::ApiKeyFirstUsed => "api_key.first_used",
        }
    }
}

/// One audit entry to write.
#[derive(Debug)]
pub struct NewEntry<'a> {
    /// The tenant concerned, if any.
    pub tenant_id: Option<TenantId>,
    /// Who acted (none for system actions).
    pub actor_id: Option<UserId>,
    /// What happened.
    pub action: AuditAction,
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
    .bind(entry.action.as_str())
    .bind(entry.target.as_deref())
    .bind(&entry.metadata)
    .bind(entry.request_id)
    .execute(ex)
    .await?;
    Ok(())
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
