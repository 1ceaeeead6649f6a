//! The auth API's OpenAPI 3.1 document, generated from the code: every handler
//! carries `#[utoipa::path]`, every wire type `#[derive(ToSchema)]`, and the router
//! is built from the same handler list as the document (`api::routes`), so an
//! operation cannot be routed without being documented. Served at
//! `GET /auth/openapi.json`.

pub mod errors;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::{ApiError, ErrorBody};

/// The name of the bearer security scheme, as `security(("bearer" = []))` names it.
pub const BEARER: &str = "bearer";

/// The document's fixed parts; the operations are added by `api::routes`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenantgate auth API",
        description = "The gateway's own API under `/auth` (and the assertion keys at \
            `/.well-known/jwks.json`). JSON in, JSON out; every error is \
            `{\"error\": \"<code>\", \"message\": \"<sentence>\"}` with a stable code."
    ),
    tags(
        (name = "account", description = "Registration, login, sessions, email verification, password reset"),
        (name = "notifications", description = "The caller's notification feed"),
        (name = "tenants", description = "Tenants, their members, invitations, domains and audit trail"),
        (name = "meta", description = "Keys and this document"),
    ),
    modifiers(&Shared),
)]
pub struct ApiDoc;

/// Adds what every operation shares: the bearer scheme, the `Error` schema and the
/// error response components.
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("The access token from register, login or refresh (15 minutes by default)"))
            .build();
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        components.schemas.insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        components.responses.extend(errors::all().into_iter().map(|(name, response)| (name.to_owned(), response)));
    }
}

/// A role's wire name, weakest first (`schema_with` for `Role` fields).
pub fn role() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(shared::domain::Role::ALL.iter().map(|r| r.as_str())))
        .description(Some("A role in a tenant, weakest first: viewer < member < admin < owner"))
        .build()
}

/// The whole document: [`ApiDoc`] with every routed operation.
pub fn document() -> utoipa::openapi::OpenApi {
    super::routes().into_openapi()
}

/// The document as JSON, rendered once, on first use.
static DOCUMENT: LazyLock<Result<Bytes, serde_json::Error>> = LazyLock::new(|| document().to_json().map(Bytes::from));

/// This document.
#[utoipa::path(
    get,
    path = "/auth/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)),
)]
pub async fn serve() -> Response {
    match &*DOCUMENT {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[cfg(test)]
mod tests;
