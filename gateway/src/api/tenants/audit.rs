//! `GET /auth/tenants/{id}/audit`: the tenant's audit trail, newest first.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use shared::db;
use shared::domain::{Role, TenantId};
use uuid::Uuid;

use super::wire::{AuditEntryBody, AuditPage, AuditQuery};
use super::{page_size, policy, role_in};
use crate::api::error::ApiError;
use crate::api::extract::{ApiPath, ApiQuery, BearerUser};
use crate::api::openapi::errors;
use crate::api::ApiState;

/// Lists a tenant's audit trail.
///
/// Admins and owners; `?limit=&before=` (keyset: pass the previous page's
/// `nextBefore`).
#[utoipa::path(
    get,
    path = "/auth/tenants/{id}/audit",
    tag = "tenants",
    operation_id = "listAudit",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
        AuditQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the audit trail, newest first (admins and owners)", body = AuditPage),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::TenantNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.audit.list", skip_all)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let tenant = TenantId::from(id);
    let limit = page_size(query.limit)?;
    policy::require(role_in(&state.pool, caller.id(), tenant).await?, Role::Admin)?;
    let entries = db::audit::list_for_tenant(&state.pool, tenant, limit, query.before).await?;
    let full = i64::try_from(entries.len()).is_ok_and(|n| n == limit);
    let next_before = if full { entries.last().map(|e| e.id) } else { None };
    Ok(Json(AuditPage { entries: entries.into_iter().map(AuditEntryBody::from).collect(), next_before }))
}
