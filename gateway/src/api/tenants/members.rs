//! A tenant's members: list, change a role, remove, leave.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;
use shared::cache::Key;
use shared::db::audit::AuditAction;
use shared::db::{self, memberships};
use shared::domain::{Role, TenantId, UserId};
use shared::queue::{AuthEvent, AuthEventKind, Envelope, Job};
use uuid::Uuid;

use super::wire::{ChangeRoleRequest, MemberBody, MemberEnvelope, MembersPage, PageQuery};
use super::{invalidate, lock_for_change, page_size, policy, role_in, Audit};
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath, ApiQuery, BearerUser, RequestId};
use crate::api::openapi::errors;
use crate::api::ApiState;
use crate::error_code::ErrorCode;

/// 404 `member_not_found`.
fn member_not_found() -> ApiError {
    ApiError::from(ErrorCode::MemberNotFound)
}

/// Lists a tenant's members.
///
/// `GET /auth/tenants/{id}/members?limit=&offset=`: members and up (not viewers).
#[utoipa::path(
    get,
    path = "/auth/tenants/{id}/members",
    tag = "tenants",
    operation_id = "listMembers",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
        PageQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of members, strongest role first (members and up)", body = MembersPage),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::TenantNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.members.list", skip_all)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MembersPage>, ApiError> {
    let id = TenantId::from(id);
    let limit = page_size(query.limit)?;
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid_request("offset must not be negative"));
    }
    policy::require(role_in(&state.pool, caller.id(), id).await?, Role::Member)?;
    let members = memberships::list_members(&state.pool, id, limit, offset).await?;
    let total = memberships::count_members(&state.pool, id).await?;
    Ok(Json(MembersPage { members: members.into_iter().map(MemberBody::from).collect(), total, limit, offset }))
}

/// Changes a member's role.
///
/// `PATCH /auth/tenants/{id}/members/{user} {role}`: admins change others' roles,
/// only owners grant, change or remove `owner`, anyone lowers their own role, and
/// a tenant keeps an owner ([`policy::change_role`]).
#[utoipa::path(
    patch,
    path = "/auth/tenants/{id}/members/{user}",
    tag = "tenants",
    operation_id = "changeMemberRole",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
        ("user" = Uuid, Path, description = "The member's user id"),
    ),
    request_body = ChangeRoleRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The member with the new role", body = MemberEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::RoleChangeRefused),
        (status = 404, response = errors::MemberNotFound),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.members.change_role", skip_all)]
pub async fn change_role(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath((id, user)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<ChangeRoleRequest>,
) -> Result<Json<MemberEnvelope>, ApiError> {
    let (tenant, target) = (TenantId::from(id), UserId::from(user));
    let new = Role::parse(&req.role)?;

    let mut tx = state.pool.begin().await?;
    let (locked, actor) = lock_for_change(&mut tx, caller.id(), tenant).await?;
    let member = memberships::find_member(&mut *tx, tenant, target).await?.ok_or_else(member_not_found)?;
    let owners = memberships::count_owners(&mut tx, tenant).await?;
    policy::change_role(actor, target == caller.id(), member.role, new, owners)?;
    if member.role == new {
        return Ok(Json(MemberEnvelope { member: MemberBody::from(member) }));
    }
    memberships::update_role(&mut tx, target, tenant, new).await?.ok_or_else(member_not_found)?;
    Audit {
        tenant,
        actor: caller.id(),
        action: AuditAction::MemberRoleChanged,
        target: format!("user:{target}"),
        metadata: json!({ "before": { "role": member.role }, "after": { "role": new } }),
        request_id: &request_id,
    }
    .write(&mut tx)
    .await?;
    let event = AuthEvent::now(target, Some(tenant), AuthEventKind::RoleChanged)
        .with("role", new.as_str())
        .with("previousRole", member.role.as_str())
        .with("tenantName", &*locked.name);
    db::outbox::insert(&mut tx, &Envelope::new(Job::AuthEvent(event))).await?;
    tx.commit().await?;

    invalidate(&state, vec![Key::Role { user: target, tenant }]).await;
    tracing::info!(tenant_id = %tenant, user_id = %target, actor = %caller.id(), role = new.as_str(), "role changed");
    Ok(Json(MemberEnvelope { member: MemberBody { role: new, ..MemberBody::from(member) } }))
}

/// Removes a member from a tenant.
///
/// `DELETE /auth/tenants/{id}/members/{user}`: admins remove others (owners
/// remove owners); anyone removes themselves. 204.
#[utoipa::path(
    delete,
    path = "/auth/tenants/{id}/members/{user}",
    tag = "tenants",
    operation_id = "removeMember",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
        ("user" = Uuid, Path, description = "The member's user id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::RemovalRefused),
        (status = 404, response = errors::MemberNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.members.remove", skip_all)]
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath((id, user)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    remove_member(&state, &caller, &request_id, TenantId::from(id), UserId::from(user)).await
}

/// Leaves a tenant.
///
/// `POST /auth/tenants/{id}/leave`: the caller leaves (not the last owner). 204.
#[utoipa::path(
    post,
    path = "/auth/tenants/{id}/leave",
    tag = "tenants",
    operation_id = "leaveTenant",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The caller is no longer a member"),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::LastOwner),
        (status = 404, response = errors::MemberNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.members.leave", skip_all)]
pub async fn leave(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let me = caller.id();
    remove_member(&state, &caller, &request_id, TenantId::from(id), me).await
}

async fn remove_member(
    state: &ApiState,
    caller: &BearerUser,
    request_id: &str,
    tenant: TenantId,
    target: UserId,
) -> Result<StatusCode, ApiError> {
    let is_self = target == caller.id();
    let mut tx = state.pool.begin().await?;
    let (locked, actor) = lock_for_change(&mut tx, caller.id(), tenant).await?;
    let member = memberships::find_member(&mut *tx, tenant, target).await?.ok_or_else(member_not_found)?;
    let owners = memberships::count_owners(&mut tx, tenant).await?;
    policy::remove(actor, is_self, member.role, owners)?;
    memberships::remove(&mut tx, target, tenant).await?.ok_or_else(member_not_found)?;
    Audit {
        tenant,
        actor: caller.id(),
        action: if is_self { AuditAction::MemberLeft } else { AuditAction::MemberRemoved },
        target: format!("user:{target}"),
        metadata: json!({ "before": { "role": member.role, "email": member.email } }),
        request_id,
    }
    .write(&mut tx)
    .await?;
    let event = AuthEvent::now(target, Some(tenant), AuthEventKind::MemberRemoved)
        .with("tenantName", &*locked.name)
        .with("left", is_self);
    db::outbox::insert(&mut tx, &Envelope::new(Job::AuthEvent(event))).await?;
    tx.commit().await?;

    invalidate(state, vec![Key::Role { user: target, tenant }]).await;
    tracing::info!(tenant_id = %tenant, user_id = %target, actor = %caller.id(), "member removed");
    Ok(StatusCode::NO_CONTENT)
}
