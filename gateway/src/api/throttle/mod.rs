//! Abuse limits of the auth API: per-account and per-IP attempt counters for
//! login, forgot-password, sign-up, tenant creation, invitations and mail sent on
//! request, counted in Redis so every gateway instance shares them.
//!
//! Each action has its own counters and quota (`RATE_LIMIT_*`), so exhausting the
//! login limit (a lockout) never blocks a password reset. Keys are built from
//! typed values only: an address is the parsed [`Email`], lowercased whole (the
//! database compares addresses so) and stored as a keyed hash, never as typed; an
//! account is its [`UserId`]; an IPv6 client counts per /64. When Redis is
//! unavailable the limit fails open with a warning: an outage of the cache must not
//! lock everyone out. In single-node mode (no Redis) the counters live in process.

mod windows;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use shared::cache::{RedisError, RedisTier};
use shared::config::{Quota, RateLimitSettings};
use shared::domain::{Email, UserId};
use shared::telemetry::error_chain;
use shared::tokens::TokenHasher;

use self::windows::LocalWindows;
use super::error::ApiError;

/// What is being limited; each action counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/forgot-password`.
    ForgotPassword,
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/tenants`.
    CreateTenant,
    /// `POST /auth/tenants/{id}/invitations`, by the inviter.
    Invite,
    /// A mail sent on someone's request: to the address it goes to (invitations,
    /// verification resends), and verification resends per IP.
    Mail,
}

impl Action {
    /// The name in counter keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::ForgotPassword => "forgot-password",
            Action::Register => "register",
            Action::CreateTenant => "tenant-create",
            Action::Invite => "invite",
            Action::Mail => "mail",
        }
    }
}

/// Who an attempt is counted against.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// An address (signing in, signing up, or receiving mail).
    Address(&'a Email),
    /// A signed-in account.
    Account(UserId),
    /// The client.
    Ip(IpAddr),
}

/// Fixed-window counters, one quota per action.
#[derive(Clone)]
pub struct Throttle {
    counters: Counters,
    prefix: String,
    hasher: TokenHasher,
    limits: RateLimitSettings,
}

/// Where the counts are kept.
#[derive(Clone)]
enum Counters {
    /// Shared by every gateway.
    Redis(RedisTier),
    /// This process only (single-node mode).
    Local(LocalWindows),
}

/// Why an attempt could not be counted (the limit then fails open).
#[derive(Debug, thiserror::Error)]
enum Uncounted {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error(transparent)]
    Full(#[from] windows::Full),
}

impl Counters {
    async fn incr_window(&self, key: &str, window: Duration) -> Result<(u64, Duration), Uncounted> {
        match self {
            Counters::Redis(redis) => Ok(redis.incr_window(key, window).await?),
            Counters::Local(local) => Ok(local.incr(key, window, Instant::now())?),
        }
    }
}

impl Throttle {
    /// Counters under `{prefix}ratelimit:` in `redis`, or in process without it;
    /// `hasher` hides addresses in key names.
    pub fn new(redis: Option<RedisTier>, prefix: String, hasher: TokenHasher, limits: RateLimitSettings) -> Throttle {
        let counters = match redis {
            Some(redis) => Counters::Redis(redis),
            None => Counters::Local(LocalWindows::new()),
        };
        Throttle { counters, prefix, hasher, limits }
    }

    fn quota(&self, action: Action) -> Quota {
        match action {
            Action::Login | Action::ForgotPassword => self.limits.credentials(),
            Action::Register => self.limits.register,
            Action::CreateTenant => self.limits.tenant_create,
            Action::Invite => self.limits.invitations,
            Action::Mail => self.limits.mail,
        }
    }

    /// The counter key of `subject` for `action`.
    fn key(&self, action: Action, subject: Subject<'_>) -> String {
        let action = action.as_str();
        match subject {
            Subject::Address(email) => {
                let digest = self.hasher.hash(&format!("ratelimit:{}", email.as_str().to_lowercase()));
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}ratelimit:{action}:address:{hex}", self.prefix)
            }
            Subject::Account(id) => format!("{}ratelimit:{action}:account:{id}", self.prefix),
            Subject::Ip(ip) => format!("{}ratelimit:{action}:ip:{}", self.prefix, edge::client_ip::limit_key(ip)),
        }
    }

    /// Counts one attempt at `action` against each of `subjects`, the client's IP
    /// first, and stops at the first one over its quota: a client that is already
    /// refused counts against nothing else (it cannot inflate an account's
    /// counter, nor mint counters for made-up addresses).
    ///
    /// # Errors
    /// 429 `rate_limited` with the wait until that window ends, when a counter is
    /// over the action's quota.
    pub async fn hit(&self, action: Action, subjects: &[Option<Subject<'_>>]) -> Result<(), ApiError> {
        let quota = self.quota(action);
        let ips = subjects.iter().flatten().filter(|s| matches!(s, Subject::Ip(_)));
        let others = subjects.iter().flatten().filter(|s| !matches!(s, Subject::Ip(_)));
        for subject in ips.chain(others) {
            match self.counters.incr_window(&self.key(action, *subject), quota.window).await {
                Ok((count, wait)) if count > u64::from(quota.max) => {
                    tracing::info!(action = action.as_str(), "attempt rate limited");
                    return Err(ApiError::rate_limited(wait));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), action = action.as_str(), "rate limit unavailable; allowing");
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
