//! `POST /auth/register`: a user, their first tenant (as owner), the audit rows, a
//! session, an email-verification token with its email and a `register` auth
//! event (both through the outbox), in one transaction.
//!
//! With an `inviteToken`, the user joins the inviting tenant instead of creating
//! one; the invitation reached their inbox, so the address counts as verified.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use shared::db::account_tokens::{self, Purpose};
use shared::db::audit::AuditAction;
use shared::db::users::User;
use shared::db::{self, audit, memberships, users};
use shared::domain::{Email, Language, Password, PersonName, Role, Slug, TenantId, TenantName};
use shared::queue::{AuthEvent, AuthEventKind};
use sqlx::PgConnection;

use super::enqueue;
use super::tokens::issue_pair;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ClientIp, RequestId};
use crate::api::openapi::errors;
use crate::api::throttle::{Action, Subject};
use crate::api::wire::{RegisterRequest, SessionBody, TenantBody, UserBody};
use crate::api::{tenants, ApiState};
use crate::error_code::ErrorCode;

/// The parsed request: every field valid.
struct Registration {
    email: Email,
    password: Password,
    name: PersonName,
    language: Language,
    tenant_name: TenantName,
    invite_token: Option<SecretString>,
}

impl TryFrom<RegisterRequest> for Registration {
    type Error = ApiError;

    fn try_from(req: RegisterRequest) -> Result<Self, ApiError> {
        let name = PersonName::parse(&req.name)?;
        let tenant_name = match req.tenant_name.as_deref() {
            Some(t) => TenantName::parse(t)?,
            None => TenantName::parse(&format!("{name}'s workspace"))
                .or_else(|_| TenantName::parse("Personal workspace"))?,
        };
        Ok(Registration {
            email: Email::parse(&req.email)?,
            password: Password::parse(req.password)?,
            language: req.language.as_deref().map(Language::parse).transpose()?.unwrap_or_default(),
            name,
            tenant_name,
            invite_token: req.invite_token,
        })
    }
}

/// Registers a user.
///
/// Registers a user and answers 201 with tokens, the user and their tenant.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "account",
    operation_id = "register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered: tokens, the user and their tenant", body = SessionBody),
        (status = 400, response = errors::InvalidTokenOrPassword),
        (status = 403, response = errors::InvitationRefused),
        (status = 404, response = errors::TenantNotFound),
        (status = 409, response = errors::RegistrationConflict),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 429, response = errors::RateLimited),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.register", skip_all)]
pub async fn register(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<SessionBody>), ApiError> {
    let reg = Registration::try_from(req)?;
    state.throttle.hit(Action::Register, &[Some(Subject::Address(&reg.email)), ip.map(Subject::Ip)]).await?;
    let password_hash = state.passwords.hash(&reg.password).await?;

    let mut tx = state.pool.begin().await?;
    let new_user =
        users::NewUser { email: &reg.email, password_hash: &password_hash, name: &reg.name, language: &reg.language };
    let user = match users::insert(&mut tx, &new_user).await {
        Err(db::Error::Duplicate { .. }) => return Err(ApiError::from(ErrorCode::EmailTaken)),
        other => other?,
    };
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: None,
            actor_id: Some(user.id),
            action: AuditAction::UserRegistered,
            target: Some(format!("user:{}", user.id)),
            metadata: json!({ "language": user.language }),
            request_id: Some(&request_id),
        },
    )
    .await?;
    let (tenant_id, invited) = match &reg.invite_token {
        Some(token) => (tenants::join(&state, &mut tx, &user, token, &request_id).await?.0, true),
        None => (create_first_tenant(&mut tx, &user, &reg.tenant_name, &request_id).await?, false),
    };
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    let user = if invited {
        account_tokens::mark_email_verified(&mut *tx, user.id).await?.unwrap_or(user)
    } else {
        enqueue::token_email(&state, &mut tx, Purpose::EmailVerification, &user).await?;
        user
    };
    let (tokens, _) = issue_pair(&state, &mut tx, &user, None, user_agent).await?;
    enqueue::event(&mut tx, AuthEvent::now(user.id, Some(tenant_id), AuthEventKind::Register)).await?;
    tx.commit().await?;
    if invited {
        // "Not a member" may be cached for this (new) user id: practically never,
        // but the invalidation is cheap.
        tenants::forget_role(&state, user.id, tenant_id).await;
    }

    tracing::info!(user_id = %user.id, tenant_id = %tenant_id, invited, "user registered");
    let tenants = memberships::list_for_user(&state.pool, user.id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SessionBody {
            tokens,
            user: UserBody::from(&user),
            tenants: tenants.iter().map(TenantBody::from).collect(),
        }),
    ))
}

/// The new user's own tenant, named `name`, with them as owner and its audit row.
async fn create_first_tenant(
    tx: &mut PgConnection,
    user: &User,
    name: &TenantName,
    request_id: &str,
) -> Result<TenantId, ApiError> {
    let tenant = db::tenants::insert_with_derived_slug(&mut *tx, name, &Slug::derive(name.as_str())).await?;
    memberships::insert(&mut *tx, user.id, tenant.id, Role::Owner).await?;
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: Some(tenant.id),
            actor_id: Some(user.id),
            action: AuditAction::TenantCreated,
            target: Some(format!("tenant:{}", tenant.id)),
            metadata: json!({ "name": tenant.name, "slug": tenant.slug, "ownerRole": Role::Owner }),
            request_id: Some(request_id),
        },
    )
    .await?;
    Ok(tenant.id)
}
