//! `POST /auth/login`: the same work, timing and answer whether or not the account
//! exists, so the endpoint cannot be used to find out who has one. Attempts are
//! limited per address and per client IP.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::json;
use shared::db::audit::AuditAction;
use shared::db::{audit, memberships, users};
use shared::domain::{Email, Password};
use shared::password::Verification;
use shared::queue::{AuthEvent, AuthEventKind};

use super::enqueue;
use super::tokens::issue_pair;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ClientIp, RequestId};
use crate::api::openapi::errors;
use crate::api::throttle::{Action, Subject};
use crate::api::wire::{LoginRequest, SessionBody, TenantBody, UserBody};
use crate::api::ApiState;
use crate::error_code::ErrorCode;

fn invalid_credentials() -> ApiError {
    ApiError::from(ErrorCode::InvalidCredentials)
}

/// Logs in with email and password.
///
/// Logs a user in: 200 with tokens, the user and all their tenants, 401
/// `invalid_credentials`, or 429 `rate_limited` once the address or the client IP
/// made `RATE_LIMIT_MAX` attempts in `RATE_LIMIT_WINDOW`.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "account",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in: tokens, the user and their tenants", body = SessionBody),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::InvalidCredentials),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 429, response = errors::RateLimited),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.login", skip_all)]
pub async fn login(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<axum::Json<SessionBody>, ApiError> {
    let email = Email::parse(&req.email).ok();
    state.throttle.hit(Action::Login, &[email.as_ref().map(Subject::Address), ip.map(Subject::Ip)]).await?;
    let candidate = req.password.expose_secret();
    // An address that cannot exist, or a password longer than any we accept, still
    // costs one verification, so no shortcut tells them apart from a wrong password.
    let plausible = candidate.chars().count() <= Password::MAX_CHARS;
    let credentials = match email {
        Some(email) if plausible => users::find_credentials_by_email(&state.pool, &email).await?,
        _ => None,
    };
    let verdict = state.passwords.verify(candidate, credentials.as_ref().map(|c| c.password_hash.as_str())).await?;
    let user = match (verdict, credentials) {
        (Verification::Match, Some(credentials)) => credentials.user,
        _ => return Err(invalid_credentials()),
    };

    let mut tx = state.pool.begin().await?;
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    let (tokens, session_id) = issue_pair(&state, &mut tx, &user, None, user_agent).await?;
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: None,
            actor_id: Some(user.id),
            action: AuditAction::UserLoggedIn,
            target: Some(format!("session:{session_id}")),
            metadata: json!({}),
            request_id: Some(&request_id),
        },
    )
    .await?;
    let mut event = AuthEvent::now(user.id, None, AuthEventKind::Login);
    if let Some(ip) = ip {
        event = event.with("ip", ip.to_string());
    }
    enqueue::event(&mut tx, event).await?;
    tx.commit().await?;

    let tenants = memberships::list_for_user(&state.pool, user.id).await?;
    Ok(axum::Json(SessionBody {
        tokens,
        user: UserBody::from(&user),
        tenants: tenants.iter().map(TenantBody::from).collect(),
    }))
}
