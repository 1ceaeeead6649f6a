//! Tenant API keys: owners and admins make keys for scripts and services, each
//! with a name, a role no higher than its maker's and an optional expiry; the key
//! is answered once, at creation. Revoking one reaches every gateway within a
//! second (the same invalidation as a role change).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::json;
use shared::cache::Key;
use shared::db::api_keys::{self, NewApiKey};
use shared::db::audit::AuditAction;
use shared::db::{self};
use shared::domain::{ApiKeyId, ApiKeyName, Role, TenantId};
use uuid::Uuid;

use super::wire::{ApiKeyBody, ApiKeysBody, CreateApiKeyRequest, CreatedApiKey};
use super::{invalidate, lock_for_change, policy, role_in, Audit, MAX_PAGE};
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath, BearerUser, RequestId};
use crate::api::openapi::errors;
use crate::api::ApiState;
use crate::error_code::ErrorCode;

/// Live (unrevoked, unexpired) keys a tenant may hold at once: every one of them
/// is always in the listing, so none can be hidden among many.
pub const MAX_LIVE_KEYS: i64 = 100;

/// A key may live at most this long (about ten years): far enough for "never",
/// near enough that every date is one Postgres and the proxy agree on.
const MAX_LIFETIME_DAYS: i64 = 3660;

/// Checks the requested expiry: in the future, within [`MAX_LIFETIME_DAYS`].
fn expiry(requested: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match requested {
        Some(at) if at <= now => Err(ApiError::invalid_request("expiresAt must be in the future")),
        Some(at) if at > now + chrono::Duration::days(MAX_LIFETIME_DAYS) => {
            Err(ApiError::invalid_request(format!("expiresAt must be within {MAX_LIFETIME_DAYS} days")))
        }
        at => Ok(at),
    }
}

/// Makes an API key.
///
/// `POST /auth/tenants/{id}/api-keys {name, role, expiresAt?}`: admins and owners
/// with a verified address; the role is at most the caller's; at most
/// [`MAX_LIVE_KEYS`] live keys per tenant. 201 with the key, shown this once.
#[utoipa::path(
    post,
    path = "/auth/tenants/{id}/api-keys",
    tag = "tenants",
    operation_id = "createApiKey",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    request_body = CreateApiKeyRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Made; `key` is shown this once and never again", body = CreatedApiKey),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::ApiKeyRefused),
        (status = 404, response = errors::TenantNotFound),
        (status = 409, response = errors::ApiKeyLimit),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.api_keys.create", skip_all)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let tenant_id = TenantId::from(id);
    let name = ApiKeyName::parse(&req.name)?;
    let role = Role::parse(&req.role)?;
    let expires_at = expiry(req.expires_at, Utc::now())?;

    let mut tx = state.pool.begin().await?;
    let (tenant, actor) = lock_for_change(&mut tx, caller.id(), tenant_id).await?;
    policy::require(actor, Role::Admin)?;
    if role > actor {
        return Err(ErrorCode::ApiKeyRoleTooHigh.into());
    }
    // A key has no address to verify: its maker's must be, or a key would pass
    // routes that require a verified email for an account that has none.
    if caller.user.email_verified_at.is_none() {
        return Err(ErrorCode::EmailNotVerified.into());
    }
    if !tenant.is_active {
        return Err(ErrorCode::TenantInactive.into());
    }
    // Counted under the tenant lock: concurrent creations cannot pass the cap.
    if api_keys::count_live(&mut *tx, tenant_id).await? >= MAX_LIVE_KEYS {
        return Err(ErrorCode::ApiKeyLimit.into());
    }
    let made = shared::api_key::generate();
    let new = NewApiKey {
        tenant_id,
        public_id: &made.public_id,
        secret_hash: &made.secret_hash,
        name: &name,
        role,
        created_by: caller.id(),
        expires_at,
    };
    let key = api_keys::insert(&mut tx, &new).await.map_err(|e| match e {
        // 71 random bits: a collision is a broken random source, not bad luck.
        db::Error::Duplicate { .. } => ApiError::new(ErrorCode::InternalError, "could not make a unique key; retry"),
        e => e.into(),
    })?;
    Audit {
        tenant: tenant_id,
        actor: caller.id(),
        action: AuditAction::ApiKeyCreated,
        target: format!("api_key:{}", key.id),
        metadata: json!({ "after": { "name": key.name.as_str(), "role": role, "publicId": key.public_id, "expiresAt": expires_at } }),
        request_id: &request_id,
    }
    .write(&mut tx)
    .await?;
    tx.commit().await?;
    // A lookup of this public id may have cached "no such key" (a client that
    // guessed it, or one racing the answer): forget that everywhere.
    invalidate(&state, vec![Key::ApiKey { public_id: key.public_id.clone() }]).await;

    tracing::info!(tenant_id = %tenant_id, api_key_id = %key.id, role = role.as_str(), "API key created");
    let body = ApiKeyBody::new(&key, Utc::now());
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key: made.key.expose_secret().to_owned(), api_key: body })))
}

/// Lists a tenant's API keys.
///
/// `GET /auth/tenants/{id}/api-keys`: admins and owners; every live key, then the
/// newest revoked and expired ones, each part newest first; never a key itself.
#[utoipa::path(
    get,
    path = "/auth/tenants/{id}/api-keys",
    tag = "tenants",
    operation_id = "listApiKeys",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's API keys (admins and owners): every live one, then the 100 newest revoked or expired", body = ApiKeysBody),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::TenantNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.api_keys.list", skip_all)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ApiKeysBody>, ApiError> {
    let tenant_id = TenantId::from(id);
    policy::require(role_in(&state.pool, caller.id(), tenant_id).await?, Role::Admin)?;
    let keys = api_keys::list_for_tenant(&state.pool, tenant_id, MAX_PAGE).await?;
    let now = Utc::now();
    Ok(Json(ApiKeysBody { api_keys: keys.iter().map(|k| ApiKeyBody::new(k, now)).collect() }))
}

/// Revokes an API key.
///
/// `DELETE /auth/tenants/{id}/api-keys/{key}`: admins and owners; a key with a
/// role above the caller's only by an owner. Every gateway stops accepting it
/// within a second. Revoking a revoked key changes nothing. 204.
#[utoipa::path(
    delete,
    path = "/auth/tenants/{id}/api-keys/{key}",
    tag = "tenants",
    operation_id = "revokeApiKey",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
        ("key" = Uuid, Path, description = "The API key's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::ApiKeyRefused),
        (status = 404, response = errors::ApiKeyNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.api_keys.revoke", skip_all)]
pub async fn revoke(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath((id, key_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let (tenant_id, key_id) = (TenantId::from(id), ApiKeyId::from(key_id));
    let mut tx = state.pool.begin().await?;
    let (_, actor) = lock_for_change(&mut tx, caller.id(), tenant_id).await?;
    policy::require(actor, Role::Admin)?;
    let key = api_keys::lock(&mut tx, tenant_id, key_id).await?.ok_or(ErrorCode::ApiKeyNotFound)?;
    if key.role > actor {
        return Err(ErrorCode::ApiKeyRoleTooHigh.into());
    }
    if key.revoked_at.is_some() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let revoked = api_keys::revoke(&mut tx, key_id, caller.id()).await?;
    Audit {
        tenant: tenant_id,
        actor: caller.id(),
        action: AuditAction::ApiKeyRevoked,
        target: format!("api_key:{key_id}"),
        metadata: json!({ "before": { "name": revoked.name.as_str(), "role": revoked.role, "publicId": revoked.public_id } }),
        request_id: &request_id,
    }
    .write(&mut tx)
    .await?;
    tx.commit().await?;
    invalidate(&state, vec![Key::ApiKey { public_id: revoked.public_id }]).await;
    tracing::info!(tenant_id = %tenant_id, api_key_id = %key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_in_the_future_and_within_ten_years() {
        let now = Utc::now();
        assert_eq!(expiry(None, now).unwrap(), None);
        assert!(expiry(Some(now), now).is_err());
        assert!(expiry(Some(now - chrono::Duration::seconds(1)), now).is_err());
        assert!(expiry(Some(now + chrono::Duration::days(MAX_LIFETIME_DAYS + 1)), now).is_err());
        let at = now + chrono::Duration::days(30);
        assert_eq!(expiry(Some(at), now).unwrap(), Some(at));
    }
}
