//! The gateway's own HTTP API under `/auth` (and the assertion keys at
//! `/.well-known/jwks.json`): an axum [`Router`] called in process
//! from the proxy's `request_filter` (no network hop). axum does the routing and
//! JSON; this module only wires handlers to state. The OpenAPI document of every
//! operation is generated from the handlers (`openapi`) and served at
//! `/auth/openapi.json`.

pub(crate) mod auth;
pub mod error;
pub mod extract;
mod keys;
pub mod openapi;
pub mod tenants;
pub mod throttle;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
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
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    let (routes, _document) = routes().split_for_parts();
    routes
        .fallback(|| async { ApiError::from(ErrorCode::NotFound) })
        .method_not_allowed_fallback(|| async { ApiError::from(ErrorCode::MethodNotAllowed) })
        .layer(DefaultBodyLimit::max(settings.gateway.body_limit))
        .layer(cors(&settings.cors.origins))
        .with_state(state)
}

/// Every operation, each routed at the path and methods its `#[utoipa::path]`
/// documents: the router and the OpenAPI document ([`openapi::document`]) are
/// built from this one list, so neither has an operation the other lacks.
fn routes() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(auth::register::register))
        .routes(routes!(auth::login::login))
        .routes(routes!(auth::session::refresh))
        .routes(routes!(auth::session::logout))
        .routes(routes!(auth::session::logout_all))
        .routes(routes!(auth::me::me))
        .routes(routes!(auth::verify_email::verify_email))
        .routes(routes!(auth::verify_email::resend_verification))
        .routes(routes!(auth::password_reset::forgot_password))
        .routes(routes!(auth::password_reset::reset_password))
        .routes(routes!(auth::notifications::list))
        .routes(routes!(auth::notifications::mark_read))
        .routes(routes!(auth::notifications::stream))
        .routes(routes!(tenants::manage::list, tenants::manage::create))
        .routes(routes!(tenants::manage::get, tenants::manage::update))
        .routes(routes!(tenants::manage::activate))
        .routes(routes!(tenants::manage::deactivate))
        .routes(routes!(tenants::domains::verify))
        .routes(routes!(tenants::members::leave))
        .routes(routes!(tenants::members::list))
        .routes(routes!(tenants::members::change_role, tenants::members::remove))
        .routes(routes!(tenants::invitations::list, tenants::invitations::create))
        .routes(routes!(tenants::invitations::revoke))
        .routes(routes!(tenants::api_keys::list, tenants::api_keys::create))
        .routes(routes!(tenants::api_keys::revoke))
        .routes(routes!(tenants::audit::list))
        .routes(routes!(tenants::invitations::accept))
        .routes(routes!(keys::jwks))
        .routes(routes!(openapi::serve))
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
