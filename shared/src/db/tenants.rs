//! The `tenants` table.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Error;
use crate::domain::{Slug, TenantId, TenantName};

/// A tenant as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    /// The id.
    #[sqlx(try_from = "Uuid")]
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Unique slug (subdomain and path segment).
    pub slug: String,
    /// Custom domain, if any.
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
