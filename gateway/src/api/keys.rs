//! `GET /.well-known/jwks.json`: the public keys apps verify the signed assertion
//! (`X-Tenantgate-Assertion`) with.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema};
use utoipa::openapi::RefOr;

use super::ApiState;

/// How long apps and caches may keep the key set. A key is published (second in
/// the key file) at least this long before it signs, so a cached set always has
/// it; JOSE libraries also refetch when they meet an unknown `kid`.
pub const JWKS_MAX_AGE: &str = "public, max-age=300";

/// A JSON Web Key Set (RFC 7517), as `Assertions::jwks` builds it.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Jwks(serde_json::Value);

impl utoipa::PartialSchema for Jwks {
    fn schema() -> RefOr<Schema> {
        let key = ObjectBuilder::new().description(Some("An Ed25519 public key (`kty` OKP, `crv` Ed25519, `kid`)"));
        ObjectBuilder::new()
            .property("keys", ArrayBuilder::new().items(key))
            .required("keys")
            .description(Some("The assertion's public keys; empty when assertions use HS256"))
            .into()
    }
}

impl utoipa::ToSchema for Jwks {}

/// The JWKS (empty `keys` when assertions use HS256).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "meta",
    operation_id = "jwks",
    responses((
        status = 200,
        description = "The public keys of the signed assertion; cacheable for 5 minutes",
        body = Jwks,
        headers(("Cache-Control" = String, description = "`public, max-age=300`")),
    )),
)]
pub async fn jwks(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, JWKS_MAX_AGE)], Json(Jwks(state.assertions.jwks())))
}
