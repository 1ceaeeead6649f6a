//! Refresh-token rotation with reuse detection, and logout.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::json;
use shared::cache::Key;
use shared::db::audit::AuditAction;
use shared::db::{audit, sessions, users};
use shared::queue::{AuthEvent, AuthEventKind};
use shared::tokens::TokenHasher;

use super::enqueue;
use super::tokens::issue_pair;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, BearerUser, RequestId};
use crate::api::openapi::errors;
use crate::api::wire::{RefreshRequest, TokenPair};
use crate::api::ApiState;
use crate::error_code::ErrorCode;

fn invalid_refresh() -> ApiError {
    ApiError::new(ErrorCode::InvalidToken, "the refresh token is not valid")
}

/// Exchanges a refresh token for a new token pair.
///
/// Exchanges a refresh token for a new pair. The presented token is spent; a spent
/// token presented again revokes its whole family (it was stolen or replayed) and
/// answers 401 `token_reused`.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "account",
    operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair; the presented refresh token is spent", body = TokenPair),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::InvalidRefreshToken),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.session.refresh", skip_all)]
pub async fn refresh(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    let presented = req.refresh_token.expose_secret();
    if !TokenHasher::looks_valid(presented) {
        return Err(invalid_refresh());
    }
    let hash = state.opaque.hash(presented);
    let mut tx = state.pool.begin().await?;
    let Some(session) = sessions::lock_by_hash(&mut tx, &hash).await? else {
        return Err(invalid_refresh());
    };
    if session.replaced_by.is_some() {
        let revoked = sessions::revoke_family(&mut *tx, session.family_id).await?;
        audit::insert(
            &mut *tx,
            &audit::NewEntry {
                tenant_id: None,
                actor_id: Some(session.user_id),
                action: AuditAction::SessionReuseDetected,
                target: Some(format!("family:{}", session.family_id)),
                metadata: json!({ "revoked": revoked }),
                request_id: Some(&request_id),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(user_id = %session.user_id, family = %session.family_id, "refresh token reuse; family revoked");
        return Err(ApiError::from(ErrorCode::TokenReused));
    }
    if session.revoked_at.is_some() {
        return Err(invalid_refresh());
    }
    if session.expires_at <= Utc::now() {
        return Err(ApiError::new(ErrorCode::TokenExpired, "the refresh token has expired"));
    }
    let Some(user) = users::find_by_id(&mut *tx, session.user_id).await? else {
        return Err(invalid_refresh());
    };
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    let (pair, successor) = issue_pair(&state, &mut tx, &user, Some(session.family_id), user_agent).await?;
    sessions::mark_replaced(&mut tx, session.id, successor).await?;
    tx.commit().await?;
    Ok(axum::Json(pair))
}

/// Ends the session of a refresh token.
///
/// Revokes the session the refresh token belongs to. Answers 204 for unknown tokens
/// too: logging out is idempotent and reveals nothing.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "account",
    operation_id = "logout",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session is over (also for unknown tokens)"),
        (status = 400, response = errors::InvalidRequest),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.session.logout", skip_all)]
pub async fn logout(
    State(state): State<Arc<ApiState>>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let presented = req.refresh_token.expose_secret();
    if !TokenHasher::looks_valid(presented) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut tx = state.pool.begin().await?;
    if let Some(session) = sessions::find_by_hash(&mut *tx, &state.opaque.hash(presented)).await? {
        // Only a logout that ended something is news for the user's feed.
        if sessions::revoke_family(&mut *tx, session.family_id).await? > 0 {
            enqueue::event(&mut tx, AuthEvent::now(session.user_id, None, AuthEventKind::Logout)).await?;
        }
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the caller.
///
/// Ends every session of the caller and invalidates their outstanding access tokens
/// (their token version moves on).
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "account",
    operation_id = "logoutAll",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session of the caller is over; their access tokens are refused"),
        (status = 401, response = errors::Unauthenticated),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.session.logout_all", skip_all)]
pub async fn logout_all(
    State(state): State<Arc<ApiState>>,
    RequestId(request_id): RequestId,
    caller: BearerUser,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let version = users::bump_token_version(&mut *tx, caller.id()).await?;
    let revoked = sessions::revoke_all_for_user(&mut *tx, caller.id()).await?;
    audit::insert(
        &mut *tx,
        &audit::NewEntry {
            tenant_id: None,
            actor_id: Some(caller.id()),
            action: AuditAction::UserLoggedOutEverywhere,
            target: Some(format!("user:{}", caller.id())),
            metadata: json!({ "revokedSessions": revoked, "tokenVersion": version }),
            request_id: Some(&request_id),
        },
    )
    .await?;
    let event = AuthEvent::now(caller.id(), None, AuthEventKind::Logout).with("everywhere", true);
    enqueue::event(&mut tx, event).await?;
    tx.commit().await?;
    // The proxy caches users; every gateway must see the new token version now.
    if let Err(e) = state.invalidator.invalidate(vec![Key::User { user: caller.id() }]).await {
        tracing::warn!(error = %e, "cache invalidation after logout-all failed; TTL applies");
    }
    Ok(StatusCode::NO_CONTENT)
}
