//! The tenants themselves: list, create, read, update, activate and deactivate.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use shared::cache::Key;
use shared::db::audit::AuditAction;
use shared::db::domain_claims;
use shared::db::tenants::{self, Changes, Tenant};
use shared::db::{self, memberships};
use shared::domain::{DomainName, ParseError, Role, Slug, TenantId, TenantName};
use shared::queue::{AuthEvent, AuthEventKind, Envelope, Job};
use uuid::Uuid;

use super::wire::{CreateTenantRequest, TenantDetail, TenantEnvelope, UpdateTenantRequest};
use super::{domains, invalidate, lock_for_change, policy, role_in, taken, tenant_not_found, Audit};
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath, BearerUser, ClientIp, RequestId};
use crate::api::openapi::errors;
use crate::api::throttle::{Action, Subject};
use crate::api::wire::{TenantBody, TenantsBody};
use crate::api::ApiState;

/// Lists the caller's tenants.
///
/// `GET /auth/tenants`: the caller's tenants with their role.
#[utoipa::path(
    get,
    path = "/auth/tenants",
    tag = "tenants",
    operation_id = "listTenants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tenants with their role", body = TenantsBody),
        (status = 401, response = errors::Unauthenticated),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.manage.list", skip_all)]
pub async fn list(State(state): State<Arc<ApiState>>, caller: BearerUser) -> Result<Json<TenantsBody>, ApiError> {
    let tenants = memberships::list_for_user(&state.pool, caller.id()).await?;
    Ok(Json(TenantsBody { tenants: tenants.iter().map(TenantBody::from).collect() }))
}

/// Parses a tenant name, reported as the `name` field (register calls it
/// `tenantName`).
fn parse_name(raw: &str) -> Result<TenantName, ApiError> {
    TenantName::parse(raw).map_err(|e| ApiError::from(ParseError { field: "name", ..e }))
}

/// Creates a tenant.
///
/// `POST /auth/tenants {name, slug?, domain?}`: 201, the caller is its owner.
#[utoipa::path(
    post,
    path = "/auth/tenants",
    tag = "tenants",
    operation_id = "createTenant",
    request_body = CreateTenantRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the caller is its owner", body = TenantEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 409, response = errors::SlugTaken),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 429, response = errors::RateLimited),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.manage.create", skip_all)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<CreateTenantRequest>,
) -> Result<(StatusCode, Json<TenantEnvelope>), ApiError> {
    let name = parse_name(&req.name)?;
    let slug = req.slug.as_deref().map(Slug::parse).transpose()?;
    let domain = req.domain.as_deref().map(|d| state.domains.claimable(d)).transpose()?;
    state.throttle.hit(Action::CreateTenant, &[Some(Subject::Account(caller.id())), ip.map(Subject::Ip)]).await?;

    let mut tx = state.pool.begin().await?;
    let tenant = match &slug {
        Some(slug) => tenants::insert(&mut tx, &name, slug, None).await.map_err(taken)?,
        None => tenants::insert_with_derived_slug(&mut tx, &name, &Slug::derive(name.as_str())).await?,
    };
    // A domain routes only once proven: it starts as a claim.
    let claim = match &domain {
        Some(domain) => Some(domains::open_claim(&mut tx, tenant.id, domain).await?),
        None => None,
    };
    memberships::insert(&mut tx, caller.id(), tenant.id, Role::Owner).await?;
    Audit {
        tenant: tenant.id,
        actor: caller.id(),
        action: AuditAction::TenantCreated,
        target: format!("tenant:{}", tenant.id),
        metadata: json!({ "after": { "name": tenant.name, "slug": tenant.slug, "claimedDomain": domain.as_ref().map(DomainName::as_str) } }),
        request_id: &request_id,
    }
    .write(&mut tx)
    .await?;
    let event =
        AuthEvent::now(caller.id(), Some(tenant.id), AuthEventKind::TenantCreated).with("tenantName", &*tenant.name);
    db::outbox::insert(&mut tx, &Envelope::new(Job::AuthEvent(event))).await?;
    tx.commit().await?;

    // "No such slug" may be cached (negatively) from before.
    let keys = vec![Key::Slug { slug: tenant.slug.to_string() }, Key::Role { user: caller.id(), tenant: tenant.id }];
    invalidate(&state, keys).await;
    tracing::info!(tenant_id = %tenant.id, user_id = %caller.id(), "tenant created");
    let detail = TenantDetail::new(tenant, Role::Owner, claim.as_ref());
    Ok((StatusCode::CREATED, Json(TenantEnvelope { tenant: detail })))
}

/// Reads a tenant.
///
/// `GET /auth/tenants/{id}`: any member.
#[utoipa::path(
    get,
    path = "/auth/tenants/{id}",
    tag = "tenants",
    operation_id = "getTenant",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant, for any member", body = TenantEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 404, response = errors::TenantNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.manage.get", skip_all)]
pub async fn get(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TenantEnvelope>, ApiError> {
    let id = TenantId::from(id);
    let role = role_in(&state.pool, caller.id(), id).await?;
    let tenant = tenants::find_by_id(&state.pool, id).await?.ok_or_else(tenant_not_found)?;
    let claim = domain_claims::find(&state.pool, id).await?;
    Ok(Json(TenantEnvelope { tenant: TenantDetail::new(tenant, role, claim.as_ref()) }))
}

/// Changes a tenant's name, domain or settings.
///
/// `PATCH /auth/tenants/{id} {name?, domain?, settings?}`: admins and owners.
#[utoipa::path(
    patch,
    path = "/auth/tenants/{id}",
    tag = "tenants",
    operation_id = "updateTenant",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    request_body = UpdateTenantRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed tenant (admins and owners)", body = TenantEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::TenantNotFound),
        (status = 409, response = errors::DomainTaken),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.manage.update", skip_all)]
pub async fn update(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateTenantRequest>,
) -> Result<Json<TenantEnvelope>, ApiError> {
    let name = req.name.as_deref().map(parse_name).transpose()?;
    let domain = match req.domain.as_ref() {
        None => None,
        Some(None) => Some(DomainChange::Remove),
        Some(Some(raw)) => Some(DomainChange::Claim(state.domains.claimable(raw)?)),
    };
    if req.settings.as_ref().is_some_and(|s| !s.is_object()) {
        return Err(ApiError::invalid_request("settings: must be a JSON object"));
    }
    if req.settings.as_ref().is_some_and(holds_nul) {
        return Err(ApiError::invalid_request("settings: text must not contain the NUL character (\\u0000)"));
    }
    if name.is_none() && domain.is_none() && req.settings.is_none() {
        return Err(ApiError::invalid_request("nothing to change: send name, domain or settings"));
    }
    let changes = Changes {
        name: name.as_ref(),
        // A new domain is a claim (see `domains`); only a removal changes the row.
        domain: matches!(domain, Some(DomainChange::Remove)).then_some(None),
        settings: req.settings.as_ref(),
        is_active: None,
    };
    let claim = match &domain {
        Some(DomainChange::Claim(d)) => Some(d),
        _ => None,
    };
    change(&state, &caller, &request_id, TenantId::from(id), Role::Admin, AuditAction::TenantUpdated, &changes, claim)
        .await
}

/// Activates a tenant.
///
/// `POST /auth/tenants/{id}/activate`: owners only.
#[utoipa::path(
    post,
    path = "/auth/tenants/{id}/activate",
    tag = "tenants",
    operation_id = "activateTenant",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Active (owners only)", body = TenantEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::TenantNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.manage.activate", skip_all)]
pub async fn activate(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TenantEnvelope>, ApiError> {
    let changes = Changes { is_active: Some(true), ..Changes::default() };
    change(&state, &caller, &request_id, TenantId::from(id), Role::Owner, AuditAction::TenantActivated, &changes, None)
        .await
}

/// Deactivates a tenant.
///
/// `POST /auth/tenants/{id}/deactivate`: owners only. The proxy refuses the
/// tenant's traffic from the next request on, on every instance.
#[utoipa::path(
    post,
    path = "/auth/tenants/{id}/deactivate",
    tag = "tenants",
    operation_id = "deactivateTenant",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deactivated (owners only): the proxy refuses its traffic at once", body = TenantEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::TenantNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.manage.deactivate", skip_all)]
pub async fn deactivate(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TenantEnvelope>, ApiError> {
    let changes = Changes { is_active: Some(false), ..Changes::default() };
    change(
        &state,
        &caller,
        &request_id,
        TenantId::from(id),
        Role::Owner,
        AuditAction::TenantDeactivated,
        &changes,
        None,
    )
    .await
}

/// Whether `value` holds U+0000 in a string or a key. PostgreSQL's `jsonb` cannot
/// store it (`unsupported Unicode escape sequence`), so such settings are a bad
/// request, not a failed write (they were a 500). serde_json's recursion limit
/// bounds the depth.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(key, v)| key.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// What a `PATCH` asks of the domain.
enum DomainChange {
    /// Open a claim on this domain (the verified one, if any, stays until then).
    Claim(DomainName),
    /// Drop the verified domain and any claim.
    Remove,
}

/// Applies `changes` (and opens a claim on `claim`) for a caller holding at least
/// `needed`, with the audit row (before and after of each changed field), the
/// event and the invalidations.
#[allow(clippy::too_many_arguments)] // one call site per endpoint; a struct would only rename them
async fn change(
    state: &ApiState,
    caller: &BearerUser,
    request_id: &str,
    id: TenantId,
    needed: Role,
    action: AuditAction,
    changes: &Changes<'_>,
    claim: Option<&DomainName>,
) -> Result<Json<TenantEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let (before, role) = lock_for_change(&mut tx, caller.id(), id).await?;
    policy::require(role, needed)?;
    let after = tenants::update(&mut tx, id, changes).await.map_err(taken)?.ok_or_else(tenant_not_found)?;
    let existing = domain_claims::find(&mut *tx, id).await?;
    let already_ours = claim.is_some_and(|d| after.domain.as_deref() == Some(d.as_str()));
    let pending = match claim {
        Some(domain) if !already_ours => Some(domains::open_claim(&mut tx, id, domain).await?),
        _ if changes.domain == Some(None) => {
            domain_claims::delete(&mut tx, id).await?;
            None
        }
        _ => existing.clone(),
    };
    let (mut old, mut new) = diff(&before, &after);
    let (was, is) = (existing.map(|c| c.domain), pending.as_ref().map(|c| c.domain.clone()));
    if was != is {
        old.insert("claimedDomain".into(), json!(was));
        new.insert("claimedDomain".into(), json!(is));
    }
    if !new.is_empty() {
        Audit {
            tenant: id,
            actor: caller.id(),
            action,
            target: format!("tenant:{id}"),
            metadata: json!({ "before": old, "after": new }),
            request_id,
        }
        .write(&mut tx)
        .await?;
        let event = AuthEvent::now(caller.id(), Some(id), AuthEventKind::TenantUpdated)
            .with("tenantName", &*after.name)
            .with("change", action.as_str());
        db::outbox::insert(&mut tx, &Envelope::new(Job::AuthEvent(event))).await?;
    }
    tx.commit().await?;

    if !new.is_empty() {
        let mut keys = vec![Key::Tenant { tenant: id }];
        keys.extend(
            [before.domain.clone(), after.domain.clone()].into_iter().flatten().map(|domain| Key::Domain { domain }),
        );
        invalidate(state, keys).await;
        tracing::info!(tenant_id = %id, user_id = %caller.id(), %action, "tenant changed");
    }
    Ok(Json(TenantEnvelope { tenant: TenantDetail::new(after, role, pending.as_ref()) }))
}

/// The fields that differ between `before` and `after`, as two objects.
fn diff(before: &Tenant, after: &Tenant) -> (Map<String, Value>, Map<String, Value>) {
    let mut old = Map::new();
    let mut new = Map::new();
    let mut field = |key: &str, a: Value, b: Value| {
        if a != b {
            old.insert(key.to_owned(), a);
            new.insert(key.to_owned(), b);
        }
    };
    field("name", json!(before.name), json!(after.name));
    field("domain", json!(before.domain), json!(after.domain));
    field("settings", before.settings.clone(), after.settings.clone());
    field("isActive", json!(before.is_active), json!(after.is_active));
    (old, new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::holds_nul;

    #[test]
    fn nul_is_found_in_strings_and_keys_at_any_depth() {
        assert!(!holds_nul(&json!({ "theme": "dark", "n": [1, null, true, { "a": "b" }] })));
        assert!(holds_nul(&json!({ "a": "x\u{0}y" })));
        assert!(holds_nul(&json!({ "a\u{0}": 1 })));
        assert!(holds_nul(&json!({ "a": [[{ "b": ["\u{0}"] }]] })));
    }
}
