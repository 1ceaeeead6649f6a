//! `POST /auth/register`: a user, their first tenant (as owner), the audit rows, a
//! session, an email-verification token with its email and a `register` auth
//! event (both through the outbox), in one transaction.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use shared::db::account_tokens::Purpose;
use shared::db::{self, audit, memberships, tenants, users};
use shared::domain::{Email, Language, Password, PersonName, Role, Slug, TenantName};
use shared::queue::{AuthEvent, AuthEventKind};

use super::enqueue;
use super::tokens::issue_pair;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, RequestId};
use crate::api::wire::{RegisterRequest, SessionBody, TenantBody, UserBody};
use crate::api::ApiState;

/// The parsed request: every field valid.
struct Registration {
    email: Email,
    password: Password,
    name: PersonName,
    language: Language,
    tenant_name: TenantName,
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
        })
    }
}

/// Registers a user and answers 201 with tokens, the user and their tenant.
pub async fn register(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<SessionBody>), ApiError> {
    let reg = Registration::try_from(req)?;
    let password_hash = state.passwords.hash(&reg.password).await?;

    let mut tx = state.pool.begin().await.map_err(db::Error::from)?;
    let new_user =
        users::NewUser { email: &reg.email, password_hash: &password_hash, name: &reg.name, language: &reg.language };
    let user = match users::insert(&mut tx, &new_user).await {
        Err(db::Error::Duplicate { .. }) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "email_taken", "an account with this email already exists"))
        }
        other => other?,
    };
    let tenant =
        tenants::insert_with_derived_slug(&mut tx, &reg.tenant_name, &Slug::derive(reg.tenant_name.as_str())).await?;
    memberships::insert(&mut tx, user.id, tenant.id, Role::Owner).await?;
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: None,
            actor_id: Some(user.id),
            action: "user.registered",
            target: Some(format!("user:{}", user.id)),
            metadata: json!({ "language": user.language }),
            request_id: Some(&request_id),
        },
    )
    .await?;
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: Some(tenant.id),
            actor_id: Some(user.id),
            action: "tenant.created",
            target: Some(format!("tenant:{}", tenant.id)),
            metadata: json!({ "name": tenant.name, "slug": tenant.slug, "ownerRole": Role::Owner }),
            request_id: Some(&request_id),
        },
    )
    .await?;
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    let (tokens, _) = issue_pair(&state, &mut tx, &user, None, user_agent).await?;
    enqueue::token_email(&state, &mut tx, Purpose::EmailVerification, &user).await?;
    enqueue::event(&mut tx, AuthEvent::now(user.id, Some(tenant.id), AuthEventKind::Register)).await?;
    tx.commit().await.map_err(db::Error::from)?;

    tracing::info!(user_id = %user.id, tenant_id = %tenant.id, "user registered");
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
