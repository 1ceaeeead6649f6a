//! Extractors: JSON bodies with our error shape, and the bearer-authenticated user.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use shared::db;
use shared::domain::UserId;
use shared::jwt::AccessClaims;

use super::error::ApiError;
use super::ApiState;
use crate::error_code::ErrorCode;

/// `axum::Json`, rejecting with our JSON errors (400, 413, 415).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path`, rejecting a malformed segment (a bad uuid...) with a
/// 400 JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query`, rejecting unknown or malformed parameters with a 400
/// JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The request id the proxy assigned (or kept), for audit rows and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string())))
    }
}

/// A user authenticated by `Authorization: Bearer <access token>` whose token has not
/// been revoked by logout-all (the token version still matches the database).
#[derive(Debug, Clone)]
pub struct BearerUser {
    /// The verified claims.
    pub claims: Arc<AccessClaims>,
    /// The current user row.
    pub user: db::users::User,
}

impl BearerUser {
    /// The user's id.
    pub fn id(&self) -> UserId {
        self.user.id
    }
}

/// The token in `Authorization: Bearer <token>`, if the header has that form.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl FromRequestParts<Arc<ApiState>> for BearerUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or_else(|| ApiError::from(ErrorCode::MissingToken))?;
        let claims = state.tokens.verify(token)?;
        let user = db::users::find_by_id(&state.pool, claims.sub).await?;
        match user {
            Some(user) if user.token_version == claims.ver => Ok(BearerUser { claims, user }),
            _ => Err(ApiError::from(ErrorCode::TokenRevoked)),
        }
    }
}

/// The address of the TCP peer, as the proxy saw it (`session.client_addr()`), for
/// per-IP rate limits and login notifications. `None` when the request did not come
/// through the proxy over TCP.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIp>().copied().unwrap_or(ClientIp(None)))
    }
}
