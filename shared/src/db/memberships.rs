//! The `user_tenant_roles` table: who belongs to which tenant, with which role.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Error;
use crate::domain::{Role, TenantId, UserId};

/// One of a user's tenants, with the user's role in it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantMembership {
    /// The tenant.
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    /// Its display name.
    pub name: String,
    /// Its slug.
    pub slug: String,
    /// The user's role there.
    #[sqlx(try_from = "String")]
    pub role: Role,
}

/// Adds `user` to `tenant` with `role`.
///
/// # Errors
/// [`Error::Duplicate`] when the user is already a member.
pub async fn insert(conn: &mut PgConnection, user: UserId, tenant: TenantId, role: Role) -> Result<(), Error> {
    sqlx::query("INSERT INTO user_tenant_roles (user_id, tenant_id, role) VALUES ($1, $2, $3)")
        .bind(user.as_uuid())
        .bind(tenant.as_uuid())
        .bind(role.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// The user's tenants, oldest membership first.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_for_user(ex: impl PgExecutor<'_>, user: UserId) -> Result<Vec<TenantMembership>, Error> {
    Ok(sqlx::query_as(
        "SELECT t.id AS tenant_id, t.name, t.slug, m.role
           FROM user_tenant_roles m JOIN tenants t ON t.id = m.tenant_id
          WHERE m.user_id = $1
          ORDER BY m.created_at, t.slug",
    )
    .bind(user.as_uuid())
    .fetch_all(ex)
    .await?)
}

/// The user's role in the tenant, or `None` when not a member.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_role(ex: impl PgExecutor<'_>, user: UserId, tenant: TenantId) -> Result<Option<Role>, Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT role FROM user_tenant_roles WHERE user_id = $1 AND tenant_id = $2")
            .bind(user.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(ex)
            .await?;
    row.map(|(role,)| Role::parse(&role).map_err(|e| Error::Corrupt(e.to_string()))).transpose()
}

/// Changes the user's role in the tenant; returns the previous role, or `None` when
/// the user is not a member (nothing changed). The caller invalidates
/// `Key::Role { user, tenant }` after committing.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn update_role(
    conn: &mut PgConnection,
    user: UserId,
    tenant: TenantId,
    role: Role,
) -> Result<Option<Role>, Error> {
    let previous: Option<(String,)> = sqlx::query_as(
        "UPDATE user_tenant_roles m SET role = $3
           FROM (SELECT role FROM user_tenant_roles WHERE user_id = $1 AND tenant_id = $2 FOR UPDATE) old
          WHERE m.user_id = $1 AND m.tenant_id = $2
          RETURNING old.role",
    )
    .bind(user.as_uuid())
    .bind(tenant.as_uuid())
    .bind(role.as_str())
    .fetch_optional(conn)
    .await?;
    previous.map(|(r,)| Role::parse(&r).map_err(|e| Error::Corrupt(e.to_string()))).transpose()
}
