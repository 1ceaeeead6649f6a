//! `GET /.well-known/jwks.json`: the public keys apps verify the signed assertion
//! (`X-Tenantgate-Assertion`) with.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::ApiState;

/// How long apps and caches may keep the key set. A key is published (second in
/// the key file) at least this long before it signs, so a cached set always has
/// it; JOSE libraries also refetch when they meet an unknown `kid`.
pub const JWKS_MAX_AGE: &str = "public, max-age=300";

/// The JWKS (empty `keys` when assertions use HS256).
pub async fn jwks(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, JWKS_MAX_AGE)], Json(state.assertions.jwks()))
}
