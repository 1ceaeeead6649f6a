//! Per-account and per-IP attempt limits for the credential endpoints (login,
//! forgot-password), counted in Redis so every gateway instance shares them.
//!
//! Each action has its own counters, so exhausting the login limit (a lockout) never
//! blocks a password reset. Account keys hold a keyed hash of the lowercased
//! address, not the address. When Redis is unavailable the limit fails open with a
//! warning: an outage of the cache must not lock everyone out.

use std::net::IpAddr;
use std::time::Duration;

use shared::cache::RedisTier;
use shared::telemetry::error_chain;
use shared::tokens::TokenHasher;

use super::error::ApiError;

/// What is being limited; each action counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/forgot-password`.
    ForgotPassword,
    /// `POST /auth/resend-verification` (account only).
    ResendVerification,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::ForgotPassword => "forgot-password",
            Action::ResendVerification => "resend-verification",
        }
    }
}

/// Fixed-window counters: at most `max` attempts per subject per `window`
/// (`RATE_LIMIT_MAX`, `RATE_LIMIT_WINDOW`).
#[derive(Clone)]
pub struct Throttle {
    redis: RedisTier,
    prefix: String,
    hasher: TokenHasher,
    window: Duration,
    max: u32,
}

impl Throttle {
    /// Counters under `{prefix}ratelimit:` in `redis`; `hasher` hides addresses in
    /// key names.
    pub fn new(redis: RedisTier, prefix: String, hasher: TokenHasher, window: Duration, max: u32) -> Throttle {
        Throttle { redis, prefix, hasher, window, max }
    }

    /// Counts one attempt at `action` by `account` (an address as typed) and from
    /// `ip`, whichever are known.
    ///
    /// # Errors
    /// 429 `rate_limited` with the wait until the fullest window ends, when either
    /// counter is over the limit.
    pub async fn hit(&self, action: Action, account: Option<&str>, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let mut keys = Vec::with_capacity(2);
        if let Some(account) = account {
            let digest = self.hasher.hash(&format!("ratelimit:{}", account.trim().to_lowercase()));
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            keys.push(format!("{}ratelimit:{}:account:{hex}", self.prefix, action.as_str()));
        }
        if let Some(ip) = ip {
            keys.push(format!("{}ratelimit:{}:ip:{ip}", self.prefix, action.as_str()));
        }
        let mut wait = None;
        for key in &keys {
            match self.redis.incr_window(key, self.window).await {
                Ok((count, remaining)) if count > u64::from(self.max) => {
                    wait = Some(wait.map_or(remaining, |w: Duration| w.max(remaining)));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), action = action.as_str(), "rate limit unavailable; allowing");
                    return Ok(());
                }
            }
        }
        match wait {
            Some(wait) => {
                tracing::info!(action = action.as_str(), "attempt rate limited");
                Err(ApiError::rate_limited(wait))
            }
            None => Ok(()),
        }
    }
}
