//! Issuing token pairs: a signed access token and a stored, rotating refresh token.

use chrono::Utc;
use secrecy::ExposeSecret;
use shared::db::sessions::{self, NewSession};
use shared::db::users::User;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::api::wire::TokenPair;
use crate::api::ApiState;

/// Stores a new refresh token in `family` (a new family for a fresh login) and
/// signs an access token; returns the pair and the new session's id.
///
/// # Errors
/// Database or signing failures.
pub async fn issue_pair(
    state: &ApiState,
    conn: &mut PgConnection,
    user: &User,
    family: Option<Uuid>,
    user_agent: Option<&str>,
) -> Result<(TokenPair, Uuid), ApiError> {
    let refresh = state.opaque.issue();
    let session_id = Uuid::now_v7();
    let expires_at = Utc::now() + state.refresh_ttl;
    sessions::insert(
        conn,
        &NewSession {
            id: session_id,
            user_id: user.id,
            family_id: family.unwrap_or_else(Uuid::now_v7),
            token_hash: &refresh.hash,
            expires_at,
            user_agent: user_agent.map(|ua| ua.char_indices().nth(256).map_or(ua, |(end, _)| &ua[..end])),
        },
    )
    .await?;
    let access = state.tokens.issue(user.id, &user.email, user.token_version)?;
    Ok((
        TokenPair {
            access_token: access.token,
            refresh_token: refresh.plaintext.expose_secret().to_owned(),
            token_type: "Bearer",
            expires_in: access.expires_in,
        },
        session_id,
    ))
}
