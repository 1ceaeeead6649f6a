//! Browser sessions: the token pair behind the cookies, rotated through the same
//! refresh code as `POST /auth/refresh` (rotation and reuse detection), used by
//! the proxy when an access cookie has expired and by the portal's pages.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use shared::db::sessions;
use shared::tokens::TokenHasher;

use crate::api::auth::session;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, RequestId};
use crate::api::wire::{RefreshRequest, TokenPair};
use crate::api::ApiState;
use crate::error_code::ErrorCode;

/// A token pair, as the cookies carry it.
pub struct Pair {
    /// The JWT access token.
    pub access: String,
    /// The opaque refresh token.
    pub refresh: SecretString,
}

impl From<TokenPair> for Pair {
    fn from(p: TokenPair) -> Pair {
        Pair { access: p.access_token, refresh: SecretString::from(p.refresh_token) }
    }
}

/// Who presents a refresh token: the user agent and the client address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presenter<'a> {
    /// `User-Agent`, as sent.
    pub user_agent: Option<&'a str>,
    /// The client, as the gateway resolved it.
    pub ip: Option<IpAddr>,
}

/// What a grace-window answer must match: the same user agent from the same
/// network (IPv4 /24, IPv6 /64), so a stolen refresh cookie replayed from
/// elsewhere within the window is reuse, not a twin request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    user_agent: Option<String>,
    network: Option<IpAddr>,
}

impl Fingerprint {
    fn of(presenter: Presenter<'_>) -> Fingerprint {
        Fingerprint {
            user_agent: presenter.user_agent.map(str::to_owned),
            network: presenter.ip.map(edge::client_ip::network_class),
        }
    }
}

/// Rotations by the hash of the spent token: the new pair, and who rotated it.
type Recent = moka::future::Cache<[u8; 32], (Arc<Pair>, Fingerprint)>;

/// Refreshes browser sessions.
pub struct Sessions {
    api: Arc<ApiState>,
    /// Recent rotations by the hash of the token they spent. A page whose access
    /// cookie expired often sends several requests at once with the same refresh
    /// cookie; the first rotates it and the others, within the grace, get the same
    /// new pair instead of tripping reuse detection and ending the session, if
    /// they come from the same client. Concurrent refreshes of one token are
    /// merged into one rotation.
    recent: Option<Recent>,
}

impl Sessions {
    /// Over the API's state; `grace` 0 disables the grace window.
    pub fn new(api: Arc<ApiState>, grace: Duration) -> Sessions {
        let recent = (!grace.is_zero())
            .then(|| moka::future::Cache::builder().max_capacity(100_000).time_to_live(grace).build());
        Sessions { api, recent }
    }

    /// The API state (database, token signing, password hashing).
    pub fn api(&self) -> &Arc<ApiState> {
        &self.api
    }

    /// Rotates `presented` (from `presenter`) into a new pair.
    ///
    /// # Errors
    /// The refresh endpoint's: 401 `invalid_token`, `token_expired`, or
    /// `token_reused` (the family is revoked: also when another client presents
    /// a token inside the grace window); 5xx when the database fails.
    pub async fn refresh(
        &self,
        presented: &str,
        request_id: &str,
        presenter: Presenter<'_>,
    ) -> Result<Arc<Pair>, ApiError> {
        if !TokenHasher::looks_valid(presented) {
            return Err(ApiError::new(ErrorCode::InvalidToken, "the refresh token is not valid"));
        }
        let rotate = || async {
            let mut headers = HeaderMap::new();
            if let Some(ua) = presenter.user_agent.and_then(|ua| http::HeaderValue::from_str(ua).ok()) {
                headers.insert(http::header::USER_AGENT, ua);
            }
            let req = RefreshRequest { refresh_token: SecretString::from(presented.to_owned()) };
            let pair =
                session::refresh(State(self.api.clone()), RequestId(request_id.to_owned()), headers, ApiJson(req))
                    .await?
                    .0;
            Ok::<_, ApiError>((Arc::new(Pair::from(pair)), Fingerprint::of(presenter)))
        };
        let Some(recent) = &self.recent else { return rotate().await.map(|(pair, _)| pair) };
        let rotated_here = AtomicBool::new(false);
        let key = self.api.opaque.hash(presented);
        let (pair, by) = recent
            .try_get_with(key, async {
                rotated_here.store(true, Ordering::Relaxed);
                rotate().await
            })
            .await
            .map_err(|e| (*e).clone())?;
        if !rotated_here.load(Ordering::Relaxed) {
            // Served from the grace window: only to the client that rotated it...
            if by != Fingerprint::of(presenter) {
                recent.invalidate(&key).await;
                tracing::warn!(request_id, "spent refresh token presented by another client inside the grace window");
                // ...anyone else is presenting a spent token: reuse, which ends the family.
                return rotate().await.map(|(pair, _)| pair);
            }
            // ...and only while the session it rotated into is still alive (a
            // logout or a detected reuse in between ends it).
            let successor = self.api.opaque.hash(pair.refresh_text());
            let live = sessions::find_by_hash(&self.api.pool, &successor)
                .await?
                .is_some_and(|s| s.revoked_at.is_none() && s.replaced_by.is_none());
            if !live {
                recent.invalidate(&key).await;
                return Err(ApiError::new(ErrorCode::InvalidToken, "the refresh token is not valid"));
            }
        }
        Ok(pair)
    }

    /// Revokes the session `presented` belongs to (idempotent; unknown tokens are
    /// fine), as `POST /auth/logout` does.
    ///
    /// # Errors
    /// 5xx when the database fails.
    pub async fn end(&self, presented: &str) -> Result<(), ApiError> {
        let req = RefreshRequest { refresh_token: SecretString::from(presented.to_owned()) };
        session::logout(State(self.api.clone()), ApiJson(req)).await?;
        if let Some(recent) = &self.recent {
            recent.invalidate(&self.api.opaque.hash(presented)).await;
        }
        Ok(())
    }
}

impl Pair {
    /// The refresh token's text, for its cookie.
    pub fn refresh_text(&self) -> &str {
        self.refresh.expose_secret()
    }
}
