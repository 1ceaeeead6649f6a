//! Tenant management under `/auth/tenants` and `/auth/invitations`: tenants,
//! members, roles, invitations, API keys and the audit trail.
//!
//! Every change follows one shape: in one transaction, lock the tenant row, re-read
//! the caller's role under the lock, check the rule ([`policy`]), write the change,
//! its audit row and its `auth-event` (outbox); after the commit, invalidate the
//! cached facts so every gateway instance enforces the change at once.

pub mod api_keys;
pub mod audit;
pub mod domains;
pub mod invitations;
pub mod manage;
pub mod members;
mod policy;
mod wire;

pub use invitations::join;

use serde_json::Value;
use shared::cache::Key;
use shared::db::audit::AuditAction;
use shared::db::tenants::{self, Tenant};
use shared::db::{self, memberships};
use shared::domain::{Role, TenantId, UserId};
use sqlx::{PgConnection, PgExecutor};

use crate::api::error::ApiError;
use crate::api::ApiState;
use crate::error_code::ErrorCode;

/// Page sizes: 50 unless asked, at most 100.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;

/// 404 `tenant_not_found`: also what a non-member gets, so that nobody learns which
/// tenants exist by probing ids.
fn tenant_not_found() -> ApiError {
    ApiError::from(ErrorCode::TenantNotFound)
}

/// Maps the unique constraints of `tenants` to 409 answers.
fn taken(e: db::Error) -> ApiError {
    match &e {
        db::Error::Duplicate { constraint } if constraint.contains("slug") => ApiError::from(ErrorCode::SlugTaken),
        db::Error::Duplicate { constraint } if constraint.contains("domain") => ApiError::from(ErrorCode::DomainTaken),
        _ => ApiError::from(e),
    }
}

/// The caller's role in `tenant`; 404 when not a member.
async fn role_in(ex: impl PgExecutor<'_>, caller: UserId, tenant: TenantId) -> Result<Role, ApiError> {
    memberships::find_role(ex, caller, tenant).await?.ok_or_else(tenant_not_found)
}

/// Locks the tenant for a change and reads the caller's role under the lock.
async fn lock_for_change(
    conn: &mut PgConnection,
    caller: UserId,
    tenant: TenantId,
) -> Result<(Tenant, Role), ApiError> {
    let locked = tenants::lock(&mut *conn, tenant).await?.ok_or_else(tenant_not_found)?;
    let role = role_in(&mut *conn, caller, tenant).await?;
    Ok((locked, role))
}

/// Checks a `limit` query parameter.
fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_request(format!("limit must be between 1 and {MAX_PAGE}"))),
    }
}

/// One audit row of a tenant change, written in the change's transaction.
struct Audit<'a> {
    tenant: TenantId,
    actor: UserId,
    action: AuditAction,
    target: String,
    metadata: Value,
    request_id: &'a str,
}

impl Audit<'_> {
    async fn write(self, conn: &mut PgConnection) -> Result<(), ApiError> {
        db::audit::insert(
            conn,
            &db::audit::NewEntry {
                tenant_id: Some(self.tenant),
                actor_id: Some(self.actor),
                action: self.action,
                target: Some(self.target),
                metadata: self.metadata,
                request_id: Some(self.request_id),
            },
        )
        .await?;
        Ok(())
    }
}

/// After a commit: evicts `keys` here, in Redis and, through pub/sub, on every
/// other instance. A Redis failure is logged, not returned: the change stands and
/// instances that missed it fall back to their TTLs (and clear their local tier
/// when they resubscribe).
async fn invalidate(state: &ApiState, keys: Vec<Key>) {
    if let Err(e) = state.invalidator.invalidate(keys).await {
        tracing::warn!(error = %shared::telemetry::error_chain(&e), "cache invalidation failed; TTLs will catch up");
    }
}

/// Forgets the cached role of `user` in `tenant` everywhere (after a commit).
pub async fn forget_role(state: &ApiState, user: UserId, tenant: TenantId) {
    invalidate(state, vec![Key::Role { user, tenant }]).await;
}
