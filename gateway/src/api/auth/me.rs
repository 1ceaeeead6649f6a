//! `GET /auth/me`.

use std::sync::Arc;

use axum::extract::State;
use shared::db::memberships;

use crate::api::error::ApiError;
use crate::api::extract::BearerUser;
use crate::api::openapi::errors;
use crate::api::wire::{MeBody, TenantBody, UserBody};
use crate::api::ApiState;

/// The caller and their tenants with roles.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "account",
    operation_id = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller and their tenants", body = MeBody),
        (status = 401, response = errors::Unauthenticated),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.me", skip_all)]
pub async fn me(State(state): State<Arc<ApiState>>, caller: BearerUser) -> Result<axum::Json<MeBody>, ApiError> {
    let tenants = memberships::list_for_user(&state.pool, caller.id()).await?;
    Ok(axum::Json(MeBody {
        user: UserBody::from(&caller.user),
        tenants: tenants.iter().map(TenantBody::from).collect(),
    }))
}
