//! `POST /auth/verify-email` and `POST /auth/resend-verification`: proving the user
//! reads mail at their address with a one-time token (24 h, single use).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;
use shared::cache::Key;
use shared::db::account_tokens::{self, Purpose};
use shared::db::audit;
use shared::db::audit::AuditAction;
use shared::queue::{AuthEvent, AuthEventKind};
use shared::tokens::TokenHasher;

use super::enqueue;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, BearerUser, ClientIp, RequestId};
use crate::api::openapi::errors;
use crate::api::throttle::{Action, Subject};
use crate::api::wire::{AcceptedBody, UserBody, UserOnlyBody, VerifyEmailRequest};
use crate::api::ApiState;
use crate::error_code::ErrorCode;

/// Verifies an email address.
///
/// Spends a verification token and marks the address verified: 200 with the user,
/// or 400 `invalid_token` for an unknown, used or expired token.
#[utoipa::path(
    post,
    path = "/auth/verify-email",
    tag = "account",
    operation_id = "verifyEmail",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "The address is verified", body = UserOnlyBody),
        (status = 400, response = errors::InvalidOneTimeToken),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.verify_email", skip_all)]
pub async fn verify_email(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<VerifyEmailRequest>,
) -> Result<axum::Json<UserOnlyBody>, ApiError> {
    let presented = req.token.expose_secret();
    if !TokenHasher::looks_valid(presented) {
        return Err(ApiError::from(ErrorCode::InvalidOneTimeToken));
    }
    let hash = state.opaque.hash(presented);
    let mut tx = state.pool.begin().await?;
    let Some(owner) = account_tokens::spend(&mut tx, Purpose::EmailVerification, &hash).await? else {
        return Err(ApiError::from(ErrorCode::InvalidOneTimeToken));
    };
    let Some(user) = account_tokens::mark_email_verified(&mut *tx, owner).await? else {
        return Err(ApiError::from(ErrorCode::InvalidOneTimeToken));
    };
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: None,
            actor_id: Some(user.id),
            action: AuditAction::UserEmailVerified,
            target: Some(format!("user:{}", user.id)),
            metadata: json!({}),
            request_id: Some(&request_id),
        },
    )
    .await?;
    enqueue::event(&mut tx, AuthEvent::now(user.id, None, AuthEventKind::EmailVerified)).await?;
    tx.commit().await?;
    // Routes with `require_verified_email` read the cached user: drop it everywhere.
    if let Err(e) = state.invalidator.invalidate(vec![Key::User { user: user.id }]).await {
        tracing::warn!(error = %e, "cache invalidation after email verification failed; TTL applies");
    }
    tracing::info!(user_id = %user.id, "email verified");
    Ok(axum::Json(UserOnlyBody { user: UserBody::from(&user) }))
}

/// Sends a fresh verification email.
///
/// Sends a fresh verification email to the caller: 202, or 409 `already_verified`.
/// Earlier tokens stay valid until they expire or one is used.
#[utoipa::path(
    post,
    path = "/auth/resend-verification",
    tag = "account",
    operation_id = "resendVerification",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A verification email is on its way", body = AcceptedBody),
        (status = 401, response = errors::Unauthenticated),
        (status = 409, response = errors::AlreadyVerified),
        (status = 429, response = errors::RateLimited),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.verify_email.resend_verification", skip_all)]
pub async fn resend_verification(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ClientIp(ip): ClientIp,
) -> Result<(StatusCode, axum::Json<AcceptedBody>), ApiError> {
    if caller.user.email_verified_at.is_some() {
        return Err(ApiError::from(ErrorCode::AlreadyVerified));
    }
    let address = Some(caller.user.email.clone());
    state.throttle.hit(Action::Mail, &[address.as_ref().map(Subject::Address), ip.map(Subject::Ip)]).await?;
    let mut tx = state.pool.begin().await?;
    enqueue::token_email(&state, &mut tx, Purpose::EmailVerification, &caller.user).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(AcceptedBody { status: "accepted", message: "a verification email is on its way" }),
    ))
}
