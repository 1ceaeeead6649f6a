//! Custom domains: proven before they route. Adding a domain opens a claim with a
//! DNS TXT challenge (`_tenantgate.<domain>` = a random token); `POST
//! .../domain/verify` looks the record up and, when it holds the token, makes the
//! domain the tenant's (the column the proxy resolves). A claim reserves nothing,
//! so nobody can squat a name by asking for it. The gateway's own names (its base
//! domain, trusted domains and `APP_URL` host, with their subdomains) can never be
//! claimed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use rand::RngCore;
use serde_json::json;
use shared::cache::Key;
use shared::db::audit::AuditAction;
use shared::db::domain_claims::{self, Claim};
use shared::db::tenants::{self, Changes};
use shared::domain::{DomainName, Role, TenantId};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::wire::{TenantDetail, TenantEnvelope};
use super::{invalidate, lock_for_change, policy, taken, tenant_not_found, Audit};
use crate::api::error::ApiError;
use crate::api::extract::{ApiPath, BearerUser, RequestId};
use crate::api::openapi::errors;
use crate::api::ApiState;
use crate::error_code::ErrorCode;

/// Which domains tenants may claim, and how their proof is looked up.
pub struct DomainRules {
    /// The gateway's own names: each also covers its subdomains.
    own: Vec<DomainName>,
    resolver: TokioResolver,
}

impl DomainRules {
    /// `own` are the gateway's names (base domain, trusted domains, the `APP_URL`
    /// host); `nameservers` the DNS servers to ask, or the system's when empty.
    ///
    /// # Errors
    /// When the system resolver configuration cannot be read.
    pub fn new(own: Vec<DomainName>, nameservers: &[SocketAddr]) -> anyhow::Result<DomainRules> {
        let provider = TokioRuntimeProvider::default();
        let builder = if nameservers.is_empty() {
            TokioResolver::builder(provider)?
        } else {
            let servers = nameservers
                .iter()
                .map(|addr| {
                    let connection = |protocol| {
                        let mut c = ConnectionConfig::new(protocol);
                        c.port = addr.port();
                        c
                    };
                    NameServerConfig::new(
                        addr.ip(),
                        true,
                        vec![connection(ProtocolConfig::Udp), connection(ProtocolConfig::Tcp)],
                    )
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let mut builder = builder;
        // A verification is a deliberate act: ask DNS each time, never a cache.
        builder.options_mut().cache_size = 0;
        Ok(DomainRules { own, resolver: builder.build()? })
    }

    /// Parses a domain a tenant asks for, refusing the gateway's own names.
    ///
    /// # Errors
    /// 400 `invalid_request` naming the field.
    pub fn claimable(&self, raw: &str) -> Result<DomainName, ApiError> {
        let domain = DomainName::parse(raw)?;
        if let Some(own) = self.own.iter().find(|own| own.covers(domain.as_str())) {
            return Err(ApiError::invalid_request(format!(
                "domain: {domain} is {own} or under it, which this gateway serves itself"
            )));
        }
        Ok(domain)
    }

    /// The TXT strings published at `name` (each record's strings joined).
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let lookup = self.resolver.txt_lookup(name).await.map_err(|e| format!("DNS lookup of {name} failed: {e}"))?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                hickory_resolver::proto::rr::RData::TXT(txt) => {
                    Some(txt.txt_data.iter().map(|part| String::from_utf8_lossy(part)).collect::<String>())
                }
                _ => None,
            })
            .collect())
    }
}

/// A fresh challenge token: 32 random bytes in hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens (or replaces) the tenant's claim on `domain`, in the caller's transaction.
///
/// # Errors
/// 5xx when the database fails.
#[tracing::instrument(name = "tenants.domains.open_claim", skip_all)]
pub async fn open_claim(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    domain: &DomainName,
) -> Result<Claim, ApiError> {
    Ok(domain_claims::replace(conn, tenant, domain, &new_token()).await?)
}

/// Verifies a tenant's claimed domain.
///
/// `POST /auth/tenants/{id}/domain/verify`: admins and owners. Looks the challenge
/// up and, when it holds the token, makes the claimed domain the tenant's.
///
/// # Errors
/// 404 `no_pending_domain` without an open claim; 409 `domain_not_verified` when
/// the record is missing or holds another value (the claim stays open), 409
/// `domain_taken` when another tenant proved the name first.
#[utoipa::path(
    post,
    path = "/auth/tenants/{id}/domain/verify",
    tag = "tenants",
    operation_id = "verifyTenantDomain",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The claimed domain is proven and now the tenant's", body = TenantEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::NoPendingDomain),
        (status = 409, response = errors::DomainNotVerified),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.domains.verify", skip_all)]
pub async fn verify(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TenantEnvelope>, ApiError> {
    let id = TenantId::from(id);
    let role = super::role_in(&state.pool, caller.id(), id).await?;
    policy::require(role, Role::Admin)?;
    let claim = domain_claims::find(&state.pool, id).await?.ok_or_else(no_pending_domain)?;
    let domain = state.domains.claimable(claim.domain.as_str())?;
    let name = format!("{}.", claim.txt_name());
    let proven = match state.domains.txt(&name).await {
        Ok(values) if values.iter().any(|v| bool::from(v.as_bytes().ct_eq(claim.token.as_bytes()))) => Ok(()),
        Ok(values) if values.is_empty() => Err(format!("no TXT record at {name}")),
        Ok(_) => Err(format!("the TXT record at {name} does not hold this tenant's token")),
        Err(e) => Err(e),
    };
    if let Err(why) = proven {
        domain_claims::record_check(&state.pool, id, &why).await?;
        tracing::info!(tenant_id = %id, domain = %domain, reason = %why, "domain not verified");
        return Err(ApiError::new(ErrorCode::DomainNotVerified, why));
    }

    let mut tx = state.pool.begin().await?;
    let (before, role) = lock_for_change(&mut tx, caller.id(), id).await?;
    policy::require(role, Role::Admin)?;
    // The claim may have been replaced while DNS was asked: only the one proven counts.
    let current = domain_claims::find(&mut *tx, id).await?;
    if current.as_ref().map(|c| c.token.as_str()) != Some(claim.token.as_str()) {
        return Err(ApiError::new(ErrorCode::DomainNotVerified, "the claim changed; verify again"));
    }
    let changes = Changes { domain: Some(Some(&domain)), ..Changes::default() };
    let after = tenants::update(&mut tx, id, &changes).await.map_err(taken)?.ok_or_else(tenant_not_found)?;
    domain_claims::delete(&mut tx, id).await?;
    Audit {
        tenant: id,
        actor: caller.id(),
        action: AuditAction::TenantDomainVerified,
        target: format!("tenant:{id}"),
        metadata: json!({ "before": { "domain": before.domain }, "after": { "domain": after.domain } }),
        request_id: &request_id,
    }
    .write(&mut tx)
    .await?;
    tx.commit().await?;

    let mut keys = vec![Key::Tenant { tenant: id }];
    keys.extend([before.domain, after.domain.clone()].into_iter().flatten().map(|domain| Key::Domain { domain }));
    invalidate(&state, keys).await;
    tracing::info!(tenant_id = %id, domain = %domain, user_id = %caller.id(), "domain verified");
    Ok(Json(TenantEnvelope { tenant: TenantDetail::new(after, role, None) }))
}

fn no_pending_domain() -> ApiError {
    ApiError::from(ErrorCode::NoPendingDomain)
}
