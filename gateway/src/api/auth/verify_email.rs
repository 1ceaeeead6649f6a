//! `POST /auth/verify-email` and `POST /auth/resend-verification`: proving the user
//! reads mail at their address with a one-time token (24 h, single use).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;
use shared::cache::Key;
use shared::db::account_tokens::{self, Purpose};
use shared::db::{self, audit};
use shared::domain::Email;
use shared::queue::{AuthEvent, AuthEventKind};
use shared::tokens::TokenHasher;

use super::enqueue;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, BearerUser, ClientIp, RequestId};
use crate::api::throttle::{Action, Subject};
use crate::api::wire::{AcceptedBody, UserBody, UserOnlyBody, VerifyEmailRequest};
use crate::api::ApiState;

/// Spends a verification token and marks the address verified: 200 with the user,
/// or 400 `invalid_token` for an unknown, used or expired token.
pub async fn verify_email(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<VerifyEmailRequest>,
) -> Result<axum::Json<UserOnlyBody>, ApiError> {
    let presented = req.token.expose_secret();
    if !TokenHasher::looks_valid(presented) {
        return Err(ApiError::invalid_one_time_token());
    }
    let hash = state.opaque.hash(presented);
    let mut tx = state.pool.begin().await.map_err(db::Error::from)?;
    let Some(owner) = account_tokens::spend(&mut tx, Purpose::EmailVerification, &hash).await? else {
        return Err(ApiError::invalid_one_time_token());
    };
    let Some(user) = account_tokens::mark_email_verified(&mut *tx, owner).await? else {
        return Err(ApiError::invalid_one_time_token());
    };
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: None,
            actor_id: Some(user.id),
            action: "user.email_verified",
            target: Some(format!("user:{}", user.id)),
            metadata: json!({}),
            request_id: Some(&request_id),
        },
    )
    .await?;
    enqueue::event(&mut tx, AuthEvent::now(user.id, None, AuthEventKind::EmailVerified)).await?;
    tx.commit().await.map_err(db::Error::from)?;
    // Routes with `require_verified_email` read the cached user: drop it everywhere.
    if let Err(e) = state.invalidator.invalidate(vec![Key::User { user: user.id }]).await {
        tracing::warn!(error = %e, "cache invalidation after email verification failed; TTL applies");
    }
    tracing::info!(user_id = %user.id, "email verified");
    Ok(axum::Json(UserOnlyBody { user: UserBody::from(&user) }))
}

/// Sends a fresh verification email to the caller: 202, or 409 `already_verified`.
/// Earlier tokens stay valid until they expire or one is used.
pub async fn resend_verification(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ClientIp(ip): ClientIp,
) -> Result<(StatusCode, axum::Json<AcceptedBody>), ApiError> {
    if caller.user.email_verified_at.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_verified", "the email address is already verified"));
    }
    let address = Email::parse(&caller.user.email).ok();
    state.throttle.hit(Action::Mail, &[address.as_ref().map(Subject::Address), ip.map(Subject::Ip)]).await?;
    let mut tx = state.pool.begin().await.map_err(db::Error::from)?;
    enqueue::token_email(&state, &mut tx, Purpose::EmailVerification, &caller.user).await?;
    tx.commit().await.map_err(db::Error::from)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(AcceptedBody { status: "accepted", message: "a verification email is on its way" }),
    ))
}
