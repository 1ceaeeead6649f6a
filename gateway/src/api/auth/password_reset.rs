//! `POST /auth/forgot-password` and `POST /auth/reset-password`: a one-time token
//! (1 h, single use) mailed to the address lets its owner set a new password, which
//! ends every session.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;
use shared::cache::Key;
use shared::db::account_tokens::{self, Purpose};
use shared::db::audit::AuditAction;
use shared::db::{audit, sessions, users};
use shared::domain::{Email, Password};
use shared::queue::{AuthEvent, AuthEventKind};
use shared::tokens::TokenHasher;

use super::enqueue;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ClientIp, RequestId};
use crate::api::openapi::errors;
use crate::api::throttle::{Action, Subject};
use crate::api::wire::{AcceptedBody, ForgotPasswordRequest, ResetPasswordRequest};
use crate::api::ApiState;
use crate::error_code::ErrorCode;

/// Asks for a password reset link.
///
/// Answers 202 with the same body whether or not an account has this address (or
/// the address is malformed), then, when one does, mails it a reset link. The work
/// runs after the answer is sent, so the response time says nothing about the
/// account either. Rate-limited per address and per client IP (429
/// `rate_limited`), with counters apart from the login ones.
#[utoipa::path(
    post,
    path = "/auth/forgot-password",
    tag = "account",
    operation_id = "forgotPassword",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "The same answer whether or not an account uses the address", body = AcceptedBody),
        (status = 400, response = errors::InvalidRequest),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 429, response = errors::RateLimited),
    ),
)]
#[tracing::instrument(name = "auth.password_reset.forgot_password", skip_all)]
pub async fn forgot_password(
    State(state): State<Arc<ApiState>>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<ForgotPasswordRequest>,
) -> Result<(StatusCode, axum::Json<AcceptedBody>), ApiError> {
    let email = Email::parse(&req.email).ok();
    state.throttle.hit(Action::ForgotPassword, &[email.as_ref().map(Subject::Address), ip.map(Subject::Ip)]).await?;
    if let Some(email) = email {
        let state = state.clone();
        let work = async move {
            if let Err(e) = request_reset(&state, &email, &request_id).await {
                tracing::warn!(code = e.code.as_str(), "password reset request not processed");
            }
        };
        tokio::spawn(tracing::Instrument::in_current_span(work));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(AcceptedBody {
            status: "accepted",
            message: "if an account uses this address, a reset link is on its way",
        }),
    ))
}

/// Looks the address up and, for an existing account, stores a reset token and
/// enqueues its email, in one transaction.
async fn request_reset(state: &ApiState, email: &Email, request_id: &str) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    if let Some(credentials) = users::find_credentials_by_email(&mut *tx, email).await? {
        let user = credentials.user;
        enqueue::token_email(state, &mut tx, Purpose::PasswordReset, &user).await?;
        audit::insert(
            &mut *tx,
            &audit::NewEntry {
                tenant_id: None,
                actor_id: Some(user.id),
                action: AuditAction::UserPasswordResetRequested,
                target: Some(format!("user:{}", user.id)),
                metadata: json!({}),
                request_id: Some(request_id),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sets a new password with a reset token.
///
/// Spends a reset token and sets the new password: 204. Every refresh session is
/// revoked and every access token stops working (the token version moves on).
/// 400 `invalid_token` for an unknown, used or expired token, 400 `weak_password`
/// for a password outside the policy.
#[utoipa::path(
    post,
    path = "/auth/reset-password",
    tag = "account",
    operation_id = "resetPassword",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "The password is set; every session of the user is over"),
        (status = 400, response = errors::InvalidTokenOrPassword),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.password_reset.reset_password", skip_all)]
pub async fn reset_password(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let presented = req.token.expose_secret();
    if !TokenHasher::looks_valid(presented) {
        return Err(ApiError::from(ErrorCode::InvalidOneTimeToken));
    }
    let token_hash = state.opaque.hash(presented);
    // Refuse a dead token before paying for argon2; `spend` below still decides.
    if account_tokens::find_live(&state.pool, Purpose::PasswordReset, &token_hash).await?.is_none() {
        return Err(ApiError::from(ErrorCode::InvalidOneTimeToken));
    }
    let password = Password::parse(req.password)?;
    let password_hash = state.passwords.hash(&password).await?;

    let mut tx = state.pool.begin().await?;
    let Some(owner) = account_tokens::spend(&mut tx, Purpose::PasswordReset, &token_hash).await? else {
        return Err(ApiError::from(ErrorCode::InvalidOneTimeToken));
    };
    let Some(user) = account_tokens::set_password(&mut *tx, owner, &password_hash).await? else {
        return Err(ApiError::from(ErrorCode::InvalidOneTimeToken));
    };
    let revoked = sessions::revoke_all_for_user(&mut *tx, user.id).await?;
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: None,
            actor_id: Some(user.id),
            action: AuditAction::UserPasswordReset,
            target: Some(format!("user:{}", user.id)),
            metadata: json!({ "revokedSessions": revoked, "tokenVersion": user.token_version }),
            request_id: Some(&request_id),
        },
    )
    .await?;
    let event = AuthEvent::now(user.id, None, AuthEventKind::PasswordChanged).with("reason", "reset");
    enqueue::event(&mut tx, event).await?;
    tx.commit().await?;
    // The proxy caches the token version: every gateway must refuse old tokens now.
    if let Err(e) = state.invalidator.invalidate(vec![Key::User { user: user.id }]).await {
        tracing::warn!(error = %e, "cache invalidation after password reset failed; TTL applies");
    }
    tracing::info!(user_id = %user.id, revoked, "password reset");
    Ok(StatusCode::NO_CONTENT)
}
