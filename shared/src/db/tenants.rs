//! The `tenants` table.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Error;
use crate::domain::{DomainName, Slug, TenantId, TenantName};

/// A tenant as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    /// The id.
    #[sqlx(try_from = "Uuid")]
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Unique slug (subdomain and path segment).
    #[sqlx(try_from = "String")]
    pub slug: Slug,
    /// Custom domain, if any (verified).
    pub domain: Option<String>,
    /// Inactive tenants are refused at the proxy.
    pub is_active: bool,
    /// Free-form settings.
    pub settings: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, slug, domain, is_active, settings, created_at";

/// How many random suffixes [`insert_with_derived_slug`] tries before giving up.
const SLUG_ATTEMPTS: usize = 8;

/// Inserts a tenant under `slug`, or under `slug` with a random suffix when it is
/// taken, so a name always yields a tenant.
///
/// # Errors
/// [`Error::Duplicate`] if every attempt collided (practically never), or
/// [`Error::Query`].
pub async fn insert_with_derived_slug(
    conn: &mut PgConnection,
    name: &TenantName,
    slug: &Slug,
) -> Result<Tenant, Error> {
    let sql = format!(
        "INSERT INTO tenants (id, name, slug) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING RETURNING {COLUMNS}"
    );
    let mut candidate = slug.clone();
    for _ in 0..SLUG_ATTEMPTS {
        let inserted: Option<Tenant> = sqlx::query_as(&sql)
            .bind(TenantId::new().as_uuid())
            .bind(name.as_str())
            .bind(candidate.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(tenant) = inserted {
            return Ok(tenant);
        }
        candidate = slug.with_random_suffix();
    }
    Err(Error::Duplicate { constraint: "tenants_slug_key".into() })
}

/// Finds a tenant by id.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_by_id(ex: impl sqlx::PgExecutor<'_>, id: TenantId) -> Result<Option<Tenant>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id.as_uuid()).fetch_optional(ex).await?)
}

/// The id of the tenant with this slug.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_id_by_slug(ex: impl sqlx::PgExecutor<'_>, slug: &str) -> Result<Option<TenantId>, Error> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM tenants WHERE slug = $1").bind(slug).fetch_optional(ex).await?;
    Ok(row.map(|(id,)| TenantId::from(id)))
}

/// The id of the tenant with this custom domain (compared lowercased).
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_id_by_domain(ex: impl sqlx::PgExecutor<'_>, domain: &str) -> Result<Option<TenantId>, Error> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM tenants WHERE domain = lower($1)").bind(domain).fetch_optional(ex).await?;
    Ok(row.map(|(id,)| TenantId::from(id)))
}

/// Inserts a tenant with the exact `slug` (and `domain`, when given).
///
/// # Errors
/// [`Error::Duplicate`] naming `tenants_slug_key` or `tenants_domain_key` when one is
/// taken, or [`Error::Query`].
pub async fn insert(
    conn: &mut PgConnection,
    name: &TenantName,
    slug: &Slug,
    domain: Option<&DomainName>,
) -> Result<Tenant, Error> {
    let sql = format!("INSERT INTO tenants (id, name, slug, domain) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}");
    Ok(sqlx::query_as(&sql)
        .bind(TenantId::new().as_uuid())
        .bind(name.as_str())
        .bind(slug.as_str())
        .bind(domain.map(DomainName::as_str))
        .fetch_one(conn)
        .await?)
}

/// The tenant, locked until the caller's transaction ends. Every change to a
/// tenant's memberships takes this lock first, so rules that look at several rows
/// ("a tenant keeps at least one owner") hold under concurrent requests.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn lock(conn: &mut PgConnection, id: TenantId) -> Result<Option<Tenant>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE");
    Ok(sqlx::query_as(&sql).bind(id.as_uuid()).fetch_optional(conn).await?)
}

/// The editable fields of a tenant; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Changes<'a> {
    /// A new display name.
    pub name: Option<&'a TenantName>,
    /// A new custom domain, or `Some(None)` to remove it.
    pub domain: Option<Option<&'a DomainName>>,
    /// New settings (replaces the object).
    pub settings: Option<&'a serde_json::Value>,
    /// Activates or deactivates.
    pub is_active: Option<bool>,
}

/// Applies `changes` to the tenant and returns it as updated.
///
/// # Errors
/// [`Error::Duplicate`] naming `tenants_domain_key` when the domain is taken, or
/// [`Error::Query`].
pub async fn update(conn: &mut PgConnection, id: TenantId, changes: &Changes<'_>) -> Result<Option<Tenant>, Error> {
    let sql = format!(
        "UPDATE tenants SET
            name = coalesce($2, name),
            domain = CASE WHEN $3 THEN $4 ELSE domain END,
            settings = coalesce($5, settings),
            is_active = coalesce($6, is_active)
          WHERE id = $1 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id.as_uuid())
        .bind(changes.name.map(TenantName::as_str))
        .bind(changes.domain.is_some())
        .bind(changes.domain.flatten().map(DomainName::as_str))
        .bind(changes.settings)
        .bind(changes.is_active)
        .fetch_optional(conn)
        .await?)
}
