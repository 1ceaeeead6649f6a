//! The `user_tenant_roles` table: who belongs to which tenant, with which role.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Error;
use crate::domain::{Email, Role, Slug, TenantId, UserId};

/// One of a user's tenants, with the user's role in it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantMembership {
    /// The tenant.
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    /// Its display name.
    pub name: String,
    /// Its slug.
    #[sqlx(try_from = "String")]
    pub slug: Slug,
    /// Its custom domain, if any.
    pub domain: Option<String>,
    /// Whether its traffic is served.
    pub is_active: bool,
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
        "SELECT t.id AS tenant_id, t.name, t.slug, t.domain, t.is_active, m.role
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

/// A member of a tenant, as the members list shows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    /// The user.
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    /// Their address.
    #[sqlx(try_from = "String")]
    pub email: Email,
    /// Their display name.
    pub name: String,
    /// Their role in the tenant.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

const MEMBER_COLUMNS: &str = "u.id AS user_id, u.email, u.name, m.role, m.created_at AS joined_at";

/// One page of the tenant's members, strongest role first, then by join time:
/// `limit` rows after skipping `offset`.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_members(
    ex: impl PgExecutor<'_>,
    tenant: TenantId,
    limit: i64,
    offset: i64,
) -> Result<Vec<Member>, Error> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM user_tenant_roles m JOIN users u ON u.id = m.user_id
          WHERE m.tenant_id = $1
          ORDER BY array_position(ARRAY['owner','admin','member','viewer'], m.role), m.created_at, u.id
          LIMIT $2 OFFSET $3"
    );
    Ok(sqlx::query_as(&sql).bind(tenant.as_uuid()).bind(limit).bind(offset).fetch_all(ex).await?)
}

/// How many members the tenant has.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn count_members(ex: impl PgExecutor<'_>, tenant: TenantId) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM user_tenant_roles WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .fetch_one(ex)
        .await?)
}

/// One member of the tenant, or `None` when the user is not one.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_member(ex: impl PgExecutor<'_>, tenant: TenantId, user: UserId) -> Result<Option<Member>, Error> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM user_tenant_roles m JOIN users u ON u.id = m.user_id
          WHERE m.tenant_id = $1 AND m.user_id = $2"
    );
    Ok(sqlx::query_as(&sql).bind(tenant.as_uuid()).bind(user.as_uuid()).fetch_optional(ex).await?)
}

/// How many owners the tenant has. Call with the tenant locked
/// ([`super::tenants::lock`]) when the answer decides a change.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn count_owners(conn: &mut PgConnection, tenant: TenantId) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM user_tenant_roles WHERE tenant_id = $1 AND role = 'owner'")
        .bind(tenant.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// Removes the user from the tenant; returns the role they had, or `None` when they
/// were not a member. The caller invalidates `Key::Role { user, tenant }` after
/// committing.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn remove(conn: &mut PgConnection, user: UserId, tenant: TenantId) -> Result<Option<Role>, Error> {
    let previous: Option<(String,)> =
        sqlx::query_as("DELETE FROM user_tenant_roles WHERE user_id = $1 AND tenant_id = $2 RETURNING role")
            .bind(user.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(conn)
            .await?;
    previous.map(|(r,)| Role::parse(&r).map_err(|e| Error::Corrupt(e.to_string()))).transpose()
}
