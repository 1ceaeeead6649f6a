//! The gateway's own HTTP API under `/auth` (and the assertion keys at
//! `/.well-known/jwks.json`): an axum [`Router`] called in process
//! from the proxy's `request_filter` (no network hop). axum does the routing and
//! JSON; this module only wires handlers to state.

pub(crate) mod auth;
pub mod error;
pub mod extract;
mod keys;
pub mod tenants;
pub mod throttle;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use shared::assertion::Assertions;
use shared::cache::Invalidator;
use shared::config::Origin;
use shared::config::Settings;
use shared::jwt::AccessTokens;
use shared::live::LiveFeed;
use shared::password::PasswordHasher;
use shared::tokens::TokenHasher;
use sqlx::PgPool;
use tower_http::cors::{AllowOrigin, CorsLayer};

use self::error::ApiError;
use self::throttle::Throttle;
use crate::error_code::ErrorCode;

/// The path prefix the API owns; everything else is proxied.
pub const PREFIX: &str = "/auth";

/// Whether the gateway answers this path itself.
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/auth/") || path == JWKS_PATH
}

/// Where apps fetch the public keys of the signed assertion.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What the handlers need. Built once at start; cheap to share.
pub struct ApiState {
    /// Postgres.
    pub pool: PgPool,
    /// Access-token signing and verification.
    pub tokens: AccessTokens,
    /// Refresh (and other opaque) token hashing.
    pub opaque: TokenHasher,
    /// argon2id on a bounded pool.
    pub passwords: PasswordHasher,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Tells every gateway to forget cached users, tenants and roles that changed.
    pub invalidator: Invalidator,
    /// Live notifications, which `/auth/notifications/stream` subscribes to
    /// (Redis pub/sub, or in process in single-node mode).
    pub live: LiveFeed,
    /// Per-account and per-IP attempt limits on login and forgot-password.
    pub throttle: Throttle,
    /// Which custom domains tenants may claim, and the DNS their proofs are read
    /// from.
    pub domains: tenants::domains::DomainRules,
    /// `INVITATION_TTL`.
    pub invitation_ttl: Duration,
    /// Signs the upstream assertion; its public keys are served at [`JWKS_PATH`].
    pub assertions: Arc<Assertions>,
    /// Ends open notification streams whose user's sessions ended.
    pub revocations: crate::revocation::Revocations,
}

/// Builds the router for `state`, with CORS from `settings.cors` and the body cap
/// from `settings.gateway.body_limit`.
pub fn router(state: Arc<ApiState>, settings: &Settings) -> Router {
    let auth = Router::new()
        .route("/register", post(auth::register::register))
        .route("/login", post(auth::login::login))
        .route("/refresh", post(auth::session::refresh))
        .route("/logout", post(auth::session::logout))
        .route("/logout-all", post(auth::session::logout_all))
        .route("/me", get(auth::me::me))
        .route("/verify-email", post(auth::verify_email::verify_email))
        .route("/resend-verification", post(auth::verify_email::resend_verification))
        .route("/forgot-password", post(auth::password_reset::forgot_password))
        .route("/reset-password", post(auth::password_reset::reset_password))
        .route("/notifications", get(auth::notifications::list))
        .route("/notifications/read", post(auth::notifications::mark_read))
        .route("/notifications/stream", get(auth::notifications::stream))
        .route("/tenants", get(tenants::manage::list).post(tenants::manage::create))
        .route("/tenants/{id}", get(tenants::manage::get).patch(tenants::manage::update))
        .route("/tenants/{id}/activate", post(tenants::manage::activate))
        .route("/tenants/{id}/deactivate", post(tenants::manage::deactivate))
        .route("/tenants/{id}/domain/verify", post(tenants::domains::verify))
        .route("/tenants/{id}/leave", post(tenants::members::leave))
        .route("/tenants/{id}/members", get(tenants::members::list))
        .route("/tenants/{id}/members/{user}", patch(tenants::members::change_role).delete(tenants::members::remove))
        .route("/tenants/{id}/invitations", get(tenants::invitations::list).post(tenants::invitations::create))
        .route("/tenants/{id}/invitations/{invitation}", delete(tenants::invitations::revoke))
        .route("/tenants/{id}/audit", get(tenants::audit::list))
        .route("/invitations/accept", post(tenants::invitations::accept))
        .fallback(|| async { ApiError::from(ErrorCode::NotFound) })
        .method_not_allowed_fallback(|| async { ApiError::from(ErrorCode::MethodNotAllowed) });
    Router::new()
        .nest(PREFIX, auth)
        .route(JWKS_PATH, get(keys::jwks))
        .fallback(|| async { ApiError::from(ErrorCode::NotFound) })
        .layer(DefaultBodyLimit::max(settings.gateway.body_limit))
        .layer(cors(&settings.cors.origins))
        .with_state(state)
}

/// CORS for listed origins only; credentials allowed, since only listed origins
/// ever get an `Access-Control-Allow-Origin` back.
fn cors(origins: &[Origin]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.as_str()).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600))
}
