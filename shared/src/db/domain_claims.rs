//! The `domain_claims` table: custom domains a tenant has asked for and not yet
//! proven (see the migration). Verification moves a claim into `tenants.domain`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Error;
use crate::domain::{DomainName, TenantId};

/// The label a claim's proof is published under: a TXT record at
/// `_tenantgate.<domain>`.
pub const CHALLENGE_LABEL: &str = "_tenantgate";

/// An open claim.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claim {
    /// The tenant asking.
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    /// The domain asked for.
    #[sqlx(try_from = "String")]
    pub domain: DomainName,
    /// The value the TXT record `_tenantgate.<domain>` must hold.
    pub token: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When DNS was last looked at for it.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// What that look found wanting.
    pub last_error: Option<String>,
}

impl Claim {
    /// Where the TXT record must be: `_tenantgate.<domain>`.
    #[must_use]
    pub fn txt_name(&self) -> String {
        format!("{CHALLENGE_LABEL}.{}", self.domain)
    }
}

const COLUMNS: &str = "tenant_id, domain, token, created_at, last_checked_at, last_error";

/// Opens a claim for `domain` with `token`, replacing the tenant's open one.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn replace(
    conn: &mut PgConnection,
    tenant: TenantId,
    domain: &DomainName,
    token: &str,
) -> Result<Claim, Error> {
    let sql = format!(
        "INSERT INTO domain_claims (tenant_id, domain, token) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE
            SET domain = excluded.domain, token = excluded.token, created_at = now(),
                last_checked_at = NULL, last_error = NULL
         RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql).bind(tenant.as_uuid()).bind(domain.as_str()).bind(token).fetch_one(conn).await?)
}

/// The tenant's open claim.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn find(ex: impl sqlx::PgExecutor<'_>, tenant: TenantId) -> Result<Option<Claim>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM domain_claims WHERE tenant_id = $1");
    Ok(sqlx::query_as(&sql).bind(tenant.as_uuid()).fetch_optional(ex).await?)
}

/// Records the outcome of a failed check.
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn record_check(ex: impl sqlx::PgExecutor<'_>, tenant: TenantId, error: &str) -> Result<(), Error> {
    sqlx::query("UPDATE domain_claims SET last_checked_at = now(), last_error = $2 WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .bind(error)
        .execute(ex)
        .await?;
    Ok(())
}

/// Closes the tenant's claim (verified, or withdrawn with the domain).
///
/// # Errors
/// [`Error::Query`] on database failure.
pub async fn delete(conn: &mut PgConnection, tenant: TenantId) -> Result<(), Error> {
    sqlx::query("DELETE FROM domain_claims WHERE tenant_id = $1").bind(tenant.as_uuid()).execute(conn).await?;
    Ok(())
}
