//! The `api_keys` table: tenant API keys (public id and secret hash, never the
//! key), who made and revoked them, and when they were last used.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::Error;
use crate::domain::{ApiKeyId, ApiKeyName, Role, TenantId, UserId};

/// A key as listed (no secret hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    /// The id.
    #[sqlx(try_from = "Uuid")]
    pub id: ApiKeyId,
    /// The tenant it acts in.
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    /// The public part of the key (`tgk_<public_id>_...`).
    pub public_id: String,
    /// What it is for.
    #[sqlx(try_from = "String")]
    pub name: ApiKeyName,
    /// Its role in the tenant.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Who made it (none once that account is deleted).
    pub created_by: Option<Uuid>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Past this instant it no longer works.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last request it authenticated (to within a minute or so).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<Uuid>,
}

impl ApiKey {
    /// Whether it authenticates requests at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What the proxy needs to check a presented key: a live (unrevoked) key's
/// secret hash, tenant, role and expiry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credential {
    /// The id.
    #[sqlx(try_from = "Uuid")]
    pub id: ApiKeyId,
    /// The tenant it acts in.
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Its role.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Its expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What [`insert`] writes.
#[derive(Debug)]
pub struct NewApiKey<'a> {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Public id.
    pub public_id: &'a str,
    /// SHA-256 of the secret.
    pub secret_hash: &'a [u8; 32],
    /// Name.
    pub name: &'a ApiKeyName,
    /// Role.
    pub role: Role,
    /// Creator.
    pub created_by: UserId,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, tenant_id, public_id, name, role, created_by, created_at, expires_at, last_used_at, revoked_at, revoked_by";

/// Stores a new key.
///
/// # Errors
/// [`Error::Duplicate`] on a public id collision (71 random bits: retry).
pub async fn insert(conn: &mut PgConnection, new: &NewApiKey<'_>) -> Result<ApiKey, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, tenant_id, public_id, secret_hash, name, role, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(ApiKeyId::new().as_uuid())
    .bind(new.tenant_id.as_uuid())
    .bind(new.public_id)
    .bind(&new.secret_hash[..])
    .bind(new.name.as_str())
    .bind(new.role.as_str())
    .bind(new.created_by.as_uuid())
    .bind(new.expires_at)
    .fetch_one(conn)
    .await?)
}

/// The tenant's keys: every live one (unrevoked, unexpired), newest first, then
/// at most `inactive` revoked or expired ones, newest first. No live key is
/// ever left out, however many others there are.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn list_for_tenant(ex: impl PgExecutor<'_>, tenant: TenantId, inactive: i64) -> Result<Vec<ApiKey>, Error> {
    Ok(sqlx::query_as(&format!(
        "(SELECT {COLUMNS} FROM api_keys
           WHERE tenant_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
           ORDER BY created_at DESC, id DESC)
         UNION ALL
         (SELECT {COLUMNS} FROM api_keys
           WHERE tenant_id = $1 AND (revoked_at IS NOT NULL OR expires_at <= now())
           ORDER BY created_at DESC, id DESC LIMIT $2)"
    ))
    .bind(tenant.as_uuid())
    .bind(inactive)
    .fetch_all(ex)
    .await?)
}

/// How many live (unrevoked, unexpired) keys the tenant holds.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn count_live(ex: impl PgExecutor<'_>, tenant: TenantId) -> Result<i64, Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM api_keys
          WHERE tenant_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(tenant.as_uuid())
    .fetch_one(ex)
    .await?;
    Ok(n)
}

/// One key of the tenant, locked for a change.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn lock(conn: &mut PgConnection, tenant: TenantId, id: ApiKeyId) -> Result<Option<ApiKey>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE"))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// Marks the key revoked by `by`; returns it as it is now.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn revoke(conn: &mut PgConnection, id: ApiKeyId, by: UserId) -> Result<ApiKey, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = now(), revoked_by = $2 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(by.as_uuid())
    .fetch_one(conn)
    .await?)
}

/// The live (unrevoked) key with this public id, for the proxy's cache; expiry
/// is the caller's to check.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find_credential(ex: impl PgExecutor<'_>, public_id: &str) -> Result<Option<Credential>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, secret_hash, role, expires_at FROM api_keys
          WHERE public_id = $1 AND revoked_at IS NULL",
    )
    .bind(public_id)
    .fetch_optional(ex)
    .await?)
}

/// One use of a key, as a gateway reports it.
#[derive(Debug, Clone)]
pub struct Use {
    /// The key.
    pub id: ApiKeyId,
    /// When.
    pub at: DateTime<Utc>,
}

/// Records the latest use of each key (never moving `last_used_at` back) and
/// returns the keys that had never been used before, with their tenant: their
/// first use. Rows are locked first, so of two gateways reporting a first use at
/// once, one sees it.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn record_uses(conn: &mut PgConnection, uses: &[Use]) -> Result<Vec<(ApiKeyId, TenantId)>, Error> {
    let ids: Vec<Uuid> = uses.iter().map(|u| u.id.as_uuid()).collect();
    let ats: Vec<DateTime<Utc>> = uses.iter().map(|u| u.at).collect();
    // Every row locked, in id order: two gateways writing the same keys wait for
    // each other instead of deadlocking.
    let locked: Vec<(Uuid, Uuid, bool)> = sqlx::query_as(
        "SELECT id, tenant_id, last_used_at IS NULL FROM api_keys WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let first = locked.into_iter().filter(|(_, _, never)| *never).map(|(id, tenant, _)| (id, tenant));
    sqlx::query(
        "UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, u.at)
           FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE k.id = u.id",
    )
    .bind(&ids)
    .bind(&ats)
    .execute(&mut *conn)
    .await?;
    Ok(first.map(|(id, tenant)| (ApiKeyId::from(id), TenantId::from(tenant))).collect())
}
