//! Invitations: admins invite an address with a role; the email carries a random
//! token (stored hashed, expiring, single-use) that the invited person accepts,
//! logged in or while registering.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use shared::cache::Key;
use shared::db::audit::AuditAction;
use shared::db::invitations::{self, NewInvitation};
use shared::db::users::User;
use shared::db::{self, memberships, tenants, users};
use shared::domain::{Email, Role, TenantId};
use shared::queue::{templates, AuthEvent, AuthEventKind, EmailJob, Envelope, Job};
use sqlx::PgConnection;
use uuid::Uuid;

use super::wire::{
    AcceptRequest, InvitationBody, InvitationEnvelope, InvitationsBody, InviteRequest, TenantDetail, TenantEnvelope,
};
use super::{invalidate, lock_for_change, policy, role_in, tenant_not_found, Audit, MAX_PAGE};
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath, BearerUser, ClientIp, RequestId};
use crate::api::openapi::errors;
use crate::api::throttle::{Action, Subject};
use crate::api::ApiState;
use crate::error_code::ErrorCode;

fn already_member() -> ApiError {
    ApiError::from(ErrorCode::AlreadyMember)
}

fn tenant_inactive() -> ApiError {
    ApiError::from(ErrorCode::TenantInactive)
}

/// Invites an address into a tenant.
///
/// `POST /auth/tenants/{id}/invitations {email, role}`: admins and owners (only
/// owners invite owners). Replaces the address's pending invitation. 201.
#[utoipa::path(
    post,
    path = "/auth/tenants/{id}/invitations",
    tag = "tenants",
    operation_id = "createInvitation",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    request_body = InviteRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Invited; the token goes only into the email", body = InvitationEnvelope),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InviteRefused),
        (status = 404, response = errors::TenantNotFound),
        (status = 409, response = errors::AlreadyMember),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 429, response = errors::RateLimited),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.invitations.create", skip_all)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ClientIp(ip): ClientIp,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<InviteRequest>,
) -> Result<(StatusCode, Json<InvitationEnvelope>), ApiError> {
    let tenant_id = TenantId::from(id);
    let email = Email::parse(&req.email)?;
    let role = Role::parse(&req.role)?;
    state.throttle.hit(Action::Invite, &[Some(Subject::Account(caller.id())), ip.map(Subject::Ip)]).await?;

    let mut tx = state.pool.begin().await?;
    let (tenant, actor) = lock_for_change(&mut tx, caller.id(), tenant_id).await?;
    policy::invite(actor, role)?;
    if !tenant.is_active {
        return Err(tenant_inactive());
    }
    let invitee = users::find_by_email(&mut *tx, &email).await?;
    if let Some(invitee) = &invitee {
        if memberships::find_role(&mut *tx, invitee.id, tenant_id).await?.is_some() {
            return Err(already_member());
        }
    }
    // Whoever invites, one address gets only so many mails (counted once the
    // inviter may invite, so nobody else can spend an address's allowance).
    state.throttle.hit(Action::Mail, &[Some(Subject::Address(&email))]).await?;
    let token = state.opaque.issue();
    let expires_at = Utc::now() + state.invitation_ttl;
    let new =
        NewInvitation { tenant_id, email: &email, role, token_hash: &token.hash, invited_by: caller.id(), expires_at };
    let invitation = invitations::replace_pending(&mut tx, &new).await?;
    // The invitee's own language when they have an account, else the inviter's.
    let language = invitee.as_ref().map_or(&caller.user.language, |u| &u.language);
    let mail = EmailJob::new(&email, language, templates::INVITATION)
        .with("token", token.plaintext.expose_secret())
        .with("tenantName", &*tenant.name)
        .with("inviterName", &*caller.user.name)
        .with("role", role.as_str());
    db::outbox::insert(&mut tx, &Envelope::new(Job::SendInvitation(mail))).await?;
    Audit {
        tenant: tenant_id,
        actor: caller.id(),
        action: AuditAction::InvitationCreated,
        target: format!("invitation:{}", invitation.id),
        metadata: json!({ "after": { "email": invitation.email, "role": role, "expiresAt": expires_at } }),
        request_id: &request_id,
    }
    .write(&mut tx)
    .await?;
    let event = AuthEvent::now(caller.id(), Some(tenant_id), AuthEventKind::InvitationSent)
        .with("tenantName", &*tenant.name)
        .with("email", email.as_str())
        .with("role", role.as_str());
    db::outbox::insert(&mut tx, &Envelope::new(Job::AuthEvent(event))).await?;
    tx.commit().await?;

    tracing::info!(tenant_id = %tenant_id, invitation_id = %invitation.id, "invitation created");
    Ok((StatusCode::CREATED, Json(InvitationEnvelope { invitation: InvitationBody::from(&invitation) })))
}

/// Lists a tenant's invitations.
///
/// `GET /auth/tenants/{id}/invitations`: admins and owners; newest first.
#[utoipa::path(
    get,
    path = "/auth/tenants/{id}/invitations",
    tag = "tenants",
    operation_id = "listInvitations",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's invitations, newest first (admins and owners)", body = InvitationsBody),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::TenantNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.invitations.list", skip_all)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<InvitationsBody>, ApiError> {
    let tenant_id = TenantId::from(id);
    policy::require(role_in(&state.pool, caller.id(), tenant_id).await?, Role::Admin)?;
    let list = invitations::list_for_tenant(&state.pool, tenant_id, MAX_PAGE).await?;
    Ok(Json(InvitationsBody { invitations: list.iter().map(InvitationBody::from).collect() }))
}

/// Revokes a pending invitation.
///
/// `DELETE /auth/tenants/{id}/invitations/{invitation}`: admins and owners revoke a
/// pending invitation. 204.
#[utoipa::path(
    delete,
    path = "/auth/tenants/{id}/invitations/{invitation}",
    tag = "tenants",
    operation_id = "revokeInvitation",
    params(
        ("id" = Uuid, Path, description = "The tenant's id"),
        ("invitation" = Uuid, Path, description = "The invitation's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InsufficientRole),
        (status = 404, response = errors::InvitationNotFound),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.invitations.revoke", skip_all)]
pub async fn revoke(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiPath((id, invitation_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let tenant_id = TenantId::from(id);
    let mut tx = state.pool.begin().await?;
    let (_, actor) = lock_for_change(&mut tx, caller.id(), tenant_id).await?;
    policy::require(actor, Role::Admin)?;
    let revoked = invitations::revoke(&mut *tx, tenant_id, invitation_id)
        .await?
        .ok_or_else(|| ApiError::from(ErrorCode::InvitationNotFound))?;
    Audit {
        tenant: tenant_id,
        actor: caller.id(),
        action: AuditAction::InvitationRevoked,
        target: format!("invitation:{invitation_id}"),
        metadata: json!({ "before": { "email": revoked.email, "role": revoked.role } }),
        request_id: &request_id,
    }
    .write(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation.
///
/// `POST /auth/invitations/accept {token}`: the logged-in user joins the tenant,
/// if the invitation was sent to their address.
#[utoipa::path(
    post,
    path = "/auth/invitations/accept",
    tag = "tenants",
    operation_id = "acceptInvitation",
    request_body = AcceptRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller joined the tenant", body = TenantEnvelope),
        (status = 400, response = errors::InvalidOneTimeToken),
        (status = 401, response = errors::Unauthenticated),
        (status = 403, response = errors::InvitationRefused),
        (status = 404, response = errors::TenantNotFound),
        (status = 409, response = errors::AlreadyMember),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "tenants.invitations.accept", skip_all)]
pub async fn accept(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<AcceptRequest>,
) -> Result<Json<TenantEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let (tenant_id, role) = join(&state, &mut tx, &caller.user, &req.token, &request_id).await?;
    tx.commit().await?;
    invalidate(&state, vec![Key::Role { user: caller.id(), tenant: tenant_id }]).await;
    let tenant = tenants::find_by_id(&state.pool, tenant_id).await?.ok_or_else(tenant_not_found)?;
    tracing::info!(tenant_id = %tenant_id, user_id = %caller.id(), "invitation accepted");
    Ok(Json(TenantEnvelope { tenant: TenantDetail::new(tenant, role, None) }))
}

/// Spends the invitation `token` for `user` inside the caller's transaction: the
/// membership, the audit row and the `member-added` event. The caller commits and
/// then invalidates `Key::Role` for the user and the returned tenant.
///
/// # Errors
/// 400 `invalid_token` (unknown, used, revoked or expired), 403
/// `invitation_email_mismatch` (sent to another address), 403 `tenant_inactive`,
/// 409 `already_member`.
pub async fn join(
    state: &ApiState,
    conn: &mut PgConnection,
    user: &User,
    token: &SecretString,
    request_id: &str,
) -> Result<(TenantId, Role), ApiError> {
    let hash = state.opaque.hash(token.expose_secret());
    let invitation = invitations::lock_live_by_hash(&mut *conn, &hash).await?.ok_or(ErrorCode::InvalidOneTimeToken)?;
    if !invitation.email.same_address(&user.email) {
        return Err(ApiError::from(ErrorCode::InvitationEmailMismatch));
    }
    let tenant = tenants::lock(&mut *conn, invitation.tenant_id).await?.ok_or_else(tenant_not_found)?;
    if !tenant.is_active {
        return Err(tenant_inactive());
    }
    match memberships::insert(&mut *conn, user.id, tenant.id, invitation.role).await {
        Err(db::Error::Duplicate { .. }) => return Err(already_member()),
        other => other?,
    }
    invitations::mark_accepted(&mut *conn, invitation.id, user.id).await?;
    Audit {
        tenant: tenant.id,
        actor: user.id,
        action: AuditAction::MemberAdded,
        target: format!("user:{}", user.id),
        metadata: json!({ "after": { "role": invitation.role }, "invitationId": invitation.id, "invitedBy": invitation.invited_by }),
        request_id,
    }
    .write(&mut *conn)
    .await?;
    let event = AuthEvent::now(user.id, Some(tenant.id), AuthEventKind::MemberAdded)
        .with("tenantName", &*tenant.name)
        .with("role", invitation.role.as_str());
    db::outbox::insert(&mut *conn, &Envelope::new(Job::AuthEvent(event))).await?;
    Ok((tenant.id, invitation.role))
}
